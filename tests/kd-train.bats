#!/usr/bin/env bats
# kd-train: distillation losses against the transformers golden (through the tool), the top-k
# cache (k = V reproduces the on-the-fly run; block verification), tokenizer and vocabulary checks,
# LoRA, bad input, sanitizers, and a real effect on stories260K with a layer dropped.
load helpers

setup() {
  need_shared
  TMP=$(scratch)
  STU=$MODELS/llama-tiny-student
  TEA=$MODELS/llama-tiny
  # the golden's text `en` pre-tokenized: one sequence, every position but the last scored
  python3 -c "
import json
g = json.load(open('$STU/golden.json'))
print(json.dumps({'ids': g['texts']['en']['ids']}))" > "$TMP/en.jsonl"
}

# value of key $2 in the first JSON line of file $1 that has it
first() { python3 -c "
import json, sys
for l in open('$1'):
    o = json.loads(l)
    if '$2' in o: print(o['$2']); break"; }

@test "--help lists every option; --version" {
  run kd-train --help
  [ "$status" -eq 0 ]
  for o in --teacher --teacher-cache --save-teacher --top-k --loss --temperature --skew --jsd-beta \
           --lora-rank --lora-alpha --lora-targets --merge-lora --batch --grad-accum --epochs --steps \
           --lr --schedule --warmup --clip --resume --save-every --eval-data --seq-len --threads --seed; do
    [[ "$output" == *"$o"* ]] || { echo "missing $o"; false; }
  done
  run kd-train --version
  [ "$status" -eq 0 ]
}

@test "golden kd: step 1 reports ce, skl and 0.5ce+0.5skl of transformers; grad norm = norm of the golden per-parameter norms" {
  run bash -c "kd-train -m '$STU' --teacher '$TEA' --data '$TMP/en.jsonl' -o '$TMP/out' --steps 1 \
      --temperature 2 --skew 0.1 --loss ce:0.5,skl:0.5 --clip 0 -q > '$TMP/log'"
  [ "$status" -eq 0 ]
  python3 - "$TMP/log" "$STU/golden.json" <<'EOF'
import json, math, sys
s = json.loads(open(sys.argv[1]).readline())
k = json.load(open(sys.argv[2]))["kd"]
gn = math.sqrt(sum(v * v for v in k["student_grad_norm"].values()))
for got, want in ((s["ce"], k["ce"]), (s["skl"], k["skew_kl"]), (s["loss"], k["loss_0.5ce_0.5skl"]),
                  (s["grad_norm"], gn)):
    print(got, want)
    assert abs(got - want) <= 1e-3 * abs(want), (got, want)
EOF
}

@test "golden kd: fkl, rkl and srkl terms of one step equal transformers' (T = 2)" {
  run bash -c "kd-train -m '$STU' --teacher '$TEA' --data '$TMP/en.jsonl' -o '$TMP/out' --steps 1 \
      --temperature 2 --loss fkl:1,rkl:1,srkl:1 -q > '$TMP/log'"
  [ "$status" -eq 0 ]
  python3 - "$TMP/log" "$STU/golden.json" <<'EOF'
import json, sys
s = json.loads(open(sys.argv[1]).readline())
k = json.load(open(sys.argv[2]))["kd"]
for t, g in (("fkl", "forward_kl"), ("rkl", "reverse_kl"), ("srkl", "skew_reverse_kl")):
    print(t, s[t], k[g])
    assert abs(s[t] - k[g]) <= 1e-3 * k[g]
assert abs(s["loss"] - (k["forward_kl"] + k["reverse_kl"] + k["skew_reverse_kl"])) <= 1e-3 * s["loss"]
EOF
}

@test "cache with k = V reproduces the on-the-fly run (every step's loss within 1e-6 relative)" {
  head -c 2500 "$SHARED/data/stories/train.txt" > "$TMP/d.txt"
  O="--data $TMP/d.txt --seq-len 48 --batch 2 --grad-accum 2 --steps 3 --temperature 2 --lr 1e-3 -t 1"
  run bash -c "kd-train -m '$STU' --teacher '$TEA' $O -o '$TMP/a' -q > '$TMP/live'"
  [ "$status" -eq 0 ]
  run bash -c "kd-train --teacher '$TEA' $O --save-teacher '$TMP/c' --top-k 32000 -m '$STU' -q > '$TMP/save'"
  [ "$status" -eq 0 ]
  [ "$(first "$TMP/save" k)" = 32000 ]
  [ "$(first "$TMP/save" blocks)" = 12 ]
  run bash -c "kd-train -m '$STU' --teacher-cache '$TMP/c' $O -o '$TMP/b' -q > '$TMP/cached'"
  [ "$status" -eq 0 ]
  python3 - "$TMP/live" "$TMP/cached" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1]) if '"step"' in l]
b = [json.loads(l) for l in open(sys.argv[2]) if '"step"' in l]
assert len(a) == len(b) == 3
for x, y in zip(a, b):
    for key in ("loss", "ce", "skl"):
        assert abs(x[key] - y[key]) <= 1e-6 * abs(x[key]), (key, x[key], y[key])
print("ok")
EOF
}

@test "top-k cache (k = 16): tail bucket, bytes per token reported, the training runs" {
  head -c 1500 "$SHARED/data/stories/train.txt" > "$TMP/d.txt"
  O="--data $TMP/d.txt --seq-len 32 --steps 2 --temperature 2 -t 1"
  run bash -c "kd-train --teacher '$TEA' $O --save-teacher '$TMP/c' --top-k 16 -q > '$TMP/save'"
  [ "$status" -eq 0 ]
  python3 -c "
import json, os
o = json.loads(open('$TMP/save').readline())
assert o['k'] == 16 and o['positions'] == 64 and o['bytes'] <= os.path.getsize('$TMP/c'), o
assert 0 < o['bytes_per_token'] < 16 * 8 + 16, o   # ids + f32 log-probs + tail + token ids, compressed"
  run kd-train -m "$STU" --teacher-cache "$TMP/c" $O -o "$TMP/b" -q
  [ "$status" -eq 0 ]
  [[ "$output" == *'"skl":'* ]]
}

@test "a cache from other data options is refused (block verification), as is another temperature" {
  head -n 40 "$SHARED/data/stories/train.txt" > "$TMP/d.txt"
  run kd-train --teacher "$TEA" --data "$TMP/d.txt" --seq-len 32 --steps 2 --save-teacher "$TMP/c" --top-k 8 -q -t 1
  [ "$status" -eq 0 ]
  run kd-train -m "$STU" --teacher-cache "$TMP/c" --data "$TMP/d.txt" --seq-len 32 --steps 2 --seed 5 -o "$TMP/o" -q -t 1
  [ "$status" -eq 1 ]
  [[ "$output" == *"differs from cached block"* ]]
  run kd-train -m "$STU" --teacher-cache "$TMP/c" --data "$TMP/d.txt" --seq-len 32 --steps 2 --temperature 3 -o "$TMP/o" -q
  [ "$status" -eq 2 ]
  [[ "$output" == *"temperature"* ]]
  [ ! -e "$TMP/o" ]
}

@test "different tokenizers are refused with a clear message" {
  run kd-train -m "$STU" --teacher "$MODELS/qwen3-tiny" --data "$TMP/en.jsonl" -o "$TMP/o" --steps 1 -q
  [ "$status" -eq 1 ]
  [[ "$output" == "kd-train: the student and the teacher have different tokenizers"* ]]
  [ ! -e "$TMP/o" ]
}

@test "a teacher with a padded vocabulary is aligned by truncation (warning, same losses)" {
  # llama-tiny with 64 extra zero rows in embed_tokens and lm_head (vocab 32064)
  python3 - "$TEA" "$TMP/pad" <<'EOF'
import json, os, shutil, struct, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
f = open(os.path.join(src, "model.safetensors"), "rb")
n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); data = f.read()
meta = h.pop("__metadata__", None)
out, blobs, off = {}, [], 0
for name, t in sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0]):
    a, b = t["data_offsets"]; blob = data[a:b]; shape = list(t["shape"])
    if name in ("model.embed_tokens.weight", "lm_head.weight"):
        blob += bytes(64 * shape[1] * 2); shape[0] += 64
    out[name] = {"dtype": t["dtype"], "shape": shape, "data_offsets": [off, off + len(blob)]}
    blobs.append(blob); off += len(blob)
if meta: out["__metadata__"] = meta
hb = json.dumps(out).encode(); hb += b" " * (-len(hb) % 8)
open(os.path.join(dst, "model.safetensors"), "wb").write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))
c = json.load(open(os.path.join(src, "config.json"))); c["vocab_size"] += 64
json.dump(c, open(os.path.join(dst, "config.json"), "w"))
for fn in ("tokenizer.json", "tokenizer_config.json"): shutil.copy(os.path.join(src, fn), dst)
EOF
  O="--data $TMP/en.jsonl --steps 1 --temperature 2 -t 1"
  run bash -c "kd-train -m '$STU' --teacher '$TMP/pad' $O -o '$TMP/a' 2>'$TMP/err' >'$TMP/l1'"
  [ "$status" -eq 0 ]
  grep -q "warning: vocabulary sizes differ (student 32000, teacher 32064)" "$TMP/err"
  kd-train -m "$STU" --teacher "$TEA" $O -o "$TMP/b" -q > "$TMP/l2"
  python3 -c "
import json
a = json.loads(open('$TMP/l1').readline()); b = json.loads(open('$TMP/l2').readline())
assert abs(a['loss'] - b['loss']) < 1e-6 * b['loss'], (a, b)"
}

@test "LoRA: adapters train from the teacher; --merge-lora writes a model folder" {
  run kd-train -m "$STU" --teacher "$TEA" --data "$TMP/en.jsonl" -o "$TMP/ad" --steps 2 --lora-rank 4 --lr 1e-2 -q -t 1
  [ "$status" -eq 0 ]
  [ -f "$TMP/ad/adapter_model.safetensors" ]
  run kd-train -m "$STU" --teacher "$TEA" --data "$TMP/en.jsonl" -o "$TMP/mg" --steps 1 --lora-rank 4 --merge-lora -q -t 1
  [ "$status" -eq 0 ]
  [ -f "$TMP/mg/model.safetensors" ]
}

@test "usage errors exit 2 with one message" {
  run kd-train -m "$STU" --data "$TMP/en.jsonl" -o "$TMP/o"
  [ "$status" -eq 2 ]; [[ "$output" == *"give --teacher or --teacher-cache"* ]]
  run kd-train -m "$STU" --teacher "$TEA" --data "$TMP/en.jsonl" -o "$TMP/o" --loss kl:1
  [ "$status" -eq 2 ]; [[ "$output" == *"unknown term 'kl'"* ]]
  run kd-train -m "$STU" --teacher "$TEA" --teacher-cache x --data "$TMP/en.jsonl" -o "$TMP/o"
  [ "$status" -eq 2 ]
  run kd-train --save-teacher "$TMP/c" --data "$TMP/en.jsonl"
  [ "$status" -eq 2 ]; [[ "$output" == *"--save-teacher needs --teacher"* ]]
  run kd-train -m "$STU" --teacher "$TEA" --data "$TMP/en.jsonl" -o "$TMP/o" --skew 1.5
  [ "$status" -eq 2 ]
  [ ! -e "$TMP/o" ]
}

@test "a truncated or foreign cache is refused (exit 1), nothing written" {
  run kd-train --teacher "$TEA" --data "$TMP/en.jsonl" --save-teacher "$TMP/c" --top-k 8 -q
  [ "$status" -eq 0 ]
  head -c 3000 "$TMP/c" > "$TMP/cut"
  run kd-train -m "$STU" --teacher-cache "$TMP/cut" --data "$TMP/en.jsonl" -o "$TMP/o" -q
  [ "$status" -eq 1 ]; [[ "$output" == "kd-train: $TMP/cut: "* ]]
  run kd-train -m "$STU" --teacher-cache "$STU/config.json" --data "$TMP/en.jsonl" -o "$TMP/o" -q
  [ "$status" -eq 1 ]; [[ "$output" == *"not a kd-train teacher cache"* ]]
  [ ! -e "$TMP/o" ]
}

@test "real effect: stories260K without layer 2 distilled from the full model lowers test ppl" {
  python3 "$ROOT/tests/kd/drop_layer.py" "$MODELS/stories260K" "$TMP/d2" 2
  head -n 200 "$SHARED/data/stories/train.txt" > "$TMP/tr.txt"
  head -n 20 "$SHARED/data/stories/test.txt" > "$TMP/te.txt"
  O="-m $TMP/d2 --data $TMP/tr.txt --eval-data $TMP/te.txt --seq-len 128 --batch 4 --lr 1e-3 -t 1 -q"
  run bash -c "kd-train $O --steps 1 --lr 0 --loss ce -o '$TMP/z' | grep eval_ppl"
  before=$(echo "$output" | python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['eval_ppl'])")
  run bash -c "kd-train $O --steps 25 --teacher '$MODELS/stories260K' --temperature 2 -o '$TMP/k' | grep eval_ppl"
  [ "$status" -eq 0 ]
  after=$(echo "$output" | python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['eval_ppl'])")
  echo "test ppl before $before after $after"
  python3 -c "assert $after < 0.97 * $before"
}

@test "sanitizers: on-the-fly, save and cached training, bad cache" {
  need_san kd-train
  S=$SANBIN/kd-train
  O="--data $TMP/en.jsonl --steps 1 -t 1 -q"
  run "$S" -m "$STU" --teacher "$TEA" $O -o "$TMP/a" --loss ce:1,fkl:1,rkl:1,skl:1,srkl:1,jsd:1,tvd:1
  [ "$status" -eq 0 ]
  run "$S" --teacher "$TEA" $O --save-teacher "$TMP/c" --top-k 8
  [ "$status" -eq 0 ]
  run "$S" -m "$STU" --teacher-cache "$TMP/c" $O -o "$TMP/b" --lora-rank 2
  [ "$status" -eq 0 ]
  head -c 2000 "$TMP/c" > "$TMP/cut"
  run "$S" -m "$STU" --teacher-cache "$TMP/cut" $O -o "$TMP/d"
  [ "$status" -eq 1 ]
  printf 'LOPKDC01\xff\xff\xff\xff\xff\xff\xff\x7f' > "$TMP/bad"; head -c 100 /dev/urandom >> "$TMP/bad"; printf 'LOPKDEND' >> "$TMP/bad"
  run "$S" -m "$STU" --teacher-cache "$TMP/bad" $O -o "$TMP/d"
  [ "$status" -eq 1 ]
}
