#!/usr/bin/python3
"""gen-model.py — random-weight models of REAL configurations, as Hugging Face folders, for
benchmarks: config.json, model.safetensors (bf16), and the family's tokenizer copied from
../shared so every tool runs on them.

    bench/gen-model.py gemma-3-270m OUT_DIR      # 268,098,176 params (Gemma3ForCausalLM)
    bench/gen-model.py qwen3-0.6b OUT_DIR        # 596,049,920 params (Qwen3ForCausalLM)
    bench/gen-model.py llama-3.2-1b OUT_DIR      # 1,235,814,400 params (LlamaForCausalLM)
    bench/gen-model.py gemma-3-4b OUT_DIR        # 3,880,263,168 params (Gemma-3-4B's text model)
    bench/gen-model.py qwen3-4b OUT_DIR          # 4,022,468,096 params (Qwen3ForCausalLM)
    bench/gen-model.py --torch-device cuda ...   # draw the numbers with torch on a GPU (seconds
                                                 # for 4B; another stream than numpy's)

Weights: normal(0, 0.02) for matrices and embeddings; norm weights as the trained models keep
them (Gemma's x*(1+w): around 0; others: around 1). Needs numpy only. Deterministic (--seed).
"""
import argparse, json, os, shutil, struct, sys
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("LOP_SHARED", os.path.join(HERE, "..", "..", "shared"))

CONFIGS = {
    "gemma-3-270m": dict(
        tokenizer="models/gemma3-tiny", params=268098176,
        config={
            "architectures": ["Gemma3ForCausalLM"], "attention_bias": False,
            "attention_dropout": 0.0, "attn_logit_softcapping": None, "bos_token_id": 2,
            "eos_token_id": 1, "final_logit_softcapping": None, "head_dim": 256,
            "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 640,
            "initializer_range": 0.02, "intermediate_size": 2048,
            "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 3,
            "max_position_embeddings": 32768, "model_type": "gemma3_text",
            "num_attention_heads": 4, "num_hidden_layers": 18, "num_key_value_heads": 1,
            "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
            "rope_local_base_freq": 10000.0, "rope_scaling": None, "rope_theta": 1000000.0,
            "sliding_window": 512, "torch_dtype": "bfloat16", "transformers_version": "4.55.0",
            "use_bidirectional_attention": False, "use_cache": True, "vocab_size": 262144}),
    "qwen3-0.6b": dict(
        tokenizer="models/qwen3-tiny", params=596049920,
        config={
            "architectures": ["Qwen3ForCausalLM"], "attention_bias": False,
            "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
            "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
            "initializer_range": 0.02, "intermediate_size": 3072,
            "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
            "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
            "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000,
            "sliding_window": None, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
            "transformers_version": "4.51.0", "use_cache": True, "use_sliding_window": False,
            "vocab_size": 151936}),
    "qwen3-4b": dict(
        tokenizer="models/qwen3-tiny", params=4022468096,
        config={
            "architectures": ["Qwen3ForCausalLM"], "attention_bias": False,
            "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
            "head_dim": 128, "hidden_act": "silu", "hidden_size": 2560,
            "initializer_range": 0.02, "intermediate_size": 9728,
            "max_position_embeddings": 40960, "max_window_layers": 36, "model_type": "qwen3",
            "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8,
            "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000,
            "sliding_window": None, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
            "transformers_version": "4.51.0", "use_cache": True, "use_sliding_window": False,
            "vocab_size": 151936}),
    # Gemma-3-4B's text model (Gemma3ForCausalLM, the language half of google/gemma-3-4b-pt):
    # 34 layers, linear rope scaling x8 on the full-attention layers
    "gemma-3-4b": dict(
        tokenizer="models/gemma3-tiny", params=3880263168,
        config={
            "architectures": ["Gemma3ForCausalLM"], "attention_bias": False,
            "attention_dropout": 0.0, "attn_logit_softcapping": None, "bos_token_id": 2,
            "eos_token_id": 1, "final_logit_softcapping": None, "head_dim": 256,
            "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2560,
            "initializer_range": 0.02, "intermediate_size": 10240,
            "layer_types": [("full_attention" if (i + 1) % 6 == 0 else "sliding_attention") for i in range(34)],
            "max_position_embeddings": 131072, "model_type": "gemma3_text",
            "num_attention_heads": 8, "num_hidden_layers": 34, "num_key_value_heads": 4,
            "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
            "rope_local_base_freq": 10000.0, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
            "rope_theta": 1000000.0, "sliding_window": 1024, "torch_dtype": "bfloat16",
            "transformers_version": "4.55.0", "use_bidirectional_attention": False,
            "use_cache": True, "vocab_size": 262208}),
    "llama-3.2-1b": dict(
        tokenizer="tokenizers/llama3_1", params=1235814400,
        config={
            "architectures": ["LlamaForCausalLM"], "attention_bias": False,
            "attention_dropout": 0.0, "bos_token_id": 128000, "eos_token_id": 128001,
            "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
            "initializer_range": 0.02, "intermediate_size": 8192,
            "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
            "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
            "pretraining_tp": 1, "rms_norm_eps": 1e-05,
            "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                             "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
            "transformers_version": "4.45.0", "use_cache": True, "vocab_size": 128256}),
}


def tensors(cfg):
    """(name, shape, kind) in the order transformers saves them; kind: mat | norm | qknorm."""
    C, FF, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    D = cfg.get("head_dim") or C // cfg["num_attention_heads"]
    qd, kd = cfg["num_attention_heads"] * D, cfg["num_key_value_heads"] * D
    gemma = cfg["model_type"].startswith("gemma")
    qk = gemma or cfg["model_type"] == "qwen3"
    out = [("model.embed_tokens.weight", (cfg["vocab_size"], C), "mat")]
    for l in range(L):
        p = f"model.layers.{l}."
        out.append((p + "input_layernorm.weight", (C,), "norm"))
        out += [(p + "mlp.down_proj.weight", (C, FF), "mat"), (p + "mlp.gate_proj.weight", (FF, C), "mat"),
                (p + "mlp.up_proj.weight", (FF, C), "mat")]
        out.append((p + "post_attention_layernorm.weight", (C,), "norm"))
        if gemma:
            out += [(p + "post_feedforward_layernorm.weight", (C,), "norm"),
                    (p + "pre_feedforward_layernorm.weight", (C,), "norm")]
        if qk:
            out.append((p + "self_attn.k_norm.weight", (D,), "norm"))
        out += [(p + "self_attn.k_proj.weight", (kd, C), "mat"), (p + "self_attn.o_proj.weight", (C, qd), "mat")]
        if qk:
            out.append((p + "self_attn.q_norm.weight", (D,), "norm"))
        out += [(p + "self_attn.q_proj.weight", (qd, C), "mat"), (p + "self_attn.v_proj.weight", (kd, C), "mat")]
    out.append(("model.norm.weight", (C,), "norm"))
    if not cfg.get("tie_word_embeddings", gemma):
        out.append(("lm_head.weight", (cfg["vocab_size"], C), "mat"))
    return out, gemma


def bf16(a):
    """float32 array -> bf16 bytes (round to nearest even)"""
    u = a.astype(np.float32).view(np.uint32)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16).tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name", choices=sorted(CONFIGS))
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--torch-device", default=None, help="draw the weights with torch on this device")
    a = ap.parse_args()
    spec = CONFIGS[a.name]
    cfg = spec["config"]
    ts, gemma = tensors(cfg)
    n = sum(int(np.prod(s)) for _, s, _ in ts)
    if n != spec["params"]:
        sys.exit(f"gen-model: {a.name}: {n} params, expected {spec['params']}")
    os.makedirs(a.out, exist_ok=True)
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in ts:
        nb = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + nb]}
        off += nb
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    rng = np.random.default_rng(a.seed)
    normal = lambda shape: rng.standard_normal(shape, dtype=np.float32)
    if a.torch_device:
        import torch
        g = torch.Generator(device=a.torch_device)
        g.manual_seed(a.seed)
        normal = lambda shape: torch.randn(shape, generator=g, device=a.torch_device).cpu().numpy()
    tmp = os.path.join(a.out, ".model.safetensors.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for name, shape, kind in ts:
            if kind == "mat":
                rows = shape[0]
                step = max(1, (1 << 24) // shape[1])  # ~64 MB of float32 at a time
                for r in range(0, rows, step):
                    f.write(bf16(normal((min(step, rows - r), shape[1])) * 0.02))
            else:
                w = normal(shape) * 0.05
                f.write(bf16(w if gemma else 1.0 + w))
    os.replace(tmp, os.path.join(a.out, "model.safetensors"))
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    src = os.path.join(SHARED, spec["tokenizer"])
    for t in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(src, t)):
            shutil.copyfile(os.path.join(src, t), os.path.join(a.out, t))
    print(json.dumps({"model": a.name, "out": a.out, "params": n, "bytes": 8 + len(hj) + off}))


if __name__ == "__main__":
    main()
