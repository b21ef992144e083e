#!/usr/bin/env bats
# Runs every C unit test (tests/unit/test_*.c), optimized and under ASan+UBSan.
load helpers

@test "C unit tests pass (optimized build)" {
  n=0
  for t in "$ROOT"/build/test_*; do
    [ -x "$t" ] || continue
    run "$t"; [ "$status" -eq 0 ] || { echo "$t failed:"; echo "$output"; return 1; }
    n=$((n+1))
  done
  [ "$n" -gt 0 ] || skip "no unit tests built"
}

@test "C unit tests pass under ASan+UBSan" {
  n=0
  for t in "$ROOT"/build-san/test_*; do
    [ -x "$t" ] || continue
    run "$t"; [ "$status" -eq 0 ] || { echo "$t failed:"; echo "$output"; return 1; }
    n=$((n+1))
  done
  [ "$n" -gt 0 ] || skip "no sanitizer unit tests built (make SAN=1)"
}
