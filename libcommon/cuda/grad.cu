/* grad.cu — the backwards of the elementwise and row ops (RMSNorm, RoPE, GLU, embedding, bias,
 * softcap) and LoRA's dropout mask, following grad_*.c / nn_rope.c / train_model.c. Products the
 * CPU rounds one at a time are written with __fmul_rn / __fadd_rn (no fused multiply-add), so the
 * embedding and RoPE backwards are the CPU's bits; sums the CPU runs in another order agree to
 * rounding. Column sums (weight vectors) run over fixed blocks of rows, then the blocks in order:
 * deterministic, no atomics. Scratch comes from the stream-ordered allocator (cudaMallocAsync). */
#include "grad.cuh"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline unsigned grid_for(size_t n, int bs) {
    size_t g = (n + bs - 1) / bs;
    return (unsigned)(g > 1u << 30 ? 1u << 30 : g);
}
#define GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* ---------------------------------------------------------------- RMSNorm */

/* one warp per row: dot = sum dy w' x, then dx += r w' dy - x (dot r^3 / C) (set: dx =) */
__global__ void rmsnorm_bwd_dx_k(float *dx, const float *dout, const float *x, const float *rstd,
                                 const float *w, int N, int C, int gemma, int set) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (row >= N) return;
    const float *xr = x + (size_t)row * C, *g = dout + (size_t)row * C;
    float *d = dx + (size_t)row * C;
    double dot = 0;
    for (int c = lane; c < C; c += 32) {
        float wc = gemma ? __fadd_rn(1.0f, w[c]) : w[c];
        dot += (double)__fmul_rn(__fmul_rn(g[c], wc), xr[c]);
    }
    for (int off = 16; off; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
    float r = rstd[row];
    float k = __fdiv_rn(__fmul_rn(__fmul_rn(__fmul_rn((float)dot, r), r), r), (float)C);
    for (int c = lane; c < C; c += 32) {
        float wc = gemma ? __fadd_rn(1.0f, w[c]) : w[c];
        float t = __fsub_rn(__fmul_rn(__fmul_rn(r, wc), g[c]), __fmul_rn(xr[c], k));
        d[c] = set ? t : __fadd_rn(d[c], t);
    }
}

/* Column sums over rows, deterministic and parallel: block (cx, ry) takes 32 columns and the ry-th
 * of rb row ranges; its 8 row groups sum their rows (strided by 8) in double, then combine in a fixed
 * tree in shared memory into part[ry, c]; a second kernel, a block per column, adds the rb partials
 * of its column (thread t the partials t, t + 128, ... in order, then a fixed tree). The value of
 * (r, c) is a[i] * (b ? b[i] : 1) * (rs ? rs[r] : 1), i = r * C + c, each product rounded in float as
 * the CPU kernels do (dy x r for RMSNorm's weight, dy for a bias). About 2,048 blocks whatever the
 * shape (the q/k norms' weights, C = 128 over 65,536 rows, had 512 blocks walking 64 rows a thread;
 * the norms' backward was 7% of a Qwen3-0.6B step). */
#define CS_BLOCKS 2048
#define CS_FOLD 128
__global__ void colsum_part_k(double *part, const float *a, const float *b, const float *rs, int N, int C,
                              int rows_per) {
    __shared__ double sh[8][33];
    int c = blockIdx.x * 32 + (threadIdx.x & 31), grp = threadIdx.x >> 5;
    int r0 = blockIdx.y * rows_per, r1 = min(N, r0 + rows_per);
    double acc = 0;
    if (c < C)
#pragma unroll 4
        for (int r = r0 + grp; r < r1; r += 8) {
            size_t i = (size_t)r * C + c;
            float v = a[i];
            if (b) v = __fmul_rn(v, b[i]);
            if (rs) v = __fmul_rn(v, rs[r]);
            acc += (double)v;
        }
    sh[grp][threadIdx.x & 31] = acc;
    __syncthreads();
    if (grp == 0 && c < C) {
        double t = 0;
        for (int k = 0; k < 8; k++) t += sh[k][threadIdx.x];
        part[(size_t)blockIdx.y * C + c] = t;
    }
}

/* dst[c] += the nb partials of column c (block c) */
__global__ void colsum_fold_k(float *dst, const double *part, int nb, int C) {
    __shared__ double sh[CS_FOLD];
    int c = blockIdx.x;
    double s = 0;
    for (int b = threadIdx.x; b < nb; b += CS_FOLD) s += part[(size_t)b * C + c];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = CS_FOLD / 2; k; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (!threadIdx.x) dst[c] = (float)((double)dst[c] + sh[0]);
}

/* dst[C] += column sums (see colsum_part_k) */
static cudaError_t colsum(float *dst, const float *a, const float *b, const float *rs, int N, int C,
                          cudaStream_t s) {
    if (N <= 0 || C <= 0) return cudaSuccess;
    int cx = (C + 31) / 32;
    int rb = CS_BLOCKS / cx, maxrb = (N + 7) / 8; /* at least a row per row group */
    if (rb > maxrb) rb = maxrb;
    if (rb < 1) rb = 1;
    int rows_per = (N + rb - 1) / rb;
    rb = (N + rows_per - 1) / rows_per;
    double *part = NULL;
    cudaError_t r = cudaMallocAsync((void **)&part, sizeof(double) * (size_t)rb * C, s);
    if (r != cudaSuccess) return r;
    colsum_part_k<<<dim3(cx, rb), 256, 0, s>>>(part, a, b, rs, N, C, rows_per);
    colsum_fold_k<<<C, CS_FOLD, 0, s>>>(dst, part, rb, C);
    cudaFreeAsync(part, s);
    return cudaGetLastError();
}

cudaError_t kg_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x,
                                const float *rstd, const float *w, int N, int C, int gemma,
                                int dx_set, cudaStream_t s) {
    if (N <= 0) return cudaSuccess;
    if (dx) rmsnorm_bwd_dx_k<<<(N + 7) / 8, 256, 0, s>>>(dx, dout, x, rstd, w, N, C, gemma, dx_set);
    if (dw) { /* dw[c] += sum over rows of (dy x) r */
        cudaError_t r = colsum(dw, dout, x, rstd, N, C, s);
        if (r != cudaSuccess) return r;
    }
    return cudaGetLastError();
}

/* ---------------------------------------------------------------- RoPE */

/* nn_rope.c's rope_rotate with sign -1: v[i] = x1 c - x2 (-s), v[i+h] = x2 c + x1 (-s) */
__global__ void rope_bwd_k(float *x, const float *cs, int N, int H, int D) {
    int h = D / 2;
    size_t n = (size_t)N * H * h;
    GRID_STRIDE(j, n) {
        size_t i = j % h, rh = j / h, r = rh / H;
        const float *c = cs + r * D;
        float *v = x + rh * D;
        float x1 = v[i], x2 = v[i + h], cc = c[i], si = -c[h + i];
        v[i] = __fsub_rn(__fmul_rn(x1, cc), __fmul_rn(x2, si));
        v[i + h] = __fadd_rn(__fmul_rn(x2, cc), __fmul_rn(x1, si));
    }
}

cudaError_t kg_rope_backward(float *dx, const float *cs, int N, int H, int D, cudaStream_t s) {
    size_t n = (size_t)N * H * (D / 2);
    if (!n) return cudaSuccess;
    rope_bwd_k<<<grid_for(n, 256), 256, 0, s>>>(dx, cs, N, H, D);
    return cudaGetLastError();
}

/* ---------------------------------------------------------------- GLU */

__global__ void glu_bwd_k(float *dg, float *du, const float *dh, const float *g, const float *u,
                          size_t n, int act, int set, __nv_bfloat16 *dgb, __nv_bfloat16 *dub) {
    const float K = 0.7978845608028654f;
    GRID_STRIDE(i, n) {
        float x = g[i], a, da;
        if (act == 0) {
            float sg = 1.0f / (1.0f + expf(-x));
            a = x * sg;
            da = sg * (1.0f + x * (1.0f - sg));
        } else {
            float t = tanhf(K * (x + 0.044715f * x * x * x));
            a = 0.5f * x * (1.0f + t);
            da = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * K * (1.0f + 3 * 0.044715f * x * x);
        }
        if (dg) {
            float y = (set ? 0.0f : dg[i]) + dh[i] * u[i] * da;
            dg[i] = y;
            if (dgb) dgb[i] = __float2bfloat16_rn(y);
        }
        if (du) {
            float y = (set ? 0.0f : du[i]) + dh[i] * a;
            du[i] = y;
            if (dub) dub[i] = __float2bfloat16_rn(y);
        }
    }
}

cudaError_t kg_glu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                            size_t n, int act, int set, __nv_bfloat16 *dg_bf16, __nv_bfloat16 *du_bf16,
                            cudaStream_t s) {
    if (!n || (!dg && !du)) return cudaSuccess;
    glu_bwd_k<<<grid_for(n, 256), 256, 0, s>>>(dg, du, dh, g, u, n, act, set, dg_bf16, du_bf16);
    return cudaGetLastError();
}

/* ---------------------------------------------------------------- embedding */

/* table row uid[u] += its rows (rows[off[u] .. off[u+1]), token order) * scale */
__global__ void embed_bwd_k(float *dtable, const float *dout, const int *uid, const int *off,
                            const int *rows, int C, float scale) {
    int u = blockIdx.x;
    float *d = dtable + (size_t)uid[u] * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = d[c];
        for (int j = off[u]; j < off[u + 1]; j++)
            acc = __fadd_rn(acc, __fmul_rn(dout[(size_t)rows[j] * C + c], scale));
        d[c] = acc;
    }
}

typedef struct { int id, row; } id_row;
static int id_row_cmp(const void *a, const void *b) {
    const id_row *x = (const id_row *)a, *y = (const id_row *)b;
    return x->id != y->id ? (x->id < y->id ? -1 : 1) : (x->row < y->row ? -1 : x->row > y->row);
}

cudaError_t kg_embedding_backward(float *dtable, const float *dout, const int32_t *ids_host, int N,
                                  int C, float scale, cudaStream_t s) {
    if (N <= 0 || !dtable) return cudaSuccess;
    id_row *p = (id_row *)malloc(sizeof *p * N);
    int *h = (int *)malloc(sizeof(int) * (3 * (size_t)N + 1));
    if (!p || !h) { free(p); free(h); return cudaErrorMemoryAllocation; }
    for (int n = 0; n < N; n++) p[n] = (id_row){ids_host[n], n};
    qsort(p, N, sizeof *p, id_row_cmp);
    int *uid = h, *rows = h + N, *off = h + 2 * (size_t)N, U = 0;
    for (int n = 0; n < N; n++) {
        if (!n || p[n].id != p[n - 1].id) { uid[U] = p[n].id; off[U++] = n; }
        rows[n] = p[n].row;
    }
    off[U] = N;
    /* device layout: uid [U], off [U+1], rows [N] */
    int *d = NULL;
    size_t bytes = sizeof(int) * ((size_t)2 * U + 1 + N);
    cudaError_t r = cudaMallocAsync((void **)&d, bytes, s);
    if (r == cudaSuccess) {
        int *hu = (int *)malloc(bytes);
        if (!hu) r = cudaErrorMemoryAllocation;
        else {
            memcpy(hu, uid, sizeof(int) * U);
            memcpy(hu + U, off, sizeof(int) * (U + 1));
            memcpy(hu + 2 * U + 1, rows, sizeof(int) * N);
            r = cudaMemcpyAsync(d, hu, bytes, cudaMemcpyHostToDevice, s);
            if (r == cudaSuccess) r = cudaStreamSynchronize(s); /* hu is freed next */
            free(hu);
        }
        if (r == cudaSuccess) {
            embed_bwd_k<<<U, C < 256 ? (C + 31) / 32 * 32 : 256, 0, s>>>(dtable, dout, d, d + U, d + 2 * U + 1, C, scale);
            r = cudaGetLastError();
        }
        cudaFreeAsync(d, s);
    }
    free(p);
    free(h);
    return r;
}

/* ---------------------------------------------------------------- bias, softcap, dropout */

cudaError_t kg_bias_backward(float *dbias, const float *dout, int N, int OC, cudaStream_t s) {
    if (!dbias || OC <= 0) return cudaSuccess;
    return colsum(dbias, dout, NULL, NULL, N, OC, s);
}

__global__ void softcap_fwd_k(float *x, size_t n, float cap) {
    GRID_STRIDE(i, n) x[i] = cap * tanhf(x[i] / cap);
}
__global__ void softcap_bwd_k(float *dx, const float *y, size_t n, float cap) {
    GRID_STRIDE(i, n) {
        float t = y[i] / cap;
        dx[i] *= 1.0f - t * t;
    }
}
cudaError_t kg_softcap_forward(float *x, size_t n, float cap, cudaStream_t s) {
    if (!n) return cudaSuccess;
    softcap_fwd_k<<<grid_for(n, 256), 256, 0, s>>>(x, n, cap);
    return cudaGetLastError();
}
cudaError_t kg_softcap_backward(float *dx, const float *y, size_t n, float cap, cudaStream_t s) {
    if (!n) return cudaSuccess;
    softcap_bwd_k<<<grid_for(n, 256), 256, 0, s>>>(dx, y, n, cap);
    return cudaGetLastError();
}

__global__ void dropout_k(float *out, const float *x, size_t n, uint64_t seed, uint64_t lk, double p,
                          float sc, int accum) {
    GRID_STRIDE(i, n) {
        uint64_t z = seed ^ (lk * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)i * 0xd1b54a32d192ed03ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        int keep = (double)(z >> 11) * (1.0 / 9007199254740992.0) >= p;
        if (accum) { if (keep) out[i] = __fadd_rn(out[i], __fmul_rn(x[i], sc)); }
        else out[i] = keep ? __fmul_rn(x[i], sc) : 0.0f;
    }
}

cudaError_t kg_dropout(float *out, const float *x, size_t n, uint64_t seed, uint64_t key, double p,
                       int accum, cudaStream_t s) {
    if (!n) return cudaSuccess;
    float sc = (float)(1.0 / (1.0 - p));
    dropout_k<<<grid_for(n, 256), 256, 0, s>>>(out, x, n, seed, key, p, sc, accum);
    return cudaGetLastError();
}
