"""st.py — the few safetensors reads the examples' checks need (python3 standard library only)."""
import json, os, struct


def files(path):
    """the safetensors files of a model folder (single file or shards), or [path]"""
    if not os.path.isdir(path):
        return [path]
    single = os.path.join(path, "model.safetensors")
    if os.path.exists(single):
        return [single]
    idx = json.load(open(os.path.join(path, "model.safetensors.index.json")))
    return [os.path.join(path, f) for f in dict.fromkeys(idx["weight_map"].values())]


def tensors(path):
    """{name: (dtype, shape, bytes)} of every tensor of a model"""
    out = {}
    for f in files(path):
        with open(f, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            h = json.loads(fh.read(n))
            base = 8 + n
            for k, v in h.items():
                if k == "__metadata__":
                    continue
                a, b = v["data_offsets"]
                fh.seek(base + a)
                out[k] = (v["dtype"], v["shape"], fh.read(b - a))
    return out


def zero_fraction(dtype, data):
    """fraction of exact zeros (+0 and -0) of a float tensor's bytes"""
    size = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}[dtype]
    n = len(data) // size
    if n == 0:
        return 0.0
    z = 0
    mask = (1 << (8 * size - 1)) - 1  # everything but the sign bit
    for i in range(n):
        if int.from_bytes(data[i * size:(i + 1) * size], "little") & mask == 0:
            z += 1
    return z / n


def layer_map(base, pruned, probe="self_attn.q_proj.weight"):
    """for each layer of the pruned model, the base layer whose `probe` tensor it holds unchanged"""
    tb, tp = tensors(base), tensors(pruned)
    def layers(t):
        d = {}
        for k, v in t.items():
            if k.endswith(probe) and ".layers." in k:
                d[int(k.split(".layers.")[1].split(".")[0])] = v[2]
        return d
    lb, lp = layers(tb), layers(tp)
    return [next((i for i, b in lb.items() if b == lp[j]), None) for j in sorted(lp)]
