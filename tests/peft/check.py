# PEFT load-back check of lop's LoRA adapters (issue 15), run on the GPU machine (transformers + PEFT).
# For each family: lop's per-token NLL with `ppl -m ADAPTER` (computed on the CPU machine, *-ppl.jsonl)
# against (1) PeftModel.from_pretrained(base, adapter), (2) AutoPeftModelForCausalLM from the adapter
# folder (its relative base path, resolved from the working folder as PEFT does: run from inside it),
# (3) the st-cat merge loaded with AutoModelForCausalLM. Float32, CPU (tiny models), eager attention.
# Prepared by tests/peft/prepare.sh DIR on a machine with lop; run as python3 DIR/check.py.
import json, os, sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel, AutoPeftModelForCausalLM
torch.set_grad_enabled(False)
here = os.path.abspath(os.path.dirname(__file__))
worst = 0.0
rows = []
def nll(model, ids):
    x = torch.tensor([ids])
    logits = model(input_ids=x).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    return [-lp[i, ids[i + 1]].item() for i in range(len(ids) - 1)]
for fam in ("llama-tiny", "qwen3-tiny", "gemma3-tiny"):
    ids = [json.loads(l) for l in open(f"{here}/{fam}-ids.json") if l.startswith('{"ids"')][0]["ids"]
    lop = [json.loads(l) for l in open(f"{here}/{fam}-ppl.jsonl") if l.startswith('{"pos"')]
    lop_nll = {r["pos"]: r["nll"] for r in lop}
    kw = dict(torch_dtype=torch.float32, attn_implementation="eager")
    base = AutoModelForCausalLM.from_pretrained(f"{here}/{fam}", **kw)
    m1 = PeftModel.from_pretrained(base, f"{here}/{fam}-lora").eval()
    cwd = os.getcwd(); os.chdir(f"{here}/{fam}-lora")
    m2 = AutoPeftModelForCausalLM.from_pretrained(".", **kw).eval()
    os.chdir(cwd)
    m3 = AutoModelForCausalLM.from_pretrained(f"{here}/{fam}-merged", **kw).eval()
    b0 = AutoModelForCausalLM.from_pretrained(f"{here}/{fam}", **kw).eval()
    for name, m in (("PeftModel", m1), ("AutoPeft(rel. base)", m2), ("st-cat merge", m3), ("base (no adapter)", b0)):
        t = nll(m, ids)
        d = max(abs(t[p - 1] - lop_nll[p]) for p in lop_nll)
        rows.append((fam, name, len(lop_nll), d))
        if name != "base (no adapter)": worst = max(worst, d)
print("| family | loaded as | tokens | max abs dNLL vs lop ppl -m adapter |")
print("|---|---|---|---|")
for r in rows: print("| %s | %s | %d | %.2e |" % r)
print("WORST %.3e (bound 1e-4): %s" % (worst, "PASS" if worst < 1e-4 else "FAIL"))
