#!/usr/bin/env python3
"""Independent reference for the depth tools' tests (layer-drop, layer-merge): reads safetensors
with the standard library only (struct/json/array, bf16 and f16 by hand), and recomputes what the
output must hold, tensor by tensor. Float32 arithmetic is emulated by rounding every operation's
(double) result to float32, which is exact for +, -, / of float32 operands.

usage:
  depth_ref.py names PATH                       tensor names in file order
  depth_ref.py params PATH                      total elements
  depth_ref.py check-drop SRC OUT KEPT          KEPT = "0,1,4,...": OUT layer j == SRC layer KEPT[j]
  depth_ref.py check-merge SRC OUT RULE A-B...  RULE = rdsc|average|replace
Prints "ok" or the first difference (exit 1).
"""
import array, json, os, struct, sys

MERGED = ("self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj.", "self_attn.o_proj.",
          "mlp.gate_proj.", "mlp.up_proj.", "mlp.down_proj.", "self_attn.q_norm.", "self_attn.k_norm.")


def read_file(path):
    with open(path, "rb") as f:
        raw = f.read()
    (hl,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + hl])
    meta = hdr.pop("__metadata__", None)
    base = 8 + hl
    ts = {}
    for name, t in hdr.items():
        a, b = t["data_offsets"]
        ts[name] = (t["dtype"], t["shape"], raw[base + a:base + b], a)
    order = sorted(ts, key=lambda n: ts[n][3])
    return ts, order, meta


def read(path):
    """(tensors, names in order, config dict or None) of a file, a folder (maybe sharded)."""
    if os.path.isdir(path):
        idx = os.path.join(path, "model.safetensors.index.json")
        cfg = json.load(open(os.path.join(path, "config.json")))
        if os.path.exists(idx):
            files = []
            for f in json.load(open(idx))["weight_map"].values():
                if f not in files:
                    files.append(f)
        else:
            files = ["model.safetensors"]
        ts, order = {}, []
        for f in sorted(files):
            t, o, _ = read_file(os.path.join(path, f))
            ts.update(t)
            order += o
        return ts, order, cfg
    ts, order, meta = read_file(path)
    cfg = json.loads(meta["config"]) if meta and "config" in meta else None
    return ts, order, cfg


def to_f32(dtype, b):
    if dtype == "F32":
        return array.array("f", b)
    if dtype == "BF16":
        out = bytearray(len(b) * 2)
        out[2::4] = b[0::2]
        out[3::4] = b[1::2]
        return array.array("f", bytes(out))
    if dtype == "F16":
        n = len(b) // 2
        return array.array("f", struct.unpack("<%de" % n, b))
    raise SystemExit("unsupported dtype " + dtype)


def from_f32(dtype, a):
    if dtype == "F32":
        return a.tobytes()
    if dtype == "F16":
        return struct.pack("<%de" % len(a), *a)
    assert dtype == "BF16"
    u = array.array("I", a.tobytes())
    out = array.array("H", bytes(2 * len(u)))
    for i, x in enumerate(u):
        if (x & 0x7F800000) == 0x7F800000 and (x & 0x7FFFFF):
            out[i] = (x >> 16) | 0x40          # quiet NaN
        else:
            out[i] = ((x + 0x7FFF + ((x >> 16) & 1)) >> 16) & 0xFFFF
    return out.tobytes()


def f32(vals):
    return array.array("f", vals)  # each double rounded to float32 (nearest even)


def merge(rule, xs):
    base = xs[0]
    acc = array.array("f", base)
    for t in xs[1:]:
        if rule == "rdsc":
            acc = f32([a + d for a, d in zip(acc, f32([x - y for x, y in zip(t, base)]))])
        elif rule == "average":
            acc = f32([a + x for a, x in zip(acc, t)])
        else:  # replace: the official code's in-place update
            acc = f32([a + d for a, d in zip(acc, f32([x - a for x, a in zip(t, acc)]))])
    if rule == "average":
        acc = f32([a / len(xs) for a in acc])
    return acc


def split(name):
    """("model.layers.", 3, "mlp.up_proj.weight") or None"""
    parts = name.split(".")
    for i in range(len(parts) - 1):
        if parts[i] == "layers" and parts[i + 1].isdigit():
            return ".".join(parts[:i + 1]) + ".", int(parts[i + 1]), ".".join(parts[i + 2:])
    return None


def fail(msg):
    print(msg)
    sys.exit(1)


def expected(src, groups, rule):
    """name -> (dtype, shape, bytes) of the model that merging `groups` (list of (A, B), single
    layers as (l, l)) must produce."""
    ts, order, _ = src
    want = {}
    for name in order:
        s = split(name)
        if not s:
            want[name] = ts[name][:3]
    for j, (a, b) in enumerate(groups):
        for name in order:
            s = split(name)
            if not s or s[1] != a:
                continue
            pre, _, rest = s
            dt, shape, data = ts[name][:3]
            out = pre + "%d.%s" % (j, rest)
            if a == b or not rest.startswith(MERGED):
                want[out] = (dt, shape, data)
                continue
            xs = [to_f32(ts[pre + "%d.%s" % (k, rest)][0], ts[pre + "%d.%s" % (k, rest)][2])
                  for k in range(a, b + 1)]
            want[out] = (dt, shape, from_f32(dt, merge(rule, xs)))
    return want


def compare(want, out, n_layers):
    ts, order, cfg = out
    if set(ts) != set(want):
        fail("names differ: missing %s, extra %s" % (sorted(set(want) - set(ts))[:5],
                                                      sorted(set(ts) - set(want))[:5]))
    for name in want:
        dt, shape, data = want[name]
        if ts[name][0] != dt or list(ts[name][1]) != list(shape):
            fail("%s: %s %s, expected %s %s" % (name, ts[name][0], ts[name][1], dt, shape))
        if ts[name][2] != data:
            a, b = ts[name][2], data
            i = next(i for i in range(len(a)) if a[i] != b[i])
            fail("%s: bytes differ first at byte %d" % (name, i))
    if cfg is not None and cfg.get("num_hidden_layers", cfg.get("text_config", {}).get("num_hidden_layers")) != n_layers:
        fail("config num_hidden_layers != %d" % n_layers)
    print("ok")


def main():
    cmd = sys.argv[1]
    if cmd == "names":
        print("\n".join(read(sys.argv[2])[1]))
    elif cmd == "params":
        ts = read(sys.argv[2])[0]
        n = 0
        for dt, shape, _, _ in ts.values():
            p = 1
            for d in shape:
                p *= d
            n += p
        print(n)
    elif cmd == "check-drop":
        src = read(sys.argv[2])
        kept = [int(x) for x in sys.argv[4].split(",")]
        compare(expected(src, [(k, k) for k in kept], "rdsc"), read(sys.argv[3]), len(kept))
    elif cmd == "check-merge":
        src = read(sys.argv[2])
        rule = sys.argv[4]
        merges = sorted(tuple(int(x) for x in g.split("-")) for g in sys.argv[5:])
        n = max(s[1] for s in map(split, src[1]) if s) + 1
        groups, l = [], 0
        while l < n:
            m = next((g for g in merges if g[0] == l), None)
            groups.append(m if m else (l, l))
            l = m[1] + 1 if m else l + 1
        compare(expected(src, groups, rule), read(sys.argv[3]), len(groups))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
