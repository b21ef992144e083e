#!/usr/bin/env bash
# tools/fuzz.sh — libFuzzer (clang 14, ASan+UBSan) on every parser lop exposes to files from
# the internet. `make fuzz [FUZZ_SECONDS=N] [FUZZ_TARGETS="a b"] [FUZZ_JOBS=J]`.
#
#   tools/fuzz.sh [SECONDS]          build, seed, run each target SECONDS (default 300), J at a time
#   tools/fuzz.sh --smoke [SECONDS]  the regression run of `make test` (tests/fuzz.bats): every
#                                    committed seed and crash reproducer once, then SECONDS
#                                    (default 3) of fuzzing per target from them; no corpus kept
#   tools/fuzz.sh --build            build the targets only
#
# Targets (tests/fuzz/<name>_fuzz.c; a "// fuzz-sources:" line names cmd/ files it needs):
#   st_header   safetensors header + image            rebuilt header parses back to the same tensors
#   tok_json    tokenizer.json + tokenizer_config.json + text: ids in range, encode deterministic,
#               BOS first, decode accepts every id, vocab map and table agree
#   tok_encode  real tokenizers (../shared) on arbitrary bytes, with and without --lossy:
#               decode(encode(text)) == text (or its NFC / its U+2581-as-space form), invalid
#               UTF-8 refused naming the offset, lossy text encodes
#   config      config.json of every family: parameter count == the loader's shapes, written
#               config reads back the same, keeping layers keeps their types; model-card's reader
#   train_data  training data (text, JSONL, instruction JSONL with a template, {"ids"}, .zst) and
#               calibration data: every id in range, every batch within the data, targets match
#   eval_data   eval tasks (harness JSONL shapes, MMLU CSV, hellaswag 6-line file, piqa + labels):
#               every document well formed (gold in range, strings present, code-point counts)
#   kd_cache    kd teacher cache: a cache that opens and reads re-serializes to one that reads
#               back identically, and re-serializing that gives the same bytes
#   ckpt        training checkpoints (state.safetensors + state.json, full and LoRA): a loaded
#               checkpoint saves to one that loads to the same values, byte-identical on resave
#   mc_logs     model-card's log reader (JSON lines of every tool, lm-eval results) + rendering
#
# Seeds: tests/fuzz/seeds/<target>/ (committed: small hostile cases and every crash found, as
# regression inputs) plus, at fuzz time, ../shared's real files (tests/fuzz/make_seeds.py; never
# committed) and valid files the targets write themselves (LOP_FUZZ_WRITE_SEEDS). Corpora grow in
# build/fuzz/corpus/<target>; crashes land in build/fuzz/<target>/ (crash-*, leak-*, timeout-*).
# Limits every target runs under: -rss_limit_mb=2048 (and libFuzzer's malloc limit, the same), and
# -timeout=10: a hang or an allocation without bound is a finding. -max_len 64 KB (tok_json 128 KB:
# shrunk real tokenizers; tok_encode 16 KB of text).
#
# Found and fixed (reproducers in tests/fuzz/seeds/<target>/crash-*, hostile seeds h-*):
#   config     libcommon/config.c: sizes each in range but their product overflowed int64 in
#              config_param_count (hidden 2^20 x 2^16 layers x ...): configs implying more than
#              2^53 parameters are refused
#   config     cmd/model-card/arch.c: (int) casts of out-of-range numbers (max_position_embeddings
#              4.7e17); int64 overflow summing safetensors shapes; a use-after-free naming a tensor
#              in an error after the header's JSON was freed
#   eval_data  libcommon/task_load.c: integer fields (gold 2^31) cast before the range check;
#              libcommon/task_text.c: eval files are now UTF-8 as the harness reads them (invalid
#              bytes gave acc_norm lengths Python could not have computed)
#   kd_cache   libcommon/kd_cache.c: a zstd section's declared size was trusted: 13 bytes made it
#              malloc 2 GB; a frame may now claim no more than its bytes can hold
#   topk       (the former cmd/ppl/topk_file.c; ppl --save-logits now writes the kd cache format,
#              fuzzed by kd_cache): ids and targets outside the vocabulary were accepted (--kl-base
#              then reported NaN without a word); the reader refuses them
#   mc_logs    cmd/model-card/logs.c, card.c: undefined casts of huge numbers (step 1e20) and int
#              overflow summing merge spans; numbers saturate, layer numbers are clamped
#   tok_json   libcommon/tok_added.c: added_tokens that contradict themselves or the vocabulary (one
#              content with two ids, one id with two contents, a vocabulary token under another id)
#              gave an id whose string maps back to another id; such files are now refused
#   mc_logs    cmd/model-card/logs.c: a harness "results" that is an array (members without names)
#              passed NULL to strstr (UBSan); such members are skipped
#   tok_json   libcommon/tok_regex.c: PCRE2 ran under its build-time defaults; it now runs under
#              explicit match/depth/heap/JIT-stack limits (a catastrophic regex fails in < 1 s)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=run
case "${1:-}" in --smoke) MODE=smoke; shift ;; --build) MODE=build; shift ;; esac
SECS=${1:-${FUZZ_SECONDS:-}}
[ -n "$SECS" ] || { [ $MODE = smoke ] && SECS=3 || SECS=300; }
JOBS=${FUZZ_JOBS:-1}
OUT=build/fuzz
SHARED=${LOP_SHARED:-../shared}
ALL=$(cd tests/fuzz && ls *_fuzz.c | sed 's/_fuzz\.c$//')
TARGETS=${FUZZ_TARGETS:-$ALL}

bash tools/deps.sh clang libclang-rt-14-dev >&2   # installs them as root, else prints the apt-get line

# ---- build: libcommon and cmd/common through the Makefile (objects in build/fuzz/obj), then one
# binary per target
FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
make --no-print-directory -s -j"$(nproc)" B=$OUT/obj BIN=$OUT/bin CC=clang \
  OPT="$FLAGS -fsanitize=fuzzer-no-link -Wno-pass-failed" $OUT/obj/libcommon.a $OUT/obj/libcli.a >&2
LIBS="-lcjson -lopenblas -lzstd -lpcre2-8 -lutf8proc -lm -lpthread"
for t in $TARGETS; do
  src=tests/fuzz/${t}_fuzz.c
  [ -f "$src" ] || { echo "fuzz: no target $t" >&2; exit 2; }
  extra=$(sed -n 's|^// fuzz-sources: ||p' "$src")
  bin=$OUT/${t}_fuzz
  if [ ! -x "$bin" ] || [ -n "$(find "$src" tests/fuzz/fuzz_util.h $extra $OUT/obj/libcommon.a $OUT/obj/libcli.a -newer "$bin" 2>/dev/null)" ]; then
    dirs=$(for f in $extra; do echo "-I$(dirname "$f")"; done | sort -u)
    clang -std=c11 -D_GNU_SOURCE -fopenmp $FLAGS -fsanitize=fuzzer -Ilibcommon -Icmd/common $dirs \
      -I/usr/include/x86_64-linux-gnu/openblas-pthread "$src" $extra \
      $OUT/obj/libcli.a $OUT/obj/libcommon.a $LIBS -o "$bin"
  fi
done
[ $MODE = build ] && exit 0

# ---- seeds
have_shared=0
[ -d "$SHARED/models" ] && have_shared=1
tokenizers() {   # the real tokenizers, each with what its decode(encode(x)) must give back
  local list=""
  for spec in tokenizers/llama3_1=exact models/qwen3-tiny=nfc models/gemma3-tiny=space \
              models/llama-tiny=sp models/prose13m=sp; do
    [ -f "$SHARED/${spec%=*}/tokenizer.json" ] && list="$list:$SHARED/$spec"
  done
  echo "${list#:}"
}
export LOP_FUZZ_TOKENIZERS=${LOP_FUZZ_TOKENIZERS:-$(tokenizers)}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
seeds_for() {    # seed folders of target $1 (made on first use)
  local t=$1 d=$OUT/seeds/$t
  if [ ! -d "$d" ]; then
    mkdir -p "$d"
    [ $have_shared = 1 ] && python3 tests/fuzz/make_seeds.py "$t" "$SHARED" "$d" >&2
    LOP_FUZZ_WRITE_SEEDS="$d" "$OUT/${t}_fuzz" -runs=0 >/dev/null 2>&1 || true
  fi
  echo "$d"
}

run_one() {      # target, seconds -> one line: target execs exec/s edges corpus crashes
  local t=$1 s=$2 bin=$OUT/${1}_fuzz art=$OUT/$1 corpus committed=tests/fuzz/seeds/$1
  if [ "$t" = tok_encode ] && [ -z "$LOP_FUZZ_TOKENIZERS" ]; then
    echo "$t: skipped (no tokenizers in $SHARED)"; return 0
  fi
  mkdir -p "$art"
  local dict=(); [ -f tests/fuzz/lop.dict ] && dict=(-dict=tests/fuzz/lop.dict)
  local maxlen=65536; [ "$t" = tok_encode ] && maxlen=16384; [ "$t" = tok_json ] && maxlen=131072
  local lim=(-rss_limit_mb=2048 -timeout=10 -max_len=$maxlen "${dict[@]}")
  local rc=0
  if [ $MODE = smoke ]; then
    # every committed input runs first (libFuzzer executes the whole seed corpus before it
    # fuzzes: crashes fixed must stay fixed), then a few seconds of fuzzing from them into a
    # throw-away corpus (new inputs go to the first folder, never into tests/)
    corpus=$(mktemp -d "$OUT/smoke.XXXXXX")
    local seeds=(); [ -d "$committed" ] && seeds=("$committed")
    "$bin" "${lim[@]}" -max_total_time="$s" -artifact_prefix="$art/" -print_final_stats=1 \
      "$corpus" "${seeds[@]}" > "$art/smoke.log" 2>&1 || rc=$?
    rm -rf "$corpus"
  else
    corpus=$OUT/corpus/$t; mkdir -p "$corpus"
    local sd; sd=$(seeds_for "$t")
    local seeds=("$sd"); [ -d "$committed" ] && seeds+=("$committed")
    "$bin" "${lim[@]}" -max_total_time="$s" -artifact_prefix="$art/" -print_final_stats=1 \
      "$corpus" "${seeds[@]}" > "$art/log.txt" 2>&1 || rc=$?
  fi
  local log=$art/log.txt; [ $MODE = smoke ] && log=$art/smoke.log
  local ex eps cov
  ex=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  echo "$t: ${s}s, ${ex:-?} execs, ${eps:-?}/s, ${cov:-?} edges, corpus $( [ $MODE = run ] && ls "$corpus" | wc -l || echo -), exit $rc"
  if [ $rc != 0 ]; then
    echo "fuzz: $t FAILED; log $log:" >&2
    grep -E "ERROR|SUMMARY|property failed|Test unit written|runtime error" "$log" | head -20 >&2
    return 1
  fi
}

echo "fuzz: $MODE, $SECS s per target, $JOBS at a time: $(echo $TARGETS)" >&2
fail=0
if [ "$JOBS" -gt 1 ]; then
  export -f run_one seeds_for; export OUT MODE SHARED have_shared
  printf '%s\n' $TARGETS | xargs -P "$JOBS" -I{} bash -c "run_one {} $SECS" || fail=1
else
  for t in $TARGETS; do run_one "$t" "$SECS" || fail=1; done
fi
[ $fail = 0 ] || { echo "fuzz: failures (inputs in $OUT/<target>/)" >&2; exit 1; }
