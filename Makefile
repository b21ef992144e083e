# lop — build, test, bench, install.  Everything is discovered, nothing is listed twice:
#   libcommon/*.c            -> build/libcommon.a   (static, linked into every tool)
#   cmd/common/*.c           -> build/libcli.a      (the tool layer: options, errors, progress)
#   cmd/<tool>/*.c           -> bin/<tool>          (a folder with a main.c is a tool)
#   tests/unit/test_*.c      -> build/test_*        (C unit tests, run by tests/unit.bats)
#   tests/*.bats             -> the bats suite
# Variants: `make SAN=1` builds into build-san/ and bin-san/ with ASan+UBSan.
#           `make PORTABLE=1` builds for any x86-64-v2 CPU instead of this machine's (-march=native):
#           a binary built with -march=native may stop with "illegal instruction" on an older CPU.
#           The AVX512-BF16 GEMM is chosen at run time either way (gemm_bf16.c).
# CUDA: libcommon/cuda/*.cu (the GPU backend) -> build/liblop_cuda.so when nvcc is found (PATH or
# /usr/local/cuda/bin) or with `make CUDA=1`; the tools load it only for --device cuda, so
# without it (CI has no nvcc) they are the same programs. `make test-cuda` checks it on a GPU.

SHELL    := /bin/bash
PREFIX   ?= /usr/local
CC       ?= gcc
SAN      ?= 0
PORTABLE ?= 0
# clang + libclang-rt-14-dev: libFuzzer, for `make fuzz` and the fuzz smoke of `make test` (tests/fuzz.bats)
DEB_PKGS := build-essential pkg-config libcjson-dev libopenblas-dev libzstd-dev libpcre2-dev \
            libutf8proc-dev bats bats-assert bats-support zstd python3 clang libclang-rt-14-dev \
            openmpi-bin libopenmpi-dev
BENCH_PKGS := python3-torch python3-numpy hyperfine

ifeq ($(SAN),1)
  B := build-san
  BIN := bin-san
  OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
else ifeq ($(PORTABLE),1)
  B := build-portable
  BIN := bin-portable
  OPT := -O3 -march=x86-64-v2 -mtune=generic -g
else
  B := build
  BIN := bin
  OPT := -O3 -march=native -g
endif

NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(SAN),1)
  CUDA ?= 0
else ifneq ($(strip $(NVCC)),)
  CUDA ?= 1
else
  CUDA ?= 0
endif
# GPU code: Ampere and Hopper machine code, plus PTX the driver compiles for newer chips
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90

CFLAGS  ?=
# OpenBLAS's headers where pkg-config says (Debian: openblas-pthread/), else the usual place
BLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null || echo -I/usr/include/x86_64-linux-gnu/openblas-pthread)
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fopenmp $(OPT) -Ilibcommon $(BLAS_CFLAGS)
LDLIBS  := -lcjson -lopenblas -lzstd -lpcre2-8 -lutf8proc -lm -lpthread -ldl
LDFLAGS += -fopenmp $(filter -fsanitize=%,$(OPT))

LIB_SRC   := $(wildcard libcommon/*.c)
LIB_OBJ   := $(patsubst libcommon/%.c,$(B)/libcommon/%.o,$(LIB_SRC))
CU_SRC    := $(wildcard libcommon/cuda/*.cu)
ifeq ($(CUDA),1)
  CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
  CUDA_SO := $(B)/liblop_cuda.so
  CU_OBJ  := $(patsubst libcommon/cuda/%.cu,$(B)/cuda/%.o,$(CU_SRC)) $(B)/cuda/err.o $(B)/cuda/dtype.o
  NVFLAGS ?= -O3 -std=c++17 -lineinfo -Xcompiler -Wall,-fPIC,-fvisibility=hidden
endif
CLI_SRC   := $(wildcard cmd/common/*.c)
CLI_OBJ   := $(patsubst cmd/common/%.c,$(B)/cli/%.o,$(CLI_SRC))
TOOLS     := $(notdir $(patsubst %/,%,$(dir $(wildcard cmd/*/main.c))))
TOOL_BINS := $(addprefix $(BIN)/,$(TOOLS))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/%,$(UNIT_SRC))

.SECONDEXPANSION:
.PHONY: all deps test test-fast test-san test-cuda unit demo demo-stories bench install clean fuzz check-deps
all: $(TOOL_BINS) $(UNIT_BINS) $(CUDA_SO)

# objects depend on the headers they include (-MMD: the compiler writes the list beside each .o)
$(B)/libcommon/%.o: libcommon/%.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/cuda/%.o: libcommon/cuda/%.cu $(wildcard libcommon/cuda/*.cuh libcommon/*.h)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) $(CUDA_ARCH) $(filter -I%,$(CFLAGS)) -Ilibcommon -Ilibcommon/cuda -c $< -o $@

# the CUDA backend: a shared object with its own copies of err.c and dtype.c (backend_cuda_load.c)
$(B)/cuda/%.o: libcommon/%.c $(wildcard libcommon/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

$(B)/liblop_cuda.so: $(CU_OBJ)
	$(CXX) -shared -o $@ $^ -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart

$(B)/cli/%.o: cmd/common/%.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -Icmd/common -c $< -o $@

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)

$(B)/libcli.a: $(CLI_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libcommon.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/%: $$(wildcard cmd/$$*/*.c cmd/$$*/*.h) $(B)/libcli.a $(B)/libcommon.a $(wildcard libcommon/*.h cmd/common/*.h)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) -Icmd/common -Icmd/$* $(wildcard cmd/$*/*.c) -o $@ $(LDFLAGS) $(B)/libcli.a $(B)/libcommon.a $(LDLIBS)

$(B)/test_%: tests/unit/test_%.c tests/unit/check.h $(B)/libcommon.a $(wildcard libcommon/*.h)
	@mkdir -p $(B)
	$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS) $(B)/libcommon.a $(LDLIBS)

# deps: install each missing Debian package (root), else print the exact command and fail.
deps:
	@bash tools/deps.sh $(DEB_PKGS)

# The README's test command.  Dependencies, optimized build, sanitizer build, whole suite.
JOBS := $(shell nproc 2>/dev/null || echo 2)
test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@$(MAKE) --no-print-directory -j$(JOBS) SAN=1 all
	@bash tests/run.sh

test-fast: all
	@LOP_NO_SAN=1 bash tests/run.sh

# On a GPU machine: every CUDA kernel against the CPU kernel on random data, then the tools with
# --device cuda against the CPU and the goldens (tests/cuda.bats; both skip without a GPU).
test-cuda:
	@$(MAKE) --no-print-directory -j$(JOBS) CUDA=1 all
	@$(B)/test_cuda
	@LOP_TEST_DEVICE=cuda $(B)/test_model
	@LOP_TEST_DEVICE=cuda $(B)/test_train
	@LOP_TEST_DEVICE=cuda LOP_TEST_GEMM=bf16 $(B)/test_train
	@bats tests/cuda.bats

demo: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@bash tools/demo.sh

demo-stories: all
	@bash tools/demo-stories.sh

bench: deps
	@bash tools/deps.sh $(BENCH_PKGS)
	@$(MAKE) --no-print-directory all
	@bash bench/run.sh

# make fuzz [FUZZ_SECONDS=N] [FUZZ_TARGETS="a b"] [FUZZ_JOBS=J]: every parser under libFuzzer (tools/fuzz.sh)
fuzz:
	@bash tools/fuzz.sh $(FUZZ_SECONDS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(TOOL_BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 tools/lop-get-eval-data $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/
	$(if $(CUDA_SO),install -d $(DESTDIR)$(PREFIX)/lib/lop && install -m 755 $(CUDA_SO) $(DESTDIR)$(PREFIX)/lib/lop/)

clean:
	rm -rf build build-san build-portable bin bin-san bin-portable
