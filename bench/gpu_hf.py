#!/usr/bin/env python3
"""gpu_hf.py — the PyTorch + transformers side of bench/gpu-forward.sh, on the same GPU, the same
random-weight model folders and the same text. Prints one JSON line per measurement.

    gpu_hf.py matmul                       # bf16 8192^3 matmul rate (the machine's ceiling)
    gpu_hf.py ppl MODEL TEXT --dtype bf16|fp32 [--ctx 512] [--batch 16] [--batches 8]
        perplexity as the Hugging Face recipe computes it: windows of ctx tokens (stride = ctx),
        model(input_ids, labels=input_ids).loss (transformers upcasts the logits to float32 for
        the loss), sdpa attention; scored tokens/s after two warm-up batches; peak GPU memory
    gpu_hf.py loglik MODEL SAMPLES.jsonl --dtype bf16 [--batch 32]
        the log-likelihood requests of an lm-eval --log-samples file (its ctx_ids/cont_ids),
        batched as lm-evaluation-harness's HF backend does: sorted by descending length, padded
        right, log_softmax over the batch's logits, continuation log-probs summed; items/s
"""
import argparse, json, sys, time
import torch
import torch.nn.functional as F


def sync():
    torch.cuda.synchronize()


def matmul_rate():
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync()
    ts = []
    for _ in range(10):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record(); a @ b; e1.record(); sync()
        ts.append(e0.elapsed_time(e1) / 1e3)
    ts.sort()
    print(json.dumps({"bench": "bf16_matmul", "n": n, "tflops": round(2 * n ** 3 / ts[len(ts) // 2] / 1e12, 1)}))


def load(path, dtype):
    from transformers import AutoModelForCausalLM
    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    m = AutoModelForCausalLM.from_pretrained(path, dtype=dt, attn_implementation="sdpa").cuda().eval()
    return m


def tokens(path, text, need):
    from tokenizers import Tokenizer
    tk = Tokenizer.from_file(path + "/tokenizer.json")
    ids = tk.encode(open(text, encoding="utf-8").read(), add_special_tokens=False).ids
    while len(ids) < need:
        ids = ids + ids
    return ids[:need]


def ppl(a):
    m = load(a.model, a.dtype)
    n = a.ctx * a.batch
    ids = torch.tensor(tokens(a.model, a.text, n * (a.batches + 2)), device="cuda").view(-1, a.batch, a.ctx)
    torch.cuda.reset_peak_memory_stats()
    nll, cnt = 0.0, 0
    with torch.inference_mode():
        for i in range(2):
            m(ids[i], labels=ids[i]).loss.item()
        sync()
        t0 = time.perf_counter()
        for i in range(2, a.batches + 2):
            loss = m(ids[i], labels=ids[i]).loss
            nll += loss.float().item() * a.batch * (a.ctx - 1)
            cnt += a.batch * (a.ctx - 1)
        sync()
        dt = time.perf_counter() - t0
    print(json.dumps({"bench": "hf_ppl", "model": a.model, "dtype": a.dtype, "ctx": a.ctx, "batch": a.batch,
                      "tokens": cnt, "seconds": round(dt, 4), "tokens_per_s": round(cnt / dt, 1),
                      "nll": round(nll / cnt, 5), "peak_gpu_mb": torch.cuda.max_memory_allocated() >> 20}))


def loglik(a):
    m = load(a.model, a.dtype)
    reqs = []
    for line in open(a.samples):
        d = json.loads(line)
        for c, t in zip(d["ctx_ids"], d["cont_ids"]):
            reqs.append((c, t))
    # the harness's HF backend: sort by -(len(ctx)+len(cont)); inputs = (ctx + cont)[:-1]
    order = sorted(range(len(reqs)), key=lambda i: -(len(reqs[i][0]) + len(reqs[i][1])))
    out = [None] * len(reqs)

    def run():
        for b0 in range(0, len(order), a.batch):
            idx = order[b0:b0 + a.batch]
            inps = [(reqs[i][0] + reqs[i][1])[:-1] for i in idx]
            L = max(len(x) for x in inps)
            x = torch.zeros(len(inps), L, dtype=torch.long, device="cuda")
            for j, s in enumerate(inps):
                x[j, :len(s)] = torch.tensor(s, device="cuda")
            logp = F.log_softmax(m(x).logits, dim=-1)
            for j, i in enumerate(idx):
                c, t = reqs[i]
                n = len(c) + len(t) - 1
                lp = logp[j, n - len(t):n]
                tt = torch.tensor(t, device="cuda")
                out[i] = (lp.gather(1, tt[:, None]).sum().item(), bool((lp.argmax(-1) == tt).all().item()))

    with torch.inference_mode():
        run()  # warm-up (also the answers)
        sync()
        t0 = time.perf_counter()
        run()
        sync()
        dt = time.perf_counter() - t0
    docs = sum(1 for _ in open(a.samples))
    print(json.dumps({"bench": "hf_loglik", "model": a.model, "dtype": a.dtype, "requests": len(reqs), "items": docs,
                      "seconds": round(dt, 4), "items_per_s": round(docs / dt, 1),
                      "requests_per_s": round(len(reqs) / dt, 1)}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["matmul", "ppl", "loglik"])
    ap.add_argument("model", nargs="?")
    ap.add_argument("text", nargs="?")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=8)
    a = ap.parse_args()
    if a.what == "matmul":
        matmul_rate()
    elif a.what == "ppl":
        ppl(a)
    else:
        a.samples = a.text
        loglik(a)


if __name__ == "__main__":
    main()
