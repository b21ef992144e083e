/* grad_linear.c — linear layers (sgemm) forward and backward, and the embedding's backward. */
#include "grad.h"
#include <cblas.h>
#include <string.h>

void tr_matmul_forward(float *out, const float *in, const float *w, const float *bias,
                       int N, int IC, int OC) {
    /* out[N,OC] = in[N,I] @ w[OC,IC]^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, in, IC, w, IC, 0.0f, out, OC);
    if (!bias) return;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] += bias[o];
}

void tr_matmul_backward(float *din, float *dw, float *dbias, const float *dout,
                        const float *in, const float *w, int N, int IC, int OC) {
    if (din) /* din[N,I] += dout[N,OC] @ w[OC,IC] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, w, IC,
                    1.0f, din, IC);
    if (dw) /* dw[OC,IC] += dout^T @ in */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, in, IC,
                    1.0f, dw, IC);
    if (dbias) {
        /* columns split over threads: each thread owns its outputs, sums rows in order */
        #pragma omp parallel for schedule(static)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + o];
            dbias[o] += (float)s;
        }
    }
}

void tr_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C,
                           float scale) {
    /* repeated ids add into one row: rows in order, one thread, deterministic */
    for (int n = 0; n < N; n++) {
        float *d = dtable + (size_t)ids[n] * C;
        const float *g = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) d[c] += g[c] * scale;
    }
}
