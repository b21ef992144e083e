#!/usr/bin/env python3
"""init-model.py — a fresh Llama-shaped model for lop's demo, as a Hugging Face folder.

Trains a SentencePiece-style BPE tokenizer (byte fallback, "▁" for spaces: the layout of
llama2.c's stories260K, which lop's tokenizer reproduces exactly) on a corpus, then writes
config.json, tokenizer.json, tokenizer_config.json and model.safetensors (float32, random
initialization as transformers does it: N(0, 0.02), norms 1; the output projections of each
layer scaled by 1/sqrt(2 * layers) as GPT-2 does, which trains small models faster).

usage: init-model.py --corpus FILE -o DIR [--vocab 512] [--layers 6] [--hidden 64]
                     [--heads 4] [--kv-heads 2] [--inter 176] [--ctx 256] [--seed 1]
(python3 standard library only; deterministic for a given seed and corpus)
"""
import argparse
import array
import collections
import json
import math
import os
import random
import struct
import sys

SP = "\u2581"  # ▁


def train_bpe(text, vocab_size):
    """SentencePiece-style BPE: words are '▁' + word; merges never cross words.
    Returns (vocab dict token->id, merges list of 'a b')."""
    words = collections.Counter(SP + w for w in text.split())
    chars = sorted({c for w in words for c in w})
    specials = ["<unk>", "<s>", "</s>"]
    nbase = len(specials) + 256 + len(chars)
    if vocab_size < nbase:
        sys.exit(f"init-model.py: --vocab {vocab_size} is below the {nbase} base tokens")
    seqs = {w: list(w) for w in words}
    merges, merged = [], []
    while nbase + len(merged) < vocab_size:
        pairs = collections.Counter()
        for w, n in words.items():
            s = seqs[w]
            for i in range(len(s) - 1):
                pairs[(s[i], s[i + 1])] += n
        if not pairs:
            break
        # most frequent; ties by the pair itself so the result never depends on hash order
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append(f"{a} {b}")
        merged.append(a + b)
        for w in words:
            s, out, i = seqs[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    tokens = specials + [f"<0x{i:02X}>" for i in range(256)] + merged + chars
    return {t: i for i, t in enumerate(tokens)}, merges


def tokenizer_json(vocab, merges):
    special = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True} for i, t in enumerate(["<unk>", "<s>", "</s>"])]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": special,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SP},
            {"type": "Replace", "pattern": {"String": " "}, "content": SP}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SP}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "vocab": vocab, "merges": merges},
    }


def write_safetensors(path, tensors):
    """tensors: list of (name, shape, array('f')) written in name order, float32"""
    tensors = sorted(tensors, key=lambda t: t[0])
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, data in tensors:
        n = 4 * len(data)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # data aligned to 8 bytes, as safetensors writers do
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, data in tensors:
            if sys.byteorder != "little":
                data = array.array("f", data)
                data.byteswap()
            f.write(data.tobytes())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--inter", type=int, default=176)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    with open(a.corpus, encoding="utf-8") as f:
        text = f.read()
    vocab, merges = train_bpe(text, a.vocab)
    V, H, L, I = len(vocab), a.hidden, a.layers, a.inter
    hd = H // a.heads
    os.makedirs(a.output, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": V,
        "hidden_size": H, "intermediate_size": I, "num_hidden_layers": L,
        "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads, "head_dim": hd,
        "hidden_act": "silu", "max_position_embeddings": a.ctx, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "rope_scaling": None, "attention_bias": False, "mlp_bias": False,
        "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2,
        "torch_dtype": "float32", "initializer_range": 0.02, "use_cache": True,
    }
    tcfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
            "unk_token": "<unk>", "model_max_length": a.ctx, "tokenizer_class": "LlamaTokenizer",
            "clean_up_tokenization_spaces": False, "legacy": False}
    for name, obj in (("config.json", config), ("tokenizer_config.json", tcfg),
                      ("tokenizer.json", tokenizer_json(vocab, merges))):
        with open(os.path.join(a.output, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
    r = random.Random(a.seed)

    def normal(n, std):
        return array.array("f", (r.gauss(0.0, std) for _ in range(n)))

    def ones(n):
        return array.array("f", [1.0]) * n

    std, ostd = 0.02, 0.02 / math.sqrt(2 * L)
    t = [("model.embed_tokens.weight", (V, H), normal(V * H, std)),
         ("model.norm.weight", (H,), ones(H))]
    for l in range(L):
        p = f"model.layers.{l}."
        t += [(p + "self_attn.q_proj.weight", (a.heads * hd, H), normal(a.heads * hd * H, std)),
              (p + "self_attn.k_proj.weight", (a.kv_heads * hd, H), normal(a.kv_heads * hd * H, std)),
              (p + "self_attn.v_proj.weight", (a.kv_heads * hd, H), normal(a.kv_heads * hd * H, std)),
              (p + "self_attn.o_proj.weight", (H, a.heads * hd), normal(H * a.heads * hd, ostd)),
              (p + "mlp.gate_proj.weight", (I, H), normal(I * H, std)),
              (p + "mlp.up_proj.weight", (I, H), normal(I * H, std)),
              (p + "mlp.down_proj.weight", (H, I), normal(H * I, ostd)),
              (p + "input_layernorm.weight", (H,), ones(H)),
              (p + "post_attention_layernorm.weight", (H,), ones(H))]
    write_safetensors(os.path.join(a.output, "model.safetensors"), t)
    params = sum(len(x[2]) for x in t)
    print(json.dumps({"output": a.output, "params": params, "vocab": V, "merges": len(merges),
                      "layers": L, "hidden": H}))


if __name__ == "__main__":
    main()
