/* model_kv.c — the key/value cache for incremental decoding: per layer, per sequence, max_t rows
 * of post-norm, post-rope keys and of values, in the memory of the backend the model runs on. */
#include "model.h"
#include "model_priv.h"
#include <stdlib.h>

int lop_kv_new(lop_kv **out, const lop_model *m, int B, int max_t, lop_err *e) {
    *out = NULL;
    if (B < 1 || max_t < 1) return lop_failc(e, LOP_EUSAGE, "kv cache: bad size %d x %d", B, max_t);
    const engine_priv *p = m->priv;
    int L = m->cfg.n_layers;
    size_t row = (size_t)m->cfg.n_kv_heads * m->cfg.head_dim;
    lop_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return lop_fail(e, "out of memory");
    kv->B = B;
    kv->max_t = max_t;
    kv->row = (int64_t)row;
    kv->be = p->be;
    kv->len = calloc(B, sizeof *kv->len);
    kv->k = calloc(L ? L : 1, sizeof *kv->k);
    kv->v = calloc(L ? L : 1, sizeof *kv->v);
    int ok = kv->len && kv->k && kv->v;
    for (int l = 0; ok && l < L; l++) {
        kv->k[l] = kv->be->op->alloc(kv->be, sizeof(float) * row * B * max_t);
        kv->v[l] = kv->be->op->alloc(kv->be, sizeof(float) * row * B * max_t);
        ok = kv->k[l] && kv->v[l];
    }
    kv->n_layers = L;
    if (!ok) {
        lop_kv_free(kv);
        return lop_fail(e, "kv cache: out of %s memory (%d x %d positions)", p->be->name, B, max_t);
    }
    *out = kv;
    return 0;
}

void lop_kv_reset(lop_kv *kv) {
    for (int b = 0; b < kv->B; b++) kv->len[b] = 0;
}

int lop_kv_copy(lop_kv *dst, int di, const lop_kv *src, int si, int n, lop_err *e) {
    if (dst->be != src->be || dst->row != src->row || dst->n_layers != src->n_layers)
        return lop_failc(e, LOP_EUSAGE, "kv copy between caches of different models or devices");
    if (di < 0 || di >= dst->B || si < 0 || si >= src->B || n < 0 || n > dst->max_t || n > src->max_t)
        return lop_failc(e, LOP_EUSAGE, "kv copy out of range");
    size_t bytes = sizeof(float) * (size_t)n * dst->row;
    for (int l = 0; l < dst->n_layers && n > 0; l++) {
        size_t od = (size_t)di * dst->max_t * dst->row, os = (size_t)si * src->max_t * src->row;
        if (dst->be->op->copy(dst->be, dst->k[l] + od, src->k[l] + os, bytes, e) ||
            dst->be->op->copy(dst->be, dst->v[l] + od, src->v[l] + os, bytes, e))
            return -1;
    }
    dst->len[di] = n;
    return 0;
}

void lop_kv_free(lop_kv *kv) {
    if (!kv) return;
    for (int l = 0; l < kv->n_layers; l++) {
        if (kv->k && kv->k[l]) kv->be->op->release(kv->be, kv->k[l]);
        if (kv->v && kv->v[l]) kv->be->op->release(kv->be, kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    free(kv->len);
    free(kv);
}
