#!/usr/bin/env bats
# Every command in README.md's sh blocks and in every man page's EXAMPLES runs as written, in a
# sandbox whose names (gemma-3-4b, calib.txt, ...) are the fixtures of ../shared: docs that rot fail
# here. tests/doc_examples.py extracts and runs them; a download ("needs network") is the only skip.
load helpers

run_doc() {
  need_shared
  command -v zstd >/dev/null || skip "zstd absent"
  run python3 "$BATS_TEST_DIRNAME/doc_examples.py" run "$ROOT/$1" "$SHARED"
  [ "$status" -eq 0 ] || { echo "$output" | grep -v ": ok:"; return 1; }
}

@test "README.md: every command runs" { run_doc README.md; }
@test "lop(7) EXAMPLES run" { run_doc man/lop.7; }
@test "heal-sft(1) EXAMPLES run" { run_doc man/heal-sft.1; }
@test "kd-train(1) EXAMPLES run" { run_doc man/kd-train.1; }   # on llama-tiny (doc_examples.py: ONE_FAMILY)
@test "layer-drop(1) EXAMPLES run" { run_doc man/layer-drop.1; }
@test "layer-merge(1) EXAMPLES run" { run_doc man/layer-merge.1; }
@test "layer-score(1) EXAMPLES run" { run_doc man/layer-score.1; }
@test "lm-eval(1) EXAMPLES run" { run_doc man/lm-eval.1; }
@test "lm-gen(1) EXAMPLES run" { run_doc man/lm-gen.1; }
@test "lm-tok(1) EXAMPLES run" { run_doc man/lm-tok.1; }
@test "model-card(1) EXAMPLES run" { run_doc man/model-card.1; }
@test "ppl(1) EXAMPLES run" { run_doc man/ppl.1; }
@test "st-cat(1) EXAMPLES run" { run_doc man/st-cat.1; }
@test "width-prune(1) EXAMPLES run" { run_doc man/width-prune.1; }
@test "wmask(1) EXAMPLES run" { run_doc man/wmask.1; }
