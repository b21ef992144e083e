#!/usr/bin/env bats
# The tree's shape (tools/check-structure.py): one architecture table, one reader of each kind,
# no circles, layer kernels called by the backend only. Each check also runs on a planted violation, so it can fail.
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
  run python3 "$CHECK" "$T" names
  assert_failure
  assert_output --partial "libcommon/model.c"
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

@test "structure: no call circle among libcommon's objects, no include circle" {
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
