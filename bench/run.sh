#!/usr/bin/env bash
# make bench: the machine's limits first (sgemm GFLOP/s, disk bandwidth), then every bench/*.sh.
# Each script prints its figures (JSON lines and a human table); outputs go to bench/out/.
set -u
cd "$(dirname "$0")/.."
mkdir -p bench/out
export LOP_BENCH_OUT=$PWD/bench/out
gcc -O2 -o bench/out/machine bench/machine.c -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas
echo "== machine limits (OpenBLAS default kernels, then OPENBLAS_CORETYPE=SkylakeX)"
bench/out/machine | tee bench/out/machine.jsonl
OPENBLAS_CORETYPE=SkylakeX bench/out/machine | tee -a bench/out/machine.jsonl
# disk: write and read back 1 GiB (read after dropping the page cache when allowed)
f=bench/out/disk.tmp
w=$(dd if=/dev/zero of=$f bs=16M count=64 oflag=direct 2>&1 | awk '/copied/{print $(NF-1), $NF}')
sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null
r=$(dd if=$f of=/dev/null bs=16M 2>&1 | awk '/copied/{print $(NF-1), $NF}')
rm -f $f
echo "{\"bench\":\"disk\",\"write\":\"$w\",\"read\":\"$r\"}" | tee -a bench/out/machine.jsonl
status=0
for s in bench/*.sh; do
  [ "$s" = bench/run.sh ] && continue
  [ "$s" = bench/gpu-run.sh ] && continue   # the device machine's driver script, not a bench
  echo "== $s"
  case $s in bench/gpu-*)
    if ! nvidia-smi -L > /dev/null 2>&1 || [ ! -f build/liblop_cuda.so ]; then
      echo "skip: $s needs a GPU and a build with CUDA (build/liblop_cuda.so)"; continue
    fi ;;
  esac
  bash "$s" || { echo "bench: $s failed" >&2; status=1; }
done
exit $status
