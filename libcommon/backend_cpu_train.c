/* backend_cpu_train.c — the CPU backend's training ops: LoRA beside a matmul, the backwards of
 * every layer kernel, the training head, cross-entropy and AdamW. Each op is the call the trainer
 * made before the seam existed (grad_*.c, optim.c, OpenBLAS sgemm), so the numbers are the same.
 * The backward GEMMs are single large sgemms: they run on OpenBLAS's own threads (the forward
 * parks them at one; set_blas_wide gives them back); LoRA's forward stays in the forward's scheme. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "backend_cpu.h"
#include "grad.h"
#include "optim.h"

static void set_blas_wide(void) {
    int nt = omp_get_max_threads();
    if (openblas_get_num_threads() != nt) openblas_set_num_threads(nt);
}

/* float32 view of a matrix weight (a frozen one converted whole into the backend's scratch) */
static const float *matf(cpu_be *c, const lop_wref *w, size_t row0, size_t rows, lop_err *e) {
    size_t n = rows * (size_t)w->cols;
    if (w->dtype == ST_F32) return (const float *)w->data + row0 * (size_t)w->cols;
    if (n > c->wscr_cap) {
        free(c->wscr);
        size_t want = n > c->wscr_want ? n : c->wscr_want;
        c->wscr = malloc(want * sizeof(float));
        c->wscr_cap = c->wscr ? want : 0;
        if (!c->wscr) { lop_fail(e, "out of memory for a %zu-float weight scratch", want); return NULL; }
    }
    nn_to_f32(c->wscr, (const char *)w->data + row0 * (size_t)w->cols * st_dtype_size(w->dtype),
              w->dtype, n);
    return c->wscr;
}

int cpu_zero(lop_backend *be, void *p, size_t n, lop_err *e) {
    (void)be; (void)e;
    if (n) memset(p, 0, n);
    return 0;
}

/* x, or dropout(x) written into tmp */
static const float *lora_in(float *tmp, const float *x, size_t n, float p, uint64_t seed,
                            uint64_t key) {
    if (p <= 0) return x;
    float s = (float)(1.0 / (1.0 - (double)p));
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) tmp[i] = lop_dropout_keep(seed, key, i, p) ? x[i] * s : 0.0f;
    return tmp;
}

/* out[N, M] = alpha * x[N, K] @ w[M, K]^T + beta * out, rows split across the OpenMP threads,
 * each calling single-threaded OpenBLAS: the forward's scheme (nn_matmul.c), so OpenBLAS's own
 * threads are never woken inside a forward (their spinning after a call slowed every OpenMP
 * kernel after it: LoRA r16 training ran ~20% slower) */
static void gemm_nt_rows(float *out, const float *x, const float *w, int N, int K, int M,
                         float alpha, float beta) {
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    #pragma omp parallel
    {
        int T = omp_get_num_threads(), t = omp_get_thread_num();
        int n0 = (int)((long)N * t / T), n1 = (int)((long)N * (t + 1) / T);
        if (n0 < n1)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n1 - n0, M, K, alpha,
                        x + (size_t)n0 * K, K, w, K, beta, out + (size_t)n0 * M, M);
    }
}

int cpu_lora_forward(lop_backend *be, float *out, float *xa, float *tmp, const float *x,
                     const float *A, const float *B, int N, int IC, int OC, int r, float scale,
                     float dropout, uint64_t seed, uint64_t key, lop_gemm g, lop_err *e) {
    (void)be; (void)g; (void)e;
    const float *xd = lora_in(tmp, x, (size_t)N * IC, dropout, seed, key);
    gemm_nt_rows(xa, xd, A, N, IC, r, 1.0f, 0.0f);
    gemm_nt_rows(out, xa, B, N, r, OC, scale, 1.0f);
    return 0;
}

/* the seam's overwrite on the cpu: the kernels accumulate, so the output starts at 0 (one pass,
 * small beside the products) */
static void cpu_clear(float *p, size_t n, int overwrite) {
    if (p && overwrite) memset(p, 0, sizeof(float) * n);
}

int cpu_matmul_backward(lop_backend *be, float *din, float *dw, float *dbias, const float *dout,
                        const float *x, const lop_wref *w, int N, lop_gemm g, int overwrite,
                        lop_err *e) {
    (void)g;
    set_blas_wide();
    const float *wf = din ? matf((cpu_be *)be, w, 0, (size_t)w->rows, e) : NULL;
    if (din && !wf) return -1;
    cpu_clear(din, (size_t)N * w->cols, overwrite);
    tr_matmul_backward(din, dw, dbias, dout, x, wf, N, (int)w->cols, (int)w->rows);
    return 0;
}

int cpu_lora_backward(lop_backend *be, float *din, float *dA, float *dB, float *dxa, float *tmp,
                      const float *dout, const float *x, const float *xa, const float *A,
                      const float *B, int N, int IC, int OC, int r, float scale, float dropout,
                      uint64_t seed, uint64_t key, lop_gemm g, int overwrite, lop_err *e) {
    (void)be; (void)g; (void)e;
    set_blas_wide();
    cpu_clear(din, (size_t)N * IC, overwrite);
    /* dxa = s dout B;  dB += s dout^T xa;  dA += dxa^T xd;  din += mask(dxa A) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, OC, scale, dout, OC, B, r, 0.0f,
                dxa, r);
    if (dB)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, r, N, scale, dout, OC, xa, r,
                    1.0f, dB, r);
    if (dA) {
        const float *xd = lora_in(tmp, x, (size_t)N * IC, dropout, seed, key);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, IC, N, 1.0f, dxa, r, xd, IC, 1.0f,
                    dA, IC);
    }
    if (!din) return 0;
    if (dropout <= 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, r, 1.0f, dxa, r, A, IC, 1.0f,
                    din, IC);
        return 0;
    }
    float sc = (float)(1.0 / (1.0 - (double)dropout));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, r, 1.0f, dxa, r, A, IC, 0.0f, tmp,
                IC);
    size_t n = (size_t)N * IC;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        if (lop_dropout_keep(seed, key, i, dropout)) din[i] += tmp[i] * sc;
    return 0;
}

int cpu_rmsnorm_backward(lop_backend *be, float *dx, float *dw, const float *dout, const float *x,
                         const float *rstd, const lop_wref *w, int N, int C, int gemma,
                         int overwrite, lop_err *e) {
    (void)e;
    cpu_clear(dx, (size_t)N * C, overwrite);
    tr_rmsnorm_backward(dx, dw, dout, x, rstd, cpu_vecf((cpu_be *)be, w), N, C, gemma);
    return 0;
}

int cpu_rope_backward(lop_backend *be, float *dx, const float *cs, int N, int H, int D, lop_err *e) {
    (void)be; (void)e;
    rope_apply_inverse(dx, cs, N, H, D);
    return 0;
}

int cpu_attention_backward(lop_backend *be, const lop_attn_bwd_args *a, lop_err *e) {
    cpu_be *c = (cpu_be *)be;
    set_blas_wide();
    int maxT = 0, same = 1;
    for (int b = 0; b < a->B; b++) {
        int T = a->len[b];
        if (T > maxT) maxT = T;
        same &= T == a->len[0] && a->off[b] == b * a->len[0] &&
                a->att_off[b] == (int64_t)b * a->Hq * a->len[0] * a->len[0];
    }
    size_t need = 2 * (size_t)maxT * maxT;
    if (need > c->ascr_cap) {
        free(c->ascr);
        c->ascr = malloc(need * sizeof(float));
        c->ascr_cap = c->ascr ? need : 0;
        if (!c->ascr) return lop_fail(e, "out of memory for the attention backward");
    }
    int qd = a->Hq * a->D, kd = a->Hkv * a->D;
    size_t N = a->B > 0 ? (size_t)a->off[a->B - 1] + (size_t)a->len[a->B - 1] : 0;
    cpu_clear(a->dq, N * qd, a->overwrite);
    cpu_clear(a->dk, N * kd, a->overwrite);
    cpu_clear(a->dv, N * kd, a->overwrite);
    if (same) { /* equal lengths (the trainer's B x T): one call over the batch */
        tr_attention_backward(a->dq, a->dk, a->dv, c->ascr, a->dout, a->att, a->q, a->k, a->v,
                              a->B, a->len[0], a->Hq, a->Hkv, a->D, a->scale, a->softcap,
                              a->window);
        return 0;
    }
    for (int b = 0; b < a->B; b++) {
        size_t r0 = (size_t)a->off[b];
        tr_attention_backward(a->dq ? a->dq + r0 * qd : NULL, a->dk ? a->dk + r0 * kd : NULL,
                              a->dv ? a->dv + r0 * kd : NULL, c->ascr, a->dout + r0 * qd,
                              a->att + a->att_off[b], a->q + r0 * qd, a->k + r0 * kd,
                              a->v + r0 * kd, 1, a->len[b], a->Hq, a->Hkv, a->D, a->scale,
                              a->softcap, a->window);
    }
    return 0;
}

int cpu_glu_backward(lop_backend *be, float *dgate, float *dup, const float *dh, const float *gate,
                     const float *up, size_t n, lop_act act, int overwrite, lop_gemm g,
                     lop_err *e) {
    (void)be; (void)e; (void)g;
    cpu_clear(dgate, n, overwrite);
    cpu_clear(dup, n, overwrite);
    tr_glu_backward(dgate, dup, dh, gate, up, n, act == ACT_GELU_TANH);
    return 0;
}

int cpu_embed_backward(lop_backend *be, float *dtable, const float *dout, const int32_t *ids, int N,
                       int C, float scale, lop_err *e) {
    (void)be; (void)e;
    tr_embedding_backward(dtable, dout, ids, N, C, scale);
    return 0;
}

/* The head's products over n rows: a float32 head is one GEMM; a frozen head in its stored dtype
 * is converted block by block of vocabulary rows into the scratch (the backward's sum over the
 * vocabulary then runs block by block). */
int cpu_head_logits(lop_backend *be, float *logits, float *capped, const float *xn, int n,
                    const lop_wref *w, float softcap, lop_gemm g, lop_err *e) {
    cpu_be *c = (cpu_be *)be;
    (void)g;
    set_blas_wide();
    int C = (int)w->cols, V = (int)w->rows;
    int vb = w->dtype == ST_F32 ? V : (int)(c->wscr_want / (size_t)C);
    for (int v0 = 0; v0 < V; v0 += vb) {
        int nv = V - v0 < vb ? V - v0 : vb;
        const float *wf = matf(c, w, (size_t)v0, (size_t)nv, e);
        if (!wf) return -1;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nv, C, 1.0f, xn, C, wf, C, 0.0f,
                    logits + v0, V);
    }
    if (softcap > 0) {
        tr_softcap_forward(logits, (size_t)n * V, softcap);
        if (capped) memcpy(capped, logits, sizeof(float) * (size_t)n * V);
    }
    return 0;
}

int cpu_head_backward(lop_backend *be, float *dxn, float *dw, float *dlogits, const float *capped,
                      const float *xn, int n, const lop_wref *w, float softcap, lop_gemm g,
                      lop_err *e) {
    cpu_be *c = (cpu_be *)be;
    (void)g;
    set_blas_wide();
    int C = (int)w->cols, V = (int)w->rows;
    if (softcap > 0) tr_softcap_backward(dlogits, capped, (size_t)n * V, softcap);
    if (dxn) {
        int vb = w->dtype == ST_F32 ? V : (int)(c->wscr_want / (size_t)C);
        for (int v0 = 0; v0 < V; v0 += vb) {
            int nv = V - v0 < vb ? V - v0 : vb;
            const float *wf = matf(c, w, (size_t)v0, (size_t)nv, e);
            if (!wf) return -1;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, C, nv, 1.0f, dlogits + v0, V,
                        wf, C, 1.0f, dxn, C);
        }
    }
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, n, 1.0f, dlogits, V, xn, C, 1.0f,
                    dw, C);
    return 0;
}

int cpu_xent(lop_backend *be, float *logits, const int32_t *targets, int n, int V, float gscale,
             double *loss_sum, int64_t *scored, lop_err *e) {
    (void)be; (void)e;
    tr_loss_chunk lc = {logits, targets, 0, n, V, gscale, be, 0};
    *scored = 0;
    *loss_sum = tr_xent_loss(&lc, NULL, scored); /* NaN (the caller's finite check) if no memory */
    return 0;
}

int cpu_grad_sumsq(lop_backend *be, double *out, const float *g, size_t n, lop_err *e) {
    (void)be; (void)e;
    *out = grad_sumsq(g, n);
    return 0;
}

int cpu_adamw(lop_backend *be, float *p, float *g, float *m, float *v, const uint8_t *zero_bits,
              size_t n, float clip, double lr, const adamw_hp *hp, int64_t t, lop_err *e) {
    (void)be; (void)e;
    if (clip != 1.0f) grad_scale(g, n, clip);
    adamw_update(p, g, m, v, n, lr, hp, t, zero_bits);
    return 0;
}
