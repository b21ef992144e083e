#!/usr/bin/env bash
# tools/width-recovery.sh — width vs depth after recovery: the ~25% width- and depth-pruned prose13m
# models of tools/width-quality.sh (OUT), each healed by STEPS steps of heal-sft (plain fine-tuning
# on the prose training text) and of kd-train (logits distillation from the unpruned model, the
# default 0.5 CE + 0.5 skew-KL), perplexity on the prose test text. Prints JSON lines and a table.
#   WIDTH=name DEPTH=name  the pruned models in $OUT (defaults below)
set -eu
cd "$(dirname "$0")/.."
export PATH=$PWD/bin:$PATH
SHARED=${LOP_SHARED:-$PWD/../shared}
M=$SHARED/models/prose13m
TRAIN=$SHARED/data/prose/train.txt
TEST=$SHARED/data/prose/test.txt
OUT=${OUT:-/tmp/width-quality}
WIDTH=${WIDTH:-heads4-mlp768-activation}
DEPTH=${DEPTH:-depth2-bi}
STEPS=${STEPS:-200}
SEQ=${SEQ:-128}
BATCH=${BATCH:-4}
LR=${LR:-3e-4}
TRAIN_OPTS="--data $TRAIN --seq-len $SEQ --batch $BATCH --steps $STEPS --lr $LR --warmup 10 --seed 0"
for p in "$WIDTH" "$DEPTH"; do
  [ -f "$OUT/$p/config.json" ] || { echo "width-recovery: $OUT/$p missing: run tools/width-quality.sh first" >&2; exit 1; }
  [ -f "$OUT/$p-sft/config.json" ] || heal-sft -q -m "$OUT/$p" -o "$OUT/$p-sft" $TRAIN_OPTS > "$OUT/$p-sft.jsonl"
  [ -f "$OUT/$p-kd/config.json" ] || kd-train -q -m "$OUT/$p" --teacher "$M" -o "$OUT/$p-kd" $TRAIN_OPTS > "$OUT/$p-kd.jsonl"
  for v in "$p" "$p-sft" "$p-kd"; do
    [ -f "$OUT/$v.ppl.json" ] || ppl -q -m "$OUT/$v" "$TEST" > "$OUT/$v.ppl.json"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[2])); print(json.dumps({"model": sys.argv[1], "ppl": round(r["ppl"], 4)}))' "$v" "$OUT/$v.ppl.json"
  done
done | tee "$OUT/recovery.jsonl"
python3 - "$OUT/recovery.jsonl" "$WIDTH" "$DEPTH" "$STEPS" <<'PY'
import json, sys
r = {d["model"]: d["ppl"] for d in map(json.loads, open(sys.argv[1]))}
w, d, s = sys.argv[2:5]
print(f"| pruned (~25%) | one shot | heal-sft {s} steps | kd-train {s} steps |")
print("|---|---|---|---|")
for p in (w, d):
    print(f"| {p} | {r[p]:.3f} | {r[p + '-sft']:.3f} | {r[p + '-kd']:.3f} |")
PY
