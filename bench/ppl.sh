#!/usr/bin/env bash
# ppl benchmark: random-weight models of the real gemma-3-270m and Qwen3-0.6B configs (bf16,
# bench/gen-model.py), WikiText-2 test text, ctx 512, 2 threads:
#   tokens/s of ppl, its FLOP rate against this machine's measured sgemm peak (OpenBLAS SkylakeX
#   kernels, all threads), peak RSS against the weight file, and the same shape through a plain
#   float32 PyTorch eager forward (bench/torch_ref.py); then ppl --gemm bf16 (AVX512-BF16 CPUs)
#   against the f32 run and the bf16 GEMM's own ceiling (bench/gemm_bf16.c --peak).
# Env: LOP_BENCH_TOKENS (scored tokens per model, default 4088 = 8 windows of 511 scored tokens; ppl forwards only the windows it scores), LOP_BENCH_OUT.
set -u
cd "$(dirname "$0")/.."
OUT=${LOP_BENCH_OUT:-$PWD/bench/out}
SHARED=${LOP_SHARED:-$PWD/../shared}
NTOK=${LOP_BENCH_TOKENS:-4088}
THREADS=2
mkdir -p "$OUT/models"
[ -x bin/ppl ] || { echo "ppl.sh: build first (make all)" >&2; exit 1; }
PY=/usr/bin/python3
TEXT=$SHARED/data/wikitext-2-raw/wiki.test.raw

# the machine's sgemm ceiling with all threads (SkylakeX kernels, as ppl uses on AVX-512)
gcc -O2 -o "$OUT/machine" bench/machine.c -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas
peak=$(OPENBLAS_CORETYPE=SkylakeX "$OUT/machine" | $PY -c 'import json,sys; print(json.load(sys.stdin)["sgemm_gflops"])')
echo "{\"bench\":\"sgemm_peak\",\"gflops\":$peak,\"threads\":$THREADS}"
# the bf16 GEMM's own ceiling (AVX512-BF16 CPUs only): ppl --gemm bf16's denominator
bf16peak=0
if grep -qw avx512_bf16 /proc/cpuinfo &&
   gcc -O2 -march=native -fopenmp -Ilibcommon -I/usr/include/x86_64-linux-gnu/openblas-pthread \
       -o "$OUT/gemm_bf16" bench/gemm_bf16.c build/libcommon.a -lopenblas -lm; then
  bf16peak=$(OMP_NUM_THREADS=$THREADS "$OUT/gemm_bf16" --peak | $PY -c 'import json,sys; print(json.load(sys.stdin)["gflops"])')
  echo "{\"bench\":\"bf16_gemm_peak\",\"gflops\":$bf16peak,\"threads\":$THREADS}"
fi

status=0
for name in gemma-3-270m qwen3-0.6b; do
  dir=$OUT/models/$name
  [ -f "$dir/model.safetensors" ] || $PY bench/gen-model.py "$name" "$dir" > /dev/null || { status=1; continue; }
  wbytes=$(stat -c %s "$dir/model.safetensors")
  lop=$(env -u OPENBLAS_CORETYPE bin/ppl -q -t $THREADS -m "$dir" --ctx 512 --max-tokens "$NTOK" "$TEXT") || { status=1; continue; }
  ref=$($PY bench/torch_ref.py "$dir" --ctx 512 --windows 4 --threads $THREADS 2>/dev/null || echo '{}')
  $PY - "$name" "$peak" "$wbytes" "$lop" "$ref" <<'PY'
import json, sys
name, peak, wbytes = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
lop, ref = json.loads(sys.argv[4]), json.loads(sys.argv[5])
r = {"bench": "ppl", "model": name, "ctx": 512, "threads": 2, "tokens": lop["tokens"],
     "tokens_per_s": round(lop["tokens_per_s"], 1), "gflop_per_s": round(lop["gflop_per_s"], 1),
     "of_sgemm_peak": round(lop["gflop_per_s"] / peak, 3), "peak_rss_mb": lop["peak_rss_mb"],
     "weights_mb": wbytes >> 20, "act_mb": lop.get("act_mb", 0),
     "rss_over_weights": round(lop["peak_rss_mb"] / (wbytes / 2**20), 3),
     # the issue's budget: peak RSS <= 1.25 x (weight files + activations)
     "rss_over_budget": round(lop["peak_rss_mb"] / (wbytes / 2**20 + lop.get("act_mb", 0)), 3)}
if "tokens_per_s" in ref:
    r["torch_tokens_per_s"] = round(ref["tokens_per_s"], 1)
    r["speedup_vs_torch"] = round(lop["tokens_per_s"] / ref["tokens_per_s"], 2)
print(json.dumps(r))
print(f"  {name}: {r['tokens_per_s']} tok/s, {r['gflop_per_s']} GFLOP/s = {100*r['of_sgemm_peak']:.0f}% of sgemm peak "
      f"{peak:.0f}; peak RSS {r['peak_rss_mb']} MB for {r['weights_mb']} MB of weights + {r['act_mb']} MB of activations "
      f"(x{r['rss_over_budget']}); "
      f"PyTorch eager {r.get('torch_tokens_per_s', '?')} tok/s (x{r.get('speedup_vs_torch', '?')})", file=sys.stderr)
PY
  # the same run with --gemm bf16 (activations rounded to bf16; see docs/bf16.md)
  [ "$bf16peak" != 0 ] || continue
  lopb=$(env -u OPENBLAS_CORETYPE bin/ppl -q -t $THREADS -m "$dir" --ctx 512 --max-tokens "$NTOK" --gemm bf16 "$TEXT") || { status=1; continue; }
  $PY - "$name" "$peak" "$bf16peak" "$lop" "$lopb" <<'PY'
import json, sys
name, peak, bpeak = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
f, b = json.loads(sys.argv[4]), json.loads(sys.argv[5])
r = {"bench": "ppl", "model": name, "gemm": b.get("gemm"), "ctx": 512, "threads": 2, "tokens": b["tokens"],
     "tokens_per_s": round(b["tokens_per_s"], 1), "gflop_per_s": round(b["gflop_per_s"], 1),
     "of_sgemm_peak": round(b["gflop_per_s"] / peak, 3), "of_bf16_peak": round(b["gflop_per_s"] / bpeak, 3),
     "speedup_vs_f32": round(b["tokens_per_s"] / f["tokens_per_s"], 2),
     "ppl_f32": round(f["ppl"], 4), "ppl_bf16": round(b["ppl"], 4)}
print(json.dumps(r))
print(f"  {name} --gemm bf16: {r['tokens_per_s']} tok/s (x{r['speedup_vs_f32']} of f32), {r['gflop_per_s']} GFLOP/s = "
      f"{100*r['of_sgemm_peak']:.0f}% of the sgemm peak {peak:.0f}, {100*r['of_bf16_peak']:.0f}% of the bf16 GEMM peak "
      f"{bpeak:.0f}; ppl {r['ppl_bf16']} vs {r['ppl_f32']} (f32)", file=sys.stderr)
PY
done
exit $status
