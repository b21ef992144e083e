#!/usr/bin/env python3
"""Random-weight BF16 model folders with the shapes of real configs (python3 stdlib only).

  wmask-gen-model.py qwen3-0.6b|gemma-3-270m OUTDIR [SHARED]

Weights ~ N(0, 0.02) drawn once into a 4M-value pool and sliced at random offsets (the shapes and
the byte volume are what a benchmark of wmask needs, not the values); norms are 1 (0 for Gemma,
whose norms are 1+w). The tokenizer files come from ../shared's tiny model of the same family.
"""
import json, os, random, shutil, struct, sys

CONFIGS = {
    "qwen3-0.6b": dict(tiny="qwen3-tiny", cfg={
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936,
        "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
        "hidden_act": "silu", "max_position_embeddings": 40960, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "rope_scaling": None, "attention_bias": False,
        "tie_word_embeddings": True, "bos_token_id": 151643, "eos_token_id": 151645,
        "torch_dtype": "bfloat16"}),
    "gemma-3-270m": dict(tiny="gemma3-tiny", cfg={
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": 262144,
        "hidden_size": 640, "intermediate_size": 2048, "num_hidden_layers": 18,
        "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
        "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
        "rope_scaling": None, "sliding_window": 512, "query_pre_attn_scalar": 256,
        "attn_logit_softcapping": None, "final_logit_softcapping": None,
        "attention_bias": False, "tie_word_embeddings": True, "bos_token_id": 2,
        "eos_token_id": 1, "pad_token_id": 0, "torch_dtype": "bfloat16",
        "layer_types": [("full_attention" if (i + 1) % 6 == 0 else "sliding_attention")
                        for i in range(18)]}),
}


def tensors(c, gemma, qknorm):
    C, I, H, K, D = (c["hidden_size"], c["intermediate_size"], c["num_attention_heads"],
                     c["num_key_value_heads"], c["head_dim"])
    yield "model.embed_tokens.weight", [c["vocab_size"], C]
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        yield p + "input_layernorm.weight", [C]
        yield p + "self_attn.q_proj.weight", [H * D, C]
        yield p + "self_attn.k_proj.weight", [K * D, C]
        yield p + "self_attn.v_proj.weight", [K * D, C]
        yield p + "self_attn.o_proj.weight", [C, H * D]
        if qknorm:
            yield p + "self_attn.q_norm.weight", [D]
            yield p + "self_attn.k_norm.weight", [D]
        yield p + "post_attention_layernorm.weight", [C]
        if gemma:
            yield p + "pre_feedforward_layernorm.weight", [C]
            yield p + "post_feedforward_layernorm.weight", [C]
        yield p + "mlp.gate_proj.weight", [I, C]
        yield p + "mlp.up_proj.weight", [I, C]
        yield p + "mlp.down_proj.weight", [C, I]
    yield "model.norm.weight", [C]


def main():
    name, out = sys.argv[1], sys.argv[2]
    shared = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(__file__), "..", "..", "shared")
    spec = CONFIGS[name]
    cfg = spec["cfg"]
    gemma = cfg["model_type"].startswith("gemma")
    rng = random.Random(0)
    pool_n = 1 << 22
    f = struct.pack("<%df" % pool_n, *[rng.gauss(0, 0.02) for _ in range(pool_n)])
    pool = bytes(memoryview(f).cast("H")[1::2])  # the high halves = bf16 (truncated)
    pool2 = pool + pool
    os.makedirs(out, exist_ok=True)
    hdr, off, items = {"__metadata__": {"format": "pt"}}, 0, list(tensors(cfg, gemma, True))
    for n, shp in items:
        nb = 2
        for d in shp:
            nb *= d
        hdr[n] = {"dtype": "BF16", "shape": shp, "data_offsets": [off, off + nb]}
        off += nb
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    tmp = os.path.join(out, "model.safetensors.tmp")
    with open(tmp, "wb") as fo:
        fo.write(struct.pack("<Q", len(h)) + h)
        one = struct.pack("<H", 0 if gemma else 0x3F80)
        for n, shp in items:
            nb = hdr[n]["data_offsets"][1] - hdr[n]["data_offsets"][0]
            if len(shp) == 1:
                fo.write(one * (nb // 2))
                continue
            while nb > 0:
                k = min(nb, len(pool))
                s = rng.randrange(0, len(pool) // 2) * 2
                fo.write(pool2[s:s + k])
                nb -= k
    os.replace(tmp, os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "config.json"), "w") as fo:
        json.dump(cfg, fo, indent=2)
    for t in ("tokenizer.json", "tokenizer_config.json"):
        src = os.path.join(shared, "models", spec["tiny"], t)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(out, t))
    print(json.dumps({"model": name, "dir": out, "bytes": off}))


if __name__ == "__main__":
    main()
