#!/usr/bin/env bats
# layer-score: bi against transformers' hidden-state cosines (goldens), ppl against the goldens of
# dropped models, angular against bi on a one-token sample (arccos(1 - bi)/pi), layer-drop --scores
# fed by it, bad input.
load helpers

setup() { T=$(scratch); }
teardown() { rm -rf "$T"; }


golden_text() {
  python3 -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))["texts"]["en"]["text"])' \
    "$MODELS/$1/golden.json" > "$T/en.txt"
}

@test "bi = 1 - hidden_cos_in_out_per_layer (all but the last layer), four models" {
  need_shared
  for m in gemma3-tiny qwen3-tiny llama-tiny stories260K; do
    golden_text $m
    run layer-score -m "$MODELS/$m" --data "$T/en.txt"
    assert_success
    python3 - "$MODELS/$m/golden.json" "$output" "$m" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1]))["texts"]["en"]
lines = [json.loads(l) for l in sys.argv[2].splitlines()]
bi = [l for l in lines if "layer" in l]
summ = lines[-1]
cos = g["hidden_cos_in_out_per_layer"]
assert [l["layer"] for l in bi] == list(range(len(cos))), bi
assert all(l["metric"] == "bi" for l in bi)
assert summ["tokens"] == len(g["ids"]), (summ, len(g["ids"]))
for l in bi[:-1]:
    want = 1 - cos[l["layer"]]
    assert abs(l["score"] - want) < 1e-4, (sys.argv[3], l, want)
# the last layer is scored on the residual stream, not transformers' final-normed state
assert 0 <= bi[-1]["score"] <= 2
EOF
  done
}

@test "angular on a one-token sample equals arccos(1 - bi)/pi" {
  need_shared
  echo '{"text": "the"}' > "$T/one.jsonl"   # qwen3 adds no BOS: one token
  run layer-score -m "$MODELS/qwen3-tiny" --data "$T/one.jsonl" --metric bi
  assert_success
  echo "$output" > "$T/bi.jsonl"
  run layer-score -m "$MODELS/qwen3-tiny" --data "$T/one.jsonl" --metric angular
  assert_success
  python3 - "$T/bi.jsonl" "$output" <<'EOF'
import json, math, sys
bi = {l["layer"]: l["score"] for l in map(json.loads, open(sys.argv[1])) if "layer" in l}
ang = [json.loads(l) for l in sys.argv[2].splitlines()]
blocks = [a for a in ang if "start" in a]
assert len(blocks) == 6 and all(a["n"] == 1 and a["metric"] == "angular" for a in blocks)
assert ang[-1]["tokens"] == 1
for a in blocks:
    want = math.acos(max(-1, min(1, 1 - bi[a["start"]]))) / math.pi
    assert abs(a["score"] - want) < 1e-4, (a, want)
EOF
  run layer-score -m "$MODELS/qwen3-tiny" --data "$T/one.jsonl" --metric angular --block 3
  assert_success
  [ "$(echo "$output" | grep -c '"n":3')" -eq 4 ]
}

@test "ppl: skipping layer 2 / 4 of stories260K reproduces the golden corpus ppl" {
  need_shared
  run layer-score -m "$MODELS/stories260K" --metric ppl --lines --samples 0 --layers 2,4 \
      --data "$SHARED/data/stories/stories-sampled.txt"
  assert_success
  python3 - "$MODELS/stories260K/golden.json" "$output" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1]))
lines = [json.loads(l) for l in sys.argv[2].splitlines()]
by = {l["layer"]: l for l in lines if "layer" in l}
assert sorted(by) == [2, 4], by
base = lines[-1]["base_ppl"]
assert abs(base / g["corpus_per_line"]["ppl"] - 1) < 1e-4, (base, g["corpus_per_line"])
assert lines[-1]["scored_tokens"] == g["corpus_per_line"]["tokens"], lines[-1]
for layer, key in ((2, "2"), (4, "4")):
    want = g["drop"][key]["corpus_ppl"]
    assert abs(by[layer]["ppl"] / want - 1) < 1e-4, (by[layer], want)
    assert abs(by[layer]["score"] - (by[layer]["ppl"] - base)) < 1e-9
EOF
}

@test "kl: nonnegative, zero-free, and --block 2 gives blocks; layer-drop --scores takes it" {
  need_shared
  run layer-score -m "$MODELS/stories260K" --metric kl --lines --samples 16 --data "$SHARED/data/stories/test.txt"
  assert_success
  echo "$output" > "$T/kl.jsonl"
  python3 - "$output" <<'EOF'
import json, sys
lines = [json.loads(l) for l in sys.argv[1].splitlines()]
kl = [l for l in lines if "layer" in l]
assert len(kl) == 5 and all(l["score"] > 0 for l in kl), kl
EOF
  run layer-drop -m "$MODELS/stories260K" --scores "$T/kl.jsonl" --n 2 -o "$T/d"
  assert_success
  run layer-score -m "$MODELS/stories260K" --metric kl --block 2 --lines --samples 4 --data "$SHARED/data/stories/test.txt"
  assert_success
  [ "$(echo "$output" | grep -c '"start"')" -eq 4 ]
}

@test "bad input: one line, exit 2 for usage, 1 for data" {
  need_shared
  m="$MODELS/stories260K"
  run layer-score -m "$m"
  [ "$status" -eq 2 ]; [ "${#lines[@]}" -eq 1 ]
  run layer-score -m "$m" --data x --metric foo
  [ "$status" -eq 2 ]; [ "${#lines[@]}" -eq 1 ]
  run layer-score -m "$m" --data x --metric bi --block 2
  [ "$status" -eq 2 ]; [ "${#lines[@]}" -eq 1 ]

  : > "$T/empty.txt"
  run layer-score -m "$m" --data "$T/empty.txt"
  [ "$status" -eq 1 ]; [ "${#lines[@]}" -eq 1 ]
  run layer-score -m "$m" --data "$T/none.txt"
  [ "$status" -eq 1 ]; [ "${#lines[@]}" -eq 1 ]
  echo "hello" > "$T/h.txt"
  run layer-score -m "$m" --data "$T/h.txt" --layers 5
  [ "$status" -eq 2 ]; [ "${#lines[@]}" -eq 1 ]
  run layer-score -m "$m" --data "$T/h.txt" --metric angular --block 6
  [ "$status" -eq 2 ]; [ "${#lines[@]}" -eq 1 ]
}

@test "sanitizers: layer-score bi and kl on stories260K" {
  need_shared; need_san layer-score
  run "$SANBIN/layer-score" -m "$MODELS/stories260K" --samples 3 --lines --data "$SHARED/data/stories/test.txt"
  assert_success
  run "$SANBIN/layer-score" -m "$MODELS/stories260K" --metric kl --samples 2 --ctx 32 --data "$SHARED/data/stories/test.txt"
  assert_success
  : > "$T/empty.txt"
  run "$SANBIN/layer-score" -m "$MODELS/stories260K" --data "$T/empty.txt"
  [ "$status" -eq 1 ]
}

@test "layer-score --gemm bf16: ppl scores of stories260K within 1% of f32 (skips without avx512_bf16)" {
  need_shared
  grep -qw avx512_bf16 /proc/cpuinfo || skip "this CPU has no avx512_bf16 (--gemm bf16 falls back to f32)"
  T=$(scratch)
  for g in f32 bf16; do
    layer-score -q -m "$MODELS/stories260K" --metric ppl --lines --samples 64 --layers 2,4 --gemm $g \
      --data "$SHARED/data/stories/stories-sampled.txt" > "$T/$g.jsonl"
  done
  python3 - "$T/f32.jsonl" "$T/bf16.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
for x, y in zip(a, b):
    for k in ("ppl", "base_ppl"):
        if k in x:
            assert abs(y[k] / x[k] - 1) < 0.01, (k, x[k], y[k])
assert a[-1]["base_ppl"] != b[-1]["base_ppl"], "bf16 == f32: not run"
PY
}
