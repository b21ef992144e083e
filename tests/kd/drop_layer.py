#!/usr/bin/env python3
"""drop_layer.py SRC_FOLDER DST_FOLDER L[,L...] — a test fixture maker (stdlib only): the model with
those decoder layers removed, later layers renumbered, num_hidden_layers updated (what layer-drop
does, Gemma's layer_types too; kept here so kd-train's tests need no other tool). Copies the tokenizer files."""
import json, os, re, shutil, struct, sys

src, dst, drop = sys.argv[1], sys.argv[2], {int(x) for x in sys.argv[3].split(",")}
cfg = json.load(open(os.path.join(src, "config.json")))
L = cfg["num_hidden_layers"]
keep = [l for l in range(L) if l not in drop]
new = {old: i for i, old in enumerate(keep)}
with open(os.path.join(src, "model.safetensors"), "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    hdr = json.loads(f.read(n))
    data = f.read()
meta = hdr.pop("__metadata__", None)
out, blobs, off = {}, [], 0
for name, t in sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"][0]):
    m = re.match(r"model\.layers\.(\d+)\.(.*)", name)
    if m:
        l = int(m.group(1))
        if l in drop:
            continue
        name = "model.layers.%d.%s" % (new[l], m.group(2))
    a, b = t["data_offsets"]
    blobs.append(data[a:b])
    out[name] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [off, off + b - a]}
    off += b - a
if meta:
    out["__metadata__"] = meta
h = json.dumps(out).encode()
h += b" " * (-len(h) % 8)
os.makedirs(dst, exist_ok=True)
with open(os.path.join(dst, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for b in blobs:
        f.write(b)
cfg["num_hidden_layers"] = len(keep)
if isinstance(cfg.get("layer_types"), list):  # Gemma 3: every kept layer keeps its attention type
    cfg["layer_types"] = [cfg["layer_types"][l] for l in keep]
json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
for fn in ("tokenizer.json", "tokenizer_config.json"):
    if os.path.exists(os.path.join(src, fn)):
        shutil.copy(os.path.join(src, fn), os.path.join(dst, fn))
