#!/usr/bin/env bash
# GPU forward benchmark (run it on a GPU machine, after a build with CUDA): lop's ppl --device cuda
# against PyTorch + transformers (that machine's python3) on the same random-weight models of the
# real gemma-3-270m, Qwen3-0.6B and Qwen3-4B configs (bench/gen-model.py, drawn on the GPU) and
# the same WikiText-2 text: ctx 512, batches of 16 x 512 tokens, bf16 and f32 (TF32 off).
# Reports scored tokens/s, lop's GFLOP/s as a fraction of the bf16 matmul rate measured in the same
# run (torch, 8192^3), peak GPU memory (lop: its own buffers; torch: max_memory_allocated), and
# lm-eval hellaswag items/s next to the same log-likelihood requests through transformers batched
# as the harness's HF backend batches them. JSON lines, then a table last.
# Env: LOP_BENCH_OUT (default bench/out/gpu), LOP_SHARED, LOP_GPU_MODELS (default all three),
#      LOP_GPU_BATCHES (timed batches per small model, default 16; the 4B runs half),
#      LOP_GPU_GEMMS (default "bf16 f32"),
#      LOP_GPU_AB: variants of the backend's settings timed on qwen3-0.6b bf16 before the table,
#      ';'-separated env assignments (LOP_CUDA_FUSE=0;LOP_CUDA_HEAD=8192,512,1;...) next to the
#      defaults; with LOP_GPU_AB_PICK=1 the fastest LOP_CUDA_HEAD variant (if > 1% ahead) is
#      exported for the rest of the run.
set -u
cd "$(dirname "$0")/.."
if ! nvidia-smi -L > /dev/null 2>&1 || [ ! -f build/liblop_cuda.so ]; then
  echo "skip: $0 needs a GPU and a build with CUDA (build/liblop_cuda.so)"; exit 0
fi
OUT=${LOP_BENCH_OUT:-$PWD/bench/out/gpu}
SHARED=${LOP_SHARED:-$PWD/../shared}
TEXT=$SHARED/data/wikitext-2-raw/wiki.test.raw
NB=${LOP_GPU_BATCHES:-16}
MODELS=${LOP_GPU_MODELS:-gemma-3-270m qwen3-0.6b qwen3-4b}
GEMMS=${LOP_GPU_GEMMS:-bf16 f32}
PY=python3
mkdir -p "$OUT/models"
[ -f build/liblop_cuda.so ] || { echo "gpu-forward.sh: build with CUDA first (make CUDA=1)" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
peak=$($PY bench/gpu_hf.py matmul | tee -a "$OUT/results.jsonl" | $PY -c 'import json,sys; print(json.load(sys.stdin)["tflops"])')
echo "{\"bench\":\"bf16_matmul_peak\",\"tflops\":$peak}"
: > "$OUT/table.jsonl"
for name in $MODELS; do
  dir=$OUT/models/$name
  [ -f "$dir/model.safetensors" ] || LOP_SHARED=$SHARED $PY bench/gen-model.py --torch-device cuda "$name" "$dir" > /dev/null || continue
  nb=$NB; [ "$name" = qwen3-4b ] && nb=$((NB / 2))
  nf=$((nb / 4 > 2 ? nb / 4 : 2))
  # where the time goes (ops synchronized one by one: a breakdown, not a rate)
  LOP_CUDA_PROFILE=1 bin/ppl -q -m "$dir" --ctx 512 --batch-tokens 8192 --max-tokens $((4 * 16 * 511)) \
    --device cuda --gemm bf16 "$TEXT" 2>&1 >/dev/null | sed "s/^/  [$name bf16] /"
  if [ "$name" = qwen3-0.6b ] && [ -n "${LOP_GPU_AB:-}" ]; then
    # the same run under each variant, and the defaults between them (noise shows as their spread)
    tps() { env "$@" bin/ppl -q -m "$dir" --ctx 512 --batch-tokens 8192 --max-tokens $((nb * 16 * 511)) \
              --device cuda --gemm bf16 "$TEXT" | tail -1 | $PY -c 'import json,sys; print(round(json.load(sys.stdin)["tokens_per_s"]))'; }
    base=$(tps LOP_AB=default); base=${base:-0}; bestf=$base; bestf_v=; besth=$base; besth_v=
    echo "{\"bench\":\"gpu_ab\",\"model\":\"$name\",\"env\":\"default\",\"tokens_per_s\":$base}" | tee -a "$OUT/table.jsonl"
    IFS=';' read -ra vs <<< "$LOP_GPU_AB"
    for v in "${vs[@]}"; do
      t=$(tps $v) || t=0; t=${t:-0}
      echo "{\"bench\":\"gpu_ab\",\"model\":\"$name\",\"env\":\"$v\",\"tokens_per_s\":$t}" | tee -a "$OUT/table.jsonl"
      case $v in
        LOP_CUDA_HEAD=*) [ "$t" -gt $((besth * 101 / 100)) ] && { besth=$t; besth_v=$v; } ;;
        LOP_CUDA_FUSE=*) [ "$t" -gt $((bestf * 101 / 100)) ] && { bestf=$t; bestf_v=$v; } ;;
      esac
    done
    t=$(tps LOP_AB=default)
    echo "{\"bench\":\"gpu_ab\",\"model\":\"$name\",\"env\":\"default (again)\",\"tokens_per_s\":${t:-0}}" | tee -a "$OUT/table.jsonl"
    if [ "${LOP_GPU_AB_PICK:-0}" = 1 ]; then # the fastest fusion mask and head shape, each > 1% ahead
      for pick in $bestf_v $besth_v; do
        export "${pick?}"
        echo "{\"bench\":\"gpu_ab_pick\",\"env\":\"$pick\"}" | tee -a "$OUT/table.jsonl"
      done
    fi
  fi
  for g in $GEMMS; do
    n=$nb; [ $g = f32 ] && n=$nf
    ntok=$((n * 16 * 511))
    lop=$(bin/ppl -q -m "$dir" --ctx 512 --batch-tokens 8192 --max-tokens $ntok --device cuda --gemm $g "$TEXT" | tail -1) || lop='{}'
    [ -n "$lop" ] || lop='{}'
    hf=$($PY bench/gpu_hf.py ppl "$dir" "$TEXT" --dtype $([ $g = f32 ] && echo fp32 || echo bf16) --batches $n 2>"$OUT/hf-$name-$g.err" | tail -1) || hf='{}'
    [ -n "$hf" ] || hf='{}'
    $PY - "$name" "$g" "$peak" "$lop" "$hf" <<'PY' | tee -a "$OUT/table.jsonl"
import json, sys
name, g, peak = sys.argv[1], sys.argv[2], float(sys.argv[3])
lop, hf = json.loads(sys.argv[4]), json.loads(sys.argv[5])
r = {"bench": "gpu_ppl", "model": name, "gemm": g, "ctx": 512, "batch": "16x512",
     "lop_tokens_per_s": round(lop.get("tokens_per_s", 0), 1), "lop_nll": lop.get("nll"),
     "lop_tflops": round(lop.get("gflop_per_s", 0) / 1e3, 1),
     "of_bf16_matmul_peak": round(lop.get("gflop_per_s", 0) / 1e3 / peak, 3),
     "lop_gpu_peak_mb": lop.get("gpu_peak_mb"), "lop_tokens": lop.get("tokens"),
     "hf_tokens_per_s": hf.get("tokens_per_s"), "hf_nll": hf.get("nll"), "hf_peak_gpu_mb": hf.get("peak_gpu_mb")}
if hf.get("tokens_per_s") and lop.get("tokens_per_s"):
    r["speedup"] = round(lop["tokens_per_s"] / hf["tokens_per_s"], 2)
print(json.dumps(r))
PY
  done
done
# lm-eval hellaswag: lop's items/s vs the same requests through transformers
lm=$OUT/models/qwen3-0.6b
if [ -f "$lm/model.safetensors" ] && [ -d "$SHARED/data/eval" ]; then
  bin/lm-eval -q -m "$lm" --data-dir "$SHARED/data/eval" --tasks hellaswag --limit 400 --device cuda --gemm bf16 --batch-tokens 16384 \
    --timing --log-samples "$OUT/hs.jsonl" > "$OUT/lm-eval.out" 2>&1
  lt=$(grep '"timing"' "$OUT/lm-eval.out" | tail -1)
  ht=$($PY bench/gpu_hf.py loglik "$lm" "$OUT/hs.jsonl" --dtype bf16 --batch 32 2>"$OUT/hf-loglik.err" | tail -1)
  $PY - "${lt:-{\}}" "${ht:-{\}}" <<'PY' | tee -a "$OUT/table.jsonl"
import json, sys
lt, ht = json.loads(sys.argv[1]), json.loads(sys.argv[2])
t = lt.get("timing", lt)
print(json.dumps({"bench": "gpu_lm_eval", "model": "qwen3-0.6b", "task": "hellaswag", "items": 400,
                  "lop": t, "hf": ht}))
PY
fi
$PY - "$OUT/table.jsonl" "$peak" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"\nGPU forward, ctx 512, batch 16x512 (bf16 matmul peak {sys.argv[2]} TFLOP/s)")
print(f"{'model':14} {'gemm':5} {'lop tok/s':>11} {'hf tok/s':>11} {'x':>6} {'TFLOP/s':>8} {'of peak':>8} {'lop MB':>8} {'hf MB':>8}")
for r in rows:
    if r["bench"] != "gpu_ppl":
        continue
    print(f"{r['model']:14} {r['gemm']:5} {r['lop_tokens_per_s']:>11,.0f} {r['hf_tokens_per_s'] or 0:>11,.0f} "
          f"{r.get('speedup', 0):>6.2f} {r['lop_tflops']:>8.1f} {r['of_bf16_matmul_peak']:>8.1%} "
          f"{r['lop_gpu_peak_mb'] or 0:>8} {r['hf_peak_gpu_mb'] or 0:>8}")
for r in rows:
    if r["bench"] == "gpu_ab":
        print(f"  A/B {r['model']} bf16 {r['env']:28} {r['tokens_per_s']:>11,}")
    if r["bench"] == "gpu_ab_pick":
        print(f"  picked {r['env']}")
for r in rows:
    if r["bench"] == "gpu_lm_eval":
        print("lm-eval hellaswag (qwen3-0.6b, 400 items): lop", r["lop"], " hf", r["hf"])
PY
