#!/usr/bin/env bash
# make demo (for now): describe a model with st-cat. Uses ../shared's qwen3-tiny when present,
# else generates a small random Llama folder with python3 (stdlib only).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${LOP_SHARED:-../shared}/models/qwen3-tiny
if [ ! -d "$MODEL" ]; then
  MODEL=$(mktemp -d)/tiny-llama
  python3 tools/gen-tiny-model.py "$MODEL" --layers 4 --hidden 64
  echo "demo: ../shared absent; generated a random model in $MODEL" >&2
fi
echo "== st-cat --summary $MODEL" >&2
bin/st-cat --summary "$MODEL"
echo "== st-cat -l $MODEL (first 5 tensors)" >&2
{ bin/st-cat -l "$MODEL" || true; } | head -n 5
echo "== round trip through a stream, as f32, zstd-compressed" >&2
bin/st-cat "$MODEL" | bin/st-cat --dtype f32 | bin/st-cat --zstd --summary
