#!/usr/bin/env bats
# heal-sft: options, data formats, resume bit-for-bit, PEFT adapter and merge, sparsity, and a
# real healing effect (stories260K with layer 2 dropped). Gradients and AdamW against the
# transformers goldens are checked by tests/unit/test_train.c.
load helpers

PREP="$BATS_TEST_DIRNAME/data/heal_prep.py"

# random pre-tokenized sequences for a model with vocab V: N lines of L ids (seeded)
rand_ids() { python3 -c "
import json, random
r = random.Random($4)
for _ in range($2): print(json.dumps({'ids': [r.randrange($1) for _ in range($3)]}))"; }

@test "heal-sft --help lists every option and the 16 bytes/parameter budget" {
  run heal-sft --help
  assert_success
  for o in --data --eval-data -o --seq-len --batch --grad-accum --lr --schedule --warmup \
           --epochs --steps --weight-decay --clip --lora-rank --lora-alpha --lora-targets \
           --lora-dropout --merge-lora --save-every --resume --template --recompute \
           --no-keep-sparsity --device --gemm --threads --seed --quiet --progress --version; do
    [[ "$output" == *"$o"* ]] || { echo "missing $o"; return 1; }
  done
  [[ "$output" == *"16 bytes per"* ]]
}

@test "heal-sft usage errors exit 2, runtime errors exit 1 with one line" {
  need_shared
  T=$(scratch)
  run heal-sft -m "$MODELS/llama-tiny" -o "$T/o"
  assert_failure 2
  run heal-sft -m "$MODELS/llama-tiny" --data x -o "$T/o" --schedule wavy
  assert_failure 2
  run heal-sft -m "$MODELS/llama-tiny" --data x -o "$T/o" --lora-rank 4 --lora-targets q,zz
  assert_failure 2
  run heal-sft -m "$MODELS/llama-tiny" --data x -o "$T/o" --merge-lora
  assert_failure 2
  run heal-sft -m "$MODELS/llama-tiny" --data x -o "$T/o" --device gpu0
  assert_failure 2
  assert_output --partial "expected cpu, cuda or cuda:N"
  run heal-sft -m "$MODELS/llama-tiny" --data x -o "$T/o" --gemm fp8
  assert_failure 2
  : > "$T/empty.txt"
  run heal-sft -m "$MODELS/llama-tiny" --data "$T/empty.txt" -o "$T/o"
  assert_failure 1
  [[ "$output" == heal-sft:*empty* ]]
  echo '{"ids": [1, 99999999]}' > "$T/bad.jsonl"
  run heal-sft -m "$MODELS/llama-tiny" --data "$T/bad.jsonl" -o "$T/o"
  assert_failure 1
  [[ "$output" == heal-sft:*"out of range"* ]]
  echo '{"ids": [1, 2' > "$T/trunc.jsonl"
  run heal-sft -m "$MODELS/llama-tiny" --data "$T/trunc.jsonl" -o "$T/o"
  assert_failure 1
  run heal-sft -m "$T/nope" --data "$T/bad.jsonl" -o "$T/o"
  assert_failure 1
  [ ! -e "$T/o" ]
}

@test "heal-sft: one JSON line per step; loss of step 1 equals the golden loss" {
  need_shared
  T=$(scratch)
  # golden text "en" as one pre-tokenized sequence: loss before the first update = golden loss
  python3 -c "
import json; g = json.load(open('$MODELS/qwen3-tiny/golden.json'))
print(json.dumps({'ids': g['texts']['en']['ids']}))" > "$T/en.jsonl"
  run heal-sft -q -m "$MODELS/qwen3-tiny" --data "$T/en.jsonl" -o "$T/o" --steps 2 --lr 1e-3 \
      --schedule constant --clip 0 --seq-len 128
  assert_success
  echo "$output" | python3 -c "
import json, sys
g = json.load(open('$MODELS/qwen3-tiny/golden.json'))['train']
lines = [json.loads(l) for l in sys.stdin]
steps = [l for l in lines if 'step' in l and 'loss' in l]
assert [s['step'] for s in steps] == [1, 2], steps
assert abs(steps[0]['loss'] - g['loss']) < 1e-4, (steps[0]['loss'], g['loss'])
assert steps[1]['loss'] < steps[0]['loss']
for k in ('lr', 'grad_norm', 'tokens_per_s', 'tokens', 'scored'): assert k in steps[0], k
assert lines[-1]['output'] == '$T/o' and lines[-1]['steps'] == 2
"
  [ -f "$T/o/model.safetensors" ] && [ -f "$T/o/config.json" ] && [ -f "$T/o/tokenizer.json" ]
}

@test "heal-sft --resume continues bit-for-bit (10 steps = 5 + resume + 5), full and LoRA" {
  need_shared
  T=$(scratch)
  rand_ids 32000 24 33 7 > "$T/d.jsonl"
  for mode in full lora; do
    extra=(); [ $mode = lora ] && extra=(--lora-rank 4 --lora-dropout 0.1 --lr 1e-3)
    common=(-q -m "$MODELS/llama-tiny" --data "$T/d.jsonl" --batch 2 --grad-accum 2 --steps 10
            --warmup 2 --seq-len 64 --seed 3 "${extra[@]}")
    heal-sft "${common[@]}" -o "$T/a-$mode" | grep '"loss"' | cut -d, -f1-2 > "$T/a-$mode.txt"
    heal-sft "${common[@]}" -o "$T/b-$mode" --save-every 5 --ckpt-dir "$T/ck-$mode" \
      | grep '"loss"' | cut -d, -f1-2 | head -5 > "$T/b-$mode.txt"
    [ -f "$T/ck-$mode/step-5/state.json" ]
    heal-sft "${common[@]}" -o "$T/c-$mode" --resume "$T/ck-$mode/step-5" \
      | grep '"loss"' | cut -d, -f1-2 >> "$T/b-$mode.txt"
    [ "$(wc -l < "$T/a-$mode.txt")" -eq 10 ]
    diff "$T/a-$mode.txt" "$T/b-$mode.txt"
  done
  # the same final weights, too
  cmp "$T/a-full/model.safetensors" "$T/c-full/model.safetensors"
  cmp "$T/a-lora/adapter_model.safetensors" "$T/c-lora/adapter_model.safetensors"
}

@test "heal-sft LoRA: a PEFT adapter (names, shapes, config), and --merge-lora = W + (a/r) B A" {
  need_shared
  T=$(scratch)
  python3 "$PREP" tokenize "$MODELS/stories260K/tokenizer.json" "$SHARED/data/stories/test.txt" > "$T/d.jsonl"
  args=(-q -t 1 -m "$MODELS/stories260K" --data "$T/d.jsonl" --steps 3 --batch 4 --lr 1e-2
        --lora-rank 4 --lora-alpha 8 --lora-targets q,v,down --seed 5)
  run heal-sft "${args[@]}" -o "$T/ad"
  assert_success
  run heal-sft "${args[@]}" -o "$T/merged" --merge-lora
  assert_success
  python3 - "$T" "$MODELS/stories260K" <<'EOF'
import json, struct, sys
T, base = sys.argv[1], sys.argv[2]
def st(path):
    b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop('__metadata__', None)
    out = {}
    for k, v in h.items():
        a, e = v['data_offsets']; raw = b[8 + n + a:8 + n + e]
        assert v['dtype'] == 'F32'
        out[k] = (v['shape'], struct.unpack('<%df' % (len(raw) // 4), raw))
    return out
cfg = json.load(open(T + '/ad/adapter_config.json'))
assert cfg['peft_type'] == 'LORA' and cfg['r'] == 4 and cfg['lora_alpha'] == 8
assert sorted(cfg['target_modules']) == ['down_proj', 'q_proj', 'v_proj']
assert cfg['task_type'] == 'CAUSAL_LM'
ad, b0, mg = st(T + '/ad/adapter_model.safetensors'), st(base + '/model.safetensors'), st(T + '/merged/model.safetensors')
assert len(ad) == 5 * 3 * 2, sorted(ad)
for l in range(5):
    for mod, p in (('self_attn', 'q_proj'), ('self_attn', 'v_proj'), ('mlp', 'down_proj')):
        name = 'model.layers.%d.%s.%s' % (l, mod, p)
        A = ad['base_model.model.%s.lora_A.weight' % name]; B = ad['base_model.model.%s.lora_B.weight' % name]
        W = b0[name + '.weight']; M = mg[name + '.weight']
        out, inn = W[0]
        assert A[0] == [4, inn] and B[0] == [out, 4], (A[0], B[0], W[0])
        worst = 0
        for o in range(0, out, 7):
            for i in range(0, inn, 5):
                d = sum(B[1][o * 4 + k] * A[1][k * inn + i] for k in range(4))
                worst = max(worst, abs(W[1][o * inn + i] + 2.0 * d - M[1][o * inn + i]))
        assert worst < 1e-5, (name, worst)
# B moved away from zero: the adapters trained
assert any(abs(x) > 0 for x in ad['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight'][1])
# untouched tensors are identical
assert mg['model.embed_tokens.weight'] == b0['model.embed_tokens.weight']
print('ok')
EOF
}

@test "heal-sft keeps exact zeros at zero (and --no-keep-sparsity lets them regrow)" {
  need_shared
  T=$(scratch)
  # zero every other weight of layer 0's up_proj
  python3 - "$MODELS/stories260K" "$T/sparse" <<'EOF'
import json, os, shutil, struct, sys
src, out = sys.argv[1], sys.argv[2]
b = bytearray(open(src + '/model.safetensors', 'rb').read()); n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n]); a, e = h['model.layers.0.mlp.up_proj.weight']['data_offsets']
for off in range(8 + n + a, 8 + n + e, 8): b[off:off + 4] = b'\0\0\0\0'
os.makedirs(out); open(out + '/model.safetensors', 'wb').write(b)
for f in ('config.json', 'tokenizer.json', 'tokenizer_config.json'): shutil.copy(src + '/' + f, out)
EOF
  python3 "$PREP" tokenize "$MODELS/stories260K/tokenizer.json" "$SHARED/data/stories/test.txt" > "$T/d.jsonl"
  heal-sft -q -m "$T/sparse" --data "$T/d.jsonl" --steps 3 --batch 4 --lr 1e-2 -o "$T/keep" >/dev/null
  heal-sft -q -m "$T/sparse" --data "$T/d.jsonl" --steps 3 --batch 4 --lr 1e-2 -o "$T/grow" --no-keep-sparsity >/dev/null
  python3 - "$T" <<'EOF'
import json, struct, sys
T = sys.argv[1]
def vals(path, name):
    b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    a, e = json.loads(b[8:8 + n])[name]['data_offsets']; raw = b[8 + n + a:8 + n + e]
    return struct.unpack('<%df' % (len(raw) // 4), raw)
name = 'model.layers.0.mlp.up_proj.weight'
keep, grow = vals(T + '/keep/model.safetensors', name), vals(T + '/grow/model.safetensors', name)
zk = sum(1 for x in keep[0::2] if x == 0.0); zg = sum(1 for x in grow[0::2] if x == 0.0)
assert zk == len(keep[0::2]), (zk, len(keep[0::2]))
assert zg < len(grow[0::2]) // 2, zg
assert sum(1 for x in keep[1::2] if x == 0.0) < 10   # the dense half trained
print('ok')
EOF
}

@test "heal-sft heals stories260K with layer 2 dropped (full and LoRA): test ppl clearly improves" {
  need_shared
  T=$(scratch)
  python3 "$PREP" drop "$MODELS/stories260K" "$T/drop2" 2
  tk="$MODELS/stories260K/tokenizer.json"
  python3 "$PREP" tokenize "$tk" "$SHARED/data/stories/train.txt" > "$T/train.jsonl"
  python3 "$PREP" tokenize "$tk" "$SHARED/data/stories/test.txt" > "$T/test.jsonl"
  python3 "$PREP" tokenize "$tk" "$SHARED/data/stories/stories-sampled.txt" > "$T/all.jsonl"
  # the pruned model's ppl on stories-sampled.txt is the golden's (8.0868)
  run heal-sft -q -t 1 -m "$T/drop2" --data "$T/test.jsonl" --eval-data "$T/all.jsonl" -o "$T/o0" --steps 1 --lr 0 --batch 16
  assert_success
  echo "$output" | python3 -c "
import json, sys
g = json.load(open('$MODELS/stories260K/golden.json'))['drop']['2']['corpus_ppl']
e = [json.loads(l) for l in sys.stdin if 'eval_ppl' in l][-1]
assert abs(e['eval_ppl'] - g) < 2e-3 * g, (e['eval_ppl'], g)"
  for mode in full lora; do
    extra=(--lr 2e-3); [ $mode = lora ] && extra=(--lora-rank 16 --lr 1e-2)
    heal-sft -q -t 1 -m "$T/drop2" --data "$T/train.jsonl" --eval-data "$T/test.jsonl" -o "$T/$mode" \
      --steps 40 --batch 8 --warmup 4 --eval-every 1000 "${extra[@]}" > "$T/$mode.log"
  done
  python3 - "$T" <<'EOF'
import json, sys
T = sys.argv[1]
for mode in ('full', 'lora'):
    ev = [json.loads(l) for l in open('%s/%s.log' % (T, mode)) if 'eval_ppl' in l]
    print(mode, 'test ppl after', ev[-1]['eval_ppl'])
    assert ev[-1]['eval_ppl'] < 6.5, (mode, ev[-1]['eval_ppl'])   # 8.00 before healing
EOF
}

@test "heal-sft under ASan+UBSan: a short full and LoRA run, and bad input" {
  need_shared
  need_san heal-sft
  T=$(scratch)
  rand_ids 32000 6 17 1 > "$T/d.jsonl"
  run "$SANBIN/heal-sft" -q -m "$MODELS/llama-tiny" --data "$T/d.jsonl" --eval-data "$T/d.jsonl" \
      -o "$T/a" --steps 2 --batch 2 --seq-len 32 --save-every 1 --ckpt-dir "$T/ck"
  assert_success
  run "$SANBIN/heal-sft" -q -m "$MODELS/gemma3-tiny" --data "$T/d.jsonl" -o "$T/b" --steps 1 \
      --lora-rank 2 --lora-dropout 0.2 --recompute --seq-len 32
  assert_success
  run "$SANBIN/heal-sft" -q -m "$MODELS/llama-tiny" --data "$T/d.jsonl" -o "$T/c" --steps 1 \
      --resume "$T/ck" --seq-len 32 --batch 2
  assert_success
  printf '{"ids": [1, 2, 3]}\n{"text": 5}\n' > "$T/bad.jsonl"
  run "$SANBIN/heal-sft" -q -m "$MODELS/llama-tiny" --data "$T/bad.jsonl" -o "$T/d"
  assert_failure 1
}

# documents and tokens heal-sft reports on stderr ("N documents, M tokens")
data_counts() { grep -o '[0-9]* documents, [0-9]* tokens' | tr -dc '0-9 ' | awk '{print $1, $2}'; }

@test "heal-sft text data: lines, blank-line paragraphs, JSONL text and .zst agree with lm-tok (+EOS)" {
  need_shared
  T=$(scratch)
  M="$MODELS/stories260K"
  head -20 "$SHARED/data/stories/test.txt" > "$T/lines.txt"
  # expected: every document = lm-tok ids (with BOS) + EOS
  want_tok=$(python3 -c "
import json, sys
for l in open('$T/lines.txt'): print(json.dumps({'text': l.rstrip('\n')}))" | tee "$T/text.jsonl" \
    | lm-tok -m "$M" --jsonl | python3 -c "
import json, sys
print(sum(len(json.loads(l)['ids']) + 1 for l in sys.stdin))")
  sed 's/$/\n/' "$T/lines.txt" > "$T/para.txt"          # blank-line separated
  zstd -q -c "$T/lines.txt" > "$T/lines.txt.zst"
  for f in lines.txt para.txt text.jsonl lines.txt.zst; do
    run heal-sft -m "$M" --data "$T/$f" -o "$T/o-$f" --steps 1 --seq-len 64
    assert_success
    got=$(echo "$output" | data_counts)
    [ "$got" = "20 $want_tok" ] || { echo "$f: got '$got', want '20 $want_tok'"; return 1; }
  done
  # paragraphs spanning several lines are one document each
  printf 'one line\nsame doc\n\nsecond doc\n' > "$T/p2.txt"
  run heal-sft -m "$M" --data "$T/p2.txt" -o "$T/o-p2" --steps 1 --seq-len 8
  assert_success
  [[ "$(echo "$output" | data_counts)" == "2 "* ]]
}

@test "heal-sft instruction data: loss only on the response (+EOS)" {
  need_shared
  T=$(scratch)
  M="$MODELS/stories260K"
  cat > "$T/ins.jsonl" <<'J'
{"instruction": "Tell a story.", "context": "About a cat.", "response": "Lily had a cat."}
{"prompt": "Say hi.", "response": "Hi there, Tom!"}
J
  want=$( (echo 'Lily had a cat.' | tr -d '\n' | lm-tok -m "$M" --no-special; \
           echo 'Hi there, Tom!' | tr -d '\n' | lm-tok -m "$M" --no-special) | python3 -c "
import json, sys
print(sum(len(json.loads(l)['ids']) + 1 for l in sys.stdin))")
  run heal-sft -q -m "$M" --data "$T/ins.jsonl" -o "$T/o" --steps 1 --seq-len 4096 --batch 1
  assert_success
  got=$(echo "$output" | python3 -c "
import json, sys
print([json.loads(l) for l in sys.stdin if 'scored' in l][0]['scored'])")
  [ "$got" = "$want" ] || { echo "scored $got, want $want"; return 1; }
  # a template without {response} is a usage error
  run heal-sft -q -m "$M" --data "$T/ins.jsonl" -o "$T/o2" --steps 1 --template '{prompt}'
  assert_failure 2
}
