/* kl.c — ppl's top-k files and KL (kl.h). */
#include "kl.h"
#include <cjson/cJSON.h>
#include "kd.h"
#include "kd_cache.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ppl_saver {
    kd_cache_w *w;
    int k;
    int32_t *ids;      /* [T, k] sorted rows of the counted positions */
    float *lp, *tail, *tlp;
    int cap;           /* rows */
    struct idlp { int32_t id; float lp; } *pair;
};

int ppl_saver_open(ppl_saver **out, const char *path, int vocab, int k, const char *model, lop_err *e) {
    *out = NULL;
    ppl_saver *s = calloc(1, sizeof *s);
    if (!s) return lop_fail(e, "out of memory");
    s->k = k;
    s->pair = malloc(sizeof *s->pair * (size_t)k);
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "tool", "ppl");
    cJSON_AddStringToObject(meta, "model", model ? model : "");
    char *mj = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    int rc = !s->pair || !mj ? lop_fail(e, "out of memory")
                             : kdc_create(&s->w, path, vocab, k, 1.0, mj, NULL, 0, 3, e);
    free(mj);
    if (rc) { free(s->pair); free(s); return -1; }
    *out = s;
    return 0;
}

static int cmp_id(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int ppl_saver_put(ppl_saver *s, int T, const int32_t *ids, const int32_t *target,
                  const int32_t *topk_id, const float *topk_logit, const float *lse,
                  const float *target_lp, lop_err *e) {
    int k = s->k, n = 0;
    if (T > s->cap) {
        size_t rows = (size_t)T;
        int32_t *i2 = realloc(s->ids, sizeof *i2 * rows * k);
        if (i2) s->ids = i2;
        float *l2 = realloc(s->lp, sizeof *l2 * rows * k);
        if (l2) s->lp = l2;
        float *t2 = realloc(s->tail, sizeof *t2 * rows);
        if (t2) s->tail = t2;
        float *p2 = realloc(s->tlp, sizeof *p2 * rows);
        if (p2) s->tlp = p2;
        if (!i2 || !l2 || !t2 || !p2) return lop_fail(e, "out of memory");
        s->cap = T;
    }
    for (int r = 0; r < T; r++) {
        if (target[r] < 0) continue;
        double mass = 0;
        for (int j = 0; j < k; j++) {
            s->pair[j].id = topk_id[(size_t)r * k + j];
            s->pair[j].lp = topk_logit[(size_t)r * k + j] - lse[r];
            mass += exp((double)s->pair[j].lp);
        }
        qsort(s->pair, (size_t)k, sizeof *s->pair, cmp_id);   /* the format keeps ids ascending */
        for (int j = 0; j < k; j++) {
            s->ids[(size_t)n * k + j] = s->pair[j].id;
            s->lp[(size_t)n * k + j] = s->pair[j].lp;
        }
        s->tail[n] = mass < 1 ? (float)log1p(-mass) : -INFINITY;
        s->tlp[n] = target_lp[r];
        n++;
    }
    return kdc_put_target(s->w, T, ids, target, s->ids, s->lp, s->tail, s->tlp, e);
}

int ppl_saver_finish(ppl_saver *s, lop_err *e) {
    int rc = kdc_finish(s->w, e);
    free(s->ids); free(s->lp); free(s->tail); free(s->tlp); free(s->pair); free(s);
    return rc;
}

struct ppl_base {
    kd_cache *c;
    kdc_block blk;
    int64_t next_block;
    int loaded, pos, scored;  /* pos: next position of blk to look at; scored: its scored index */
};

int ppl_base_open(ppl_base **out, const char *path, int vocab, int *k, lop_err *e) {
    *out = NULL;
    ppl_base *b = calloc(1, sizeof *b);
    if (!b) return lop_fail(e, "out of memory");
    if (kdc_open(&b->c, path, e)) { free(b); return -1; }
    int rc = 0;
    if (kdc_vocab(b->c) != vocab)
        rc = lop_fail(e, "%s: saved with a vocabulary of %d, this model has %d", path, kdc_vocab(b->c), vocab);
    else if (kdc_temperature(b->c) != 1.0)
        rc = lop_fail(e, "%s: log-probs at temperature %g; ppl compares at temperature 1", path, kdc_temperature(b->c));
    if (rc) { ppl_base_close(b); return -1; }
    *k = kdc_k(b->c);
    *out = b;
    return 0;
}

int ppl_base_next(ppl_base *b, ppl_base_row *r, lop_err *e) {
    for (;;) {
        if (b->loaded) {
            while (b->pos < b->blk.T && b->blk.targets[b->pos] < 0) b->pos++;
            if (b->pos < b->blk.T) break;
        }
        if (b->next_block >= kdc_blocks(b->c)) return 0;
        if (kdc_read(b->c, b->next_block++, &b->blk, e)) return -1;
        b->loaded = 1;
        b->pos = b->scored = 0;
    }
    const kdc_block *k = &b->blk;
    int s = b->scored++;
    r->target = k->targets[b->pos++];
    r->id = k->topk_ids + (size_t)s * k->k;
    r->lp = k->topk_lp + (size_t)s * k->k;
    r->tail = k->tail[s];
    r->target_lp = k->target_lp ? k->target_lp[s] : NAN;
    int best = 0;
    for (int j = 1; j < k->k; j++) if (r->lp[j] > r->lp[best]) best = j;
    r->top1 = r->id[best];
    return 1;
}

void ppl_base_close(ppl_base *b) {
    if (!b) return;
    kdc_block_free(&b->blk);
    kdc_close(b->c);
    free(b);
}

double ppl_row_kl(const ppl_base_row *r, int k, const float *cur_logit, float lse, double *w) {
    /* buckets: the k ids, then the tail; w: scratch of 5 (k + 1) doubles */
    int nb = k + 1;
    double *lp = w, *lq = w + nb, *P = w + 2 * nb, *Q = w + 3 * nb, *h = w + 4 * nb, qsum = 0;
    for (int j = 0; j < k; j++) {
        lp[j] = r->lp[j];
        lq[j] = (double)cur_logit[j] - lse;
        P[j] = exp(lp[j]);
        Q[j] = exp(lq[j]);
        qsum += Q[j];
    }
    lp[k] = r->tail;
    P[k] = exp(lp[k]);
    /* the current model's tail from its top-k sum; rounding can take it to 0 or below, where a
     * base tail would make the divergence infinite: floor it at 1e-12 */
    Q[k] = 1 - qsum > 1e-12 ? 1 - qsum : 1e-12;
    lq[k] = log(Q[k]);
    double kl = kd_div(KD_FKL, lp, lq, P, Q, nb, 0, h);
    return kl > 0 ? kl : 0;
}
