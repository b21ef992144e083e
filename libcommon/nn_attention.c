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

/* One task: query block qb of head h of one sequence. */
static void attn_task(const attn_seq *sq, int h, int qb, int Hq, int Hkv, int D, float scale,
                      int window, float softcap) {
    int T = sq->T, Tk = sq->Tk, qpos0 = sq->qpos0, group = Hq / Hkv, kh = h / group;
    int ldq = Hq * D, ldk = Hkv * D;
    const float *q = sq->q, *k = sq->k, *v = sq->v;
    float *out = sq->out, *att = sq->att;
    int i0 = qb * QBLOCK, i1 = i0 + QBLOCK < T ? i0 + QBLOCK : T, nq = i1 - i0;
    int kmin = key_lo(qpos0 + i0, window), kmax = qpos0 + i1 - 1; /* inclusive */
    if (kmax > Tk - 1) kmax = Tk - 1;
    int nk = kmax - kmin + 1;
    float *s = nn_scratch(1, (size_t)QBLOCK * (nk > 0 ? nk : 1));
    if (!s) { /* out of memory: leave a recognizable NaN rather than garbage */
        for (int i = i0; i < i1; i++)
            for (int d = 0; d < D; d++) out[(size_t)i * ldq + h * D + d] = NAN;
        return;
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

void attention_forward_batch(const attn_seq *seqs, int B, int Hq, int Hkv, int D, float scale,
                             int window, float softcap) {
    /* tasks of all sequences in one parallel loop: (sequence, head, query block) */
    int64_t ntask = 0, work = 0;
    for (int b = 0; b < B; b++) {
        ntask += (int64_t)Hq * ((seqs[b].T + QBLOCK - 1) / QBLOCK);
        work += (int64_t)seqs[b].T * seqs[b].Tk * D * Hq;
    }
    #pragma omp parallel if (ntask > 1 && work > 200000)
    {
        int b = 0;
        int64_t base = 0; /* first task of sequence b; tasks come in increasing order per thread */
        #pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntask; t++) {
            if (t < base) { b = 0; base = 0; }
            for (;;) {
                int64_t nt = (int64_t)Hq * ((seqs[b].T + QBLOCK - 1) / QBLOCK);
                if (t < base + nt) break;
                base += nt;
                b++;
            }
            int nqb = (seqs[b].T + QBLOCK - 1) / QBLOCK, local = (int)(t - base);
            attn_task(&seqs[b], local / nqb, local % nqb, Hq, Hkv, D, scale, window, softcap);
        }
    }
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int T, int Tk, int qpos0, int Hq, int Hkv, int D, float scale,
                       int window, float softcap) {
    attn_seq s = {out, att, q, k, v, T, Tk, qpos0};
    attention_forward_batch(&s, 1, Hq, Hkv, D, scale, window, softcap);
}
