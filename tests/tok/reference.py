#!/usr/bin/env python3
"""An independent, deliberately plain Python tokenizer for the five shared tokenizers, written
from Hugging Face's rules (not from lop's C code), to compare lm-tok with on real text:
classic BPE (repeatedly merge the lowest-rank adjacent pair, leftmost first), Python's
unicodedata for NFC, the `regex` module for the Split patterns.

Usage: reference.py LMTOK SHARED FILE [MAXLINES] -> compares per-line encodings, exit 1 on any
difference (printing the first few)."""
import json, os, subprocess, sys, unicodedata
import regex

WS = "\t\n\x0b\x0c\r\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # Unicode White_Space


def onig(pattern):
    """Oniguruma's \\s is exactly White_Space: spell it out for the regex module."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            d = pattern[i + 1]
            if d in "sS":
                if in_class:
                    out.append(WS if d == "s" else "\\S")
                else:
                    out.append(("[" if d == "s" else "[^") + WS + "]")
            else:
                out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        out.append(c)
        i += 1
    return regex.compile("".join(out))


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


class Ref:
    def __init__(self, folder):
        tj = json.load(open(os.path.join(folder, "tokenizer.json"), encoding="utf-8"))
        cfg_path = os.path.join(folder, "tokenizer_config.json")
        cfg = json.load(open(cfg_path, encoding="utf-8")) if os.path.exists(cfg_path) else {}
        m = tj["model"]
        self.vocab = m["vocab"]
        self.ranks = {}
        for i, mg in enumerate(m["merges"]):
            a, b = mg.split(" ") if isinstance(mg, str) else mg
            self.ranks[(a, b)] = i
        self.byte_fallback = m.get("byte_fallback", False)
        self.ignore_merges = m.get("ignore_merges", False)
        self.added = sorted(((a["content"], a["id"]) for a in tj["added_tokens"]), key=lambda x: -len(x[0]))
        name = os.path.basename(folder.rstrip("/"))
        self.kind = {"qwen3-tiny": "qwen", "llama3_1": "llama3", "gemma3-tiny": "gemma",
                     "llama-tiny": "llama", "stories260K": "llama"}[name]
        self.legacy = cfg.get("legacy", False)
        if self.kind in ("qwen", "llama3"):
            pat = [p for p in tj["pre_tokenizer"]["pretokenizers"] if p["type"] == "Split"][0]["pattern"]["Regex"]
            self.re = onig(pat)
            self.b2u = bytes_to_unicode()
        bos = {"gemma": 2, "llama": 1, "llama3": 128000, "qwen": None}[self.kind]
        self.pre = [bos] if bos is not None else []

    def split_added(self, text):
        """leftmost-longest added-token matches (no flags set in these tokenizers)"""
        out, i, start = [], 0, 0
        while i < len(text):
            for content, tid in self.added:
                if text.startswith(content, i):
                    if start < i:
                        out.append((text[start:i], None, start))
                    out.append((content, tid, i))
                    i += len(content)
                    start = i
                    break
            else:
                i += 1
        if start < len(text):
            out.append((text[start:], None, start))
        return out

    def bpe(self, symbols):
        while len(symbols) > 1:
            best = None
            for j in range(len(symbols) - 1):
                r = self.ranks.get((symbols[j], symbols[j + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, j)
            if best is None:
                break
            j = best[1]
            symbols = symbols[:j] + [symbols[j] + symbols[j + 1]] + symbols[j + 2:]
        return symbols

    def sp_word(self, word):
        syms = []
        for ch in word:
            if ch in self.vocab:
                syms.append(ch)
            else:
                syms.extend("<0x%02X>" % b for b in ch.encode("utf-8"))
        return [self.vocab[s] for s in self.bpe(syms)]

    def encode(self, text):
        ids = list(self.pre)
        for piece, tid, start in self.split_added(text):
            if tid is not None:
                ids.append(tid)
                continue
            if self.kind in ("qwen", "llama3"):
                if self.kind == "qwen":
                    piece = unicodedata.normalize("NFC", piece)
                for w in self.re.findall(piece):
                    mapped = "".join(self.b2u[b] for b in w.encode("utf-8"))
                    if self.ignore_merges and mapped in self.vocab:
                        ids.append(self.vocab[mapped])
                        continue
                    ids.extend(self.vocab[s] for s in self.bpe(list(mapped)))
            elif self.kind == "gemma":
                ids.extend(self.sp_word(piece.replace(" ", "\u2581")))
            else:  # transformers' LlamaTokenizer: Metaspace, prepend "always" (legacy) or "first"
                w = piece.replace(" ", "\u2581")
                if not w.startswith("\u2581") and (self.legacy or start == 0):
                    w = "\u2581" + w
                ids.extend(self.sp_word(w))
        return ids


def main():
    lmtok, shared, path = sys.argv[1], sys.argv[2], sys.argv[3]
    maxlines = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    maxlen = int(sys.argv[5]) if len(sys.argv) > 5 else 400
    if path.endswith(".jsonl"):
        lines = [json.loads(l)["text"] for l in open(path, encoding="utf-8") if l.strip()]
    else:
        lines = [l for l in open(path, encoding="utf-8") if l.strip()]
        step = max(1, len(lines) // maxlines)
        lines = [l for l in lines[::step] if len(l) <= maxlen][:maxlines]
    bad = 0
    for m in ["models/gemma3-tiny", "models/qwen3-tiny", "models/llama-tiny", "models/stories260K", "tokenizers/llama3_1"]:
        ref = Ref(os.path.join(shared, m))
        inp = "".join(json.dumps({"text": l}) + "\n" for l in lines).encode()
        r = subprocess.run([lmtok, "-m", os.path.join(shared, m), "--jsonl", "--ids-only"], input=inp, capture_output=True)
        if r.returncode:
            print(m, "lm-tok failed:", r.stderr.decode())
            return 1
        got = [json.loads(x)["ids"] for x in r.stdout.decode().splitlines()]
        nbad = 0
        for l, g in zip(lines, got):
            want = ref.encode(l)
            if g != want:
                nbad += 1
                if nbad <= 3:
                    print(m, "DIFF on", repr(l[:120]))
                    print("   lm-tok", g[:40])
                    print("   ref   ", want[:40])
        print(m, len(lines), "lines,", nbad, "differ")
        bad += nbad
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
