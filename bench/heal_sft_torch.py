#!/usr/bin/python3
"""heal_sft_torch.py — the PyTorch CPU autograd reference for bench/heal-sft.sh.

The same model (Llama / Qwen3 / Gemma 3 text, written out in plain torch as transformers computes
it in float32, weights read from the model's safetensors), the same pre-tokenized sequences
({"ids": [...]} lines, each one sequence), the same AdamW steps; full fine-tuning or LoRA on all
seven projections. Prints one JSON line per step (loss, seconds, tokens/s) and a summary.

    heal_sft_torch.py MODEL_DIR DATA.jsonl STEPS [--lora R] [--threads N] [--lr X]
"""
import argparse, json, math, os, resource, struct, sys, time
import numpy as np
import torch
import torch.nn.functional as F


def load_st(folder):
    path = os.path.join(folder, "model.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for k, v in hdr.items():
            if k == "__metadata__":
                continue
            a, b = v["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            if v["dtype"] == "BF16":
                u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
                arr = u.view(np.float32)
            elif v["dtype"] == "F32":
                arr = np.frombuffer(raw, dtype=np.float32)
            elif v["dtype"] == "F16":
                arr = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
            else:
                raise SystemExit("unsupported dtype " + v["dtype"])
            out[k] = torch.from_numpy(arr.copy()).reshape(v["shape"])
    return out


class Model(torch.nn.Module):
    def __init__(self, cfg, W, lora_r=0):
        super().__init__()
        self.cfg = cfg
        self.gemma = cfg["model_type"].startswith("gemma3")
        self.L = cfg["num_hidden_layers"]
        self.H, self.KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.C = cfg["hidden_size"]
        self.D = cfg.get("head_dim") or self.C // self.H
        self.eps = cfg["rms_norm_eps"]
        self.qk_norm = self.gemma or cfg["model_type"] == "qwen3"
        self.p = torch.nn.ParameterDict()
        self.names = {}
        for k, v in W.items():
            key = k.replace(".", "__")
            self.names[k] = key
            self.p[key] = torch.nn.Parameter(v, requires_grad=lora_r == 0)
        self.lora_r = lora_r
        self.lora = torch.nn.ParameterDict()
        if lora_r:
            for l in range(self.L):
                for mod, proj in [("self_attn", p) for p in ("q_proj", "k_proj", "v_proj", "o_proj")] + \
                                 [("mlp", p) for p in ("gate_proj", "up_proj", "down_proj")]:
                    w = self.w("model.layers.%d.%s.%s.weight" % (l, mod, proj))
                    out, inn = w.shape
                    key = "l%d_%s" % (l, proj)
                    self.lora[key + "_A"] = torch.nn.Parameter(torch.empty(lora_r, inn).uniform_(-1 / math.sqrt(inn), 1 / math.sqrt(inn)))
                    self.lora[key + "_B"] = torch.nn.Parameter(torch.zeros(out, lora_r))
        D = self.D
        def inv(theta):
            return 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
        self.inv_full = inv(cfg.get("rope_theta", 10000.0))
        self.inv_local = inv(cfg.get("rope_local_base_freq", 10000.0))
        lt = cfg.get("layer_types")
        self.sliding = [t == "sliding_attention" for t in lt] if (self.gemma and lt) else [False] * self.L
        self.window = cfg.get("sliding_window") or 0
        self.scale = (cfg.get("query_pre_attn_scalar") or D) ** -0.5 if self.gemma else D ** -0.5

    def w(self, name):
        return self.p[self.names[name]]

    def norm(self, x, w):
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x * (1.0 + w) if self.gemma else x * w

    def lin(self, x, l, mod, proj):
        y = x @ self.w("model.layers.%d.%s.%s.weight" % (l, mod, proj)).t()
        if self.lora_r:
            key = "l%d_%s" % (l, proj)
            y = y + (2.0) * ((x @ self.lora[key + "_A"].t()) @ self.lora[key + "_B"].t())
        return y

    @staticmethod
    def rot(x, cos, sin):
        h = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., h:], x[..., :h]), -1) * sin

    def forward(self, ids):
        B, T = ids.shape
        H, KV, D, C = self.H, self.KV, self.D, self.C
        x = F.embedding(ids, self.w("model.embed_tokens.weight"))
        if self.gemma:
            x = x * torch.tensor(C ** 0.5, dtype=torch.float32)
        pos = torch.arange(T, dtype=torch.float32)
        i = torch.arange(T)
        causal = i[None, :] <= i[:, None]
        local = causal & (i[:, None] - i[None, :] < self.window) if self.window else causal
        for l in range(self.L):
            pre = "model.layers.%d." % l
            inv = self.inv_local if self.sliding[l] else self.inv_full
            fr = pos[:, None] * inv[None, :]
            emb = torch.cat((fr, fr), -1)
            cos, sin = emb.cos(), emb.sin()
            h = self.norm(x, self.w(pre + "input_layernorm.weight"))
            q = self.lin(h, l, "self_attn", "q_proj").view(B, T, H, D)
            k = self.lin(h, l, "self_attn", "k_proj").view(B, T, KV, D)
            v = self.lin(h, l, "self_attn", "v_proj").view(B, T, KV, D)
            if self.qk_norm:
                q = self.norm(q, self.w(pre + "self_attn.q_norm.weight"))
                k = self.norm(k, self.w(pre + "self_attn.k_norm.weight"))
            q = self.rot(q.transpose(1, 2), cos, sin)
            k = self.rot(k.transpose(1, 2), cos, sin)
            v = v.transpose(1, 2)
            rep = H // KV
            k = k.repeat_interleave(rep, 1)
            v = v.repeat_interleave(rep, 1)
            s = (q @ k.transpose(-1, -2)) * self.scale
            mask = local if self.sliding[l] else causal
            s = s.masked_fill(~mask, float("-inf"))
            a = torch.softmax(s, -1) @ v
            o = self.lin(a.transpose(1, 2).reshape(B, T, H * D), l, "self_attn", "o_proj")
            if self.gemma:
                o = self.norm(o, self.w(pre + "post_attention_layernorm.weight"))
                x = x + o
                h = self.norm(x, self.w(pre + "pre_feedforward_layernorm.weight"))
            else:
                x = x + o
                h = self.norm(x, self.w(pre + "post_attention_layernorm.weight"))
            g = self.lin(h, l, "mlp", "gate_proj")
            u = self.lin(h, l, "mlp", "up_proj")
            act = F.gelu(g, approximate="tanh") if self.gemma else F.silu(g)
            m = self.lin(act * u, l, "mlp", "down_proj")
            if self.gemma:
                m = self.norm(m, self.w(pre + "post_feedforward_layernorm.weight"))
            x = x + m
        x = self.norm(x, self.w("model.norm.weight"))
        head = self.w("lm_head.weight") if "lm_head.weight" in self.names else self.w("model.embed_tokens.weight")
        return x @ head.t()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model"); ap.add_argument("data"); ap.add_argument("steps", type=int)
    ap.add_argument("--lora", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--lr", type=float, default=1e-5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    model = Model(cfg, load_st(a.model), a.lora)
    params = [p for p in list(model.p.values()) + list(model.lora.values()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    seqs = [json.loads(l)["ids"] for l in open(a.data)]
    total_tok, total_t = 0, 0.0
    for step in range(a.steps):
        ids = torch.tensor([seqs[step % len(seqs)]], dtype=torch.int64)
        t0 = time.time()
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dt = time.time() - t0
        n = ids.shape[1] - 1
        if step > 0:  # the first step warms up allocators
            total_tok += n; total_t += dt
        print(json.dumps({"step": step + 1, "loss": loss.item(), "seconds": dt, "tokens_per_s": n / dt}), flush=True)
    print(json.dumps({"summary": True, "tokens_per_s": total_tok / total_t if total_t else 0,
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "threads": a.threads, "lora": a.lora}), flush=True)


if __name__ == "__main__":
    main()
