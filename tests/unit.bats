#!/usr/bin/env bats
# The C unit tests (tests/unit/test_*.c): each binary is its own test, optimized and under
# ASan+UBSan (make SAN=1). A new test_*.c needs its two lines here; the last test checks that.
load helpers

unit() {   # unit DIR NAME
  local t="$ROOT/$1/test_$2"
  [ -x "$t" ] || skip "$1/test_$2 not built (make${3:+ $3} all)"
  run "$t"
  [ "$status" -eq 0 ] || { echo "$t failed:"; echo "$output"; return 1; }
}

@test "unit: test_calib" { unit build calib; }
@test "unit under ASan+UBSan: test_calib" { unit build-san calib SAN=1; }

@test "unit: test_config" { unit build config; }
@test "unit under ASan+UBSan: test_config" { unit build-san config SAN=1; }

@test "unit: test_dtype" { unit build dtype; }
@test "unit under ASan+UBSan: test_dtype" { unit build-san dtype SAN=1; }

@test "unit: test_gemm_bf16" { unit build gemm_bf16; }
@test "unit under ASan+UBSan: test_gemm_bf16" { unit build-san gemm_bf16 SAN=1; }

@test "unit: test_grad" { unit build grad; }
@test "unit under ASan+UBSan: test_grad" { unit build-san grad SAN=1; }

@test "unit: test_kd" { unit build kd; }
@test "unit under ASan+UBSan: test_kd" { unit build-san kd SAN=1; }

@test "unit: test_layers" { unit build layers; }
@test "unit under ASan+UBSan: test_layers" { unit build-san layers SAN=1; }

@test "unit: test_model" { unit build model; }
@test "unit under ASan+UBSan: test_model" { unit build-san model SAN=1; }

@test "unit: test_nn" { unit build nn; }
@test "unit under ASan+UBSan: test_nn" { unit build-san nn SAN=1; }

@test "unit: test_optim" { unit build optim; }
@test "unit under ASan+UBSan: test_optim" { unit build-san optim SAN=1; }

@test "unit: test_par" { unit build par; }
@test "unit under ASan+UBSan: test_par" { unit build-san par SAN=1; }

@test "unit: test_prune" { unit build prune; }
@test "unit under ASan+UBSan: test_prune" { unit build-san prune SAN=1; }

@test "unit: test_safetensors" { unit build safetensors; }
@test "unit under ASan+UBSan: test_safetensors" { unit build-san safetensors SAN=1; }

@test "unit: test_sample" { unit build sample; }
@test "unit under ASan+UBSan: test_sample" { unit build-san sample SAN=1; }

@test "unit: test_tasks" { unit build tasks; }
@test "unit under ASan+UBSan: test_tasks" { unit build-san tasks SAN=1; }

@test "unit: test_tokenizer" { unit build tokenizer; }
@test "unit under ASan+UBSan: test_tokenizer" { unit build-san tokenizer SAN=1; }

@test "unit: test_train" { unit build train; }
@test "unit under ASan+UBSan: test_train" { unit build-san train SAN=1; }


@test "unit: test_fsutil" { unit build fsutil; }
@test "unit: test_sbuf" { unit build sbuf; }
@test "unit under ASan+UBSan: test_sbuf" { unit build-san sbuf SAN=1; }
@test "unit under ASan+UBSan: test_fsutil" { unit build-san fsutil SAN=1; }

@test "unit: test_width" { unit build width; }
@test "unit under ASan+UBSan: test_width" { unit build-san width SAN=1; }

# the CUDA kernels against the CPU's: on a machine with a GPU (make test-cuda runs it there)
@test "unit: test_cuda" {
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 || skip "no GPU here: make test-cuda runs test_cuda on one"
  unit build cuda;
}

@test "unit: every tests/unit/test_*.c has its tests in this file" {
  for f in "$ROOT"/tests/unit/test_*.c; do
    n=$(basename "$f" .c)
    grep -q "unit build ${n#test_};" "$BATS_TEST_FILENAME" || { echo "$n is not listed in tests/unit.bats"; return 1; }
  done
}
