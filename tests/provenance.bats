#!/usr/bin/env bats
# Provenance (CLI.md): every tool's first JSON line names the tool, version, argv, resolved options
# and fingerprints of its inputs; lop's readers skip it; model-card renders it. The JSON-lines
# rule: stdout, or --log FILE, or stderr when stdout carries tensors.
load helpers

setup() {
  export LOP_PROVENANCE=1
}

first() { head -n 1 "$1"; }
# check FILE TOOL [ROLE...]: the first line is TOOL's provenance, argv as run, each ROLE fingerprinted
check() {
  python3 - "$@" <<'EOF'
import json, sys
path, tool, roles = sys.argv[1], sys.argv[2], sys.argv[3:]
o = json.loads(open(path).readline())
p = o["provenance"]
assert p["tool"] == tool and p["version"] and p["argv"][0].endswith(tool), p
assert p["time"].endswith("Z") and isinstance(p["options"], dict) and p["cwd"], p
got = {i["role"]: i for i in p["inputs"]}
for r in roles:
    assert r in got, (r, list(got))
    i = got[r]
    assert i["bytes"] > 0 and len(i["hash"]) == 16 and i["hashed"] in ("whole", "head+tail", "config+headers", "header"), i
print("ok")
EOF
}

@test "provenance: the first JSON line of every tool (ppl, lm-tok, st-cat, layer-score, lm-gen, lm-eval, layer-drop, wmask, layer-merge, heal-sft)" {
  need_shared
  T=$(scratch)
  M="$MODELS/stories260K"
  head -8 "$SHARED/data/stories/test.txt" > "$T/t.txt"
  printf '{"query":"Once upon a","choices":[" time"," cat"],"gold":0}\n' > "$T/task.jsonl"
  ppl -q -m "$M" --lines "$T/t.txt" > "$T/ppl"; check "$T/ppl" ppl model text
  python3 -c "
import json; p = json.loads(open('$T/ppl').readline())['provenance']
assert p['options']['ctx'] == 512 and p['options']['mode'] == 'lines' and p['options']['text'] == '$T/t.txt', p
assert json.loads(open('$T/ppl').readlines()[1])['ppl'] > 1"
  lm-tok -m "$M" "$T/t.txt" > "$T/tok"; check "$T/tok" lm-tok tokenizer text
  st-cat -l "$M" > "$T/stcat"; check "$T/stcat" st-cat
  layer-score -q -m "$M" --data "$T/t.txt" > "$T/score"; check "$T/score" layer-score model data
  lm-gen -q -m "$M" -n 4 -p "Once" --jsonl > "$T/gen"; check "$T/gen" lm-gen model
  lm-eval -q -m "$M" --task-file "$T/task.jsonl" > "$T/eval"; check "$T/eval" lm-eval model
  layer-drop -q -m "$M" --drop 2 -o "$T/d" > "$T/drop"; check "$T/drop" layer-drop model
  wmask -q -m "$M" --sparsity 0.5 -o "$T/w" > "$T/wmask"; check "$T/wmask" wmask model
  layer-merge -q -m "$M" --merge 3-4 -o "$T/lm" > "$T/merge"; check "$T/merge" layer-merge model
  python3 "$BATS_TEST_DIRNAME/data/heal_prep.py" tokenize "$M/tokenizer.json" "$SHARED/data/stories/test.txt" > "$T/d.jsonl"
  heal-sft -q -t 1 -m "$M" --data "$T/d.jsonl" --steps 2 --batch 2 --lr 1e-3 --schedule cosine --warmup 1 -o "$T/h" > "$T/heal"
  check "$T/heal" heal-sft model data
  python3 -c "
import json; o = json.loads(open('$T/heal').readline())['provenance']['options']
for k, v in (('batch', 2), ('steps', 2), ('lr', 1e-3), ('schedule', 'cosine'), ('warmup', 1), ('seq_len', 512), ('grad_accum', 1)):
    assert o[k] == v, (k, o.get(k), o)
assert o['data'].endswith('d.jsonl') and o['data_sequences'] > 0, o"
}

@test "provenance: fingerprints are stable and follow the data; LOP_PROVENANCE=0 leaves the line out" {
  need_shared
  T=$(scratch)
  head -8 "$SHARED/data/stories/test.txt" > "$T/t.txt"
  h() { ppl -q -m "$MODELS/stories260K" --lines "$T/t.txt" | python3 -c "
import json, sys; p = json.loads(sys.stdin.readline())['provenance']
print(' '.join(i['hash'] for i in p['inputs']))"; }
  a=$(h); b=$(h)
  [ "$a" = "$b" ]
  echo "one more line" >> "$T/t.txt"
  c=$(h)
  [ "${a%% *}" = "${c%% *}" ]     # the model's fingerprint is unchanged
  [ "${a#* }" != "${c#* }" ]      # the text's is not
  run env LOP_PROVENANCE=0 ppl -q -m "$MODELS/stories260K" --lines "$T/t.txt"
  [ "${#lines[@]}" -eq 1 ]
  [[ "${lines[0]}" == '{"ppl":'* ]]
}

@test "provenance: lop's readers skip it (lm-tok | lm-tok --decode, layer-score | layer-drop --scores, lm-tok output as training data)" {
  need_shared
  T=$(scratch)
  M="$MODELS/stories260K"
  run bash -c "echo 'Once upon a time' | lm-tok -m '$M' --no-special | lm-tok -m '$M' --decode | tail -n 1"
  assert_success
  assert_output '{"text":"Once upon a time\n"}'
  head -8 "$SHARED/data/stories/test.txt" > "$T/t.txt"
  layer-score -q -m "$M" --data "$T/t.txt" > "$T/s.jsonl"
  run layer-drop -q -m "$M" --scores "$T/s.jsonl" --n 1 -o "$T/d"
  assert_success
  lm-tok -m "$M" --jsonl <(head -40 "$SHARED/data/stories/train.txt" | python3 -c "
import json, sys
for l in sys.stdin: print(json.dumps({'text': l.rstrip()}))") --ids-only > "$T/ids.jsonl"
  head -c 20 "$T/ids.jsonl" | grep -q provenance
  run heal-sft -q -t 1 -m "$M" --data "$T/ids.jsonl" --steps 1 --batch 2 -o "$T/h"
  assert_success
}

@test "JSON lines: --log FILE takes them when -o - carries tensors; stderr stays human; model-card reads the logs" {
  need_shared
  T=$(scratch)
  M="$MODELS/stories260K"
  layer-drop -m "$M" --drop 2 -o - --log "$T/drop.jsonl" 2> "$T/drop.err" | wmask -m - --sparsity 0.5 -o "$T/w" --log "$T/wmask.jsonl" 2> "$T/wmask.err"
  python3 - "$T" <<'EOF'
import json, sys
T = sys.argv[1]
for f, tool in (("drop.jsonl", "layer-drop"), ("wmask.jsonl", "wmask")):
    ls = [json.loads(l) for l in open(T + "/" + f)]
    assert ls[0]["provenance"]["tool"] == tool and len(ls) > 1, (f, ls[:2])
for f in ("drop.err", "wmask.err"):
    for l in open(T + "/" + f):
        assert not l.startswith("{"), (f, l)
EOF
  # without --log: the JSON lines ride on stderr next to the messages; model-card skips the messages
  layer-drop -m "$M" --drop 2 -o - 2> "$T/mixed.log" > /dev/null
  grep -q '^{"provenance"' "$T/mixed.log"
  run model-card --base "$M" --log "$T/drop.jsonl" --log "$T/mixed.log" --log "$T/wmask.jsonl"
  assert_success
}

@test "model-card renders the provenance: the recipe as run, the text a perplexity was measured on, the base's id and license" {
  need_shared
  T=$(scratch)
  M="$MODELS/stories260K"
  mkdir -p "$T/hub/models--lop-test--stories/snapshots/r1" "$T/hub/models--lop-test--stories/refs"
  cp "$M"/* "$T/hub/models--lop-test--stories/snapshots/r1/"
  printf -- '---\nlicense: mit\nlanguage: en\n---\n# stories\n' > "$T/hub/models--lop-test--stories/snapshots/r1/README.md"
  B="$T/hub/models--lop-test--stories/snapshots/r1"
  head -8 "$SHARED/data/stories/test.txt" > "$T/held-out.txt"
  python3 "$BATS_TEST_DIRNAME/data/heal_prep.py" tokenize "$M/tokenizer.json" "$SHARED/data/stories/test.txt" > "$T/d.jsonl"
  ppl -q -m "$B" --lines "$T/held-out.txt" > "$T/base.ppl.jsonl"
  layer-drop -q -m "$B" --drop 2 -o "$T/small" > "$T/drop.jsonl"
  heal-sft -q -t 1 -m "$T/small" --data "$T/d.jsonl" --steps 2 --batch 2 --lr 3e-4 --warmup 1 -o "$T/healed" > "$T/heal.jsonl"
  ppl -q -m "$T/healed" --lines "$T/held-out.txt" > "$T/healed.ppl.jsonl"
  model-card --base "$B" -m "$T/healed" --log "$T/base.ppl.jsonl" "$T/drop.jsonl" "$T/heal.jsonl" "$T/healed.ppl.jsonl" > "$T/README.md"
  grep -qx "base_model: lop-test/stories" "$T/README.md"
  grep -qx "license: mit" "$T/README.md"
  grep -q "^## Provenance" "$T/README.md"
  grep -q "^heal-sft -q -t 1 -m .* --steps 2 --batch 2 --lr 3e-4 --warmup 1 -o " "$T/README.md"
  grep -qx "| lr | 0.0003 |" "$T/README.md"
  grep -qx "| warmup | 1 |" "$T/README.md"
  grep -qx "| seq_len | 512 |" "$T/README.md"
  grep -q "| data | \`d.jsonl\` | " "$T/README.md"
  grep -q "| base | .* | \`held-out.txt\` | 100.0% |" "$T/README.md"
}
