#!/usr/bin/env bash
# wmask benchmarks:
#  1. magnitude 50% per row on a Qwen3-0.6B-shaped BF16 model (1.19 GB): MB/s of model read and
#     written, peak RSS (streaming: bounded by the largest tensor, the 311 MB embedding... which
#     is not a target: the largest target is 6 MB).
#  2. Wanda and SparseGPT 50% per row on the gemma-3-270m and Qwen3-0.6B shapes with SAMPLES
#     sequences x CTX tokens of calibration text (default 128 x 512): total time, its split
#     (forward passes, Hessian accumulation, selection / OBS), peak RSS.
#  3. What Llama-3-8B would need with sparsegpt at 128 x 512: memory by its parts and time from
#     the flop counts, at the rates measured on the Qwen3-0.6B shape in step 2 (computed, not run).
# Random weights of the real shapes (bench/wmask-gen-model.py); outputs in bench/out/.
# env: SAMPLES, CTX (a loaded machine can run fewer: the JSON says how many tokens were used);
#      SHAPES ("gemma-3-270m qwen3-0.6b"); ESTIMATE_ONLY=1: only step 3, from the runs in
#      $OUT/wmask-calib.jsonl (the Qwen3-0.6B rates, else gemma-3-270m's).
set -u
cd "$(dirname "$0")/.."
OUT=${LOP_BENCH_OUT:-$PWD/bench/out}
SHARED=${LOP_SHARED:-$PWD/../shared}
mkdir -p "$OUT"
BIN=$PWD/bin
[ -x "$BIN/wmask" ] || { echo "wmask: build first (make all)" >&2; exit 1; }
gen() { [ -f "$OUT/$1/model.safetensors" ] || python3 bench/wmask-gen-model.py "$1" "$OUT/$1" "$SHARED" >/dev/null; }
rss_of() { awk -F': ' '/Maximum resident/{printf "%.0f", $2/1024}' "$1"; }

SAMPLES=${SAMPLES:-128} CTX=${CTX:-512}
if [ -z "${ESTIMATE_ONLY:-}" ]; then
gen qwen3-0.6b
M=$OUT/qwen3-0.6b/model.safetensors
bytes=$(stat -c %s "$M")
cat "$M" > /dev/null # warm the page cache: measure wmask, not the disk
rm -f "$OUT/q06-pruned.safetensors"
t0=$(date +%s.%N)
/usr/bin/time -v "$BIN/wmask" -q -m "$M" -o "$OUT/q06-pruned.safetensors" --sparsity 0.5 \
    > "$OUT/wmask-mag.jsonl" 2> "$OUT/wmask-mag.time"
t1=$(date +%s.%N)
secs=$(echo "$t1 - $t0" | bc -l)
rss=$(rss_of "$OUT/wmask-mag.time")
tail -1 "$OUT/wmask-mag.jsonl"
printf '{"bench":"wmask-magnitude","model":"qwen3-0.6b-shape","bytes":%d,"seconds":%.2f,"mb_per_s":%.1f,"peak_rss_mb":%s}\n' \
    "$bytes" "$secs" "$(echo "$bytes / 1048576 / $secs" | bc -l)" "$rss"
# reference point: a plain copy of the same bytes
t0=$(date +%s.%N); cp "$M" "$OUT/q06-copy.safetensors"; t1=$(date +%s.%N)
printf '{"bench":"wmask-magnitude","reference":"cp","mb_per_s":%.1f}\n' \
    "$(echo "$bytes / 1048576 / ($t1 - $t0)" | bc -l)"
rm -f "$OUT/q06-copy.safetensors" "$OUT/q06-pruned.safetensors"

DATA=$SHARED/data/corpus/war_and_peace_pg2600.txt
calib_bench() { # shape method
  local o=$OUT/$1-$2
  rm -rf "$o"
  /usr/bin/time -v "$BIN/wmask" -q -m "$OUT/$1" -o "$o" --method "$2" --data "$DATA" \
      --samples "$SAMPLES" --ctx "$CTX" > "$OUT/wmask-$1-$2.jsonl" 2> "$OUT/wmask-$1-$2.time" || {
    echo "wmask $2 failed:" >&2; tail -3 "$OUT/wmask-$1-$2.time" >&2; exit 1; }
  tail -1 "$OUT/wmask-$1-$2.jsonl" | python3 -c "
import json,sys
s=json.loads(sys.stdin.read())
r={'bench':'wmask-$2','model':'$1-shape','tokens':$SAMPLES*$CTX,'seconds':round(s['seconds'],2),
   'forward_seconds':round(s['forward_seconds'],2),'select_seconds':round(s['select_seconds'],2)}
if 'hessian_seconds' in s: r['hessian_seconds']=round(s['hessian_seconds'],2)
r['peak_rss_mb']=round(s['peak_rss_mb'])
print(json.dumps(r))" | tee -a "$OUT/wmask-calib.jsonl"
  rm -rf "$o"
}
: > "$OUT/wmask-calib.jsonl"
for shape in ${SHAPES:-gemma-3-270m qwen3-0.6b}; do
  gen $shape
  for method in wanda sparsegpt; do calib_bench $shape $method; done
done
fi

# 3. Llama-3-8B (32 layers, hidden 4096, MLP 14336, 32 x 128 query / 8 x 128 kv heads, bf16),
#    sparsegpt at 128 x 512 tokens: memory by part, and time at the rates measured above.
python3 - "$OUT/wmask-calib.jsonl" "$SAMPLES" "$CTX" <<'PY'
import json, sys
runs = {(r["model"], r["bench"]): r for r in map(json.loads, open(sys.argv[1]))}
S, T = int(sys.argv[2]), int(sys.argv[3])

def shape(C, I, L, Hq, Hkv, D, V):
    return dict(C=C, I=I, L=L, q=Hq * D, kv=Hkv * D, V=V)

def flops(m, tokens, ctx):
    C, I, L, q, kv = m["C"], m["I"], m["L"], m["q"], m["kv"]
    lin = C * q + 2 * C * kv + q * C + 3 * C * I                 # a layer's target weights
    attn = 2 * 2 * q * ctx / 2                                    # scores + values, mean ctx/2
    fwd = 2 * L * tokens * (2 * lin + attn)                       # pass 1 and pass 3 of each layer
    ins = [C, q, C, I]                                            # distinct inputs: H per input
    hess = L * tokens * sum(n * n for n in ins)                   # syrk: tokens * n^2
    chol = L * sum(4.0 / 3.0 * n ** 3 for n in ins)               # potrf + potri + potrf
    mats = [(q, C), (kv, C), (kv, C), (C, q), (I, C), (I, C), (C, I)]
    obs = L * sum(r * c * c for r, c in mats)                     # trailing updates 2*r*c^2/2
    return dict(lin=lin, fwd=fwd, hess=hess, sel=chol + obs, mats=mats, ins=ins)

q06 = shape(1024, 3072, 28, 16, 8, 128, 151936)
g270 = shape(640, 2048, 18, 4, 1, 256, 262144)
l8 = shape(4096, 14336, 32, 32, 8, 128, 128256)
if ("qwen3-0.6b-shape", "wmask-sparsegpt") in runs:
    ref, r = "qwen3-0.6b", runs[("qwen3-0.6b-shape", "wmask-sparsegpt")]
    fq = flops(q06, r["tokens"], T)
else:
    ref, r = "gemma-3-270m", runs[("gemma-3-270m-shape", "wmask-sparsegpt")]
    fq = flops(g270, r["tokens"], T)
# forward_seconds includes the Hessian accumulation (it runs in the forward's hook)
rate = dict(fwd=fq["fwd"] / (r["forward_seconds"] - r["hessian_seconds"]),
            hess=fq["hess"] / max(r["hessian_seconds"], 1e-9),
            sel=fq["sel"] / max(r["select_seconds"], 1e-9))
tok = 128 * 512
f8 = flops(l8, tok, 512)
GB = 1e9
mem = {
    "model_file_mapped": (l8["L"] * f8["lin"] + l8["V"] * l8["C"] * 2 + l8["L"] * 2 * l8["C"]) * 2 / GB,
    "pruned_copies_bf16": l8["L"] * f8["lin"] * 2 / GB,
    "hessians_one_layer_f64": sum(n * n for n in f8["ins"]) * 8 / GB,
    "largest_matrix_f64_f32": max(a * b for a, b in f8["mats"]) * 12 / GB,
    "residual_f32": tok * l8["C"] * 4 / GB,
    "activations_batch8": 8 * 512 * (l8["q"] + 2 * l8["kv"] + 3 * l8["I"] + 4 * l8["C"]) * 4 / GB,
}
out = {"bench": "wmask-sparsegpt-estimate", "model": "Llama-3-8B", "tokens": tok,
       "memory_gb": {k: round(v, 2) for k, v in mem.items()}, "memory_total_gb": round(sum(mem.values()), 1),
       "tflop": {"forward": round(f8["fwd"] / 1e12, 1), "hessian": round(f8["hess"] / 1e12, 1),
                 "cholesky_obs": round(f8["sel"] / 1e12, 1)},
       "rates_measured_on": ref + "-shape, %d tokens" % r["tokens"],
       "rates_gflops": {k: round(v / 1e9, 1) for k, v in rate.items()},
       "hours_at_those_rates": round((f8["fwd"] / rate["fwd"] + f8["hess"] / rate["hess"] +
                                      f8["sel"] / rate["sel"]) / 3600, 2)}
print(json.dumps(out))
PY
