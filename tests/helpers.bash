# Shared by every tests/*.bats: paths, fixtures, and the assertion libraries.
ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
BIN=${LOP_BIN:-$ROOT/bin}
SANBIN=${LOP_SANBIN:-$ROOT/bin-san}
SHARED=${LOP_SHARED:-$ROOT/../shared}
MODELS=$SHARED/models
export PATH="$BIN:$PATH"
# Sanitizer reports exit with codes no tool uses, so a report can never pass for "exit 1".
export ASAN_OPTIONS=${ASAN_OPTIONS:-exitcode=86:detect_leaks=0:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-exitcode=87:print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# Every tool's first JSON line is its provenance (CLI.md); the suites that check a tool's result
# lines run without it (LOP_PROVENANCE=0), and tests/provenance.bats checks it with it on.
export LOP_PROVENANCE=${LOP_PROVENANCE:-0}
load /usr/lib/bats/bats-support/load
load /usr/lib/bats/bats-assert/load

# skip with a clear message when ../shared (fixtures, data) is absent, as on a user's clone
need_shared() {
  [ -d "$SHARED/models" ] || skip "../shared is absent: fixtures and goldens live there"
}
# run a tool from the ASan+UBSan build
need_san() {
  [ -x "$SANBIN/$1" ] || skip "sanitizer build of $1 absent (make SAN=1)"
}
# a fresh scratch folder per test
scratch() {
  TMP=$(mktemp -d "${BATS_TMPDIR:-/tmp}/lop.XXXXXX"); echo "$TMP"
}
# python3 one-liner helper for JSON checks (python3 is a declared dependency)
pyjson() { python3 -c "$@"; }
