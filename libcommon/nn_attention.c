/* nn_attention.c — causal multi-head attention of one sequence (GQA/MQA, sliding window, logit
 * softcapping), eager-softmax semantics as transformers' eager path: scores = q.k * scale,
 * softcap, mask, softmax in float32, @ v. Work is split into (head, block of 64 queries) tasks;
 * each task multiplies only the keys its queries can see (causal + window) with single-threaded
 * OpenBLAS GEMMs. */
#include "nn.h"
#include <cblas.h>
#include <math.h>
#include <string.h>

#define QBLOCK 64

/* The first key position query at absolute position p may see. */
static inline int key_lo(int p, int window) { return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0; }

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int T, int Tk, int qpos0, int Hq, int Hkv, int D, float scale,
                       int window, float softcap) {
    int nqb = (T + QBLOCK - 1) / QBLOCK, group = Hq / Hkv;
    int ldq = Hq * D, ldk = Hkv * D;
    int ntask = Hq * nqb;
    #pragma omp parallel for schedule(dynamic, 1) if (ntask > 1 && (long)T * Tk * D > 32768)
    for (int task = 0; task < ntask; task++) {
        int h = task / nqb, qb = task % nqb, kh = h / group;
        int i0 = qb * QBLOCK, i1 = i0 + QBLOCK < T ? i0 + QBLOCK : T, nq = i1 - i0;
        int kmin = key_lo(qpos0 + i0, window), kmax = qpos0 + i1 - 1; /* inclusive */
        if (kmax > Tk - 1) kmax = Tk - 1;
        int nk = kmax - kmin + 1;
        float *s = nn_scratch(1, (size_t)QBLOCK * (nk > 0 ? nk : 1));
        if (!s) { /* out of memory: leave a recognizable NaN rather than garbage */
            for (int i = i0; i < i1; i++)
                for (int d = 0; d < D; d++) out[(size_t)i * ldq + h * D + d] = NAN;
            continue;
        }
        /* s[nq, nk] = scale * Q[i0:i1, h] @ K[kmin:kmax+1, kh]^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, scale,
                    q + (size_t)i0 * ldq + h * D, ldq, k + (size_t)kmin * ldk + kh * D, ldk,
                    0.0f, s, nk);
        for (int i = 0; i < nq; i++) {
            float *r = s + (size_t)i * nk;
            int p = qpos0 + i0 + i;
            int a = key_lo(p, window) - kmin, b = p - kmin; /* visible: [a, b] */
            if (b > nk - 1) b = nk - 1;
            if (softcap > 0)
                for (int j = a; j <= b; j++) r[j] = softcap * tanhf(r[j] / softcap);
            float m = -INFINITY;
            for (int j = a; j <= b; j++) m = r[j] > m ? r[j] : m;
            float sum = 0;
            #pragma omp simd reduction(+: sum)
            for (int j = a; j <= b; j++) {
                r[j] = nn_expf(r[j] - m);
                sum += r[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < a; j++) r[j] = 0;
            for (int j = a; j <= b; j++) r[j] *= inv;
            for (int j = b + 1; j < nk; j++) r[j] = 0;
            if (att) {
                float *ar = att + ((size_t)h * T + i0 + i) * Tk;
                memset(ar, 0, sizeof(float) * (size_t)Tk);
                memcpy(ar + kmin, r, sizeof(float) * (size_t)nk);
            }
        }
        /* out[i0:i1, h] = P @ V[kmin:kmax+1, kh] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1.0f, s, nk,
                    v + (size_t)kmin * ldk + kh * D, ldk, 0.0f, out + (size_t)i0 * ldq + h * D, ldq);
    }
}
