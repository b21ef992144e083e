#!/usr/bin/env bash
# make demo-stories — the demo's pipeline (tools/demo/pipeline.sh) on a real trained model:
# llama2.c's stories260K from ../shared. Task: a character's name at its next mention in each test
# story that introduces one ("... named Lily. ... Lily"), lambada-style (accuracy: every token of
# the name is the greedy choice).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/bin:$PATH"
SHARED=${LOP_SHARED:-../shared}
S=$SHARED/models/stories260K D=$SHARED/data/stories
if [ ! -d "$S" ]; then
  echo "demo-stories: $S is absent (../shared holds the fixtures); try make demo" >&2
  exit 1
fi
W=${LOP_DEMO_DIR:-build/demo-stories}
rm -rf "$W" && mkdir -p "$W"
t0=$(date +%s)
python3 - "$D/test.txt" "$W/stories_names.jsonl" <<'PY'
import json, re, sys
# in-context recall: the story names a character; the task is its next mention
out = open(sys.argv[2], "w")
for line in open(sys.argv[1]):
    m = re.search(r"named ([A-Z][a-z]+)", line)
    k = line.find(" " + m.group(1), m.end()) if m else -1
    if k > 0:  # lm-eval puts the target delimiter " " before the continuation
        out.write(json.dumps({"context": line[:k], "continuation": m.group(1)}) + "\n")
PY
W="$W" BASE="$S" CALIB="$D/train.txt" TEST="$D/test.txt" HEAL="$D/train.txt" \
  TASKS="$W/stories_names.jsonl" DROP_N=${DEMO_DROP:-1} HEAL_STEPS=${DEMO_HEAL_STEPS:-200} HEAL_LR=1e-3 \
  HEAL_BATCH=8 SEQ=256 THREADS=${THREADS:-2} NAME=healed bash tools/demo/pipeline.sh > "$W/table.txt"
for m in "$S" "$W/pruned" "$W/healed"; do
  printf '%s> ' "$(basename "$m")" >&2; lm-gen -m "$m" --max-tokens 40 -q >&2
done
cat "$W/table.txt"
echo "(the logs, the models and the model card are in $W; $(($(date +%s) - t0)) s)"
