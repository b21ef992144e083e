#!/usr/bin/python3
"""width_prune_torch.py — the PyTorch reference for bench/width-prune.sh: what a user of OptiPFair
runs for weight-only MLP pruning (prune_model(..., neuron_selection_method="MAW")), written here in
torch ops (Debian's python3-torch ships no transformers): load every weight as a float32 tensor,
score each layer's neurons by max+|min| of the gate and up rows, keep the top-k, index_select
gate/up rows and down columns, save bf16 safetensors.

    width_prune_torch.py MODEL_DIR OUT.safetensors --mlp-keep N [--threads 2]
Prints one JSON line (seconds, kept per layer checksum).
"""
import argparse, json, os, struct, sys, time
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import load_safetensors  # noqa: E402


def save_bf16(path, tensors):
    hdr, off, blobs = {}, 0, []
    for name, t in tensors.items():
        a = t.contiguous().numpy().astype(np.float32)
        u = a.view(np.uint32)
        b = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).tobytes()
        hdr[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--mlp-keep", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    w = load_safetensors(os.path.join(a.model, "model.safetensors"))
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    with torch.no_grad():
        for l in range(cfg["num_hidden_layers"]):
            p = "model.layers.%d.mlp." % l
            g, u, d = w[p + "gate_proj.weight"], w[p + "up_proj.weight"], w[p + "down_proj.weight"]
            score = (g.max(1).values + g.min(1).values.abs()) + (u.max(1).values + u.min(1).values.abs())
            keep = torch.topk(score, a.mlp_keep).indices.sort().values
            w[p + "gate_proj.weight"] = g.index_select(0, keep)
            w[p + "up_proj.weight"] = u.index_select(0, keep)
            w[p + "down_proj.weight"] = d.index_select(1, keep)
    save_bf16(a.out, w)
    print(json.dumps({"seconds": round(time.time() - t0, 3), "tensors": len(w)}))


if __name__ == "__main__":
    main()
