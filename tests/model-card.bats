#!/usr/bin/env bats
# model-card: cards from the tools' JSON lines; every number checked against the logs.
load helpers

setup() {
  T=$(scratch)
  python3 "$ROOT/tests/model-card/fixtures.py" "$T"
  cd "$T"
}

card() { model-card --base base -m small --log score.jsonl drop.jsonl base.ppl.jsonl base.eval.jsonl \
           pruned.ppl.jsonl heal.jsonl healed.ppl.jsonl healed.results.json "$@"; }

# the markdown row of a table that starts with "| $1 |"
row() { awk -v k="| $1 |" 'index($0, k) == 1 { print; exit }' "$2"; }

@test "model-card: --help and --version" {
  run model-card --help
  assert_success
  assert_output --partial "--base"
  run model-card --version
  assert_success
  assert_output --partial "model-card (lop)"
}

@test "model-card: architecture and parameter counts come from the folders' headers" {
  card > README.md
  # independent count: sum of numel over the safetensors headers
  read pb pa < <(python3 - <<'PY'
import json, struct
def count(p):
    f = open(p, "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
    t = 0
    for k, v in h.items():
        if k == "__metadata__": continue
        m = 1
        for s in v["shape"]: m *= s
        t += m
    return t
print(count("base/model.safetensors"), count("small/model.safetensors"))
PY
)
  exp=$(python3 -c "
def th(n): return f'{n:,}'
print(f'| parameters | {th($pb)} | {th($pa)} (−{100*($pb-$pa)/$pb:.2f}%) |')")
  run row parameters README.md
  assert_output "$exp"
  run row layers README.md
  assert_output "| layers | 6 | 4 |"
  run row "attention (sliding + full)" README.md
  assert_output "| attention (sliding + full) | 5 + 1 | 3 + 1 |"
  grep -q "^base_model: base$" README.md
  grep -q "^- depth-pruning$" README.md
}

@test "model-card: perplexity retention = base ppl / ppl, per stage, as the logs say" {
  card > README.md
  for s in base pruned healed; do
    exp=$(python3 -c "
import json
b = json.loads(open('base.ppl.jsonl').readline()); x = json.loads(open('$s.ppl.jsonl').readline())
print(f\"| $s | {x['ppl']:.4f} | {x.get('ppl_stderr', x['stderr']):.4f} | {x['tokens']:,} | — | {100*b['ppl']/x['ppl']:.1f}% |\")")
    run row "$s" README.md
    # the perplexity table's row (the benchmark table has no row starting with a stage)
    assert_output "$exp"
  done
}

@test "model-card: benchmark table and retention from JSON lines and a harness results file" {
  card > README.md
  # the rule of libcommon/retention.h, rebuilt here: per row value/base (ppl: base/value), n and
  # chance beside it, "~" when |difference| < 2 standard errors; the summary over top-level tasks
  # with one metric each (acc_norm where the task has it)
  python3 - <<'PY' > expect.txt
import json, math
base = {}
for l in open("base.eval.jsonl"):
    o = json.loads(l); base[(o["task"], o["metric"])] = o
r = json.load(open("healed.results.json"))["results"]
chance = {"arc_easy": "0.25", "lambada_openai": "—"}
summ = {}
for (task, metric), b in base.items():
    h = r[task][metric + ",none"]; hs = r[task][metric + "_stderr,none"]
    ret = 100 * b["value"] / h if metric == "perplexity" else 100 * h / b["value"]
    noise = abs(h - b["value"]) < 2 * math.sqrt(hs * hs + b["stderr"] ** 2)
    if metric != "perplexity":
        if metric == "acc_norm" or task not in summ: summ[task] = ret
    print(f"| {task} | {metric} | {b['n']} | {chance[task]} | {b['value']:.4f} ± {b['stderr']:.4f} | {h:.4f} ± {hs:.4f} | {ret:.1f}%{' ~' if noise else ''} |")
print(f"{sum(summ.values())/len(summ):.1f}%")
PY
  head -n 3 expect.txt | while IFS= read -r line; do grep -qxF -- "$line" README.md || { echo "missing: $line"; false; }; done
  grep -q "Capability retention of \`healed\`: $(tail -n 1 expect.txt) (mean of value / base × 100 over 1 top-level task" README.md
  grep -q "do not tell the two models apart" README.md
}

@test "model-card: layers removed, scores ranked, training summarized" {
  card > README.md
  grep -q "Removed (indices in the base model): 1, 2\." README.md
  # rank: 1 = highest score
  run row 2 README.md
  assert_output "| 2 | 0.150000 | 6 | yes |"
  run row 0 README.md
  assert_output "| 0 | 0.900000 | 1 |  |"
  exp=$(python3 -c "
import json, math
s = [json.loads(l) for l in open('heal.jsonl')]; st = [x for x in s if 'step' in x]
tok = sum(x['tokens_per_s'] for x in st) / len(st)
print(f\"| heal | heal-sft | {len(st)} | {st[0]['loss']:.4f} → {st[-1]['loss']:.4f} | {min(x['loss'] for x in st):.4f} | {max(x['lr'] for x in st):.3g} | {tok:.0f} | {math.exp(2.0):.4f} |\")")
  run row heal README.md
  assert_output "$exp"
  grep -qxF "| schedule | cosine |" README.md
}

@test "model-card: merges and sparsity sections" {
  model-card --base base --log merge.jsonl wmask.jsonl base.ppl.jsonl > README.md
  grep -q "1 merge accepted, 1 rejected" README.md
  grep -qxF "| 3-5 | 0.9100 | yes |" README.md
  grep -qxF "| 1-5 | 0.6200 | no |" README.md   # source_layers: base numbering
  grep -qxF "| compression | 0.333 |" README.md
  ! grep -q "seconds" README.md
  grep -q "2 tensors pruned by wanda; per-tensor sparsity 50.00% to 50.00%" README.md
  grep -qxF "| model_sparsity | 0.4 |" README.md
  ! grep -q "peak_rss" README.md
  # timings differ between runs; the card does not
  SECS=9.75 python3 "$ROOT/tests/model-card/fixtures.py" "$PWD"
  model-card --base base --log merge.jsonl wmask.jsonl base.ppl.jsonl > README2.md
  cmp README.md README2.md
}

@test "model-card: deterministic, atomic -o with a JSON line" {
  card -o A.md
  run card -o B.md
  assert_success
  cmp A.md B.md
  echo "$output" | python3 -c "
import json, sys; o = json.loads(sys.stdin.readline())
assert o['output'] == 'B.md' and o['stages'] == 6 and o['dropped'] == 2, o
assert o['bytes'] == len(open('B.md', 'rb').read())"
  card > C.md
  cmp A.md C.md
  ! ls *.tmp.* 2>/dev/null
}

@test "model-card: LABEL=FILE groups logs; the base* stage is the reference" {
  model-card --base base --log ref=pruned.ppl.jsonl baseline=healed.ppl.jsonl > README.md
  run row ref README.md
  # "baseline" (15.0), not the first stage, is the reference: 100 * 15 / 31.25
  assert_output --partial "| $(python3 -c 'print(f"{100*15/31.25:.1f}")')% |"
}

@test "model-card: usage and input errors" {
  run model-card --log base.ppl.jsonl
  assert_failure 2
  assert_output --partial "model-card: --base"
  run model-card --base base
  assert_failure 2
  run model-card --base base --log nope.jsonl
  assert_failure 1
  assert_output "model-card: nope.jsonl: cannot open"
  printf '{"ppl": 3}\n{not json\n' > bad.jsonl
  run model-card --base base --log bad.jsonl
  assert_failure 1
  assert_output "model-card: bad.jsonl:2: not a JSON object"
  # a tool's human messages caught in the same file (2>log) are skipped, not an error
  printf 'layer-drop: wrote out\n{"ppl": 3}\n' > mixed.jsonl
  run model-card --base base --log mixed.jsonl
  assert_success
  run model-card --base nowhere --log base.ppl.jsonl
  assert_failure 1
  assert_output "model-card: nowhere: no such model folder or config.json"
  run model-card --base base --log base.ppl.jsonl -o /nonexistent/dir/README.md
  assert_failure 1
}

@test "model-card: sanitizers on good and bad input" {
  need_san model-card
  run "$SANBIN/model-card" --base base -m small --log score.jsonl drop.jsonl base.ppl.jsonl heal.jsonl \
      healed.results.json merge.jsonl wmask.jsonl base.eval.jsonl
  assert_success
  printf '{"ppl": 3}\n[1,2]\n' > bad.jsonl
  run "$SANBIN/model-card" --base base --log bad.jsonl
  assert_failure 1
  printf '\x00\x01' > bin.jsonl
  run "$SANBIN/model-card" --base base --log bin.jsonl
  assert_failure 1
  printf 'xxxxxxxx' > small/model.safetensors
  run "$SANBIN/model-card" --base base -m small --log base.ppl.jsonl
  assert_success   # an unreadable weights file only loses the parameter count
}

@test "model-card: the reference stage leads the tables whatever the log order" {
  model-card --base base --log pruned.ppl.jsonl healed.results.json base.eval.jsonl base.ppl.jsonl > README.md
  run awk '/^## Perplexity/{p=1} p && /^\| [a-z]/ && !/^\| stage/{print $2; n++} n==2{exit}' README.md
  assert_output "$(printf 'base\npruned')"
  grep -qF "| task | metric | n | chance | base | healed | retention (healed) |" README.md
}
