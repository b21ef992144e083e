/* kernels.cu — the CUDA backend's elementwise and row kernels: conversions, embedding, RMSNorm,
 * RoPE, GLU, residual adds, bias, row gathers, kv-cache stores. Each follows the CPU kernel of
 * the same name (nn_*.c) operation for operation, so float32 results agree to rounding (RMSNorm's
 * mean of squares in double, RoPE's angles in double, products rounded one at a time). */
#include "kernels.cuh"
#include <cuda_fp16.h>

static inline unsigned grid_for(size_t n, int bs) {
    size_t g = (n + bs - 1) / bs;
    return (unsigned)(g > 1u << 30 ? 1u << 30 : g);
}
#define GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__device__ __forceinline__ float load_f32(const void *p, int dt, size_t i) {
    if (dt == KDT_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    if (dt == KDT_F16) return __half2float(((const __half *)p)[i]);
    return ((const float *)p)[i];
}

__global__ void to_f32_k(float *dst, const void *src, int dt, size_t n) {
    GRID_STRIDE(i, n) dst[i] = load_f32(src, dt, i);
}

cudaError_t k_to_f32(float *dst, const void *src, int dt, size_t n, cudaStream_t s) {
    if (!n) return cudaSuccess;
    to_f32_k<<<grid_for(n, 256), 256, 0, s>>>(dst, src, dt, n);
    return cudaGetLastError();
}

__global__ void to_bf16_k(__nv_bfloat16 *dst, const void *src, int dt, size_t n) {
    GRID_STRIDE(i, n) {
        if (dt == KDT_BF16) dst[i] = ((const __nv_bfloat16 *)src)[i];
        else dst[i] = __float2bfloat16_rn(load_f32(src, dt, i));
    }
}

/* float32 -> bf16, 4 at a time (the activations of every bf16 GEMM) */
__global__ void f32_to_bf16_x4_k(__nv_bfloat16 *dst, const float4 *src, size_t n4) {
    GRID_STRIDE(i, n4) {
        float4 v = src[i];
        __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
        ((__nv_bfloat162 *)dst)[2 * i] = a;
        ((__nv_bfloat162 *)dst)[2 * i + 1] = b;
    }
}

cudaError_t k_to_bf16(__nv_bfloat16 *dst, const void *src, int dt, size_t n, cudaStream_t s) {
    if (!n) return cudaSuccess;
    if (dt == KDT_F32 && n % 4 == 0 && ((uintptr_t)src & 15) == 0 && ((uintptr_t)dst & 7) == 0)
        f32_to_bf16_x4_k<<<grid_for(n / 4, 256), 256, 0, s>>>(dst, (const float4 *)src, n / 4);
    else
        to_bf16_k<<<grid_for(n, 256), 256, 0, s>>>(dst, src, dt, n);
    return cudaGetLastError();
}

__global__ void embed_k(float *out, const int32_t *ids, const void *table, int dt, int N, int C,
                        float scale) {
    size_t n = (size_t)N * C;
    GRID_STRIDE(i, n) {
        size_t r = i / C, c = i % C;
        float v = load_f32(table, dt, (size_t)ids[r] * C + c);
        out[i] = scale != 1.0f ? v * scale : v;
    }
}

cudaError_t k_embed(float *out, const int32_t *ids, const void *table, int dt, int N, int C,
                    float scale, cudaStream_t s) {
    embed_k<<<grid_for((size_t)N * C, 256), 256, 0, s>>>(out, ids, table, dt, N, C, scale);
    return cudaGetLastError();
}

/* one warp per row */
__global__ void rmsnorm_k(float *out, float *rstd, const float *x, const float *w, int N, int C,
                          float eps, int gemma, __nv_bfloat16 *ob) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N) return;
    const float *xr = x + (size_t)row * C;
    float *o = out ? out + (size_t)row * C : NULL;
    double ss = 0;
    for (int i = lane; i < C; i += 32) ss += (double)xr[i] * xr[i];
    for (int off = 16; off; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    float r = (float)(1.0 / sqrt((double)(float)(ss / C) + (double)eps));
    if (rstd && lane == 0) rstd[row] = r;
    __nv_bfloat16 *obr = ob ? ob + (size_t)row * C : NULL;
    for (int i = lane; i < C; i += 32) {
        float y = __fmul_rn(__fmul_rn(xr[i], r), gemma ? __fadd_rn(1.0f, w[i]) : w[i]);
        if (out) o[i] = y;
        if (obr) obr[i] = __float2bfloat16_rn(y);
    }
}

cudaError_t k_rmsnorm(float *out, float *rstd, const float *x, const float *w, int N, int C,
                      float eps, int gemma, __nv_bfloat16 *out_bf16, cudaStream_t s) {
    if (N <= 0) return cudaSuccess;
    rmsnorm_k<<<(N + 7) / 8, 256, 0, s>>>(out, rstd, x, w, N, C, eps, gemma, out_bf16);
    return cudaGetLastError();
}

/* one warp per (row, head): rmsnorm of the head's D values, then its rotation; lane holds
 * elements lane + 32 j, so the pair (i, i + D/2) is in one lane when D/2 is a multiple of 32 */
template <int D>
__global__ void qk_norm_rope_k(float *out, float *rstd, const float *x, const float *w, const float *cs,
                               int N, int H, float eps, int gemma) {
    constexpr int J = D / 32, HALF = D / 2;
    size_t rh = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (rh >= (size_t)N * H) return;
    const float *xr = x + rh * D;
    float v[J];
    double ss = 0;
#pragma unroll
    for (int j = 0; j < J; j++) { v[j] = xr[lane + 32 * j]; ss += (double)v[j] * v[j]; }
    for (int off = 16; off; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
    float r = (float)(1.0 / sqrt((double)(float)(ss / D) + (double)eps));
    if (rstd && lane == 0) rstd[rh] = r;
#pragma unroll
    for (int j = 0; j < J; j++) {
        int i = lane + 32 * j;
        v[j] = __fmul_rn(__fmul_rn(v[j], r), gemma ? __fadd_rn(1.0f, w[i]) : w[i]);
    }
    const float *c = cs + (rh / H) * D;
    float *o = out + rh * D;
#pragma unroll
    for (int j = 0; j < J / 2; j++) {
        int i = lane + 32 * j;
        float x1 = v[j], x2 = v[j + J / 2], cc = c[i], sn = c[HALF + i];
        o[i] = __fsub_rn(__fmul_rn(x1, cc), __fmul_rn(x2, sn));
        o[i + HALF] = __fadd_rn(__fmul_rn(x2, cc), __fmul_rn(x1, sn));
    }
}

int k_qk_norm_rope_supports(int D) { return D == 64 || D == 128 || D == 256; }

cudaError_t k_qk_norm_rope(float *out, float *rstd, const float *x, const float *w, const float *cs,
                           int N, int H, int D, float eps, int gemma, cudaStream_t s) {
    size_t rows = (size_t)N * H;
    if (!rows) return cudaSuccess;
    unsigned g = (unsigned)((rows + 7) / 8);
    if (D == 64) qk_norm_rope_k<64><<<g, 256, 0, s>>>(out, rstd, x, w, cs, N, H, eps, gemma);
    else if (D == 128) qk_norm_rope_k<128><<<g, 256, 0, s>>>(out, rstd, x, w, cs, N, H, eps, gemma);
    else if (D == 256) qk_norm_rope_k<256><<<g, 256, 0, s>>>(out, rstd, x, w, cs, N, H, eps, gemma);
    else return cudaErrorInvalidValue;
    return cudaGetLastError();
}

__global__ void rope_table_k(float *cs, const int *pos, const float *inv, int N, int D) {
    int h = D / 2;
    size_t n = (size_t)N * h;
    GRID_STRIDE(j, n) {
        size_t r = j / h, i = j % h;
        float a = __fmul_rn((float)pos[r], inv[i]);
        cs[r * D + i] = (float)cos((double)a);
        cs[r * D + h + i] = (float)sin((double)a);
    }
}

cudaError_t k_rope_table(float *cs, const int *pos, const float *inv, int N, int D, cudaStream_t s) {
    rope_table_k<<<grid_for((size_t)N * (D / 2), 256), 256, 0, s>>>(cs, pos, inv, N, D);
    return cudaGetLastError();
}

__global__ void rope_apply_k(float *x, const float *cs, int N, int H, int D) {
    int h = D / 2;
    size_t n = (size_t)N * H * h;
    GRID_STRIDE(j, n) {
        size_t i = j % h, rh = j / h, r = rh / H;
        const float *c = cs + r * D;
        float *v = x + rh * D;
        float x1 = v[i], x2 = v[i + h], cc = c[i], ss = c[h + i];
        v[i] = __fsub_rn(__fmul_rn(x1, cc), __fmul_rn(x2, ss));
        v[i + h] = __fadd_rn(__fmul_rn(x2, cc), __fmul_rn(x1, ss));
    }
}

cudaError_t k_rope_apply(float *x, const float *cs, int N, int H, int D, cudaStream_t s) {
    rope_apply_k<<<grid_for((size_t)N * H * (D / 2), 256), 256, 0, s>>>(x, cs, N, H, D);
    return cudaGetLastError();
}

/* SiLU (act 0) or GELU tanh (act 1) of x, as nn_glu.c */
__device__ __forceinline__ float act_f(float x, int act) {
    if (act == 1) {
        const float k = 0.7978845608028654f;
        return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    return x / (1.0f + expf(-x));
}

__global__ void glu_k(float *h, const float *gate, const float *up, size_t n, int act, __nv_bfloat16 *hb) {
    GRID_STRIDE(i, n) {
        float y = act_f(gate[i], act) * up[i];
        h[i] = y;
        if (hb) hb[i] = __float2bfloat16_rn(y);
    }
}

/* the same from bf16 gate/up (the GEMMs' bf16 outputs), 8 elements per thread: h (may be NULL)
 * and its bf16 copy */
__global__ void glu_bf16_x8_k(float *h, const uint4 *gate, const uint4 *up, size_t n8, int act,
                              uint4 *hb) {
    GRID_STRIDE(i, n8) {
        uint4 g = gate[i], u = up[i], o;
        const __nv_bfloat162 *g2 = (const __nv_bfloat162 *)&g, *u2 = (const __nv_bfloat162 *)&u;
        __nv_bfloat162 *o2 = (__nv_bfloat162 *)&o;
        float y[8];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float2 gf = __bfloat1622float2(g2[j]), uf = __bfloat1622float2(u2[j]);
            y[2 * j] = act_f(gf.x, act) * uf.x;
            y[2 * j + 1] = act_f(gf.y, act) * uf.y;
            o2[j] = __floats2bfloat162_rn(y[2 * j], y[2 * j + 1]);
        }
        hb[i] = o;
        if (h) {
            ((float4 *)h)[2 * i] = make_float4(y[0], y[1], y[2], y[3]);
            ((float4 *)h)[2 * i + 1] = make_float4(y[4], y[5], y[6], y[7]);
        }
    }
}

__global__ void glu_bf16_k(float *h, const __nv_bfloat16 *gate, const __nv_bfloat16 *up, size_t n,
                           int act, __nv_bfloat16 *hb) {
    GRID_STRIDE(i, n) {
        float y = act_f(__bfloat162float(gate[i]), act) * __bfloat162float(up[i]);
        if (h) h[i] = y;
        hb[i] = __float2bfloat16_rn(y);
    }
}

cudaError_t k_glu_bf16(float *h, const __nv_bfloat16 *gate, const __nv_bfloat16 *up, size_t n,
                       int act, __nv_bfloat16 *h_bf16, cudaStream_t s) {
    if (!n) return cudaSuccess;
    uintptr_t al = (uintptr_t)gate | (uintptr_t)up | (uintptr_t)h_bf16 | (uintptr_t)h;
    if (n % 8 == 0 && (al & 15) == 0)
        glu_bf16_x8_k<<<grid_for(n / 8, 256), 256, 0, s>>>(h, (const uint4 *)gate, (const uint4 *)up,
                                                           n / 8, act, (uint4 *)h_bf16);
    else
        glu_bf16_k<<<grid_for(n, 256), 256, 0, s>>>(h, gate, up, n, act, h_bf16);
    return cudaGetLastError();
}

cudaError_t k_glu(float *h, const float *gate, const float *up, size_t n, int act,
                  __nv_bfloat16 *h_bf16, cudaStream_t s) {
    if (!n) return cudaSuccess;
    glu_k<<<grid_for(n, 256), 256, 0, s>>>(h, gate, up, n, act, h_bf16);
    return cudaGetLastError();
}

__global__ void add_k(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

cudaError_t k_add(float *out, const float *a, const float *b, size_t n, cudaStream_t s) {
    if (!n) return cudaSuccess;
    add_k<<<grid_for(n, 256), 256, 0, s>>>(out, a, b, n);
    return cudaGetLastError();
}

__global__ void nonfinite_k(const float *x, size_t n, int *flag) {
    int bad = 0;
    GRID_STRIDE(i, n) bad |= !isfinite(x[i]);
    if (__any_sync(0xffffffffu, bad) && (threadIdx.x & 31) == 0) *flag = 1;
}

cudaError_t k_nonfinite(const float *x, size_t n, int *flag, cudaStream_t s) {
    if (!n) return cudaSuccess;
    size_t g = (n + 255) / 256;
    nonfinite_k<<<(unsigned)(g > 65536 ? 65536 : g), 256, 0, s>>>(x, n, flag);
    return cudaGetLastError();
}

__global__ void add_bias_k(float *out, const float *bias, int N, int OC) {
    size_t n = (size_t)N * OC;
    GRID_STRIDE(i, n) out[i] += bias[i % OC];
}

cudaError_t k_add_bias(float *out, const float *bias, int N, int OC, cudaStream_t s) {
    add_bias_k<<<grid_for((size_t)N * OC, 256), 256, 0, s>>>(out, bias, N, OC);
    return cudaGetLastError();
}

__global__ void gather_rows_k(float *dst, const float *src, const int *row, int R, int C) {
    size_t n = (size_t)R * C;
    GRID_STRIDE(i, n) dst[i] = src[(size_t)row[i / C] * C + i % C];
}

cudaError_t k_gather_rows(float *dst, const float *src, const int *row, int R, int C, cudaStream_t s) {
    if (R <= 0) return cudaSuccess;
    gather_rows_k<<<grid_for((size_t)R * C, 256), 256, 0, s>>>(dst, src, row, R, C);
    return cudaGetLastError();
}

__global__ void kv_store_k(float *cache, const float *src, const int *seq, const int *pos, int N,
                           int kd, int max_t) {
    size_t n = (size_t)N * kd;
    GRID_STRIDE(i, n) {
        size_t r = i / kd, c = i % kd;
        cache[((size_t)seq[r] * max_t + pos[r]) * kd + c] = src[i];
    }
}

cudaError_t k_kv_store(float *cache, const float *src, const int *seq, const int *pos, int N,
                       int kd, int max_t, cudaStream_t s) {
    kv_store_k<<<grid_for((size_t)N * kd, 256), 256, 0, s>>>(cache, src, seq, pos, N, kd, max_t);
    return cudaGetLastError();
}
