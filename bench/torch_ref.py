#!/usr/bin/python3
"""torch_ref.py — the PyTorch reference for bench/ppl.sh: a plain float32 eager forward of a
Llama / Qwen2 / Qwen3 / Gemma 3 text model (written here in torch ops: Debian's python3-torch
ships no transformers), timed over windows of random tokens, full logits + cross-entropy as an
eager perplexity loop computes them.

    torch_ref.py MODEL_DIR [--ctx 512] [--windows 4] [--threads 2] [--check]

--check compares with ../shared goldens instead (per-token NLL of text "en"), to show this
reference computes the same function as transformers. Prints one JSON line.
"""
import argparse, json, math, os, struct, sys, time
import numpy as np
import torch
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        base = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = mm[base + a: base + b]
        if t["dtype"] == "BF16":
            x = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif t["dtype"] == "F16":
            x = raw.view(np.float16).astype(np.float32)
        else:
            x = raw.view(np.float32)
        out[name] = torch.from_numpy(np.array(x).reshape(t["shape"]))
    return out


class Model:
    def __init__(self, d):
        self.c = c = json.load(open(os.path.join(d, "config.json")))
        if "text_config" in c:
            c = self.c = {**c, **c["text_config"]}
        self.w = load_safetensors(os.path.join(d, "model.safetensors"))
        mt = c["model_type"]
        self.gemma = mt.startswith("gemma")
        self.qk = self.gemma or mt == "qwen3"
        self.L, self.C = c["num_hidden_layers"], c["hidden_size"]
        self.H, self.KV = c["num_attention_heads"], c["num_key_value_heads"]
        self.D = c.get("head_dim") or self.C // self.H
        self.eps = c["rms_norm_eps"]
        self.scale = (c["query_pre_attn_scalar"] ** -0.5) if self.gemma else self.D ** -0.5
        n = self.L
        if self.gemma:
            lt = c.get("layer_types") or ["sliding_attention" if (i + 1) % c.get("sliding_window_pattern", 6) else "full_attention" for i in range(n)]
            self.sliding = [t == "sliding_attention" for t in lt]
            self.window = c["sliding_window"]
        else:
            self.sliding, self.window = [False] * n, 0
        self.head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])

    def inv_freq(self, theta):
        return 1.0 / (theta ** (torch.arange(0, self.D, 2, dtype=torch.int64).float() / self.D))

    def norm(self, x, w):
        v = x.pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(v + self.eps)
        return x * (1.0 + w) if self.gemma else x * w

    def rope(self, x, cos, sin):
        h = x.shape[-1] // 2
        rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
        return x * cos + rot * sin

    def forward(self, ids):
        c, w, T = self.c, self.w, ids.shape[0]
        x = w["model.embed_tokens.weight"][ids]
        if self.gemma:
            x = x * torch.tensor(self.C ** 0.5, dtype=torch.float32)
        pos = torch.arange(T).float()
        tabs = {}
        for loc in (False, True):
            theta = c.get("rope_local_base_freq", 10000.0) if loc else c.get("rope_theta", 10000.0)
            f = torch.outer(pos, self.inv_freq(theta))
            e = torch.cat((f, f), dim=-1)
            tabs[loc] = (e.cos(), e.sin())
        i = torch.arange(T)
        causal = i[None, :] <= i[:, None]
        masks = {False: causal, True: causal & (i[:, None] - i[None, :] < max(self.window, 1))}
        for l in range(self.L):
            p = f"model.layers.{l}."
            loc = self.sliding[l]
            h = self.norm(x, w[p + "input_layernorm.weight"])
            q = (h @ w[p + "self_attn.q_proj.weight"].T).view(T, self.H, self.D)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).view(T, self.KV, self.D)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(T, self.KV, self.D)
            if p + "self_attn.q_proj.bias" in w:
                q = q + w[p + "self_attn.q_proj.bias"].view(self.H, self.D)
                k = k + w[p + "self_attn.k_proj.bias"].view(self.KV, self.D)
                v = v + w[p + "self_attn.v_proj.bias"].view(self.KV, self.D)
            if self.qk:
                q = self.norm(q, w[p + "self_attn.q_norm.weight"])
                k = self.norm(k, w[p + "self_attn.k_norm.weight"])
            cos, sin = tabs[loc and self.gemma]
            q = self.rope(q, cos[:, None], sin[:, None]).transpose(0, 1)
            k = self.rope(k, cos[:, None], sin[:, None]).transpose(0, 1)
            v = v.transpose(0, 1)
            rep = self.H // self.KV
            k = k.repeat_interleave(rep, 0)
            v = v.repeat_interleave(rep, 0)
            s = (q @ k.transpose(1, 2)) * self.scale
            s = s.masked_fill(~masks[loc and self.gemma], float("-inf"))
            a = torch.softmax(s, dim=-1) @ v
            o = a.transpose(0, 1).reshape(T, self.H * self.D) @ w[p + "self_attn.o_proj.weight"].T
            if self.gemma:
                o = self.norm(o, w[p + "post_attention_layernorm.weight"])
            x = x + o
            h = self.norm(x, w[p + ("pre_feedforward_layernorm.weight" if self.gemma else "post_attention_layernorm.weight")])
            g = h @ w[p + "mlp.gate_proj.weight"].T
            u = h @ w[p + "mlp.up_proj.weight"].T
            g = F.gelu(g, approximate="tanh") if self.gemma else F.silu(g)
            m = (g * u) @ w[p + "mlp.down_proj.weight"].T
            if self.gemma:
                m = self.norm(m, w[p + "post_feedforward_layernorm.weight"])
            x = x + m
        x = self.norm(x, w["model.norm.weight"])
        return x @ self.head.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m = Model(a.model)
    with torch.no_grad():
        if a.check:
            g = json.load(open(os.path.join(a.model, "golden.json")))["texts"]["en"]
            ids = torch.tensor(g["ids"])
            nll = F.cross_entropy(m.forward(ids)[:-1], ids[1:], reduction="none")
            err = max(abs(float(x) - y) for x, y in zip(nll, g["nll"]))
            print(json.dumps({"bench": "torch_ref_check", "model": a.model, "max_nll_err": err}))
            return
        gen = torch.Generator().manual_seed(0)
        V = m.head.shape[0]
        m.forward(torch.randint(0, V, (16,), generator=gen))  # warm up
        tot, n, t0 = 0.0, 0, time.time()
        for _ in range(a.windows):
            ids = torch.randint(0, V, (a.ctx,), generator=gen)
            logits = m.forward(ids)
            tot += float(F.cross_entropy(logits[:-1], ids[1:], reduction="sum"))
            n += a.ctx - 1
        dt = time.time() - t0
    print(json.dumps({"bench": "torch_eager", "model": os.path.basename(a.model.rstrip("/")), "ctx": a.ctx,
                      "threads": a.threads, "tokens": a.windows * a.ctx, "seconds": dt,
                      "tokens_per_s": a.windows * a.ctx / dt, "mean_nll": tot / n, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
