#!/usr/bin/env bash
# The whole suite: C unit tests and every tool's bats file, in one bats run (one summary at the end).
# The optimized binaries (bin/) are tested everywhere; tests marked for it also run the
# ASan+UBSan binaries (bin-san/) on bad input and small models.
set -u
cd "$(dirname "$0")/.."
export LOP_ROOT=$PWD
# On a terminal bats draws its pretty report; into a log file (CI) it would print TAP, which has
# no summary: tests/format-tap-summary prints the same TAP and ends with the summary line.
if [ -t 1 ]; then
  exec bats --print-output-on-failure tests/
fi
exec bats --formatter "$PWD/tests/format-tap-summary" --print-output-on-failure tests/
