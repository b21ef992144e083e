#!/usr/bin/env python3
"""bf16-accuracy.py — what `--gemm bf16` costs in accuracy: per-token NLL of every golden text of
every fixture model (../shared/models/*/golden.json, transformers float32) through
`ppl --per-token` with --gemm f32 and --gemm bf16; max / mean |difference| bf16 vs f32 and both
vs the golden; then stories260K's per-line corpus ppl (golden 3.8638) with both.
Usage: bench/bf16-accuracy.py [BIN_DIR] [SHARED]   (prints JSON lines, a summary on stderr)"""
import json, os, subprocess, sys, tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bindir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "bin")
shared = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "..", "shared")
models = os.path.join(shared, "models")
env = dict(os.environ)
env.pop("OPENBLAS_CORETYPE", None)


def ppl(args):
    out = subprocess.run([os.path.join(bindir, "ppl"), "-q", "-t", "2"] + args, env=env,
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def stats(a, b):
    d = [abs(x - y) for x, y in zip(a, b)]
    return {"max": max(d), "mean": sum(d) / len(d)}


for name in sorted(os.listdir(models)):
    g = json.load(open(os.path.join(models, name, "golden.json")))
    agg = {"bf16_vs_f32": [], "bf16_vs_golden": [], "f32_vs_golden": []}
    for tid, t in g["texts"].items():
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write(t["text"])
        runs = {}
        for mode in ("f32", "bf16"):
            rows = ppl(["-m", os.path.join(models, name), "--per-token", "--gemm", mode, f.name])
            runs[mode] = [r["nll"] for r in rows if "nll" in r and "pos" in r]
        os.unlink(f.name)
        gold = t["nll"]
        assert len(runs["f32"]) == len(gold) == len(runs["bf16"]), (name, tid)
        for k, (a, b) in {"bf16_vs_f32": (runs["bf16"], runs["f32"]),
                          "bf16_vs_golden": (runs["bf16"], gold),
                          "f32_vs_golden": (runs["f32"], gold)}.items():
            agg[k] += [abs(x - y) for x, y in zip(a, b)]
    r = {"bench": "bf16_accuracy", "model": name, "tokens": len(agg["f32_vs_golden"])}
    for k, d in agg.items():
        r[k] = {"max": round(max(d), 6), "mean": round(sum(d) / len(d), 6)}
    print(json.dumps(r), flush=True)

st = os.path.join(shared, "data", "stories", "stories-sampled.txt")
res = {}
for mode in ("f32", "bf16"):
    res[mode] = ppl(["-m", os.path.join(models, "stories260K"), "--lines", "--gemm", mode, st])[-1]["ppl"]
print(json.dumps({"bench": "bf16_accuracy", "stories260K_corpus_ppl": {"golden": 3.8638,
                  "f32": round(res["f32"], 5), "bf16": round(res["bf16"], 5)}}))
