#!/usr/bin/env bash
# wmask benchmarks:
#  1. magnitude 50% per row on a Qwen3-0.6B-shaped BF16 model (1.19 GB): MB/s of model read and
#     written, peak RSS (streaming: bounded by the largest tensor, the 311 MB embedding... which
#     is not a target: the largest target is 6 MB).
#  2. Wanda 50% per row on a gemma-3-270m-shaped model with 128 sequences x 512 tokens of
#     calibration text: total time, and its split between forward passes and selection.
# Random weights of the real shapes (bench/wmask-gen-model.py); outputs in bench/out/.
set -u
cd "$(dirname "$0")/.."
OUT=${LOP_BENCH_OUT:-$PWD/bench/out}
SHARED=${LOP_SHARED:-$PWD/../shared}
mkdir -p "$OUT"
BIN=$PWD/bin
[ -x "$BIN/wmask" ] || { echo "wmask: build first (make all)" >&2; exit 1; }
gen() { [ -f "$OUT/$1/model.safetensors" ] || python3 bench/wmask-gen-model.py "$1" "$OUT/$1" "$SHARED" >/dev/null; }
rss_of() { awk -F': ' '/Maximum resident/{printf "%.0f", $2/1024}' "$1"; }

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

gen gemma-3-270m
G=$OUT/gemma-3-270m
DATA=$SHARED/data/corpus/war_and_peace_pg2600.txt
rm -rf "$OUT/g270-wanda"
/usr/bin/time -v "$BIN/wmask" -q -m "$G" -o "$OUT/g270-wanda" --method wanda --data "$DATA" \
    --samples 128 --ctx 512 > "$OUT/wmask-wanda.jsonl" 2> "$OUT/wmask-wanda.time" || {
  echo "wmask wanda failed:" >&2; tail -3 "$OUT/wmask-wanda.time" >&2; exit 1; }
tail -1 "$OUT/wmask-wanda.jsonl" | python3 -c "
import json,sys
s=json.loads(sys.stdin.read())
print(json.dumps({'bench':'wmask-wanda','model':'gemma-3-270m-shape','tokens':128*512,
  'seconds':round(s['seconds'],2),'forward_seconds':round(s['forward_seconds'],2),
  'select_seconds':round(s['select_seconds'],2),
  'other_seconds':round(s['seconds']-s['forward_seconds']-s['select_seconds'],2),
  'peak_rss_mb':round(s['peak_rss_mb'])}))"
rm -rf "$OUT/g270-wanda"
