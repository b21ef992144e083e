#!/usr/bin/env bats
# make demo's script at toy scale (seconds): the whole pipeline runs, and its table and model card
# say what the tools' logs say. (The full demo's numbers are in the README.)
load helpers

@test "demo: the pipeline end to end at toy scale; the table matches the logs" {
  for t in heal-sft layer-score layer-drop ppl lm-eval lm-gen model-card; do
    [ -x "$BIN/$t" ] || skip "$t not built"
  done
  W=$(scratch)/demo
  run env LOP_DEMO_DIR="$W" DEMO_DOCS=1500 DEMO_STEPS=30 DEMO_HEAL_STEPS=10 DEMO_TEST=60 \
      DEMO_ITEMS=20 bash "$ROOT/tools/demo.sh"
  echo "$output"
  assert_success
  printf '%s\n' "$output" > "$W/out.txt"
  python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
out = open(f"{w}/out.txt").read().splitlines()
rows = {l.split()[0]: l.split() for l in out if l.split() and l.split()[0] in ("base", "pruned", "healed", "control")}
assert set(rows) == {"base", "pruned", "healed", "control"}, rows
drop = [json.loads(l) for l in open(f"{w}/drop.jsonl")][-1]
assert drop["layers_before"] == 6 and drop["layers_after"] == 4, drop
for s, r in rows.items():
    ppl = json.loads(open(f"{w}/{s}.ppl.jsonl").readline())["ppl"]
    assert r[3] == f"{ppl:.3f}", (s, r, ppl)
    acc = [json.loads(l) for l in open(f"{w}/{s}.eval.jsonl")]
    acc = [a["value"] for a in acc if a["metric"] == "acc"]
    assert r[4:] == [f"{a:.3f}" for a in acc], (s, r, acc)
    assert int(r[1]) == (6 if s in ("base", "control") else 4)
card = open(f"{w}/healed/README.md").read()
assert "| layers | 6 | 4 |" in card
for s in ("base", "pruned", "healed", "control"):
    ppl = json.loads(open(f"{w}/{s}.ppl.jsonl").readline())["ppl"]
    assert f"| {s} | {ppl:.4f} |" in card, s
cfg = json.load(open(f"{w}/healed/config.json"))
assert cfg["num_hidden_layers"] == 4
PY
}

@test "demo-stories: skips cleanly without ../shared; the script names what is missing" {
  run env LOP_SHARED=/nonexistent bash "$ROOT/tools/demo-stories.sh"
  assert_failure 1
  assert_output --partial "demo-stories: /nonexistent/models/stories260K is absent"
}
