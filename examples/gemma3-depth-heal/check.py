#!/usr/bin/env python3
"""Assertions of `make check`: the pruned model keeps exactly the asked layers, each with its own
attention type; healing lowers the training loss; the card reports what the logs say."""
import json, sys


def first_line(path):  # the first JSON line of a tool after its provenance line
    return next(o for o in (json.loads(l) for l in open(path)) if "provenance" not in o)


out, model, keep = sys.argv[1], sys.argv[2], sys.argv[3]

def ranges(s):
    r = []
    for part in s.split(","):
        a, _, b = part.partition("-")
        r += range(int(a), int(b or a) + 1)
    return r

def text_cfg(p):
    c = json.load(open(p + "/config.json"))
    return c.get("text_config", c)

base, pruned = text_cfg(model), text_cfg(out + "/pruned")
k = ranges(keep)
assert pruned["num_hidden_layers"] == len(k), (pruned["num_hidden_layers"], k)
if "layer_types" in base:
    assert pruned["layer_types"] == [base["layer_types"][i] for i in k], "layer_types not kept per layer"
steps = [o for o in (json.loads(l) for l in open(out + "/heal.jsonl") if '"step"' in l) if "provenance" not in o]
steps = [s for s in steps if "loss" in s]
assert len(steps) >= 10, len(steps)
first = sum(s["loss"] for s in steps[:5]) / 5
last = sum(s["loss"] for s in steps[-5:]) / 5
assert last < first, f"healing did not lower the loss: {first:.4f} -> {last:.4f}"
card = open(out + "/healed/README.md").read()
assert f"| layers | {base['num_hidden_layers']} | {len(k)} |" in card
for stage in ("base", "pruned", "healed"):
    p = first_line(f"{out}/{stage}.ppl.jsonl")["ppl"]
    assert f"| {stage} | {p:.4f} |" in card, stage
print(f"gemma3-depth-heal: kept {keep} of {base['num_hidden_layers']} layers; heal loss {first:.3f} -> {last:.3f}")
