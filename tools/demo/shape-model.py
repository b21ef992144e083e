#!/usr/bin/env python3
"""shape-model.py — a model folder with a real model's shapes and all-zero weights, written as a
SPARSE file (the header, then a hole): gigabytes apparent, nothing on disk, read back as zeros.
For checking parameter counts and streaming tools at full scale without the weights.

usage: shape-model.py qwen3-4b|qwen3-0.6b|gemma-3-270m|gemma-3-4b OUTDIR
"""
import json, os, struct, sys

SHAPES = {  # (config.json, dtype)
    "qwen3-4b": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936,
                 "hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36,
                 "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                 "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
                 "tie_word_embeddings": True, "hidden_act": "silu", "attention_bias": False,
                 "torch_dtype": "bfloat16", "bos_token_id": 151643, "eos_token_id": 151645},
    "qwen3-0.6b": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936,
                   "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
                   "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
                   "max_position_embeddings": 40960, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
                   "tie_word_embeddings": True, "hidden_act": "silu", "attention_bias": False,
                   "torch_dtype": "bfloat16", "bos_token_id": 151643, "eos_token_id": 151645},
}


def tensors(c):
    H, I, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    D, Hq, Hk = c["head_dim"], c["num_attention_heads"], c["num_key_value_heads"]
    t = [("model.embed_tokens.weight", [V, H])]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        t += [(p + "input_layernorm.weight", [H]), (p + "mlp.down_proj.weight", [H, I]),
              (p + "mlp.gate_proj.weight", [I, H]), (p + "mlp.up_proj.weight", [I, H]),
              (p + "post_attention_layernorm.weight", [H]),
              (p + "self_attn.k_norm.weight", [D]), (p + "self_attn.k_proj.weight", [Hk * D, H]),
              (p + "self_attn.o_proj.weight", [H, Hq * D]), (p + "self_attn.q_norm.weight", [D]),
              (p + "self_attn.q_proj.weight", [Hq * D, H]), (p + "self_attn.v_proj.weight", [Hk * D, H])]
    t.append(("model.norm.weight", [H]))
    if not c["tie_word_embeddings"]:
        t.append(("lm_head.weight", [V, H]))
    return t


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in SHAPES:
        sys.exit(__doc__)
    c, out = SHAPES[sys.argv[1]], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    json.dump(c, open(os.path.join(out, "config.json"), "w"), indent=2)
    h, off, params = {"__metadata__": {"format": "pt"}}, 0, 0
    for name, shape in tensors(c):
        n = 1
        for s in shape:
            n *= s
        params += n
        h[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + 2 * n]}
        off += 2 * n
    hb = json.dumps(h, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb)
        f.truncate(8 + len(hb) + off)  # the hole: zeros that take no disk space
    print(json.dumps({"output": out, "params": params, "bytes": 8 + len(hb) + off}))


if __name__ == "__main__":
    main()
