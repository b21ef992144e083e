#!/usr/bin/env python3
"""Independent reference for tests/wmask.bats (python3 stdlib only: safetensors read by hand).

  wmask_ref.py check IN OUT REPORT --sparsity S [--scope row|tensor|global] [--nm N:M]
                     [--acts DUMP] [--targets RE]
      Recomputes every score (|W| or |W|*||X_j|| with norms from the dumped activations X),
      orders the weights by (score, already-zero first, position), and checks that OUT zeroes
      exactly the first floor(S*n) of every row / tensor / all targets / N:M group (plus the
      weights that were zero already), that every other byte of OUT equals IN, and that the
      JSON lines of REPORT give the same counts. Prints "ok <details>" or fails with a message.
  wmask_ref.py convert IN OUT DTYPE     rewrite a safetensors file with float tensors as DTYPE
  wmask_ref.py zeros FILE               {"name": zeros} of every tensor
"""
import json, math, re, struct, sys
from fractions import Fraction

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I32": 4, "I64": 8}


def read_st(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    meta = hdr.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, t in hdr.items():
        a, b = t["data_offsets"]
        out[name] = (t["dtype"], t["shape"], raw[base + a:base + b])
    return out, meta, list(hdr.keys())


def read_model(path):
    import os
    if os.path.isdir(path):
        path = os.path.join(path, "model.safetensors")
    return read_st(path)


def decode(dtype, data):
    """floats (python doubles holding the exact stored values)"""
    if dtype == "F32":
        return list(struct.unpack("<%df" % (len(data) // 4), data))
    if dtype == "F16":
        return list(struct.unpack("<%de" % (len(data) // 2), data))
    if dtype == "BF16":
        h = struct.unpack("<%dH" % (len(data) // 2), data)
        return list(struct.unpack("<%df" % len(h), struct.pack("<%dI" % len(h), *[x << 16 for x in h])))
    if dtype == "F64":
        return list(struct.unpack("<%dd" % (len(data) // 8), data))
    raise SystemExit("unsupported dtype " + dtype)


def count_zeros(dtype, data):
    """+0 and -0 among the elements, counted on the bit patterns (fast for big tensors)"""
    code, sign = {"F32": ("I", 1 << 31), "F16": ("H", 1 << 15), "BF16": ("H", 1 << 15),
                  "F64": ("Q", 1 << 63)}[dtype]
    v = memoryview(data).cast(code).tolist()
    return v.count(0) + v.count(sign)


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def kcount(s, n):
    return math.floor(Fraction(s) * n)


def check(args):
    inp, outp, report = args[0], args[1], args[2]
    opts = dict(zip(args[3::2], args[4::2]))
    s = opts.get("--sparsity", "0.5")
    scope = opts.get("--scope", "row")
    nm = opts.get("--nm")
    targets = re.compile(opts.get("--targets",
                         r"(^|\.)layers\.[0-9]+\.(self_attn|mlp)\.(q|k|v|o|gate|up|down)_proj\.weight$"))
    A, _, order = read_model(inp)
    B, _, _ = read_model(outp)
    acts = read_st(opts["--acts"])[0] if "--acts" in opts else None
    lines = [json.loads(l) for l in open(report) if l.strip()]
    rep = {l["tensor"]: l for l in lines if l.get("action") == "prune"}
    summ = [l for l in lines if l.get("action") == "summary"]
    if set(A) != set(B):
        fail("tensor names differ")
    sel = [n for n in order if targets.search(n)]
    if set(sel) != set(rep):
        fail("reported tensors %s != targets %s" % (sorted(rep), sorted(sel)))
    # score, nz, position of every target weight; groups = lists of (key, global position)
    groups, zeros_out, items_of = [], {}, {}
    gpos = 0
    allitems = []
    for name in order:
        da, sa, ra = A[name]
        db, sb, rb = B[name]
        if da != db or sa != sb:
            fail(name + ": dtype/shape changed")
        if name not in sel:
            if ra != rb:
                fail(name + ": not a target but its bytes changed")
            continue
        w, o = decode(da, ra), decode(db, rb)
        rows = sa[0] if len(sa) >= 2 else 1
        cols = len(w) // rows
        norm = None
        if acts is not None:
            m = re.search(r"layers\.(\d+)\.(self_attn|mlp)\.(\w+_proj)\.weight$", name)
            key = "layers.%s.%s" % (m.group(1), m.group(3))
            xd, xs, xr = acts[key]
            x = decode(xd, xr)
            ncol = xs[1]
            if ncol != cols:
                fail(key + ": activation width %d != %d" % (ncol, cols))
            ss = [0.0] * ncol
            for t in range(xs[0]):
                row = x[t * ncol:(t + 1) * ncol]
                for j in range(ncol):
                    ss[j] += row[j] * row[j]
            norm = [f32(math.sqrt(v)) for v in ss]
        items = []
        nz_changed = 0
        for i, (a, b) in enumerate(zip(w, o)):
            if b != a and b != 0.0:
                fail("%s[%d]: %r became %r (neither kept nor zeroed)" % (name, i, a, b))
            if b == a and b != 0.0:
                # identical value: bytes must be identical too (no rounding trip)
                pass
            sc = abs(f32(a * norm[i % cols])) if norm is not None else abs(a)
            items.append((sc, a != 0.0, gpos + i, b == 0.0))
        zeros_out[name] = sum(1 for it in items if it[3])
        items_of[name] = (items, rows, cols)
        gpos += len(w)
        if zeros_out[name] != rep[name]["zeros"]:
            fail("%s: reported %s zeros, counted %d" % (name, rep[name]["zeros"], zeros_out[name]))
        n = len(w)
        if abs(rep[name]["sparsity"] - zeros_out[name] / n) > 1e-12:
            fail(name + ": reported sparsity differs")
        if scope == "global" and not nm:
            allitems.extend(items)
        elif nm:
            N, M = map(int, nm.split(":"))
            if cols % M:
                fail(name + ": cols not divisible")
            for r in range(rows):
                for g in range(0, cols, M):
                    groups.append((items[r * cols + g:r * cols + g + M], N))
        elif scope == "tensor":
            groups.append((items, kcount(s, n)))
        else:
            for r in range(rows):
                groups.append((items[r * cols:(r + 1) * cols], kcount(s, cols)))
    if allitems:
        groups.append((allitems, kcount(s, len(allitems))))
    ngroups = exact = 0
    for items, k in groups:
        srt = sorted(items, key=lambda it: (it[0], it[1], it[2]))
        want = set(it[2] for it in srt[:k]) | set(it[2] for it in items if not it[1])
        got = set(it[2] for it in items if it[3])
        if want != got:
            bad = sorted(want ^ got)[:5]
            fail("group of %d (k=%d): zeroed set differs from the lowest-scored at positions %s"
                 % (len(items), k, bad))
        pre = sum(1 for it in items if not it[1])
        if len(got) != max(k, pre):
            fail("group: %d zeros, expected max(k=%d, already zero %d)" % (len(got), k, pre))
        exact += len(got) == k
        ngroups += 1
    tot_sel = sum(len(v[0]) for v in items_of.values())
    tot_z = sum(zeros_out.values())
    if len(summ) != 1:
        fail("expected one summary line")
    sm = summ[0]
    if sm["zeros"] != tot_z or sm["params"] != tot_sel or sm["tensors"] != len(sel):
        fail("summary %s != counted zeros %d params %d tensors %d" % (sm, tot_z, tot_sel, len(sel)))
    mp = sum(len(B[n][2]) // SIZES[B[n][0]] for n in B)
    mz = sum(count_zeros(B[n][0], B[n][2]) for n in B if B[n][0] in ("F32", "F16", "BF16", "F64"))
    if sm["model_params"] != mp or sm["model_zeros"] != mz:
        fail("summary model counts %s/%s != %d/%d" % (sm["model_params"], sm["model_zeros"], mp, mz))
    print("ok groups=%d exact=%d zeros=%d of %d" % (ngroups, exact, tot_z, tot_sel))


def convert(args):
    inp, outp, dt = args
    T, meta, order = read_model(inp)
    hdr, blobs, off = {}, [], 0
    if meta:
        hdr["__metadata__"] = meta
    for name in order:
        d, shape, raw = T[name]
        if d in ("F32", "F16", "BF16"):
            v = decode(d, raw)
            if dt == "F32":
                raw = struct.pack("<%df" % len(v), *v)
            elif dt == "F16":
                raw = struct.pack("<%de" % len(v), *v)
            elif dt == "BF16":  # truncating is fine for test data
                raw = struct.pack("<%dH" % len(v), *[x >> 16 for x in struct.unpack("<%dI" % len(v), struct.pack("<%df" % len(v), *v))])
            d = dt
        hdr[name] = {"dtype": d, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(outp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def zeros(args):
    T, _, order = read_model(args[0])
    print(json.dumps({n: count_zeros(T[n][0], T[n][2]) for n in order}))


if __name__ == "__main__":
    {"check": check, "convert": convert, "zeros": zeros}[sys.argv[1]](sys.argv[2:])
