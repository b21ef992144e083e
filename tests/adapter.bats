#!/usr/bin/env bats
# A LoRA adapter folder is a model: every tool that reads a model takes it (merged in float32 at
# load, as PEFT computes it), st-cat merges it into a full folder, and the pair stays valid when
# moved together. tests/data/adapter_ref.py is the independent (stdlib) reference.
load helpers

REF="$BATS_TEST_DIRNAME/data/adapter_ref.py"
PREP="$BATS_TEST_DIRNAME/data/heal_prep.py"

# first n lines of the stories test text
text() { head -${2:-40} "$SHARED/data/stories/test.txt" > "$1"; }
# JSON lines without the timing and memory keys, which differ run to run
untimed() { python3 -c "
import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    print(json.dumps({k: v for k, v in o.items() if not (k in ('seconds',) or k.endswith('_per_s') or k.startswith('peak_rss') or k.startswith('act_'))}, sort_keys=True))
" "$1"; }
nll() { python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['nll'])"; }

@test "adapter: a trained heal-sft adapter as -m equals its merge (lop's and the reference's) to 1e-6 NLL" {
  need_shared
  T=$(scratch)
  python3 "$PREP" tokenize "$MODELS/llama-tiny/tokenizer.json" "$SHARED/data/stories/test.txt" > "$T/d.jsonl"
  run heal-sft -q -t 1 -m "$MODELS/llama-tiny" --data "$T/d.jsonl" --steps 2 --batch 2 \
      --lr 1e-2 --lora-rank 4 --lora-alpha 8 --seed 3 -o "$T/ad"
  assert_success
  text "$T/t.txt" 20
  a=$(ppl -q -m "$T/ad" --lines "$T/t.txt" | nll)
  run st-cat -q "$T/ad" -o "$T/m32"
  assert_success
  b=$(ppl -q -m "$T/m32" --lines "$T/t.txt" | nll)
  python3 "$REF" merge "$T/ad" "$MODELS/llama-tiny" "$T/ref.safetensors"
  mkdir "$T/ref"; mv "$T/ref.safetensors" "$T/ref/model.safetensors"
  cp "$MODELS/llama-tiny/config.json" "$MODELS/llama-tiny/tokenizer"* "$T/ref/"
  c=$(ppl -q -m "$T/ref" --lines "$T/t.txt" | nll)
  base=$(ppl -q -m "$MODELS/llama-tiny" --lines "$T/t.txt" | nll)
  python3 -c "
a, b, c, base = $a, $b, $c, $base
assert a == b, (a, b)
assert abs(a - c) < 1e-6, (a, c)
assert abs(a - base) > 1e-4, 'the adapter changed nothing: %r %r' % (a, base)
"
  # --merge-lora rounds the merged weights to the stored bf16: close, not equal
  run heal-sft -q -t 1 -m "$MODELS/llama-tiny" --data "$T/d.jsonl" --steps 2 --batch 2 \
      --lr 1e-2 --lora-rank 4 --lora-alpha 8 --seed 3 -o "$T/mbf" --merge-lora
  assert_success
  d=$(ppl -q -m "$T/mbf" --lines "$T/t.txt" | nll)
  python3 -c "assert abs($a - $d) < 2e-2, ($a, $d)"
}

@test "adapter: rank/alpha patterns, rsLoRA, embedding LoRA and modules_to_save merge as the reference does" {
  need_shared
  T=$(scratch)
  python3 "$REF" make "$MODELS/stories260K" "$T/p" --patterns --embed --save-module model.norm.weight
  python3 "$REF" make "$MODELS/qwen3-tiny" "$T/q" --rslora --rank 2
  for a in p:stories260K q:qwen3-tiny; do
    ad=${a%%:*} base=${a#*:}
    run st-cat -q "$T/$ad" --dtype f32 -o "$T/$ad.lop.safetensors"
    assert_success
    python3 "$REF" merge "$T/$ad" "$MODELS/$base" "$T/$ad.ref.safetensors"
    run python3 "$REF" compare "$T/$ad.lop.safetensors" "$T/$ad.ref.safetensors" 1e-5
    assert_success
  done
}

@test "adapter: every model-reading tool takes it (ppl, lm-eval, layer-score, lm-gen, layer-drop, wmask)" {
  need_shared
  T=$(scratch)
  python3 "$REF" make "$MODELS/stories260K" "$T/ad"
  run st-cat -q "$T/ad" -o "$T/m"
  assert_success
  text "$T/t.txt" 8
  printf '{"query":"Once upon a time","choices":[" there was"," the end"],"gold":0}\n{"query":"Lily went to the","choices":[" park"," moon"],"gold":0}\n' > "$T/task.jsonl"
  for m in ad m; do
    lm-eval -q -m "$T/$m" --task-file "$T/task.jsonl" --log-samples "$T/$m.samples" > "$T/$m.eval"
    layer-score -q -m "$T/$m" --data "$T/t.txt" > "$T/$m.score"
    lm-gen -q -m "$T/$m" -n 12 -p "Once upon" > "$T/$m.gen"
  done
  cmp <(untimed "$T/ad.eval") <(untimed "$T/m.eval")
  cmp <(untimed "$T/ad.score") <(untimed "$T/m.score")
  cmp "$T/ad.gen" "$T/m.gen"
  cmp <(cut -d, -f1-8 "$T/ad.samples") <(cut -d, -f1-8 "$T/m.samples")
  run layer-drop -q -m "$T/ad" --drop 2 -o "$T/d"
  assert_success
  run wmask -q -m "$T/ad" --sparsity 0.5 -o "$T/w"
  assert_success
  [ -f "$T/d/tokenizer.json" ] && [ -f "$T/w/config.json" ]
}

@test "adapter: the pair survives a move; a missing base says --base; --base overrides; HF cache ids" {
  need_shared
  T=$(scratch)
  mkdir -p "$T/w/runs"
  cp -r "$MODELS/stories260K" "$T/w/base"
  python3 "$PREP" tokenize "$MODELS/stories260K/tokenizer.json" "$SHARED/data/stories/test.txt" > "$T/d.jsonl"
  run heal-sft -q -t 1 -m "$T/w/base" --data "$T/d.jsonl" --steps 1 --batch 2 --lora-rank 2 -o "$T/w/runs/ad"
  assert_success
  run pyjson "import json; print(json.load(open('$T/w/runs/ad/adapter_config.json'))['base_model_name_or_path'])"
  assert_output "../../base"
  text "$T/t.txt" 5
  a=$(ppl -q -m "$T/w/runs/ad" --lines "$T/t.txt" | nll)
  mv "$T/w" "$T/moved"
  b=$(cd / && ppl -q -m "$T/moved/runs/ad" --lines "$T/t.txt" | nll)
  [ "$a" = "$b" ]
  rm -rf "$T/moved/base"
  run ppl -q -m "$T/moved/runs/ad" --lines "$T/t.txt"
  [ "$status" -eq 1 ]
  assert_output --partial "pass --base PATH"
  [ "${#lines[@]}" -eq 1 ]
  c=$(ppl -q --base "$MODELS/stories260K" -m "$T/moved/runs/ad" --lines "$T/t.txt" | nll)
  [ "$a" = "$c" ]
  # a hub id resolved through the Hugging Face cache layout (refs/main -> snapshots/REV)
  H="$T/hf/hub/models--lop-test--tiny"
  mkdir -p "$H/refs" "$H/snapshots/abc123"
  echo abc123 > "$H/refs/main"
  cp "$MODELS/stories260K/"* "$H/snapshots/abc123/"
  run env HF_HOME="$T/hf" heal-sft -q -t 1 -m "$H/snapshots/abc123" --data "$T/d.jsonl" --steps 1 --batch 2 --lora-rank 2 -o "$T/hfad"
  assert_success
  run pyjson "import json; print(json.load(open('$T/hfad/adapter_config.json'))['base_model_name_or_path'])"
  assert_output "lop-test/tiny"
  d=$(HF_HOME="$T/hf" ppl -q -m "$T/hfad" --lines "$T/t.txt" | nll)
  run env HF_HOME="$T/nowhere" ppl -q -m "$T/hfad" --lines "$T/t.txt"
  [ "$status" -eq 1 ]
  assert_output --partial "'lop-test/tiny'"
}

@test "adapter: unsupported kinds are refused with one line (DoRA, bias, .bin, bad shapes, unknown target)" {
  need_shared
  T=$(scratch)
  python3 "$REF" make "$MODELS/stories260K" "$T/ok"
  edit() { # edit FOLDER PYTHON-EXPR-ON-cfg
    cp -r "$T/ok" "$T/$1"
    python3 -c "import json; p='$T/$1/adapter_config.json'; cfg=json.load(open(p)); $2; json.dump(cfg, open(p,'w'))"
  }
  edit dora "cfg['use_dora'] = True"
  edit bias "cfg['bias'] = 'all'"
  edit prefix "cfg['peft_type'] = 'PREFIX_TUNING'"
  edit rank "cfg['r'] = 3"
  cp -r "$T/ok" "$T/bin"; mv "$T/bin/adapter_model.safetensors" "$T/bin/adapter_model.bin"
  python3 "$REF" make "$MODELS/qwen3-tiny" "$T/other"
  cp "$T/other/adapter_model.safetensors" "$T/ok2.safetensors"
  cp -r "$T/ok" "$T/shape"; cp "$T/ok2.safetensors" "$T/shape/adapter_model.safetensors"
  for k in dora:DoRA bias:bias prefix:PREFIX_TUNING rank:rank bin:adapter_model.bin shape:shape; do
    d=${k%%:*} want=${k#*:}
    run ppl -q -m "$T/$d" --lines /dev/null
    [ "$status" -eq 1 ] || { echo "$d: status $status: $output"; false; }
    assert_output --partial "$want"
    [ "${#lines[@]}" -eq 1 ]
  done
}

@test "adapter: the sanitizer build merges and frees cleanly" {
  need_shared
  need_san st-cat
  T=$(scratch)
  python3 "$REF" make "$MODELS/stories260K" "$T/ad" --patterns --embed --save-module model.norm.weight
  run "$SANBIN/st-cat" -q "$T/ad" -o "$T/m.safetensors"
  assert_success
  run "$SANBIN/st-cat" --summary "$T/ad"
  assert_success
}
