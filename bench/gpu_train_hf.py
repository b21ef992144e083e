#!/usr/bin/env python3
"""gpu_train_hf.py — the PyTorch + transformers side of bench/gpu-train.sh: training throughput on
one GPU as users run it today (AMP bf16 autocast over float32 master weights, fused AdamW,
clip_grad_norm_ 1.0, sdpa attention, model(ids, labels=ids).loss), on the same pre-tokenized data
({"ids": [...]} lines) and, where a folder is given, the same random weights as lop. One process
runs every job (torch and transformers import once); one JSON line per job.

    gpu_train_hf.py JOB [JOB ...] --data DATA.jsonl [--batch 8] [--seq 512] [--steps 10] [--warmup 3]
    JOB:  full:MODEL            full fine-tuning
          lora:MODEL[:R]        PEFT LoRA r=R (default 16) on q,k,v,o,gate,up,down, base bf16 frozen
          kd:TEACHER:DROP       distillation: student = TEACHER without layers DROP ("10-13"),
                                full fine-tuning, loss 0.5 ce + 0.5 skl (skew 0.1, T 1) as
                                kd-train's default, teacher bf16 in eval mode on the same GPU
    MODEL: an HF folder, or cfg:NAME[:KEEP] — bench/gen-model.py's config NAME built in memory
          with random init (no file), KEEP ("0-7,25-33") the layers kept
Figures: tokens/s over the timed steps (batch x seq tokens each), FLOPs per token as lop's
tr_step_flops (6 x matrix params + 12 L T H D; LoRA 4 x), peak GPU memory
(max_memory_allocated), the loss of every step.
"""
import argparse, copy, importlib.util, json, os, sys, time
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def sync():
    torch.cuda.synchronize()


def ranges(s):
    out = []
    for p in s.split(","):
        a, _, b = p.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def gen_configs():
    spec = importlib.util.spec_from_file_location("genmodel", os.path.join(HERE, "gen-model.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m.CONFIGS


def keep_layers(cfgd, keep):
    cfgd = dict(cfgd)
    if "layer_types" in cfgd and cfgd["layer_types"]:
        cfgd["layer_types"] = [cfgd["layer_types"][i] for i in keep]
    cfgd["num_hidden_layers"] = len(keep)
    if "max_window_layers" in cfgd:
        cfgd["max_window_layers"] = len(keep)
    return cfgd


def load(spec, dtype):
    from transformers import AutoConfig, AutoModelForCausalLM
    if spec.startswith("cfg:"):
        parts = spec.split(":")
        cfgd = dict(gen_configs()[parts[1]]["config"])
        if len(parts) > 2:
            cfgd = keep_layers(cfgd, ranges(parts[2]))
        cfgd.pop("transformers_version", None)
        mt = cfgd.pop("model_type")
        cfg = AutoConfig.for_model(mt, **cfgd)
        with torch.device("cuda"):
            m = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
        return m
    return AutoModelForCausalLM.from_pretrained(spec, dtype=dtype, attn_implementation="sdpa").cuda()


def flops_per_token(model, T, lora=False):
    c = model.config
    c = getattr(c, "text_config", c)
    mat = 0
    for n, p in model.named_parameters():
        if p.dim() == 2 and "lora_" not in n and "embed_tokens" not in n:
            mat += p.numel()
    if getattr(c, "tie_word_embeddings", False) or not any("lm_head" in n for n, _ in model.named_parameters()):
        mat += c.vocab_size * c.hidden_size  # the tied head
    D = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    att = 12 * c.num_hidden_layers * T * c.num_attention_heads * D
    return (4 if lora else 6) * mat + att, mat


def batches(path, B, T, n):
    rows = []
    for line in open(path):
        ids = json.loads(line)["ids"]
        rows.append(ids[:T])
        if len(rows) == B * n:
            break
    while len(rows) < B * n:
        rows += rows[: B * n - len(rows)]
    x = torch.tensor(rows, device="cuda").view(n, B, T)
    return x


def skl(s_logits, t_logits, a=0.1, T=1.0):
    ls = F.log_softmax(s_logits.float() / T, -1)
    lt = F.log_softmax(t_logits.float() / T, -1)
    p, q = lt.exp(), ls.exp()
    lm = torch.log(a * p + (1 - a) * q)
    return (T * T) * (p * (lt - lm)).sum(-1).mean()


def run(job, a, x):
    kind, _, rest = job.partition(":")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    teacher = None
    if kind == "full":
        model = load(rest, torch.float32)
        params = [p for p in model.parameters()]
    elif kind == "lora":
        spec, r = rest, 16
        head, _, tail = rest.rpartition(":")
        if head and tail.isdigit():
            spec, r = head, int(tail)
        from peft import LoraConfig, get_peft_model
        base = load(spec, torch.bfloat16)
        model = get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=[
            "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
        for n, p in model.named_parameters():  # adapters in float32 (AMP's master copies)
            if p.requires_grad:
                p.data = p.data.float()
        params = [p for p in model.parameters() if p.requires_grad]
        rest = spec
    elif kind == "kd":
        spec, _, drop = rest.rpartition(":")
        teacher = load(spec, torch.bfloat16).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        model = copy.deepcopy(teacher).float()
        dl = set(ranges(drop))
        inner = model.model if hasattr(model, "model") else model
        keep = [i for i in range(len(inner.layers)) if i not in dl]
        inner.layers = torch.nn.ModuleList([inner.layers[i] for i in keep])
        for j, l in enumerate(inner.layers):
            if hasattr(l, "self_attn") and hasattr(l.self_attn, "layer_idx"):
                l.self_attn.layer_idx = j
        cd = keep_layers(model.config.to_dict(), keep)
        model.config.num_hidden_layers = cd["num_hidden_layers"]
        if getattr(model.config, "layer_types", None):
            model.config.layer_types = cd["layer_types"]
        for p in model.parameters():
            p.requires_grad_(True)
        params = list(model.parameters())
    else:
        raise SystemExit("unknown job " + job)
    model.train()
    decay = [p for p in params if p.dim() >= 2]
    nodecay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=1e-5 if kind != "lora" else 1e-4, fused=True)
    fpt, mat = flops_per_token(model, a.seq, lora=kind == "lora")
    losses, times = [], []
    for i in range(a.warmup + a.steps):
        ids = x[i % x.shape[0]]
        sync()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            if kind == "kd":
                out = model(ids)
                with torch.no_grad():
                    tl = teacher(ids).logits
                sl = out.logits[:, :-1]
                ce = F.cross_entropy(sl.float().reshape(-1, sl.shape[-1]), ids[:, 1:].reshape(-1))
                loss = 0.5 * ce + 0.5 * skl(sl, tl[:, :-1])
            else:
                loss = model(ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - t0)
        losses.append(round(loss.item(), 5))
    tt = times[a.warmup:]
    tok = a.batch * a.seq
    tps = tok * len(tt) / sum(tt)
    r = {"bench": "hf_train", "job": kind, "model": rest, "batch": a.batch, "seq": a.seq,
         "steps": a.steps, "tokens_per_s": round(tps, 1), "flops_per_token": fpt, "matrix_params": mat,
         "tflops": round(fpt * tps / 1e12, 1), "peak_gpu_mb": torch.cuda.max_memory_allocated() >> 20,
         "losses": losses}
    print(json.dumps(r), flush=True)
    del model, opt, teacher, params
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jobs", nargs="+")
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    x = batches(a.data, a.batch, a.seq, a.warmup + a.steps)
    for job in a.jobs:
        try:
            run(job, a, x)
        except Exception as ex:  # one job's failure (e.g. out of memory) does not stop the others
            print(json.dumps({"bench": "hf_train", "job": job, "error": f"{type(ex).__name__}: {ex}"[:400]}), flush=True)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
