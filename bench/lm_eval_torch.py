#!/usr/bin/python3
"""lm_eval_torch.py — the PyTorch reference for bench/lm-eval.sh: the requests lm-eval scored
(its --log-samples file: ctx_ids and cont_ids of every request), scored one by one as the harness's
HFLM does it without batching: a plain float32 eager forward (bench/torch_ref.py's Model) of
ctx + cont[:-1], full logits, log_softmax, the sum over the continuation's tokens, and is_greedy.

    lm_eval_torch.py MODEL_DIR SAMPLES.jsonl [--items N] [--threads 2]

--items: score only the first N documents of each task (0 = all). Prints one JSON line per task:
items/s, requests, and the largest difference from lm-eval's own log-likelihoods (both sides run
the same bf16 weights in float32, so they agree to rounding) and the share of documents whose
acc agrees.
"""
import argparse, json, os, resource, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch_ref import Model  # noqa: E402


def score(m, ctx, cont):
    ids = torch.tensor(ctx + cont)
    logits = m.forward(ids[:-1])[-len(cont):]  # (ncont, V)
    lp = F.log_softmax(logits, dim=-1)
    tgt = ids[-len(cont):]
    ll = float(lp.gather(1, tgt[:, None]).sum())
    greedy = bool((lp.argmax(-1) == tgt).all())
    return ll, greedy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("samples")
    ap.add_argument("--items", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    docs = {}
    for line in open(a.samples):
        d = json.loads(line)
        lst = docs.setdefault(d["task"], [])
        if a.items <= 0 or len(lst) < a.items:
            lst.append(d)
    t0 = time.time()
    m = Model(a.model)
    load_s = time.time() - t0
    with torch.no_grad():
        m.forward(torch.tensor([2, 3, 4, 5]))  # warm up
        for task, lst in docs.items():
            n_req, dmax, agree, t0 = 0, 0.0, 0, time.time()
            for d in lst:
                lls = []
                for ctx, cont, (ll_lop, _) in zip(d["ctx_ids"], d["cont_ids"], d["resps"]):
                    ll, _ = score(m, ctx, cont)
                    lls.append(ll)
                    dmax = max(dmax, abs(ll - ll_lop))
                    n_req += 1
                agree += int((max(range(len(lls)), key=lls.__getitem__) == d["target"]) == bool(d["acc"]))
            dt = time.time() - t0
            print(json.dumps({"bench": "lm_eval_torch", "task": task, "items": len(lst), "requests": n_req,
                              "seconds": round(dt, 3), "items_per_s": len(lst) / dt,
                              "max_ll_diff": dmax, "acc_agree": agree / len(lst),
                              "threads": a.threads, "load_s": round(load_s, 2),
                              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10,
                              "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
