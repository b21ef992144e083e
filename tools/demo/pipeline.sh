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
#   CONTROL  1 (default): also train the UNPRUNED base with the same healing recipe, so the table
#            shows what those steps do without pruning (an undertrained base improves too)
set -euo pipefail
: "${W:?}" "${BASE:?}" "${CALIB:?}" "${TEST:?}" "${HEAL:?}" "${TASKS:?}" "${DROP_N:?}"
HEAL_STEPS=${HEAL_STEPS:-100} HEAL_LR=${HEAL_LR:-1e-3} HEAL_BATCH=${HEAL_BATCH:-8} SEQ=${SEQ:-256}
THREADS=${THREADS:-2} NAME=${NAME:-healed} SAMPLES=${SAMPLES:-64} CONTROL=${CONTROL:-1}
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

heal() { # MODEL OUT LOG
  rm -rf "$2"
  run heal-sft -m "$1" --data "$HEAL" -o "$2" --seq-len "$SEQ" --batch "$HEAL_BATCH" \
    --steps "$HEAL_STEPS" --lr "$HEAL_LR" --warmup $((HEAL_STEPS / 10)) --schedule cosine \
    --seed 0 -t "$THREADS" -q > "$3"
}
say "4. heal: $HEAL_STEPS steps of fine-tuning on the training text"
heal "$W/pruned" "$W/$NAME" "$W/heal.jsonl"

say "5. after healing"
evaluate "$W/$NAME" "$NAME"
controllog=()
if [ "$CONTROL" = 1 ]; then
  say "5b. control: the unpruned base, trained with the same $HEAL_STEPS steps"
  heal "$BASE" "$W/control" "$W/control-train.jsonl"
  evaluate "$W/control" control
  controllog=("$W/control.ppl.jsonl" "$W/control.eval.jsonl")
fi

say "6. the model card"
run model-card --base "$BASE" -m "$W/$NAME" --name "$NAME" --log "$W/score.jsonl" "$W/drop.jsonl" \
  "$W/base.ppl.jsonl" "$W/base.eval.jsonl" "$W/pruned.ppl.jsonl" "$W/pruned.eval.jsonl" \
  "$W/heal.jsonl" "$W/$NAME.ppl.jsonl" "$W/$NAME.eval.jsonl" "${controllog[@]}" -q \
  -o "$W/$NAME/README.md" > /dev/null
echo "demo: model card: $W/$NAME/README.md" >&2

# the before/after table, from the logs
python3 - "$W" "$NAME" "$CONTROL" <<'PY'
import json, os, sys
w, name, control = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
def jl(p): return [json.loads(l) for l in open(p) if l.strip()]
drop = jl(f"{w}/drop.jsonl")[-1]
stages = [("base", drop["layers_before"], drop["params_before"]),
          ("pruned", drop["layers_after"], drop["params_after"]),
          (name, drop["layers_after"], drop["params_after"])]
if control:
    stages.append(("control", drop["layers_before"], drop["params_before"]))
rows, tasks = [], []
for stage, layers, params in stages:
    ppl = jl(f"{w}/{stage}.ppl.jsonl")[0]["ppl"]
    ev = {e["task"]: e["value"] for e in jl(f"{w}/{stage}.eval.jsonl") if e.get("metric") == "acc"}
    tasks += [t for t in ev if t not in tasks]
    rows.append((stage, layers, params, ppl, ev))
short = [t.replace("synth_", "").replace("stories_", "") for t in tasks]
head = f"{'model':<10} {'layers':>6} {'params':>9} {'ppl':>8}" + "".join(f" {s:>8}" for s in short)
print(head)
print("-" * len(head))
for stage, layers, params, ppl, ev in rows:
    print(f"{stage:<10} {layers:>6} {params:>9,} {ppl:>8.3f}" + "".join(f" {ev.get(t, float('nan')):>8.3f}" for t in tasks))
b, p, h = rows[0][3], rows[1][3], rows[2][3]
print()
if p > b:
    print(f"Removing {drop['layers_before'] - drop['layers_after']} of {drop['layers_before']} layers "
          f"({100 * drop['reduction']:.1f}% of the parameters) raised perplexity {p / b:.2f}x "
          f"({b:.3f} -> {p:.3f}); healing ({rows[2][0]}) brought it back to {h:.3f} "
          f"({100 * (p - h) / (p - b):.0f}% of the increase recovered).")
else:
    print(f"Pruning did not raise perplexity here ({b:.3f} -> {p:.3f}); after healing: {h:.3f}.")
if control:
    c = rows[3][3]
    print(f"The same training steps on the unpruned model give {c:.3f}: "
          + ("the pruned model healed to within " + f"{100 * (h / c - 1):.1f}% of it." if h >= c else
             f"the healed pruned model is {100 * (1 - h / c):.1f}% below it."))
chance = {"synth_agree": 0.5, "synth_count": 0.25, "synth_facts": 0.25, "synth_recall": 0.5}
known = [f"{t.replace('synth_', '')} {chance[t]:.2f}" for t in tasks if t in chance]
print("Task columns: accuracy" + (f" (chance: {', '.join(known)})." if known else "."))
PY
