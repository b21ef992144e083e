#!/usr/bin/env python3
"""Assertions of `make check`: the pruned model has the asked sizes and exactly the parameters the
summary reports; every layer kept its highest-scored units; distillation lowers the pruned model's
test perplexity; the card carries the perplexities."""
import json, os, struct, sys


def first_line(path):  # the first JSON line of a tool after its provenance line
    return next(o for o in (json.loads(l) for l in open(path)) if "provenance" not in o)


out = sys.argv[1]
lines = [o for o in (json.loads(l) for l in open(f"{out}/prune.jsonl")) if "provenance" not in o]
summ = lines[-1]
cfg = json.load(open(f"{out}/pruned/config.json"))
assert cfg["intermediate_size"] == summ["intermediate_size"][1] == 129, cfg
assert cfg["num_attention_heads"] == 4 and cfg["hidden_size"] == 56, cfg
n = 0
with open(f"{out}/pruned/model.safetensors", "rb") as f:
    h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
for k, t in h.items():
    if k != "__metadata__":
        m = 1
        for s in t["shape"]:
            m *= s
        n += m
assert n == summ["params_after"], (n, summ)
for d in lines[:-1]:
    if d["part"] == "heads":   # chosen within each KV group: checked by tests/width-prune.bats
        continue
    kept = set(d["kept"])
    low = min(d["scores"][i] for i in kept)
    assert all(d["scores"][i] <= low for i in range(d["before"]) if i not in kept), d.get("layer")
ppl = {s: first_line(f"{out}/{s}.ppl.jsonl")["ppl"] for s in ("base", "pruned", "distilled")}
assert ppl["pruned"] > ppl["base"], ppl
assert ppl["distilled"] < ppl["pruned"], f"distillation did not help: {ppl}"
card = open(f"{out}/distilled/README.md").read()
for s, p in ppl.items():
    assert f"| {s} | {p:.4f} |" in card, s
print("qwen3-minitron-width: {:,} -> {:,} params; ppl base {base:.4f}, pruned {pruned:.4f}, distilled {distilled:.4f}"
      .format(summ["params_before"], summ["params_after"], **ppl))
