/* folder.h — what a model card says about a model folder: its architecture (config.json, parsed
 * by libcommon's config_parse, the family from the architecture table) and its exact parameter
 * count (summed from the safetensors headers by st_open, never from a formula, so tied
 * embeddings, biases and norms count exactly as stored). */
#ifndef MC_FOLDER_H
#define MC_FOLDER_H
#include <stdint.h>
#include "err.h"

typedef struct mc_arch {
    char path[1024];
    char model_type[64], architecture[96], dtype[32];
    int n_layers, hidden, inter, n_heads, n_kv_heads, head_dim, vocab, max_pos;
    int tied;
    int n_sliding, n_full; /* attention types of the layers; both 0 for a model without sliding windows */
    int types_listed;      /* config.json lists layer_types explicitly */
    int64_t params;        /* -1 when no weights were found (or they do not open) */
} mc_arch;

/* Read PATH (an HF folder, or a config.json file): config and, when weights are there, the
 * parameter count. Fails when config.json is missing or not a config lop reads. */
int mc_folder_read(mc_arch *a, const char *path, lop_err *e);
#endif
