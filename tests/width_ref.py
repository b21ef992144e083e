#!/usr/bin/env python3
"""Independent reference for width-prune's tests: the standard library only (the safetensors reader
of depth_ref.py). Recomputes OptiPFair's weight scores and the choices from them, and checks every
output tensor against the slice of the source that the tool's JSON lines say it kept.

usage:
  width_ref.py check-select SRC JSONL METHOD   kept neurons = top-k of OptiPFair's METHOD (maw|vow|pon)
                                               scores recomputed here (ties: lower index)
  width_ref.py check-slice SRC OUT JSONL       OUT's config sizes and every tensor = SRC sliced by the
                                               kept lists in JSONL (bytes; Gemma's rescaled embedding
                                               and final norm within bf16 rounding)
  width_ref.py zero SRC OUT SPEC               copy folder SRC to OUT with weights zeroed; SPEC is a
                                               comma list of up:L:N, gate:L:N (row N of up/gate_proj
                                               of layer L), head:L:H (head H's o_proj columns)
Prints "ok" or the first difference (exit 1).
"""
import json, math, os, shutil, struct, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from depth_ref import read, to_f32  # noqa: E402


def rows_of(ts, name):
    dt, shape, raw, _ = ts[name]
    a = to_f32(dt, raw)
    c = shape[1]
    return [a[i * c:(i + 1) * c] for i in range(shape[0])]


def stat(method, row):
    if method == "maw":
        return max(row) + abs(min(row))
    if method == "vow":
        n = len(row)
        m = math.fsum(row) / n
        return math.fsum((x - m) ** 2 for x in row) / (n - 1)
    if method == "pon":
        return math.fsum(abs(x) for x in row)
    raise SystemExit("unknown method " + method)


def lines(path):
    return [json.loads(l) for l in open(path) if l.startswith("{")]


def fail(msg):
    print(msg)
    sys.exit(1)


def check_select(src, jsonl, method):
    ts, _, cfg = read(src)
    n = 0
    for r in lines(jsonl):
        if r.get("part") != "mlp":
            continue
        l = r["layer"]
        pre = "model.layers.%d.mlp." % l
        g = rows_of(ts, pre + "gate_proj.weight")
        u = rows_of(ts, pre + "up_proj.weight")
        sc = [stat(method, a) + stat(method, b) for a, b in zip(g, u)]
        order = sorted(range(len(sc)), key=lambda i: (-sc[i], i))
        want = sorted(order[:r["after"]])
        if r["kept"] != want:
            fail("layer %d: kept %s, reference %s" % (l, r["kept"], want))
        for i, (a, b) in enumerate(zip(r["scores"], sc)):
            if abs(a - b) > 1e-5 * max(1.0, abs(b)):
                fail("layer %d neuron %d: score %r, reference %r" % (l, i, a, b))
        n += 1
    if n != cfg["num_hidden_layers"]:
        fail("%d mlp lines for %d layers" % (n, cfg["num_hidden_layers"]))
    print("ok")


def check_slice(src, out, jsonl):
    ts, order, cfg = read(src)
    to, order_o, cfg_o = read(out)
    L, C = cfg["num_hidden_layers"], cfg["hidden_size"]
    I, Hq = cfg["intermediate_size"], cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads", Hq)
    D = cfg.get("head_dim") or C // Hq
    rs = lines(jsonl)
    mlp = {l: list(range(I)) for l in range(L)}
    qh = {l: list(range(Hq)) for l in range(L)}
    kvh = {l: list(range(Hkv)) for l in range(L)}
    hid = list(range(C))
    for r in rs:
        if r.get("part") == "mlp":
            mlp[r["layer"]] = r["kept"]
        elif r.get("part") == "heads":
            qh[r["layer"]], kvh[r["layer"]] = r["kept"], r["kv_kept"]
        elif r.get("part") == "hidden":
            hid = r["kept"]
    # config
    want = {"hidden_size": len(hid), "intermediate_size": len(mlp[0]),
            "num_attention_heads": len(qh[0]), "num_key_value_heads": len(kvh[0])}
    for k, v in want.items():
        if cfg_o.get(k) != v:
            fail("config %s = %r, expected %r" % (k, cfg_o.get(k), v))
    if (cfg_o.get("head_dim") or cfg_o["hidden_size"] // cfg_o["num_attention_heads"]) != D:
        fail("head_dim changed: %r" % cfg_o.get("head_dim"))
    for k in cfg:
        if k not in want and k != "head_dim" and cfg_o.get(k) != cfg[k]:
            fail("config %s changed: %r -> %r" % (k, cfg[k], cfg_o.get(k)))
    # GQA: each kept group keeps the same number of its own query heads, in order
    r = Hq // Hkv
    for l in range(L):
        per = len(qh[l]) // len(kvh[l])
        groups = [h // r for h in qh[l]]
        if groups != [g for g in kvh[l] for _ in range(per)]:
            fail("layer %d: query heads %s do not fit KV groups %s" % (l, qh[l], kvh[l]))
    if order_o != order:
        fail("tensor order changed")
    heads = lambda hs: [h * D + d for h in hs for d in range(D)]
    gemma = cfg["model_type"].startswith("gemma")
    scale = math.sqrt(C / len(hid))
    tied = cfg.get("tie_word_embeddings", gemma)
    for name in order:
        dt, shape, raw, _ = ts[name]
        rows = cols = None
        rest = name.split(".layers.", 1)[1].split(".", 1)[1] if ".layers." in name else None
        l = int(name.split(".layers.", 1)[1].split(".")[0]) if rest else -1
        if rest is None:
            if name.endswith("embed_tokens.weight") or name == "lm_head.weight":
                cols = hid
            elif name.endswith("norm.weight"):
                rows = hid
        elif rest.endswith("layernorm.weight"):
            rows = hid
        elif rest in ("self_attn.q_proj.weight",):
            rows, cols = heads(qh[l]), hid
        elif rest in ("self_attn.k_proj.weight", "self_attn.v_proj.weight"):
            rows, cols = heads(kvh[l]), hid
        elif rest == "self_attn.o_proj.weight":
            rows, cols = hid, heads(qh[l])
        elif rest in ("mlp.gate_proj.weight", "mlp.up_proj.weight"):
            rows, cols = mlp[l], hid
        elif rest == "mlp.down_proj.weight":
            rows, cols = hid, mlp[l]
        elif rest.startswith("self_attn.") and rest.endswith("_norm.weight"):
            pass
        else:
            fail("unexpected tensor " + name)
        es = len(raw) // max(1, math.prod(shape))
        nr = shape[0]
        nc = shape[1] if len(shape) > 1 else 1
        rows = rows if rows is not None else list(range(nr))
        cols = cols if cols is not None else list(range(nc))
        exp = bytearray()
        for i in rows:
            base = i * nc * es
            if len(cols) == nc:
                exp += raw[base:base + nc * es]
            else:
                for j in cols:
                    exp += raw[base + j * es:base + (j + 1) * es]
        odt, oshape, oraw, _ = to[name]
        eshape = [len(rows)] + ([len(cols)] if len(shape) > 1 else [])
        if oshape != eshape or odt != dt:
            fail("%s: %s %s, expected %s %s" % (name, odt, oshape, dt, eshape))
        if gemma and len(hid) < C and (name.endswith("embed_tokens.weight") or
                                       (tied and (name == "lm_head.weight" or name.endswith("model.norm.weight")))):
            a, b = to_f32(dt, bytes(exp)), to_f32(dt, oraw)
            emb = not name.endswith("norm.weight")
            for x, y in zip(a, b):
                w = x * scale if emb else (1 + x) / scale - 1
                if abs(w - y) > 2 ** -7 * max(abs(w), 1e-30) + 1e-30:
                    fail("%s: %r, expected %r (rescaled by %g)" % (name, y, w, scale))
            continue
        if bytes(exp) != oraw:
            fail("%s: bytes differ from the source slice" % name)
    print("ok")


def zero(src, out, spec):
    if os.path.exists(out):
        shutil.rmtree(out)
    shutil.copytree(src, out)
    path = os.path.join(out, "model.safetensors")
    os.chmod(out, 0o755)
    for f in os.listdir(out):
        os.chmod(os.path.join(out, f), 0o644)
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    (hl,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + hl])
    cfg = json.load(open(os.path.join(out, "config.json")))
    C, Hq = cfg["hidden_size"], cfg["num_attention_heads"]
    D = cfg.get("head_dim") or C // Hq
    base = 8 + hl
    for item in spec.split(","):
        kind, l, n = item.split(":")
        l, n = int(l), int(n)
        name = "model.layers.%d.%s" % (l, {"up": "mlp.up_proj.weight", "gate": "mlp.gate_proj.weight",
                                            "head": "self_attn.o_proj.weight"}[kind])
        t = hdr[name]
        a, b = t["data_offsets"]
        rows, cols = t["shape"]
        es = (b - a) // (rows * cols)
        if kind == "head":
            for i in range(rows):
                o = base + a + (i * cols + n * D) * es
                raw[o:o + D * es] = bytes(D * es)
        else:
            o = base + a + n * cols * es
            raw[o:o + cols * es] = bytes(cols * es)
    with open(path, "wb") as f:
        f.write(raw)
    print("ok")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "check-select" and len(sys.argv) == 5:
        check_select(*sys.argv[2:])
    elif cmd == "check-slice" and len(sys.argv) == 5:
        check_slice(*sys.argv[2:])
    elif cmd == "zero" and len(sys.argv) == 5:
        zero(*sys.argv[2:])
    else:
        sys.exit(__doc__)
