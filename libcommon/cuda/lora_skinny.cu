/* lora_skinny.cu — LoRA's rank-r products whose output is skinny, as kernels of their own.
 *
 * The four products of a LoRA backward/forward that touch a [N, K] activation with only r = 8..32
 * outputs per row or column (xa = x A^T and dxa = dout B: rows dotted with r vectors; dB += dout^T xa
 * and dA += dxa^T x: columns summed against r weights over every row) are memory-bound: their cost
 * is one read of the big operand. cuBLAS's kernels for those shapes (a handful of output tiles over
 * a reduction thousands long) ran the rank-16 products of the 4B card at a fraction of the memory
 * rate; these read the big operand once, coalesced, as float4 (or four bf16), with float32
 * accumulation (finer than TF32) in a fixed order (the same bits on every run, no atomics).
 *
 *   rows:    y[N, R] = alpha * X[N, K] . W^T,  W(k, i) at W[k * sk + i * si]   (y stored)
 *   columns: out(c, k) += alpha * sum_n X[n, c] * Y[n, k] for c < C, k < R;
 *            out(c, k) at out[c * oc + k * ok]; partials of row ranges, then folded in order
 *
 * X rows have leading dimension ldx; K, C and ldx multiples of 4 and X 16-byte aligned (else the
 * launcher returns cudaErrorNotSupported and the caller uses cuBLAS). */
#include "grad.cuh"

#define RT 256              /* rows kernel: threads (8 warps) */
#define RW 2                /* rows a warp takes */
#define WCH (8192)          /* rows kernel: floats of W staged per chunk (R x KC) */
#define CT 128              /* columns kernel: threads (4 warps), 4 columns a lane: 128 a block */

/* four consecutive elements as float */
__device__ __forceinline__ float4 ld4(const float *p) { return *(const float4 *)p; }
__device__ __forceinline__ float4 ld4(const __nv_bfloat16 *p) {
    uint2 u = *(const uint2 *)p;
    __nv_bfloat162 a = *(__nv_bfloat162 *)&u.x, b = *(__nv_bfloat162 *)&u.y;
    float2 fa = __bfloat1622float2(a), fb = __bfloat1622float2(b);
    return make_float4(fa.x, fa.y, fb.x, fb.y);
}

/* y[N, R] = alpha X W^T: a block takes 8 * RW rows; W is staged in shared memory KC columns at a
 * time; each lane accumulates R partial dots per row over its columns (4 of every 128), then a
 * butterfly adds the 32 lanes' partials (the same order for every row). A lane loads its RW rows'
 * next 4 x 128 columns before using any (the memory rate needs loads in flight). */
template <int R, typename TX>
__global__ void __launch_bounds__(RT) rows_k(float *__restrict__ y, const TX *__restrict__ X, int ldx,
                                            const float *__restrict__ W, int sk, int si, int N, int K,
                                            float alpha) {
    constexpr int KC = WCH / R;
    __shared__ __align__(16) float Ws[R * KC];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n0 = (blockIdx.x * (RT / 32) + warp) * RW;
    float acc[RW][R];
#pragma unroll
    for (int a = 0; a < RW; a++)
#pragma unroll
        for (int k = 0; k < R; k++) acc[a][k] = 0.0f;
    for (int c0 = 0; c0 < K; c0 += KC) {
        const int kc = K - c0 < KC ? K - c0 : KC;
        __syncthreads();
        for (int idx = threadIdx.x; idx < R * KC; idx += RT) {
            int k = idx / KC, c = idx - k * KC;
            Ws[idx] = c < kc ? W[(size_t)k * sk + (size_t)(c0 + c) * si] : 0.0f;
        }
        __syncthreads();
        for (int cb = lane * 4; cb < kc; cb += 4 * 128) {
            float4 x[RW][4];
#pragma unroll
            for (int a = 0; a < RW; a++)
#pragma unroll
                for (int u = 0; u < 4; u++) {
                    int c = cb + u * 128;
                    x[a][u] = n0 + a < N && c < kc ? ld4(X + (size_t)(n0 + a) * ldx + c0 + c)
                                                   : make_float4(0, 0, 0, 0);
                }
#pragma unroll
            for (int u = 0; u < 4; u++) {
                int c = cb + u * 128;
                if (c >= kc) break;
#pragma unroll
                for (int k = 0; k < R; k++) {
                    float4 w = *(const float4 *)&Ws[k * KC + c];
#pragma unroll
                    for (int a = 0; a < RW; a++)
                        acc[a][k] = fmaf(x[a][u].x, w.x, fmaf(x[a][u].y, w.y,
                                    fmaf(x[a][u].z, w.z, fmaf(x[a][u].w, w.w, acc[a][k]))));
                }
            }
        }
    }
#pragma unroll
    for (int a = 0; a < RW; a++) {
        const int n = n0 + a;
#pragma unroll
        for (int k = 0; k < R; k++) {
            float v = acc[a][k];
#pragma unroll
            for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            acc[a][k] = v;
        }
        if (n < N && lane == 0)
#pragma unroll
            for (int k = 0; k < R; k++) y[(size_t)n * R + k] = alpha * acc[a][k];
    }
}

/* partial sums over rows [p * rows, (p + 1) * rows) of X[n, c] Y[n, k] for the block's 128
 * columns: part[p][c][k]. Warp w takes rows w, w + 4, ..., four rows' loads in flight at a time;
 * the 4 warps' sums are added in warp order through shared memory. Y's row (R floats) is read by
 * lanes 0..R-1 and broadcast by shuffles. */
template <int R, typename TX>
__global__ void __launch_bounds__(CT) cols_part_k(float *__restrict__ part, const TX *__restrict__ X, int ldx,
                                                 const float *__restrict__ Y, int N, int C, int rows) {
    __shared__ float sh[CT][R + 1];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int c = blockIdx.x * CT + lane * 4;
    const int r0 = blockIdx.y * rows, r1 = min(N, r0 + rows);
    float acc[4][R];
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
        for (int k = 0; k < R; k++) acc[j][k] = 0.0f;
    for (int nb = r0 + warp; nb < r1; nb += 4 * (CT / 32)) {
        float4 x[4];
        float yv[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int n = nb + u * (CT / 32);
            bool in = n < r1;
            yv[u] = in && lane < R ? Y[(size_t)n * R + lane] : 0.0f;
            x[u] = in && c < C ? ld4(X + (size_t)n * ldx + c) : make_float4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < 4; u++)
#pragma unroll
            for (int k = 0; k < R; k++) {
                float yk = __shfl_sync(0xffffffffu, yv[u], k);
                acc[0][k] = fmaf(x[u].x, yk, acc[0][k]);
                acc[1][k] = fmaf(x[u].y, yk, acc[1][k]);
                acc[2][k] = fmaf(x[u].z, yk, acc[2][k]);
                acc[3][k] = fmaf(x[u].w, yk, acc[3][k]);
            }
    }
    for (int w = 0; w < CT / 32; w++) { /* warp order: the same sum on every run */
        if (warp == w)
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int k = 0; k < R; k++) sh[lane * 4 + j][k] = w ? sh[lane * 4 + j][k] + acc[j][k] : acc[j][k];
        __syncthreads();
    }
    const int cc = threadIdx.x; /* one column of the block's 128 a thread */
    if (blockIdx.x * CT + cc < C)
        for (int k = 0; k < R; k++) part[((size_t)blockIdx.y * C + blockIdx.x * CT + cc) * R + k] = sh[cc][k];
}

/* out(c, k) += alpha * sum over the P partials in order */
template <int R>
__global__ void cols_fold_k(float *out, int oc, int ok, const float *part, int P, int C, float alpha) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)C * R) return;
    int c = (int)(i / R), k = (int)(i - (size_t)c * R);
    float v = 0.0f;
    for (int p = 0; p < P; p++) v += part[(size_t)p * C * R + i];
    float *o = out + (size_t)c * oc + (size_t)k * ok;
    *o = fmaf(alpha, v, *o);
}

static bool vec_ok(const void *x, int ldx, int K) {
    return !((uintptr_t)x & 15) && !(ldx & 3) && !(K & 3) && K > 0;
}

template <typename TX>
static cudaError_t rows_launch(float *y, const TX *X, int ldx, const float *W, int sk, int si, int N, int K,
                               int R, float alpha, cudaStream_t s) {
    if (N <= 0) return cudaSuccess;
    if (!vec_ok(X, ldx, K)) return cudaErrorNotSupported;
    unsigned grid = (unsigned)((N + (RT / 32) * RW - 1) / ((RT / 32) * RW));
    switch (R) {
    case 8: rows_k<8, TX><<<grid, RT, 0, s>>>(y, X, ldx, W, sk, si, N, K, alpha); break;
    case 16: rows_k<16, TX><<<grid, RT, 0, s>>>(y, X, ldx, W, sk, si, N, K, alpha); break;
    default: return cudaErrorNotSupported;
    }
    return cudaGetLastError();
}

template <typename TX>
static cudaError_t cols_launch(float *out, int oc, int ok, const TX *X, int ldx, const float *Y, int N, int C,
                               int R, float alpha, cudaStream_t s) {
    if (N <= 0 || C <= 0) return cudaSuccess;
    if (!vec_ok(X, ldx, C) || (R != 8 && R != 16)) return cudaErrorNotSupported;
    /* enough blocks to fill the GPU (about 4 per SM of 132) with at least 32 rows each */
    int tiles = (C + CT - 1) / CT;
    int P = (528 + tiles - 1) / tiles;
    if (P > (N + 31) / 32) P = (N + 31) / 32;
    if (P < 1) P = 1;
    int rows = (N + P - 1) / P;
    P = (N + rows - 1) / rows;
    float *part = NULL;
    cudaError_t rc = cudaMallocAsync((void **)&part, sizeof(float) * (size_t)P * C * R, s);
    if (rc != cudaSuccess) return rc;
    dim3 grid((unsigned)tiles, (unsigned)P);
    unsigned fg = (unsigned)(((size_t)C * R + 255) / 256);
    switch (R) {
    case 8:
        cols_part_k<8, TX><<<grid, CT, 0, s>>>(part, X, ldx, Y, N, C, rows);
        cols_fold_k<8><<<fg, 256, 0, s>>>(out, oc, ok, part, P, C, alpha);
        break;
    default:
        cols_part_k<16, TX><<<grid, CT, 0, s>>>(part, X, ldx, Y, N, C, rows);
        cols_fold_k<16><<<fg, 256, 0, s>>>(out, oc, ok, part, P, C, alpha);
        break;
    }
    rc = cudaGetLastError();
    cudaFreeAsync(part, s);
    return rc;
}

/* 8 and 16 (PEFT's common ranks); 32 would hold 64 accumulators a row and spill */
int kg_lora_skinny_supports(int r) { return r == 8 || r == 16; }

cudaError_t kg_lora_rows(float *y, const float *X, const __nv_bfloat16 *Xb, int ldx, const float *W, int sk,
                         int si, int N, int K, int R, float alpha, cudaStream_t s) {
    return Xb ? rows_launch(y, Xb, ldx, W, sk, si, N, K, R, alpha, s)
              : rows_launch(y, X, ldx, W, sk, si, N, K, R, alpha, s);
}

cudaError_t kg_lora_cols(float *out, int oc, int ok, const float *X, const __nv_bfloat16 *Xb, int ldx,
                         const float *Y, int N, int C, int R, float alpha, cudaStream_t s) {
    return Xb ? cols_launch(out, oc, ok, Xb, ldx, Y, N, C, R, alpha, s)
              : cols_launch(out, oc, ok, X, ldx, Y, N, C, R, alpha, s);
}
