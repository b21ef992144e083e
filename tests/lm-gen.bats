#!/usr/bin/env bats
# lm-gen: generation with a KV cache, HF-style sampling, streaming.
load helpers

setup() {
  [ -x "$BIN/lm-gen" ] || skip "lm-gen not built"
  S=$MODELS/stories260K
}

@test "lm-gen: --help, --version, usage errors" {
  run lm-gen --help
  assert_success
  for o in --max-tokens --temperature --top-k --top-p --repetition-penalty --seed --jsonl; do
    [[ "$output" == *"$o"* ]] || { echo "missing $o"; false; }
  done
  run lm-gen --prompt hi
  assert_failure 2
  need_shared
  run lm-gen -m "$S" --top-p 0
  assert_failure 2
  run lm-gen -m "$S" --temperature -1
  assert_failure 2
  run lm-gen -m /nonexistent/model
  assert_failure 1
  [[ "$output" == "lm-gen: "* ]]
}

@test "lm-gen: greedy from BOS on stories260K equals the golden greedy_from_bos" {
  need_shared
  run lm-gen -m "$S" --max-tokens 60 --jsonl
  assert_success
  echo "$output" | python3 -c "
import json, sys
o = json.loads(sys.stdin.readline())
g = json.load(open('$S/golden.json'))['greedy_from_bos']
assert o['ids'] == g, (o['ids'], g)
assert o['prompt_tokens'] == 1 and o['generated_tokens'] == 60 and o['stop'] == 'length', o"
}

@test "lm-gen: streamed text equals the JSON line's text; the golden story starts it" {
  need_shared
  lm-gen -m "$S" --max-tokens 60 -q > text.out
  lm-gen -m "$S" --max-tokens 60 --jsonl > line.out
  python3 -c "
import json
t = open('text.out').read(); o = json.loads(open('line.out').read())
assert t == o['text'] + '\n', (t, o['text'])
assert t.startswith('Once upon a time, there was a little girl named Lily'), t"
  rm -f text.out line.out
}

@test "lm-gen: a prompt continues; --echo prints it first; --max-tokens bounds the count" {
  need_shared
  run lm-gen -m "$S" --prompt "Once upon a time" --max-tokens 12 --jsonl
  assert_success
  echo "$output" | python3 -c "
import json, sys
o = json.loads(sys.stdin.readline())
assert o['prompt'] == 'Once upon a time' and o['generated_tokens'] == 12 and len(o['ids']) == 12, o"
  run lm-gen -m "$S" --prompt "Once upon a time" --max-tokens 5 --echo -q
  assert_success
  [[ "$output" == "Once upon a time"* ]]
  run lm-gen -m "$S" --max-tokens 0 -q
  assert_success
  assert_output ""
}

@test "lm-gen: the same seed gives the same sample; top-k 1 is greedy; other seeds differ" {
  need_shared
  a=$(lm-gen -m "$S" --max-tokens 40 --temperature 1 --seed 5 -q)
  b=$(lm-gen -m "$S" --max-tokens 40 --temperature 1 --seed 5 -q)
  c=$(lm-gen -m "$S" --max-tokens 40 --temperature 1 --seed 6 -q)
  [ "$a" = "$b" ]
  [ "$a" != "$c" ]
  g=$(lm-gen -m "$S" --max-tokens 40 -q)
  k=$(lm-gen -m "$S" --max-tokens 40 --temperature 1.3 --top-k 1 --seed 9 -q)
  p=$(lm-gen -m "$S" --max-tokens 40 --temperature 0.8 --top-p 0.000001 --seed 9 -q)
  [ "$g" = "$k" ]
  [ "$g" = "$p" ]
}

@test "lm-gen: repetition penalty changes greedy output toward fewer repeats" {
  need_shared
  lm-gen -m "$S" --max-tokens 60 --jsonl > plain.jsonl
  lm-gen -m "$S" --max-tokens 60 --jsonl --repetition-penalty 2.0 > pen.jsonl
  python3 -c "
import json
a = json.loads(open('plain.jsonl').read())['ids']; b = json.loads(open('pen.jsonl').read())['ids']
rep = lambda x: len(x) - len(set(x))
assert a != b and rep(b) < rep(a), (rep(a), rep(b))"
  rm -f plain.jsonl pen.jsonl
}

@test "lm-gen: --jsonl FILE generates one line per prompt" {
  need_shared
  T=$(scratch)
  printf '{"prompt": "Lily saw"}\n\n{"text": "Tom had a"}\n' > "$T/p.jsonl"
  run lm-gen -m "$S" --max-tokens 5 --jsonl "$T/p.jsonl"
  assert_success
  [ "$(echo "$output" | wc -l)" -eq 2 ]
  printf 'not json\n' > "$T/bad.jsonl"
  run lm-gen -m "$S" --jsonl "$T/bad.jsonl"
  assert_failure 1
  assert_output --partial "bad.jsonl:1:"
}

@test "lm-gen: sanitizers on generation and on bad input" {
  need_shared
  need_san lm-gen
  run "$SANBIN/lm-gen" -m "$S" --prompt "Once" --max-tokens 8 --temperature 0.9 --top-k 20 --top-p 0.9 --repetition-penalty 1.3 --seed 1 -q
  assert_success
  T=$(scratch)
  mkdir -p "$T/m" && cp "$S/config.json" "$S/tokenizer.json" "$T/m/" && head -c 100 "$S/model.safetensors" > "$T/m/model.safetensors"
  run "$SANBIN/lm-gen" -m "$T/m" --max-tokens 2
  assert_failure 1
}
