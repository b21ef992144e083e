#!/usr/bin/env bats
# One vocabulary of flags: the harness's spellings on lm-eval, context-length aliases, --data.
load helpers

untimed() { python3 -c "
import json, sys
for l in sys.stdin:
    o = json.loads(l)
    print(json.dumps({k: v for k, v in o.items() if not (k in ('seconds',) or k.endswith('_per_s') or k.startswith('peak_rss') or k.startswith('act_'))}, sort_keys=True))
"; }

@test "lm-eval takes lm-evaluation-harness's command line: --model hf --model_args pretrained=..., --num_fewshot, --output_path, --batch_size, --tasks list" {
  need_shared
  T=$(scratch)
  E="$SHARED/data/eval"
  lm-eval -q -t 1 -m "$MODELS/stories260K" --data-dir "$E" --tasks mmlu_anatomy,mmlu_virology --num-fewshot 1 --limit 3 -o "$T/a.json" | untimed > "$T/a"
  lm-eval -q -t 1 --model hf --model_args "pretrained=$MODELS/stories260K,dtype=bfloat16,trust_remote_code=True" \
      --data-dir "$E" --tasks mmlu_anatomy,mmlu_virology --num_fewshot 1 --limit 3 --batch_size auto --output_path "$T/b.json" | untimed > "$T/b"
  cmp "$T/a" "$T/b"
  python3 -c "
import json
a, b = json.load(open('$T/a.json')), json.load(open('$T/b.json'))
assert a['results'] == b['results']
"
  run lm-eval --tasks list
  assert_success
  assert_line hellaswag
  assert_line mmlu_anatomy
  run lm-eval --model_args pretrained
  [ "$status" -eq 2 ]; assert_output --partial "key=value"
  run lm-eval --model_args "pretrained=x,dtype=int3" --tasks copa
  [ "$status" -eq 2 ]; assert_output --partial "dtype=int3"
  run lm-eval -m x --tasks copa --batch_size lots
  [ "$status" -eq 2 ]
}

@test "lm-eval --merge of a single shard is refused (exit 2, one line); with --compare one file is fine" {
  need_shared
  T=$(scratch)
  lm-eval -q -t 1 -m "$MODELS/stories260K" --data-dir "$SHARED/data/eval" --tasks copa --limit 2 -o "$T/r.json" > /dev/null
  run lm-eval --merge "$T/r.json"
  [ "$status" -eq 2 ]
  assert_output --partial "two or more shards"
  [ "${#lines[@]}" -eq 1 ]
  run lm-eval -q --merge "$T/r.json" --compare "$T/r.json"
  assert_success
}

@test "lm-eval: the table goes to stdout on a terminal, to stderr otherwise" {
  need_shared
  command -v script >/dev/null || skip "script(1) absent"
  T=$(scratch)
  lm-eval -t 1 -m "$MODELS/stories260K" --data-dir "$SHARED/data/eval" --tasks copa --limit 2 > "$T/out" 2> "$T/err"
  ! grep -q "|Tasks" "$T/out"
  grep -q "|Tasks" "$T/err"
  script -qec "lm-eval -t 1 -m '$MODELS/stories260K' --data-dir '$SHARED/data/eval' --tasks copa --limit 2 2>/dev/null" "$T/tty" > /dev/null
  grep -q "|Tasks" "$T/tty"
}
