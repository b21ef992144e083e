#!/usr/bin/env python3
"""Write a small random Llama-style HF model folder (config.json + model.safetensors), python3
stdlib only, so that `make demo` works on a fresh machine without ../shared.
usage: gen-tiny-model.py OUT_DIR [--layers N] [--hidden H] [--vocab V] [--dtype BF16|F32] [--seed S]"""
import argparse, json, os, random, struct

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--layers', type=int, default=4)
    ap.add_argument('--hidden', type=int, default=64)
    ap.add_argument('--inter', type=int, default=0)
    ap.add_argument('--heads', type=int, default=4)
    ap.add_argument('--kv-heads', type=int, default=2)
    ap.add_argument('--vocab', type=int, default=512)
    ap.add_argument('--dtype', default='BF16', choices=['BF16', 'F32'])
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    H, I, hd = a.hidden, a.inter or 2 * a.hidden, a.hidden // a.heads
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": a.vocab,
           "hidden_size": H, "intermediate_size": I, "num_hidden_layers": a.layers,
           "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads, "head_dim": hd,
           "hidden_act": "silu", "max_position_embeddings": 512, "rms_norm_eps": 1e-05,
           "rope_theta": 10000.0, "rope_scaling": None, "attention_bias": False, "mlp_bias": False,
           "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2,
           "torch_dtype": "bfloat16" if a.dtype == 'BF16' else "float32"}
    shapes = [("model.embed_tokens.weight", [a.vocab, H])]
    for l in range(a.layers):
        p = "model.layers.%d." % l
        shapes += [(p + "input_layernorm.weight", [H]), (p + "self_attn.q_proj.weight", [a.heads * hd, H]),
                   (p + "self_attn.k_proj.weight", [a.kv_heads * hd, H]),
                   (p + "self_attn.v_proj.weight", [a.kv_heads * hd, H]),
                   (p + "self_attn.o_proj.weight", [H, a.heads * hd]),
                   (p + "post_attention_layernorm.weight", [H]), (p + "mlp.gate_proj.weight", [I, H]),
                   (p + "mlp.up_proj.weight", [I, H]), (p + "mlp.down_proj.weight", [H, I])]
    shapes.append(("model.norm.weight", [H]))
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    size = 2 if a.dtype == 'BF16' else 4
    for name, shape in shapes:
        n = 1
        for d in shape: n *= d
        norm = name.endswith("norm.weight")
        vals = [1.0 if norm else rnd.gauss(0, 0.02 * 10) for _ in range(n)]
        if a.dtype == 'F32':
            b = struct.pack('<%df' % n, *vals)
        else:
            b = struct.pack('<%dH' % n, *(struct.unpack('<I', struct.pack('<f', v))[0] >> 16 for v in vals))
        header[name] = {"dtype": a.dtype, "shape": shape, "data_offsets": [off, off + n * size]}
        blobs.append(b); off += n * size
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - (8 + len(h)) % 8) % 8)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack('<Q', len(h))); f.write(h)
        for b in blobs: f.write(b)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2); f.write("\n")

if __name__ == '__main__':
    main()
