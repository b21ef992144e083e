#!/usr/bin/env bats
# layer-merge: every merged tensor checked byte for byte against tests/depth_ref.py (an
# independent stdlib-only reader that emulates the float32 arithmetic and the bf16 rounding),
# config updates, pipes, LaCo's search, bad input.
load helpers

REF="python3 $BATS_TEST_DIRNAME/depth_ref.py"

setup() { T=$(scratch); }
teardown() { rm -rf "$T"; }


@test "RDSC merge, tensor by tensor: qwen3-tiny 1-3 (q/k norms), gemma3-tiny 2-3 + 5-7, llama-tiny 0-1, stories260K (f32) 1-2" {
  need_shared
  run layer-merge -q -m "$MODELS/qwen3-tiny" --merge 1-3 -o "$T/q"
  assert_success
  run $REF check-merge "$MODELS/qwen3-tiny" "$T/q" rdsc 1-3
  assert_output ok
  run layer-merge -q -m "$MODELS/gemma3-tiny" --merge 5-7 --merge 2-3 -o "$T/g.safetensors"
  assert_success
  run $REF check-merge "$MODELS/gemma3-tiny" "$T/g.safetensors" rdsc 2-3 5-7
  assert_output ok
  run layer-merge -q -m "$MODELS/llama-tiny" --merge 0-1 -o "$T/l"
  assert_success
  run $REF check-merge "$MODELS/llama-tiny" "$T/l" rdsc 0-1
  assert_output ok
  run layer-merge -q -m "$MODELS/stories260K" --merge 1-2 -o "$T/s"
  assert_success
  run $REF check-merge "$MODELS/stories260K" "$T/s" rdsc 1-2
  assert_output ok
}

@test "--average and --replace, tensor by tensor" {
  need_shared
  for rule in average replace; do
    run layer-merge -q -m "$MODELS/qwen3-tiny" --merge 2-5 --$rule -o "$T/$rule"
    assert_success
    run $REF check-merge "$MODELS/qwen3-tiny" "$T/$rule" $rule 2-5
    assert_output ok
  done
}

@test "--replace leaves the last layer's projections (the official code's behaviour)" {
  need_shared
  layer-merge -q -m "$MODELS/stories260K" --merge 1-3 --replace -o "$T/r.safetensors"
  run python3 -c "
import sys; sys.path.insert(0, '$BATS_TEST_DIRNAME'); import depth_ref as d
src = d.read('$MODELS/stories260K')[0]; out = d.read('$T/r.safetensors')[0]
f = lambda t: d.to_f32(t[0], t[2])
def close(a, b): return all(abs(x - y) <= 1e-6 * max(1.0, abs(y)) for x, y in zip(f(a), f(b)))
assert close(out['model.layers.1.mlp.up_proj.weight'], src['model.layers.3.mlp.up_proj.weight'])
assert close(out['model.layers.1.self_attn.q_proj.weight'], src['model.layers.3.self_attn.q_proj.weight'])
assert not close(out['model.layers.1.mlp.up_proj.weight'], src['model.layers.1.mlp.up_proj.weight'])
assert out['model.layers.1.input_layernorm.weight'][2] == src['model.layers.1.input_layernorm.weight'][2]
assert out['model.layers.2.mlp.up_proj.weight'][2] == src['model.layers.4.mlp.up_proj.weight'][2]
print('ok')"
  assert_output ok
}

@test "gemma3: the merged layer keeps its base's attention type; JSON lines" {
  need_shared
  run layer-merge -m "$MODELS/gemma3-tiny" --merge 4-6 -o "$T/g"
  assert_success
  python3 - "$output" "$T/g/config.json" "$MODELS/gemma3-tiny/config.json" <<'EOF'
import json, sys
lines = [json.loads(l) for l in sys.argv[1].splitlines() if l.startswith("{")]
assert lines[0]["action"] == "merge" and lines[0]["layers"] == [4, 6] and lines[0]["into"] == 4 and lines[0]["rule"] == "rdsc"
s = lines[-1]
assert s["layers_before"] == 8 and s["layers_after"] == 6, s
assert s["params_before"] - s["params_after"] == 2 * lines[0]["params"] // 3, (s, lines[0])
cfg, src = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
t = src["layer_types"]
assert cfg["layer_types"] == t[:4] + [t[4]] + t[7:], cfg["layer_types"]
assert cfg["num_hidden_layers"] == 6
EOF
}

@test "pipes: -m - and -o -" {
  need_shared
  [ -x "$BIN/st-cat" ] || skip "st-cat not built"
  run bash -c "layer-merge -q -m '$MODELS/qwen3-tiny' --merge 0-1 -o - | st-cat -l -"
  assert_success
  [ "$(echo "$output" | grep -c '"name":"model.layers.4.mlp.up_proj.weight"')" -eq 1 ]
  [ "$(echo "$output" | grep -c '"name":"model.layers.5.')" -eq 0 ]
  run bash -c "st-cat '$MODELS/qwen3-tiny' | layer-merge -q -m - --merge 3-4 -o '$T/p.safetensors'"
  assert_success
  run $REF check-merge "$MODELS/qwen3-tiny" "$T/p.safetensors" rdsc 3-4
  assert_output ok
}

@test "bad input: overlapping, out of range, malformed merges; missing --data; one line each" {
  need_shared
  m="$MODELS/llama-tiny"
  for args in "--merge 0-2 --merge 2-3" "--merge 2-4" "--merge 2-2" "--merge 3-1" "--merge x-1" "--merge 1" \
              "--laco" "--merge 0-1 --laco --data /dev/null" "--merge 0-1 --average --replace" "--merge 0-1 --data x"; do
    run layer-merge -m "$m" $args -o "$T/x"
    [ "$status" -eq 2 ] || { echo "args: $args -> $status: $output"; false; }
    [ "${#lines[@]}" -eq 1 ] || { echo "args: $args: $output"; false; }
  done
  run layer-merge -m "$T/none" --merge 0-1 -o "$T/x"
  [ "$status" -eq 1 ]; [ "${#lines[@]}" -eq 1 ]
  [ ! -e "$T/x" ]
}

@test "sanitizers: layer-merge on small models and bad input" {
  need_shared; need_san layer-merge
  run "$SANBIN/layer-merge" -q -m "$MODELS/gemma3-tiny" --merge 1-3 --merge 5-6 -o "$T/g"
  assert_success
  run $REF check-merge "$MODELS/gemma3-tiny" "$T/g" rdsc 1-3 5-6
  assert_output ok
  run "$SANBIN/layer-merge" -q -m "$MODELS/qwen3-tiny" --merge 0-5 --average -o "$T/q.safetensors"
  assert_success
  run "$SANBIN/layer-merge" -m "$MODELS/qwen3-tiny" --merge 0-6 -o "$T/x"
  [ "$status" -eq 2 ]
  head -c 4000 "$MODELS/stories260K/model.safetensors" > "$T/t.safetensors"
  run "$SANBIN/layer-merge" -m "$T/t.safetensors" --merge 0-1 -o "$T/x"
  [ "$status" -eq 1 ]
}

# ---- LaCo (needs the engine) ----

@test "laco: one accepted attempt writes exactly the RDSC merge" {
  need_shared
  # 5 layers, -C 2 -H 5 -L 3: the only attempt merges layers 3-4; -T -1 accepts it
  run layer-merge -m "$MODELS/stories260K" --laco -C 2 -H 5 -L 3 -T -1 \
      --data "$SHARED/data/stories/test.txt" --lines --samples 8 -o "$T/a.safetensors"
  assert_success
  echo "$output" > "$T/out.txt"
  run $REF check-merge "$MODELS/stories260K" "$T/a.safetensors" rdsc 3-4
  assert_output ok
  output=$(cat "$T/out.txt")
  python3 - "$output" <<'EOF'
import json, sys
L = [json.loads(l) for l in sys.argv[1].splitlines() if l.startswith("{")]
tries = [l for l in L if l.get("action") == "try"]
assert len(tries) == 1 and tries[0]["layers"] == [3, 4] and tries[0]["accepted"] is True, tries
assert -1 <= tries[0]["similarity"] <= 1 + 1e-6
st = [l for l in L if l.get("action") == "laco"][0]
assert st["merges_accepted"] == 1 and st["merges_rejected"] == 0 and st["iterations"] == 1
assert L[-1]["layers_after"] == 4
EOF
}

@test "laco: a rejected attempt leaves the model unchanged" {
  need_shared
  run layer-merge -m "$MODELS/stories260K" --laco -C 2 -H 5 -L 3 -T 1 \
      --data "$SHARED/data/stories/test.txt" --lines --samples 8 -o "$T/a"
  assert_success
  run $REF check-drop "$MODELS/stories260K" "$T/a" 0,1,2,3,4
  assert_output ok
}

@test "laco: the search follows the paper's walk (accepted iff similarity > T, steps of I or 1)" {
  need_shared
  run layer-merge -m "$MODELS/qwen3-tiny" --laco -C 2 -L 0 -I 2 -T 0.5 \
      --data "$SHARED/data/corpus/tinyshakespeare.txt" --samples 4 --ctx 32 -o "$T/q"
  assert_success
  python3 - "$output" 0.5 2 2 6 0 <<'EOF'
import json, sys
L = [json.loads(l) for l in sys.argv[1].splitlines() if l.startswith("{")]
T, I, C, n, low = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
tries = [l for l in L if l.get("action") == "try"]
lay, cur = n - C, n
for t in tries:
    while min(C - 1, cur - lay - 1) <= 0:   # nothing to merge above: move down
        lay -= 1
    assert t["layers"][0] == lay, (t, lay)
    assert t["accepted"] == (t["similarity"] > T), t
    if t["accepted"]:
        cur -= t["layers"][1] - t["layers"][0]
        lay -= I
        if lay >= cur:
            lay = cur - 1 - C
    else:
        lay -= 1
st = [l for l in L if l.get("action") == "laco"][0]
assert st["merges_accepted"] == sum(t["accepted"] for t in tries)
assert L[-1]["layers_after"] == cur
EOF
}

@test "laco: bad calibration data fails with one line" {
  need_shared
  : > "$T/empty.txt"
  run layer-merge -m "$MODELS/stories260K" --laco --data "$T/empty.txt" -o "$T/x"
  [ "$status" -eq 1 ]; [ "${#lines[@]}" -eq 1 ]
  [ ! -e "$T/x" ]
}
