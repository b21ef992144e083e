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
