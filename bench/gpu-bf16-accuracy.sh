#!/usr/bin/env bash
# --gemm bf16 on the GPU against --gemm f32 on the GPU (itself within 1e-5 of the cpu and the
# goldens): per-token |dNLL| (max, mean) of every fixture family on the prose test text, and
# lm-eval accuracies of stories260K (hellaswag, arc_easy) in both precisions. Run on a GPU machine
# after a CUDA build; JSON lines.
set -u
cd "$(dirname "$0")/.."
SHARED=${LOP_SHARED:-$PWD/../shared}
T=$(mktemp -d)
for m in stories260K llama-tiny qwen3-tiny gemma3-tiny; do
  for g in f32 bf16; do
    bin/ppl -q -m "$SHARED/models/$m" --per-token --ctx 256 --max-tokens 8000 --device cuda --gemm $g \
      "$SHARED/data/prose/test.txt" > "$T/$g"
  done
  python3 - "$m" "$T/f32" "$T/bf16" <<'PY'
import json, sys
rows = lambda p: [json.loads(l) for l in open(p) if l.startswith('{"pos"')]
a, b = rows(sys.argv[2]), rows(sys.argv[3])
d = [abs(x["nll"] - y["nll"]) for x, y in zip(a, b)]
print(json.dumps({"bench": "gpu_bf16_dnll", "model": sys.argv[1], "tokens": len(d),
                  "max": round(max(d), 4), "mean": round(sum(d) / len(d), 5)}))
PY
done
for g in f32 bf16; do
  bin/lm-eval -q -m "$SHARED/models/stories260K" --data-dir "$SHARED/data/eval" --tasks hellaswag,arc_easy \
    --limit 500 --device cuda --gemm $g > "$T/lm-$g"
done
python3 - "$T/lm-f32" "$T/lm-bf16" <<'PY'
import json, sys
def acc(p):
    return {(r["task"], r["metric"]): (r["value"], r["n"]) for r in map(json.loads, filter(lambda l: l.startswith('{"task"'), open(p)))}
a, b = acc(sys.argv[1]), acc(sys.argv[2])
for k in a:
    n = a[k][1]
    print(json.dumps({"bench": "gpu_bf16_lm_eval", "model": "stories260K", "task": k[0], "metric": k[1], "n": n,
                      "f32": a[k][0], "bf16": b[k][0], "items_differ": round(abs(a[k][0] - b[k][0]) * n)}))
PY
rm -rf "$T"
