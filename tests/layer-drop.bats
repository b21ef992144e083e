#!/usr/bin/env bats
# layer-drop: goldens from transformers (a dropped model run by ppl), tensor-by-tensor checks
# against tests/depth_ref.py (stdlib-only safetensors reader), selection forms, pipes, bad input.
load helpers

REF="python3 $BATS_TEST_DIRNAME/depth_ref.py"

setup() { T=$(scratch); }
teardown() { rm -rf "$T"; }

need_ppl() { [ -x "$BIN/ppl" ] || skip "ppl (the engine) is not built yet"; }

# the golden text `en` of a model, byte for byte
golden_text() {
  python3 -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))["texts"]["en"]["text"])' \
    "$MODELS/$1/golden.json" > "$T/en.txt"
}

# drop layers $2 of model $1, run ppl on text en, compare with golden drop[$2].mean_nll_en
check_golden_drop() {
  need_shared; need_ppl
  golden_text "$1"
  run layer-drop -q -m "$MODELS/$1" --drop "$2" -o "$T/out"
  assert_success
  run ppl -m "$T/out" "$T/en.txt"
  assert_success
  python3 - "$MODELS/$1/golden.json" "$2" "$output" "$T/out/config.json" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1]))["drop"][sys.argv[2]]
r = json.loads([l for l in sys.argv[3].splitlines() if l.startswith("{")][-1])
assert abs(r["nll"] - g["mean_nll_en"]) < 1e-3, (r["nll"], g["mean_nll_en"])
cfg = json.load(open(sys.argv[4]))
if g.get("layer_types") is not None:
    assert cfg["layer_types"] == g["layer_types"], (cfg.get("layer_types"), g["layer_types"])
    assert cfg["num_hidden_layers"] == len(g["layer_types"])
EOF
}

@test "golden drop: gemma3-tiny layers 2,3 (mean NLL and layer_types)" { check_golden_drop gemma3-tiny 2,3; }
@test "golden drop: gemma3-tiny layer 5, the only full-attention layer" { check_golden_drop gemma3-tiny 5; }
@test "golden drop: qwen3-tiny layers 1,2,3" { check_golden_drop qwen3-tiny 1,2,3; }
@test "golden drop: llama-tiny layer 1" { check_golden_drop llama-tiny 1; }

@test "gemma3 layer_types written explicitly (no config change needed for ppl)" {
  need_shared
  run layer-drop -q -m "$MODELS/gemma3-tiny" --drop 5 -o "$T/out"
  assert_success
  python3 - "$MODELS/gemma3-tiny/golden.json" "$T/out/config.json" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1]))
cfg = json.load(open(sys.argv[2]))
assert cfg["layer_types"] == g["drop"]["5"]["layer_types"], cfg["layer_types"]
assert cfg["num_hidden_layers"] == 7
# every key of the source config survives
src = g["config"]
assert set(src) - {"layer_types"} <= set(cfg), set(src) - set(cfg)
EOF
}

@test "stories260K: ppl --lines after dropping 2 / 1,2 / 4 matches the golden corpus ppl" {
  need_shared; need_ppl
  for d in 2 1,2 4; do
    layer-drop -q -m "$MODELS/stories260K" --drop "$d" -o "$T/s$d"
    run ppl -m "$T/s$d" --lines "$SHARED/data/stories/stories-sampled.txt"
    assert_success
    python3 - "$MODELS/stories260K/golden.json" "$d" "$output" <<'EOF'
import json, sys
want = json.load(open(sys.argv[1]))["drop"][sys.argv[2]]["corpus_ppl"]
got = json.loads([l for l in sys.argv[3].splitlines() if l.startswith("{")][-1])["ppl"]
assert abs(got / want - 1) < 1e-4, (sys.argv[2], got, want)
EOF
  done
}

@test "tensors: kept layers renamed in order, bytes identical (all five models)" {
  need_shared
  for m in gemma3-tiny qwen3-tiny llama-tiny stories260K; do
    run layer-drop -q -m "$MODELS/$m" --drop 0,2 -o "$T/$m.safetensors"
    assert_success
    n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' "$MODELS/$m/config.json")
    kept=$(python3 -c "print(','.join(str(i) for i in range($n) if i not in (0,2)))")
    run $REF check-drop "$MODELS/$m" "$T/$m.safetensors" "$kept"
    assert_output ok
  done
}

@test "JSON lines: one per dropped layer, summary with exact parameter counts" {
  need_shared
  run layer-drop -m "$MODELS/qwen3-tiny" --drop 1,4 -o "$T/out"
  assert_success
  before=$($REF params "$MODELS/qwen3-tiny")
  after=$($REF params "$T/out")
  python3 - "$output" "$before" "$after" "$MODELS/qwen3-tiny" <<'EOF'
import json, sys
lines = [l for l in sys.argv[1].splitlines() if l.startswith("{")]
drops = [json.loads(l) for l in lines[:-1]]
summ = json.loads(lines[-1])
before, after = int(sys.argv[2]), int(sys.argv[3])
assert [d["layer"] for d in drops] == [1, 4] and all(d["action"] == "drop" for d in drops)
# per-layer params = (before - after) / 2 for identical layers
assert all(d["params"] * 2 == before - after for d in drops), drops
assert summ["params_before"] == before and summ["params_after"] == after, summ
assert summ["layers_before"] == 6 and summ["layers_after"] == 4
assert abs(summ["reduction"] - (1 - after / before)) < 1e-12
EOF
  # the human line on stderr: "a,bbb → c,ddd (xx.xx%)"
  run bash -c "layer-drop -m '$MODELS/qwen3-tiny' --drop 1,4 -o '$T/out2' 2>&1 >/dev/null"
  exp=$(python3 -c "b,a=$before,$after; print(f'{b:,} → {a:,} ({100*(1-a/b):.2f}%)')")
  assert_output --partial "$exp"
}

@test "--keep is the complement of --drop" {
  need_shared
  layer-drop -q -m "$MODELS/llama-tiny" --keep 0,3 -o "$T/a.safetensors"
  layer-drop -q -m "$MODELS/llama-tiny" --drop 1-2 -o "$T/b.safetensors"
  cmp "$T/a.safetensors" "$T/b.safetensors"
  run $REF check-drop "$MODELS/llama-tiny" "$T/a.safetensors" 0,3
  assert_output ok
}

@test "--scores FILE --n K drops the K lowest-scoring layers; --percent" {
  need_shared
  printf '%s\n' '{"layer":0,"metric":"bi","score":0.5}' '{"layer":1,"metric":"bi","score":0.1}' \
    '{"layer":2,"metric":"bi","score":0.3}' '{"layer":3,"metric":"bi","score":0.05}' \
    '{"layer":4,"metric":"bi","score":0.2}' '{"layer":5,"metric":"bi","score":0.9}' > "$T/s.jsonl"
  run layer-drop -m "$MODELS/qwen3-tiny" --scores "$T/s.jsonl" --n 3 -o "$T/a.safetensors"
  assert_success
  run $REF check-drop "$MODELS/qwen3-tiny" "$T/a.safetensors" 0,2,5
  assert_output ok
  # 50% of 6 layers = 3: the same three
  layer-drop -q -m "$MODELS/qwen3-tiny" --scores "$T/s.jsonl" --percent 50 -o "$T/b.safetensors"
  cmp "$T/a.safetensors" "$T/b.safetensors"
  # without scores: the deepest layers before the last (6 layers, 34% -> 2: layers 3,4)
  layer-drop -q -m "$MODELS/qwen3-tiny" --percent 34 -o "$T/c.safetensors"
  run $REF check-drop "$MODELS/qwen3-tiny" "$T/c.safetensors" 0,1,2,5
  assert_output ok
  # block scores (angular): the lowest block of n = K
  printf '%s\n' '{"start":0,"n":2,"metric":"angular","score":0.4}' '{"start":2,"n":2,"metric":"angular","score":0.2}' \
    '{"start":3,"n":2,"metric":"angular","score":0.3}' > "$T/b.jsonl"
  layer-drop -q -m "$MODELS/qwen3-tiny" --scores "$T/b.jsonl" --n 2 -o "$T/d.safetensors"
  run $REF check-drop "$MODELS/qwen3-tiny" "$T/d.safetensors" 0,1,4,5
  assert_output ok
}

@test "pipe: layer-drop -o - | st-cat -l - and stream in -> folder out" {
  need_shared
  [ -x "$BIN/st-cat" ] || skip "st-cat not built"
  run bash -c "layer-drop -q -m '$MODELS/llama-tiny' --drop 2 -o - | st-cat -l -"
  assert_success
  python3 - "$output" "$MODELS/llama-tiny" <<'EOF'
import json, sys
names = [json.loads(l)["name"] for l in sys.argv[1].splitlines()]
assert "model.layers.2.mlp.up_proj.weight" in names and "model.layers.3.mlp.up_proj.weight" not in names, names
assert len(names) == 2 + 1 + 3 * 9, len(names)
EOF
  run bash -c "st-cat '$MODELS/llama-tiny' | layer-drop -q -m - --drop 2 -o '$T/f'"
  assert_success
  run $REF check-drop "$MODELS/llama-tiny" "$T/f" 0,1,3
  assert_output ok
  [ -f "$T/f/tokenizer.json" ]
}

@test "bad input: exit 2 for usage, 1 for runtime, one line, no output left" {
  need_shared
  m="$MODELS/llama-tiny"
  run layer-drop -m "$m" --drop 0-3 -o "$T/x"
  [ "$status" -eq 2 ]; [ "${#lines[@]}" -eq 1 ]; assert_output --partial "layer-drop:"
  run layer-drop -m "$m" --drop 4 -o "$T/x"
  [ "$status" -eq 2 ]; [ "${#lines[@]}" -eq 1 ]
  run layer-drop -m "$m" --keep 9 -o "$T/x"
  [ "$status" -eq 2 ]; [ "${#lines[@]}" -eq 1 ]
  run layer-drop -m "$m" --drop 1 --keep 2 -o "$T/x"
  [ "$status" -eq 2 ]; [ "${#lines[@]}" -eq 1 ]
  run layer-drop -m "$m" --scores /dev/null -o "$T/x"
  [ "$status" -eq 2 ]; [ "${#lines[@]}" -eq 1 ]
  run layer-drop -m "$m" --percent 0 -o "$T/x"
  [ "$status" -eq 2 ]; [ "${#lines[@]}" -eq 1 ]
  echo '{"layer":1,"score":' > "$T/bad.jsonl"
  run layer-drop -m "$m" --scores "$T/bad.jsonl" --n 1 -o "$T/x"
  [ "$status" -eq 1 ]; [ "${#lines[@]}" -eq 1 ]; assert_output --partial "bad.jsonl:1"
  echo '{"layer":7,"score":0.1}' > "$T/bad2.jsonl"
  run layer-drop -m "$m" --scores "$T/bad2.jsonl" --n 1 -o "$T/x"
  [ "$status" -eq 1 ]; [ "${#lines[@]}" -eq 1 ]
  printf '%s\n' '{"layer":1,"score":0.1}' '{"layer":1,"score":0.2}' > "$T/bad3.jsonl"
  run layer-drop -m "$m" --scores "$T/bad3.jsonl" --n 1 -o "$T/x"
  [ "$status" -eq 1 ]; assert_output --partial "twice"
  run layer-drop -m "$T/nonexistent" --drop 1 -o "$T/x"
  [ "$status" -eq 1 ]; [ "${#lines[@]}" -eq 1 ]
  head -c 1000 "$m/model.safetensors" > "$T/trunc.safetensors"
  run layer-drop -m "$T/trunc.safetensors" --drop 1 -o "$T/x"
  [ "$status" -eq 1 ]; [ "${#lines[@]}" -eq 1 ]
  [ ! -e "$T/x" ]
  run layer-drop -m "$m" --drop 1
  [ "$status" -eq 2 ]
  run layer-drop --help
  assert_success; assert_output --partial "--scores"
}

@test "a truncated stream on stdin fails and leaves no output" {
  need_shared
  [ -x "$BIN/st-cat" ] || skip "st-cat not built"
  st-cat "$MODELS/llama-tiny" > "$T/full.st"
  head -c 3000000 "$T/full.st" > "$T/t.st"
  run bash -c "cat '$T/t.st' | layer-drop -m - --drop 1 -o '$T/o.safetensors'"
  [ "$status" -eq 1 ]; [ "${#lines[@]}" -eq 1 ]; assert_output --partial "truncated"
  [ "$(ls "$T")" = "$(printf 'full.st\nt.st')" ]
  # without a config in the stream: found by names, with a warning
  head -c 3000000 "$MODELS/llama-tiny/model.safetensors" > "$T/t2.st"
  run bash -c "cat '$T/t2.st' | layer-drop -m - --drop 1 -o '$T/o.safetensors'"
  [ "$status" -eq 1 ]; assert_output --partial "no config.json"
  [ ! -e "$T/o.safetensors" ]
}

@test "sanitizers: layer-drop on small models and bad input" {
  need_shared; need_san layer-drop
  run "$SANBIN/layer-drop" -q -m "$MODELS/gemma3-tiny" --drop 2,3 -o "$T/g"
  assert_success
  run $REF check-drop "$MODELS/gemma3-tiny" "$T/g" 0,1,4,5,6,7
  assert_output ok
  printf '%s\n' '{"layer":0,"score":0.5}' '{"layer":1,"score":0.1}' > "$T/s.jsonl"
  run "$SANBIN/layer-drop" -q -m "$MODELS/stories260K" --scores "$T/s.jsonl" --n 1 -o - 
  assert_success
  echo '{"layer":1,"score":[' > "$T/bad.jsonl"
  run "$SANBIN/layer-drop" -m "$MODELS/stories260K" --scores "$T/bad.jsonl" --n 1 -o "$T/x"
  [ "$status" -eq 1 ]
  run "$SANBIN/layer-drop" -m "$MODELS/stories260K" --drop 0-4 -o "$T/x"
  [ "$status" -eq 2 ]
  head -c 5000 "$MODELS/stories260K/model.safetensors" > "$T/t.safetensors"
  run "$SANBIN/layer-drop" -m "$T/t.safetensors" --drop 1 -o "$T/x"
  [ "$status" -eq 1 ]
}
