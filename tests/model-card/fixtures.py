#!/usr/bin/env python3
"""Fixtures for tests/model-card.bats: two model folders (config + safetensors header with
zero-filled data) and logs in the shapes lop's tools print. Writes into DIR."""
import json, os, struct, sys

d = sys.argv[1]

def folder(name, layers, types=None):
    p = os.path.join(d, name)
    os.makedirs(p, exist_ok=True)
    cfg = {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
           "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": layers,
           "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4, "vocab_size": 10,
           "tie_word_embeddings": True, "torch_dtype": "bfloat16"}
    if types: cfg["layer_types"] = types
    json.dump(cfg, open(os.path.join(p, "config.json"), "w"), indent=2)
    shapes = {"model.embed_tokens.weight": [10, 8], "model.norm.weight": [8]}
    for l in range(layers):
        shapes[f"model.layers.{l}.self_attn.q_proj.weight"] = [8, 8]
        shapes[f"model.layers.{l}.mlp.up_proj.weight"] = [16, 8]
        shapes[f"model.layers.{l}.input_layernorm.weight"] = [8]
    h, off = {}, 0
    for k, s in shapes.items():
        n = 2 * s[0] * (s[1] if len(s) > 1 else 1)
        h[k] = {"dtype": "BF16", "shape": s, "data_offsets": [off, off + n]}
        off += n
    hb = json.dumps(h).encode()
    with open(os.path.join(p, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + bytes(off))

folder("base", 6, ["sliding_attention"] * 5 + ["full_attention"])
folder("small", 4, ["sliding_attention"] * 3 + ["full_attention"])

def lines(name, objs):
    with open(os.path.join(d, name), "w") as f:
        for o in objs: f.write(json.dumps(o) + "\n")

lines("score.jsonl", [{"layer": l, "metric": "bi", "score": s}
                      for l, s in enumerate([0.9, 0.2, 0.15, 0.4, 0.3, 0.8])])
lines("drop.jsonl", [{"action": "drop", "layer": 1, "params": 150}, {"action": "drop", "layer": 2, "params": 150},
                     {"layers_before": 6, "layers_after": 4, "params_before": 1000, "params_after": 700,
                      "reduction": 0.3, "output": "small"}])
lines("base.ppl.jsonl", [{"ppl": 12.5, "nll": 2.5257, "tokens": 4096, "stderr": 0.25}])
lines("pruned.ppl.jsonl", [{"ppl": 31.25, "nll": 3.44, "tokens": 4096, "stderr": 0.5}])
lines("heal.jsonl", [{"seq_len": 128, "batch": 4, "schedule": "cosine"}] +
      [{"step": s, "loss": 4.0 - 0.25 * s, "lr": 1e-3 * min(1, s / 2), "grad_norm": 1.0,
        "tokens_per_s": 1000 + 100 * s} for s in range(1, 5)] + [{"eval_loss": 2.0}])
lines("healed.ppl.jsonl", [{"ppl": 15.0, "nll": 2.708, "tokens": 4096, "stderr": 0.3}])
lines("base.eval.jsonl", [{"task": "arc_easy", "metric": "acc", "value": 0.6, "stderr": 0.02, "n": 500},
                          {"task": "arc_easy", "metric": "acc_norm", "value": 0.55, "stderr": 0.02, "n": 500},
                          {"task": "lambada_openai", "metric": "perplexity", "value": 20.0, "stderr": 1.0, "n": 500}])
json.dump({"results": {"arc_easy": {"alias": "arc_easy", "acc,none": 0.45, "acc_stderr,none": 0.022,
                                    "acc_norm,none": 0.5, "acc_norm_stderr,none": 0.022},
                       "lambada_openai": {"perplexity,none": 40.0, "perplexity_stderr,none": 2.0}},
           "n-samples": {"arc_easy": {"original": 2376, "effective": 500}},
           "config": {"model": "lop"}}, open(os.path.join(d, "healed.results.json"), "w"))
lines("merge.jsonl", [{"action": "try", "iteration": 1, "layers": [3, 5], "source_layers": [3, 5], "similarity": 0.91, "accepted": True, "layers_now": 4},
                      {"action": "try", "iteration": 2, "layers": [1, 3], "source_layers": [1, 5], "similarity": 0.62, "accepted": False, "layers_now": 4},
                      {"action": "laco", "rule": "laco", "iterations": 2, "merges_accepted": 1, "merges_rejected": 1,
                       "layers_removed": 2, "compression": 0.333, "seconds": 1.25}])
lines("wmask.jsonl", [{"action": "prune", "tensor": "model.layers.0.self_attn.q_proj.weight", "shape": [8, 8], "params": 64, "zeros": 32, "sparsity": 0.5, "threshold": 0.01},
                      {"action": "prune", "tensor": "model.layers.0.mlp.up_proj.weight", "shape": [16, 8], "params": 128, "zeros": 64, "sparsity": 0.5, "threshold": 0.02},
                      {"action": "summary", "method": "wanda", "scope": "row", "target_sparsity": 0.5, "tensors": 2, "params": 192, "zeros": 96,
                       "sparsity": 0.5, "model_params": 240, "model_zeros": 96, "model_sparsity": 0.4, "seconds": float(os.environ.get("SECS", "0.5")),
                       "peak_rss_mb": 12.5}])
