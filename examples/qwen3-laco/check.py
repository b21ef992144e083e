#!/usr/bin/env python3
"""Assertions of `make check`: the merged model lost exactly the layers of the accepted merges; a
merged layer's projections equal θ_A + Σ (θ_k − θ_A) computed here from the base weights; the
compression stays within --max-compression."""
import json, struct, sys
sys.path.insert(0, "../lib")
import st

out, model = sys.argv[1], sys.argv[2]
lines = [o for o in (json.loads(l) for l in open(f"{out}/merge.jsonl")) if "provenance" not in o]
acc = [l for l in lines if l.get("accepted") is True]
base_n = json.load(open(f"{model}/config.json"))["num_hidden_layers"]
new_n = json.load(open(f"{out}/merged/config.json"))["num_hidden_layers"]
span = lambda l: (l["layers"][0], l["layers"][-1])
removed = sum(span(l)[1] - span(l)[0] for l in acc)
assert new_n == base_n - removed, (base_n, new_n, removed)
assert removed <= 0.5 * base_n + 1e-9


def f32(dt, data):
    if dt == "F32":
        return struct.unpack(f"<{len(data)//4}f", data)
    raw = struct.unpack(f"<{len(data)//2}H", data)
    return struct.unpack(f"<{len(raw)}f", struct.pack(f"<{len(raw)}I", *[r << 16 for r in raw]))


if acc:
    tb, tm = st.tensors(model), st.tensors(f"{out}/merged")
    a, b = span(acc[-1])  # the lowest merge: nothing below it moved, so it keeps index a
    name = lambda i: f"model.layers.{i}.mlp.up_proj.weight"
    A = f32(*[tb[name(a)][0], tb[name(a)][2]])
    want = list(A)
    for k in range(a + 1, b + 1):
        K = f32(tb[name(k)][0], tb[name(k)][2])
        want = [w + (x - y) for w, x, y in zip(want, K, A)]
    got = f32(tm[name(a)][0], tm[name(a)][2])
    tol = 1e-2 if tm[name(a)][0] == "BF16" else 1e-5
    worst = max(abs(g - w) / (1e-3 + abs(w)) for g, w in zip(got, want))
    assert worst < tol, f"merged layer {a}: relative error {worst}"
print(f"qwen3-laco: {len(acc)} merges accepted, {base_n} -> {new_n} layers")
