#!/usr/bin/env bats
# width-prune: shapes and configs on the four fixture families, checked tensor by tensor against
# tests/width_ref.py (stdlib-only); the output runs in ppl; keeping everything reproduces the NLL
# exactly; zeroed neurons and heads are the first removed and removing them changes no logit;
# OptiPFair's weight scores recomputed independently; GQA; pipes; bad requests.
load helpers

REF="python3 $BATS_TEST_DIRNAME/width_ref.py"
FAMILIES="gemma3-tiny qwen3-tiny llama-tiny stories260K"

setup() { T=$(scratch); CAL="--data $SHARED/data/prose/train.txt --samples 8 --ctx 64"; }
teardown() { rm -rf "$T"; }

need_ppl() { [ -x "$BIN/ppl" ] || skip "ppl (the engine) is not built"; }
cfg() { python3 -c 'import json,sys; c=json.load(open(sys.argv[1]+"/config.json")); print(c.get(sys.argv[2]))' "$1" "$2"; }
# the golden text `en` of a model
golden_text() {
  python3 -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))["texts"]["en"]["text"])' \
    "$MODELS/$1/golden.json" > "$T/en.txt"
}
nll() { ppl -q -m "$1" "$T/en.txt" | python3 -c 'import json,sys; print(repr(json.loads(sys.stdin.read())["nll"]))'; }

@test "every family: heads, neurons and channels pruned; tensors = source slices; config; ppl runs; params" {
  need_shared; need_ppl
  for m in $FAMILIES; do
    golden_text "$m"
    run width-prune -q -m "$MODELS/$m" -o "$T/$m" --mlp-percent 25 --head-percent 50 --hidden-keep 16 $CAL
    assert_success
    echo "$output" > "$T/$m.jsonl"
    run $REF check-slice "$MODELS/$m" "$T/$m" "$T/$m.jsonl"
    assert_output ok
    run ppl -q -m "$T/$m" "$T/en.txt"
    assert_success
    python3 -c 'import json,sys,math; r=json.loads(sys.argv[1]); assert math.isfinite(r["nll"]) and r["tokens"] > 0, r' "$output"
    # tensors, config and the JSON summary agree on the parameter count
    run st-cat --summary "$T/$m"
    python3 - "$output" "$T/$m.jsonl" <<'EOF2'
import json, sys
s = json.loads(sys.argv[1])
summ = [json.loads(l) for l in open(sys.argv[2])][-1]
assert s["params"] == s["config_params"] == summ["params_after"], (s, summ)
assert summ["hidden_size"][1] == 16 and summ["params_removed"] == summ["params_before"] - summ["params_after"]
EOF2
  done
}

@test "keeping every unit reproduces the original NLL exactly (all four families)" {
  need_shared; need_ppl
  for m in $FAMILIES; do
    golden_text "$m"
    I=$(cfg "$MODELS/$m" intermediate_size); H=$(cfg "$MODELS/$m" num_attention_heads); C=$(cfg "$MODELS/$m" hidden_size)
    run width-prune -q -m "$MODELS/$m" -o "$T/$m" --mlp-keep "$I" --heads-keep "$H" --hidden-keep "$C" $CAL
    assert_success
    [ "$(nll "$MODELS/$m")" = "$(nll "$T/$m")" ]
    # and the weight-only path: the same tensors
    width-prune -q -m "$MODELS/$m" -o "$T/$m-w.safetensors" --mlp-keep "$I" --importance pon
    [ "$(nll "$MODELS/$m")" = "$(nll "$T/$m-w.safetensors")" ]
  done
}

@test "activation: zeroed neurons (up or gate row) and heads (o_proj columns) go first; no logit moves" {
  need_shared; need_ppl
  for m in qwen3-tiny gemma3-tiny; do
    golden_text "$m"
    L=$(cfg "$MODELS/$m" num_hidden_layers); I=$(cfg "$MODELS/$m" intermediate_size)
    H=$(cfg "$MODELS/$m" num_attention_heads); G=$(cfg "$MODELS/$m" num_key_value_heads)
    # in every layer: neurons l+3 (up row) and 2l+10 (gate row), and the last head of each KV group
    spec=$(python3 -c "
L,H,G=$L,$H,$G; r=H//G
print(','.join(f'up:{l}:{l+3},gate:{l}:{2*l+10},' + ','.join(f'head:{l}:{g*r+r-1}' for g in range(G)) for l in range(L)))")
    run $REF zero "$MODELS/$m" "$T/z" "$spec"
    assert_output ok
    run width-prune -q -f -m "$T/z" -o "$T/zp" --mlp-keep $((I - 2)) --heads-keep $((H - G)) $CAL
    assert_success
    python3 - "$output" "$H" "$G" <<'EOF2'
import json, sys
H, G = int(sys.argv[2]), int(sys.argv[3]); r = H // G
for d in map(json.loads, sys.argv[1].splitlines()):
    if d.get("part") == "mlp":
        l = d["layer"]
        assert sorted(set(range(d["before"])) - set(d["kept"])) == sorted({l + 3, 2 * l + 10}), d["kept"]
    elif d.get("part") == "heads":
        assert sorted(set(range(H)) - set(d["kept"])) == [g * r + r - 1 for g in range(G)], d["kept"]
EOF2
    ppl -q --per-token -m "$T/z" "$T/en.txt" > "$T/a"
    ppl -q --per-token -m "$T/zp" "$T/en.txt" > "$T/b"
    python3 - "$T/a" "$T/b" <<'EOF2'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1]) if '"pos"' in l]
b = [json.loads(l) for l in open(sys.argv[2]) if '"pos"' in l]
assert len(a) == len(b) > 0
d = max(abs(x["nll"] - y["nll"]) for x, y in zip(a, b))
assert d < 2e-5, d
EOF2
  done
}

@test "maw, vow, pon: kept neurons are the top-scored ones of an independent recomputation" {
  need_shared
  for m in qwen3-tiny llama-tiny; do
    for imp in maw vow pon; do
      width-prune -q -f -m "$MODELS/$m" -o "$T/o.safetensors" --mlp-keep 50 --importance $imp > "$T/$imp.jsonl"
      run $REF check-select "$MODELS/$m" "$T/$imp.jsonl" $imp
      assert_output ok
    done
  done
}

@test "GQA: query heads per KV group, whole KV groups (--kv-keep), k/v sliced by group" {
  need_shared
  # qwen3-tiny: 4 query heads over 2 KV groups
  run width-prune -q -m "$MODELS/qwen3-tiny" -o "$T/a" --heads-keep 2 --importance maw
  assert_success
  echo "$output" > "$T/a.jsonl"
  run $REF check-slice "$MODELS/qwen3-tiny" "$T/a" "$T/a.jsonl"
  assert_output ok
  [ "$(cfg "$T/a" num_attention_heads)" = 2 ] && [ "$(cfg "$T/a" num_key_value_heads)" = 2 ]
  run width-prune -q -m "$MODELS/qwen3-tiny" -o "$T/b" --kv-keep 1 $CAL
  assert_success
  echo "$output" > "$T/b.jsonl"
  run $REF check-slice "$MODELS/qwen3-tiny" "$T/b" "$T/b.jsonl"
  assert_output ok
  [ "$(cfg "$T/b" num_attention_heads)" = 2 ] && [ "$(cfg "$T/b" num_key_value_heads)" = 1 ]
  # the kept group is the one whose heads score more in total
  python3 - "$T/b.jsonl" <<'EOF2'
import json, sys
for d in map(json.loads, open(sys.argv[1])):
    if d.get("part") == "heads":
        s = d["scores"]; g = d["kv_kept"][0]
        assert s[2 * g] + s[2 * g + 1] >= s[2 * (1 - g)] + s[2 * (1 - g) + 1], d
        assert d["kept"] == [2 * g, 2 * g + 1]
EOF2
  # llama-tiny derives head_dim from hidden/heads: it must be written explicitly
  width-prune -q -m "$MODELS/llama-tiny" -o "$T/c" --heads-keep 2 --importance vow > /dev/null
  [ "$(cfg "$T/c" head_dim)" = 12 ]
  # Gemma: head_dim and query_pre_attn_scalar (the softmax scale) untouched
  width-prune -q -m "$MODELS/gemma3-tiny" -o "$T/d" --heads-keep 1 --hidden-keep 20 $CAL > /dev/null
  [ "$(cfg "$T/d" head_dim)" = 16 ] && [ "$(cfg "$T/d" query_pre_attn_scalar)" = 16 ]
}

@test "Gemma hidden channels: embedding x sqrt(C/D), tied final norm compensated" {
  need_shared; need_ppl
  golden_text gemma3-tiny
  width-prune -q -m "$MODELS/gemma3-tiny" -o "$T/g" --hidden-keep 20 $CAL > "$T/g.jsonl"
  run $REF check-slice "$MODELS/gemma3-tiny" "$T/g" "$T/g.jsonl"
  assert_output ok
  run ppl -q -m "$T/g" "$T/en.txt"
  assert_success
}

@test "pipes: -o - streams the model (JSON on stderr); a stream on stdin; --percent forms" {
  need_shared
  [ -x "$BIN/st-cat" ] || skip "st-cat not built"
  # (st-cat -l reads only the header and closes the pipe: copy the whole stream first)
  run bash -c "width-prune -m '$MODELS/llama-tiny' --mlp-keep 64 --importance maw -o - 2>'$T/err' | st-cat -m - -o '$T/piped.safetensors' && st-cat -l '$T/piped.safetensors'"
  assert_success
  python3 - "$output" "$T/err" <<'EOF2'
import json, sys
rows = [json.loads(l) for l in sys.argv[1].splitlines()]
up = [r for r in rows if r["name"].endswith("mlp.up_proj.weight")]
assert len(up) == 4 and all(r["shape"] == [64, 48] for r in up), up
summ = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")][-1]
assert summ["intermediate_size"] == [96, 64] and summ["output"] == "-"
EOF2
  st-cat -m "$MODELS/qwen3-tiny" -o - | width-prune -q -m - -o "$T/s.safetensors" --head-percent 50 --importance pon > "$T/s.jsonl"
  width-prune -q -m "$MODELS/qwen3-tiny" -o "$T/f.safetensors" --heads-keep 2 --importance pon > "$T/f.jsonl"
  cmp "$T/s.safetensors" "$T/f.safetensors"
  # --mlp-percent 25 of 172 removes 43
  width-prune -q -m "$MODELS/stories260K" -o "$T/p" --mlp-percent 25 --importance maw > /dev/null
  [ "$(cfg "$T/p" intermediate_size)" = 129 ]
  # --hidden-percent 25 of 32 channels is --hidden-keep 24, byte for byte
  width-prune -q -m "$MODELS/qwen3-tiny" -o "$T/hp.safetensors" --hidden-percent 25 $CAL > /dev/null
  width-prune -q -m "$MODELS/qwen3-tiny" -o "$T/hk.safetensors" --hidden-keep 24 $CAL > /dev/null
  cmp "$T/hp.safetensors" "$T/hk.safetensors"
}

@test "bad requests exit 2 with one line" {
  need_shared
  bad() {
    run width-prune -m "$MODELS/qwen3-tiny" -o "$T/x" "$@"
    assert_failure 2
    [ "${#lines[@]}" -eq 1 ]
    assert_output --regexp "^width-prune: "
    [ ! -e "$T/x" ]
  }
  bad --mlp-keep 65 --importance maw
  bad --heads-keep 3 --importance maw            # 3 heads over 2 KV groups
  bad --heads-keep 4 --kv-keep 1 --importance maw # 4 heads in 1 group of 2
  bad --kv-keep 3 --importance maw
  bad --hidden-keep 33 $CAL
  bad --hidden-keep 16 --importance maw           # channels need activations
  bad --mlp-keep 32                               # activation (default) needs --data
  bad --mlp-keep 32 --importance maw --data x.txt
  bad --importance magic --mlp-keep 3
  bad --importance maw                            # nothing to prune
  bad --mlp-keep 3 --mlp-percent 10 --importance maw
  bad --hidden-keep 20 --hidden-percent 10 $CAL
  bad --hidden-percent 100 $CAL
  bad --hidden-percent 10 --importance maw
}

@test "sanitizers: activation and streaming paths, GQA and channels, errors" {
  need_shared; need_san width-prune
  run "$SANBIN/width-prune" -q -m "$MODELS/qwen3-tiny" -o "$T/a" --mlp-keep 40 --heads-keep 2 --kv-keep 1 --hidden-keep 24 $CAL
  assert_success
  echo "$output" > "$T/a.jsonl"
  run $REF check-slice "$MODELS/qwen3-tiny" "$T/a" "$T/a.jsonl"
  assert_output ok
  run "$SANBIN/width-prune" -q -m "$MODELS/gemma3-tiny" -o "$T/g.safetensors" --mlp-keep 30 --heads-keep 1 --importance vow
  assert_success
  echo "$output" > "$T/g.jsonl"
  run $REF check-slice "$MODELS/gemma3-tiny" "$T/g.safetensors" "$T/g.jsonl"
  assert_output ok
  run "$SANBIN/width-prune" -m "$MODELS/stories260K" -o "$T/x" --mlp-keep 200 --importance maw
  [ "$status" -eq 2 ]
  printf 'not a model' > "$T/bad.safetensors"
  run "$SANBIN/width-prune" -m "$T/bad.safetensors" -o "$T/x" --mlp-keep 2 --importance maw
  [ "$status" -eq 1 ]
}

@test "--help on stdout; the man page documents every option --help lists" {
  run width-prune --help
  assert_success
  assert_output --partial "usage: width-prune"
  for o in $(width-prune --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
    grep -q -- "$(echo "$o" | sed 's/-/\\\\-/g')" "$ROOT/man/width-prune.1" || { echo "man page lacks $o"; return 1; }
  done
}
