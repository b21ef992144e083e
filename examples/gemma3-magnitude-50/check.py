#!/usr/bin/env python3
"""Assertions of `make check`: every attention/MLP projection of each pruned model has exactly the
asked share of zeros in every row (per-row scope), counted here from the weights; embeddings and
norms are untouched; the magnitude model zeroed exactly the smallest |W| of each row."""
import json, sys
sys.path.insert(0, "../lib")
import st

out, model, sparsity, methods = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
PROJ = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
base = st.tensors(model)


def values(dtype, shape, data):
    import struct
    if dtype == "F32":
        return list(struct.unpack(f"<{len(data)//4}f", data))
    if dtype == "BF16":
        raw = struct.unpack(f"<{len(data)//2}H", data)
        return list(struct.unpack(f"<{len(raw)}f", struct.pack(f"<{len(raw)}I", *[r << 16 for r in raw])))
    raise SystemExit(f"dtype {dtype} not handled by this check")


for m in methods:
    t = st.tensors(f"{out}/{m}")
    for name, (dt, shape, data) in t.items():
        if not any(p in name for p in PROJ):
            assert data == base[name][2], f"{m}: {name} changed but is not a projection"
            continue
        v, b = values(dt, shape, data), values(*base[name])
        rows, cols = shape
        want = round(sparsity * cols)
        for r in range(rows):
            row = v[r * cols:(r + 1) * cols]
            z = sum(1 for x in row if x == 0)
            assert z == want, f"{m}: {name} row {r}: {z} zeros, want {want}"
            if m == "magnitude":
                brow = b[r * cols:(r + 1) * cols]
                kept = [abs(x) for x, y in zip(brow, row) if y != 0]
                cut = [abs(x) for x, y in zip(brow, row) if y == 0]
                assert not kept or not cut or max(cut) <= min(kept), f"{name} row {r}: not the smallest"
    card = open(f"{out}/{m}/README.md").read()
    assert "## Weight sparsity" in card
    print(f"gemma3-magnitude-50: {m}: every projection row exactly {sparsity:.0%} zeros")
