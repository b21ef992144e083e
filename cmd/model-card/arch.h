/* arch.h — what a model card says about a model folder: its config.json's architecture and its
 * exact parameter count (summed from the safetensors headers, never from a formula, so tied
 * embeddings, biases and norms count exactly as stored). */
#ifndef MC_ARCH_H
#define MC_ARCH_H
#include <stdint.h>
#include "err.h"

typedef struct mc_arch {
    char path[1024];
    char model_type[64], architecture[96], dtype[32];
    int n_layers, hidden, inter, n_heads, n_kv_heads, head_dim, vocab, max_pos;
    int tied;            /* -1 unknown */
    int n_sliding, n_full; /* from layer_types; both 0 when absent */
    int64_t params;      /* -1 when no weights were found */
    int64_t zeros;       /* -1 unless counted */
} mc_arch;

/* Read PATH (an HF folder, or a config.json file): config and, when weights are there, the
 * parameter count. Fails when config.json is missing or not JSON. */
int arch_read(mc_arch *a, const char *path, lop_err *e);
/* Parameter count from a model folder's safetensors headers (single file or index + shards). */
int arch_count_params(const char *dir, int64_t *params, lop_err *e);
#endif
