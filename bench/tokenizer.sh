#!/usr/bin/env bash
# Tokenizer speed: load time, encode MB/s on one core (whole WikiText-2 test file as one text,
# and as JSON lines, one per line), --jsonl scaling over threads, peak RSS — per tokenizer.
# MB/s per core is computed from CPU time, so other load on the machine does not hide it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${LOP_SHARED:-$ROOT/../shared}
BIN=${LOP_BIN:-$ROOT/bin}
DATA=$SHARED/data/wikitext-2-raw/wiki.test.raw
[ -x "$BIN/lm-tok" ] || { echo "bench/tokenizer.sh: build first (make all)" >&2; exit 1; }
[ -f "$DATA" ] || { echo "bench/tokenizer.sh: $DATA absent" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
python3 -c "
import json,sys
with open('$DATA', encoding='utf-8') as f:
    for l in f: print(json.dumps({'text': l}))" > "$TMP/lines.jsonl"
NT=$(nproc)
printf '%-22s %9s %9s %10s %10s %10s %9s %9s\n' tokenizer load_s load_cpu "MB/s-1core" "lines-1t" "lines-${NT}t" tokens rss_MB
for m in models/gemma3-tiny models/qwen3-tiny models/llama-tiny models/stories260K tokenizers/llama3_1; do
  dir=$SHARED/$m
  [ -f "$dir/tokenizer.json" ] || continue
  info=$("$BIN/lm-tok" -m "$dir" --info)
  "$BIN/lm-tok" -m "$dir" -t 1 --count --stats "$DATA" 2> "$TMP/s1" > /dev/null
  "$BIN/lm-tok" -m "$dir" -t 1 --jsonl --count --stats "$TMP/lines.jsonl" 2> "$TMP/s2" > /dev/null
  "$BIN/lm-tok" -m "$dir" -t "$NT" --jsonl --count --stats "$TMP/lines.jsonl" 2> "$TMP/s3" > /dev/null
  python3 - "$m" "$info" "$TMP/s1" "$TMP/s2" "$TMP/s3" <<'PY'
import json, sys
name, info = sys.argv[1], json.loads(sys.argv[2])
s1, s2, s3 = (json.loads(open(p).read().strip().splitlines()[-1])["stats"] for p in sys.argv[3:6])
print("%-22s %9.3f %9.3f %10.2f %10.2f %10.2f %9d %9.0f" % (name.split("/")[-1], info["load_seconds"],
      info["load_cpu_seconds"], s1["mb_per_s_per_core"], s2["mb_per_s"], s3["mb_per_s"], s1["tokens"],
      max(s1["peak_rss_mb"], s3["peak_rss_mb"])))
print(json.dumps({"bench": "tokenizer", "tokenizer": name, "load_seconds": info["load_seconds"],
                  "load_cpu_seconds": info["load_cpu_seconds"], "mb_per_s_one_core": s1["mb_per_s_per_core"],
                  "jsonl_mb_per_s_1_thread": s2["mb_per_s"], "jsonl_mb_per_s_all_threads": s3["mb_per_s"],
                  "threads": s3["threads"], "tokens": s1["tokens"], "peak_rss_mb": max(s1["peak_rss_mb"], s3["peak_rss_mb"])}),
      file=sys.stderr)
PY
done
