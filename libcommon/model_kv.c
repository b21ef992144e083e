/* model_kv.c — the key/value cache for incremental decoding: per layer, per sequence, max_t rows
 * of post-norm, post-rope keys and of values. */
#include "model.h"
#include <stdlib.h>

int lop_kv_new(lop_kv **out, const lop_model *m, int B, int max_t, lop_err *e) {
    *out = NULL;
    if (B < 1 || max_t < 1) return lop_failc(e, LOP_EUSAGE, "kv cache: bad size %d x %d", B, max_t);
    int L = m->cfg.n_layers;
    size_t row = (size_t)m->cfg.n_kv_heads * m->cfg.head_dim;
    lop_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return lop_fail(e, "out of memory");
    kv->B = B;
    kv->max_t = max_t;
    kv->len = calloc(B, sizeof *kv->len);
    kv->k = calloc(L ? L : 1, sizeof *kv->k);
    kv->v = calloc(L ? L : 1, sizeof *kv->v);
    int ok = kv->len && kv->k && kv->v;
    for (int l = 0; ok && l < L; l++) {
        kv->k[l] = malloc(sizeof(float) * row * B * max_t);
        kv->v[l] = malloc(sizeof(float) * row * B * max_t);
        ok = kv->k[l] && kv->v[l];
    }
    kv->n_layers = L;
    if (!ok) {
        lop_kv_free(kv);
        return lop_fail(e, "kv cache: out of memory (%d x %d positions)", B, max_t);
    }
    *out = kv;
    return 0;
}

void lop_kv_reset(lop_kv *kv) {
    for (int b = 0; b < kv->B; b++) kv->len[b] = 0;
}

void lop_kv_free(lop_kv *kv) {
    if (!kv) return;
    for (int l = 0; l < kv->n_layers; l++) {
        if (kv->k) free(kv->k[l]);
        if (kv->v) free(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    free(kv->len);
    free(kv);
}
