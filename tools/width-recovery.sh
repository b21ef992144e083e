#!/usr/bin/env bash
# tools/width-recovery.sh — width vs depth at about equal parameters, one shot and after recovery:
# the model pruned by width-prune (WIDTH_ARGS, activation scores) and by layer-drop (DEPTH_N layers
# by layer-score bi), each healed by STEPS steps of heal-sft (fine-tuning on TRAIN) and of kd-train
# (logits distillation from the unpruned model, the default 0.5 CE + 0.5 skew-KL); perplexity on
# TEST (PPL_OPTS, default --lines: one sequence per line). Prints JSON lines and a markdown table.
#   defaults: stories260K, FFN 172 -> 125 (-17.4%) vs 1 of 5 layers (-17.5%), 200 steps
#   prose13m: MODEL=prose13m TRAIN=TEST=prose WIDTH_ARGS="--mlp-keep 683" DEPTH_N=2 ...
set -eu
cd "$(dirname "$0")/.."
export PATH=$PWD/bin:$PATH
SHARED=${LOP_SHARED:-$PWD/../shared}
MODEL=${MODEL:-$SHARED/models/stories260K}
TRAIN=${TRAIN:-$SHARED/data/stories/train.txt}
TEST=${TEST:-$SHARED/data/stories/test.txt}
OUT=${OUT:-/tmp/width-recovery}
WIDTH_ARGS=${WIDTH_ARGS:---mlp-keep 125}
DEPTH_N=${DEPTH_N:-1}
SAMPLES=${SAMPLES:-64}
CTX=${CTX:-256}
STEPS=${STEPS:-200}
SEQ=${SEQ:-256}
BATCH=${BATCH:-8}
LR=${LR:-1e-3}
PPL_OPTS=${PPL_OPTS---lines}
mkdir -p "$OUT"
CAL="--data $TRAIN --samples $SAMPLES --ctx $CTX"
TRAIN_OPTS="--data $TRAIN --seq-len $SEQ --batch $BATCH --steps $STEPS --lr $LR --warmup 10 --seed 0"
[ -f "$OUT/width/config.json" ] || width-prune -q -m "$MODEL" -o "$OUT/width" $WIDTH_ARGS $CAL > "$OUT/width.jsonl"
[ -f "$OUT/bi.jsonl" ] || layer-score -q -m "$MODEL" --metric bi $CAL > "$OUT/bi.jsonl"
[ -f "$OUT/depth/config.json" ] || layer-drop -q -m "$MODEL" --scores "$OUT/bi.jsonl" --n "$DEPTH_N" -o "$OUT/depth" > "$OUT/depth.jsonl"
params() { st-cat --summary "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["params"])'; }
pp() {  # model-folder name
  [ -f "$OUT/$2.ppl.json" ] || ppl -q $PPL_OPTS -m "$1" "$TEST" > "$OUT/$2.ppl.json"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[2])); print(json.dumps({"model": sys.argv[1], "params": int(sys.argv[3]), "ppl": round(r["ppl"], 4)}))' "$2" "$OUT/$2.ppl.json" "$(params "$1")"
}
{
pp "$MODEL" base
for p in width depth; do
  [ -f "$OUT/$p-sft/config.json" ] || heal-sft -q -m "$OUT/$p" -o "$OUT/$p-sft" $TRAIN_OPTS > "$OUT/$p-sft.jsonl"
  [ -f "$OUT/$p-kd/config.json" ] || kd-train -q -m "$OUT/$p" --teacher "$MODEL" -o "$OUT/$p-kd" $TRAIN_OPTS > "$OUT/$p-kd.jsonl"
  for v in "$p" "$p-sft" "$p-kd"; do pp "$OUT/$v" "$v"; done
done
} | tee "$OUT/recovery.jsonl"
python3 - "$OUT/recovery.jsonl" "$STEPS" "$WIDTH_ARGS" "$DEPTH_N" <<'PY'
import json, sys
r = {d["model"]: d for d in map(json.loads, open(sys.argv[1]))}
s, wa, dn = sys.argv[2:5]
b = r["base"]
print(f"| pruned | params | one shot | heal-sft {s} steps | kd-train {s} steps |")
print("|---|---|---|---|---|")
print(f"| none (base) | {b['params']:,} | {b['ppl']:.3f} | | |")
for p, label in (("width", f"width-prune {wa}"), ("depth", f"layer-drop {dn} layer(s), bi")):
    red = 100 * (1 - r[p]["params"] / b["params"])
    print(f"| {label} | {r[p]['params']:,} (−{red:.1f}%) | {r[p]['ppl']:.3f} | {r[p + '-sft']['ppl']:.3f} | {r[p + '-kd']['ppl']:.3f} |")
PY
