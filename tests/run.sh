#!/usr/bin/env bash
# The whole suite: C unit tests and every tool's bats file, in one bats run (one summary at the end).
# The optimized binaries (bin/) are tested everywhere; tests marked for it also run the
# ASan+UBSan binaries (bin-san/) on bad input and small models.
set -u
cd "$(dirname "$0")/.."
export LOP_ROOT=$PWD
jobs=()
exec bats --print-output-on-failure tests/
