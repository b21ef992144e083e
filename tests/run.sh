#!/usr/bin/env bash
# The whole suite: C unit tests and every tool's bats file, in one bats run (one summary at the end).
# The optimized binaries (bin/) are tested everywhere; tests marked for it also run the
# ASan+UBSan binaries (bin-san/) on bad input and small models.
set -u
cd "$(dirname "$0")/.."
export LOP_ROOT=$PWD
# --pretty also when the output is a log file (CI): bats then ends with its summary line
# ("N tests, M failures, K skipped"), which its TAP output (the non-terminal default) lacks.
exec bats --pretty --print-output-on-failure tests/
