#!/usr/bin/env bash
# bench/mpi.sh — data-parallel training under mpirun on this machine: heal-sft steps/s with
# -np 1 (2 threads) against -np 2 (1 thread each), full fine-tuning and LoRA r=16 of prose13m
# (../shared), and the bytes each rank sends per step (sent_bytes of the step lines: log2(N) x 4
# bytes per trainable parameter, plus the per-micro-batch loss numbers) so that the scaling on a
# real network can be predicted: step time ~ compute / N + sent_bytes / bandwidth.
# Both runs write the same weights (checked: cmp). --bind-to none: Open MPI binds each rank to ONE
# core by default, which would run -np 1 -t 2 on one core. The machine is shared: the ratio of one run of
# each is the figure; absolute speeds are loaded.
set -u
cd "$(dirname "$0")/.."
OUT=${LOP_BENCH_OUT:-$PWD/bench/out}
mkdir -p "$OUT"
command -v mpirun > /dev/null || { echo "bench/mpi.sh: mpirun is absent (make deps installs openmpi-bin): skipped"; exit 0; }
M=${MPI_BENCH_MODEL:-../shared/models/prose13m}
[ -f "$M/config.json" ] || { echo "bench/mpi.sh: $M is absent: skipped"; exit 0; }
STEPS=${MPI_BENCH_STEPS:-6}
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
V=$(/usr/bin/python3 -c "import json; print(json.load(open('$M/config.json'))['vocab_size'])")
/usr/bin/python3 -c "
import json, random
r = random.Random(1)
for _ in range($STEPS * 4): print(json.dumps({'ids': [r.randrange(2, $V) for _ in range(257)]}))" > "$OUT/mpi-data.jsonl"
run() { # name np threads extra...
  local name=$1 np=$2 t=$3; shift 3
  mpirun --allow-run-as-root --oversubscribe --bind-to none -q -np "$np" bin/heal-sft -q -t "$t" -m "$M" \
    --data "$OUT/mpi-data.jsonl" --seq-len 256 --batch 1 --grad-accum 4 --steps "$STEPS" \
    --no-shuffle --lr 1e-4 -f -o "$OUT/mpi-$name" "$@" > "$OUT/mpi-$name.jsonl" || return 1
}
for mode in full lora; do
  extra=(); [ $mode = lora ] && extra=(--lora-rank 16)
  run $mode-np1 1 2 "${extra[@]}" || exit 1
  run $mode-np2 2 1 "${extra[@]}" || exit 1
  f=model.safetensors; [ $mode = lora ] && f=adapter_model.safetensors
  cmp -s "$OUT/mpi-$mode-np1/$f" "$OUT/mpi-$mode-np2/$f" && same=true || same=false
  echo "$same" > "$OUT/mpi-$mode.same"
done
/usr/bin/python3 - "$OUT" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, sys
out, load = sys.argv[1], float(sys.argv[2])
print("load average while measured: %.1f on %d cores (a shared machine: one run's ratio)" % (load, __import__("os").cpu_count()))
def lines(p): return [json.loads(l) for l in open(p)]
print("| mode | trainable params | -np 1 (2 threads) steps/s | -np 2 (1 thread each) steps/s | ratio | sent bytes/step/rank | weights identical |")
print("|---|---|---|---|---|---|---|")
for mode in ("full", "lora"):
    r = {}
    for np in (1, 2):
        L = lines("%s/mpi-%s-np%d.jsonl" % (out, mode, np))
        steps = [l for l in L if "grad_norm" in l][1:]        # the first step warms up
        secs = sum(s["tokens"] / s["tokens_per_s"] for s in steps)
        r[np] = (len(steps) / secs, steps[-1].get("sent_bytes", 0), L[-1]["trainable_params"])
    same = open("%s/mpi-%s.same" % (out, mode)).read().strip()
    ratio = r[2][0] / r[1][0]
    print("| %s | %d | %.3f | %.3f | %.2f | %d | %s |" % (mode, r[1][2], r[1][0], r[2][0], ratio, r[2][1], same))
    print(json.dumps({"bench": "mpi", "mode": mode, "trainable_params": r[1][2],
                      "np1_t2_steps_per_s": r[1][0], "np2_t1_steps_per_s": r[2][0],
                      "ratio_np2_to_np1": ratio, "sent_bytes_per_step_per_rank": r[2][1],
                      "weights_identical": same == "true", "load_average": load}))
PY
rm -rf "$OUT"/mpi-full-np? "$OUT"/mpi-lora-np? "$OUT"/mpi-*.ckpt
