#!/usr/bin/env bash
# gpu-train-run.sh — what one call to the GPU machine does for the training work (issue 22), in one
# command: unpack the carried Debian packages into /opt/lopdeps (no registry there), unpack the
# source tree, build with nvcc (sm_90), then the CUDA kernel unit tests (build/test_cuda: the
# forward ops and every training op against the CPU backend) and bench/gpu-train.sh. Logs go to
# $OUT; the benchmark's table is printed last.
#
#   bash .gpu/gputrain/gpu-train-run.sh [CARRIED_DIR]   # CARRIED_DIR (default .gpu/gputrain) holds
#        src.tar.gz (git archive of the tree) and debs/ (as ../shared/device/README.md lists)
# Env: GPU_STAGES (default "build test bench"), OUT (default /tmp/lop-out), and gpu-train.sh's.
set -u
G=$(cd "${1:-.gpu/gputrain}" && pwd)
OUT=${OUT:-/tmp/lop-out}
STAGES=${GPU_STAGES:-build test bench}
mkdir -p "$OUT"
W=/tmp/wtrain
D=/opt/lopdeps
L=$D/usr/lib/x86_64-linux-gnu
stage() { echo "=== $1 ($(date -u +%T))"; }
has() { case " $STAGES " in *" $1 "*) return 0;; esac; return 1; }
export LD_LIBRARY_PATH=$L:$L/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export CFLAGS="-I$D/usr/include -I$D/usr/include/x86_64-linux-gnu -I$D/usr/include/x86_64-linux-gnu/openblas-pthread"
export LDFLAGS="-L$L -L$L/openblas-pthread -Wl,-rpath,$L -Wl,-rpath,$L/openblas-pthread"
if has build || [ ! -f "$W/build/liblop_cuda.so" ]; then
  stage "unpack + build"
  rm -rf "$W"; mkdir -p "$W" "$D"
  for f in "$G"/debs/*.deb; do dpkg -x "$f" "$D"; done
  tar xzf "$G/src.tar.gz" -C "$W"
  if ! make -C "$W" -j"$(nproc)" all CUDA=1 CUDA_ARCH="-gencode arch=compute_90,code=sm_90" > "$OUT/build.log" 2>&1; then
    grep -E "error|Error [0-9]|undefined" "$OUT/build.log" | head -30
    exit 1
  fi
  echo "built: $(ls "$W/bin" | wc -l) tools, liblop_cuda.so $(stat -c %s "$W/build/liblop_cuda.so") bytes"
fi
cd "$W"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
if has test; then
  stage "kernel unit tests (build/test_cuda)"
  timeout 300 build/test_cuda > "$OUT/test_cuda.log" 2>&1; echo "rc=$?"
  grep -E "^(FAIL|test_cuda)" "$OUT/test_cuda.log" | head -60
  echo "$(grep -c '^ok' "$OUT/test_cuda.log") checks ok"
fi
if has bench; then
  stage "bench/gpu-train.sh"
  LOP_BENCH_OUT=/tmp/bench-train timeout $(( ${GPU_DEADLINE:-580} - SECONDS )) bash bench/gpu-train.sh > "$OUT/bench.log" 2>&1
  echo "rc=$?"
  cp /tmp/bench-train/*.jsonl "$OUT/" 2>/dev/null
  grep -v '^{' "$OUT/bench.log" | tail -40
fi
stage done
