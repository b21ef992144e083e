#!/usr/bin/env bash
# bench/depth.sh — layer-drop / layer-merge throughput and peak RSS on a Qwen3-0.6B-shaped model
# next to cat of the same file; layer-score bi over 64k calibration tokens on the gemma-3-270m
# shape next to one ppl forward over the same tokens. Models: bench/gen-model.py (random weights,
# real configs), generated once into $LOP_BENCH_OUT/models.
set -u
cd "$(dirname "$0")/.."
OUT=${LOP_BENCH_OUT:-$PWD/bench/out}
M=$OUT/models
SHARED=${LOP_SHARED:-$PWD/../shared}
mkdir -p "$M" "$OUT/depth"
W=$OUT/depth
export PATH=$PWD/bin:$PATH
for name in qwen3-0.6b gemma-3-270m; do
  [ -f "$M/$name/model.safetensors" ] || python3 bench/gen-model.py "$name" "$M/$name" >&2 || exit 1
done
Q=$M/qwen3-0.6b
src=$Q/model.safetensors
bytes=$(stat -c %s "$src")
cat "$src" > /dev/null   # page cache warm for every contender

# run CMD...: prints "seconds peak_rss_kb"
measure() { /usr/bin/time -f "%e %M" -o "$W/time.txt" "$@" > /dev/null 2> "$W/err.txt" || { cat "$W/err.txt" >&2; return 1; }; cat "$W/time.txt"; }
row() {  # name seconds rss_kb ref_seconds
  python3 - "$@" "$bytes" <<'PY'
import json, sys
name, s, kb, ref, b = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
mbs = b / 1e6 / max(s, 1e-9)
print(json.dumps({"bench": "depth", "case": name, "seconds": s, "MB_per_s": round(mbs, 1),
                  "vs_cat": round(ref / max(s, 1e-9), 3), "peak_rss_MB": round(kb / 1024, 1),
                  "input_MB": round(b / 1e6, 1)}))
PY
}
best() {  # best of 3 runs: "seconds rss"
  local b="" r
  for i in 1 2 3; do
    r=$(measure "$@") || return 1
    if [ -z "$b" ] || python3 -c "import sys; sys.exit(0 if float('${r% *}') < float('${b% *}') else 1)"; then b=$r; fi
  done
  echo "$b"
}
# files: cat + sync (lop's writers fsync before the rename) against the tools writing a file
read cs ck <<< "$(best bash -c "cat '$src' > '$W/cat.out'; sync '$W/cat.out'")"
rm -f "$W/cat.out"
row "cat + sync to a file" "$cs" "$ck" "$cs"
read s k <<< "$(best layer-drop -q -m "$Q" --drop 10-13 -o "$W/drop.safetensors")"
row "layer-drop --drop 10-13 (file)" "$s" "$k" "$cs"
read s k <<< "$(best layer-merge -q -m "$Q" --merge 10-13 -o "$W/merge.safetensors")"
row "layer-merge --merge 10-13 (file)" "$s" "$k" "$cs"
read s k <<< "$(best layer-merge -q -m "$Q" --merge 2-5 --merge 10-13 --merge 20-27 -o "$W/merge.safetensors")"
row "layer-merge 2-5,10-13,20-27 (file)" "$s" "$k" "$cs"
# pipes: cat | cat against tool -o - | cat (the RSS is the tool's: time measures the first command)
read ps pk <<< "$(best bash -c "cat '$src' | cat > /dev/null")"
row "cat | cat (pipe)" "$ps" "$pk" "$ps"
/usr/bin/time -f "%e %M" -o "$W/t1.txt" layer-drop -q -m "$Q" --drop 10-13 -o - 2>/dev/null | cat > /dev/null
read s k < "$W/t1.txt"
row "layer-drop --drop 10-13 -o - | cat (pipe)" "$s" "$k" "$ps"
/usr/bin/time -f "%e %M" -o "$W/t1.txt" layer-merge -q -m "$Q" --merge 10-13 -o - 2>/dev/null | cat > /dev/null
read s k < "$W/t1.txt"
row "layer-merge --merge 10-13 -o - | cat (pipe)" "$s" "$k" "$ps"
rm -f "$W/drop.safetensors" "$W/merge.safetensors"

# layer-score bi over 128 x 512 = 65,536 tokens of WikiText-2 on the gemma-3-270m shape, next to
# one ppl forward (--ctx 512) over the same text
G=$M/gemma-3-270m
data=$W/wiki-64k.txt
head -c 300000 "$SHARED/data/wikitext-2-raw/wiki.test.raw" > "$data"
/usr/bin/time -f "%e %M" -o "$W/time.txt" layer-score -q -m "$G" --data "$data" --samples 128 --ctx 512 > "$W/bi.jsonl" 2>/dev/null
read s k < "$W/time.txt"
tok=$(tail -1 "$W/bi.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"])')
/usr/bin/time -f "%e %M" -o "$W/time.txt" ppl -q -m "$G" --ctx 512 "$data" > "$W/ppl.json" 2>/dev/null
read ps pk < "$W/time.txt"
python3 - "$s" "$k" "$tok" "$ps" "$pk" "$W/ppl.json" <<'PY'
import json, sys
s, kb, tok, ps, pkb = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
try:
    ptok = json.loads(open(sys.argv[6]).read().strip().splitlines()[-1])["tokens"]
except Exception:
    ptok = 0
print(json.dumps({"bench": "depth", "case": "layer-score bi, gemma-3-270m shape", "tokens": tok,
                  "seconds": s, "tokens_per_s": round(tok / s, 1), "peak_rss_MB": round(kb / 1024, 1),
                  "ppl_tokens": ptok, "ppl_seconds": ps,
                  "ppl_tokens_per_s": round(ptok / ps, 1) if ps else None,
                  "ppl_peak_rss_MB": round(pkb / 1024, 1)}))
PY
