#!/usr/bin/env bats
# lm-tok: exact Hugging Face tokenization (goldens from transformers), CLI contract, bad input.
load helpers

setup() { need_shared; }

@test "goldens: ids, ids_no_special, tokens, decoded of every model equal transformers'" {
  run python3 "$ROOT/tests/tok/golden_check.py" "$BIN/lm-tok" "$SHARED"
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "an independent Python tokenizer (tests/tok/reference.py) agrees on edge cases and WikiText lines" {
  python3 -c "import regex" 2>/dev/null || skip "python3 regex module absent"
  tmp=$(scratch)
  python3 "$ROOT/tests/tok/edge_texts.py" > "$tmp/edge.jsonl"
  python3 -c "
import json
ls = [l for l in open('$SHARED/data/wikitext-2-raw/wiki.test.raw', encoding='utf-8') if l.strip() and len(l) < 250]
for l in ls[::len(ls) // 40][:40]: print(json.dumps({'text': l}))" >> "$tmp/edge.jsonl"
  run python3 "$ROOT/tests/tok/reference.py" "$BIN/lm-tok" "$SHARED" "$tmp/edge.jsonl"
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "whole input is one text: {ids, tokens}" {
  run bash -c "printf 'Hello world' | lm-tok -m '$MODELS/qwen3-tiny'"
  [ "$status" -eq 0 ]
  [ "$output" = '{"ids":[9707,1879],"tokens":["Hello","Ġworld"]}' ]
}

@test "gemma adds BOS, --no-special does not; -m accepts tokenizer.json" {
  # expected ids straight from the vocab: "Hello" and "▁world" are single tokens
  want=$(python3 -c "
import json; v = json.load(open('$MODELS/gemma3-tiny/tokenizer.json'))['model']['vocab']
print(v['Hello'], v['\u2581world'])")
  set -- $want
  run bash -c "printf 'Hello world' | lm-tok -m '$MODELS/gemma3-tiny' --ids-only"
  [ "$output" = "{\"ids\":[2,$1,$2]}" ]
  run bash -c "printf 'Hello world' | lm-tok -m '$MODELS/gemma3-tiny/tokenizer.json' --ids-only --no-special"
  [ "$output" = "{\"ids\":[$1,$2]}" ]
}

@test "--jsonl keeps input order across threads; --count" {
  tmp=$(scratch)
  python3 -c "
import json
for i in range(3000): print(json.dumps({'text': 'line %d: ' % i + 'abc ' * (i % 17)}))" > "$tmp/in.jsonl"
  run bash -c "lm-tok -m '$MODELS/llama-tiny' --jsonl -t 2 --ids-only '$tmp/in.jsonl' > '$tmp/t2'; lm-tok -m '$MODELS/llama-tiny' --jsonl -t 1 --ids-only '$tmp/in.jsonl' > '$tmp/t1'"
  [ "$status" -eq 0 ]
  cmp "$tmp/t1" "$tmp/t2"
  [ "$(wc -l < "$tmp/t2")" -eq 3000 ]
  run bash -c "echo '{\"text\":\"Hello world\"}' | lm-tok -m '$MODELS/llama-tiny' --jsonl --count"
  [ "$output" = '{"count":3}' ]
}

@test "split_special_tokens in tokenizer_config: special tokens are plain text, other added tokens still match" {
  tmp=$(scratch)
  cp "$MODELS/qwen3-tiny/tokenizer.json" "$tmp/"
  python3 -c "
import json; c = json.load(open('$MODELS/qwen3-tiny/tokenizer_config.json')); c['split_special_tokens'] = True
json.dump(c, open('$tmp/tokenizer_config.json', 'w'))"
  ids=$(python3 -c "
import json; t = json.load(open('$MODELS/qwen3-tiny/tokenizer.json'))
a = {x['content']: x['id'] for x in t['added_tokens']}; print(a['<|im_end|>'], a['<think>'])")
  set -- $ids
  run bash -c "printf 'a<|im_end|>b<think>' | lm-tok -m '$tmp' --ids-only"
  [[ "$output" != *"$1"* ]]
  [[ "$output" == *"$2]}" ]]
  run bash -c "printf 'a<|im_end|>b<think>' | lm-tok -m '$MODELS/qwen3-tiny' --ids-only"
  [[ "$output" == *",$1,"* ]]
}

@test "--decode round trip, --skip-special" {
  ids=$(printf 'Hello world' | lm-tok -m "$MODELS/gemma3-tiny" --ids-only)
  run bash -c "echo '$ids' | lm-tok -m '$MODELS/gemma3-tiny' --decode"
  [ "$output" = '{"text":"<bos>Hello world"}' ]
  run bash -c "echo '$ids' | lm-tok -m '$MODELS/gemma3-tiny' --decode --skip-special"
  [ "$output" = '{"text":"Hello world"}' ]
}

@test "invalid UTF-8: exit 1 naming the byte offset; --lossy replaces like Python errors=replace" {
  run bash -c "printf 'ab\xffcd' | lm-tok -m '$MODELS/qwen3-tiny'"
  [ "$status" -eq 1 ]
  [[ "$output" == *"byte offset 2"* ]]
  run bash -c "printf 'ab\xffcd\xe2\x82' | lm-tok -m '$MODELS/qwen3-tiny' --lossy --no-special | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)[\"ids\"]))'"
  [ "$status" -eq 0 ]
  want=$(printf 'ab\xffcd\xe2\x82' | python3 -c "import sys; t=sys.stdin.buffer.read().decode('utf-8','replace'); print(t.encode('utf-8').hex())")
  got=$(printf 'ab\xffcd\xe2\x82' | lm-tok -m "$MODELS/qwen3-tiny" --lossy --no-special --ids-only | python3 -c "import sys,json; ids=json.load(sys.stdin)['ids']; print(ids)")
  back=$(echo "{\"ids\":$got}" | lm-tok -m "$MODELS/qwen3-tiny" --decode | python3 -c "import sys,json; print(json.load(sys.stdin)['text'].encode('utf-8').hex())")
  [ "$back" = "$want" ]
}

@test "unsupported tokenizer kinds fail at load, naming the component" {
  tmp=$(scratch)
  python3 -c "
import json
t = json.load(open('$MODELS/stories260K/tokenizer.json'))
t['normalizer'] = {'type': 'Precompiled', 'precompiled_charsmap': ''}
json.dump(t, open('$tmp/a.json', 'w'))
t = json.load(open('$MODELS/stories260K/tokenizer.json'))
t['model']['type'] = 'Unigram'
json.dump(t, open('$tmp/b.json', 'w'))"
  run bash -c "echo hi | lm-tok -m '$tmp/a.json'"
  [ "$status" -eq 1 ]
  [[ "$output" == *"unsupported normalizer 'Precompiled'"* ]]
  run bash -c "echo hi | lm-tok -m '$tmp/b.json'"
  [ "$status" -eq 1 ]
  [[ "$output" == *"unsupported model 'Unigram'"* ]]
}

@test "bad input files and usage errors" {
  tmp=$(scratch)
  printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}' > "$tmp/c.json"
  run lm-tok -m "$tmp/c.json" /dev/null
  [ "$status" -eq 1 ]
  [[ "$output" == *"not in the vocabulary"* ]]
  printf '{"model": ' > "$tmp/d.json"
  run lm-tok -m "$tmp/d.json" /dev/null
  [ "$status" -eq 1 ]
  run lm-tok -m "$tmp/nope" /dev/null
  [ "$status" -eq 1 ]
  run lm-tok /dev/null
  [ "$status" -eq 2 ]
  run bash -c "echo 'not json' | lm-tok -m '$MODELS/stories260K' --jsonl"
  [ "$status" -eq 1 ]
  [[ "$output" == *"line 1"* ]]
  run bash -c "echo '{\"ids\":[999999]}' | lm-tok -m '$MODELS/stories260K' --decode"
  [ "$status" -eq 1 ]
  run lm-tok --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"--jsonl"* ]]
}

@test "C unit tests of the tokenizer pass" {
  [ -x "$ROOT/build/test_tokenizer" ] || skip "build/test_tokenizer not built"
  run "$ROOT/build/test_tokenizer" "$SHARED"
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "sanitizers: lm-tok on goldens, lossy, decode and bad input" {
  need_san lm-tok
  run python3 "$ROOT/tests/tok/golden_check.py" "$SANBIN/lm-tok" "$SHARED"
  echo "$output"
  [ "$status" -eq 0 ]
  run bash -c "printf 'a\xff\xfe <s> \xe2\x96\x81x' | '$SANBIN/lm-tok' -m '$MODELS/llama-tiny' --lossy"
  [ "$status" -eq 0 ]
  run bash -c "printf '\xc3' | '$SANBIN/lm-tok' -m '$MODELS/stories260K'"
  [ "$status" -eq 1 ]
  run bash -c "echo '{\"ids\":[1,5,300,2,0]}' | '$SANBIN/lm-tok' -m '$MODELS/stories260K' --decode"
  [ "$status" -eq 0 ]
}
