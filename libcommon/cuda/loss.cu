/* loss.cu — the head's losses on the GPU, one block per row of logits, the vocabulary walked by the
 * block (llm.c's fused classifier: the loss and d(loss)/d(logits) are formed in place over a chunk
 * of rows, so float32 logits never exist for the whole batch):
 *   kg_xent_backward — cross-entropy with masking and the final softcap (grad_xent.c +
 *                      grad_mlp.c's softcap);
 *   kg_kd_backward   — the distillation divergences of kd.c (ce, fkl, rkl, skl, srkl, jsd, tvd;
 *                      temperature; dense teacher logits or a top-k + tail cache), in double as
 *                      kd.c, the per-element terms recomputed in each pass instead of kept in a
 *                      [V] scratch. */
#include "grad.cuh"
#include <math.h>

#define LBS 512 /* threads per row */

/* block-wide reductions (every thread gets the result) */
__device__ double block_sum(double v, double *sh) {
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (!l) sh[w] = v;
    __syncthreads();
    double t = 0;
    for (int i = 0; i < nw; i++) t += sh[i]; /* in order: the same bits on every run */
    return t;
}
__device__ float block_max(float v, float *sh) {
    for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (!l) sh[w] = v;
    __syncthreads();
    float t = -INFINITY;
    for (int i = 0; i < nw; i++) t = fmaxf(t, sh[i]);
    return t;
}

__device__ double block_maxd(double v, double *sh) {
    for (int o = 16; o; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (!l) sh[w] = v;
    __syncthreads();
    double t = -INFINITY;
    for (int i = 0; i < nw; i++) t = fmax(t, sh[i]);
    return t;
}

/* ---------------------------------------------------------------- cross-entropy */

__global__ void __launch_bounds__(LBS) xent_k(float *logits, int ld, double *loss,
                                              const int32_t *targets, int V, float cap,
                                              float gscale, __nv_bfloat16 *db) {
    __shared__ double shd[LBS / 32];
    __shared__ float shf[LBS / 32];
    int r = blockIdx.x, t = targets[r];
    float *l = logits + (size_t)r * ld;
    __nv_bfloat16 *b = db ? db + (size_t)r * V : NULL;
    if (t < 0 || t >= V) {
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            l[j] = 0.0f;
            if (b) b[j] = __float2bfloat16_rn(0.0f);
        }
        if (!threadIdx.x) loss[r] = 0;
        return;
    }
    /* one pass: each thread's running max and sum of exp (rescaled when its max grows), then the
     * block's max and the threads' sums brought to it (in order: the same bits every run) */
    float tm = -INFINITY;
    double ts = 0;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float y = l[j];
        if (cap > 0) { y = cap * tanhf(y / cap); l[j] = y; }
        if (y > tm) { ts = ts * (double)expf(tm - y) + 1.0; tm = y; }
        else ts += (double)expf(y - tm);
    }
    float mx = block_max(tm, shf); /* its syncs order the capped writes before the reads below */
    float lt = l[t]; /* read before block_sum's barriers: the last pass overwrites it */
    double s = block_sum(tm == -INFINITY ? 0.0 : ts * (double)expf(tm - mx), shd);
    if (!threadIdx.x) loss[r] = (double)mx + log(s) - (double)lt;
    float k = (float)(1.0 / s) * gscale;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float y = l[j];
        float g = expf(y - mx) * k;
        if (j == t) g -= gscale;
        if (cap > 0) { float u = y / cap; g *= 1.0f - u * u; }
        l[j] = g;
        if (b) b[j] = __float2bfloat16_rn(g);
    }
}

cudaError_t kg_xent_backward(float *logits, int ld, double *loss, const int32_t *targets, int n,
                             int V, float cap, float gscale, __nv_bfloat16 *dl_bf16, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    xent_k<<<n, LBS, 0, s>>>(logits, ld, loss, targets, V, cap, gscale, dl_bf16);
    return cudaGetLastError();
}

/* ---------------------------------------------------------------- distillation */

enum { T_CE, T_FKL, T_RKL, T_SKL, T_SRKL, T_JSD, T_TVD };

__device__ __forceinline__ double lae(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    double m = a > b ? a : b;
    return m + log1p(exp(-fabs(a - b)));
}
__device__ __forceinline__ double xlog(double x, double la, double lb) { return x > 0 ? x * (la - lb) : 0.0; }
__device__ __forceinline__ double mixlog(double m, double law, double lbw) { return m > 1e-300 ? log(m) : lae(law, lbw); }

/* kd.c's kd_div for one bucket: returns the divergence's term, *h = dD/dlog(Q) */
__device__ double div1(int term, double lp, double lq, double P, double Q, double a, double la,
                       double l1a, double *h) {
    switch (term) {
    case T_FKL: *h = -P; return xlog(P, lp, lq);
    case T_RKL: { double d = xlog(Q, lq, lp); *h = d; return d; }
    case T_SKL: {
        double m = a * P + (1 - a) * Q, lm = mixlog(m, la + lp, l1a + lq);
        *h = P > 0 && Q > 0 ? -(1 - a) * (m > 1e-300 ? P * Q / m : exp(lp + lq - lm)) : 0.0;
        return xlog(P, lp, lm);
    }
    case T_SRKL: {
        double m = a * Q + (1 - a) * P, lm = mixlog(m, la + lq, l1a + lp);
        double d = xlog(Q, lq, lm);
        *h = Q > 0 ? d - a * (m > 1e-300 ? Q * Q / m : exp(2 * lq - lm)) : 0.0;
        return d;
    }
    case T_JSD: {
        double m = a * P + (1 - a) * Q, lm = mixlog(m, la + lp, l1a + lq);
        double dq = xlog(Q, lq, lm);
        *h = (1 - a) * dq;
        return a * xlog(P, lp, lm) + (1 - a) * dq;
    }
    case T_TVD: {
        double d = Q - P;
        *h = d > 0 ? 0.5 * Q : d < 0 ? -0.5 * Q : 0.0;
        return 0.5 * fabs(d);
    }
    }
    *h = 0;
    return 0;
}

#define KD_MAXK 512 /* top-k entries a sparse row may have (kd_cache keeps far fewer) */

typedef struct kd_sh {
    double red[LBS / 32];
    float redf[LBS / 32];
    double hk[6][KD_MAXK + 1]; /* sparse: h of each divergence term (1..6) per bucket */
    double lp[KD_MAXK + 1], lqb[KD_MAXK + 1], Qb[KD_MAXK + 1];
    int kid[KD_MAXK], sid[KD_MAXK], sb[KD_MAXK]; /* bucket ids; sorted ids and their buckets */
    double hs[7], D[7], ht[7];
    int kept, tail;
} kd_sh;

/* dynamic shared memory: the sparse row's mark bitmap, ceil(V / 32) words */
__global__ void __launch_bounds__(LBS) kd_k(float *zs_all, int lds, int Vs, int V, const float *zt_all,
                                            int ldt, const int32_t *ids_all, const float *logp_all,
                                            const float *tail_all, int tk, const int32_t *targets,
                                            kg_kd_spec sp, float gscale, double *terms) {
    extern __shared__ unsigned mark[];
    __shared__ kd_sh S;
    const int r = blockIdx.x, tid = threadIdx.x, nt = blockDim.x, target = targets[r];
    float *zs = zs_all + (size_t)r * lds;
    double *tout = terms + (size_t)r * (KG_KD_NTERMS + 1);
    if (target < 0) {
        for (int i = tid; i < Vs; i += nt) zs[i] = 0.0f;
        if (tid <= KG_KD_NTERMS) tout[tid] = 0;
        return;
    }
    int need_t = 0;
    for (int k = 1; k < KG_KD_NTERMS; k++) need_t |= sp.w[k] > 0;
    const int dense = zt_all != NULL;
    need_t &= dense || ids_all != NULL;
    const float *zt = dense ? zt_all + (size_t)r * ldt : NULL;
    const double invT = 1.0 / sp.temperature, T = sp.temperature;
    /* ce: softmax of the raw logits over the whole student vocabulary */
    double mx_ce = 0, inv_ce = 0, wc = sp.w[T_CE];
    if (wc > 0) {
        float m = -INFINITY;
        for (int i = tid; i < Vs; i += nt) m = fmaxf(m, zs[i]);
        m = block_max(m, S.redf);
        double s = 0;
        for (int i = tid; i < Vs; i += nt) s += exp((double)zs[i] - m);
        s = block_sum(s, S.red);
        mx_ce = m;
        inv_ce = wc / s;
        if (!tid) tout[T_CE] = mx_ce + log(s) - zs[target];
    } else if (!tid) tout[T_CE] = 0;
    /* the tempered log-softmaxes over the shared vocabulary */
    double mu = 0, lsu = 0, mt = 0, lst = 0, isu = 0, ist = 0;
    if (need_t) {
        double m = -INFINITY, m2 = -INFINITY;
        for (int i = tid; i < V; i += nt) {
            m = fmax(m, zs[i] * invT);
            if (dense) m2 = fmax(m2, zt[i] * invT);
        }
        mu = block_maxd(m, S.red);
        if (dense) mt = block_maxd(m2, S.red);
        double su = 0, st = 0;
        for (int i = tid; i < V; i += nt) {
            su += exp(zs[i] * invT - mu);
            if (dense) st += exp(zt[i] * invT - mt);
        }
        su = block_sum(su, S.red);
        lsu = log(su);
        if (dense) { st = block_sum(st, S.red); lst = log(st); }
        /* kd.c: out = x/T - mx; prob = exp(out) / s; out -= log s */
        isu = 1.0 / su;
        ist = dense ? 1.0 / st : 0;
#define LQ(i) ((zs[i] * invT - mu) - lsu)
#define QQ(i) (exp(zs[i] * invT - mu) * isu)
#define LP(i) ((zt[i] * invT - mt) - lst)
#define PP(i) (exp(zt[i] * invT - mt) * ist)
        if (dense) {
            for (int k = 1; k < KG_KD_NTERMS; k++) {
                if (sp.w[k] <= 0) continue;
                double a = k == T_JSD ? sp.jsd_beta : sp.skew;
                double la = a > 0 ? log(a) : -INFINITY, l1a = log1p(-a);
                double d = 0, hs = 0, h;
                for (int i = tid; i < V; i += nt) {
                    d += div1(k, LP(i), LQ(i), PP(i), QQ(i), a, la, l1a, &h);
                    hs += h;
                }
                d = block_sum(d, S.red);
                hs = block_sum(hs, S.red);
                if (!tid) { S.D[k] = d; S.hs[k] = hs; }
            }
        } else {
            /* buckets: the cached ids below V (first occurrence), then the tail */
            const int32_t *ids = ids_all + (size_t)r * tk;
            const float *lg = logp_all + (size_t)r * tk;
            int words = (V + 31) / 32;
            for (int i = tid; i < words; i += nt) mark[i] = 0;
            __syncthreads();
            if (!tid) {
                int kept = 0;
                for (int j = 0; j < tk && j < KD_MAXK; j++) {
                    int id = ids[j];
                    if (id < 0 || id >= V || (mark[id >> 5] >> (id & 31) & 1)) continue;
                    mark[id >> 5] |= 1u << (id & 31);
                    S.lp[kept] = lg[j];
                    S.kid[kept++] = id;
                }
                S.kept = kept;
            }
            __syncthreads();
            const int kept = S.kept;
            for (int b = tid; b < kept; b += nt) {
                int id = S.kid[b];
                S.lqb[b] = LQ(id);
                S.Qb[b] = QQ(id);
            }
            double tsum = 0;
            for (int i = tid; i < V; i += nt)
                if (!(mark[i >> 5] >> (i & 31) & 1)) tsum += QQ(i);
            tsum = block_sum(tsum, S.red); /* (its syncs publish lqb / Qb) */
            if (!tid) {
                int nb = kept;
                S.tail = kept < V;
                if (S.tail) {
                    S.lp[nb] = tail_all[r];
                    S.Qb[nb] = tsum;
                    S.lqb[nb] = tsum > 0 ? log(tsum) : -INFINITY;
                    nb++;
                }
                double m2 = -INFINITY, s2 = 0;
                for (int b = 0; b < nb; b++) if (S.lp[b] > m2) m2 = S.lp[b];
                for (int b = 0; b < nb; b++) s2 += exp(S.lp[b] - m2);
                double ls = m2 + log(s2);
                for (int b = 0; b < nb; b++) S.lp[b] -= ls; /* P = exp(lp) below */
                for (int k = 1; k < KG_KD_NTERMS; k++) {
                    if (sp.w[k] <= 0) continue;
                    double a = k == T_JSD ? sp.jsd_beta : sp.skew;
                    double la = a > 0 ? log(a) : -INFINITY, l1a = log1p(-a);
                    double d = 0, hs = 0;
                    for (int b = 0; b < nb; b++) {
                        d += div1(k, S.lp[b], S.lqb[b], exp(S.lp[b]), S.Qb[b], a, la, l1a, &S.hk[k - 1][b]);
                        hs += S.hk[k - 1][b];
                    }
                    S.D[k] = d;
                    S.hs[k] = hs;
                    double c = sp.w[k] * T;
                    S.ht[k] = S.tail && S.Qb[kept] > 0 ? c * S.hk[k - 1][kept] / S.Qb[kept] : 0.0;
                }
                /* ids sorted, for each element's bucket lookup */
                for (int b = 0; b < kept; b++) {
                    int id = S.kid[b], j = b;
                    while (j > 0 && S.sid[j - 1] > id) { S.sid[j] = S.sid[j - 1]; S.sb[j] = S.sb[j - 1]; j--; }
                    S.sid[j] = id;
                    S.sb[j] = b;
                }
            }
        }
        __syncthreads();
    }
    /* terms and the loss */
    if (!tid) {
        double loss = wc > 0 ? wc * tout[T_CE] : 0;
        for (int k = 1; k < KG_KD_NTERMS; k++) {
            double v = need_t && sp.w[k] > 0 ? T * T * S.D[k] : 0;
            tout[k] = v;
            loss += sp.w[k] > 0 ? sp.w[k] * v : 0;
        }
        tout[KG_KD_NTERMS] = loss;
    }
    /* the gradient, element by element in kd.c's order of accumulation */
    for (int i = tid; i < Vs; i += nt) {
        double g = 0;
        if (wc > 0) { g = exp((double)zs[i] - mx_ce) * inv_ce; if (i == target) g -= wc; }
        if (need_t && i < V) {
            double Q = QQ(i), lq = LQ(i);
            int b = -1;
            if (!dense && (mark[i >> 5] >> (i & 31) & 1)) { /* its bucket */
                int lo = 0, hi = S.kept - 1;
                while (lo < hi) { int mid = (lo + hi) >> 1; if (S.sid[mid] < i) lo = mid + 1; else hi = mid; }
                b = S.sb[lo];
            }
            for (int k = 1; k < KG_KD_NTERMS; k++) {
                if (sp.w[k] <= 0) continue;
                double c = sp.w[k] * T;
                g -= c * Q * S.hs[k];
                if (dense) {
                    double a = k == T_JSD ? sp.jsd_beta : sp.skew;
                    double la = a > 0 ? log(a) : -INFINITY, l1a = log1p(-a), h;
                    div1(k, LP(i), lq, PP(i), Q, a, la, l1a, &h);
                    g += c * h;
                } else if (b >= 0) {
                    g += c * S.hk[k - 1][b];
                } else {
                    g += S.ht[k] * Q;
                }
            }
        }
        zs[i] = (float)(gscale * g);
    }
#undef LQ
#undef QQ
#undef LP
#undef PP
}

cudaError_t kg_kd_backward(float *zs, int lds, int Vs, int V, const float *zt, int ldt,
                           const int32_t *ids, const float *logp, const float *tail, int tk,
                           const int32_t *targets, int n, const kg_kd_spec *spec, float gscale,
                           double *terms, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    if (!zt && ids && tk > KD_MAXK) return cudaErrorInvalidValue;
    size_t smem = zt || !ids ? 0 : sizeof(unsigned) * (size_t)((V + 31) / 32);
    static size_t set = 0;
    if (smem > set) { /* static (~43 KB) + the bitmap may pass the default 48 KB */
        cudaError_t r = cudaFuncSetAttribute(kd_k, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (r != cudaSuccess) return r;
        set = smem;
    }
    kd_k<<<n, LBS, smem, s>>>(zs, lds, Vs, V, zt, ldt, ids, logp, tail, tk, targets, *spec, gscale, terms);
    return cudaGetLastError();
}
