#!/usr/bin/env bats
# wmask: exact sparsity for every scope and N:M, the zeroed weights are exactly the lowest-scored
# (tests/wmask_ref.py recomputes every score from the files by hand), dtypes, pipes, bad input.
load helpers

REF="python3 $BATS_TEST_DIRNAME/wmask_ref.py"

setup() {
  need_shared
  ST=$MODELS/stories260K
  T=$(scratch)
}
teardown() { if [ -n "${T:-}" ]; then rm -rf "$T"; fi; }

# run wmask into $T/out.safetensors with the report in $T/rep.jsonl, then check it
prune_check() { # model, then wmask options
  local m=$1; shift
  rm -f "$T/out.safetensors" "$T/acts.safetensors"   # the output guard refuses to replace them without -f
  run wmask -q -m "$m" -o "$T/out.safetensors" "$@"
  [ "$status" -eq 0 ] || { echo "$output"; return 1; }
  printf '%s\n' "$output" > "$T/rep.jsonl"
}

@test "wmask --help lists every option; --version" {
  run wmask --help
  [ "$status" -eq 0 ]
  for o in --model --output --sparsity --method --scope --nm --include --exclude --data \
           --samples --ctx --batch --one-shot --dump-acts --max-shard-size --zstd --threads \
           --seed --quiet --progress --help --version; do
    [[ "$output" == *"$o"* ]] || { echo "missing $o"; return 1; }
  done
  run wmask --version
  [ "$status" -eq 0 ]
  [[ "$output" == wmask* ]]
}

@test "wmask: usage errors exit 2 with one line naming the problem" {
  m=$ST
  for args in "-o x" "-m $m" "-m $m -o x --sparsity 1.5" "-m $m -o x --nm 3:2" \
              "-m $m -o x --nm 2-4" "-m $m -o x --method foo" "-m $m -o x --scope col" \
              "-m $m -o x --include (" "-m $m -o x --method wanda" \
              "-m $m -o x --nm 2:4 --sparsity 0.3" "-m $m -o x --nm 2:4 --scope tensor" \
              "-m $m -o x --method wanda --data f --scope global" "-m $m -o x --one-shot" \
              "-m $m -o x extra"; do
    run wmask $args
    [ "$status" -eq 2 ] || { echo "args: $args -> $status: $output"; return 1; }
    [ "${#lines[@]}" -eq 1 ] && [[ "${lines[0]}" == wmask:* ]] || { echo "$args: $output"; return 1; }
  done
  [ ! -e x ]
}

@test "wmask: 50% per row on stories260K (F32): every row exactly half, the lowest |W|" {
  prune_check "$ST" --sparsity 0.5
  run $REF check "$ST" "$T/out.safetensors" "$T/rep.jsonl" --sparsity 0.5 --scope row
  echo "$output"; [ "$status" -eq 0 ]
  # stories' rows are 64 or 172 long: every row gets exactly half (no preexisting zeros)
  [[ "$output" =~ groups=([0-9]+)\ exact=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" = 3000 ] && [ "${BASH_REMATCH[2]}" = 3000 ]
  # the summary's sparsity over the selected tensors is exactly 0.5 here
  run pyjson "import json;s=[json.loads(l) for l in open('$T/rep.jsonl')][-1];print(s['sparsity'],s['tensors'])"
  [ "$output" = "0.5 35" ]
}

@test "wmask: per row on BF16 and F16 copies, odd sparsity 0.37" {
  for dt in BF16 F16; do
    $REF convert "$ST/model.safetensors" "$T/in.safetensors" $dt
    prune_check "$T/in.safetensors" --sparsity 0.37
    run $REF check "$T/in.safetensors" "$T/out.safetensors" "$T/rep.jsonl" --sparsity 0.37
    echo "$dt $output"; [ "$status" -eq 0 ]   # (the check also fails on any dtype change)
  done
}

@test "wmask: per-tensor and global scopes on qwen3-tiny (BF16) are exact" {
  for scope in tensor global; do
    prune_check "$MODELS/qwen3-tiny" --sparsity 0.3 --scope $scope
    run $REF check "$MODELS/qwen3-tiny" "$T/out.safetensors" "$T/rep.jsonl" --sparsity 0.3 --scope $scope
    echo "$scope $output"; [ "$status" -eq 0 ]
  done
}

@test "wmask: global scope on stories260K = one threshold over all targets, exact count" {
  prune_check "$ST" --sparsity 0.61 --scope global
  run $REF check "$ST" "$T/out.safetensors" "$T/rep.jsonl" --sparsity 0.61 --scope global
  echo "$output"; [ "$status" -eq 0 ]
  [[ "$output" == *"groups=1 exact=1"* ]]
  # per-tensor sparsities differ under a global threshold
  run pyjson "import json;print(len({round(json.loads(l)['sparsity'],6) for l in open('$T/rep.jsonl') if 'tensor' in l}))"
  [ "$output" -gt 5 ]
}

@test "wmask: N:M 2:4 and 1:4 — every group checked" {
  for nm in 2:4 1:4 3:4; do
    prune_check "$ST" --nm $nm
    run $REF check "$ST" "$T/out.safetensors" "$T/rep.jsonl" --nm $nm
    echo "$nm $output"; [ "$status" -eq 0 ]
  done
  # 2:3 does not divide rows of 64
  run wmask -q -m "$ST" -o "$T/bad.safetensors" --nm 2:3
  [ "$status" -eq 1 ]
  [[ "$output" == *"groups of 3"* ]]
  [ ! -e "$T/bad.safetensors" ]
}

@test "wmask: --include / --exclude select by name (embedding only when asked)" {
  prune_check "$ST" --sparsity 0.5 --include 'embed_tokens|mlp\.down_proj' --exclude 'layers\.[0-2]\.'
  run $REF check "$ST" "$T/out.safetensors" "$T/rep.jsonl" --sparsity 0.5 \
      --targets '^(?!.*layers\.[0-2]\.).*(embed_tokens|mlp\.down_proj)'
  echo "$output"; [ "$status" -eq 0 ]
  run pyjson "import json;print(sorted(json.loads(l)['tensor'] for l in open('$T/rep.jsonl') if '"prune"' in l))"
  [ "$output" = "['model.embed_tokens.weight', 'model.layers.3.mlp.down_proj.weight', 'model.layers.4.mlp.down_proj.weight']" ]
  # nothing selected is an error
  run wmask -q -m "$ST" -o "$T/none.safetensors" --include 'no_such_tensor'
  [ "$status" -eq 1 ]
  [[ "$output" == *"no tensor matches"* ]]
}

@test "wmask: already-zero weights count toward the quota" {
  # prune 30% first, then ask 50%: each row keeps its zeros and adds only the difference
  prune_check "$ST" --sparsity 0.3
  cp "$T/out.safetensors" "$T/p30.safetensors"
  prune_check "$T/p30.safetensors" --sparsity 0.5
  run $REF check "$T/p30.safetensors" "$T/out.safetensors" "$T/rep.jsonl" --sparsity 0.5
  echo "$output"; [ "$status" -eq 0 ]
  # same result as pruning 50% at once (magnitude: the zeros are the lowest anyway)
  run wmask -q -m "$ST" -o "$T/p50.safetensors" --sparsity 0.5
  cmp "$T/out.safetensors" "$T/p50.safetensors"
  # asking less than what is already zero changes nothing
  run wmask -q -m "$T/p30.safetensors" -o "$T/p10.safetensors" --sparsity 0.1
  [ "$status" -eq 0 ]
  python3 -c "
import json,sys
sys.path.insert(0,'$BATS_TEST_DIRNAME')
import wmask_ref as r
a=r.read_st('$T/p30.safetensors')[0]; b=r.read_st('$T/p10.safetensors')[0]
assert all(a[k][2]==b[k][2] for k in a), 'bytes changed'"
}

@test "wmask: pipes — stdin and stdout streams give the same bytes as files, also for global" {
  wmask -q -m "$ST" -o "$T/a.safetensors" --sparsity 0.5 --scope global >/dev/null
  wmask -q -m "$ST" -o - --sparsity 0.2 --include 'embed_tokens' > "$T/s1.safetensors"
  cat "$T/s1.safetensors" | wmask -q -m - -o - --sparsity 0.5 --scope global > "$T/s2.safetensors"
  wmask -q -m "$T/s1.safetensors" -o "$T/f2.safetensors" --sparsity 0.5 --scope global >/dev/null
  cmp "$T/s2.safetensors" "$T/f2.safetensors"
  # the stream carries the config
  run python3 -c "
import sys; sys.path.insert(0,'$BATS_TEST_DIRNAME'); import wmask_ref as r, json
m=r.read_st('$T/s2.safetensors')[1]; print(json.loads(m['config'])['hidden_size'])"
  [ "$output" = 64 ]
}

@test "wmask: folder output keeps config and tokenizer; dtype and shapes unchanged" {
  run wmask -q -m "$MODELS/llama-tiny" -o "$T/out" --sparsity 0.5
  [ "$status" -eq 0 ]
  [ -f "$T/out/tokenizer.json" ] && cmp "$T/out/tokenizer.json" "$MODELS/llama-tiny/tokenizer.json"
  python3 -c "
import json; a=json.load(open('$MODELS/llama-tiny/config.json')); b=json.load(open('$T/out/config.json'))
assert a==b, (a,b)"
  printf '%s\n' "$output" > "$T/rep.jsonl"
  run $REF check "$MODELS/llama-tiny" "$T/out" "$T/rep.jsonl" --sparsity 0.5
  echo "$output"; [ "$status" -eq 0 ]
}

@test "wmask: bad input exits 1 with one line and leaves no output" {
  head -c 300 "$ST/model.safetensors" > "$T/trunc.safetensors"
  printf 'not a model' > "$T/junk.safetensors"
  for m in "$T/trunc.safetensors" "$T/junk.safetensors" "$T/missing.safetensors"; do
    run wmask -m "$m" -o "$T/o.safetensors"
    [ "$status" -eq 1 ] || { echo "$m -> $status $output"; return 1; }
    [[ "${lines[-1]}" == wmask:* ]]
    [ ! -e "$T/o.safetensors" ]
  done
  # truncated on a pipe
  run bash -c "head -c 5000 '$ST/model.safetensors' | wmask -m - -o '$T/o.safetensors'"
  [ "$status" -eq 1 ]
  [ ! -e "$T/o.safetensors" ]
  # a selected integer tensor cannot be pruned
  python3 - "$T/int.safetensors" <<'EOF'
import json, struct, sys
h = {"layers.0.mlp.up_proj.weight": {"dtype": "I32", "shape": [2, 2], "data_offsets": [0, 16]}}
b = json.dumps(h).encode(); b += b" " * (-len(b) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(b)) + b + bytes(16))
EOF
  run wmask -m "$T/int.safetensors" -o "$T/o.safetensors"
  [ "$status" -eq 1 ]
  [[ "$output" == *"I32"* ]]
}

@test "wmask: sanitizer build on small inputs and bad input" {
  need_san wmask
  for a in "--scope tensor --sparsity 0.3" "--nm 2:4"; do
    run "$SANBIN/wmask" -q -f -m "$ST" -o "$T/o.safetensors" $a
    [ "$status" -eq 0 ] || { echo "$a: $output"; return 1; }
  done
  head -c 3000 "$ST/model.safetensors" > "$T/trunc.safetensors"
  run "$SANBIN/wmask" -m "$T/trunc.safetensors" -o "$T/x.safetensors"
  [ "$status" -eq 1 ]
  run bash -c "cat '$ST/model.safetensors' | '$SANBIN/wmask' -q -m - -o - --scope global | wc -c"
  [ "$status" -eq 0 ] && [ "$output" -gt 1000000 ]
}

# ---- wanda (needs the forward engine) ----
need_engine() {
  run wmask -q -m "$ST" -o "$T/probe.safetensors" --method wanda --data "$SHARED/data/stories/train.txt" \
      --samples 1 --ctx 8
  [[ "$output" != *"not implemented"* ]] || skip "the forward engine has not landed"
}

@test "wmask wanda: zeroed weights = lowest |W|*||X_j|| from the dumped activations (sequential)" {
  need_engine
  prune_check "$ST" --method wanda --data "$SHARED/data/stories/train.txt" --samples 4 --ctx 32 \
      --dump-acts "$T/acts.safetensors"
  run $REF check "$ST" "$T/out.safetensors" "$T/rep.jsonl" --sparsity 0.5 --acts "$T/acts.safetensors"
  echo "$output"; [ "$status" -eq 0 ]
  cp "$T/acts.safetensors" "$T/seq-acts.safetensors"; cp "$T/out.safetensors" "$T/seq.safetensors"
  # sequential: layer l's q/k/v input comes from the pruned layers before it = what a one-shot
  # pass over the OUTPUT model sees; for layers >= 1 it differs from the dense model's
  prune_check "$T/seq.safetensors" --method wanda --data "$SHARED/data/stories/train.txt" \
      --samples 4 --ctx 32 --one-shot --dump-acts "$T/os-pruned.safetensors"
  prune_check "$ST" --method wanda --data "$SHARED/data/stories/train.txt" \
      --samples 4 --ctx 32 --one-shot --dump-acts "$T/os-dense.safetensors"
  run $REF check "$ST" "$T/out.safetensors" "$T/rep.jsonl" --sparsity 0.5 --acts "$T/os-dense.safetensors"
  echo "$output"; [ "$status" -eq 0 ]
  python3 - "$T" "$BATS_TEST_DIRNAME" <<'EOF'
import sys; sys.path.insert(0, sys.argv[2]); import wmask_ref as r
T = sys.argv[1]
seq, osp, osd = (r.read_st(T + f)[0] for f in ("/seq-acts.safetensors", "/os-pruned.safetensors", "/os-dense.safetensors"))
for l in range(5):
    a, b, c = (r.decode("F32", x["layers.%d.q_proj" % l][2]) for x in (seq, osp, osd))
    d = max(abs(x - y) for x, y in zip(a, b))
    assert d < 1e-4, ("layer", l, "sequential vs one-shot on the pruned model", d)
    e = max(abs(x - y) for x, y in zip(a, c))
    assert (e == 0) == (l == 0), ("layer", l, "sequential vs dense", e)
print("ok")
EOF
}

@test "wmask wanda: 2:4 and per-tensor with norms, exact" {
  need_engine
  prune_check "$ST" --method wanda --nm 2:4 --data "$SHARED/data/stories/train.txt" --samples 2 \
      --ctx 16 --dump-acts "$T/acts.safetensors"
  run $REF check "$ST" "$T/out.safetensors" "$T/rep.jsonl" --nm 2:4 --acts "$T/acts.safetensors"
  echo "$output"; [ "$status" -eq 0 ]
  prune_check "$ST" --method wanda --scope tensor --sparsity 0.4 --data "$SHARED/data/stories/train.txt" \
      --samples 2 --ctx 16 --dump-acts "$T/acts.safetensors"
  run $REF check "$ST" "$T/out.safetensors" "$T/rep.jsonl" --scope tensor --sparsity 0.4 --acts "$T/acts.safetensors"
  echo "$output"; [ "$status" -eq 0 ]
  prune_check "$ST" --method wanda --scope global --one-shot --data "$SHARED/data/stories/train.txt" \
      --samples 2 --ctx 16 --dump-acts "$T/acts.safetensors"
  run $REF check "$ST" "$T/out.safetensors" "$T/rep.jsonl" --scope global --acts "$T/acts.safetensors"
  echo "$output"; [ "$status" -eq 0 ]
}

@test "wmask wanda: empty calibration file and non-linear targets are errors" {
  need_engine
  : > "$T/empty.txt"
  run wmask -m "$ST" -o "$T/o.safetensors" --method wanda --data "$T/empty.txt"
  [ "$status" -eq 1 ]
  [ ! -e "$T/o.safetensors" ]
  run wmask -m "$ST" -o "$T/o.safetensors" --method wanda --data "$SHARED/data/stories/train.txt" \
      --include embed_tokens
  [ "$status" -eq 2 ]
  [[ "$output" == *"not a linear projection"* ]]
}

# ---- sparsegpt and --owl ----
# a python3 with numpy (the independent SparseGPT reference needs it), or skip
need_numpy() {
  NP=""
  for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then NP=$p; break; fi
  done
  [ -n "$NP" ] || skip "numpy is not installed (apt-get install python3-numpy)"
  SREF="$NP $BATS_TEST_DIRNAME/wmask_sgpt_ref.py"
}
CAL() { echo "--data $SHARED/data/stories/train.txt --samples 8 --ctx 64"; }

@test "wmask sparsegpt/--owl: --help lists the options; usage errors exit 2" {
  run wmask --help
  for o in sparsegpt --damp --blocksize --owl --owl-lambda --owl-m; do
    [[ "$output" == *"$o"* ]] || { echo "missing $o"; return 1; }
  done
  m=$ST
  for args in "--method sparsegpt" "--method sparsegpt --data f --scope global" \
              "--method sparsegpt --data f --one-shot" "--owl" "--owl --data f --scope global" \
              "--method sparsegpt --data f --damp -1" "--method sparsegpt --data f --blocksize 0" \
              "--owl --data f --owl-lambda 0.9"; do
    run wmask -m $m -o "$T/x" $args
    [ "$status" -eq 2 ] || { echo "args: $args -> $status: $output"; return 1; }
    [ "${#lines[@]}" -eq 1 ] && [[ "${lines[0]}" == wmask:* ]] || { echo "$args: $output"; return 1; }
  done
  # --owl reads the model twice: not from a pipe
  run bash -c "cat '$ST/model.safetensors' | wmask -q -m - -o '$T/o.safetensors' --owl $(CAL)"
  [ "$status" -eq 2 ] && [[ "$output" == *"stdin"* ]]
  [ ! -e "$T/x" ] && [ ! -e "$T/o.safetensors" ]
}

@test "wmask sparsegpt: equals an independent numpy SparseGPT (row, tensor, 2:4, blocks) on stories260K" {
  need_engine; need_numpy
  for a in "--sparsity 0.5" "--scope tensor --sparsity 0.37 --blocksize 50" "--nm 2:4 --blocksize 20" \
           "--sparsity 0.7 --blocksize 32 --damp 0.1"; do
    prune_check "$ST" --method sparsegpt $(CAL) --dump-acts "$T/acts.safetensors" $a
    run $SREF check "$ST" "$T/out.safetensors" "$T/acts.safetensors" "$T/rep.jsonl" $a
    echo "$a: $output"; [ "$status" -eq 0 ]
  done
  # the check can fail: another dampening gives other weights
  run $SREF check "$ST" "$T/out.safetensors" "$T/acts.safetensors" "$T/rep.jsonl" --sparsity 0.7 --blocksize 32
  [ "$status" -eq 1 ] && [[ "$output" == FAIL* ]]
  # the summary: method, damp, peak RSS
  run pyjson "import json;s=[json.loads(l) for l in open('$T/rep.jsonl')][-1];print(s['method'],s['damp'],s['blocksize'],s['peak_rss_mb']>0)"
  [ "$output" = "sparsegpt 0.1 32 True" ]
}

@test "wmask sparsegpt: F16 copy keeps exact counts (no kept weight rounds to zero); prose13m BF16 layers match numpy" {
  need_engine; need_numpy
  mkdir "$T/f16"
  cp "$ST"/*.json "$T/f16/"
  python3 $BATS_TEST_DIRNAME/wmask_ref.py convert "$ST/model.safetensors" "$T/f16/model.safetensors" F16
  prune_check "$T/f16" --method sparsegpt $(CAL) --dump-acts "$T/acts.safetensors" --sparsity 0.6
  run $SREF check "$T/f16" "$T/out.safetensors" "$T/acts.safetensors" "$T/rep.jsonl" --sparsity 0.6
  echo "$output"; [ "$status" -eq 0 ]
  # a real bf16 model: layers 0 and 1 (layer 1's inputs come from the pruned layer 0)
  P=$MODELS/prose13m
  prune_check "$P" --method sparsegpt --data "$SHARED/data/prose/train.txt" --samples 2 --ctx 128 \
      --include 'layers\.[01]\.(self_attn\.(q|o)_proj|mlp\.down_proj)\.weight' --dump-acts "$T/pacts.safetensors"
  run $SREF check "$P" "$T/out.safetensors" "$T/pacts.safetensors" "$T/rep.jsonl"
  echo "$output"; [ "$status" -eq 0 ]
  [[ "$output" == "ok tensors=6 "* ]] || { echo "$output"; return 1; }
}

@test "wmask --owl: per-layer sparsities in the JSON, weighted mean exact, budgets to the row (3 methods)" {
  need_engine; need_numpy
  for m in magnitude wanda sparsegpt; do
    prune_check "$ST" --method $m $(CAL) --owl --sparsity 0.7
    run $SREF owl "$T/rep.jsonl" 0.7 "$ST" "$T/out.safetensors" $m
    echo "$m: $output"; [ "$status" -eq 0 ]
    [[ "$output" == "ok layers=5 mean=7/10 spread=0.1600" ]]
  done
  # per-tensor scope and an odd target: still exactly floor(S*P) zeros
  prune_check "$ST" --method wanda $(CAL) --owl --sparsity 0.33 --scope tensor --owl-lambda 0.05
  run $SREF owl "$T/rep.jsonl" 0.33
  echo "$output"; [ "$status" -eq 0 ]
  [[ "$output" == *"spread=0.1000" ]]
  # N:M: whole N per layer, mean N exact (equal layers); λ·M < 0.5 keeps every layer at 2:4
  prune_check "$ST" --method sparsegpt $(CAL) --owl --nm 2:4 --owl-lambda 0.25
  run pyjson "import json;print(' '.join(l['nm'] for l in map(json.loads,open('$T/rep.jsonl')) if l.get('action')=='owl'))"
  [ "$output" = "1:4 1:4 2:4 3:4 3:4" ]
  run pyjson "import json;s=[json.loads(l) for l in open('$T/rep.jsonl')][-1];print(s['sparsity'])"
  [ "$output" = "0.5" ]
  prune_check "$ST" --method wanda $(CAL) --owl --nm 2:4
  run pyjson "import json;print(set(l['nm'] for l in map(json.loads,open('$T/rep.jsonl')) if l.get('action')=='owl'))"
  [ "$output" = "{'2:4'}" ]
}

@test "wmask sparsegpt and --owl: sanitizer build" {
  need_san wmask
  need_engine
  run "$SANBIN/wmask" -q -m "$ST" -o "$T/o1.safetensors" --method sparsegpt $(CAL) --owl --blocksize 48
  [ "$status" -eq 0 ] || { echo "$output"; return 1; }
  run "$SANBIN/wmask" -q -m "$ST" -o "$T/o2.safetensors" --method sparsegpt $(CAL) --nm 2:4 --scope row
  [ "$status" -eq 0 ] || { echo "$output"; return 1; }
  run "$SANBIN/wmask" -q -m "$ST" -o "$T/o3.safetensors" --method sparsegpt $(CAL) --scope tensor --sparsity 0.4
  [ "$status" -eq 0 ] || { echo "$output"; return 1; }
  run "$SANBIN/wmask" -q -m "$ST" -o "$T/o4.safetensors" $(CAL) --owl
  [ "$status" -eq 0 ] || { echo "$output"; return 1; }
}
