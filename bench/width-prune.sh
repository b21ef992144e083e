#!/usr/bin/env bash
# bench/width-prune.sh — width-prune time and peak RSS on the gemma-3-270m and Qwen3-0.6B shapes
# (bench/gen-model.py: random weights, real configs, bf16):
#   - weight-only (--importance maw, streaming): to a file and into a pipe, next to cat + sync /
#     cat | cat of the same file and to the PyTorch reference (bench/width_prune_torch.py: what an
#     OptiPFair user runs: every weight loaded as float32, scored, index_select, saved);
#   - activation (Minitron scores over SAMPLES x 512 calibration tokens, default 128 x 512), next to
#     one ppl forward (--ctx 512) over the same tokens: the forward is the floor of the cost.
# Prints one JSON line per case. SAMPLES=16 for a quick run (the per-token rate is what compares).
set -u
cd "$(dirname "$0")/.."
OUT=${LOP_BENCH_OUT:-$PWD/bench/out}
M=$OUT/models
SHARED=${LOP_SHARED:-$PWD/../shared}
SAMPLES=${SAMPLES:-128}
W=$OUT/width
mkdir -p "$M" "$W"
export PATH=$PWD/bin:$PATH
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE   # the tools pick their own kernels (blas_tune.h)
for name in qwen3-0.6b gemma-3-270m; do
  [ -f "$M/$name/model.safetensors" ] || /usr/bin/python3 bench/gen-model.py "$name" "$M/$name" >&2 || exit 1
done
data=$W/wiki.txt
head -c 1500000 "$SHARED/data/wikitext-2-raw/wiki.test.raw" > "$data"

# run CMD...: prints "seconds peak_rss_kb cpu_seconds" (cpu = user + sys: on a shared machine the
# wall time measures the load as much as the tool; the CPU time does not)
measure() { /usr/bin/time -f "%e %M %U %S" -o "$W/time.txt" "$@" > "$W/out.txt" 2> "$W/err.txt" || { cat "$W/err.txt" >&2; return 1; }; awk '{print $1, $2, $3 + $4}' "$W/time.txt"; }
row() {  # case seconds rss_kb cpu ref_name ref_seconds ref_cpu [extra json]
  python3 - "$@" <<'PY'
import json, sys
case, s, kb, cpu, ref, rs, rcpu = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], float(sys.argv[6]), float(sys.argv[7])
r = {"bench": "width-prune", "case": case, "seconds": s, "cpu_seconds": round(cpu, 2),
     "peak_rss_MB": round(kb / 1024, 1), "ref": ref, "ref_seconds": rs, "ref_cpu_seconds": round(rcpu, 2),
     "vs_ref": round(rs / max(s, 1e-9), 3), "vs_ref_cpu": round(rcpu / max(cpu, 1e-9), 3)}
if len(sys.argv) > 8:
    r.update(json.loads(sys.argv[8]))
print(json.dumps(r))
PY
}

for name in gemma-3-270m qwen3-0.6b; do
  Q=$M/$name
  src=$Q/model.safetensors
  I=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["intermediate_size"])' "$Q/config.json")
  C=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hidden_size"])' "$Q/config.json")
  keep=$((I * 3 / 4))
  cat "$src" > /dev/null
  read cs ck cc <<< "$(measure bash -c "cat '$src' > '$W/cat.out'; sync '$W/cat.out'")"
  rm -f "$W/cat.out"
  read s k c <<< "$(measure width-prune -q -m "$Q" --mlp-keep $keep --importance maw -o "$W/w.safetensors")"
  row "$name: maw --mlp-keep $keep (file)" "$s" "$k" "$c" "cat + sync" "$cs" "$cc"
  read ts tk tc <<< "$(measure /usr/bin/python3 bench/width_prune_torch.py "$Q" "$W/t.safetensors" --mlp-keep $keep --threads "$(nproc)")"
  row "$name: PyTorch MAW reference (file)" "$ts" "$tk" "$tc" "width-prune maw" "$s" "$c"
  read ps pk pc <<< "$(measure bash -c "cat '$src' | cat > /dev/null")"
  /usr/bin/time -f "%e %M %U %S" -o "$W/t1.txt" width-prune -q -m "$Q" --mlp-keep $keep --importance maw -o - 2>/dev/null | cat > /dev/null
  read s k c <<< "$(awk '{print $1, $2, $3 + $4}' "$W/t1.txt")"
  row "$name: maw -o - | cat (pipe)" "$s" "$k" "$c" "cat | cat" "$ps" "$pc"
  rm -f "$W/w.safetensors" "$W/t.safetensors"
  # activation scores: neurons, heads and channels at once
  /usr/bin/time -f "%e %M %U %S" -o "$W/time.txt" ppl -q -m "$Q" --ctx 512 --max-tokens $((SAMPLES * 511)) "$data" > "$W/ppl.json" 2>/dev/null
  read fs fk fc <<< "$(awk '{print $1, $2, $3 + $4}' "$W/time.txt")"
  read s k c <<< "$(measure width-prune -q -m "$Q" --mlp-keep $keep --head-percent 50 --hidden-keep $((C * 3 / 4)) \
                    --data "$data" --samples "$SAMPLES" --ctx 512 -o "$W/a.safetensors")"
  tok=$(tail -1 "$W/out.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["calib_tokens"])')
  row "$name: activation, $SAMPLES x 512 tokens (mlp, heads, channels)" "$s" "$k" "$c" "ppl forward, same tokens" "$fs" "$fc" \
      "{\"tokens\": $tok, \"tokens_per_s\": $(python3 -c "print(round($tok / $s, 1))"), \"ppl_peak_rss_MB\": $(python3 -c "print(round($fk / 1024, 1))")}"
  rm -f "$W/a.safetensors"
done
