#!/usr/bin/env bats
# mpirun jobs (docs/mpi.md): the weights of heal-sft (full, LoRA) and kd-train do not depend on
# the rank count (byte-identical for -np 1, 2, 4, and across a resume with another count);
# kd-train --save-teacher, lm-eval, layer-score and wmask --method wanda give one process's
# bytes; a killed rank ends the job in seconds with no output; hostile jobs are refused.
# Skips without mpirun (make deps installs openmpi-bin), but for the refusals that need none.
# Tiny models, few steps, 10 mpirun launches (~1-2 s each of Open MPI start-up).
load helpers

setup() {
  need_shared
  T=$(scratch)
}
need_mpirun() {
  command -v mpirun > /dev/null || skip "mpirun is absent (Open MPI: make deps installs openmpi-bin)"
}

# mpirun N tool args...: quiet (-q: no Open MPI banners), root allowed, more ranks than cores
mpi() { local n=$1; shift; mpirun --allow-run-as-root --oversubscribe -q -np "$n" "$@"; }

# the kill test's mpirun, should the test fail before it ends
teardown() { [ -n "${T:-}" ] && [ -f "$T/job" ] && kill "$(cat "$T/job")" 2> /dev/null || true; }

rand_ids() { python3 -c "
import json, random
r = random.Random($4)
for _ in range($2): print(json.dumps({'ids': [r.randrange($1) for _ in range($3)]}))"; }

@test "heal-sft full: -np 2 and -np 4 (resumed from the -np 2 checkpoint) write -np 1's bytes" {
  need_mpirun
  rand_ids 32000 16 33 7 > "$T/d.jsonl"
  c=(-q -t 1 -m "$MODELS/llama-tiny" --data "$T/d.jsonl" --batch 1 --grad-accum 4 --steps 4 --seq-len 32 --seed 3)
  heal-sft "${c[@]}" -o "$T/n1" | grep '^{"step"' | cut -d, -f1-2 > "$T/n1.log"
  mpi 2 heal-sft "${c[@]}" -o "$T/n2" --save-every 2 --ckpt-dir "$T/ck" | grep '^{"step"' | cut -d, -f1-2 > "$T/n2.log"
  [ "$(wc -l < "$T/n1.log")" -eq 4 ]
  cmp "$T/n1/model.safetensors" "$T/n2/model.safetensors"
  diff "$T/n1.log" "$T/n2.log"          # the step lines (loss) too
  [ -f "$T/ck/step-2/state.json" ]
  mpi 4 heal-sft "${c[@]}" -o "$T/n4" --resume "$T/ck/step-2"
  cmp "$T/n1/model.safetensors" "$T/n4/model.safetensors"
  # a rank count that does not fit the step's micro-batches is refused, by rank 0 alone
  run mpi 3 heal-sft "${c[@]}" -o "$T/n3"
  assert_failure 2
  [ "${#lines[@]}" -eq 1 ]; assert_output --partial "power of two that divides --grad-accum"
  [ ! -e "$T/n3" ]
}

@test "heal-sft LoRA with dropout: -np 4 writes -np 1's adapter" {
  need_mpirun
  rand_ids 32000 8 33 5 > "$T/d.jsonl"
  c=(-q -t 1 -m "$MODELS/llama-tiny" --data "$T/d.jsonl" --batch 1 --grad-accum 4 --steps 2 --seq-len 32
     --lora-rank 4 --lora-dropout 0.1 --lr 1e-3 --seed 5)
  heal-sft "${c[@]}" -o "$T/a1" > /dev/null
  mpi 4 heal-sft "${c[@]}" -o "$T/a4" > /dev/null
  cmp "$T/a1/adapter_model.safetensors" "$T/a4/adapter_model.safetensors"
}

@test "kd-train: on-the-fly teacher, --save-teacher and the cached teacher under -np 2 = one process" {
  need_mpirun
  STU=$MODELS/llama-tiny-student TEA=$MODELS/llama-tiny
  head -c 1500 "$SHARED/data/stories/train.txt" > "$T/d.txt"
  O=(-q -t 1 --data "$T/d.txt" --seq-len 32 --batch 1 --grad-accum 2 --steps 2 --temperature 2 --lr 1e-3)
  kd-train -m "$STU" --teacher "$TEA" "${O[@]}" -o "$T/k1" | cut -d, -f1-4 > "$T/k1.log"
  mpi 2 kd-train -m "$STU" --teacher "$TEA" "${O[@]}" -o "$T/k2" | cut -d, -f1-4 > "$T/k2.log"
  cmp "$T/k1/model.safetensors" "$T/k2/model.safetensors"
  diff <(grep '^{"step"' "$T/k1.log") <(grep '^{"step"' "$T/k2.log")   # loss and the kd terms
  kd-train --teacher "$TEA" "${O[@]}" --save-teacher "$T/c1" --top-k 8 -m "$STU" > /dev/null
  mpi 2 kd-train --teacher "$TEA" "${O[@]}" --save-teacher "$T/c2" --top-k 8 -m "$STU" > /dev/null
  cmp "$T/c1" "$T/c2"
  # training from the cache (written by the job): -np 2 = one process
  kd-train -m "$STU" --teacher-cache "$T/c2" "${O[@]}" -o "$T/kc1" > /dev/null
  mpi 2 kd-train -m "$STU" --teacher-cache "$T/c2" "${O[@]}" -o "$T/kc2" > /dev/null
  cmp "$T/kc1/model.safetensors" "$T/kc2/model.safetensors"
}

@test "a rank killed mid-run ends the job within seconds: one line, non-zero, no output" {
  need_mpirun
  rand_ids 32000 8 33 7 > "$T/d.jsonl"
  mpirun --allow-run-as-root --oversubscribe -q -np 2 heal-sft -q -t 1 -m "$MODELS/llama-tiny" \
    --data "$T/d.jsonl" --grad-accum 2 --steps 300 --seq-len 32 --save-every 1 --ckpt-dir "$T/ck" \
    -o "$T/out" > "$T/log" 2> "$T/err" &
  job=$!
  echo $job > "$T/job"
  for i in $(seq 100); do [ -d "$T/ck/step-1" ] && break; sleep 0.2; done
  [ -d "$T/ck/step-1" ]
  victim=
  for p in $(pgrep -P $job); do
    tr '\0' '\n' < /proc/$p/environ | grep -qx 'OMPI_COMM_WORLD_RANK=1' && victim=$p
  done
  [ -n "$victim" ]
  kill -9 "$victim"
  t0=$(date +%s)
  rc=0; wait $job || rc=$?
  [ "$rc" -ne 0 ]
  [ $(( $(date +%s) - t0 )) -le 10 ]
  [ ! -e "$T/out" ]
  [ "$(grep -c '^heal-sft: ' "$T/err")" -eq 1 ]
  grep -q "stopped" "$T/err"
}

@test "hostile jobs are refused at start: ranks with other options or data" {
  need_mpirun
  # rank 1: another --lr; rank 2: the same command line on other data (each rank in its folder)
  mkdir "$T/A" "$T/B"; rand_ids 32000 4 17 8 > "$T/A/d.jsonl"; rand_ids 32000 4 17 9 > "$T/B/d.jsonl"
  c=(-q -t 1 -m "$MODELS/llama-tiny" --data d.jsonl --grad-accum 4 --steps 1 --seq-len 16 -o "$T/o")
  run mpirun --allow-run-as-root --oversubscribe -q -np 1 -wdir "$T/A" heal-sft "${c[@]}" \
    : -np 1 -wdir "$T/A" heal-sft "${c[@]}" --lr 1e-3 : -np 2 -wdir "$T/B" heal-sft "${c[@]}"
  assert_failure 2
  [ "${#lines[@]}" -eq 1 ]
  assert_output --partial "ranks 1, 2, 3 of the job have different options, model or data"
  [ ! -e "$T/o" ]
}

@test "without mpirun's library, or for a tool that runs as one process: one clear line" {
  # the launcher's environment without mpirun: no Open MPI needed to check either refusal
  run env OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 LOP_MPI_LIB=/nonexistent/libmpi.so heal-sft --version
  assert_failure 2
  [ "${#lines[@]}" -eq 1 ]; assert_output --partial "Open MPI's library cannot be loaded"
  run env OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 ppl -m "$MODELS/llama-tiny" --data /dev/null
  assert_failure 2
  [ "${#lines[@]}" -eq 1 ]; assert_output --partial "ppl runs as one process"
  # rank 1 of such a job leaves quietly (rank 0 speaks)
  run env OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=1 ppl -m "$MODELS/llama-tiny" --data /dev/null
  assert_failure 2
  [ -z "$output" ]
}

@test "lm-eval, layer-score, wmask --method wanda under -np 2 give one process's results" {
  need_mpirun
  # batched forwards (the default --batch-tokens): the ranks run the one-process plan's batches
  args=(-q -t 1 -m "$MODELS/stories260K" --data-dir "$SHARED/data/eval" --tasks hellaswag,lambada_openai --limit 6)
  lm-eval "${args[@]}" -o "$T/e1.json" --log-samples "$T/e1.jsonl" > "$T/e1.log"
  mpi 2 lm-eval "${args[@]}" -o "$T/e2.json" --log-samples "$T/e2.jsonl" > "$T/e2.log"
  diff "$T/e1.log" "$T/e2.log"
  cmp "$T/e1.jsonl" "$T/e2.jsonl"
  diff <(grep -v '"date"\|total_evaluation_time' "$T/e1.json") <(grep -v '"date"\|total_evaluation_time' "$T/e2.json")
  a=(-q -t 1 -m "$MODELS/stories260K" --data "$SHARED/data/stories/test.txt" --samples 16 --ctx 256 --metric kl)
  layer-score "${a[@]}" | grep -v seconds > "$T/s1"
  mpi 2 layer-score "${a[@]}" | grep -v seconds > "$T/s2"
  diff "$T/s1" "$T/s2"
  w=(-q -t 1 -m "$MODELS/llama-tiny" --method wanda --sparsity 0.5 --data "$SHARED/data/stories/test.txt" --samples 6 --ctx 48 --batch 2)
  wmask "${w[@]}" -o "$T/w1.safetensors" > /dev/null
  mpi 2 wmask "${w[@]}" -o "$T/w2.safetensors" > /dev/null
  cmp "$T/w1.safetensors" "$T/w2.safetensors"
}
