#!/usr/bin/env bash
# bench/heal-4b.sh — the depth-pruning model card at its real size: a random-weight Gemma-3-4B
# text model (3,880,263,168 params, bf16, 7.8 GB) keeps layers 0-7 and 25-33 (layer-drop), then
# heals with LoRA r=16 at seq 512 (heal-sft). Shows that it fits this 24 GB machine (the base
# stays memory-mapped in bf16) and what a step costs. Figures: params before/after, layer-drop
# seconds, heal tokens/s, peak RSS against the bf16 weights + activations.
# Env: HEAL4B_STEPS (default 3), LOP_BENCH_OUT. Needs ~20 GB of disk under bench/out.
set -u
cd "$(dirname "$0")/.."
OUT=${LOP_BENCH_OUT:-$PWD/bench/out}
STEPS=${HEAL4B_STEPS:-3}
M=$OUT/models/gemma-3-4b
P=$OUT/models/gemma-3-4b-17l
mkdir -p "$OUT/models"
[ -f "$M/model.safetensors" ] || /usr/bin/python3 bench/gen-model.py gemma-3-4b "$M" >/dev/null || exit 1
t0=$(date +%s.%N)
bin/layer-drop -q -m "$M" --keep 0-7,25-33 -o "$P" > "$OUT/heal4b-drop.json" || exit 1
t1=$(date +%s.%N)
/usr/bin/python3 -c "
import json, random
r = random.Random(1)
for _ in range($STEPS): print(json.dumps({'ids': [r.randrange(2, 262144) for _ in range(513)]}))" > "$OUT/heal4b-data.jsonl"
bin/heal-sft -q -m "$P" --data "$OUT/heal4b-data.jsonl" -o "$OUT/heal4b-adapter" --steps "$STEPS" \
  --seq-len 512 --batch 1 --no-shuffle --lr 1e-4 --lora-rank 16 > "$OUT/heal4b.jsonl" || exit 1
/usr/bin/python3 - "$OUT" "$P" "$t0" "$t1" <<'PY'
import json, os, sys
out, p, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
drop = [json.loads(l) for l in open(out + "/heal4b-drop.json")][-1]
L = [json.loads(l) for l in open(out + "/heal4b.jsonl")]
steps = [l for l in L if "grad_norm" in l][1:] or [l for l in L if "grad_norm" in l]
tps = sum(s["tokens"] for s in steps) / sum(s["tokens"] / s["tokens_per_s"] for s in steps)
wb = os.path.getsize(p + "/model.safetensors") if os.path.exists(p + "/model.safetensors") else \
     sum(os.path.getsize(os.path.join(p, f)) for f in os.listdir(p) if f.endswith(".safetensors"))
fin = L[-1]
r = {"bench": "heal-4b", "params_before": drop["params_before"], "params_after": drop["params_after"],
     "layer_drop_s": round(t1 - t0, 1), "lora_rank": 16, "seq": 512,
     "trainable_params": fin["trainable_params"], "tokens_per_s": round(tps, 2),
     "gflops": round(4 * drop["params_after"] * tps / 1e9, 1),
     "peak_rss_gb": round(fin["peak_rss_bytes"] / 2**30, 2), "weights_gb": round(wb / 2**30, 2),
     "act_gb": round(fin.get("act_bytes", 0) / 2**30, 2)}
print(json.dumps(r))
print(f"  Gemma-3-4B {r['params_before']:,} -> {r['params_after']:,} params (layer-drop {r['layer_drop_s']} s); "
      f"LoRA r16 heal {r['tokens_per_s']} tok/s, peak RSS {r['peak_rss_gb']} GB "
      f"(bf16 weights {r['weights_gb']} GB mapped, activations {r['act_gb']} GB)", file=sys.stderr)
PY
rm -rf "$OUT/heal4b-adapter" "$OUT/heal4b-adapter.ckpt"
