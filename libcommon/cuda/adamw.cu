/* adamw.cu — the optimizer on the GPU: one fused AdamW pass per tensor (clip scale, decoupled
 * decay, moments, bias correction, the sparsity mask and the bf16 copy the next step's GEMMs read)
 * and the global norm's sum of squares. The step is optim.c's adamw_update operation for operation
 * (each product and sum rounded on its own, IEEE sqrt and division), so float32 master weights and
 * moments are the CPU's bits. */
#include "grad.cuh"
#include <math.h>

static inline unsigned grid_for(size_t n, int bs) {
    size_t g = (n + bs - 1) / bs;
    return (unsigned)(g > 1u << 30 ? 1u << 30 : g);
}
#define GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* element i: optim.c's float operations in its order */
__device__ __forceinline__ void adamw_one(size_t i, float *p, float *g, float *m, float *v, float decay,
                                          float step, float bc2s, float b1, float b2, float eps, float clip,
                                          int do_clip, const uint8_t *zb, __nv_bfloat16 *pb, float gi,
                                          float p0, float m0, float v0) {
    const float omb1 = __fsub_rn(1.0f, b1), omb2 = __fsub_rn(1.0f, b2);
    if (do_clip) { gi = __fmul_rn(gi, clip); g[i] = gi; } /* masked elements too, as optim.c */
    if (zb && (zb[i >> 3] >> (i & 7) & 1)) {
        p[i] = 0.0f;
        if (pb) pb[i] = __float2bfloat16_rn(0.0f);
        return;
    }
    float pi = __fmul_rn(p0, decay);
    float mi = m0, vi = v0;
    mi = __fadd_rn(mi, __fmul_rn(__fsub_rn(gi, mi), omb1));
    vi = __fadd_rn(__fmul_rn(vi, b2), __fmul_rn(__fmul_rn(omb2, gi), gi));
    float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2s), eps);
    pi = __fsub_rn(pi, __fmul_rn(step, __fdiv_rn(mi, denom)));
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if (pb) pb[i] = __float2bfloat16_rn(pi);
}

__global__ void adamw_k(float *p, float *g, float *m, float *v, size_t n, float decay,
                        float step, float bc2s, float b1, float b2, float eps, float clip, int do_clip,
                        const uint8_t *zb, __nv_bfloat16 *pb) {
    GRID_STRIDE(i, n)
        adamw_one(i, p, g, m, v, decay, step, bc2s, b1, b2, eps, clip, do_clip, zb, pb, g[i], p[i], m[i], v[i]);
}

/* many tensors in one launch: block b takes chunk b - start[t] of tensor t (start[] the chunk
 * prefix, t found by bisection); its 256 threads take AW_CHUNK elements, four loads of each array
 * in flight a thread */
#define AW_T 256
#define AW_CHUNK (AW_T * 16)
__global__ void __launch_bounds__(AW_T) adamw_many_k(const kg_adamw_item *it, const long long *start, int nt,
                                                     float step, float bc2s, float b1, float b2, float eps,
                                                     float clip, int do_clip) {
    long long b = blockIdx.x;
    int lo = 0, hi = nt - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (start[mid] <= b) lo = mid;
        else hi = mid - 1;
    }
    const kg_adamw_item T = it[lo];
    size_t i0 = (size_t)(b - start[lo]) * AW_CHUNK, i1 = i0 + AW_CHUNK < T.n ? i0 + AW_CHUNK : T.n;
    for (int k0 = 0; k0 < AW_CHUNK / AW_T; k0 += 4) {
        float gv[4], pv[4], mv[4], vv[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            size_t i = i0 + threadIdx.x + (size_t)(k0 + u) * AW_T;
            if (i < i1) { gv[u] = T.g[i]; pv[u] = T.p[i]; mv[u] = T.m[i]; vv[u] = T.v[i]; }
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            size_t i = i0 + threadIdx.x + (size_t)(k0 + u) * AW_T;
            if (i < i1)
                adamw_one(i, T.p, T.g, T.m, T.v, T.decay, step, bc2s, b1, b2, eps, clip, do_clip, T.zb, T.pb,
                          gv[u], pv[u], mv[u], vv[u]);
        }
    }
}

size_t kg_adamw_many_chunks(size_t n) { return (n + AW_CHUNK - 1) / AW_CHUNK; }

cudaError_t kg_adamw_many(const kg_adamw_item *items, const long long *start, int nt, long long nchunks,
                          double lr, double beta1, double beta2, double eps, int64_t t, double clip,
                          cudaStream_t s) {
    if (nt <= 0 || nchunks <= 0) return cudaSuccess;
    double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
    float step = (float)(lr / bc1), bc2s = (float)sqrt(bc2);
    adamw_many_k<<<(unsigned)nchunks, AW_T, 0, s>>>(items, start, nt, step, bc2s, (float)beta1, (float)beta2,
                                                    (float)eps, (float)clip, clip != 1.0);
    return cudaGetLastError();
}

cudaError_t kg_adamw(float *p, float *g, float *m, float *v, size_t n, double lr,
                     double beta1, double beta2, double eps, double wd, int64_t t, double clip,
                     const uint8_t *zero_bits, __nv_bfloat16 *p_bf16, cudaStream_t s) {
    if (!n) return cudaSuccess;
    /* the host-side constants exactly as optim.c forms them */
    double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
    float decay = (float)(1.0 - lr * wd), step = (float)(lr / bc1), bc2s = (float)sqrt(bc2);
    adamw_k<<<grid_for(n, 256), 256, 0, s>>>(p, g, m, v, n, decay, step, bc2s, (float)beta1,
                                             (float)beta2, (float)eps, (float)clip, clip != 1.0,
                                             zero_bits, p_bf16);
    return cudaGetLastError();
}

#define SQ_BLK 65536 /* elements per partial (optim.c's grad_sumsq block) */

__global__ void sumsq_part_k(double *part, const float *g, size_t n) {
    size_t i0 = (size_t)blockIdx.x * SQ_BLK, i1 = i0 + SQ_BLK < n ? i0 + SQ_BLK : n;
    double s = 0;
    for (size_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) s += (double)g[i] * g[i];
    __shared__ double sh[256];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (!threadIdx.x) part[blockIdx.x] = sh[0];
}

/* the partials' sum by one block in a fixed order (thread t adds a contiguous run of them, then a
 * fixed tree): the same bits on every run. It was one thread adding them in order (9,100 for
 * Qwen3-0.6B), and the step's sum of squares took 1.8 ms of GPU time for 2.4 GB of gradients. */
#define SQ_FOLD 512
__global__ void sumsq_fold_k(double *acc, const double *part, size_t nb, int add) {
    __shared__ double sh[SQ_FOLD];
    size_t per = (nb + SQ_FOLD - 1) / SQ_FOLD, b0 = threadIdx.x * per, b1 = b0 + per < nb ? b0 + per : nb;
    double s = 0;
    for (size_t b = b0; b < b1; b++) s += part[b];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = SQ_FOLD / 2; k; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (!threadIdx.x) *acc = add ? *acc + sh[0] : sh[0];
}

size_t kg_sumsq_parts(size_t n) { return (n + SQ_BLK - 1) / SQ_BLK; }

cudaError_t kg_sumsq_set(double *out, double *part, const float *g, size_t n, cudaStream_t s) {
    size_t nb = kg_sumsq_parts(n);
    if (nb) sumsq_part_k<<<(unsigned)nb, 256, 0, s>>>(part, g, n);
    sumsq_fold_k<<<1, SQ_FOLD, 0, s>>>(out, part, nb, 0);
    return cudaGetLastError();
}

cudaError_t kg_sumsq(double *acc, const float *g, size_t n, cudaStream_t s) {
    if (!n) return cudaSuccess;
    size_t nb = kg_sumsq_parts(n);
    double *part = NULL;
    cudaError_t r = cudaMallocAsync((void **)&part, sizeof(double) * nb, s);
    if (r != cudaSuccess) return r;
    sumsq_part_k<<<(unsigned)nb, 256, 0, s>>>(part, g, n);
    sumsq_fold_k<<<1, SQ_FOLD, 0, s>>>(acc, part, nb, 1);
    cudaFreeAsync(part, s);
    return cudaGetLastError();
}

__global__ void scale_k(float *g, size_t n, float sc) { GRID_STRIDE(i, n) g[i] = __fmul_rn(g[i], sc); }

cudaError_t kg_scale(float *g, size_t n, float sc, cudaStream_t st) {
    if (!n) return cudaSuccess;
    scale_k<<<grid_for(n, 256), 256, 0, st>>>(g, n, sc);
    return cudaGetLastError();
}
