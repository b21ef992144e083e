#!/usr/bin/env bash
# gpu-run.sh — everything one call to a GPU machine does, in one command: unpack the carried
# Debian packages (no registry there) into /opt/lopdeps (bats into /, it is plain shell), unpack
# the source tree and the ../shared fixtures, build with nvcc, then the CUDA checks (kernel unit
# tests, the goldens on the GPU, tests/cuda.bats) and the benchmark (bench/gpu-forward.sh). Logs
# go to $OUT; the benchmark's table is printed last.
#
#   bash bench/gpu-run.sh [CARRIED_DIR]     # from the checkout the device received; CARRIED_DIR
#        (default .gpu, ignored by git, named in the call's carry) holds debs/ (as
#        ../shared/device/README.md lists, plus zstd bats bats-assert bats-support) and
#        shared.tar.zst (models/ and data/ of ../shared the tests and the bench read), and
#        optionally src/ (a tree to build instead of the checkout)
# Stages (GPU_STAGES, default "build test bench"):
#   build      unpack, make all CUDA=1 (sm_90)
#   test       build/test_cuda (every kernel against the cpu's), the goldens on the GPU
#              (test_model; test_train in f32 and bf16), tests/cuda.bats
#   train      test_train alone (f32 and bf16) and the training tests of tests/cuda.bats
#   acc        bench/gpu-bf16-accuracy.sh
#   bench      bench/gpu-forward.sh (ppl, lm-eval against PyTorch + transformers)
#   trainbench bench/gpu-train.sh (heal-sft, kd-train against PyTorch + transformers + PEFT)
#   recipe     the S0 recipe on the GPU: make -C examples/gemma3-depth-heal check DEVICE=cuda
#   profile    heal-sft on random weights of PROFILE_MODELS (default qwen3-0.6b; gemma-3-4b-17l is
#              the depth card's shape, trained with LoRA r16), 8 x 512, PROFILE_STEPS steps (default
#              12: the first step's setup weighs little), with LOP_CUDA_PROFILE=1 (GPU time of each
#              kind of op, by events); then once more under each of PROFILE_VARIANTS (';'-separated
#              environment settings; default LOP_CUDA_ATTN_BWD=mma)
# Env: OUT (default /tmp/lop-out), gpu-forward.sh's LOP_GPU_* and gpu-train.sh's settings.
set -u
SRC=$PWD
G=$(cd "${1:-.gpu}" && pwd)
[ -d "$G/src" ] && SRC=$G/src
OUT=${OUT:-/tmp/lop-out}
STAGES=${GPU_STAGES:-build test bench}
mkdir -p "$OUT"
W=/tmp/w
D=/opt/lopdeps
L=$D/usr/lib/x86_64-linux-gnu
stage() { echo "=== $1 ($(date -u +%T))"; }
has() { case " $STAGES " in *" $1 "*) return 0;; esac; return 1; }

export LD_LIBRARY_PATH=$L:$L/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if has build || [ ! -x "$W/lop/bin/ppl" ]; then
  stage "unpack"
  rm -rf "$W"; mkdir -p "$W/lop" "$W/shared" "$D"
  for f in "$G"/debs/*.deb; do
    case $(basename "$f") in bats*) dpkg -x "$f" / ;; *) dpkg -x "$f" "$D" ;; esac
  done
  (cd "$SRC" && tar --exclude=./.gpu --exclude=./build --exclude=./bin --exclude=./.git -cf - .) | tar -C "$W/lop" -xf -
  "$D/usr/bin/zstd" -dc --long=27 "$G/shared.tar.zst" | tar -C "$W/shared" -xf -
  stage "build"
  export CFLAGS="-I$D/usr/include -I$D/usr/include/x86_64-linux-gnu -I$D/usr/include/x86_64-linux-gnu/openblas-pthread"
  export LDFLAGS="-L$L -L$L/openblas-pthread -Wl,-rpath,$L -Wl,-rpath,$L/openblas-pthread"
  nvcc --version | tail -2; ls /usr/local/cuda/lib64 2>/dev/null | grep -c cublas
  if ! make -C "$W/lop" -j"$(nproc)" all CUDA=1 CUDA_ARCH="-gencode arch=compute_90,code=sm_90" > "$OUT/build.log" 2>&1; then
    grep -E "error:|Error [0-9]|undefined" "$OUT/build.log" | head -30
    exit 1
  fi
  echo "built: $(ls "$W/lop/bin" | wc -l) tools, $(ls -la "$W/lop/build/liblop_cuda.so" | awk '{print $5}') bytes of liblop_cuda.so"
fi
cd "$W/lop"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader
if has test; then
  stage "kernel unit tests (build/test_cuda)"
  timeout 180 build/test_cuda > "$OUT/test_cuda.log" 2>&1; echo "rc=$?"
  grep -E "^(FAIL|test_cuda)" "$OUT/test_cuda.log" | head -40
  stage "goldens on the GPU (LOP_TEST_DEVICE=cuda build/test_model)"
  LOP_TEST_DEVICE=cuda timeout 180 build/test_model > "$OUT/test_model.log" 2>&1; echo "rc=$?"
  tail -12 "$OUT/test_model.log"
fi
if has test || has train; then
  for g in f32 bf16; do
    stage "training goldens on the GPU (LOP_TEST_DEVICE=cuda LOP_TEST_GEMM=$g build/test_train)"
    LOP_SHARED=$W/shared LOP_TEST_DEVICE=cuda LOP_TEST_GEMM=$g timeout 180 build/test_train > "$OUT/test_train_$g.log" 2>&1
    echo "rc=$?"; grep -vE "^  LoRA" "$OUT/test_train_$g.log" | head -30
  done
fi
if has train && ! has test; then
  stage "tests/cuda.bats (training)"
  LOP_SHARED=$W/shared timeout 400 bats --print-output-on-failure -f "heal-sft|kd-train" tests/cuda.bats > "$OUT/cuda_bats.log" 2>&1; echo "rc=$?"
  grep -vE "^\s*$" "$OUT/cuda_bats.log" | head -60
fi
if has test; then
  stage "tests/cuda.bats"
  LOP_SHARED=$W/shared timeout 400 bats --print-output-on-failure tests/cuda.bats > "$OUT/cuda_bats.log" 2>&1; echo "rc=$?"
  grep -vE "^\s*$" "$OUT/cuda_bats.log" | head -60
fi
if has acc; then
  stage "bf16 against f32 on the GPU (bench/gpu-bf16-accuracy.sh)"
  LOP_SHARED=$W/shared timeout 120 bash bench/gpu-bf16-accuracy.sh > "$OUT/acc.log" 2>&1; echo "rc=$?"
  cat "$OUT/acc.log"
fi
if has bench; then
  stage "bench/gpu-forward.sh"
  LOP_SHARED=$W/shared LOP_BENCH_OUT=/tmp/bench timeout $(( ${GPU_DEADLINE:-575} - SECONDS )) bash bench/gpu-forward.sh > "$OUT/bench.log" 2>&1
  echo "rc=$?"
  cp /tmp/bench/table.jsonl "$OUT/" 2>/dev/null
  grep -v '^{' "$OUT/bench.log" | tail -20
fi
if has recipe; then
  stage "S0 recipe on the GPU (make -C examples/gemma3-depth-heal check DEVICE=cuda)"
  export PATH=$W/lop/bin:$PATH
  timeout 240 make -C examples/gemma3-depth-heal check DEVICE=cuda SHARED=$W/shared > "$OUT/recipe.log" 2>&1
  echo "rc=$?"; tail -15 "$OUT/recipe.log"
  grep -h '"tokens_per_s"' examples/gemma3-depth-heal/out-check/heal.jsonl 2>/dev/null | tail -1
fi
if has profile; then
  stage "profile: LOP_CUDA_PROFILE=1 heal-sft --device cuda (8 x 512, ${PROFILE_STEPS:-12} steps)"
  python3 -c "
import json, random
r = random.Random(1)
for _ in range(8 * ${PROFILE_STEPS:-12}): print(json.dumps({'ids': [r.randrange(2, 151936) for _ in range(513)]}))" > /tmp/prof.jsonl
  for name in ${PROFILE_MODELS:-qwen3-0.6b}; do
    if [ ! -f /tmp/prof-$name/config.json ]; then
      case $name in   # gemma-3-4b-17l: the depth card's shape (layers 0-7 and 25-33 of 34)
        *-17l) LOP_SHARED=$W/shared python3 bench/gen-model.py --torch-device cuda ${name%-17l} /tmp/prof-full > /dev/null &&
               bin/layer-drop -q -m /tmp/prof-full --keep 0-7,25-33 -o /tmp/prof-$name > /dev/null && rm -rf /tmp/prof-full ;;
        *) LOP_SHARED=$W/shared python3 bench/gen-model.py --torch-device cuda $name /tmp/prof-$name > /dev/null ;;
      esac
    fi
    extra=; case $name in *-17l) extra="--lora-rank 16";; esac   # the card heals with LoRA
    LOP_CUDA_PROFILE=1 bin/heal-sft -q -m /tmp/prof-$name --data /tmp/prof.jsonl -o /tmp/prof-out -f --steps ${PROFILE_STEPS:-12} \
      --seq-len 512 --batch 8 --no-shuffle --device cuda $extra ${PROFILE_ARGS:-} > /tmp/prof.steps 2> /tmp/prof.err
    echo "rc=$? $name"; grep -o '"step":[0-9]*,"loss":[0-9.]*\|"tokens_per_s":[0-9.]*' /tmp/prof.steps | paste -sd' '
    sed "s/^/  [$name] /" /tmp/prof.err | tail -32
    # variants (PROFILE_VARIANTS, ';'-separated environment settings, default: the fused
    # attention backward): each a second run of the same steps, its speed and its profile
    IFS=';' read -ra variants <<< "${PROFILE_VARIANTS-LOP_CUDA_ATTN_BWD=mma}"
    for var in "${variants[@]}"; do
      [ -n "$var" ] || continue
      env $var LOP_CUDA_PROFILE=1 bin/heal-sft -q -m /tmp/prof-$name --data /tmp/prof.jsonl -o /tmp/prof-out -f \
        --steps ${PROFILE_STEPS:-12} --seq-len 512 --batch 8 --no-shuffle --device cuda $extra ${PROFILE_ARGS:-} > /tmp/prof.steps 2> /tmp/prof.err
      echo "rc=$? $name $var"; grep -o '"tokens_per_s":[0-9.]*' /tmp/prof.steps | tail -3 | paste -sd' '
      grep -E "in ops|matmul|attention|lora|rmsnorm|sumsq" /tmp/prof.err | sed "s/^/  [$name $var] /"
    done
  done
fi
if has trainbench; then
  stage "bench/gpu-train.sh"
  LOP_SHARED=$W/shared LOP_BENCH_OUT=/tmp/bench-train timeout $(( ${GPU_DEADLINE:-575} - SECONDS )) bash bench/gpu-train.sh > "$OUT/trainbench.log" 2>&1
  echo "rc=$?"
  cp /tmp/bench-train/lop.jsonl /tmp/bench-train/hf.jsonl "$OUT/" 2>/dev/null
  (cd /tmp/bench-train && tar -czf "$OUT/trainbench-runs.tar.gz" *.err *.steps 2>/dev/null)   # one file: the tool returns few
  grep -v '^{' "$OUT/trainbench.log" | tail -30
fi
stage done
