/* model_head.c — the lm_head without a [rows, V] logits matrix: vocabulary rows are converted to
 * float32 in blocks of VB, each block multiplied against all selected rows (in chunks of RC rows)
 * and reduced at once into a running logsumexp, the target's logit, top-k and argmax per row.
 * OpenMP threads take vocabulary blocks dynamically, each keeping its own running state per row;
 * the states are merged at the end. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "backend.h"
#include "nn.h"

#define VB 256  /* vocabulary rows per block */
#define RC 512  /* selected rows per GEMM chunk */

typedef struct head_state { /* one thread's running reductions, per selected row */
    double *mx, *sum;  /* [R] running max and sum of exp(logit - max) */
    int32_t *kid;      /* [R, K] top-k ids, best first */
    float *kval;       /* [R, K] their logits */
    int *kn;           /* [R] entries filled */
} head_state;

static inline int better(float v1, int32_t i1, float v2, int32_t i2) {
    return v1 > v2 || (v1 == v2 && i1 < i2);
}

/* insert (v, id) into a row's sorted top-K list */
static inline void topk_insert(int32_t *ids, float *vals, int *n, int K, float v, int32_t id) {
    int i;
    if (*n < K) {
        i = (*n)++;
    } else {
        if (!better(v, id, vals[K - 1], ids[K - 1])) return;
        i = K - 1;
    }
    while (i > 0 && better(v, id, vals[i - 1], ids[i - 1])) {
        vals[i] = vals[i - 1];
        ids[i] = ids[i - 1];
        i--;
    }
    vals[i] = v;
    ids[i] = id;
}

/* Reduce one row's logits lg[nv] of vocab v0.. into state slot r. */
static void reduce_row(head_state *s, int r, const float *lg, int nv, int v0, int K) {
    float bm = nn_max(lg, nv);
    float bs = nn_sumexp(lg, nv, bm);
    double M = s->mx[r];
    if (bm > M) {
        s->sum[r] = s->sum[r] * exp(M - bm) + bs;
        s->mx[r] = bm;
    } else {
        s->sum[r] += bs * exp((double)bm - M);
    }
    if (!K) return;
    int32_t *ids = s->kid + (size_t)r * K;
    float *vals = s->kval + (size_t)r * K;
    int *n = &s->kn[r];
    float thr = *n < K ? -INFINITY : vals[K - 1];
    if (*n == K && bm < thr) return;
    for (int j = 0; j < nv; j++) {
        if (lg[j] < thr) continue;
        topk_insert(ids, vals, n, K, lg[j], v0 + j);
        thr = *n < K ? -INFINITY : vals[K - 1];
    }
}

static int state_alloc(head_state *s, int R, int K) {
    s->mx = malloc(sizeof(double) * R);
    s->sum = malloc(sizeof(double) * R);
    s->kn = calloc(R, sizeof(int));
    s->kid = K ? malloc(sizeof(int32_t) * (size_t)R * K) : NULL;
    s->kval = K ? malloc(sizeof(float) * (size_t)R * K) : NULL;
    if (!s->mx || !s->sum || !s->kn || (K && (!s->kid || !s->kval))) return -1;
    for (int r = 0; r < R; r++) { s->mx[r] = -INFINITY; s->sum[r] = 0; }
    return 0;
}

static void state_free(head_state *s) {
    free(s->mx); free(s->sum); free(s->kid); free(s->kval); free(s->kn);
}

int head_forward_cpu(const lop_head_args *a, lop_head_req *h, lop_err *e) {
    const float *xn = a->xn;
    int N = a->N, C = a->C, V = a->V;
    const lop_wref *W = a->w;
    size_t es = st_dtype_size(W->dtype);
    /* the selected rows */
    int *row = malloc(sizeof(int) * (size_t)N), *wl = malloc(sizeof(int) * (size_t)N);
    if (!row || !wl) { free(row); free(wl); return lop_fail(e, "out of memory"); }
    int R = 0, nwant = 0, nonfinite = 0;
    for (int i = 0; i < N; i++) {
        int want = h->want_logits && h->want_logits[i] && h->logits;
        if (!h->select || h->select[i] || want) {
            wl[R] = want ? nwant++ : -1;
            row[R++] = i;
        }
    }
    if (!R) { free(row); free(wl); return 0; }
    int K = h->topk > 0 ? h->topk : 0;
    if (h->argmax && K < 1) K = 1;
    if (K > V) K = V;
    float *X = (float *)xn;
    int gathered = R < N;
    if (gathered) {
        X = malloc(sizeof(float) * (size_t)R * C);
        if (!X) { free(row); free(wl); return lop_fail(e, "out of memory"); }
        for (int r = 0; r < R; r++) memcpy(X + (size_t)r * C, xn + (size_t)row[r] * C, sizeof(float) * C);
    }
    float *tlogit = malloc(sizeof(float) * R);
    int nth = omp_get_max_threads();
    head_state *st = calloc(nth, sizeof *st);
    int fail = !tlogit || !st;
    for (int t = 0; !fail && t < nth; t++) fail = state_alloc(&st[t], R, K);
    if (!fail) for (int r = 0; r < R; r++) tlogit[r] = NAN;
    int nblk = (V + VB - 1) / VB, stop = 0;
    /* bf16 GEMM: the selected rows rounded to bf16 once, in chunks of whole packed row blocks */
    int bf16 = a->gemm == LOP_GEMM_BF16;
    int rc = bf16 ? RC / GB_ROWS * GB_ROWS : RC, K2 = (C + 1) / 2;
    uint32_t *Xp = NULL;
    if (!fail && bf16) {
        Xp = gemm_bf16_xbuf(1, gemm_bf16_xpack_size(R, C));
        if (Xp) gemm_bf16_pack_x(Xp, X, R, C, C);
        else fail = 1;
    }
    float cap = a->softcap;
    if (!fail) {
        #pragma omp parallel num_threads(nth)
        {
            head_state *s = &st[omp_get_thread_num()];
            /* f32: the block converted to float32; bf16: the block packed once for all chunks */
            float *wf = nn_scratch(2, bf16 ? gemm_bf16_wpack_size(VB, C) : (size_t)VB * C);
            float *lg = nn_scratch(3, (size_t)RC * VB);
            if (!wf || !lg) {
                #pragma omp atomic write
                fail = 1;
            }
            #pragma omp for schedule(dynamic, 1)
            for (int bk = 0; bk < nblk; bk++) {
                if (fail || stop) continue;
                int v0 = bk * VB, nv = V - v0 < VB ? V - v0 : VB;
                const char *wb = (const char *)W->data + (size_t)v0 * C * es;
                if (!bf16) {
                    nn_to_f32_serial(wf, wb, W->dtype, (size_t)nv * C);
                } else if (gemm_bf16_pack_w((uint32_t *)wf, wb, W->dtype, nv, C)) {
                    #pragma omp atomic write
                    fail = 1;
                    continue;
                }
                for (int r0 = 0; r0 < R; r0 += rc) {
                    int nr = R - r0 < rc ? R - r0 : rc;
                    if (!bf16)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nv, C, 1.0f,
                                    X + (size_t)r0 * C, C, wf, C, 0.0f, lg, nv);
                    else if (gemm_bf16_nt_packed(lg, Xp + (size_t)r0 * K2, (const uint32_t *)wf, nr, nv, C, nv, 0)) {
                        #pragma omp atomic write
                        fail = 1;
                        break;
                    }
                    if (cap > 0)
                        for (size_t j = 0; j < (size_t)nr * nv; j++) lg[j] = cap * tanhf(lg[j] / cap);
                    for (int r = 0; r < nr; r++) {
                        const float *lr = lg + (size_t)r * nv;
                        int i = row[r0 + r];
                        if (h->target) {
                            int32_t tg = h->target[i];
                            if (tg >= v0 && tg < v0 + nv) tlogit[r0 + r] = lr[tg - v0];
                        }
                        if (wl[r0 + r] >= 0)
                            memcpy(h->logits + (size_t)wl[r0 + r] * V + v0, lr, sizeof(float) * nv);
                        reduce_row(s, r0 + r, lr, nv, v0, K);
                    }
                    if (h->block) {
                        #pragma omp critical(lop_head_block)
                        if (!stop && h->block(h->user, v0, nv, lg, nr, row + r0)) stop = 1;
                    }
                }
            }
        }
    }
    if (!fail && !stop) { /* merge the threads' states into thread 0's */
        head_state *s0 = &st[0];
        for (int t = 1; t < nth; t++) {
            head_state *s = &st[t];
            for (int r = 0; r < R; r++) {
                if (s->mx[r] == -INFINITY) continue;
                double M = s0->mx[r];
                if (s->mx[r] > M) {
                    s0->sum[r] = s0->sum[r] * exp(M - s->mx[r]) + s->sum[r];
                    s0->mx[r] = s->mx[r];
                } else {
                    s0->sum[r] += s->sum[r] * exp(s->mx[r] - M);
                }
                for (int k = 0; k < s->kn[r]; k++)
                    topk_insert(s0->kid + (size_t)r * K, s0->kval + (size_t)r * K, &s0->kn[r], K,
                                s->kval[(size_t)r * K + k], s->kid[(size_t)r * K + k]);
            }
        }
        for (int r = 0; r < R; r++) {
            int i = row[r];
            double lse = s0->mx[r] + log(s0->sum[r]);
            /* every hidden state was finite (lop_forward checks): a non-finite logit is the head's */
            if (!isfinite(lse) || (h->target && h->target[i] >= 0 && h->target[i] < V && !isfinite(tlogit[r])))
                nonfinite = 1;
            if (h->lse) h->lse[i] = (float)lse;
            if (h->target_logprob)
                h->target_logprob[i] = h->target && h->target[i] >= 0 && h->target[i] < V
                                       ? (float)(tlogit[r] - lse) : 0.0f;
            if (h->argmax) h->argmax[i] = s0->kid[(size_t)r * K];
            if (h->topk > 0)
                for (int k = 0; k < h->topk; k++) {
                    int ok = k < K && k < s0->kn[r];
                    h->topk_id[(size_t)i * h->topk + k] = ok ? s0->kid[(size_t)r * K + k] : -1;
                    h->topk_logit[(size_t)i * h->topk + k] = ok ? s0->kval[(size_t)r * K + k] : -INFINITY;
                }
        }
    }
    for (int t = 0; st && t < nth; t++) state_free(&st[t]);
    free(st);
    free(tlogit);
    if (gathered) free(X);
    free(row);
    free(wl);
    if (fail) return lop_fail(e, "out of memory in the lm_head");
    if (nonfinite)
        return lop_fail(e, "non-finite logits (NaN or Inf): the hidden states are finite, the lm_head "
                           "(%s) is not", W->name ? W->name : "unnamed");
    if (stop) return lop_fail(e, "a head block callback stopped the forward");
    return 0;
}
