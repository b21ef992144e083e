#!/usr/bin/env python3
"""Assertions of `make check`: the pruned model has KEEP_N layers, the ones layer-score ranked
highest; the card's parameter counts equal st-cat's; every prompt got two generations."""
import json, sys

out, model, keep_n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = lambda p: json.load(open(p + "/config.json"))
base, pruned = cfg(model), cfg(out + "/pruned")
assert pruned["num_hidden_layers"] == keep_n, pruned["num_hidden_layers"]
scores = [o for o in (json.loads(l) for l in open(out + "/score.jsonl")) if "provenance" not in o]
scores = [s for s in scores if "layer" in s]
assert len(scores) == base["num_hidden_layers"], len(scores)
# the kept layers are the keep_n highest-scored (ties: any choice among equals)
ranked = sorted(scores, key=lambda s: -s["score"])
cut = ranked[keep_n - 1]["score"]
p = [o for o in (json.loads(l) for l in open(out + "/params.jsonl")) if "provenance" not in o]
before, after = p[0]["params"], p[1]["params"]
card = open(out + "/pruned/README.md").read()
row = f"| parameters | {before:,} | {after:,} (−{100 * (before - after) / before:.2f}%) |"
assert row in card, row
samples = open(out + "/samples.txt").read()
n = sum(1 for l in open("prompts.txt") if l.strip())
assert samples.count("base> ") == n and samples.count("pruned> ") == n, samples
print(f"qwen3-aggressive-depth: {base['num_hidden_layers']} -> {keep_n} layers, "
      f"{before:,} -> {after:,} params ({100 * (before - after) / before:.2f}%), cut score {cut:.4f}")
sys.path.insert(0, "../lib")
import st
kept = st.layer_map(model, out + "/pruned")
assert None not in kept and kept == sorted(kept), kept
score = {s["layer"]: s["score"] for s in scores}
assert all(score[l] >= cut for l in kept), (kept, score)
print(f"qwen3-aggressive-depth: kept base layers {kept}")
