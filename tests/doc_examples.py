#!/usr/bin/env python3
"""Extract the commands of README.md's ```sh blocks and of every man page's EXAMPLES section, and
run them in a sandbox whose file names are the ones the examples use, backed by the fixtures of
../shared (tiny models of each family, short texts). Each document runs in a fresh sandbox, its
commands in order (later ones use what earlier ones wrote).

    doc_examples.py list DOC            print the commands found in DOC
    doc_examples.py run DOC SHARED      run them; exit 1 with the failing command and its output

Lines whose comment says "needs network" are skipped (downloads); nothing else is.
"""
import os, re, shutil, subprocess, sys, tempfile

TOOLS = {"st-cat", "lm-tok", "ppl", "layer-score", "layer-drop", "layer-merge", "wmask", "width-prune",
         "heal-sft", "kd-train", "lm-eval", "lm-gen", "model-card", "lop-get-eval-data"}
STARTERS = TOOLS | {"printf", "echo", "for", "cat"}


def roff_text(line):
    line = line.replace("\\\\", "\x00")
    line = re.sub(r"\\f[BIRP]", "", line)
    line = line.replace("\\-", "-").replace("\\e", "\\").replace("\\(aq", "'").replace("\\(dq", '"')
    line = line.replace("\\ ", " ").replace("\\&", "").replace("\\[u0120]", "\u0120")
    return line.replace("\x00", "\\")


def commands_from_lines(lines):
    cmds, cur = [], None
    for raw in lines:
        line = raw.rstrip()
        if cur is not None:
            cur += " " + line.strip().rstrip("\\").rstrip()
            if not line.endswith("\\"):
                cmds.append(cur); cur = None
            continue
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        first = re.split(r"[\s|]", s, 1)[0]
        if first not in STARTERS:
            continue
        if s.endswith("\\"):
            cur = s.rstrip("\\").rstrip()
        else:
            cmds.append(s)
    if cur:
        cmds.append(cur)
    return [c for c in cmds if "needs network" not in c]


def doc_commands(path):
    text = open(path, encoding="utf-8").read()
    if path.endswith(".md"):
        blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
        return commands_from_lines("\n".join(blocks).split("\n"))
    m = re.search(r"^\.SH EXAMPLES\n(.*?)(?=^\.SH |\Z)", text, re.S | re.M)
    if not m:
        return []
    # commands are in .nf/.fi (or .EX/.EE) blocks or indented; prose paragraphs are neither
    lines, literal = [], False
    for l in m.group(1).split("\n"):
        if l.startswith((".nf", ".EX")): literal = True; continue
        if l.startswith((".fi", ".EE")): literal = False; continue
        if l.startswith("."): continue
        if literal or l.startswith(" "): lines.append(roff_text(l))
    return commands_from_lines(lines)


# model names the examples use -> fixture of the same family (anything else: the family the
# document names first, else stories260K, the fastest), with the real model's layer count where
# the name gives one, so that layer lists like --keep 0-7,25-33 mean what they say
DEPTH = {"gemma-3-270m": 18, "gemma-3-1b": 26, "gemma-3-4b": 34, "qwen3-0.6b": 28, "qwen3-4b": 36,
         "llama-7b": 32, "llama": 32, "llama-3.2-1b": 16}


def family(name):
    n = name.lower()
    if "gemma" in n or n.startswith("g4b"): return "gemma3-tiny"
    if "qwen" in n: return "qwen3-tiny"
    if "llama" in n and "stories" not in n: return "llama-tiny"
    if "stories" in n: return "stories260K"
    if "prose" in n: return "prose13m"
    return None


def read_st(path):
    import json, struct
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", None)
    return {k: (v, b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in h.items()}, meta


def deepen(src, n_layers, out):
    """src's layers repeated (layer i = layer i mod L) to n_layers: a deeper model of the family"""
    import json, struct
    os.makedirs(out)
    t, meta = read_st(os.path.join(src, "model.safetensors"))
    cfg = json.load(open(os.path.join(src, "config.json")))
    L = cfg["num_hidden_layers"]
    new = {}
    for k, (v, raw) in t.items():
        m = re.match(r"model\.layers\.(\d+)\.(.*)", k)
        if not m:
            new[k] = (v, raw); continue
        for l in range(int(m.group(1)), n_layers, L):
            new["model.layers.%d.%s" % (l, m.group(2))] = (v, raw)
    hdr, off, blobs = {}, 0, []
    for k in sorted(new):
        v, raw = new[k]
        hdr[k] = {"dtype": v["dtype"], "shape": v["shape"], "data_offsets": [off, off + len(raw)]}
        off += len(raw); blobs.append(raw)
    if meta: hdr["__metadata__"] = meta
    h = json.dumps(hdr).encode(); h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    cfg["num_hidden_layers"] = n_layers
    if isinstance(cfg.get("layer_types"), list):
        cfg["layer_types"] = [cfg["layer_types"][l % L] for l in range(n_layers)]
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    for f in os.listdir(src):
        if f.startswith("tokenizer") or f in ("special_tokens_map.json", "generation_config.json"):
            os.symlink(os.path.join(src, f), os.path.join(out, f))


MODEL_NAMES = ["gemma-3-270m", "gemma-3-1b", "gemma-3-4b", "Qwen3-0.6B", "Qwen3-4B", "qwen3-0.6b-cut",
               "llama", "llama-7b", "Llama-3.2-1B", "stories260K", "base", "model", "M", "big", "pruned", "g4b-cut", "qwen3", "prose13m"]
TEXTS = ["calib.txt", "held-out.txt", "thai-docs.txt", "train.txt", "docs.txt", "wiki.txt", "test.txt",
         "stories.txt", "text.txt"]


# kd-train(1)'s recipe (a global batch of 16 x 4 sequences of 512 tokens, teacher and student
# heads over the whole vocabulary) costs minutes on Gemma's 262,144-word vocabulary even with a
# 24-wide fixture: its commands run, exactly as written, on the family fixture with a 32,000-word
# vocabulary for every model name.
ONE_FAMILY = {"kd-train.1": "llama-tiny"}

EVAL_ITEMS = 6


def trim_eval(src, dst):
    """The eval data with the first EVAL_ITEMS items of every file (MMLU: of every subject's test
    split; its 5-shot dev split whole): the examples' --limit runs the same code on less data."""
    import csv
    for root, dirs, files in os.walk(src):
        out = os.path.join(dst, os.path.relpath(root, src))
        os.makedirs(out, exist_ok=True)
        for f in files:
            a, b = os.path.join(root, f), os.path.join(out, f)
            if f.endswith(".csv") and "/dev" not in root:
                with open(a, newline="", encoding="utf-8") as i, open(b, "w", newline="", encoding="utf-8") as o:
                    w = csv.writer(o)
                    for k, row in enumerate(csv.reader(i)):
                        if k >= EVAL_ITEMS: break
                        w.writerow(row)
            elif f.endswith((".jsonl", ".lst")):
                with open(a, encoding="utf-8") as i, open(b, "w", encoding="utf-8") as o:
                    for k, line in enumerate(i):
                        if k >= EVAL_ITEMS: break
                        o.write(line)
            elif f == "hellaswag_val_full.txt":  # 6 lines an item: context, label, 4 endings
                with open(a, encoding="utf-8") as i, open(b, "w", encoding="utf-8") as o:
                    for k, line in enumerate(i):
                        if k >= 6 * EVAL_ITEMS: break
                        o.write(line)
            else:
                os.symlink(a, b)


def sandbox(shared, cmds, only=None):
    d = tempfile.mkdtemp(prefix="lop-doc.")
    models = os.path.join(shared, "models")
    written = set()
    for c in cmds:
        for m in re.finditer(r"(?:-o|--output)\s+(\S+)", c):
            written.add(m.group(1).rstrip("/"))
    named = [f for c in cmds for w in re.findall(r"(?:-m|--model|--teacher|--base)\s+(\S+)", c) for f in [family(w)] if f]
    default = named[0] if named else "stories260K"
    os.makedirs(os.path.join(d, "models"))
    os.makedirs(os.path.join(d, ".deep"))
    for n in MODEL_NAMES:
        fam = only or family(n) or default
        target = os.path.join(models, fam)
        if n.lower() in DEPTH:
            target = os.path.join(d, ".deep", n)
            deepen(os.path.join(models, fam), DEPTH[n.lower()], target)
        if n not in written:
            os.symlink(target, os.path.join(d, n))
        os.symlink(target, os.path.join(d, "models", n))
    for n in os.listdir(models):
        if not os.path.exists(os.path.join(d, "models", n)):
            os.symlink(os.path.join(models, n), os.path.join(d, "models", n))
    stories = open(os.path.join(shared, "data/stories/test.txt"), encoding="utf-8").read().split("\n")
    for t in TEXTS:
        with open(os.path.join(d, t), "w", encoding="utf-8") as f:
            f.write("\n".join(stories[:4]) + "\n")
    wiki = open(os.path.join(shared, "data/wikitext-2-raw/wiki.test.raw"), encoding="utf-8").read()
    for w in ("wiki.test.raw", "wiki.train.raw"):
        with open(os.path.join(d, w), "w", encoding="utf-8") as f:
            f.write(wiki[:6000])
    import json
    with open(os.path.join(d, "prompts.jsonl"), "w") as f:
        for p in ("Once upon a time", "The little dog"):
            f.write(json.dumps({"prompt": p}) + "\n")
    for z in ("c4.jsonl", "c4-sample.jsonl"):
        with open(os.path.join(d, z), "w") as f:
            for l in stories[:12]:
                f.write(json.dumps({"text": l}) + "\n")
        subprocess.run(["zstd", "-q", "--rm", "-f", os.path.join(d, z)], check=True)
    os.makedirs(os.path.join(d, "data"))
    trim_eval(os.path.join(shared, "data/eval"), os.path.join(d, "data/eval"))
    return d


def run(doc, shared):
    cmds = doc_commands(doc)
    if not cmds:
        print("%s: no commands" % doc)
        return 0
    d = sandbox(shared, cmds, ONE_FAMILY.get(os.path.basename(doc)))
    env = dict(os.environ, LOP_EVAL_DATA=os.path.join(d, "data/eval"), OMP_NUM_THREADS="2")
    env.pop("LOP_PROVENANCE", None)
    try:
        for c in cmds:
            p = subprocess.run(["bash", "-o", "pipefail", "-c", c], cwd=d, env=env, capture_output=True,
                               text=True, errors="replace", timeout=300)
            # 141: an early stage of a pipe ended by SIGPIPE when a later one had read what it
            # needed (st-cat -l - reads only the header), as `cat big | head` does
            if p.returncode != 0 and not (p.returncode == 141 and "|" in c):
                print("%s: FAILED (exit %d): %s\n%s%s" % (doc, p.returncode, c, p.stdout[-1500:], p.stderr[-1500:]))
                return 1
            print("%s: ok: %s" % (doc, c))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "list":
        for c in doc_commands(sys.argv[2]):
            print(c)
    else:
        sys.exit(run(sys.argv[2], sys.argv[3]))
