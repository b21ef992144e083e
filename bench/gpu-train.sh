#!/usr/bin/env bash
# bench/gpu-train.sh — training on one GPU (run it on the GPU machine after a build with CUDA):
# lop heal-sft / kd-train --device cuda against PyTorch + transformers as users train today (AMP
# bf16 over float32 masters, fused AdamW, clip 1.0, sdpa; PEFT for LoRA; bench/gpu_train_hf.py), on
# the same random-weight models of the real configs (bench/gen-model.py), the same pre-tokenized
# data and batch (8 x 512 tokens):
#   full fine-tuning of gemma-3-270m and Qwen3-0.6B; LoRA r16 on the depth card's shape (Gemma-3-4B
#   text config, layers 0-7 and 25-33 kept); kd-train of a gemma-3-270m student (layers 10-13
#   dropped) from its teacher (0.5 ce + 0.5 skl).
# Also lop's kernels alone: the backend ops of one full fine-tuning step at the same shapes
# (bench/gpu_train_ops.c; random values, not a trainer), with LOP_CUDA_PROFILE's breakdown.
# Figures: tokens/s, TFLOP/s (lop's tr_step_flops: 6 x matrix params + attention; LoRA 4 x) and
# that as a fraction of the bf16 matmul rate torch measures in the same run (8192^3), peak GPU
# memory, for both (lop's TFLOP/s counts the same FLOPs per token as PyTorch's row). JSON lines,
# then a table last. lop's tokens/s is the mean over the timed steps (after WARM warm-up steps)
# of heal-sft's / kd-train's own per-step figures, as PyTorch's.
# Env: LOP_BENCH_OUT (default bench/out/gpu-train), LOP_SHARED, LOP_GPU_TRAIN_STEPS (timed steps,
#      default 10, after 3 warm-up steps), LOP_GPU_TRAIN_JOBS (default "full lora kd"),
#      LOP_GPU_TRAIN_TORCH=0 (lop only), LOP_GPU_TRAIN_OPS=0 (not the kernels alone),
#      LOP_GPU_TRAIN_VARIANTS (';'-separated environment settings: each lop job again under each).
set -u
cd "$(dirname "$0")/.."
if ! nvidia-smi -L > /dev/null 2>&1 || [ ! -f build/liblop_cuda.so ]; then
  echo "skip: $0 needs a GPU and a build with CUDA (build/liblop_cuda.so)"; exit 0
fi
OUT=${LOP_BENCH_OUT:-$PWD/bench/out/gpu-train}
SHARED=${LOP_SHARED:-$PWD/../shared}
STEPS=${LOP_GPU_TRAIN_STEPS:-10}
JOBS=${LOP_GPU_TRAIN_JOBS:-full lora kd}
B=8 T=512 WARM=3
PY=python3
has() { case " $JOBS " in *" $1 "*) return 0;; esac; return 1; }
mkdir -p "$OUT/models"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
peak=$($PY bench/gpu_hf.py matmul | $PY -c 'import json,sys; print(json.load(sys.stdin)["tflops"])')
echo "{\"bench\":\"bf16_matmul_peak\",\"tflops\":$peak}"
# (WARM + STEPS) x B sequences of T + 1 random ids below both vocabularies
$PY -c "
import json, random
r = random.Random(1)
for _ in range(($WARM + $STEPS) * $B): print(json.dumps({'ids': [r.randrange(2, 151936) for _ in range($T + 1)]}))" > "$OUT/data.jsonl"
# does lop's trainer run on the GPU yet?
lop_gpu=0
bin/heal-sft --help 2>/dev/null | grep -q -- '--device' && lop_gpu=1
echo "{\"bench\":\"gpu_train\",\"lop_trainer_on_gpu\":$lop_gpu}"
: > "$OUT/lop.jsonl"
lop_run1() { # tag env tool args...
  local tag=$1 ev=$2 tool=$3; shift 3
  local f; f=$(printf '%s' "$tag" | tr -c 'A-Za-z0-9._-' '_')   # file names without spaces
  local o=$OUT/lop-$f
  rm -rf "$o" "$o.ckpt"
  if env $ev bin/$tool -q "$@" --data "$OUT/data.jsonl" -o "$o" --steps $((WARM + STEPS)) --seq-len $T --batch $B \
       --no-shuffle --device cuda --gemm bf16 > "$OUT/lop-$f.steps" 2> "$OUT/lop-$f.err"; then
    $PY - "$tag" "$OUT/lop-$f.steps" "$WARM" <<'PY' | tee -a "$OUT/lop.jsonl"
import json, sys
tag, path, warm = sys.argv[1], sys.argv[2], int(sys.argv[3])
L = [json.loads(l) for l in open(path)]
steps = [l for l in L if "grad_norm" in l]
t = steps[warm:] or steps
tps = sum(s["tokens"] for s in t) / sum(s["tokens"] / s["tokens_per_s"] for s in t)
# kd-train: the teacher's device memory beside the student's
mb = (L[-1].get("gpu_peak_mb") or 0) + (steps[-1].get("teacher_gpu_peak_mb") or 0 if steps else 0)
print(json.dumps({"bench": "lop_train", "tag": tag, "tokens_per_s": round(tps, 1),
                  "gpu_peak_mb": mb, "losses": [round(s["loss"], 5) for s in steps]}))
PY
  else
    echo "{\"bench\":\"lop_train\",\"tag\":\"$tag\",\"error\":$(tail -1 "$OUT/lop-$f.err" | $PY -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))')}" | tee -a "$OUT/lop.jsonl"
  fi
  rm -rf "$o" "$o.ckpt"
}
# each job as it ships, then once under each of LOP_GPU_TRAIN_VARIANTS (';'-separated environment
# settings, e.g. "LOP_CUDA_ATTN_BWD=mma"), tagged "job [setting]": alternatives timed in one run
lop_run() { # tag tool args...
  local tag=$1 var; shift
  lop_run1 "$tag" "" "$@"
  IFS=';' read -ra vars <<< "${LOP_GPU_TRAIN_VARIANTS:-}"
  for var in "${vars[@]}"; do [ -n "$var" ] && lop_run1 "$tag [$var]" "$var" "$@"; done
}
# lop's kernels: the ops of one full fine-tuning step at the same shapes, bf16 GEMMs, float32
# masters (bench/gpu_train_ops.c; head chunks of 32 MB of logits as train_step.c, and 512 MB)
: > "$OUT/ops.jsonl"
if has full && [ "${LOP_GPU_TRAIN_OPS:-1}" = 1 ] && [ -f build/libcommon.a ] && [ -f build/liblop_cuda.so ] &&
   ${CC:-cc} ${CFLAGS:-} -std=c11 -D_GNU_SOURCE -O2 -Ilibcommon bench/gpu_train_ops.c build/libcommon.a ${LDFLAGS:-} \
     -lcjson -lopenblas -lzstd -lpcre2-8 -lutf8proc -lm -lpthread -ldl -fopenmp -o build/gpu_train_ops; then
  for name in gemma-3-270m qwen3-0.6b; do
    for mb in 32 512; do timeout 120 build/gpu_train_ops $name $mb 4 | tee -a "$OUT/ops.jsonl"; done
    LOP_CUDA_PROFILE=1 timeout 60 build/gpu_train_ops $name 512 3 2>&1 >/dev/null | sed "s/^/  [$name ops, 4 steps] /"
  done
fi
hf_jobs=()
for name in gemma-3-270m qwen3-0.6b; do
  spec=cfg:$name
  if [ $lop_gpu = 1 ]; then
    dir=$OUT/models/$name
    [ -f "$dir/model.safetensors" ] || LOP_SHARED=$SHARED $PY bench/gen-model.py --torch-device cuda "$name" "$dir" > /dev/null && spec=$dir
    has full && lop_run "full-$name" heal-sft -m "$dir" --lr 1e-5 --schedule constant
  fi
  has full && hf_jobs+=("full:$spec")
  [ $name = gemma-3-270m ] && has kd && hf_jobs+=("kd:$spec:10-13")
  if [ $lop_gpu = 1 ] && [ $name = gemma-3-270m ] && has kd; then
    bin/layer-drop -q -m "$dir" --drop 10-13 -o "$OUT/models/$name-14l" -f > /dev/null 2>&1 &&
      lop_run "kd-$name" kd-train -m "$OUT/models/$name-14l" --teacher "$dir" --lr 1e-5 --schedule constant
  fi
done
if has lora; then
  spec="cfg:gemma-3-4b:0-7,25-33"
  if [ $lop_gpu = 1 ]; then
    M4=$OUT/models/gemma-3-4b P4=$OUT/models/gemma-3-4b-17l
    [ -f "$P4/config.json" ] || { LOP_SHARED=$SHARED $PY bench/gen-model.py --torch-device cuda gemma-3-4b "$M4" > /dev/null &&
      bin/layer-drop -q -m "$M4" --keep 0-7,25-33 -o "$P4" > /dev/null && rm -rf "$M4"; }
    [ -f "$P4/config.json" ] && spec=$P4 && lop_run "lora-gemma-3-4b-17l" heal-sft -m "$P4" --lora-rank 16 --lr 1e-4 --schedule constant
  fi
  hf_jobs+=("lora:$spec:16")
fi
: > "$OUT/hf.jsonl"
if [ "${LOP_GPU_TRAIN_TORCH:-1}" = 1 ]; then
  $PY bench/gpu_train_hf.py "${hf_jobs[@]}" --data "$OUT/data.jsonl" --batch $B --seq $T --steps "$STEPS" \
    --warmup $WARM 2> "$OUT/hf.err" | tee "$OUT/hf.jsonl"
  [ -s "$OUT/hf.jsonl" ] || tail -5 "$OUT/hf.err"
fi
$PY - "$OUT" "$peak" "$lop_gpu" <<'PY'
import json, sys
out, peak, lop_gpu = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
def lines(p):
    try: return [json.loads(l) for l in open(p) if l.strip()]
    except OSError: return []
hf, lop = lines(out + "/hf.jsonl"), {r["tag"]: r for r in lines(out + "/lop.jsonl")}
def tag(r):
    m = r.get("model", "").rstrip("/").split("/")[-1].replace("cfg:", "")
    m = {"gemma-3-4b:0-7,25-33": "gemma-3-4b-17l"}.get(m, m)
    if r["job"] == "kd": m = m.split(":")[0]   # the teacher's name, as lop's tag has it
    return f"{r['job']}-{m}"
print(f"\nGPU training, batch 8 x 512 tokens (bf16 matmul peak {peak} TFLOP/s measured by torch)")
print(f"{'job':28} {'torch tok/s':>12} {'TFLOP/s':>8} {'of peak':>8} {'torch MB':>9} {'lop tok/s':>10} {'x':>6} {'TFLOP/s':>8} {'of peak':>8} {'lop MB':>8}")
for r in hf:
    if "error" in r:
        print(f"{r['job']:28} error: {r['error'][:90]}")
        continue
    t = tag(r)
    l = lop.get(t, {})
    lt = l.get("tokens_per_s")
    lf = r["tflops"] * lt / r["tokens_per_s"] if lt else 0
    ls = f"{lt:>10,.0f} {lt / r['tokens_per_s']:>6.2f} {lf:>8.1f} {lf / peak:>8.1%} {l.get('gpu_peak_mb') or 0:>8}" if lt else \
         f"{'(not wired)' if not lop_gpu else 'failed':>10}"
    print(f"{t:28} {r['tokens_per_s']:>12,.0f} {r['tflops']:>8.1f} {r['tflops'] / peak:>8.1%} {r['peak_gpu_mb']:>9} {ls}")
    for vt, v in lop.items():   # the same job under LOP_GPU_TRAIN_VARIANTS
        if vt.startswith(t + " [") and v.get("tokens_per_s"):
            vf = r["tflops"] * v["tokens_per_s"] / r["tokens_per_s"]
            print(f"{'  ' + vt[len(t) + 1:]:28} {'':>12} {'':>8} {'':>8} {'':>9} {v['tokens_per_s']:>10,.0f} "
                  f"{v['tokens_per_s'] / r['tokens_per_s']:>6.2f} {vf:>8.1f} {vf / peak:>8.1%} {v.get('gpu_peak_mb') or 0:>8}")
    # the same model, data, learning rate and optimizer: the loss curves agree to bf16 noise
    if l.get("losses") and r.get("losses"):
        d = [abs(a - b) for a, b in zip(l["losses"], r["losses"])]
        if d:
            print(f"{'':28} loss curves ({len(d)} steps): max |lop - torch| {max(d):.2e}, "
                  f"lop {l['losses'][0]:.4f} -> {l['losses'][len(d) - 1]:.4f}, torch {r['losses'][0]:.4f} -> {r['losses'][len(d) - 1]:.4f}")
ops = lines(out + "/ops.jsonl")
hfm = {tag(r): r for r in hf if "error" not in r}
for o in ops:
    if "error" in o:
        print(f"lop kernels: {o['error']}")
        continue
    ref = hfm.get("full-" + o["model"], {}).get("tokens_per_s")
    x = f"{o['tokens_per_s'] / ref:>6.2f}" if ref else ""
    print(f"lop kernels full-{o['model']:17} head chunk {o['head_chunk_rows']:>4} rows: {o['tokens_per_s']:>10,.0f} tok/s "
          f"{o['tflops']:>6.1f} TFLOP/s ({o['tflops'] / peak:.1%}) step {o['step_ms']:.1f} ms, {o['gpu_peak_mb']} MB; x torch {x}")
for t, l in lop.items():
    if "error" in l:
        print(f"lop {t}: {l['error'][:150]}")
PY
