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
  lm-eval -q -t 1 -m "$MODELS/stories260K" --data-dir "$E" --tasks mmlu_anatomy,mmlu_virology --num-fewshot 1 --limit 3 -o "$T/a.json" --log-samples "$T/a.samples" | untimed > "$T/a"
  lm-eval -q -t 1 --model hf --model_args "pretrained=$MODELS/stories260K,dtype=bfloat16,trust_remote_code=True" \
      --data-dir "$E" --tasks mmlu_anatomy,mmlu_virology --num_fewshot 1 --limit 3 --batch_size auto --log_samples \
      --output_path "$T/b.json" | untimed > "$T/b"
  cmp "$T/a" "$T/b"
  # --log_samples is the harness's switch: the samples go beside --output_path
  cmp "$T/a.samples" "$T/b_samples.jsonl"
  run lm-eval -m "$MODELS/stories260K" --data-dir "$E" --tasks copa --log_samples
  [ "$status" -eq 2 ]; assert_output --partial "needs --output_path"
  # provenance names the weights of --model_args, not the backend's name "hf"
  LOP_PROVENANCE=1 lm-eval -q -t 1 --model hf --model_args "pretrained=$MODELS/stories260K" --data-dir "$E" \
      --tasks mmlu_anatomy --limit 1 | head -1 > "$T/prov"
  grep -q '"role":"model","given":"'"$MODELS/stories260K"'"' "$T/prov"
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

@test "one vocabulary: --data everywhere, --ctx/--seq-len/--max-length aliases, --zstd[=L], layer-drop -n, peak_rss_bytes" {
  need_shared
  T=$(scratch)
  M="$MODELS/stories260K"
  head -6 "$SHARED/data/stories/test.txt" > "$T/t.txt"
  a=$(ppl -q -m "$M" --ctx 128 "$T/t.txt" | untimed)
  b=$(ppl -q -m "$M" --seq-len 128 --data "$T/t.txt" | untimed)
  c=$(ppl -q -m "$M" --max-length 128 --data "$T/t.txt" | untimed)
  [ "$a" = "$b" ] && [ "$a" = "$c" ]
  ppl -q -m "$M" --data "$T/t.txt" | python3 -c "import json,sys; o=json.loads(sys.stdin.readline()); assert o['peak_rss_bytes'] > 1 << 20, o"
  run ppl -q -m "$M" --data "$T/t.txt" "$T/t.txt"
  [ "$status" -eq 2 ]
  [ "$(lm-tok -m "$M" --data "$T/t.txt")" = "$(lm-tok -m "$M" "$T/t.txt")" ]
  python3 "$BATS_TEST_DIRNAME/data/heal_prep.py" tokenize "$M/tokenizer.json" "$SHARED/data/stories/test.txt" > "$T/d.jsonl"
  LOP_PROVENANCE=1 heal-sft -q -t 1 -m "$M" --data "$T/d.jsonl" --steps 1 --ctx 256 -o "$T/h" > "$T/h.log"
  python3 -c "import json; assert json.loads(open('$T/h.log').readline())['provenance']['options']['seq_len'] == 256"
  run layer-score -q -m "$M" --data "$T/t.txt" --seq-len 64
  assert_success
  run wmask -q -m "$M" --sparsity 0.5 --zstd -o "$T/w.safetensors.zst"
  assert_success
  [ "$(head -c 4 "$T/w.safetensors.zst" | od -An -tx1 | tr -d ' ')" = "28b52ffd" ]
  printf '{"layer":0,"metric":"bi","score":0.9}\n{"layer":1,"metric":"bi","score":0.1}\n{"layer":2,"metric":"bi","score":0.5}\n{"layer":3,"metric":"bi","score":0.7}\n{"layer":4,"metric":"bi","score":0.8}\n' > "$T/s.jsonl"
  run layer-drop -q -m "$M" --scores "$T/s.jsonl" -n 1 -o "$T/d"
  assert_success
  assert_output --partial '"layer":1'
  st-cat --stats --select 'layers.0.mlp.up_proj' "$T/w.safetensors.zst" | python3 -c "
import json, sys
o = json.loads(sys.stdin.readline())
assert isinstance(o['zeros'], (int, float)) and o['zeros'] >= 1 and abs(o['sparsity'] - 0.5) < 0.01, o"
}
