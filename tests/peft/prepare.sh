#!/usr/bin/env bash
# tests/peft/prepare.sh DIR — the CPU half of the PEFT load-back check (issue 15): for each fixture
# family, a LoRA adapter trained by heal-sft (all seven projections), lop's per-token NLL with the
# adapter folder as -m, the token ids, and st-cat's float32 merge. Then, where transformers and
# PEFT are installed (the GPU machine has them; this one does not), `python3 DIR/check.py`
# compares lop's numbers with PeftModel, AutoPeftModelForCausalLM (the adapter's relative base
# path) and the merge loaded by transformers. Carry DIR to that machine (tokenizers removed: the
# ids travel instead).
set -euo pipefail
D=${1:?usage: prepare.sh DIR}
SHARED=${LOP_SHARED:-$(cd "$(dirname "$0")/../../.." && pwd)/shared}
mkdir -p "$D"
cp "$(dirname "$0")/check.py" "$D/"
cd "$D"
head -c 1500 "$SHARED/data/stories/test.txt" > text.txt
for f in llama-tiny qwen3-tiny gemma3-tiny; do
  rm -rf "$f" "$f-lora" "$f-merged"
  mkdir "$f" && cp "$SHARED/models/$f"/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json} "$f/"
  heal-sft -q -m "$f" --data text.txt --seq-len 64 --steps 8 --lr 5e-3 --lora-rank 4 --lora-alpha 8 \
      --lora-targets all -o "$f-lora" > "$f-heal.jsonl"
  lm-tok -m "$f" --ids-only text.txt > "$f-ids.json"
  ppl -q -m "$f-lora" --ctx 512 --per-token text.txt > "$f-ppl.jsonl"
  st-cat -q "$f-lora" -o "$f-merged"
  rm -f "$f/tokenizer.json" "$f-merged/tokenizer.json"
done
