#!/usr/bin/env bats
# lm-eval: the harness's log-likelihoods on the goldens' multiple-choice items, built-in tasks,
# --limit/--shard/--merge/--compare/--task-file/--log-samples/--output, errors, sanitizers.
load helpers

EVAL() { echo "$SHARED/data/eval"; }

setup() {
  [ -x "$BIN/lm-eval" ] || skip "lm-eval not built"
}

# the golden mc items as a task file: query = context, choices = continuations (delimiter "")
golden_task() {
  python3 - "$MODELS/$1/golden.json" "$2" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1]))["mc"]["items"]
with open(sys.argv[2], "w") as f:
    for it in g:
        f.write(json.dumps({"query": it["context"], "choices": [c["continuation"] for c in it["choices"]], "gold": it["gold"]}) + "\n")
EOF
}

# every request: identical token ids, loglik within 1e-3, same is_greedy, acc, acc_norm
golden_check() {
  python3 - "$MODELS/$1/golden.json" "$2" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1]))["mc"]["items"]
s = [json.loads(l) for l in open(sys.argv[2])]
assert len(s) == len(g), (len(s), len(g))
for gi, si in zip(g, s):
    for r, ch in enumerate(gi["choices"]):
        assert si["ctx_ids"][r] == ch["ctx_ids"], ("ctx ids", ch["continuation"], si["ctx_ids"][r], ch["ctx_ids"])
        assert si["cont_ids"][r] == ch["cont_ids"], ("cont ids", ch["continuation"], si["cont_ids"][r], ch["cont_ids"])
        assert abs(si["resps"][r][0] - ch["loglik"]) < 1e-3, ("loglik", ch["continuation"], si["resps"][r][0], ch["loglik"])
        assert si["resps"][r][1] == ch["is_greedy"], "is_greedy"
    assert si["acc"] == gi["acc"] and si["acc_norm"] == gi["acc_norm"], ("acc", si["acc"], gi["acc"], si["acc_norm"], gi["acc_norm"])
print("ok", len(g))
EOF
}

@test "lm-eval --help lists every option; --version; --list-tasks" {
  run lm-eval --help
  assert_success
  for o in --model --tasks --data-dir --task-file --limit --num-fewshot --output --log-samples \
           --shard --merge --compare --add-bos --max-length --target-delimiter --threads --quiet --progress; do
    assert_output --partial -- "$o"
  done
  run lm-eval --version
  assert_success
  run lm-eval --list-tasks
  assert_success
  assert_line hellaswag
  assert_line mmlu_world_religions
  [ "$(echo "$output" | grep -c '^mmlu_')" -eq 61 ]
}

@test "lm-eval: usage errors exit 2 with one message" {
  run lm-eval --tasks hellaswag
  [ "$status" -eq 2 ]; assert_output --partial "lm-eval: "
  run lm-eval -m x
  [ "$status" -eq 2 ]
  run lm-eval -m x --tasks nosuchtask --data-dir "$(EVAL)"
  [ "$status" -eq 2 ]; assert_output --partial "nosuchtask"
  run lm-eval -m x --tasks piqa --shard 2/2
  [ "$status" -eq 2 ]; assert_output --partial "--shard"
  run lm-eval -m x --tasks piqa --limit 2.5
  [ "$status" -eq 2 ]
  run lm-eval -m x --tasks piqa --limit -1
  [ "$status" -eq 2 ]
  run lm-eval --merge -m x a.json
  [ "$status" -eq 2 ]
}

@test "lm-eval: golden mc items of all five models (token ids, loglik, is_greedy, acc, acc_norm)" {
  need_shared
  T=$(scratch)
  for m in gemma3-tiny qwen3-tiny llama-tiny llama-tiny-student stories260K; do
    golden_task $m "$T/$m.jsonl"
    run lm-eval -q -m "$MODELS/$m" --task-file "$T/$m.jsonl" --target-delimiter "" --log-samples "$T/$m.samples"
    assert_success
    run golden_check $m "$T/$m.samples"
    assert_success
  done
}

@test "lm-eval: prefix reuse off gives the goldens too; --add-bos adds BOS for a non-Gemma model" {
  need_shared
  T=$(scratch)
  golden_task gemma3-tiny "$T/g.jsonl"
  run lm-eval -q --no-reuse -m "$MODELS/gemma3-tiny" --task-file "$T/g.jsonl" --target-delimiter "" --log-samples "$T/g.samples"
  assert_success
  run golden_check gemma3-tiny "$T/g.samples"
  assert_success
  golden_task llama-tiny "$T/l.jsonl"
  run lm-eval -q --add-bos -m "$MODELS/llama-tiny" --task-file "$T/l.jsonl" --target-delimiter "" --log-samples "$T/l.samples"
  assert_success
  python3 -c "
import json
s = [json.loads(l) for l in open('$T/l.samples')]
g = json.load(open('$MODELS/llama-tiny/golden.json'))['mc']['items']
for si, gi in zip(s, g):
    for r, ch in enumerate(gi['choices']):
        assert si['ctx_ids'][r] == [1] + ch['ctx_ids'], si['ctx_ids'][r]
        assert si['cont_ids'][r] == ch['cont_ids']
"
}

@test "lm-eval: built-in tasks, JSON lines, the harness's results layout and table; metrics = formulas over log-samples" {
  need_shared
  T=$(scratch)
  run lm-eval -t 1 -m "$MODELS/stories260K" --data-dir "$(EVAL)" \
      --tasks hellaswag,piqa,arc_easy,arc_challenge,openbookqa,copa,boolq,winogrande,lambada_openai,mmlu_anatomy \
      --limit 6 -o "$T/r.json" --log-samples "$T/s.jsonl"
  assert_success
  assert_output --partial "|    Tasks     |Version|Filter|n-shot|"
  echo "$output" | grep '^{' > "$T/lines"
  python3 - "$T" <<'EOF'
import json, math, sys
T = sys.argv[1]
lines = [json.loads(l) for l in open(T + "/lines")]
r = json.load(open(T + "/r.json"))
s = [json.loads(l) for l in open(T + "/s.jsonl")]
for k in ["results", "groups", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config"]:
    assert k in r, k
for l in lines:
    assert set(l) == {"task", "metric", "value", "stderr", "n"}, l
    assert l["n"] == 6
    docs = [x for x in s if x["task"] == l["task"]]
    assert len(docs) == 6
    if l["metric"] == "perplexity":
        ll = [x["perplexity"] for x in docs]
        assert abs(l["value"] - math.exp(-sum(ll) / 6)) <= 1e-9 * l["value"], l
        continue
    v = [x[l["metric"]] for x in docs]
    mean = sum(v) / 6
    se = math.sqrt(sum((x - mean) ** 2 for x in v) / 5 / 6)
    assert abs(l["value"] - mean) < 1e-12 and abs(l["stderr"] - se) < 1e-12, l
    assert r["results"][l["task"]][l["metric"] + ",none"] == l["value"]
    assert r["results"][l["task"]][l["metric"] + "_stderr,none"] == l["stderr"]
    # acc from the log-likelihoods: argmax (first max); acc_norm divides by the choice's length
    for x in docs:
        ll = [p[0] for p in x["resps"]]
        if l["metric"] == "acc" and l["task"] != "lambada_openai":
            assert x["acc"] == (ll.index(max(ll)) == x["target"])
        if l["metric"] == "acc_norm":
            n = [p / len(a[1][1:]) for p, a in zip(ll, x["arguments"])]
            assert x["acc_norm"] == (n.index(max(n)) == x["target"])
assert {l["task"] for l in lines} == {"hellaswag", "piqa", "arc_easy", "arc_challenge", "openbookqa", "copa", "boolq", "winogrande", "lambada_openai", "mmlu_anatomy"}
assert r["n-samples"]["hellaswag"] == {"original": 10042, "effective": 6}
assert r["configs"]["mmlu_anatomy"]["num_fewshot"] == 0
p = [x for x in s if x["task"] == "piqa"][0]
assert p["arguments"][0] == ["Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:", " Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper strips, you will also need to supply it with a water bottle and a food dish."]
w = [x for x in s if x["task"] == "winogrande"][0]
assert w["arguments"][1][0].endswith("so Maria") and w["arguments"][0][1] == " always got the easier cases."
EOF
}

@test "lm-eval: --limit FRACTION takes ceil(n*f); --num-fewshot builds mmlu prompts from dev" {
  need_shared
  T=$(scratch)
  run lm-eval -q -t 1 -m "$MODELS/stories260K" --data-dir "$(EVAL)" --tasks copa --limit 0.015
  assert_success
  assert_output --partial '"n":2'
  run lm-eval -q -t 1 -m "$MODELS/stories260K" --data-dir "$(EVAL)" --tasks mmlu_virology --limit 1 \
      --num-fewshot 2 --log-samples "$T/s" --max-length 4096
  assert_success
  python3 - "$T/s" "$(EVAL)" <<'EOF'
import csv, json, sys
s = json.loads(open(sys.argv[1]).readline())
dev = list(csv.reader(open(sys.argv[2] + "/mmlu/dev/virology_dev.csv")))[1:]
test = list(csv.reader(open(sys.argv[2] + "/mmlu/test/virology_test.csv")))[1:]
fmt = lambda r: r[0].strip() + "".join("\n%s. %s" % (l, c) for l, c in zip("ABCD", r[1:5])) + "\nAnswer:"
want = "The following are multiple choice questions (with answers) about virology.\n\n" + \
       "".join(fmt(r) + " " + "ABCD"[int(r[5])] + "\n\n" for r in dev[:2]) + fmt(test[0])
assert s["arguments"][0][0] == want, s["arguments"][0][0]
assert [a[1] for a in s["arguments"]] == [" A", " B", " C", " D"]
EOF
}

@test "lm-eval: --shard I/N results merged with --merge equal the unsharded run" {
  need_shared
  T=$(scratch)
  # --batch-tokens 1: every document alone in its forward, so its numbers cannot depend on which
  # documents a shard puts next to it; then the merge must reproduce the unsharded run exactly
  args=(-q -t 1 -m "$MODELS/stories260K" --data-dir "$(EVAL)" --tasks mmlu,hellaswag,lambada_openai --limit 3)
  run lm-eval "${args[@]}" --batch-tokens 1 -o "$T/all.json"
  assert_success
  run lm-eval "${args[@]}" -o "$T/batched.json"
  assert_success
  for i in 0 1 2; do
    run lm-eval "${args[@]}" --batch-tokens 1 --shard $i/3 -o "$T/s$i.json"
    assert_success
  done
  run lm-eval -q --merge "$T/s0.json" "$T/s1.json" "$T/s2.json" -o "$T/merged.json"
  assert_success
  python3 - "$T" <<'EOF'
import json, sys
T = sys.argv[1]
a = json.load(open(T + "/all.json")); m = json.load(open(T + "/merged.json"))
b = json.load(open(T + "/batched.json"))
s0 = json.load(open(T + "/s0.json"))
assert s0["n-samples"]["hellaswag"]["effective"] == 1 and s0["config"]["shard"] == "0/3"
for k in ["results", "groups", "group_subtasks", "n-samples", "versions", "n-shot"]:
    assert a[k] == m[k], k
assert "mmlu" in a["groups"] and "mmlu_stem" in a["groups"] and a["n-samples"]["mmlu_anatomy"]["effective"] == 3
# batching documents together moves only the last float digits
for t, x in a["lop_samples"].items():
    if t.startswith("__"): continue
    y = b["lop_samples"][t]
    assert x["acc"] == y["acc"] and x["acc_norm"] == y["acc_norm"], t
    assert all(abs(p - q) < 1e-3 for p, q in zip(x["ll"], y["ll"])), t
EOF
  # the same document twice is refused
  run lm-eval -q --merge "$T/s0.json" "$T/s0.json"
  [ "$status" -eq 1 ]; assert_output --partial "two files"
}

@test "lm-eval: mmlu group = size-weighted mean of its categories, pooled stderr (harness formula)" {
  need_shared
  T=$(scratch)
  run lm-eval -q -t 1 -m "$MODELS/stories260K" --data-dir "$(EVAL)" --tasks mmlu --limit 2 -o "$T/r.json"
  assert_success
  python3 - "$T/r.json" <<'EOF'
import json, math, sys
r = json.load(open(sys.argv[1]))
def pooled(items):
    N = sum(n for _, _, n in items)
    mean = sum(m * n for m, _, n in items) / N
    var = sum((n - 1) * se ** 2 * n for _, se, n in items) / (N - len(items))
    return mean, math.sqrt(var / N), N
cats = {}
for c, subs in r["group_subtasks"].items():
    if c == "mmlu": continue
    items = [(r["results"][t]["acc,none"], r["results"][t]["acc_stderr,none"], r["n-samples"][t]["effective"]) for t in subs]
    cats[c] = pooled(items)
    assert abs(cats[c][0] - r["groups"][c]["acc,none"]) < 1e-12 and abs(cats[c][1] - r["groups"][c]["acc_stderr,none"]) < 1e-12
mean, se, N = pooled(list(cats.values()))
assert N == 114 and abs(mean - r["groups"]["mmlu"]["acc,none"]) < 1e-12 and abs(se - r["groups"]["mmlu"]["acc_stderr,none"]) < 1e-12
EOF
}

@test "lm-eval: --compare prints retention against a base results file" {
  need_shared
  T=$(scratch)
  run lm-eval -q -t 1 -m "$MODELS/stories260K" --data-dir "$(EVAL)" --tasks copa,piqa,lambada_openai --limit 4 -o "$T/r.json"
  assert_success
  python3 - "$T" <<'EOF'
import json, sys
T = sys.argv[1]
r = json.load(open(T + "/r.json"))
base = {"results": {t: {k: (v * 2 if k.startswith("perplexity,") else v / 2 if isinstance(v, float) and v > 0 else 0.5)
                        for k, v in x.items() if k != "alias"} for t, x in r["results"].items()}}
json.dump(base, open(T + "/base.json", "w"))
EOF
  run lm-eval -q --merge "$T/r.json" --compare "$T/base.json"
  assert_success
  python3 - "$T" "$output" <<'EOF'
import json, sys
T = sys.argv[1]
r = json.load(open(T + "/r.json"))["results"]
b = json.load(open(T + "/base.json"))["results"]
lines = [json.loads(l) for l in sys.argv[2].splitlines() if l.startswith("{")]
cmp_ = [l for l in lines if "retention" in l and "task" in l]
caps = []
for l in cmp_:
    v, bv = r[l["task"]][l["metric"] + ",none"], b[l["task"]][l["metric"] + ",none"]
    want = bv / v * 100 if l["metric"] == "perplexity" else v / bv * 100
    assert abs(l["retention"] - want) < 1e-9, l
    if l["metric"] == ("acc_norm" if l["task"] == "piqa" else "acc"): caps.append(want)
cap = [l for l in lines if l.get("compare") == "capability"][0]
ppl = [l for l in lines if l.get("compare") == "perplexity"][0]
assert cap["tasks"] == 3 and abs(cap["retention"] - sum(caps) / 3) < 1e-9, cap
assert abs(ppl["retention"] - 200.0) < 1e-9, ppl
EOF
}

@test "lm-eval: --task-file in the three shapes (the shared llm-foundry files)" {
  need_shared
  run lm-eval -q -t 1 -m "$MODELS/stories260K" --task-file "$(EVAL)/siqa.jsonl" \
      --task-file "$(EVAL)/winogrande.jsonl" --task-file "$(EVAL)/lambada_openai.jsonl" --limit 3
  assert_success
  assert_line --partial '{"task":"siqa","metric":"acc_norm"'
  assert_line --partial '{"task":"winogrande","metric":"acc"'
  assert_line --partial '{"task":"lambada_openai","metric":"perplexity"'
}

@test "lm-eval: progress bar with items/s on --progress" {
  need_shared
  run lm-eval -t 1 --progress -m "$MODELS/stories260K" --data-dir "$(EVAL)" --tasks copa --limit 3
  assert_success
  assert_output --partial "items/s"
}

@test "lm-eval: bad inputs fail with exit 1 and a message naming the file; nothing half-written" {
  need_shared
  T=$(scratch)
  run lm-eval -m "$MODELS/stories260K" --data-dir "$T/none" --tasks piqa
  [ "$status" -eq 1 ]; assert_output --partial "$T/none: no eval data folder"
  mkdir "$T/none"
  run lm-eval -m "$MODELS/stories260K" --data-dir "$T/none" --tasks piqa
  [ "$status" -eq 1 ]; assert_output --partial "$T/none/piqa-official"
  : > "$T/empty.jsonl"
  run lm-eval -m "$MODELS/stories260K" --task-file "$T/empty.jsonl"
  [ "$status" -eq 1 ]; assert_output --partial "empty.jsonl"
  echo '{"query": "q", "choices": ["a"], "gold": 3}' > "$T/bad.jsonl"
  run lm-eval -m "$MODELS/stories260K" --task-file "$T/bad.jsonl"
  [ "$status" -eq 1 ]; assert_output --partial "bad.jsonl:1"
  run lm-eval -m "$T/nomodel" --tasks copa --data-dir "$(EVAL)"
  [ "$status" -eq 1 ]
  echo '{"query": "q", "choices": ["a", "b"], "gold": 0}' > "$T/ok.jsonl"
  run lm-eval -q -m "$MODELS/stories260K" --task-file "$T/ok.jsonl" -o "$T/nodir/r.json"
  [ "$status" -eq 1 ]
  [ ! -e "$T/nodir" ]
  run lm-eval -q -m "$MODELS/stories260K" --task-file "$T/ok.jsonl" --max-length 2 --target-delimiter " xx yy zz"
  [ "$status" -eq 1 ]; assert_output --partial "context"
  echo '{"results": 1}' > "$T/notres.json"
  run lm-eval -q --merge "$T/notres.json" "$T/notres.json"
  [ "$status" -eq 1 ]; assert_output --partial "lop_samples"
  [ -z "$(ls "$T" | grep '\.tmp\.')" ]
}

@test "lm-eval under ASan+UBSan: goldens and bad inputs" {
  need_shared
  need_san lm-eval
  T=$(scratch)
  golden_task qwen3-tiny "$T/q.jsonl"
  run "$SANBIN/lm-eval" -q -m "$MODELS/qwen3-tiny" --task-file "$T/q.jsonl" --target-delimiter "" --log-samples "$T/q.samples"
  assert_success
  run golden_check qwen3-tiny "$T/q.samples"
  assert_success
  run "$SANBIN/lm-eval" -q -t 1 -m "$MODELS/stories260K" --data-dir "$(EVAL)" --tasks mmlu_anatomy,winogrande,lambada_openai,hellaswag --limit 2 -o "$T/r.json"
  assert_success
  run "$SANBIN/lm-eval" -q --merge "$T/r.json" --compare "$T/r.json"
  assert_success
  printf '{"query": "q", "choices": ["a"], "gold": 0}\n{"context": "x"}\n' > "$T/bad.jsonl"
  run "$SANBIN/lm-eval" -m "$MODELS/stories260K" --task-file "$T/bad.jsonl"
  [ "$status" -eq 1 ]
  printf '\x28\xb5\x2f\xfd\x00garbage' > "$T/z.jsonl.zst"
  run "$SANBIN/lm-eval" -m "$MODELS/stories260K" --task-file "$T/z.jsonl.zst"
  [ "$status" -eq 1 ]; assert_output --partial "zstd"
}

@test "lm-eval --gemm bf16: each choice's log-likelihood within 1% (+0.5) of f32 (skips without avx512_bf16)" {
  need_shared
  grep -qw avx512_bf16 /proc/cpuinfo || skip "this CPU has no avx512_bf16 (--gemm bf16 falls back to f32)"
  run lm-eval -m x --tasks piqa --gemm fp8
  [ "$status" -eq 2 ]
  T=$(scratch)
  for g in f32 bf16; do
    run lm-eval -q -m "$MODELS/stories260K" --data-dir "$(EVAL)" --tasks piqa --limit 20 --gemm $g --log-samples "$T/$g.jsonl"
    assert_success
  done
  python3 - "$T/f32.jsonl" "$T/bf16.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 20
d = [abs(x[0] - y[0]) - (0.01 * abs(x[0]) + 0.5) for da, db in zip(a, b) for x, y in zip(da["resps"], db["resps"])]
assert max(d) < 0, max(d)
assert any(x[0] != y[0] for da, db in zip(a, b) for x, y in zip(da["resps"], db["resps"])), "bf16 == f32: not run"
PY
}
