#!/usr/bin/env bats
# The tree's shape (tools/check-structure.py): one architecture table, one reader of each kind,
# no circles, arrows only down libcommon's layers, prefixed exported names, layer kernels called by
# the backend only. Each check also runs on a planted violation, so it can fail.
load helpers

CHECK="$ROOT/tools/check-structure.py"

# a copy of the sources (libcommon, cmd) to plant violations in
copy_tree() {
  T=$(scratch)
  cp -r "$ROOT/libcommon" "$ROOT/cmd" "$T/"
}

@test "structure: HF tensor names are spelled only in libcommon/arch.c" {
  run python3 "$CHECK" "$ROOT" names
  assert_success
  grep -q '"self_attn.q_proj"' "$ROOT/libcommon/arch.c"
  copy_tree
  printf 'static const char *n = "model.layers.0.self_attn.q_proj.weight";\n' >> "$T/libcommon/model.c"
  # prose may name a module ("o_proj"), but not a tensor path
  printf 'static const char *h = "rows of gate/up_proj, columns of down_proj";\n' >> "$T/libcommon/width.c"
  printf 'static const char *m = "%%s: missing self_attn.o_proj.weight";\n' >> "$T/libcommon/layers.c"
  run python3 "$CHECK" "$T" names
  assert_failure
  assert_output --partial "libcommon/model.c"
  assert_output --partial "libcommon/layers.c"
  refute_output --partial "libcommon/width.c"
}

@test "structure: one safetensors parser, one zstd decoder, one zstd rule" {
  run python3 "$CHECK" "$ROOT" readers
  assert_success
  copy_tree
  printf 'int f(const char *p) { return strstr(p, ".zst") != 0 && !strcmp(p, "__metadata__"); }\n' >> "$T/cmd/ppl/main.c"
  printf 'static int z(const unsigned char *b) { return b[0] == 0x28; } /* 0xFD2FB528 */\nint y(void *d) { return (int)ZSTD_decompressStream(d, 0, 0); }\n' >> "$T/cmd/lm-gen/main.c"
  run python3 "$CHECK" "$T" readers
  assert_failure
  assert_output --partial "cmd/ppl/main.c"
  assert_output --partial "cmd/lm-gen/main.c"
}

@test "structure: no call circle among libcommon's or the tool layer's objects, no include circle" {
  [ -n "$(ls "$ROOT"/build/libcommon/*.o 2>/dev/null)" ] || skip "build/libcommon not built (make all)"
  command -v nm > /dev/null || skip "nm (binutils) absent"
  run python3 "$CHECK" "$ROOT" cycles
  assert_success
  # a planted circle: two objects that call each other, and two headers that include each other
  T=$(scratch)
  mkdir -p "$T/b/libcommon" "$T/libcommon"
  printf 'int b(void);\nint a(void) { return b(); }\n' > "$T/a.c"
  printf 'int a(void);\nint b(void) { return a(); }\n' > "$T/b.c"
  cc -c "$T/a.c" -o "$T/b/libcommon/a.o" && cc -c "$T/b.c" -o "$T/b/libcommon/b.o"
  printf '#include "y.h"\n' > "$T/libcommon/x.h"
  printf '#include "x.h"\n' > "$T/libcommon/y.h"
  run python3 "$CHECK" "$T" cycles "$T/b"
  assert_failure
  assert_output --partial "a <-> b"
  assert_output --partial "libcommon/x.h <-> libcommon/y.h"
  # and in the tool layer (cmd/common's objects)
  mkdir -p "$T/b/cli"
  mv "$T/b/libcommon/a.o" "$T/b/libcommon/b.o" "$T/b/cli/"
  printf 'int solo(void) { return 0; }\n' > "$T/s.c" && cc -c "$T/s.c" -o "$T/b/libcommon/solo.o"
  run python3 "$CHECK" "$T" cycles "$T/b"
  assert_failure
  assert_output --partial "call circle among cli objects: a <-> b"
}

@test "structure: inside libcommon no include or call points up a layer; every file has a layer" {
  [ -n "$(ls "$ROOT"/build/libcommon/*.o 2>/dev/null)" ] || skip "build/libcommon not built (make all)"
  command -v nm > /dev/null || skip "nm (binutils) absent"
  run python3 "$CHECK" "$ROOT" layers
  assert_success
  # planted: io including a model header, base calling into tasks, a file in no layer
  copy_tree
  printf '#include "model.h"\n' >> "$T/libcommon/st_src.c"
  printf 'int x;\n' > "$T/libcommon/misc.c"
  mkdir -p "$T/b/libcommon"
  printf 'int task_thing(void);\nint err_up(void) { return task_thing(); }\n' > "$T/err.c"
  printf 'int task_thing(void) { return 1; }\n' > "$T/task.c"
  cc -c "$T/err.c" -o "$T/b/libcommon/err.o" && cc -c "$T/task.c" -o "$T/b/libcommon/task.o"
  run python3 "$CHECK" "$T" layers "$T/b"
  assert_failure
  assert_output --partial "libcommon/st_src.c (io) includes libcommon/model.h (model)"
  assert_output --partial "err (base) calls task (tasks)"
  assert_output --partial "libcommon/misc.c: in no layer"
}

@test "structure: every exported name of libcommon.a and libcli.a has a known prefix" {
  [ -f "$ROOT/build/libcommon.a" ] && [ -f "$ROOT/build/libcli.a" ] || skip "build/*.a not built (make all)"
  command -v nm > /dev/null || skip "nm (binutils) absent"
  run python3 "$CHECK" "$ROOT" exports
  assert_success
  # planted: libc's warn(3) name and a helper without a subject
  T=$(scratch)
  printf 'void warn(const char *m) { (void)m; }\nint helper(void) { return 0; }\nint st_fine(void) { return 1; }\nstatic int quiet(void) { return 0; }\nint st_q(void) { return quiet(); }\n' > "$T/x.c"
  mkdir -p "$T/b"
  cc -c "$T/x.c" -o "$T/x.o" && ar rcs "$T/b/libcommon.a" "$T/x.o" && cp "$ROOT/build/libcli.a" "$T/b/"
  run python3 "$CHECK" "$ROOT" exports "$T/b"
  assert_failure
  assert_output --partial '"warn"'
  assert_output --partial '"helper"'
  refute_output --partial '"st_fine"'
  refute_output --partial '"quiet"'
}

@test "structure: the layer kernels are called by the backend only (not the core, the trainer or a tool)" {
  [ -n "$(ls "$ROOT"/build/libcommon/*.o 2>/dev/null)" ] || skip "build/libcommon not built (make all)"
  command -v nm > /dev/null || skip "nm (binutils) absent"
  run python3 "$CHECK" "$ROOT" kernels
  assert_success
  # planted: the trainer calling RMSNorm itself, and a tool calling the GLU
  copy_tree
  mkdir -p "$T/b/libcommon"
  cp "$ROOT"/build/libcommon/*.o "$T/b/libcommon/"
  printf 'void rmsnorm_forward(float *, float *, const float *, const float *, int, int, float, int);\nvoid f(float *x) { rmsnorm_forward(x, 0, x, x, 1, 1, 1e-6f, 0); }\n' > "$T/p.c"
  cc -c "$T/p.c" -o "$T/b/libcommon/train_step.o"
  printf 'static void g(float *h) { glu_forward(h, h, h, 1, 0); }\n' >> "$T/cmd/ppl/main.c"
  run python3 "$CHECK" "$T" kernels "$T/b"
  assert_failure
  assert_output --partial "libcommon/train_step.c calls the layer kernel rmsnorm_forward"
  assert_output --partial "cmd/ppl/main.c"
}
