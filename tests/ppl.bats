#!/usr/bin/env bats
# ppl: perplexity against transformers' goldens (../shared), window rules, save/compare runs.
load helpers

# golden text `t` of model `m` into a file (exact bytes, no added newline)
golden_text() { # m t out
  python3 -c "import json,sys; sys.stdout.write(json.load(open('$MODELS/$1/golden.json'))['texts']['$2']['text'])" > "$3"
}

@test "ppl --help, --version, usage errors" {
  run ppl --help
  assert_success
  assert_output --partial "--llama-cpp"
  assert_output --partial "--kl-base"
  run ppl --version
  assert_success
  run ppl
  assert_failure 2
  run ppl -m x --bogus
  assert_failure 2
  run ppl -m x --ctx 0 f
  assert_failure 2
  run ppl -m x --lines --llama-cpp f
  assert_failure 2
}

@test "ppl: missing model, missing file, empty text are runtime errors" {
  need_shared
  d=$(scratch)
  run ppl -m "$d/nope" "$d/nope.txt"
  assert_failure 1
  assert_output --partial "ppl: "
  run ppl -m "$MODELS/qwen3-tiny" "$d/nope.txt"
  assert_failure 1
  : > "$d/empty.txt"
  run ppl -m "$MODELS/qwen3-tiny" "$d/empty.txt"
  assert_failure 1
  assert_output --partial "no token to score"
}

@test "ppl --per-token equals transformers' per-token NLL (all five models, text en)" {
  need_shared
  d=$(scratch)
  for m in gemma3-tiny qwen3-tiny llama-tiny llama-tiny-student stories260K; do
    golden_text $m en "$d/$m.txt"
    ppl -q -m "$MODELS/$m" --per-token "$d/$m.txt" > "$d/$m.jsonl"
    python3 - "$MODELS/$m/golden.json" "$d/$m.jsonl" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))["texts"]["en"]
lines = [json.loads(l) for l in open(sys.argv[2])]
tok, summ = lines[:-1], lines[-1]
assert len(tok) == len(g["nll"]) == summ["tokens"], (len(tok), len(g["nll"]))
err = max(abs(t["nll"] - n) for t, n in zip(tok, g["nll"]))
assert err < 1e-3, err
assert [t["id"] for t in tok] == g["ids"][1:]
assert [t["pos"] for t in tok] == list(range(1, len(g["ids"])))
assert abs(summ["ppl"] - g["ppl"]) < 1e-3 * g["ppl"], (summ["ppl"], g["ppl"])
PY
  done
}

@test "ppl --lines: stories260K corpus perplexity is 3.8638 (transformers)" {
  need_shared
  run ppl -q -m "$MODELS/stories260K" --lines "$SHARED/data/stories/stories-sampled.txt"
  assert_success
  python3 -c "
import json; o = json.loads('''$output'''); g = json.load(open('$MODELS/stories260K/golden.json'))['corpus_per_line']
assert o['tokens'] == g['tokens'], (o['tokens'], g['tokens'])
assert abs(o['ppl'] - g['ppl']) < 1e-4, (o['ppl'], g['ppl'])
assert o['lines'] == g['lines']"
}

@test "ppl windows: --ctx/--stride score every token once; the first window equals the golden prefix" {
  need_shared
  d=$(scratch)
  golden_text llama-tiny ru "$d/t.txt"
  ppl -q -m "$MODELS/llama-tiny" --ctx 12 --stride 5 --per-token "$d/t.txt" > "$d/o.jsonl"
  python3 - "$MODELS/llama-tiny/golden.json" "$d/o.jsonl" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))["texts"]["ru"]
lines = [json.loads(l) for l in open(sys.argv[2])]
tok = lines[:-1]
n = len(g["ids"])
assert [t["pos"] for t in tok] == list(range(1, n)), "each token scored once, in order"
for t in tok:
    if t["pos"] < 12:  # the first window sees the same prefix as the whole-text forward
        assert abs(t["nll"] - g["nll"][t["pos"] - 1]) < 1e-3
# later tokens see at most 12 tokens of context: their nll differs from the full-context golden
assert max(abs(t["nll"] - g["nll"][t["pos"] - 1]) for t in tok if t["pos"] >= 12) > 1e-3
assert lines[-1]["ctx"] == 12 and lines[-1]["stride"] == 5
PY
}

@test "ppl --llama-cpp: chunks of ctx, second halves scored" {
  need_shared
  d=$(scratch)
  golden_text llama-tiny en "$d/t.txt"
  ppl -q -m "$MODELS/llama-tiny" --llama-cpp --ctx 20 --per-token "$d/t.txt" > "$d/o.jsonl"
  python3 - "$MODELS/llama-tiny/golden.json" "$d/o.jsonl" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))["texts"]["en"]
lines = [json.loads(l) for l in open(sys.argv[2])]
tok = lines[:-1]
n, ctx = len(g["ids"]), 20
want = [c * ctx + j for c in range(n // ctx) for j in range(ctx // 2 + 1, ctx)]
assert [t["pos"] for t in tok] == want, [t["pos"] for t in tok]
# chunk 0 starts with BOS already: identical to the golden prefix
for t in tok:
    if t["pos"] < ctx:
        assert abs(t["nll"] - g["nll"][t["pos"] - 1]) < 1e-3
assert lines[-1]["mode"] == "llama-cpp"
PY
  printf 'short' > "$d/s.txt"
  run ppl -q -m "$MODELS/llama-tiny" --llama-cpp --ctx 20 "$d/s.txt"
  assert_failure 1
}

@test "ppl --save-logits / --kl-base: same model gives KL 0; a student gives the ppl ratio" {
  need_shared
  d=$(scratch)
  golden_text llama-tiny en "$d/t.txt"
  golden_text llama-tiny code "$d/c.txt"
  cat "$d/t.txt" "$d/c.txt" > "$d/tc.txt"
  ppl -q -m "$MODELS/llama-tiny" --save-logits "$d/base.zst" --topk 16 "$d/tc.txt" > "$d/base.json"
  [ -s "$d/base.zst" ]
  ls "$d" | grep -v tmp
  run ppl -q -m "$MODELS/llama-tiny" --kl-base "$d/base.zst" "$d/tc.txt"
  assert_success
  python3 -c "
import json; o = json.loads('''$output''')
assert o['kl']['mean'] < 1e-5 and o['top1_agree'] == 1.0 and abs(o['ppl_ratio'] - 1) < 1e-5, o"
  ppl -q -m "$MODELS/llama-tiny-student" "$d/tc.txt" > "$d/student.json"
  run ppl -q -m "$MODELS/llama-tiny-student" --kl-base "$d/base.zst" "$d/tc.txt"
  assert_success
  python3 -c "
import json; o = json.loads('''$output'''); b = json.load(open('$d/base.json')); s = json.load(open('$d/student.json'))
assert abs(o['ppl_ratio'] - s['ppl'] / b['ppl']) < 1e-4 * o['ppl_ratio'], (o['ppl_ratio'], s['ppl'] / b['ppl'])
assert abs(o['base_ppl'] - b['ppl']) < 1e-4 * b['ppl']
k = o['kl']; assert 0 < k['median'] <= k['p90'] <= k['p99'] <= k['max'] and k['mean'] > 0.01, k
assert 0 <= o['top1_agree'] < 1"
  # another text: the saved tokens do not match
  run ppl -q -m "$MODELS/llama-tiny" --kl-base "$d/base.zst" "$d/c.txt"
  assert_failure 1
  # not a saved file
  run ppl -q -m "$MODELS/llama-tiny" --kl-base "$d/t.txt" "$d/t.txt"
  assert_failure 1
}

@test "ppl reads the text from stdin; --max-tokens stops early" {
  need_shared
  d=$(scratch)
  golden_text qwen3-tiny en "$d/t.txt"
  a=$(ppl -q -m "$MODELS/qwen3-tiny" "$d/t.txt")
  b=$(ppl -q -m "$MODELS/qwen3-tiny" < "$d/t.txt")
  [ "$(echo "$a" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')" = \
    "$(echo "$b" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])')" ]
  run ppl -q -m "$MODELS/qwen3-tiny" --max-tokens 10 "$d/t.txt"
  assert_success
  python3 -c "import json; assert json.loads('''$output''')['tokens'] == 10"
  # the cap cuts inside the second window: only what is scored is forwarded, and the mean NLL
  # is that of the first 8 per-token NLLs of the uncapped run
  ppl -q -m "$MODELS/qwen3-tiny" --ctx 6 --per-token "$d/t.txt" > "$d/all.jsonl"
  ppl -q -m "$MODELS/qwen3-tiny" --ctx 6 --max-tokens 8 "$d/t.txt" > "$d/cap.json"
  python3 - "$d/all.jsonl" "$d/cap.json" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in lines if "pos" in r]
cap = json.load(open(sys.argv[2]))
want = sum(r["nll"] for r in rows[:8]) / 8
assert cap["tokens"] == 8 and abs(cap["nll"] - want) < 1e-5, (cap, want)
# two windows forwarded (6 + 3 rows), not the whole text
assert cap["gflop"] < 0.7 * lines[-1]["gflop"], (cap["gflop"], lines[-1]["gflop"])
PY
}

@test "ppl under ASan+UBSan: golden text, lines, kl, bad inputs" {
  need_shared
  need_san ppl
  d=$(scratch)
  golden_text gemma3-tiny mix "$d/t.txt"
  run "$SANBIN/ppl" -q -m "$MODELS/gemma3-tiny" --per-token --ctx 8 --stride 3 "$d/t.txt"
  assert_success
  head -5 "$SHARED/data/stories/stories-sampled.txt" > "$d/s.txt"
  run "$SANBIN/ppl" -q -m "$MODELS/stories260K" --lines --save-logits "$d/s.zst" "$d/s.txt"
  assert_success
  run "$SANBIN/ppl" -q -m "$MODELS/stories260K" --lines --kl-base "$d/s.zst" "$d/s.txt"
  assert_success
  head -c 100 "$d/s.zst" > "$d/trunc.zst"
  run "$SANBIN/ppl" -q -m "$MODELS/stories260K" --lines --kl-base "$d/trunc.zst" "$d/s.txt"
  assert_failure 1
  run "$SANBIN/ppl" -q -m "$d/nope" "$d/s.txt"
  assert_failure 1
  printf 'x' > "$d/one.txt"
  run "$SANBIN/ppl" -q -m "$MODELS/qwen3-tiny" "$d/one.txt"
  assert_failure 1
}

# --gemm bf16 needs AVX512-BF16; without it ppl falls back to float32 with a warning
need_bf16() {
  grep -qw avx512_bf16 /proc/cpuinfo || skip "this CPU has no avx512_bf16 (--gemm bf16 falls back to f32)"
}

@test "ppl --gemm: usage errors; without AVX512-BF16 it warns and computes in f32" {
  run ppl --help
  assert_output --partial "--gemm f32|bf16"
  run ppl -m x --gemm fp8 f
  assert_failure 2
  assert_output --partial "--gemm"
  need_shared
  if ! grep -qw avx512_bf16 /proc/cpuinfo; then
    d=$(scratch)
    golden_text qwen3-tiny en "$d/t.txt"
    run ppl -q -m "$MODELS/qwen3-tiny" --gemm bf16 "$d/t.txt"
    assert_success
    assert_output --partial "no AVX512-BF16"
    assert_output --partial '"gemm":"f32"'
  fi
}

@test "ppl --gemm bf16: per-token NLL within 0.25 nats of f32 (mean < 0.03) on all five models; stories260K ppl within 0.1% of the golden" {
  need_shared
  need_bf16
  d=$(scratch)
  for m in gemma3-tiny qwen3-tiny llama-tiny llama-tiny-student stories260K; do
    golden_text $m en "$d/$m.txt"
    ppl -q -m "$MODELS/$m" --per-token --gemm f32 "$d/$m.txt" > "$d/$m.f32"
    ppl -q -m "$MODELS/$m" --per-token --gemm bf16 "$d/$m.txt" > "$d/$m.bf16"
    python3 - "$MODELS/$m/golden.json" "$d/$m.f32" "$d/$m.bf16" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))["texts"]["en"]["nll"]
f = [json.loads(l) for l in open(sys.argv[2])]
b = [json.loads(l) for l in open(sys.argv[3])]
assert f[-1]["gemm"] == "f32" and b[-1]["gemm"] == "bf16", (f[-1], b[-1])
f, b = [t["nll"] for t in f[:-1]], [t["nll"] for t in b[:-1]]
assert len(f) == len(b) == len(g)
d = [abs(x - y) for x, y in zip(b, f)]
dg = [abs(x - y) for x, y in zip(b, g)]
print(sys.argv[1], "bf16-f32 max", max(d), "mean", sum(d) / len(d), "bf16-golden max", max(dg))
assert max(d) < 0.25 and sum(d) / len(d) < 0.03, (max(d), sum(d) / len(d))
assert max(dg) < 0.25, max(dg)
assert sum(d) / len(d) > 1e-5, "bf16 gave the f32 numbers: the bf16 path did not run"
PY
  done
  run ppl -q -m "$MODELS/stories260K" --lines --gemm bf16 "$SHARED/data/stories/stories-sampled.txt"
  assert_success
  python3 -c "
import json; o = json.loads('''$output'''); g = json.load(open('$MODELS/stories260K/golden.json'))['corpus_per_line']
assert o['gemm'] == 'bf16' and o['tokens'] == g['tokens'], o
assert abs(o['ppl'] - g['ppl']) < 1e-3 * g['ppl'], (o['ppl'], g['ppl'])"
}

@test "ppl --gemm bf16 under ASan+UBSan" {
  need_shared
  need_bf16
  need_san ppl
  d=$(scratch)
  golden_text gemma3-tiny mix "$d/t.txt"
  run "$SANBIN/ppl" -q -m "$MODELS/gemma3-tiny" --gemm bf16 --per-token --ctx 8 --stride 3 "$d/t.txt"
  assert_success
  head -5 "$SHARED/data/stories/stories-sampled.txt" > "$d/s.txt"
  run "$SANBIN/ppl" -q -m "$MODELS/stories260K" --gemm bf16 --lines "$d/s.txt"
  assert_success
  assert_output --partial '"gemm":"bf16"'
}
