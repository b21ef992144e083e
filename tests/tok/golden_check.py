#!/usr/bin/env python3
"""Compare lm-tok with the transformers goldens of every model: ids, ids_no_special, tokens,
decoded. Usage: golden_check.py BIN SHARED. Prints mismatches; exit 1 if any."""
import json, subprocess, sys, os
binp, shared = sys.argv[1], sys.argv[2]
models = ["gemma3-tiny", "qwen3-tiny", "llama-tiny", "stories260K"]
bad = 0
for m in models:
    d = os.path.join(shared, "models", m)
    g = json.load(open(os.path.join(d, "golden.json")))
    texts = g["texts"]
    ids = list(texts)
    inp = "".join(json.dumps({"text": texts[k]["text"]}) + "\n" for k in ids)
    def run(*args, data=inp):
        r = subprocess.run([binp, "-m", d, *args], input=data.encode(), capture_output=True)
        if r.returncode:
            print(m, args, "FAILED", r.stderr.decode()); sys.exit(1)
        return [json.loads(l) for l in r.stdout.decode().splitlines()]
    enc = run("--jsonl")
    nos = run("--jsonl", "--no-special")
    dec = run("--decode", "--skip-special", data="".join(json.dumps({"ids": texts[k]["ids"]}) + "\n" for k in ids))
    for k, e, n, dd in zip(ids, enc, nos, dec):
        t = texts[k]
        checks = [("ids", e["ids"], t["ids"])]
        if "ids_no_special" in t: checks.append(("ids_no_special", n["ids"], t["ids_no_special"]))
        if "tokens" in t: checks.append(("tokens", e["tokens"], t["tokens"]))
        if "decoded" in t: checks.append(("decoded", dd["text"], t["decoded"]))
        for name, got, want in checks:
            if got != want:
                bad += 1
                print(f"{m} {k} {name} MISMATCH")
                if isinstance(got, list):
                    i = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                    print("  first diff at", i, "got", got[max(0,i-3):i+5], "want", want[max(0,i-3):i+5], len(got), len(want))
                else:
                    print("  got ", repr(got)[:300]); print("  want", repr(want)[:300])
    print(m, "checked", len(ids), "texts")
sys.exit(1 if bad else 0)
