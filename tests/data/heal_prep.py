#!/usr/bin/env python3
"""heal-sft test helper (python3 stdlib only).

  heal_prep.py tokenize TOKENIZER_JSON TEXT_FILE > ids.jsonl
      BPE with byte fallback as stories260K's tokenizer.json defines it (Prepend/Replace
      normalizer, merges by rank, <0xXX> byte tokens): one {"ids": [BOS, ...]} line per text line.
  heal_prep.py drop MODEL_DIR OUT_DIR LAYER
      The model with one layer removed (later layers renumbered, num_hidden_layers updated),
      as a float32 safetensors + config.json + tokenizer files.
"""
import json, os, shutil, struct, sys


def tokenize(tok_path, text_path):
    t = json.load(open(tok_path, encoding="utf-8"))
    m = t["model"]
    vocab = m["vocab"]
    ranks = {}
    for i, mg in enumerate(m["merges"]):
        a, b = mg.split(" ") if isinstance(mg, str) else mg
        ranks[(a, b)] = i
    bos = 1
    out = sys.stdout
    for line in open(text_path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line:
            continue
        s = "\u2581" + line.replace(" ", "\u2581")
        parts = list(s)
        while len(parts) > 1:
            best, bi = None, -1
            for i in range(len(parts) - 1):
                r = ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if bi < 0:
                break
            parts[bi:bi + 2] = [parts[bi] + parts[bi + 1]]
        ids = [bos]
        for p in parts:
            if p in vocab:
                ids.append(vocab[p])
            else:
                ids.extend(vocab["<0x%02X>" % b] for b in p.encode("utf-8"))
        out.write(json.dumps({"ids": ids}) + "\n")


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    meta = hdr.pop("__metadata__", None)
    return hdr, data, meta


def drop(model, out, layer):
    hdr, data, _ = read_st(os.path.join(model, "model.safetensors"))
    cfg = json.load(open(os.path.join(model, "config.json")))
    L = cfg["num_hidden_layers"]
    tensors = []
    for name, info in sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        a, b = info["data_offsets"]
        parts = name.split(".")
        if "layers" in parts:
            i = parts.index("layers")
            li = int(parts[i + 1])
            if li == layer:
                continue
            if li > layer:
                parts[i + 1] = str(li - 1)
        tensors.append((".".join(parts), info["dtype"], info["shape"], data[a:b]))
    cfg["num_hidden_layers"] = L - 1
    os.makedirs(out, exist_ok=True)
    h, off = {}, 0
    for name, dt, shape, raw in tensors:
        h[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    hb = json.dumps(h).encode()
    hb += b" " * (-len(hb) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb)
        for t in tensors:
            f.write(t[3])
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(model, fn)):
            shutil.copy(os.path.join(model, fn), os.path.join(out, fn))


if __name__ == "__main__":
    if sys.argv[1] == "tokenize":
        tokenize(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "drop":
        drop(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit("usage: heal_prep.py tokenize|drop ...")
