#!/usr/bin/env bats
# examples/*: each example's `make check` (small settings + assertions) on the ../shared fixtures.
# An example whose tools are not built yet, or without ../shared, reports "skipped:" and is skipped.
load helpers

run_example() {
  need_shared
  # as a user runs it: with the provenance line every tool writes first
  run env -u LOP_PROVENANCE make -s -C "$ROOT/examples/$1" check BIN="$BIN"
  rm -rf "$ROOT/examples/$1/out-check"
  if [[ "$output" == *"skipped:"* ]]; then skip "${output##*skipped: }"; fi
  echo "$output"
  assert_success
  assert_output --partial "$1: check passed"
}

@test "examples/gemma3-depth-heal: make check" { run_example gemma3-depth-heal; }
@test "examples/qwen3-aggressive-depth: make check" { run_example qwen3-aggressive-depth; }
@test "examples/gemma3-magnitude-50: make check" { run_example gemma3-magnitude-50; }
@test "examples/gemma3-prune-distill: make check" { run_example gemma3-prune-distill; }
@test "examples/qwen3-laco: make check" { run_example qwen3-laco; }
@test "examples/qwen3-minitron-width: make check" { run_example qwen3-minitron-width; }

@test "examples: every folder has a Makefile with check and a README" {
  n=0
  for d in "$ROOT"/examples/*/; do
    [ "$(basename "$d")" = lib ] && continue
    [ -f "$d/Makefile" ] && [ -f "$d/README.md" ] || { echo "incomplete: $d"; return 1; }
    grep -q '^check-run:' "$d/Makefile" || { echo "no check-run in $d"; return 1; }
    n=$((n+1))
  done
  [ "$n" -ge 5 ]
}
