#!/usr/bin/env bash
# make demo — a real pruning experiment end to end, on a model this script makes itself: no
# ../shared, no network. A few minutes on 2 cores.
#
#  1. write a synthetic language with real structure (tools/demo/synthlang.py: agreement across
#     phrases, facts about a tiny world, counting by ones and twos, in-context recall) and
#     multiple-choice tasks that probe it (recall is left out of the table: a model this small does
#     not learn it in two minutes of training, see synthlang.py);
#  2. make a Llama-shaped model for it (tools/demo/init-model.py: a BPE tokenizer trained on the
#     text, random weights) and train it from scratch with heal-sft;
#  3. tools/demo/pipeline.sh: layer-score -> layer-drop -> ppl -> heal-sft -> ppl -> lm-eval on the
#     tasks -> model-card, and a before/after table.
#
# Knobs (environment): LOP_DEMO_DIR (default build/demo), DEMO_DOCS (training documents, 40000),
# DEMO_STEPS (training steps from scratch, 900), DEMO_HEAL_STEPS (150), DEMO_DROP (layers removed,
# 2), DEMO_TEST (test documents, 500), DEMO_ITEMS (items per task, 200), THREADS (2). The test
# suite runs a tiny version with small values.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/bin:$PATH"
W=${LOP_DEMO_DIR:-build/demo}
DOCS=${DEMO_DOCS:-40000} STEPS=${DEMO_STEPS:-900} HEAL_STEPS=${DEMO_HEAL_STEPS:-150}
DROP=${DEMO_DROP:-2} THREADS=${THREADS:-2} TESTDOCS=${DEMO_TEST:-500} ITEMS=${DEMO_ITEMS:-200}

missing=""
for t in heal-sft layer-score layer-drop ppl lm-eval lm-gen model-card; do
  [ -x "bin/$t" ] || missing="$missing $t"
done
if [ -n "$missing" ]; then
  echo "demo: these tools are not built:$missing (run make)" >&2
  exit 1
fi
say() { printf '\n== %s\n' "$*" >&2; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }
t0=$(date +%s)
rm -rf "$W" && mkdir -p "$W"

say "1. a synthetic language: $DOCS documents, and tasks about it"
run python3 tools/demo/synthlang.py "$W/data" --train "$DOCS" --test "$TESTDOCS" --items "$ITEMS"
head -n 1 "$W/data/train.txt" | cut -c1-200 >&2

say "2. a 6-layer Llama-shaped model with its own tokenizer, trained from scratch ($STEPS steps)"
run python3 tools/demo/init-model.py --corpus "$W/data/train.txt" -o "$W/init" > "$W/init.json"
cat "$W/init.json" >&2
run heal-sft -m "$W/init" --data "$W/data/train.txt" --eval-data "$W/data/valid.txt" -o "$W/base" \
  --seq-len 256 --batch 8 --steps "$STEPS" --lr 4e-3 --warmup $((STEPS / 30)) --schedule cosine \
  --seed 0 -t "$THREADS" > "$W/pretrain.jsonl"
tail -n 2 "$W/pretrain.jsonl" | head -n 1 >&2
prompts=("the big cats near the old dog" "the fox eats" "ann counts two four six")
for p in "${prompts[@]}"; do
  printf 'base> %s' "$p" >&2; lm-gen -m "$W/base" --prompt "$p" --max-tokens 8 -t "$THREADS" -q >&2
done

say "3. prune, measure, heal, measure"
W="$W" BASE="$W/base" CALIB="$W/data/valid.txt" TEST="$W/data/test.txt" HEAL="$W/data/train.txt" \
  TASKS="$W/data/tasks/synth_agree.jsonl $W/data/tasks/synth_count.jsonl $W/data/tasks/synth_facts.jsonl" DROP_N="$DROP" HEAL_STEPS="$HEAL_STEPS" \
  HEAL_LR=1e-3 HEAL_BATCH=8 SEQ=256 THREADS="$THREADS" NAME=healed \
  bash tools/demo/pipeline.sh > "$W/table.txt"
for m in pruned healed; do
  for p in "${prompts[@]}"; do
    printf '%s> %s' "$m" "$p" >&2; lm-gen -m "$W/$m" --prompt "$p" --max-tokens 8 -t "$THREADS" -q >&2
  done
done
echo >&2
cat "$W/table.txt"
echo "(the logs, the models and the model card are in $W; $(($(date +%s) - t0)) s)"
