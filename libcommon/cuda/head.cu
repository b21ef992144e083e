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

/* one block of 256 threads per row */
__global__ void __launch_bounds__(256) head_reduce_k(float *lg, head_state_d *st,
                                                     const int32_t *target, int nv, int v0, float cap) {
    __shared__ float smax[8], sval[8];
    __shared__ int sid[8];
    __shared__ double ssum[8];
    int r = blockIdx.x, tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    float *row = lg + (size_t)r * nv;
    int tg = target ? target[r] : -1;
    float mx = -INFINITY, best = -INFINITY;
    int bid = 0x7fffffff;
    for (int j = tid; j < nv; j += 256) {
        float x = row[j];
        if (cap > 0) {
            x = cap * tanhf(x / cap);
            row[j] = x;
        }
        if (x > best) { best = x; bid = j; } /* j increases: the first of equal values stays */
        mx = fmaxf(mx, x);
        if (v0 + j == tg) st[r].tlogit = x;
    }
    for (int off = 16; off; off >>= 1) {
        float ob = __shfl_xor_sync(0xffffffffu, best, off);
        int oi = __shfl_xor_sync(0xffffffffu, bid, off);
        if (ob > best || (ob == best && oi < bid)) { best = ob; bid = oi; }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    }
    if (lane == 0) { smax[w] = mx; sval[w] = best; sid[w] = bid; }
    __syncthreads();
    if (tid < 32) {
        mx = lane < 8 ? smax[lane] : -INFINITY;
        best = lane < 8 ? sval[lane] : -INFINITY;
        bid = lane < 8 ? sid[lane] : 0x7fffffff;
        for (int off = 16; off; off >>= 1) {
            float ob = __shfl_xor_sync(0xffffffffu, best, off);
            int oi = __shfl_xor_sync(0xffffffffu, bid, off);
            if (ob > best || (ob == best && oi < bid)) { best = ob; bid = oi; }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
        }
        if (lane == 0) { smax[0] = mx; sval[0] = best; sid[0] = bid; }
    }
    __syncthreads();
    float bm = smax[0];
    float part = 0.0f;
    for (int j = tid; j < nv; j += 256) part += expf(row[j] - bm);
    double ps = part;
    for (int off = 16; off; off >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, off);
    if (lane == 0) ssum[w] = ps;
    __syncthreads();
    if (tid == 0) {
        double bs = 0;
        for (int i = 0; i < 8; i++) bs += ssum[i];
        head_state_d s = st[r];
        double M = s.mx;
        if (bm > M) {
            s.sum = s.sum * exp(M - (double)bm) + bs;
            s.mx = bm;
        } else {
            s.sum += bs * exp((double)bm - M);
        }
        if (sval[0] > s.amax) { s.amax = sval[0]; s.amax_id = v0 + sid[0]; }
        s.tlogit = st[r].tlogit;
        st[r] = s;
    }
}

cudaError_t k_head_reduce(float *lg, head_state_d *st, const int32_t *target, int R, int nv,
                          int v0, float cap, cudaStream_t s) {
    if (R <= 0) return cudaSuccess;
    head_reduce_k<<<R, 256, 0, s>>>(lg, st, target, nv, v0, cap);
    return cudaGetLastError();
}
