/* grad_attn.c — the backward of causal / sliding-window GQA attention with optional logit
 * softcapping. The forward is the engine's (nn_attention.c: S = scale*Q K^T, masked softmax,
 * O = P V), run with the probabilities P kept (B*H*T*T floats per layer); per (sequence, head)
 * the backward rebuilds dP = dO V^T, dS from P, and dQ, dK, dV by sgemm. */
#include "grad.h"
#include <cblas.h>
#include <math.h>
#include <string.h>

static inline int row_lo(int i, int window) { return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0; }

void tr_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                           const float *att, const float *q, const float *k, const float *v,
                           int B, int T, int H, int KVH, int D, float scale, float softcap,
                           int window) {
    int qs = H * D, ks = KVH * D, rep = H / KVH;
    float *dS = scratch, *raw = scratch + (size_t)T * T;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *Q = q + (size_t)b * T * qs + h * D;
            const float *K = k + (size_t)b * T * ks + (h / rep) * D;
            const float *V = v + (size_t)b * T * ks + (h / rep) * D;
            const float *P = att + ((size_t)b * H + h) * T * T;
            const float *dO = dout + (size_t)b * T * qs + h * D;
            /* dP = dO V^T; dV += P^T dO */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.0f, dO, qs, V, ks,
                        0.0f, dS, T);
            if (dv)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, P, T, dO, qs,
                            1.0f, dv + (size_t)b * T * ks + (h / rep) * D, ks);
            if (softcap > 0) /* the pre-cap scores, recomputed rather than stored */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, scale, Q, qs, K, ks,
                            0.0f, raw, T);
            #pragma omp parallel for schedule(static)
            for (int i = 0; i < T; i++) {
                const float *p = P + (size_t)i * T;
                float *d = dS + (size_t)i * T;
                int lo = row_lo(i, window);
                float dot = 0;
                for (int j = lo; j <= i; j++) dot += p[j] * d[j];
                for (int j = 0; j < lo; j++) d[j] = 0;
                for (int j = lo; j <= i; j++) d[j] = p[j] * (d[j] - dot);
                for (int j = i + 1; j < T; j++) d[j] = 0;
                if (softcap > 0) {
                    const float *r = raw + (size_t)i * T;
                    for (int j = lo; j <= i; j++) {
                        float t = tanhf(r[j] / softcap);
                        d[j] *= 1.0f - t * t;
                    }
                }
            }
            /* dQ += scale dS K; dK += scale dS^T Q */
            if (dq)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, scale, dS, T, K, ks,
                            1.0f, dq + (size_t)b * T * qs + h * D, qs);
            if (dk)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, scale, dS, T, Q, qs,
                            1.0f, dk + (size_t)b * T * ks + (h / rep) * D, ks);
        }
}
