#!/usr/bin/env python3
"""Independent SparseGPT reference for tests/wmask.bats (numpy; written from the paper's
Algorithm 1, Frantar & Alistarh 2023, not from wmask's C code).

  wmask_sgpt_ref.py check IN OUT ACTS REPORT [--sparsity S] [--nm N:M] [--scope row|tensor]
                    [--damp L] [--blocksize B] [--tensors RE]
      For every pruned tensor of REPORT whose name matches RE (default: all), rebuild SparseGPT
      from the dumped inputs X of that layer (ACTS, wmask --dump-acts: the same calibration
      inputs wmask used, taken from the already-pruned layers before it):
        H = 2/n XᵀX; dead inputs (H_jj = 0): H_jj = 1, W[:, j] = 0; H += L·mean(diag H)·I;
        U = chol(H⁻¹)ᵀ (upper, H⁻¹ = UᵀU: numpy inv + cholesky, float64);
        for each column i, left to right (no lazy batching — the plain rank-1 form):
          at i % B == 0 choose the block's mask by w²/U_jj² with wmask's documented exact counts
          (row r zeroes floor(k·c/cols) of its first c columns at every block edge, input zeros
          first; --scope tensor: the block's rows together; --nm: at each group start the N
          lowest of the group);
          q = 0 where masked else w; err = (w - q)/U_ii; W[:, i:] -= err ⊗ U[i, i:].
      Then compares with OUT: the zero sets must be equal (a near-tie may flip: at most 0.1% of
      a tensor's weights, reported), every kept weight within 1e-4 · max|W| (relative to the
      stored dtype's rounding), every row/group count exact. Prints "ok ..." or "FAIL: ...".
  wmask_sgpt_ref.py owl REPORT S [IN OUT [magnitude]]
      The --owl report: per-layer sparsities present, their parameter-weighted mean equal to
      floor(S·P)/P exactly (whole weights), sum of the layers' zeros == the summary's zeros
      (when no input weight was zero), spread <= 2λ (+ rounding), order follows the outlier
      ratios (more outliers, lower sparsity). With IN and OUT: every row of every tensor has
      its share of the tensor's budget (zeros // rows, one more for the first zeros % rows rows)
      and, for magnitude, its zeros are its lowest |W|.
"""
import json, math, re, struct, sys
from fractions import Fraction

try:
    import numpy as np
except ImportError:  # the bats tests skip before calling us without numpy
    print("SKIP: numpy missing")
    sys.exit(3)

DT = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_st(path):
    import os
    if os.path.isdir(path):
        idx = os.path.join(path, "model.safetensors.index.json")
        if os.path.exists(idx):
            out = {}
            for f in sorted(set(json.load(open(idx))["weight_map"].values())):
                out.update(read_st(os.path.join(path, f)))
            return out
        path = os.path.join(path, "model.safetensors")
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    hdr.pop("__metadata__", None)
    out = {}
    for name, t in hdr.items():
        a, b = t["data_offsets"]
        buf = raw[8 + n + a:8 + n + b]
        if t["dtype"] == "BF16":
            v = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            v = np.frombuffer(buf, DT[t["dtype"]])
        out[name] = (t["dtype"], v.astype(np.float64).reshape(t["shape"]))
    return out


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def order(scores, positions):
    """indices sorted by (score, position); NaN last"""
    s = np.where(np.isnan(scores), np.inf, scores)
    return np.lexsort((positions, np.isnan(scores), s))


def allot(k, done, cum, z_here, z_after, n_here, n_after, z_total):
    if z_total >= k:
        return z_here
    lo = max(z_here, k - done - n_after)
    hi = min(n_here, k - done - z_after)
    return min(max(cum - done, lo), hi)


def sparsegpt(W0, X, S, nm, scope, damp, B, quota_zeros=None, nm_n=None):
    W = W0.copy()
    rows, cols = W.shape
    n = X.shape[0]
    H = 2.0 / n * (X.T @ X)
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    forced = (W == 0)
    H += damp * np.mean(np.diag(H)) * np.eye(cols)
    U = np.linalg.cholesky(np.linalg.inv(H)).T
    d = np.diag(U)
    mask = np.zeros_like(W, dtype=bool)
    if nm:
        N, M = nm
        if nm_n is not None:
            N = nm_n
        B = -(-B // M) * M
    if not nm:
        if quota_zeros is None:
            quota_zeros = rows * math.floor(Fraction(S) * cols) if scope == "row" else math.floor(Fraction(S) * rows * cols)
        kr = [quota_zeros // rows + (r < quota_zeros % rows) for r in range(rows)]
        done = [0] * rows
        tdone = 0
    for i in range(cols):
        if i % B == 0:
            i2 = min(i + B, cols)
            if not nm:
                sc = np.where(forced[:, i:i2], -1.0, W[:, i:i2] ** 2 / d[i:i2] ** 2)
                if scope == "row":
                    for r in range(rows):
                        zb = int(forced[r, i:i2].sum())
                        za = int(forced[r, i2:].sum())
                        take = allot(kr[r], done[r], kr[r] * i2 // cols, zb, za, i2 - i, cols - i2,
                                     int(forced[r].sum()))
                        idx = order(sc[r], np.arange(i2 - i))[:take]
                        mask[r, i + idx] = True
                        done[r] += take
                else:
                    zb = int(forced[:, i:i2].sum())
                    za = int(forced[:, i2:].sum())
                    take = allot(quota_zeros, tdone, quota_zeros * i2 // cols, zb, za, rows * (i2 - i),
                                 rows * (cols - i2), int(forced.sum()))
                    flat = sc.reshape(-1)
                    idx = order(flat, np.arange(flat.size))[:take]
                    mask[idx // (i2 - i), i + idx % (i2 - i)] = True
                    tdone += take
        if nm and i % M == 0:
            sc = np.where(forced[:, i:i + M], -1.0, W[:, i:i + M] ** 2 / d[i:i + M] ** 2)
            for r in range(rows):
                nz = int(forced[r, i:i + M].sum())
                idx = order(sc[r], np.arange(M))[:max(N, nz)]
                mask[r, i + idx] = True
        w = W[:, i].copy()
        q = np.where(mask[:, i], 0.0, w)
        err = (w - q) / d[i]
        W[:, i:] -= np.outer(err, U[i, i:])
        W[:, i] = q
    return W, mask


def check(a):
    inp, outp, acts, report = a[:4]
    o = dict(zip(a[4::2], a[5::2]))
    S = o.get("--sparsity", "0.5")
    nm = tuple(map(int, o["--nm"].split(":"))) if "--nm" in o else None
    scope = o.get("--scope", "row")
    damp = float(o.get("--damp", "0.01"))
    B = int(o.get("--blocksize", "128"))
    pick = re.compile(o.get("--tensors", "."))
    A, Bm, X = read_st(inp), read_st(outp), read_st(acts)
    lines = [json.loads(l) for l in open(report) if l.strip()]
    rep = {l["tensor"]: l for l in lines if l.get("action") == "prune"}
    checked, flips_all, worst = 0, 0, 0.0
    for name, line in rep.items():
        if not pick.search(name):
            continue
        m = re.search(r"layers\.(\d+)\.(self_attn|mlp)\.(\w+_proj)\.weight$", name)
        x = X["layers.%s.%s" % (m.group(1), m.group(3))][1]
        dt, W0 = A[name]
        dto, Wout = Bm[name]
        if dt != dto or W0.shape != Wout.shape:
            fail(name + ": dtype/shape changed")
        rows, cols = W0.shape
        qz = line.get("owl_zeros")
        nmn = int(line["owl_nm"].split(":")[0]) if "owl_nm" in line else None
        W, mask = sparsegpt(W0, x, S, nm, scope, damp, B, qz, nmn)
        zout = Wout == 0
        # exact counts
        if nm:
            N = nmn if nmn is not None else nm[0]
            g = zout.reshape(rows, cols // nm[1], nm[1]).sum(axis=2)
            if not (g == N).all():
                fail("%s: groups with %s zeros, want %d" % (name, sorted(set(g.reshape(-1).tolist())), N))
        elif scope == "row":
            k = qz if qz is not None else rows * math.floor(Fraction(S) * cols)
            want = np.array([k // rows + (r < k % rows) for r in range(rows)])
            if not (zout.sum(axis=1) == want).all():
                fail("%s: row zero counts differ from the quota" % name)
        else:
            k = qz if qz is not None else math.floor(Fraction(S) * rows * cols)
            if zout.sum() != k:
                fail("%s: %d zeros, want %d" % (name, zout.sum(), k))
        if int(zout.sum()) != line["zeros"]:
            fail(name + ": reported zeros differ")
        flips = int((zout != mask).sum())
        if flips > max(1, rows * cols // 1000):
            fail("%s: %d of %d zeroed positions differ from the reference" % (name, flips, rows * cols))
        keep = ~zout & ~mask
        scale = np.abs(W0).max()
        err = np.abs(Wout - W)[keep].max() / scale if keep.any() else 0.0
        tol = 1e-4 if dt in ("F32", "F64") else 1e-2
        if err > tol:
            fail("%s: kept weights differ by %.3g (relative to max|W|) > %g" % (name, err, tol))
        # the update did something: kept weights moved from the input
        if keep.any() and np.abs(Wout - W0)[keep].max() == 0:
            fail(name + ": no weight was updated (not SparseGPT)")
        worst = max(worst, err)
        flips_all += flips
        checked += 1
    if not checked:
        fail("no tensor checked")
    print("ok tensors=%d max_rel_diff=%.2e mask_flips=%d" % (checked, worst, flips_all))


def owl(a):
    report, S = a[0], Fraction(a[1])
    lines = [json.loads(l) for l in open(report) if l.strip()]
    lay = [l for l in lines if l.get("action") == "owl"]
    summ = [l for l in lines if l.get("action") == "summary"][0]
    if not lay:
        fail("no owl lines")
    P = sum(l["params"] for l in lay)
    Z = sum(l["zeros"] for l in lay)
    if Z != math.floor(S * P):
        fail("layers' zeros %d != floor(S*P) = %d" % (Z, math.floor(S * P)))
    if summ["params"] != P:
        fail("summary params %d != layers' %d" % (summ["params"], P))
    if summ["zeros"] != Z:
        fail("summary zeros %d != planned %d" % (summ["zeros"], Z))
    sp = [l["sparsity"] for l in lay]
    lam = summ["owl_lambda"]
    if max(sp) - min(sp) > 2 * lam + 1e-3:
        fail("spread %.4f > 2*lambda" % (max(sp) - min(sp)))
    # ordered by outlier ratio: more outliers -> lower sparsity (up to one weight of rounding)
    for x in lay:
        for y in lay:
            if x["outlier_ratio"] > y["outlier_ratio"] and x["owl_sparsity"] > y["owl_sparsity"] + 1e-12:
                fail("layer %d has more outliers but a higher sparsity than layer %d" % (x["layer"], y["layer"]))
    # tensors: sum of their zeros per layer = the layer's budget
    per = {}
    for l in lines:
        if l.get("action") == "prune":
            L = int(re.search(r"layers\.(\d+)\.", l["tensor"]).group(1))
            per[L] = per.get(L, 0) + l["zeros"]
    for l in lay:
        if per.get(l["layer"]) != l["zeros"]:
            fail("layer %d: tensors' zeros %s != budget %d" % (l["layer"], per.get(l["layer"]), l["zeros"]))
    if len(a) >= 4:
        A, Bm = read_st(a[2]), read_st(a[3])
        for l in lines:
            if l.get("action") != "prune":
                continue
            W0, W1 = A[l["tensor"]][1], Bm[l["tensor"]][1]
            rows = W0.shape[0]
            k = l["owl_zeros"]
            want = np.array([k // rows + (r < k % rows) for r in range(rows)])
            z = W1 == 0
            if not (z.sum(axis=1) == want).all():
                fail(l["tensor"] + ": row zero counts differ from the tensor's OWL budget")
            if len(a) >= 5 and a[4] == "magnitude":
                for r in range(rows):
                    zr, kr = np.abs(W0[r][z[r]]), np.abs(W0[r][~z[r]])
                    if zr.size and kr.size and zr.max() > kr.min():
                        fail("%s row %d: a zeroed |W| %g above a kept %g" % (l["tensor"], r, zr.max(), kr.min()))
                    if (W1[r][~z[r]] != W0[r][~z[r]]).any():
                        fail("%s row %d: a kept weight changed" % (l["tensor"], r))
    print("ok layers=%d mean=%s spread=%.4f" % (len(lay), Fraction(Z, P), max(sp) - min(sp)))


if __name__ == "__main__":
    {"check": check, "owl": owl}[sys.argv[1]](sys.argv[2:])
