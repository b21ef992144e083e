#!/usr/bin/env bats
# Nothing lost, nothing silently wrong (issue 14, CLI.md "Outputs never destroy data", signals,
# "No number is silently wrong"):
#  - the overwrite matrix: every tool that writes x every input role x {file, folder, symlink}:
#    refused (exit 2, one line "tool: ..."), nothing changed (checksums before/after), in < 2 s;
#  - trailing slashes, read-only / missing / non-empty destinations, `-o .`, before any work;
#  - --force replaces atomically (a SIGTERM during a forced replace leaves the old output whole);
#  - SIGINT/SIGTERM at several points of layer-drop, wmask, st-cat, heal-sft, kd-train: no
#    temporary left; the training tools' checkpoint resumes bit-identically;
#  - NaN weights, config/tensor mismatch, positions past the context: exit 1 with a clear line
#    (also under ASan+UBSan).
load helpers

POISON=$BATS_TEST_DIRNAME/safety/poison.py

setup() {
  need_shared
  T=$(scratch)
  M=$MODELS/stories260K
  mkdir "$T/m" "$T/dd"
  cp "$M"/* "$T/m/"
  head -c 20000 "$SHARED/data/stories/train.txt" > "$T/dd/d.txt"
  ln -s m "$T/lm"                      # symlink to the model folder
  ln -s m/model.safetensors "$T/lf"    # symlink to the model file
  ln -s dd/d.txt "$T/ld"               # symlink to the data file
  echo "keep me" > "$T/notes.txt"
  export PATH="$ROOT/bin:$PATH"
}
teardown() { chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"; }

# every file's checksum and every entry's name (and link target) under $T
snapshot() {
  (cd "$T" && find . -type f -exec sha256sum {} + | sort && find . -printf '%p %l\n' | sort)
}

# refused STATUS CMD...: exit STATUS, one line "TOOL: ...", nothing under $T changed, < 2 s
refused() {
  local want=$1; shift
  local before after t0 t1 tool
  tool=$(basename "$1")
  before=$(snapshot)
  t0=$(date +%s%N)
  run "$@"
  t1=$(date +%s%N)
  after=$(snapshot)
  [ "$status" -eq "$want" ] || { echo "exit $status (want $want): $*"; echo "$output"; return 1; }
  [ "${#lines[@]}" -eq 1 ] || { echo "want one line: $*"; echo "$output"; return 1; }
  [[ "${lines[0]}" == "$tool: "* ]] || { echo "not a $tool message: $output"; return 1; }
  [ "$before" == "$after" ] || { echo "files changed: $*"; diff <(echo "$before") <(echo "$after"); return 1; }
  if [ $(( (t1 - t0) / 1000000 )) -ge 2000 ]; then   # a loaded machine: time it once more
    t0=$(date +%s%N); "$@" > /dev/null 2>&1; t1=$(date +%s%N)
    [ $(( (t1 - t0) / 1000000 )) -lt 2000 ] || { echo "took $(( (t1 - t0) / 1000000 )) ms: $*"; return 1; }
  fi
}

# matrix "CMD with @ for the output" TARGET...: each target refused with exit 2, with and
# without -f (an input is never replaced, --force or not)
matrix() {
  local cmd=$1; shift
  local t
  for t in "$@"; do
    # shellcheck disable=SC2086
    refused 2 ${cmd//@/$t}
    refused 2 ${cmd//@/$t} -f
  done
}

no_temps() {
  local left
  left=$(find "$T" -name '.*.tmp.*' -o -name '.*.old.*' -o -name '*.tmp.[0-9]*' -o -name '.lop-probe.*')
  [ -z "$left" ] || { echo "temporaries left: $left"; return 1; }
}

# --------------------------------------------------------------------------- the overwrite matrix

@test "overwrite matrix: layer-drop, layer-merge, wmask (model file/folder/symlink, data, scores)" {
  local models=("$T/m" "$T/m/" "$T/lm" "$T/m/model.safetensors" "$T/lf" "$T/m/config.json" "$T")
  matrix "layer-drop -q -m $T/m --drop 1 -o @" "${models[@]}"
  matrix "layer-drop -q -m $T/lf --drop 1 -o @" "${models[@]}"
  matrix "layer-drop -q -m $T/lm --drop 1 -o @" "${models[@]}"
  printf '{"layer":%d,"metric":"bi","score":%d}\n' 0 5 1 1 2 2 3 3 4 4 > "$T/dd/s.jsonl"
  matrix "layer-drop -q -m $T/m --scores $T/dd/s.jsonl --n 1 -o @" "$T/dd/s.jsonl" "$T/dd"
  matrix "layer-merge -q -m $T/m --merge 1-2 -o @" "${models[@]}"
  matrix "layer-merge -q -m $T/m --laco --data $T/dd/d.txt -o @" "$T/dd/d.txt" "$T/ld" "$T/dd"
  matrix "wmask -q -m $T/m -o @" "${models[@]}"
  matrix "wmask -q -m $T/m --method wanda --data $T/ld --samples 2 --ctx 16 -o @" "$T/dd/d.txt" "$T/ld" "$T/dd"
}

@test "overwrite matrix: st-cat (inputs, --config), ppl --save-logits, lm-eval -o, model-card -o" {
  local models=("$T/m" "$T/m/" "$T/lm" "$T/m/model.safetensors" "$T/lf" "$T")
  matrix "st-cat $T/m/model.safetensors -o @" "${models[@]}"
  matrix "st-cat $T/lf --config $T/m/config.json -o @" "${models[@]}" "$T/m/config.json"
  matrix "ppl -q -m $T/m --save-logits @ $T/dd/d.txt" "${models[@]}" "$T/dd/d.txt" "$T/ld" "$T/dd"
  ppl -q -m "$T/m" --ctx 64 --max-tokens 50 --save-logits "$T/base.topk" "$T/dd/d.txt" > /dev/null
  matrix "ppl -q -m $T/m --kl-base $T/base.topk --save-logits @ $T/dd/d.txt" "$T/base.topk"
  echo '{"query":"a","choices":["b","c"],"gold":0}' > "$T/dd/task.jsonl"
  matrix "lm-eval -q -m $T/m --task-file $T/dd/task.jsonl -o @" "${models[@]}" "$T/dd/task.jsonl" "$T/dd"
  matrix "lm-eval -q -m $T/m --task-file $T/dd/task.jsonl --log-samples @" "$T/dd/task.jsonl" "$T/lf"
  echo '{"tool":"ppl","ppl":3}' > "$T/dd/log.jsonl"
  matrix "model-card --base $T/m -m $T/lm --log $T/dd/log.jsonl -o @" "$T/dd/log.jsonl" "$T/m/config.json" "$T/lf" "$T/dd"
}

@test "overwrite matrix: heal-sft and kd-train (model, data, eval data, teacher, cache, checkpoint)" {
  local models=("$T/m" "$T/m/" "$T/lm" "$T/m/model.safetensors" "$T/lf" "$T")
  local h="heal-sft -q -m $T/m --data $T/ld --steps 1 --seq-len 32"
  matrix "$h -o @" "${models[@]}" "$T/dd/d.txt" "$T/ld" "$T/dd"
  matrix "$h --lora-rank 2 -o @" "${models[@]}" "$T/dd/d.txt" "$T/dd"
  matrix "heal-sft -q -m $T/m --data $T/dd/d.txt --eval-data $T/notes.txt --steps 1 --seq-len 32 -o @" "$T/notes.txt"
  matrix "$h -o $T/out --ckpt-dir @" "$T/m" "$T/dd" "$T/lm"
  # a checkpoint is an input of a resumed run
  heal-sft -q -m "$T/m" --data "$T/dd/d.txt" --steps 2 --seq-len 32 --save-every 1 -o "$T/a" > /dev/null
  matrix "heal-sft -q -m $T/m --data $T/dd/d.txt --steps 2 --seq-len 32 --resume $T/a.ckpt/step-1 -o @" "$T/a.ckpt" "$T/a.ckpt/step-1"
  cp -r "$T/m" "$T/t"
  local k="kd-train -q -m $T/m --teacher $T/t --data $T/dd/d.txt --steps 1 --seq-len 32"
  matrix "$k -o @" "$T/t" "$T/t/model.safetensors" "$T/dd/d.txt" "$T/m"
  matrix "kd-train -q --teacher $T/t --data $T/dd/d.txt --steps 1 --seq-len 32 --save-teacher @" \
    "$T/t" "$T/t/model.safetensors" "$T/dd/d.txt" "$T/ld" "$T/dd"
  kd-train -q --teacher "$T/t" --data "$T/dd/d.txt" --steps 1 --seq-len 32 --top-k 4 --save-teacher "$T/c.kdc" > /dev/null
  matrix "kd-train -q -m $T/m --teacher-cache $T/c.kdc --data $T/dd/d.txt --steps 1 --seq-len 32 --top-k 4 -o @" "$T/c.kdc"
}

@test "existing outputs: refused without -f (exit 2, < 2 s, before work), replaced with -f" {
  refused 2 layer-drop -q -m "$T/m" --drop 1 -o "$T/notes.txt"
  mkdir "$T/full"; echo x > "$T/full/x.txt"
  refused 2 layer-drop -q -m "$T/m" --drop 1 -o "$T/full"
  refused 2 layer-drop -q -m "$T/m" --drop 1 -o "$T/full" -f     # files lop does not write: never
  refused 2 heal-sft -q -m "$T/m" --data "$T/dd/d.txt" --steps 1 --seq-len 32 -o "$T/full/"
  refused 2 lm-eval -q -m "$T/m" --tasks arc_easy -o "$T/notes.txt"
  refused 2 ppl -q -m "$T/m" --save-logits "$T/notes.txt" "$T/dd/d.txt"
  refused 2 model-card --base "$T/m" --log "$T/notes.txt" -o "$T/notes.txt"
  # a previous lop output is replaced with -f
  layer-drop -q -m "$T/m" --drop 1 -o "$T/o" > /dev/null
  refused 2 layer-drop -q -m "$T/m" --drop 2 -o "$T/o"
  run layer-drop -q -m "$T/m" --drop 2,3 -o "$T/o" -f
  assert_success
  [ "$(python3 -c "import json; print(json.load(open('$T/o/config.json'))['num_hidden_layers'])")" = 3 ]
  st-cat -q "$T/m/model.safetensors" -o "$T/x.safetensors"
  run st-cat -q "$T/m/model.safetensors" --dtype bf16 -o "$T/x.safetensors" -f
  assert_success
  heal-sft -q -m "$T/m" --data "$T/dd/d.txt" --steps 1 --seq-len 32 --lora-rank 2 -o "$T/ad" > /dev/null
  run heal-sft -q -m "$T/m" --data "$T/dd/d.txt" --steps 1 --seq-len 32 --lora-rank 2 -o "$T/ad" -f
  assert_success
  [ -f "$T/ad/adapter_model.safetensors" ]
  no_temps
}

@test "destinations: trailing slash, -o ., missing or read-only parent, a file where a folder goes" {
  run layer-drop -q -m "$T/m" --drop 1 -o "$T/h/"
  assert_success
  [ -f "$T/h/config.json" ]
  run heal-sft -q -m "$T/m" --data "$T/dd/d.txt" --steps 1 --seq-len 32 -o "$T/hs/"
  assert_success
  [ -f "$T/hs/model.safetensors" ]
  run wmask -q -m "$T/m" -o "$T/wm/"
  assert_success
  run st-cat -q "$T/m" -o "$T/sc/"
  assert_success
  [ -f "$T/sc/tokenizer.json" ]
  cd "$T"
  refused 2 layer-drop -q -m m --drop 1 -o .
  refused 2 layer-drop -q -m m --drop 1 -o ./
  refused 2 heal-sft -q -m m --data dd/d.txt -o . -f
  refused 1 layer-drop -q -m m --drop 1 -o nothere/x
  refused 1 heal-sft -q -m m --data dd/d.txt --steps 1 -o nothere/x
  refused 1 lm-eval -q -m m --tasks arc_easy -o nothere/r.json
  refused 2 heal-sft -q -m m --data dd/d.txt --steps 1 -o notes.txt/
  # read-only: a read-only file system (root ignores permission bits), and a 0555 folder
  refused 1 layer-drop -q -m m --drop 1 -o /proc/lop-x
  refused 1 heal-sft -q -m m --data dd/d.txt --steps 1 -o /proc/lop-x
  refused 1 kd-train -q -m m --teacher m --data dd/d.txt --steps 1 -o /proc/lop-x
  refused 1 lm-eval -q -m m --tasks arc_easy -o /proc/lop-x.json
  if [ "$(id -u)" != 0 ]; then
    mkdir ro; chmod 0555 ro
    refused 1 layer-drop -q -m m --drop 1 -o ro/x
    refused 1 heal-sft -q -m m --data dd/d.txt --steps 1 -o ro/x
  fi
}

@test "free space: an output larger than its file system's free space is refused before work" {
  [ -d /dev/shm ] && [ -w /dev/shm ] || skip "no /dev/shm"
  local free
  free=$(df -B1 --output=avail /dev/shm | tail -1)
  # a header-only safetensors declaring one tensor larger than the free space, streamed
  python3 - "$T/big.safetensors" "$free" <<'PY'
import json, struct, sys
n = int(sys.argv[2]) // 4 + (1 << 20)
h = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h)
PY
  run bash -c "cat '$T/big.safetensors' | st-cat -o /dev/shm/lop-safety-$$.safetensors"
  [ "$status" -eq 1 ]
  [[ "$output" == *"free"* ]] || { echo "$output"; return 1; }
  [ ! -e "/dev/shm/lop-safety-$$.safetensors" ]
}

# --------------------------------------------------------------------------- signals

# start CMD in the background with SIGINT/SIGTERM at their defaults (a script's `&` ignores SIGINT)
bg() { env --default-signal=INT,TERM "$@" & PID=$!; }

# feed N bytes of FILE into FIFO, keep it open, send SIG to the tool, expect exit 128+sig and no temps
stream_kill() {
  local n=$1 sig=$2 code=$3; shift 3
  rm -f "$T/fifo"; mkfifo "$T/fifo"
  env --default-signal=INT,TERM "$@" < "$T/fifo" & PID=$!   # the tool's open of the FIFO waits for ours
  exec 7> "$T/fifo"
  head -c "$n" "$T/m/model.safetensors" >&7
  sleep 0.3
  kill -"$sig" "$PID"
  local rc=0
  wait "$PID" || rc=$?
  exec 7>&-
  [ "$rc" -eq "$code" ] || { echo "exit $rc (want $code) after $n bytes: $*"; return 1; }
  no_temps
}

@test "SIGINT/SIGTERM during layer-drop, wmask, st-cat (several points): no temporary left, old output intact" {
  local size
  size=$(stat -c %s "$T/m/model.safetensors")
  layer-drop -q -m "$T/m" --drop 1 -o "$T/old" > /dev/null
  local before
  before=$(cd "$T/old" && sha256sum ./*)
  for n in 0 4096 $((size / 2)) $((size - 8)); do
    stream_kill "$n" INT 130 layer-drop -q -m - --drop 1 -o "$T/out"
    stream_kill "$n" TERM 143 layer-drop -q -m - --drop 1 -o "$T/old" -f
    stream_kill "$n" TERM 143 layer-drop -q -m - --drop 1 -o "$T/out.safetensors"
    stream_kill "$n" INT 130 wmask -q -m - -o "$T/out"
    stream_kill "$n" TERM 143 wmask -q -m - -o "$T/old" -f
    stream_kill "$n" INT 130 st-cat -o "$T/out"
    stream_kill "$n" TERM 143 st-cat --dtype bf16 -o "$T/out.safetensors"
    [ ! -e "$T/out" ] && [ ! -e "$T/out.safetensors" ]
  done
  # the forced replace was interrupted every time: the old output is whole
  [ "$before" == "$(cd "$T/old" && sha256sum ./*)" ]
}

# wait until FILE has at least N lines (the tool printed N step lines)
wait_lines() {
  local i
  for i in $(seq 1 600); do
    [ "$(wc -l < "$1" 2>/dev/null || echo 0)" -ge "$2" ] && return 0
    kill -0 "$PID" 2>/dev/null || return 0
    sleep 0.05
  done
}

@test "heal-sft: SIGINT/SIGTERM at several steps: checkpoint, resume command, bit-identical result" {
  head -c 200000 "$SHARED/data/stories/train.txt" > "$T/d.txt"
  local args=(-q -m "$T/m" --data "$T/d.txt" --steps 100 --seq-len 64 --seed 7)
  heal-sft "${args[@]}" -o "$T/ref" > /dev/null
  heal-sft "${args[@]}" --lora-rank 4 -o "$T/refl" > /dev/null
  # interrupted while the data loads (a FIFO that never ends): no step, nothing saved
  mkfifo "$T/fifo"
  bg heal-sft -q -m "$T/m" --data "$T/fifo" --steps 5 -o "$T/never"
  exec 7> "$T/fifo"; echo "Once upon a time" >&7; sleep 0.5
  kill -INT "$PID"; local rc=0; wait "$PID" || rc=$?; exec 7>&-
  [ "$rc" -eq 130 ]; [ ! -e "$T/never" ]; [ ! -e "$T/never.ckpt" ]; no_temps
  local k sig code out
  for k in 1 7 23; do
    for sig in $([ "$k" = 7 ] && echo TERM || echo INT); do
      code=$([ $sig = INT ] && echo 130 || echo 143)
      out="$T/o-$k-$sig"
      bg heal-sft "${args[@]}" -o "$out" > "$T/log" 2> "$T/err"
      wait_lines "$T/log" "$k"
      kill -"$sig" "$PID"; rc=0; wait "$PID" || rc=$?
      [ "$rc" -eq "$code" ] || { echo "exit $rc (want $code)"; cat "$T/err"; return 1; }
      [ "$(wc -l < "$T/err")" -eq 1 ] || { cat "$T/err"; return 1; }
      grep -q "resume with: heal-sft .*--resume $out.ckpt/step-" "$T/err" || { cat "$T/err"; return 1; }
      no_temps
      [ ! -e "$out" ]
      # the printed command, run as printed, finishes the run: bytes equal the uninterrupted run
      run bash -c "$(sed 's/.*resume with: //' "$T/err") > /dev/null"
      assert_success
      cmp "$out/model.safetensors" "$T/ref/model.safetensors"
    done
  done
  # LoRA too
  bg heal-sft "${args[@]}" --lora-rank 4 -o "$T/l" > "$T/log" 2> "$T/err"
  wait_lines "$T/log" 5
  kill -INT "$PID"; rc=0; wait "$PID" || rc=$?
  [ "$rc" -eq 130 ]
  run bash -c "$(sed 's/.*resume with: //' "$T/err") > /dev/null"
  assert_success
  cmp "$T/l/adapter_model.safetensors" "$T/refl/adapter_model.safetensors"
  no_temps
}

@test "kd-train: SIGINT mid-run: checkpoint, resume bit-identical; --save-teacher interrupted leaves no cache" {
  head -c 100000 "$SHARED/data/stories/train.txt" > "$T/d.txt"
  layer-drop -q -m "$T/m" --drop 2 -o "$T/s" > /dev/null
  # enough steps that the run is still going when its 11th line is seen (a step of this model
  # takes ~3 ms on the one model core)
  local args=(-q -m "$T/s" --teacher "$T/m" --data "$T/d.txt" --steps 150 --seq-len 64)
  kd-train "${args[@]}" -o "$T/ref" > /dev/null
  local k rc
  for k in 2 11; do
    bg kd-train "${args[@]}" -o "$T/o$k" > "$T/log" 2> "$T/err"
    wait_lines "$T/log" "$k"
    kill -INT "$PID"; rc=0; wait "$PID" || rc=$?
    [ "$rc" -eq 130 ] || { cat "$T/err"; return 1; }
    grep -q "resume with: kd-train .*--resume $T/o$k.ckpt/step-" "$T/err"
    no_temps
    run bash -c "$(sed 's/.*resume with: //' "$T/err") > /dev/null"
    assert_success
    cmp "$T/o$k/model.safetensors" "$T/ref/model.safetensors"
  done
  head -c 400000 "$SHARED/data/stories/train.txt" > "$T/big.txt"
  bg kd-train -q --teacher "$T/m" --data "$T/big.txt" --seq-len 64 --save-teacher "$T/c.kdc"
  sleep 0.5; kill -TERM "$PID"; rc=0; wait "$PID" || rc=$?
  [ "$rc" -eq 143 ] || [ "$rc" -eq 0 ]   # 0: it finished first (a fast machine)
  [ "$rc" -eq 0 ] || [ ! -e "$T/c.kdc" ]
  no_temps
}

# --------------------------------------------------------------------------- resume checks

@test "--resume refuses changed options or data (listed), --force overrides; --save-total-limit" {
  head -c 60000 "$SHARED/data/stories/train.txt" > "$T/d.txt"
  local args=(-q -m "$T/m" --data "$T/d.txt" --steps 6 --seq-len 32)
  run heal-sft "${args[@]}" --save-every 1 --save-total-limit 2 -o "$T/a"
  assert_success
  [ "$(ls "$T/a.ckpt")" = "$(printf 'step-5\nstep-6')" ]
  refused 2 heal-sft -q -m "$T/m" --data "$T/d.txt" --steps 9 --seq-len 32 --resume "$T/a.ckpt/step-5" -o "$T/b"
  [[ "$output" == *"steps 9 (checkpoint: 6)"* ]]
  refused 2 heal-sft "${args[@]}" --lr 1e-3 --seed 3 --resume "$T/a.ckpt/step-5" -o "$T/b"
  [[ "$output" == *"lr 0.001 (checkpoint: 2e-05)"* && "$output" == *"seed 3 (checkpoint: 0)"* ]]
  head -c 50000 "$SHARED/data/stories/train.txt" > "$T/d.txt"
  refused 2 heal-sft "${args[@]}" --resume "$T/a.ckpt/step-5" -o "$T/b"
  [[ "$output" == *"data"* ]]
  run heal-sft "${args[@]}" --resume "$T/a.ckpt/step-5" -o "$T/b" -f
  assert_success
  [[ "$output" == *"warning: --resume"*"data"* ]]
  # a checkpoint becomes a loadable model: --steps = its step, nothing left to train
  run heal-sft -q -m "$T/m" --data "$T/d.txt" --steps 5 --seq-len 32 --resume "$T/a.ckpt/step-5" -o "$T/c"
  assert_success
  run ppl -q -m "$T/c" --ctx 64 --max-tokens 100 "$T/d.txt"
  assert_success
  # an earlier run's checkpoints are not mixed with a new run's
  refused 2 heal-sft "${args[@]}" -o "$T/a2" --ckpt-dir "$T/a.ckpt" --save-every 2
}

# --------------------------------------------------------------------------- numbers that lie

# one_error STATUS PATTERN CMD...: exit STATUS, one line containing PATTERN
one_error() {
  local want=$1 pat=$2; shift 2
  run "$@"
  [ "$status" -eq "$want" ] || { echo "exit $status (want $want): $*"; echo "$output"; return 1; }
  [ "${#lines[@]}" -eq 1 ] || { echo "want one line: $*"; echo "$output"; return 1; }
  [[ "$output" == *"$pat"* ]] || { echo "want '$pat': $output"; return 1; }
}

numbers_that_lie() {  # BINDIR
  local B=$1
  python3 "$POISON" "$M" "$T/nan" nan model.layers.3.mlp.down_proj.weight
  python3 "$POISON" "$M" "$T/l3" layers 3
  python3 "$POISON" "$M" "$T/mp" maxpos 64
  python3 "$POISON" "$MODELS/gemma3-tiny" "$T/gnan" nan model.layers.1.self_attn.o_proj.weight
  local d=$T/dd/d.txt
  echo '{"query":"Once upon a","choices":[" time"," dog"],"gold":0}' > "$T/task.jsonl"
  one_error 1 "first appear in layer 3" "$B/ppl" -q -m "$T/nan" --ctx 64 "$d"
  one_error 1 "first appear in layer 1" "$B/ppl" -q -m "$T/gnan" --ctx 64 "$d"
  one_error 1 "first appear in layer 3" "$B/lm-eval" -q -m "$T/nan" --task-file "$T/task.jsonl"
  one_error 1 "first appear in layer 3" "$B/lm-gen" -q -m "$T/nan" -p "Once" -n 3
  one_error 1 "first appear in layer 3" "$B/layer-score" -q -m "$T/nan" --data "$d" --samples 2 --ctx 32
  one_error 1 "first appear in layer 3" "$B/heal-sft" -q -m "$T/nan" --data "$d" --steps 1 --seq-len 32 -o "$T/x"
  one_error 1 "first appear in layer 3" "$B/kd-train" -q -m "$M" --teacher "$T/nan" --data "$d" --steps 1 --seq-len 32 -o "$T/x"
  one_error 1 "first appear in layer 3" "$B/kd-train" -q -m "$T/nan" --teacher "$M" --data "$d" --steps 1 --seq-len 32 -o "$T/x"
  one_error 1 "num_hidden_layers 3, but the tensors hold 5" "$B/layer-score" -q -m "$T/l3" --data "$d"
  one_error 1 "num_hidden_layers 3, but the tensors hold 5" "$B/ppl" -q -m "$T/l3" "$d"
  one_error 1 "num_hidden_layers 3, but the tensors hold 5" "$B/lm-eval" -q -m "$T/l3" --task-file "$T/task.jsonl"
  one_error 1 "num_hidden_layers 3, but the tensors hold 5" "$B/heal-sft" -q -m "$T/l3" --data "$d" --steps 1 -o "$T/x"
  one_error 1 "num_hidden_layers 3, but the tensors hold 5" "$B/wmask" -q -m "$T/l3" --method wanda --data "$d" --samples 2 --ctx 16 -o "$T/x"
  one_error 1 "max_position_embeddings 64" "$B/ppl" -q -m "$T/mp" --ctx 128 "$d"
  one_error 1 "max_position_embeddings 64" "$B/layer-score" -q -m "$T/mp" --data "$d" --ctx 128
  one_error 1 "max_position_embeddings 64" "$B/heal-sft" -q -m "$T/mp" --data "$d" --seq-len 128 --steps 1 -o "$T/x"
  one_error 1 "max_position_embeddings 64" "$B/kd-train" -q -m "$T/mp" --teacher "$T/mp" --data "$d" --seq-len 128 --steps 1 -o "$T/x"
  python3 -c "import json; print(json.dumps({'query': open('$d').read()[:2000], 'choices': [' a', ' b'], 'gold': 0}))" > "$T/long.jsonl"
  one_error 1 "max_position_embeddings 64" "$B/lm-eval" -q -m "$T/mp" --task-file "$T/long.jsonl" --max-length 100
  one_error 1 "max_position_embeddings 64" "$B/lm-gen" -q -m "$T/mp" -p "$(head -c 1000 "$d")" -n 3
  [ ! -e "$T/x" ]
  # opting in: a warning, then the number
  run "$B/ppl" -m "$T/mp" --ctx 128 --max-tokens 200 --allow-long-context "$d"
  assert_success
  [[ "$output" == *"warning:"*"--allow-long-context"* ]]
}

@test "NaN weights, config/tensor mismatch, positions past the context: exit 1, one clear line" {
  numbers_that_lie "$ROOT/bin"
}

@test "the same under ASan+UBSan" {
  [ -n "$LOP_NO_SAN" ] && skip "LOP_NO_SAN set"
  for t in ppl lm-eval lm-gen layer-score heal-sft kd-train wmask; do need_san $t; done
  numbers_that_lie "$SANBIN"
}

@test "suspicious requests warn once; outputs without a usable config or tokenizer are errors" {
  run layer-drop -q -m "$T/m" --drop 1,1 -o "$T/a"
  assert_success
  [ "$(grep -c 'warning: --drop 1,1: layer 1 is listed more than once' <<< "$output")" -eq 1 ]
  run layer-drop -q -m "$T/m" --keep 0-2,1-3 -o "$T/b"
  assert_success
  [[ "$output" == *"warning: --keep 0-2,1-3: layer 1 is listed more than once"* ]]
  run wmask -q -m "$T/m" --sparsity 0.995 -o "$T/c"
  assert_success
  [ "$(grep -c 'warning: --sparsity 0.995' <<< "$output")" -eq 1 ]
  : > "$T/m/tokenizer.json"
  refused 1 layer-drop -q -m "$T/m" --drop 1 -o "$T/d"
  refused 1 wmask -q -m "$T/m" -o "$T/d"
  refused 1 heal-sft -q -m "$T/m" --data "$T/dd/d.txt" --steps 1 -o "$T/d"
  refused 1 st-cat -q "$T/m" -o "$T/d"
  echo '{"broken": ' > "$T/m/tokenizer.json"
  refused 1 layer-drop -q -m "$T/m" --drop 1 -o "$T/d"
  # a file output carries no tokenizer: fine
  run layer-drop -q -m "$T/m" --drop 1 -o "$T/d.safetensors"
  assert_success
}
