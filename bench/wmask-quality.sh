#!/usr/bin/env bash
# wmask quality grid: perplexity after pruning with magnitude / wanda / sparsegpt at 50%, 70% and
# 2:4, each uniform and with --owl (and the dense model). Not a timed benchmark: the table in
# wmask(1) and docs/wmask.md comes from it.
#   bash bench/wmask-quality.sh MODEL TRAIN TEST [ppl options, e.g. --lines]
# env: SAMPLES (calibration sequences, 128), CTX (tokens each, 512), OUT (bench/out/quality),
#      BIN (./bin), OWL_LAMBDA (0.08), METHODS ("magnitude wanda sparsegpt"), SPARSITIES
#      ("0.5 0.7 2:4").
# Prints one JSON line per run, then a markdown table.
set -eu
cd "$(dirname "$0")/.."
M=$1 TRAIN=$2 TEST=$3
shift 3
BIN=${BIN:-$PWD/bin}
OUT=${OUT:-$PWD/bench/out/quality}
SAMPLES=${SAMPLES:-128} CTX=${CTX:-512} LAM=${OWL_LAMBDA:-0.08}
mkdir -p "$OUT"
name=$(basename "$M")
res=$OUT/$name.jsonl
: > "$res"
ppl_of_m() { local m=$1; shift; "$BIN/ppl" -q -m "$m" "$@" "$TEST" | python3 -c 'import json,sys;print(json.load(sys.stdin)["ppl"])'; }
dense=${DENSE_PPL:-$(ppl_of_m "$M" "$@")}   # DENSE_PPL: known already (a split grid)
echo "{\"model\":\"$name\",\"method\":\"dense\",\"ppl\":$dense}" | tee -a "$res"
for method in ${METHODS:-magnitude wanda sparsegpt}; do
  for sp in ${SPARSITIES:-0.5 0.7 2:4}; do
    for owl in "" "--owl"; do
      if [ "$sp" = 2:4 ]; then sel="--nm 2:4"; else sel="--sparsity $sp"; fi
      cal=""
      if [ "$method" != magnitude ] || [ -n "$owl" ]; then
        cal="--data $TRAIN --samples $SAMPLES --ctx $CTX"
      fi
      o=$OUT/$name-$method-${sp/:/-}${owl:+-owl}.safetensors
      t0=$(date +%s.%N)
      # shellcheck disable=SC2086
      "$BIN/wmask" -q -m "$M" -o "$o" --method "$method" $sel $cal $owl ${owl:+--owl-lambda $LAM} \
          > "$o.jsonl"
      t1=$(date +%s.%N)
      p=$(ppl_of_m "$o" "$@")
      s=$(tail -1 "$o.jsonl" | python3 -c 'import json,sys;s=json.load(sys.stdin);print(s["sparsity"],s["peak_rss_mb"])')
      echo "{\"model\":\"$name\",\"method\":\"$method\",\"sparsity\":\"$sp\",\"owl\":$([ -n "$owl" ] && echo true || echo false),\"ppl\":$p,\"achieved\":${s% *},\"wmask_seconds\":$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}"),\"peak_rss_mb\":${s#* }}" | tee -a "$res"
      rm -f "$o"
    done
  done
done
python3 - "$res" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
d = rows[0]
print("\n%s (dense %.3f)\n" % (d["model"], d["ppl"]))
print("| method | 50% | 50% OWL | 70% | 70% OWL | 2:4 | 2:4 OWL |")
print("|---|---|---|---|---|---|---|")
for m in ("magnitude", "wanda", "sparsegpt"):
    c = {(r["sparsity"], r["owl"]): r["ppl"] for r in rows[1:] if r["method"] == m}
    if c:
        print("| %s | %s |" % (m, " | ".join("%.2f" % c[(s, o)] if (s, o) in c else "-"
                                             for s in ("0.5", "0.7", "2:4") for o in (False, True))))
EOF
