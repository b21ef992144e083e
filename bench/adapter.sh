#!/usr/bin/env bash
# bench/adapter.sh — what a LoRA adapter folder costs as -m: the float32 merge at load (time and
# peak RSS) next to the same model merged once into a folder, and st-cat's merge itself.
# Shape: gemma-3-270m (random bf16 weights of the real config) with a random rank-16 adapter on
# all seven projections of every layer (PEFT's layout). ppl scores 1,024 WikiText-2 tokens.
# Peak RSS from /usr/bin/time; each figure the best of 3 runs.
set -u
cd "$(dirname "$0")/.."
OUT=${LOP_BENCH_OUT:-bench/out}
mkdir -p "$OUT"
SHARED=${LOP_SHARED:-../shared}
export PATH=$PWD/bin:$PATH
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
M=$OUT/adapter-gemma-270m
[ -f "$M/base/model.safetensors" ] || /usr/bin/python3 bench/gen-model.py gemma-3-270m "$M/base" >/dev/null
if [ ! -f "$M/ad/adapter_model.safetensors" ]; then
  /usr/bin/python3 - "$M" <<'EOF'
import json, os, struct, sys
import numpy as np
M = sys.argv[1]
cfg = json.load(open(M + '/base/config.json'))
C, I, L = cfg['hidden_size'], cfg['intermediate_size'], cfg['num_hidden_layers']
D, Hq, Hk = cfg['head_dim'], cfg['num_attention_heads'], cfg['num_key_value_heads']
shapes = {'self_attn.q_proj': (Hq * D, C), 'self_attn.k_proj': (Hk * D, C), 'self_attn.v_proj': (Hk * D, C),
          'self_attn.o_proj': (C, Hq * D), 'mlp.gate_proj': (I, C), 'mlp.up_proj': (I, C), 'mlp.down_proj': (C, I)}
r, rng, t = 16, np.random.default_rng(1), {}
for l in range(L):
    for k, (o, i) in shapes.items():
        n = 'base_model.model.model.layers.%d.%s' % (l, k)
        t[n + '.lora_A.weight'] = rng.normal(0, 0.02, (r, i)).astype(np.float32)
        t[n + '.lora_B.weight'] = rng.normal(0, 0.02, (o, r)).astype(np.float32)
hdr, off = {}, 0
for k in sorted(t):
    hdr[k] = {'dtype': 'F32', 'shape': list(t[k].shape), 'data_offsets': [off, off + t[k].nbytes]}
    off += t[k].nbytes
h = json.dumps(hdr).encode(); h += b' ' * ((8 - len(h) % 8) % 8)
os.makedirs(M + '/ad', exist_ok=True)
with open(M + '/ad/adapter_model.safetensors', 'wb') as f:
    f.write(struct.pack('<Q', len(h)) + h)
    for k in sorted(t): f.write(t[k].tobytes())
json.dump({'peft_type': 'LORA', 'r': r, 'lora_alpha': 32, 'base_model_name_or_path': '../base',
           'target_modules': ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
           'bias': 'none', 'task_type': 'CAUSAL_LM'}, open(M + '/ad/adapter_config.json', 'w'))
EOF
fi
head -c 6000 "$SHARED/data/wikitext-2-raw/wiki.test.raw" > "$M/text.txt"
best() { # best wall seconds and its peak RSS (MB) of 3 runs of "$@"
  local b=999999 rss=0
  for _ in 1 2 3; do
    /usr/bin/time -f '%e %M' -o "$M/time" "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
    read -r s k < "$M/time"
    if python3 -c "import sys; sys.exit(0 if $s < $b else 1)"; then b=$s; rss=$((k / 1024)); fi
  done
  echo "$b $rss"
}
rm -rf "$M/merged" "$M/merged-bf16"
read -r t_merge r_merge < <(best sh -c "rm -rf $M/merged; st-cat -q $M/ad -o $M/merged")
st-cat -q "$M/ad" --dtype bf16 -o "$M/merged-bf16"
read -r t_base r_base < <(best ppl -q -t 2 -m "$M/base" --ctx 512 "$M/text.txt")
read -r t_ad r_ad < <(best ppl -q -t 2 -m "$M/ad" --ctx 512 "$M/text.txt")
read -r t_m r_m < <(best ppl -q -t 2 -m "$M/merged" --ctx 512 "$M/text.txt")
read -r t_mb r_mb < <(best ppl -q -t 2 -m "$M/merged-bf16" --ctx 512 "$M/text.txt")
nll_ad=$(ppl -q -t 2 -m "$M/ad" --ctx 512 "$M/text.txt" | python3 -c "import json,sys; print(json.load(sys.stdin)['nll'])")
nll_mb=$(ppl -q -t 2 -m "$M/merged-bf16" --ctx 512 "$M/text.txt" | python3 -c "import json,sys; print(json.load(sys.stdin)['nll'])")
python3 - "$t_merge" "$r_merge" "$t_base" "$r_base" "$t_ad" "$r_ad" "$t_m" "$r_m" "$t_mb" "$r_mb" "$nll_ad" "$nll_mb" <<'EOF' | tee "$OUT/adapter.jsonl"
import json, sys
a = sys.argv[1:]
f = lambda i: float(a[i])
print(json.dumps({"bench": "adapter", "shape": "gemma-3-270m + LoRA r16 x 7 projections", "st_cat_merge_s": f(0), "st_cat_merge_rss_mb": f(1),
                  "ppl_base_s": f(2), "ppl_base_rss_mb": f(3), "ppl_adapter_s": f(4), "ppl_adapter_rss_mb": f(5),
                  "ppl_merged_f32_s": f(6), "ppl_merged_f32_rss_mb": f(7), "ppl_merged_bf16_s": f(8), "ppl_merged_bf16_rss_mb": f(9),
                  "adapter_load_overhead_s": f(4) - f(8), "nll_adapter": f(10), "nll_merged_bf16": f(11)}))
EOF
echo "adapter as -m (ppl, 1,024 tokens, gemma-3-270m + r16 adapter on all projections): best of 3"
printf '  %-26s %8s %9s\n' "model" "seconds" "peak MB"
printf '  %-26s %8s %9s\n' "base (bf16)" "$t_base" "$r_base" "adapter folder (f32 merge)" "$t_ad" "$r_ad" \
  "st-cat merged, f32" "$t_m" "$r_m" "st-cat merged --dtype bf16" "$t_mb" "$r_mb" "st-cat merge itself" "$t_merge" "$r_merge"
