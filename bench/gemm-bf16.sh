#!/usr/bin/env bash
# bf16 GEMM kernel (libcommon/gemm_bf16.c) alone, 1 thread, against OpenBLAS sgemm (SkylakeX
# kernels) on the same transformer shapes, back to back, 3 rounds (read the best: the machine may
# be shared); then the bf16 ceiling with all threads (matmul_forward_bf16).
set -u
cd "$(dirname "$0")/.."
OUT=${LOP_BENCH_OUT:-$PWD/bench/out}
mkdir -p "$OUT"
[ -f build/libcommon.a ] || { echo "gemm-bf16.sh: build first (make all)" >&2; exit 1; }
grep -qw avx512_bf16 /proc/cpuinfo || { echo "gemm-bf16.sh: no avx512_bf16 on this CPU, nothing to measure" >&2; exit 0; }
gcc -O2 -march=native -fopenmp -Ilibcommon -I/usr/include/x86_64-linux-gnu/openblas-pthread \
    -o "$OUT/gemm_bf16" bench/gemm_bf16.c build/libcommon.a -lopenblas -lm || exit 1
OPENBLAS_CORETYPE=SkylakeX "$OUT/gemm_bf16" 3 0.7
OMP_NUM_THREADS=2 "$OUT/gemm_bf16" --peak
