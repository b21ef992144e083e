#!/usr/bin/env bats
# The CUDA backend through the tools (--device cuda): each against the same tool on the cpu.
# Every test but the first skips with a message where there is no GPU or no CUDA build; on a GPU
# machine `make test-cuda` runs these after the kernel tests (build/test_cuda) and the goldens
# (LOP_TEST_DEVICE=cuda build/test_model).
load helpers

need_gpu() {
  [ -f "$ROOT/build/liblop_cuda.so" ] || skip "this build has no CUDA (no nvcc when it was made)"
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || skip "no GPU on this machine"
}

# max |a - b| of per-token "nll" over two ppl --per-token outputs (and equal token lists)
max_dnll() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
def rows(p):
    return [json.loads(l) for l in open(p) if l.startswith('{"pos"')]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert len(a) == len(b) and len(a) > 0, (len(a), len(b))
assert all(x["id"] == y["id"] for x, y in zip(a, b))
d = [abs(x["nll"] - y["nll"]) for x, y in zip(a, b)]
print(f"{max(d):.3g} {sum(d) / len(d):.3g}")
EOF
}

@test "cuda: --device cuda fails clearly without a GPU or a CUDA build; bad names are usage errors" {
  need_shared
  run ppl -m "$MODELS/stories260K" --device cuda:x /dev/null
  [ "$status" -eq 2 ]
  assert_output --partial "expected cpu, cuda or cuda:N"
  if [ -f "$ROOT/build/liblop_cuda.so" ] && nvidia-smi -L >/dev/null 2>&1; then
    run ppl -m "$MODELS/stories260K" --device cuda:99 /dev/null
    [ "$status" -eq 2 ]
    assert_output --partial "GPU"
  else
    run ppl -m "$MODELS/stories260K" --device cuda /dev/null
    [ "$status" -eq 2 ]
    assert_output --regexp "this build has no CUDA|no CUDA GPU"
    # the trainers alike, before any step (nothing written)
    T=$(scratch)
    run heal-sft -m "$MODELS/stories260K" --data "$SHARED/data/stories/test.txt" -o "$T/o" --device cuda
    [ "$status" -eq 2 ]
    assert_output --regexp "this build has no CUDA|no CUDA GPU"
    [ ! -e "$T/o" ]
  fi
}

@test "cuda: ppl --gemm f32 per-token NLL equal to the cpu's within 1e-4 (every fixture family)" {
  need_shared; need_gpu
  T=$(scratch)
  for m in stories260K llama-tiny qwen3-tiny gemma3-tiny; do
    ppl -q -m "$MODELS/$m" --per-token --ctx 64 --max-tokens 1500 "$SHARED/data/prose/test.txt" > "$T/cpu"
    ppl -q -m "$MODELS/$m" --per-token --ctx 64 --max-tokens 1500 --device cuda "$SHARED/data/prose/test.txt" > "$T/gpu"
    read mx mean < <(max_dnll "$T/cpu" "$T/gpu")
    echo "$m: max |dNLL| $mx mean $mean"
    python3 -c "import sys; sys.exit(0 if $mx < 1e-4 else 1)"
  done
}

@test "cuda: ppl --gemm bf16 on the GPU stays within 0.3 nats per token of f32 (mean < 0.03)" {
  need_shared; need_gpu
  T=$(scratch)
  for m in stories260K qwen3-tiny gemma3-tiny; do
    ppl -q -m "$MODELS/$m" --per-token --ctx 128 --max-tokens 2000 "$SHARED/data/prose/test.txt" > "$T/cpu"
    ppl -q -m "$MODELS/$m" --per-token --ctx 128 --max-tokens 2000 --device cuda --gemm bf16 "$SHARED/data/prose/test.txt" > "$T/gpu"
    read mx mean < <(max_dnll "$T/cpu" "$T/gpu")
    echo "$m bf16: max |dNLL| $mx mean $mean"
    python3 -c "import sys; sys.exit(0 if $mx < 0.3 and $mean < 0.03 else 1)"
  done
}

@test "cuda: lm-eval items equal to the cpu's (log-likelihoods within 1e-3, same greedy flags)" {
  need_shared; need_gpu
  T=$(scratch)
  for m in stories260K qwen3-tiny; do
    lm-eval -q -m "$MODELS/$m" --data-dir "$SHARED/data/eval" --tasks hellaswag,arc_easy --limit 20 \
      --log-samples "$T/$m-cpu.jsonl" > /dev/null
    lm-eval -q -m "$MODELS/$m" --data-dir "$SHARED/data/eval" --tasks hellaswag,arc_easy --limit 20 \
      --log-samples "$T/$m-gpu.jsonl" --device cuda > /dev/null
    python3 - "$T/$m-cpu.jsonl" "$T/$m-gpu.jsonl" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) > 0
worst = 0
for x, y in zip(a, b):
    rx, ry = x["resps"], y["resps"]
    assert len(rx) == len(ry)
    for p, q in zip(rx, ry):
        worst = max(worst, abs(p[0] - q[0]))
        assert p[1] == q[1], (x["doc_id"], p, q)
    assert x.get("acc") == y.get("acc"), (x["doc_id"], x.get("acc"), y.get("acc"))
print("worst |dll|", worst)
assert worst < 1e-3
EOF
  done
}

@test "cuda: lm-gen greedy continuation (kv cache) equal to the cpu's" {
  need_shared; need_gpu
  a=$(lm-gen -q -m "$MODELS/stories260K" --prompt "Once upon a time" -n 60)
  b=$(lm-gen -q -m "$MODELS/stories260K" --prompt "Once upon a time" -n 60 --device cuda)
  [ -n "$a" ]
  [ "$a" = "$b" ]
}

@test "cuda: layer-score (bi, ppl) equal to the cpu's within 1e-4" {
  need_shared; need_gpu
  T=$(scratch)
  for metric in bi ppl; do
    layer-score -q -m "$MODELS/qwen3-tiny" --data "$SHARED/data/prose/test.txt" --samples 8 --ctx 64 --metric $metric > "$T/cpu"
    layer-score -q -m "$MODELS/qwen3-tiny" --data "$SHARED/data/prose/test.txt" --samples 8 --ctx 64 --metric $metric --device cuda > "$T/gpu"
    python3 - "$T/cpu" "$T/gpu" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
b = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
assert len(a) == len(b) > 0
for x, y in zip(a, b):
    if "score" in x:
        assert abs(x["score"] - y["score"]) <= 1e-4 * max(1, abs(x["score"])), (x, y)
EOF
  done
}

@test "cuda: wmask --method wanda masks equal to the cpu's; layer-merge --laco decisions equal" {
  need_shared; need_gpu
  T=$(scratch)
  wmask -q -m "$MODELS/stories260K" -o "$T/cpu.safetensors" --method wanda --data "$SHARED/data/stories/test.txt" --samples 8 --ctx 64
  wmask -q -m "$MODELS/stories260K" -o "$T/gpu.safetensors" --method wanda --data "$SHARED/data/stories/test.txt" --samples 8 --ctx 64 --device cuda
  python3 - "$T/cpu.safetensors" "$T/gpu.safetensors" <<'EOF'
import json, struct, sys
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == b.keys()
diff = sum(1 for k in a if a[k] != b[k])
print("tensors differing:", diff)
assert diff == 0
EOF
  layer-merge -q -m "$MODELS/stories260K" --laco -C 2 -T 0.5 --data "$SHARED/data/stories/test.txt" -o "$T/lc.safetensors" > "$T/lcpu"
  layer-merge -q -m "$MODELS/stories260K" --laco -C 2 -T 0.5 --data "$SHARED/data/stories/test.txt" -o "$T/lg.safetensors" --device cuda > "$T/lgpu"
  python3 - "$T/lcpu" "$T/lgpu" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1]) if '"try"' in l]
b = [json.loads(l) for l in open(sys.argv[2]) if '"try"' in l]
assert len(a) == len(b) > 0
for x, y in zip(a, b):
    assert x["accepted"] == y["accepted"] and x["layers"] == y["layers"], (x, y)
    assert abs(x["similarity"] - y["similarity"]) < 1e-4, (x, y)
print(len(a), "attempts equal")
EOF
}

@test "cuda: NaN weights are an error naming the layer (f32 and bf16), or the lm_head, as on the cpu" {
  need_shared; need_gpu
  T=$(scratch)
  M=$MODELS/stories260K
  python3 "$BATS_TEST_DIRNAME/safety/poison.py" "$M" "$T/nan" nan model.layers.3.mlp.down_proj.weight
  python3 "$BATS_TEST_DIRNAME/safety/poison.py" "$MODELS/gemma3-tiny" "$T/gnan" nan model.layers.1.self_attn.o_proj.weight
  python3 "$BATS_TEST_DIRNAME/safety/poison.py" "$M" "$T/hnan" nan model.embed_tokens.weight
  head -c 20000 "$SHARED/data/stories/train.txt" > "$T/d.txt"
  echo '{"query":"Once upon a","choices":[" time"," dog"],"gold":0}' > "$T/task.jsonl"
  one() { # PATTERN CMD...: exit 1 and one line holding PATTERN
    local pat=$1; shift
    run "$@"
    [ "$status" -eq 1 ] || { echo "exit $status (want 1): $*"; echo "$output"; return 1; }
    [ "${#lines[@]}" -eq 1 ] || { echo "want one line: $*"; echo "$output"; return 1; }
    [[ "$output" == *"$pat"* ]] || { echo "want '$pat': $output"; return 1; }
  }
  for g in f32 bf16; do
    one "first appear in layer 3" ppl -q -m "$T/nan" --ctx 64 --device cuda --gemm $g "$T/d.txt"
    one "first appear in layer 1" ppl -q -m "$T/gnan" --ctx 64 --device cuda --gemm $g "$T/d.txt"
    one "the lm_head (model.embed_tokens.weight) is not" ppl -q -m "$T/hnan" --ctx 64 --device cuda --gemm $g "$T/d.txt"
  done
  one "first appear in layer 3" lm-eval -q -m "$T/nan" --task-file "$T/task.jsonl" --device cuda
  one "first appear in layer 3" lm-gen -q -m "$T/nan" -p "Once" -n 3 --device cuda
  one "first appear in layer 3" layer-score -q -m "$T/nan" --data "$T/d.txt" --samples 2 --ctx 32 --device cuda
}

# ---- training on the GPU (heal-sft, kd-train --device cuda) ----

# random pre-tokenized sequences for a model with vocab V: N lines of L ids (seeded)
rand_ids() { python3 -c "
import json, random
r = random.Random($4)
for _ in range($2): print(json.dumps({'ids': [r.randrange($1) for _ in range($3)]}))"; }

# the step lines of two training runs agree: every "loss" and "grad_norm" (and the extra keys
# given) within a relative bound; prints the worst
steps_close() { # a b tol [key...]
  python3 - "$@" <<'PY'
import json, sys
a, b, tol, keys = sys.argv[1], sys.argv[2], float(sys.argv[3]), ["loss", "grad_norm"] + sys.argv[4:]
def steps(p):
    return [json.loads(l) for l in open(p) if '"grad_norm"' in l]
A, B = steps(a), steps(b)
assert len(A) == len(B) and A, (len(A), len(B))
worst = 0
for x, y in zip(A, B):
    for k in keys:
        r = abs(x[k] - y[k]) / max(abs(x[k]), 1e-12)
        worst = max(worst, r)
        assert r <= tol, (x["step"], k, x[k], y[k], r)
print(f"{len(A)} steps, worst rel. difference {worst:.2e}")
PY
}

@test "cuda: heal-sft --gemm f32 on the GPU: every step's loss and grad norm equal the cpu's within 1e-4 (3 families; grad-accum 2, recompute)" {
  need_shared; need_gpu
  T=$(scratch)
  rand_ids 32000 16 65 5 > "$T/d.jsonl"
  for m in llama-tiny qwen3-tiny gemma3-tiny; do
    common=(-q -m "$MODELS/$m" --data "$T/d.jsonl" --steps 4 --batch 2 --grad-accum 2 --seq-len 64
            --lr 1e-3 --warmup 1 --seed 2)
    heal-sft "${common[@]}" -o "$T/cpu-$m" > "$T/cpu-$m.jsonl"
    heal-sft "${common[@]}" -o "$T/gpu-$m" --device cuda --gemm f32 > "$T/gpu-$m.jsonl"
    heal-sft "${common[@]}" -o "$T/gpr-$m" --device cuda --gemm f32 --recompute > "$T/gpr-$m.jsonl"
    echo "$m: $(steps_close "$T/cpu-$m.jsonl" "$T/gpu-$m.jsonl" 1e-4)"
    echo "$m recompute: $(steps_close "$T/gpu-$m.jsonl" "$T/gpr-$m.jsonl" 1e-5)"
    grep -q '"gpu_peak_mb"' "$T/gpu-$m.jsonl"
    # the written models give the same per-token NLL
    ppl -q -m "$T/cpu-$m" --per-token --ctx 64 --max-tokens 600 "$SHARED/data/prose/test.txt" > "$T/p-cpu"
    ppl -q -m "$T/gpu-$m" --per-token --ctx 64 --max-tokens 600 "$SHARED/data/prose/test.txt" > "$T/p-gpu"
    read mx mean < <(max_dnll "$T/p-cpu" "$T/p-gpu")
    echo "$m written model: max |dNLL| $mx mean $mean"
    python3 -c "import sys; sys.exit(0 if $mean < 1e-3 else 1)"
  done
}

@test "cuda: heal-sft LoRA (dropout, merge) on the GPU: losses equal the cpu's within 1e-4; the adapter and the merge load in ppl" {
  need_shared; need_gpu
  T=$(scratch)
  rand_ids 32000 12 65 6 > "$T/d.jsonl"
  for m in qwen3-tiny gemma3-tiny; do
    common=(-q -m "$MODELS/$m" --data "$T/d.jsonl" --steps 3 --batch 2 --seq-len 64 --lr 1e-3
            --lora-rank 8 --lora-dropout 0.1 --seed 4)
    heal-sft "${common[@]}" -o "$T/cpu-$m" > "$T/cpu-$m.jsonl"
    heal-sft "${common[@]}" -o "$T/gpu-$m" --device cuda --gemm f32 > "$T/gpu-$m.jsonl"
    echo "$m: $(steps_close "$T/cpu-$m.jsonl" "$T/gpu-$m.jsonl" 1e-4)"
    [ -f "$T/gpu-$m/adapter_model.safetensors" ]
    heal-sft "${common[@]}" -o "$T/gpm-$m" --device cuda --gemm f32 --merge-lora > /dev/null
    for o in cpu gpu gpm; do
      ppl -q -m "$T/$o-$m" --ctx 64 --max-tokens 600 "$SHARED/data/prose/test.txt" | tail -1 > "$T/p-$o"
    done
    # the GPU's adapter is the cpu's (1e-4); the merge is stored in the base's dtype, so it is
    # the adapter's model to that rounding (mean NLL within 0.01 nats)
    python3 - "$T/p-cpu" "$T/p-gpu" "$T/p-gpm" <<'PY'
import json, math, sys
c, g, m = (json.loads(open(p).read())["ppl"] for p in sys.argv[1:])
print("ppl: cpu adapter", c, "gpu adapter", g, "gpu merged", m)
assert abs(c - g) <= 1e-4 * c and abs(math.log(m / g)) < 0.01
PY
  done
}

@test "cuda: heal-sft on the GPU resumes bit-for-bit (full bf16, LoRA); a cpu resume of a GPU checkpoint is refused" {
  need_shared; need_gpu
  T=$(scratch)
  rand_ids 32000 16 65 7 > "$T/d.jsonl"
  for mode in full lora; do
    extra=(); [ $mode = lora ] && extra=(--lora-rank 4 --lora-dropout 0.1)
    common=(-q -m "$MODELS/gemma3-tiny" --data "$T/d.jsonl" --steps 6 --batch 2 --grad-accum 2
            --seq-len 64 --lr 1e-3 --device cuda "${extra[@]}")
    heal-sft "${common[@]}" -o "$T/a-$mode" | grep '"loss"' | cut -d, -f1-3 > "$T/a.txt"
    heal-sft "${common[@]}" -o "$T/b-$mode" --save-every 3 --ckpt-dir "$T/ck-$mode" | grep '"loss"' | cut -d, -f1-3 | head -3 > "$T/b.txt"
    heal-sft "${common[@]}" -o "$T/c-$mode" --resume "$T/ck-$mode/step-3" | grep '"loss"' | cut -d, -f1-3 >> "$T/b.txt"
    diff "$T/a.txt" "$T/b.txt"
  done
  cmp "$T/a-full/model.safetensors" "$T/c-full/model.safetensors"
  cmp "$T/a-lora/adapter_model.safetensors" "$T/c-lora/adapter_model.safetensors"
  run heal-sft -q -m "$MODELS/gemma3-tiny" --data "$T/d.jsonl" --steps 6 --batch 2 --grad-accum 2 \
    --seq-len 64 --lr 1e-3 -o "$T/d-full" --resume "$T/ck-full/step-3"
  assert_failure 2
  assert_output --partial 'device "cpu" (checkpoint: "cuda")'
}

@test "cuda: heal-sft --gemm bf16 follows the f32 loss curve within bf16 noise (10 steps, 2%); zeros stay zero" {
  need_shared; need_gpu
  T=$(scratch)
  rand_ids 32000 40 129 8 > "$T/d.jsonl"
  common=(-q -m "$MODELS/qwen3-tiny" --data "$T/d.jsonl" --steps 10 --batch 4 --seq-len 128 --lr 1e-3 --device cuda)
  heal-sft "${common[@]}" --gemm f32 -o "$T/f32" > "$T/f32.jsonl"
  heal-sft "${common[@]}" --gemm bf16 -o "$T/bf16" > "$T/bf16.jsonl"
  steps_close "$T/f32.jsonl" "$T/bf16.jsonl" 2e-2 || { python3 -c "
import json
for p in ('$T/f32.jsonl', '$T/bf16.jsonl'): print([round(json.loads(l)['loss'], 4) for l in open(p) if 'grad_norm' in l])"; false; }
  # a pruned model stays pruned on the GPU (AdamW holds exact zeros at zero)
  wmask -q -m "$MODELS/qwen3-tiny" --method magnitude --sparsity 0.5 -o "$T/sparse" > /dev/null
  heal-sft "${common[@]}" -m "$T/sparse" --steps 3 -o "$T/healed" > /dev/null
  python3 - "$T/sparse" "$T/healed" <<'PY'
import json, struct, sys
def zeros(p):
    b = open(p + '/model.safetensors', 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); z = {}
    for k, v in h.items():
        if k == '__metadata__' or 'layers' not in k or len(v['shape']) != 2: continue
        a, e = v['data_offsets']; raw = b[8 + n + a:8 + n + e]
        w = 2 if v['dtype'] in ('BF16', 'F16') else 4
        z[k] = {i for i in range(0, len(raw), w) if raw[i:i + w] == bytes(w)}
    return z
a, b = zeros(sys.argv[1]), zeros(sys.argv[2])
assert a and all(a[k] <= b[k] for k in a), "a pruned weight regrew"
print(sum(len(v) for v in a.values()), "zeros kept")
PY
}

@test "cuda: kd-train --gemm f32 on the GPU equals the cpu's: on the fly (every term) and from a top-k cache written on the GPU" {
  need_shared; need_gpu
  T=$(scratch)
  STU=$MODELS/llama-tiny-student TEA=$MODELS/llama-tiny
  head -c 2500 "$SHARED/data/stories/train.txt" > "$T/d.txt"
  O=(-q --data "$T/d.txt" --seq-len 48 --batch 2 --grad-accum 2 --steps 3 --temperature 2 --lr 1e-3)
  kd-train -m "$STU" --teacher "$TEA" "${O[@]}" --loss ce:0.2,fkl:0.2,skl:0.2,jsd:0.2,tvd:0.2 -o "$T/cpu" > "$T/cpu.jsonl"
  kd-train -m "$STU" --teacher "$TEA" "${O[@]}" --loss ce:0.2,fkl:0.2,skl:0.2,jsd:0.2,tvd:0.2 -o "$T/gpu" --device cuda --gemm f32 > "$T/gpu.jsonl"
  steps_close "$T/cpu.jsonl" "$T/gpu.jsonl" 1e-4 ce fkl skl jsd tvd
  # the cache: written by the GPU's teacher, equal to the cpu's top-k; training from it on the GPU
  kd-train --teacher "$TEA" "${O[@]}" --save-teacher "$T/c-cpu" --top-k 16 -m "$STU" > /dev/null
  kd-train --teacher "$TEA" "${O[@]}" --save-teacher "$T/c-gpu" --top-k 16 -m "$STU" --device cuda --gemm f32 > /dev/null
  kd-train -m "$STU" --teacher-cache "$T/c-cpu" "${O[@]}" -o "$T/cc" > "$T/cc.jsonl"
  kd-train -m "$STU" --teacher-cache "$T/c-gpu" "${O[@]}" -o "$T/cg" --device cuda --gemm f32 > "$T/cg.jsonl"
  steps_close "$T/cc.jsonl" "$T/cg.jsonl" 1e-4 ce skl
}
