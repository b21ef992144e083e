#!/usr/bin/env bash
# README.md is assembled from docs/readme/NN-*.md (one section per subject, kept with that
# subject's code): the introduction, the newcomer's path and tool list (10-workflow), then each
# subject in issue order. Run after editing a section: bash tools/readme.sh
set -eu
cd "$(dirname "$0")/.."
parts=(docs/readme/00-*.md docs/readme/10-*.md)
for f in docs/readme/[0-9]*.md; do
  case "$f" in docs/readme/00-*|docs/readme/10-*) ;; *) parts+=("$f") ;; esac
done
{ for f in "${parts[@]}"; do cat "$f"; echo; done; } > README.md.tmp
mv README.md.tmp README.md
