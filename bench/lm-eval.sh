#!/usr/bin/env bash
# lm-eval benchmark on the gemma-3-270m shape (random bf16 weights of the real config,
# bench/gen-model.py), 2 threads, two suites: hellaswag (first 500 documents) and MMLU 0-shot on
# three subjects (abstract_algebra, global_facts, us_foreign_policy: one STEM, one other, one
# social-sciences; 300 questions). Figures per suite: items/s of lm-eval and the share of its
# scoring time in the forward (lm-eval --timing), its peak RSS, and the very same requests (the
# ctx/cont token ids of lm-eval --log-samples) scored one by one through a plain float32 PyTorch
# eager forward (bench/lm_eval_torch.py on bench/torch_ref.py): items/s, the speed ratio, and the
# largest log-likelihood difference between the two.
# Env: LOP_BENCH_OUT, LOP_SHARED, LOP_BENCH_HELLASWAG (documents, default 500),
#      LOP_BENCH_MMLU_LIMIT (questions per subject, default all), LOP_BENCH_TORCH_ITEMS (PyTorch
#      scores the first N documents of each task, default 10: it is ~15x slower; 0 = all).
set -u
cd "$(dirname "$0")/.."
OUT=${LOP_BENCH_OUT:-$PWD/bench/out}
SHARED=${LOP_SHARED:-$PWD/../shared}
NH=${LOP_BENCH_HELLASWAG:-500}
NM=${LOP_BENCH_MMLU_LIMIT:-}
NT=${LOP_BENCH_TORCH_ITEMS:-10}
THREADS=2
PY=/usr/bin/python3
DATA=$SHARED/data/eval
MMLU=mmlu_abstract_algebra,mmlu_global_facts,mmlu_us_foreign_policy
if [ ! -d "$DATA/hellaswag" ] || [ ! -d "$DATA/mmlu" ] || [ ! -d "$SHARED/models/gemma3-tiny" ]; then
  echo "lm-eval.sh: skipped: $SHARED (eval data, gemma3 tokenizer) not found" >&2; exit 0
fi
[ -x bin/lm-eval ] || { echo "lm-eval.sh: build first (make all)" >&2; exit 1; }
have_torch=1
$PY -c "import torch" 2>/dev/null || { have_torch=0; echo "lm-eval.sh: python3-torch absent: no PyTorch comparison" >&2; }
M=$OUT/models/gemma-3-270m
mkdir -p "$OUT/models"
[ -f "$M/model.safetensors" ] || LOP_SHARED=$SHARED $PY bench/gen-model.py gemma-3-270m "$M" > /dev/null || exit 1

status=0
run_suite() { # name tasks limit
  local name=$1 tasks=$2 limit=$3 lop ref='' lim=()
  [ -n "$limit" ] && lim=(--limit "$limit")
  lop=$(bin/lm-eval -q -t $THREADS -m "$M" --tasks "$tasks" "${lim[@]}" --data-dir "$DATA" --timing \
        --log-samples "$OUT/lm-eval-$name.samples.jsonl" | grep '"timing"') || { status=1; return; }
  if [ $have_torch = 1 ]; then
    ref=$($PY bench/lm_eval_torch.py "$M" "$OUT/lm-eval-$name.samples.jsonl" --items "$NT" \
          --threads $THREADS 2> "$OUT/lm-eval-$name.torch.err") \
      || echo "lm-eval.sh: PyTorch reference failed: $(tail -1 "$OUT/lm-eval-$name.torch.err")" >&2
  fi
  $PY - "$name" "$tasks" "$NT" "$lop" "$ref" <<'PY'
import json, sys
name, tasks, nt, lop, ref = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])["timing"], sys.argv[5]
refs = [json.loads(l) for l in ref.splitlines() if l.strip()]
r = {"bench": "lm-eval", "model": "gemma-3-270m (random bf16)", "suite": name, "tasks": tasks,
     "threads": 2, "items": lop["items"], "seconds": round(lop["seconds"], 2),
     "items_per_s": round(lop["items_per_s"], 3), "forward_share": round(lop["forward_share"], 3),
     "rows": lop["rows"], "rows_without_reuse": lop["rows_without_reuse"],
     "peak_rss_mb": round(lop["peak_rss_bytes"] / 2**20)}
if refs:
    items, secs = sum(x["items"] for x in refs), sum(x["seconds"] for x in refs)
    r.update({"torch_items": items, "torch_items_per_s": round(items / secs, 4),
              "speedup_vs_torch": round(lop["items_per_s"] / (items / secs), 1),
              "torch_max_ll_diff": max(x["max_ll_diff"] for x in refs),
              "torch_acc_agree": round(sum(x["acc_agree"] * x["items"] for x in refs) / items, 3),
              "torch_peak_rss_mb": max(x["peak_rss_mb"] for x in refs)})
print(json.dumps(r))
t = (f"PyTorch eager one by one {r['torch_items_per_s']} items/s on the first {nt or 'all'} of each task "
     f"(lm-eval x{r['speedup_vs_torch']}, log-likelihoods within {r['torch_max_ll_diff']:.1e})") if refs else "no PyTorch comparison"
print(f"  {name}: {r['items']} items, {r['items_per_s']} items/s, {100 * r['forward_share']:.0f}% in the forward, "
      f"{r['rows']:.0f} rows run of {r['rows_without_reuse']:.0f} without prefix reuse, peak RSS {r['peak_rss_mb']} MB; {t}",
      file=sys.stderr)
PY
}
run_suite hellaswag hellaswag "$NH"
run_suite mmlu3 "$MMLU" "$NM"
exit $status
