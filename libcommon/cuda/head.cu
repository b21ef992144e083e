/* head.cu — the lm_head's reductions on the GPU: a chunk of logits [R, nv] (one cuBLAS GEMM over
 * a slice of vocabulary rows) is folded into per-row running logsumexp, target logit and argmax,
 * then the chunk buffer is reused: fp32 logits never exist for the whole vocabulary and batch. */
#include "kernels.cuh"
#include <math.h>

__global__ void head_init_k(head_state_d *st, int R) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= R) return;
    st[r].sum = 0.0;
    st[r].mx = -INFINITY;
    st[r].tlogit = NAN;
    st[r].amax = -INFINITY;
    st[r].amax_id = -1;
}

cudaError_t k_head_init(head_state_d *st, int R, cudaStream_t s) {
    head_init_k<<<(R + 255) / 256, 256, 0, s>>>(st, R);
    return cudaGetLastError();
}

/* merge two (max, sum of exp(x - max)) pairs */
__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    if (m2 == -INFINITY) return;
    if (m == -INFINITY) { m = m2; s = s2; return; }
    if (m2 > m) { s = s * expf(m - m2) + s2; m = m2; }
    else s += s2 * expf(m2 - m);
}

/* one block of 256 threads per row; one pass over the logits (online max and sum) */
__global__ void __launch_bounds__(256) head_reduce_k(float *lg, head_state_d *st,
                                                     const int32_t *target, int nv, int v0, float cap,
                                                     int discard) {
    __shared__ float smax[8], ssum[8], sval[8];
    __shared__ int sid[8];
    int r = blockIdx.x, tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    float *row = lg + (size_t)r * nv;
    int tg = target ? target[r] - v0 : -1;
    float m = -INFINITY, sum = 0.0f, best = -INFINITY;
    int bid = 0x7fffffff, bad = 0;
    for (int j = tid; j < nv; j += 256) {
        float x = row[j];
        if (cap > 0) {
            x = cap * tanhf(x / cap);
            if (!discard) row[j] = x;
        }
        bad |= !isfinite(x); /* said explicitly: a NaN met while m is -inf would be forgotten */
        if (x > best) { best = x; bid = j; } /* j increases: the first of equal values stays */
        if (x > m) { sum = (m == -INFINITY ? 0.0f : sum * expf(m - x)) + 1.0f; m = x; }
        else sum += expf(x - m);
        if (j == tg) st[r].tlogit = x;
    }
    for (int off = 16; off; off >>= 1) {
        float ob = __shfl_xor_sync(0xffffffffu, best, off);
        int oi = __shfl_xor_sync(0xffffffffu, bid, off);
        if (ob > best || (ob == best && oi < bid)) { best = ob; bid = oi; }
        float om = __shfl_xor_sync(0xffffffffu, m, off), os = __shfl_xor_sync(0xffffffffu, sum, off);
        lse_merge(m, sum, om, os);
    }
    if (lane == 0) { smax[w] = m; ssum[w] = sum; sval[w] = best; sid[w] = bid; }
    bad = __syncthreads_or(bad);
    if (discard) /* the row is read: its lines leave L2 without being written back to memory */
        for (int j = tid * 32; j < nv; j += 256 * 32) asm volatile("discard.global.L2 [%0], 128;" ::"l"(row + j) : "memory");
    if (tid == 0) {
        for (int i = 1; i < 8; i++) {
            lse_merge(smax[0], ssum[0], smax[i], ssum[i]);
            if (sval[i] > sval[0] || (sval[i] == sval[0] && sid[i] < sid[0])) { sval[0] = sval[i]; sid[0] = sid[i]; }
        }
        float bm = smax[0];
        double bs = ssum[0];
        head_state_d s = st[r];
        double M = s.mx;
        if (bm > M) {
            s.sum = s.sum * exp(M - (double)bm) + bs;
            s.mx = bm;
        } else if (bm != -INFINITY) {
            s.sum += bs * exp((double)bm - M);
        }
        if (sval[0] > s.amax) { s.amax = sval[0]; s.amax_id = v0 + sid[0]; }
        if (bad) s.sum = NAN; /* the host then reports the non-finite logits */
        st[r] = s;
    }
}

cudaError_t k_head_reduce(float *lg, head_state_d *st, const int32_t *target, int R, int nv,
                          int v0, float cap, int discard, cudaStream_t s) {
    if (R <= 0) return cudaSuccess;
    if (nv % 32 || ((uintptr_t)lg & 127)) discard = 0; /* whole 128-byte lines of one row only */
    head_reduce_k<<<R, 256, 0, s>>>(lg, st, target, nv, v0, cap, discard);
    return cudaGetLastError();
}
