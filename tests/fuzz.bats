#!/usr/bin/env bats
# Fuzz smoke (tools/fuzz.sh --smoke): every libFuzzer target (ASan+UBSan) runs each committed
# seed and crash reproducer of tests/fuzz/seeds/<target>/ once, then fuzzes for a few seconds
# from them. A parser regression (a crash, leak, hang, sanitizer report or broken property on a
# saved input) fails here. `make fuzz` runs the long campaign.
# Needs clang and its runtime (libclang-rt-14-dev; `make deps` installs both). Skipped with
# LOP_NO_SAN=1 (`make test-fast`), like the other sanitizer runs.
load helpers

SMOKE_SECONDS=${LOP_FUZZ_SMOKE_SECONDS:-1}

setup_file() {
  export FUZZ_SKIP=""
  if [ -n "${LOP_NO_SAN:-}" ]; then FUZZ_SKIP="LOP_NO_SAN set: sanitizer runs skipped"; return 0; fi
  if ! command -v clang >/dev/null; then FUZZ_SKIP="clang absent (make deps installs clang libclang-rt-14-dev)"; return 0; fi
  local probe="$BATS_FILE_TMPDIR/probe"
  printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' > "$probe.c"
  if ! clang -fsanitize=fuzzer "$probe.c" -o "$probe" 2>/dev/null; then
    FUZZ_SKIP="libFuzzer absent (apt-get install libclang-rt-14-dev)"; return 0
  fi
  bash "$ROOT/tools/fuzz.sh" --build > "$BATS_FILE_TMPDIR/build.log" 2>&1 || {
    cat "$BATS_FILE_TMPDIR/build.log" >&2; export FUZZ_BUILD_FAILED=1; }
}

smoke() {
  [ -z "$FUZZ_SKIP" ] || skip "$FUZZ_SKIP"
  [ -z "${FUZZ_BUILD_FAILED:-}" ] || { echo "the fuzz targets did not build"; return 1; }
  run env FUZZ_TARGETS="$1" bash "$ROOT/tools/fuzz.sh" --smoke "$SMOKE_SECONDS"
  echo "$output"
  [ "$status" -eq 0 ]
}

@test "fuzz smoke: safetensors header" { smoke st_header; }
@test "fuzz smoke: tokenizer.json + tokenizer_config.json" { smoke tok_json; }
@test "fuzz smoke: tokenizer encode on arbitrary bytes (real tokenizers)" { need_shared; smoke tok_encode; }
@test "fuzz smoke: config.json (every family) and model-card's reader" { smoke config; }
@test "fuzz smoke: training and calibration data" { smoke train_data; }
@test "fuzz smoke: eval data (JSONL, MMLU CSV, hellaswag)" { smoke eval_data; }
@test "fuzz smoke: kd teacher cache" { smoke kd_cache; }
@test "fuzz smoke: training checkpoints" { smoke ckpt; }
@test "fuzz smoke: model-card logs and card" { smoke mc_logs; }

@test "fuzz: every target has a smoke test here and committed seeds" {
  [ -z "$FUZZ_SKIP" ] || skip "$FUZZ_SKIP"
  for f in "$ROOT"/tests/fuzz/*_fuzz.c; do
    t=$(basename "$f" _fuzz.c)
    grep -q "smoke $t;" "$BATS_TEST_FILENAME" || { echo "no smoke test for $t"; return 1; }
    [ "$t" = st_header ] || [ -n "$(ls -A "$ROOT/tests/fuzz/seeds/$t" 2>/dev/null)" ] || { echo "no seeds for $t"; return 1; }
  done
}

# ---- resource limits (README "Fuzzing": each limit documented and tested)

@test "limits: hostile size claims (2^31-byte zstd frames, headers, k, shapes) allocate under 64 MB" {
  [ -z "$FUZZ_SKIP" ] || skip "$FUZZ_SKIP"
  [ -z "${FUZZ_BUILD_FAILED:-}" ] || { echo "the fuzz targets did not build"; return 1; }
  for t in st_header config kd_cache ckpt eval_data mc_logs tok_json train_data; do
    run env OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
      "$ROOT/build/fuzz/${t}_fuzz" -runs=0 -malloc_limit_mb=64 -rss_limit_mb=1024 -timeout=10 "$ROOT/tests/fuzz/seeds/$t"
    [ "$status" -eq 0 ] || { echo "$t:"; echo "$output" | grep -E "ERROR|SUMMARY|malloc|property" | head; return 1; }
  done
}

@test "limits: a tokenizer regex that backtracks catastrophically fails fast with 'match limit exceeded'" {
  T=$(scratch)
  python3 - "$T" <<'PY'
import json, sys
d = sys.argv[1]
tok = {"version": "1.0", "added_tokens": [], "normalizer": None, "post_processor": None, "decoder": None,
       "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated", "invert": False},
       "model": {"type": "BPE", "vocab": {"a": 0, "!": 1}, "merges": [], "byte_fallback": False, "unk_token": None}}
json.dump(tok, open(d + "/tokenizer.json", "w"))
open(d + "/text", "w").write("a" * 5000 + "!")
PY
  start=$(date +%s)
  run lm-tok -m "$T/tokenizer.json" --count "$T/text"
  [ "$status" -eq 1 ]
  [[ "$output" == *"match limit exceeded"* ]]
  [ $(( $(date +%s) - start )) -lt 10 ]
  printf 'aaaa' > "$T/ok"   # the same tokenizer on text it matches quickly still works
  run lm-tok -m "$T/tokenizer.json" --count "$T/ok"
  [ "$status" -eq 0 ]
  rm -rf "$T"
}
