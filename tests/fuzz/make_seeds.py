#!/usr/bin/env python3
"""Seeds for one fuzz target from ../shared's real files (tools/fuzz.sh runs this at fuzz time;
the outputs live in build/fuzz/seeds/<target>, never in the repository).
usage: make_seeds.py TARGET SHARED OUTDIR"""
import glob, json, os, struct, subprocess, sys

target, shared, out = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(out, exist_ok=True)
SEP = b"\n--lopfuzz--\n"
HERE = os.path.dirname(os.path.abspath(__file__))


def w(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def read(p, n=None):
    with open(p, "rb") as f:
        return f.read(n) if n else f.read()


def zstd(data, level=3):
    try:
        return subprocess.run(["zstd", "-q", "-c", f"-{level}"], input=data, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def texts():
    """a few KB from each text file of ../shared/data, in pieces"""
    out = []
    for p in sorted(glob.glob(f"{shared}/data/*/*.txt") + glob.glob(f"{shared}/data/*/*.raw")):
        b = read(p)
        for off in (0, len(b) // 3, len(b) // 2):
            out.append(b[off:off + 1500])
    return out


def shrink_tokenizer(path, keep=400):
    """a small tokenizer with the real one's components: the first ids, byte tokens and short
    tokens, the merges among them, the added tokens (ids made dense again)"""
    d = json.load(open(path, encoding="utf-8"))
    m = d["model"]
    vocab = m.get("vocab", {})
    if isinstance(vocab, list):            # Unigram: not supported by lop, keep as is
        return d
    kept = {}
    for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        if i < keep or (tok.startswith("<0x") and len(tok) == 6) or (i < 3000 and len(tok) <= 2):
            kept[tok] = i
    order = sorted(kept, key=lambda t: kept[t])
    remap = {kept[t]: n for n, t in enumerate(order)}
    nid = len(order)
    pp = json.dumps(d.get("post_processor"))
    d["added_tokens"] = [a for a in d.get("added_tokens", [])
                         if a["id"] < keep or json.dumps(a["content"]) in pp][:100]
    for a in d["added_tokens"]:
        if a["id"] in remap:
            a["id"] = remap[a["id"]]
        else:
            remap[a["id"]] = nid
            a["id"] = nid
            nid += 1
    m["vocab"] = {t: n for n, t in enumerate(order)}
    merges = []
    for mg in m.get("merges", []):
        a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
        if a in m["vocab"] and b in m["vocab"] and a + b in m["vocab"]:
            merges.append(mg)
    m["merges"] = merges

    def fix_ids(o):
        if isinstance(o, dict):
            if "ids" in o and isinstance(o["ids"], list):
                o["ids"] = [remap.get(i, i) for i in o["ids"]]
            for v in o.values():
                fix_ids(v)
        elif isinstance(o, list):
            for v in o:
                fix_ids(v)
    fix_ids(d.get("post_processor"))
    return d


if target == "st_header":
    subprocess.run([sys.executable, os.path.join(HERE, "..", "gen-malformed.py"), out], stdout=subprocess.DEVNULL, check=True)
    try:
        os.remove(os.path.join(out, "manifest.tsv"))
    except OSError:
        pass
    for p in glob.glob(f"{shared}/models/*/*.safetensors"):
        w(os.path.basename(os.path.dirname(p)) + "." + os.path.basename(p) + ".head", read(p, 20000))

elif target == "tok_json":
    sample = "Hello, world! It's 12345 \u00e9t\u00e9 \u4e2d\u6587 \U0001F600  \n\tend".encode()
    for p in sorted(glob.glob(f"{shared}/models/*/tokenizer.json") + glob.glob(f"{shared}/tokenizers/*/tokenizer.json")):
        name = os.path.basename(os.path.dirname(p))
        small = json.dumps(shrink_tokenizer(p), ensure_ascii=False).encode()
        cp = os.path.join(os.path.dirname(p), "tokenizer_config.json")
        cfg = b""
        if os.path.exists(cp):
            c = json.load(open(cp, encoding="utf-8"))
            c.pop("added_tokens_decoder", None)
            c.pop("chat_template", None)
            cfg = json.dumps(c).encode()
        w(name + ".tok", small)
        w(name + ".tok+cfg", small + SEP + cfg + SEP + sample)
        if os.path.getsize(p) < 64000:
            w(name + ".full", read(p) + SEP + cfg)

elif target == "tok_encode":
    n = 0
    for i, t in enumerate(texts()):
        for sel in (i % 5, (i % 5) | 0x80):
            w(f"text{n}", bytes([sel]) + t[:600]); n += 1
    edge = subprocess.run([sys.executable, os.path.join(HERE, "..", "tok", "edge_texts.py")], capture_output=True)
    for i, line in enumerate(edge.stdout.decode().splitlines()):
        w(f"edge{i}", bytes([i % 5 | (0x80 if i % 3 == 0 else 0)]) + json.loads(line)["text"].encode())
    for p in sorted(glob.glob(f"{shared}/data/eval/*.jsonl"))[:8]:
        w("eval." + os.path.basename(p), bytes([n % 5]) + read(p, 800)); n += 1

elif target == "config":
    for p in glob.glob(f"{shared}/models/*/config.json") + glob.glob(os.path.join(HERE, "..", "fixtures", "configs", "*.json")):
        w(os.path.basename(os.path.dirname(p)) + "." + os.path.basename(p), read(p))
        c = json.load(open(p))
        tc = c.get("text_config", c)
        L = tc.get("num_hidden_layers", 4)
        if L <= 64:   # variants: explicit layer_types, rope_parameters, multimodal wrapper
            v = dict(tc); v["layer_types"] = ["sliding_attention" if i % 2 else "full_attention" for i in range(L)]
            v["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 8192}
            w(os.path.basename(p) + ".types", json.dumps(v))
            w(os.path.basename(p) + ".mm", json.dumps({"model_type": "gemma3", "text_config": dict(tc, model_type="gemma3_text")}))

elif target == "train_data":
    ts = texts()
    for i, t in enumerate(ts[:6]):
        w(f"lines{i}", bytes([i * 37 % 256, i * 11 % 256]) + t)
        z = zstd(t)
        if z:
            w(f"zst{i}", bytes([i * 53 % 256, 200]) + z)
            w(f"zst-cut{i}", bytes([i, 9]) + z[:len(z) // 2])
    docs = [t.decode("utf-8", "replace")[:300] for t in ts[:8]]
    w("jsonl", b"\x05\x40" + "\n".join(json.dumps({"text": d}) for d in docs).encode())
    w("instr", b"\x15\x41" + "\n".join(json.dumps({"instruction": d[:80], "context": d[80:120], "response": d[120:200]}) for d in docs).encode())
    w("prompt", b"\x27\x02" + "\n".join(json.dumps({"prompt": d[:80], "response": d[80:200]}) for d in docs).encode())
    w("ids", b"\x0f\x03" + "\n".join(json.dumps({"ids": list(range(i, i + 2 + i % 10))}) for i in range(20)).encode())
    w("calib", b"\x09\xc5" + "\n".join(json.dumps({"content": d}) for d in docs).encode())

elif target == "eval_data":
    e = f"{shared}/data/eval"
    files = {0: "hellaswag/hellaswag_val_full.txt", 3: "arc_easy.jsonl", 4: "arc_challenge.jsonl",
             5: "openbook_qa.jsonl", 6: "copa.jsonl", 7: "boolq.jsonl", 8: "winogrande.jsonl",
             9: "lambada_openai.jsonl", 11: "siqa.jsonl", 13: "commonsense_qa.jsonl", 14: "piqa.jsonl"}
    for sel, f in files.items():
        p = os.path.join(e, f)
        if not os.path.exists(p):
            continue
        lines = read(p).split(b"\n")
        body = b"\n".join(lines[:12 if sel == 0 else 4]) + b"\n"
        w(f"t{sel}", bytes([sel]) + body)
        w(f"t{sel}z", bytes([sel | 0x10]) + body)
    pv, pl = os.path.join(e, "piqa-official/valid.jsonl"), os.path.join(e, "piqa-official/valid-labels.lst")
    if os.path.exists(pv):
        w("piqa", b"\x01" + b"\n".join(read(pv).split(b"\n")[:4]) + SEP + b"\n".join(read(pl).split(b"\n")[:4]))
    for sel, subj in ((2, "anatomy"), (10, "college_physics")):
        t, d = os.path.join(e, f"mmlu/test/{subj}_test.csv"), os.path.join(e, f"mmlu/dev/{subj}_dev.csv")
        if os.path.exists(t):
            tb = b"\n".join(read(t).split(b"\n")[:4]) + b"\n"
            db = b"\n".join(read(d).split(b"\n")[:5]) + b"\n" if os.path.exists(d) else tb
            w(f"mmlu{sel}", bytes([sel]) + tb)
            w(f"mmlu{sel}k", bytes([sel | 0xc0]) + tb + SEP + db)

elif target == "mc_logs":
    tmp = os.path.join(out, ".fx")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "model-card", "fixtures.py"), tmp], check=True, stdout=subprocess.DEVNULL)
    logs = sorted(p for p in glob.glob(tmp + "/*") if os.path.isfile(p))
    for i, p in enumerate(logs):
        w(f"log{i}", read(p))
    for i in range(0, len(logs) - 2, 2):
        w(f"three{i}", read(logs[i]) + SEP + read(logs[i + 1]) + SEP + read(logs[i + 2]))
    subprocess.run(["rm", "-rf", tmp])
