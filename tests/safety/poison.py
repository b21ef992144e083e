#!/usr/bin/env python3
"""Copy a model folder and damage it, for tests/safety.bats (python3 stdlib only).
    poison.py SRC DST nan TENSOR      first element of TENSOR set to NaN (f32/bf16/f16)
    poison.py SRC DST layers N        config.json's num_hidden_layers set to N (weights untouched)
    poison.py SRC DST maxpos N        config.json's max_position_embeddings set to N
"""
import json, os, shutil, struct, sys

src, dst, what, arg = sys.argv[1:5]
shutil.copytree(src, dst)
if what == "nan":
    p = os.path.join(dst, "model.safetensors")
    with open(p, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        t = h[arg]
        nan = {"F32": struct.pack("<f", float("nan")), "BF16": b"\xc0\x7f", "F16": b"\x00\x7e"}[t["dtype"]]
        f.seek(8 + n + t["data_offsets"][0])
        f.write(nan * 4)
else:
    p = os.path.join(dst, "config.json")
    c = json.load(open(p))
    c["num_hidden_layers" if what == "layers" else "max_position_embeddings"] = int(arg)
    json.dump(c, open(p, "w"), indent=2)
