#!/usr/bin/env bash
# kd-train benchmarks on the gemma-3-270m shape (random weights from bench/gen-model.py; the
# student is the teacher with 6 of its 18 layers dropped, full fine-tuning):
#   1. steps/s (and tokens/s) with the teacher run on the fly every step;
#   2. writing the top-k cache (k = 128): teacher tokens/s and cache bytes per token;
#   3. steps/s training from the cache (the teacher is not loaded);
# peak RSS of each run from the tool's own report. Outputs in bench/out/.
set -u
cd "$(dirname "$0")/.."
OUT=${LOP_BENCH_OUT:-$PWD/bench/out}
SHARED=${LOP_SHARED:-$PWD/../shared}
BIN=$PWD/bin
STEPS=${KD_BENCH_STEPS:-3}
SEQ=${KD_BENCH_SEQ:-256}
mkdir -p "$OUT"
[ -x "$BIN/kd-train" ] || { echo "kd-train: build first (make all)" >&2; exit 1; }
T=$OUT/gemma-3-270m
[ -f "$T/model.safetensors" ] || /usr/bin/python3 bench/gen-model.py gemma-3-270m "$T" >/dev/null || exit 1
S=$OUT/gemma-3-270m-drop6
[ -f "$S/model.safetensors" ] || python3 tests/kd/drop_layer.py "$T" "$S" 3,5,7,9,11,13 || exit 1
DATA=$OUT/kd-data.txt
head -n 400 "$SHARED/data/stories/train.txt" > "$DATA"
O="--data $DATA --seq-len $SEQ --batch 1 --steps $STEPS --temperature 2 --loss ce:0.5,skl:0.5 -q"
rm -rf "$OUT/kd-live" "$OUT/kd-cached" "$OUT/kd.cache"

report() { # $1 label, $2 file with the tool's final JSON line
  python3 - "$1" "$2" "$STEPS" <<'PY'
import json, sys
label, path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = [json.loads(l) for l in open(path) if l.strip()]
fin = lines[-1]
step_s = [l for l in lines if "step" in l and "loss" in l]
# steady state: the steps after the first (which maps the weights and sizes the buffers)
toks = sum(l["tokens"] for l in step_s[1:]) or 1
tps = [l["tokens_per_s"] for l in step_s[1:]] or [fin.get("tokens_per_s", 0)]
secs = sum(l["tokens"] / l["tokens_per_s"] for l in step_s[1:] if l["tokens_per_s"] > 0)
out = {"bench": "kd-train", "mode": label, "model": "gemma-3-270m-shape", "seq_len": step_s[0]["tokens"] if step_s else None}
if step_s:
    out["steps_per_s"] = round((len(step_s) - 1) / secs, 4) if secs > 0 else None
    out["tokens_per_s"] = round(toks / secs, 1) if secs > 0 else None
out["peak_rss_mb"] = round(fin["peak_rss_bytes"] / 2**20)
print(json.dumps(out))
PY
}

"$BIN/kd-train" -m "$S" --teacher "$T" $O -o "$OUT/kd-live" > "$OUT/kd-live.jsonl" || exit 1
report teacher-on-the-fly "$OUT/kd-live.jsonl"
"$BIN/kd-train" -m "$S" --teacher "$T" $O --save-teacher "$OUT/kd.cache" --top-k 128 > "$OUT/kd-save.jsonl" || exit 1
python3 -c "
import json; o = json.loads(open('$OUT/kd-save.jsonl').readline())
print(json.dumps({'bench': 'kd-train', 'mode': 'save-teacher', 'k': o['k'], 'positions': o['positions'],
  'cache_bytes_per_token': round(o['bytes_per_token'], 1), 'raw_bytes_per_token': o['k'] * 8 + 4,
  'teacher_tokens_per_s': round(o['tokens_per_s'], 1), 'peak_rss_mb': round(o['peak_rss_bytes'] / 2**20)}))"
"$BIN/kd-train" -m "$S" --teacher-cache "$OUT/kd.cache" $O -o "$OUT/kd-cached" > "$OUT/kd-cached.jsonl" || exit 1
report teacher-from-cache "$OUT/kd-cached.jsonl"
rm -rf "$OUT/kd-live" "$OUT/kd-cached"
