# common.mk — included at the END of every examples/*/Makefile (after its variables): where the
# tools and the fixtures are, the rules every example shares, and the `check` wrapper that skips
# cleanly (with a message) when a tool is not built yet or ../shared is absent.
#
# An example sets EX (its name), TOOLS (the tools it runs), NEEDS_SHARED (1 when its check reads
# ../shared) and MODEL, TEST, TASKS, ...; its work is file targets under $(OUT), so `make` resumes
# where it stopped. `check` runs its `check-run` (small settings + assertions) into out-check/.

ROOT    := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
BIN     ?= $(ROOT)/bin
SHARED  ?= $(abspath $(ROOT)/../shared)
THREADS ?= 2
SEED    ?= 0
# DEVICE=cuda (or cuda:N): the model-running tools of a recipe (ppl, lm-eval, heal-sft, kd-train)
# run on a GPU; needs a build made where nvcc is (build/liblop_cuda.so)
DEVICE  ?= cpu
DEV     := $(if $(filter cpu,$(DEVICE)),,--device $(DEVICE))
export PATH := $(BIN):$(PATH)
export OMP_NUM_THREADS := $(THREADS)
.DELETE_ON_ERROR:
.SECONDARY:

# number of layers of a model folder (the text config of a multimodal Gemma 3)
n_layers = $(shell python3 -c 'import json,sys; c=json.load(open(sys.argv[1]+"/config.json")); c=c.get("text_config",c); print(c["num_hidden_layers"])' $(1))

PPL_OPTS  ?= --ctx $(CTX)
EVAL_OPTS ?= --tasks $(TASKS) --data-dir $(EVAL_DIR) --limit $(LIMIT)

# perplexity and benchmarks of the base model and of every model folder $(OUT)/NAME
$(OUT)/base.ppl.jsonl:
	@mkdir -p $(OUT)
	ppl -m $(MODEL) $(PPL_OPTS) $(DEV) -t $(THREADS) $(TEST) > $@.tmp && mv $@.tmp $@
$(OUT)/%.ppl.jsonl: $(OUT)/%/config.json
	ppl -m $(OUT)/$* $(PPL_OPTS) $(DEV) -t $(THREADS) $(TEST) > $@.tmp && mv $@.tmp $@
$(OUT)/base.eval.jsonl:
	@mkdir -p $(OUT)
	lm-eval -m $(MODEL) $(EVAL_OPTS) $(DEV) -t $(THREADS) --output $(OUT)/base.results.json > $@.tmp && mv $@.tmp $@
$(OUT)/%.eval.jsonl: $(OUT)/%/config.json $(OUT)/base.eval.jsonl
	lm-eval -m $(OUT)/$* $(EVAL_OPTS) $(DEV) -t $(THREADS) --output $(OUT)/$*.results.json > $@.tmp && mv $@.tmp $@

.PHONY: all check check-run clean
check:
	@missing=""; for t in $(TOOLS); do [ -x "$(BIN)/$$t" ] || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then echo "$(EX): skipped: not built yet:$$missing"; exit 0; fi; \
	if [ "$(NEEDS_SHARED)" = 1 ] && [ ! -d "$(SHARED)/models" ]; then \
	  echo "$(EX): skipped: $(SHARED) (fixtures) is absent"; exit 0; fi; \
	$(MAKE) --no-print-directory check-run && echo "$(EX): check passed"

clean:
	rm -rf $(OUT) out-check
