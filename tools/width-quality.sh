#!/usr/bin/env bash
# tools/width-quality.sh — the width-prune quality table (man/width-prune.1, docs/width.md):
# prose13m (../shared/models/prose13m) pruned by ~25% of its parameters, one shot (no healing),
# perplexity on the prose test text:
#   - importance methods at equal parameter counts: MLP neurons only (1024 -> 683 per layer) and
#     heads only (6 -> 4 query heads, 2 per KV group), activation vs maw / vow / pon;
#   - width vs depth at about equal parameters: layer-drop (2 of 8 layers, by layer-score bi and by
#     the deepest-before-last rule) vs width mixes of heads, neurons and channels.
# Prints one JSON line per model, then a markdown table. OUT (default /tmp/width-quality) keeps all.
set -eu
cd "$(dirname "$0")/.."
export PATH=$PWD/bin:$PATH
SHARED=${LOP_SHARED:-$PWD/../shared}
M=$SHARED/models/prose13m
TRAIN=$SHARED/data/prose/train.txt
TEST=$SHARED/data/prose/test.txt
OUT=${OUT:-/tmp/width-quality}
SAMPLES=${SAMPLES:-64}
CTX=${CTX:-512}
mkdir -p "$OUT"
CAL="--data $TRAIN --samples $SAMPLES --ctx $CTX"

run() {  # name, then the command that writes $OUT/name
  local name=$1; shift
  [ -f "$OUT/$name/config.json" ] || "$@" > "$OUT/$name.jsonl"
  ppl -q -m "$OUT/$name" "$TEST" > "$OUT/$name.ppl.json"
  python3 - "$name" "$OUT/$name" "$OUT/$name.ppl.json" <<'PY'
import json, os, sys, glob
name, d, p = sys.argv[1:4]
cfg = json.load(open(os.path.join(d, "config.json")))
r = json.load(open(p))
import struct
n = 0
for f in glob.glob(os.path.join(d, "*.safetensors")):
    with open(f, "rb") as fh:
        hl = struct.unpack("<Q", fh.read(8))[0]
        h = json.loads(fh.read(hl))
    for k, t in h.items():
        if k != "__metadata__":
            m = 1
            for s in t["shape"]: m *= s
            n += m
print(json.dumps({"model": name, "params": n, "ppl": round(r["ppl"], 4), "nll": r["nll"],
                  "hidden": cfg["hidden_size"], "inter": cfg["intermediate_size"],
                  "heads": cfg["num_attention_heads"], "kv": cfg["num_key_value_heads"],
                  "layers": cfg["num_hidden_layers"]}))
PY
}

{
run base st-cat -m "$M" -o "$OUT/base"
for imp in activation maw vow pon; do
  if [ $imp = activation ]; then x="$CAL"; else x=""; fi
  run mlp683-$imp width-prune -m "$M" -o "$OUT/mlp683-$imp" --mlp-keep 683 --importance $imp $x
  run heads4-$imp width-prune -m "$M" -o "$OUT/heads4-$imp" --heads-keep 4 --importance $imp $x
done
run kv1-activation width-prune -m "$M" -o "$OUT/kv1-activation" --kv-keep 1 $CAL
run heads4-mlp768-activation width-prune -m "$M" -o "$OUT/heads4-mlp768-activation" --heads-keep 4 --mlp-keep 768 $CAL
run hidden290-activation width-prune -m "$M" -o "$OUT/hidden290-activation" --hidden-keep 290 $CAL
run hidden352-mlp778-activation width-prune -m "$M" -o "$OUT/hidden352-mlp778-activation" --hidden-keep 352 --mlp-keep 778 $CAL
[ -f "$OUT/bi.jsonl" ] || layer-score -m "$M" --metric bi $CAL > "$OUT/bi.jsonl"
run depth2-bi layer-drop -m "$M" --scores "$OUT/bi.jsonl" --n 2 -o "$OUT/depth2-bi"
run depth2-deepest layer-drop -m "$M" --percent 25 -o "$OUT/depth2-deepest"
} | tee "$OUT/results.jsonl"

python3 - "$OUT/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
base = rows[0]
print("| model | hidden | FFN | heads (kv) | layers | params | removed | test ppl |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['model']} | {r['hidden']} | {r['inter']} | {r['heads']} ({r['kv']}) | {r['layers']} | "
          f"{r['params']:,} | {100 * (1 - r['params'] / base['params']):.1f}% | {r['ppl']:.3f} |")
PY
