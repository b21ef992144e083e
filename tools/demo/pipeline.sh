#!/usr/bin/env bash
# pipeline.sh — the pruning experiment of `make demo` and `make demo-stories`, on any base model:
#   layer-score -> layer-drop -> ppl -> heal-sft -> ppl -> lm-eval (task files) -> model-card,
# then a before/after table on stdout. Every tool's JSON lines are kept in $W.
#
# Environment (set by demo.sh / demo-stories.sh):
#   W        work folder          BASE    the trained base model folder
#   CALIB    layer-score text     TEST    ppl text (one document per line: ppl --lines)
#   HEAL     heal-sft text        TASKS   task files (JSONL) for lm-eval --task-file, space-separated
#   DROP_N   layers to remove     HEAL_STEPS, HEAL_LR, HEAL_BATCH, SEQ   the healing recipe
#   NAME     the healed model's name in its card       THREADS (default 2)
set -euo pipefail
: "${W:?}" "${BASE:?}" "${CALIB:?}" "${TEST:?}" "${HEAL:?}" "${TASKS:?}" "${DROP_N:?}"
HEAL_STEPS=${HEAL_STEPS:-100} HEAL_LR=${HEAL_LR:-1e-3} HEAL_BATCH=${HEAL_BATCH:-8} SEQ=${SEQ:-256}
THREADS=${THREADS:-2} NAME=${NAME:-healed} SAMPLES=${SAMPLES:-64}
say() { printf '\n== %s\n' "$*" >&2; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

taskargs=()
for t in $TASKS; do taskargs+=(--task-file "$t"); done
evaluate() { # MODEL STAGE
  run ppl -m "$1" --lines -t "$THREADS" -q "$TEST" > "$W/$2.ppl.jsonl"
  run lm-eval -m "$1" "${taskargs[@]}" -t "$THREADS" -q --output "$W/$2.results.json" > "$W/$2.eval.jsonl"
}

say "1. how much does each layer matter? (Block Influence: 1 - cos(input, output) of its residual)"
run layer-score -m "$BASE" --data "$CALIB" --lines --samples "$SAMPLES" --ctx "$SEQ" -t "$THREADS" -q > "$W/score.jsonl"
grep '"layer"' "$W/score.jsonl" >&2

say "2. remove the $DROP_N least important layers"
rm -rf "$W/pruned"
run layer-drop -m "$BASE" --scores "$W/score.jsonl" --n "$DROP_N" -o "$W/pruned" -q > "$W/drop.jsonl"
cat "$W/drop.jsonl" >&2

say "3. the damage: perplexity and task accuracy, base and pruned"
evaluate "$BASE" base
evaluate "$W/pruned" pruned

say "4. heal: $HEAL_STEPS steps of fine-tuning on the training text"
rm -rf "$W/$NAME"
run heal-sft -m "$W/pruned" --data "$HEAL" -o "$W/$NAME" --seq-len "$SEQ" --batch "$HEAL_BATCH" \
  --steps "$HEAL_STEPS" --lr "$HEAL_LR" --warmup $((HEAL_STEPS / 10)) --schedule cosine \
  --seed 0 -t "$THREADS" -q > "$W/heal.jsonl"

say "5. after healing"
evaluate "$W/$NAME" "$NAME"

say "6. the model card"
run model-card --base "$BASE" -m "$W/$NAME" --name "$NAME" --log "$W/score.jsonl" "$W/drop.jsonl" \
  "$W/base.ppl.jsonl" "$W/base.eval.jsonl" "$W/pruned.ppl.jsonl" "$W/pruned.eval.jsonl" \
  "$W/heal.jsonl" "$W/$NAME.ppl.jsonl" "$W/$NAME.eval.jsonl" -q -o "$W/$NAME/README.md" > /dev/null
echo "demo: model card: $W/$NAME/README.md" >&2

# the before/after table, from the logs
python3 - "$W" "$NAME" <<'PY'
import json, sys
w, name = sys.argv[1], sys.argv[2]
def jl(p): return [json.loads(l) for l in open(p) if l.strip()]
def cfg(p):
    c = json.load(open(p + "/config.json")); return c.get("text_config", c)
drop = jl(f"{w}/drop.jsonl")[-1]
rows, tasks = [], []
for stage, folder in (("base", None), ("pruned", f"{w}/pruned"), (name, f"{w}/{name}")):
    ppl = jl(f"{w}/{stage}.ppl.jsonl")[0]
    ev = {e["task"]: e["value"] for e in jl(f"{w}/{stage}.eval.jsonl") if e.get("metric") == "acc"}
    for t in ev:
        if t not in tasks: tasks.append(t)
    layers = drop["layers_before"] if stage == "base" else drop["layers_after"]
    params = drop["params_before"] if stage == "base" else drop["params_after"]
    rows.append((stage, layers, params, ppl["ppl"], ev))
short = [t.replace("synth_", "") for t in tasks]
head = f"{'model':<10} {'layers':>6} {'params':>9} {'ppl':>8}" + "".join(f" {s:>8}" for s in short)
print(head); print("-" * len(head))
for stage, layers, params, ppl, ev in rows:
    print(f"{stage:<10} {layers:>6} {params:>9,} {ppl:>8.3f}" + "".join(f" {ev.get(t, float('nan')):>8.3f}" for t in tasks))
b, p, h = rows[0][3], rows[1][3], rows[2][3]
print(f"\nPruning raised perplexity {p / b:.2f}x ({b:.3f} -> {p:.3f}); healing brought it to {h:.3f}, "
      f"recovering {100 * (p - h) / (p - b) if p > b else 0:.0f}% of the loss." if p > b else
      f"\nPruning did not raise perplexity here ({b:.3f} -> {p:.3f}); healing: {h:.3f}.")
print("Task columns: accuracy (chance: agree 0.50, facts 0.25, count 0.25, recall ~0.42).")
PY
