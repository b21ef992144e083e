#!/usr/bin/env bash
# bench/heal-sft.sh — training throughput on the gemma-3-270m shape at seq 512: heal-sft full
# fine-tuning and LoRA r=16 against PyTorch CPU autograd (python3-torch) on the same model, data
# and AdamW steps. Figures: tokens/s, GFLOP/s as 6 x params x tokens/s against the machine's
# sgemm ceiling, peak RSS, and the speed ratio to PyTorch.
set -u
cd "$(dirname "$0")/.."
OUT=${LOP_BENCH_OUT:-$PWD/bench/out}
mkdir -p "$OUT"
STEPS=${HEAL_BENCH_STEPS:-4}
M=$OUT/gemma-3-270m
[ -f "$M/model.safetensors" ] || /usr/bin/python3 bench/gen-model.py gemma-3-270m "$M" >/dev/null || exit 1
# STEPS sequences of 512 inputs (+1 target), random ids
/usr/bin/python3 -c "
import json, random
r = random.Random(1)
for _ in range($STEPS): print(json.dumps({'ids': [r.randrange(2, 262144) for _ in range(513)]}))" > "$OUT/heal-data.jsonl"
# the sgemm ceiling with the kernels heal-sft uses (it re-executes with SkylakeX when it can)
[ -x "$OUT/machine" ] || gcc -O2 -o "$OUT/machine" bench/machine.c -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas
core=${OPENBLAS_CORETYPE:-$(grep -q avx512f /proc/cpuinfo && echo SkylakeX || echo Haswell)}
ceil=$(OPENBLAS_CORETYPE=$core "$OUT/machine" \
       | /usr/bin/python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['sgemm_gflops'])")
params=$(/usr/bin/python3 -c "
import json, struct
b = open('$M/model.safetensors', 'rb'); n = struct.unpack('<Q', b.read(8))[0]
h = json.loads(b.read(n)); h.pop('__metadata__', None)
import functools, operator
print(sum(functools.reduce(operator.mul, v['shape'], 1) for v in h.values()))")
run_lop() { # mode args...
  local mode=$1; shift
  bin/heal-sft -q -m "$M" --data "$OUT/heal-data.jsonl" -o "$OUT/heal-$mode" --steps "$STEPS" \
    --seq-len 512 --batch 1 --no-shuffle --lr 1e-5 "$@" > "$OUT/heal-$mode.jsonl" || return 1
  rm -rf "$OUT/heal-$mode" "$OUT/heal-$mode.ckpt"
}
run_torch() { # mode lora
  /usr/bin/python3 bench/heal_sft_torch.py "$M" "$OUT/heal-data.jsonl" "$STEPS" --lora "$2" \
    --threads "$(nproc)" > "$OUT/torch-$1.jsonl" 2>"$OUT/torch-$1.err" || { echo "torch $1 failed: $(tail -1 "$OUT/torch-$1.err")"; return 1; }
}
run_lop full
run_lop lora --lora-rank 16
have_torch=0
/usr/bin/python3 -c "import torch" 2>/dev/null && have_torch=1
if [ $have_torch = 1 ]; then run_torch full 0; run_torch lora 16; fi
/usr/bin/python3 - "$OUT" "$params" "$ceil" "$have_torch" <<'PY'
import json, sys
out, params, ceil, have_torch = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
def lines(p):
    try: return [json.loads(l) for l in open(p)]
    except OSError: return []
rows = []
for mode in ("full", "lora"):
    L = lines("%s/heal-%s.jsonl" % (out, mode))
    steps = [l for l in L if "grad_norm" in l][1:]  # the first step warms up
    tps = sum(s["tokens"] for s in steps) / sum(s["tokens"] / s["tokens_per_s"] for s in steps)
    rss = L[-1]["peak_rss_bytes"]
    # full: 6 x params x tokens; LoRA skips the weight gradients: 4 x params x tokens
    flops = (6 if mode == "full" else 4) * params * tps / 1e9
    t = lines("%s/torch-%s.jsonl" % (out, mode)) if have_torch else []
    ttps = t[-1]["tokens_per_s"] if t else None
    first = [l for l in L if "grad_norm" in l][0]["loss"]
    tfirst = t[0]["loss"] if t else None
    r = {"bench": "heal-sft", "model": "gemma-3-270m (random)", "mode": mode if mode == "full" else "lora r=16",
         "seq": 512, "tokens_per_s": round(tps, 1), "gflops": round(flops, 1),
         "sgemm_ceiling_gflops": ceil, "ceiling_fraction": round(flops / ceil, 3),
         "peak_rss_mb": round(rss / 2**20), "act_mb": round(L[-1].get("act_bytes", 0) / 2**20),
         # full fine-tuning's budget: 16 bytes/parameter (master, grad, AdamW m, v) + activations
         "budget_mb": round((16 * params + L[-1].get("act_bytes", 0)) / 2**20) if mode == "full" else None,
         "rss_over_budget": round(rss / (16 * params + L[-1].get("act_bytes", 0)), 3) if mode == "full" else None,
         "torch_tokens_per_s": round(ttps, 1) if ttps else None,
         "speedup_vs_torch": round(tps / ttps, 2) if ttps else None,
         "loss_step1": round(first, 5), "torch_loss_step1": round(tfirst, 5) if tfirst else None}
    rows.append(r)
    print(json.dumps(r))
print("%-10s %10s %9s %8s %9s %10s %11s %8s" % ("mode", "tokens/s", "GFLOP/s", "of ceil", "RSS MB", "budget MB", "torch tok/s", "speedup"))
for r in rows:
    print("%-10s %10.1f %9.1f %7.0f%% %9d %10s %11s %8s" % (r["mode"], r["tokens_per_s"], r["gflops"],
          100 * r["ceiling_fraction"], r["peak_rss_mb"], r["budget_mb"], r["torch_tokens_per_s"], r["speedup_vs_torch"]))
PY
