/* attention_bwd_gemm.cu — the attention backward on tensor cores: per group of (sequence, head)
 * pairs the [T, T] scores are recomputed into a scratch that lives for this call only (never one
 * per layer: the forward keeps no probabilities), by batched cuBLAS GEMMs:
 *     S = Q K^T; row kernel: P = softmax(mask(softcap(scale S))) and its logsumexp;
 *     dP = dO V^T; row kernel: dS = P (dP - rowsum(P dP)) * softcap';
 *     dV += P^T dO;  dQ += scale dS K;  dK += scale dS^T Q.
 * bf16 (lop_gemm bf16): q, k, v, dout and then P, dS rounded to bf16, float32 accumulation (as
 * FlashAttention-2's bf16 backward); f32: the same GEMMs in float32 (no TF32). A group holds as many
 * pairs as fit ATTN_SCRATCH_MB of scratch; GQA's dK/dV (heads sharing a kv head) add one batched
 * call per head of the group, so no two items of a call write the same rows. The causal half the
 * GEMMs compute and the masks discard is the price of running at the tensor cores' rate. */
#include "grad.cuh"
#include "kernels.cuh"
#include <math.h>
#include <stdlib.h>

#define ATTN_SCRATCH_MB 768

__device__ __forceinline__ bool vis(int i, int j, int window) { return j <= i && (window <= 0 || i - j < window); }

/* one warp per row (item g, query i): P = exp(x - lse) with x = softcap(scale S), masked -> 0;
 * writes P (bf16 or float32) and lse */
template <typename TP>
__global__ void rows_softmax_k(TP *P, float *lse, const float *S, int rows, int T, float scale,
                               float softcap, int window) {
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (r >= rows) return;
    int i = r % T;
    const float *s = S + (size_t)r * T;
    TP *p = P + (size_t)r * T;
    float mx = -INFINITY;
    for (int j = lane; j < T; j += 32) {
        if (!vis(i, j, window)) continue;
        float x = s[j] * scale;
        if (softcap > 0) x = softcap * tanhf(x / softcap);
        mx = fmaxf(mx, x);
    }
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0;
    for (int j = lane; j < T; j += 32) {
        if (!vis(i, j, window)) continue;
        float x = s[j] * scale;
        if (softcap > 0) x = softcap * tanhf(x / softcap);
        sum += expf(x - mx);
    }
    for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    float ls = mx + logf(sum);
    if (!lane) lse[r] = ls;
    for (int j = lane; j < T; j += 32) {
        float v = 0;
        if (vis(i, j, window)) {
            float x = s[j] * scale;
            if (softcap > 0) x = softcap * tanhf(x / softcap);
            v = expf(x - ls);
        }
        p[j] = (TP)v;
    }
}

/* one warp per row: dS = P (dP - delta) * softcap'(scale S), P recomputed from S and lse;
 * dS written as TD (bf16 into its own buffer, or float32 over dP) */
template <typename TD>
__global__ void rows_dsoftmax_k(TD *dS, const float *dP, const float *S, const float *lse, int rows,
                                int T, float scale, float softcap, int window) {
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (r >= rows) return;
    int i = r % T;
    const float *s = S + (size_t)r * T, *dp = dP + (size_t)r * T;
    TD *ds = dS + (size_t)r * T;
    float ls = lse[r], delta = 0;
    for (int j = lane; j < T; j += 32) {
        if (!vis(i, j, window)) continue;
        float x = s[j] * scale;
        if (softcap > 0) x = softcap * tanhf(x / softcap);
        delta += expf(x - ls) * dp[j];
    }
    for (int o = 16; o; o >>= 1) delta += __shfl_xor_sync(0xffffffffu, delta, o);
    for (int j = lane; j < T; j += 32) {
        float v = 0;
        if (vis(i, j, window)) {
            float raw = s[j] * scale, x = raw, cg = 1.0f;
            if (softcap > 0) { float t = tanhf(raw / softcap); x = softcap * t; cg = 1.0f - t * t; }
            v = expf(x - ls) * (dp[j] - delta) * cg;
        }
        ds[j] = (TD)v;
    }
}

template <typename TP>
static cudaError_t launch_softmax(TP *P, float *lse, const float *S, int rows, int T, float scale,
                                  float softcap, int window, cudaStream_t s) {
    rows_softmax_k<TP><<<(rows + 7) / 8, 256, 0, s>>>(P, lse, S, rows, T, scale, softcap, window);
    return cudaGetLastError();
}
template <typename TD>
static cudaError_t launch_dsoftmax(TD *dS, const float *dP, const float *S, const float *lse, int rows,
                                   int T, float scale, float softcap, int window, cudaStream_t s) {
    rows_dsoftmax_k<TD><<<(rows + 7) / 8, 256, 0, s>>>(dS, dP, S, lse, rows, T, scale, softcap, window);
    return cudaGetLastError();
}

/* the batched GEMMs' pointer arrays: array a of G entries at p + a * G; item it of a group is
 * (r, sequence bb, kv head kh), r-major, so the items of one r write distinct kv rows */
enum { AK, AQ, AS, AV, AO, AdP, AdS, AdQ, AP, AdV, AdK };
typedef struct ptr_bases {
    const char *K, *Q, *V, *O;   /* [N, ld] rows, element size es */
    char *S, *dP, *dS, *P;       /* [G, T, T]: S, dP float32; dS, P element size es */
    float *dq, *dk, *dv;         /* or NULL */
} ptr_bases;

__global__ void fill_ptrs_k(void **p, ptr_bases b, int G, int nb, int b0, int KVH, int rep, int T,
                            int ldq, int ldk, int D, int es, size_t TT) {
    int it = blockIdx.x * blockDim.x + threadIdx.x;
    if (it >= nb * KVH * rep) return;
    int kh = it % KVH, bb = (it / KVH) % nb, r = it / (KVH * nb), hh = kh * rep + r;
    size_t row0 = (size_t)(b0 + bb) * T, qo = row0 * ldq + (size_t)hh * D, ko = row0 * ldk + (size_t)kh * D;
    p[AK * G + it] = (void *)(b.K + ko * es);
    p[AQ * G + it] = (void *)(b.Q + qo * es);
    p[AV * G + it] = (void *)(b.V + ko * es);
    p[AO * G + it] = (void *)(b.O + qo * es);
    p[AS * G + it] = b.S + (size_t)it * TT * 4;
    p[AdP * G + it] = b.dP + (size_t)it * TT * 4;
    p[AdS * G + it] = b.dS + (size_t)it * TT * es;
    p[AP * G + it] = b.P + (size_t)it * TT * es;
    p[AdQ * G + it] = b.dq ? (void *)(b.dq + qo) : NULL;
    p[AdK * G + it] = b.dk ? (void *)(b.dk + ko) : NULL;
    p[AdV * G + it] = b.dv ? (void *)(b.dv + ko) : NULL;
}

size_t kg_attention_backward_gemm_pairs(int T) {
    size_t per = (size_t)T * T * 12 + (size_t)T * 4; /* S, dP (f32), P + dS (bf16) or P (f32), lse */
    size_t g = ((size_t)ATTN_SCRATCH_MB << 20) / per;
    return g;
}

#define BL(x) do { if ((x) != CUBLAS_STATUS_SUCCESS) { rc = cudaErrorUnknown; goto out; } } while (0)
#define CK(x) do { rc = (x); if (rc != cudaSuccess) goto out; } while (0)

cudaError_t kg_attention_backward_gemm(cublasHandle_t h, float *dq, float *dk, float *dv,
                                       const float *dout, const float *q, const float *k,
                                       const float *v, int B, int T, int H, int KVH, int D,
                                       float scale, float softcap, int window, int bf16, int set,
                                       cudaStream_t s) {
    cudaError_t rc = cudaSuccess;
    if (B <= 0 || T <= 0) return cudaSuccess;
    if (H % KVH) return cudaErrorInvalidValue;
    const int rep = H / KVH, ldq = H * D, ldk = KVH * D;
    const size_t N = (size_t)B * T, TT = (size_t)T * T;
    int Bg = (int)(kg_attention_backward_gemm_pairs(T) / H); /* sequences per group */
    if (Bg < 1) return cudaErrorMemoryAllocation;
    if (Bg > B) Bg = B;
    const int G = Bg * H;
    const size_t es = bf16 ? 2 : 4;
    const cudaDataType_t ty = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    char *buf = NULL;
    /* scratch: S, dP [G, T, T] f32; P [G, T, T] (es); dS bf16 [G, T, T] (bf16 only); lse [G, T];
     * bf16 copies of q, k, v, dout; 11 pointer arrays of G */
    size_t nS = (size_t)G * TT, off = 0;
    size_t oS = off; off += nS * 4;
    size_t odP = off; off += nS * 4;
    size_t oP = off; off += nS * es;
    size_t odS = off; off += bf16 ? nS * 2 : 0;
    size_t olse = off; off += (size_t)G * T * 4;
    size_t oqb = off; off += bf16 ? N * ldq * 2 : 0;
    size_t okb = off; off += bf16 ? N * ldk * 2 : 0;
    size_t ovb = off; off += bf16 ? N * ldk * 2 : 0;
    size_t oob = off; off += bf16 ? N * ldq * 2 : 0;
    off = (off + 255) & ~(size_t)255;
    size_t optr = off; off += sizeof(void *) * 11 * (size_t)G;
    CK(cudaMallocAsync((void **)&buf, off, s));
    {
        float *S = (float *)(buf + oS), *dP = (float *)(buf + odP), *lse = (float *)(buf + olse);
        void *P = buf + oP, *dS = bf16 ? (void *)(buf + odS) : (void *)dP;
        const void *Q = q, *K = k, *V = v, *O = dout;
        if (bf16) {
            CK(k_to_bf16((__nv_bfloat16 *)(buf + oqb), q, KDT_F32, N * ldq, s));
            CK(k_to_bf16((__nv_bfloat16 *)(buf + okb), k, KDT_F32, N * ldk, s));
            CK(k_to_bf16((__nv_bfloat16 *)(buf + ovb), v, KDT_F32, N * ldk, s));
            CK(k_to_bf16((__nv_bfloat16 *)(buf + oob), dout, KDT_F32, N * ldq, s));
            Q = buf + oqb; K = buf + okb; V = buf + ovb; O = buf + oob;
        }
        void **dptr = (void **)(buf + optr);
        const float one = 1.0f, zero = 0.0f, *beta0 = set ? &zero : &one;
        cublasSetStream(h, s);
#define ARR(a) ((void *const *)(dptr + (size_t)(a) * G))
#define CARR(a) ((const void *const *)(dptr + (size_t)(a) * G))
        ptr_bases pb = {(const char *)K, (const char *)Q, (const char *)V, (const char *)O, (char *)S,
                        (char *)dP, (char *)dS, (char *)P, dq, dk, dv};
        for (int b0 = 0; b0 < B; b0 += Bg) {
            int nb = B - b0 < Bg ? B - b0 : Bg, g = nb * H;
            /* the pointer arrays are written on the device, in stream order: no host round trip
             * (a pageable copy and a sync per call stalled the queue once per layer) */
            fill_ptrs_k<<<(g + 127) / 128, 128, 0, s>>>(dptr, pb, G, nb, b0, KVH, rep, T, ldq, ldk, D,
                                                       (int)es, TT);
            CK(cudaGetLastError());
            /* S[i, j] = q_i . k_j : column-major S^T = K Q^T */
            BL(cublasGemmBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, T, T, D, &one, CARR(AK), ty, ldk, CARR(AQ), ty,
                                   ldq, &zero, ARR(AS), CUDA_R_32F, T, g, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            int rows = g * T;
            if (bf16) CK(launch_softmax((__nv_bfloat16 *)P, lse, S, rows, T, scale, softcap, window, s));
            else CK(launch_softmax((float *)P, lse, S, rows, T, scale, softcap, window, s));
            /* dP[i, j] = dO_i . v_j */
            BL(cublasGemmBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, T, T, D, &one, CARR(AV), ty, ldk, CARR(AO), ty,
                                   ldq, &zero, ARR(AdP), CUDA_R_32F, T, g, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            if (bf16) CK(launch_dsoftmax((__nv_bfloat16 *)dS, dP, S, lse, rows, T, scale, softcap, window, s));
            else CK(launch_dsoftmax((float *)dS, dP, S, lse, rows, T, scale, softcap, window, s));
            /* dQ[i, :] += scale sum_j dS[i, j] k_j */
            if (dq)
                BL(cublasGemmBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, D, T, T, &scale, CARR(AK), ty, ldk, CARR(AdS),
                                       ty, T, beta0, ARR(AdQ), CUDA_R_32F, ldq, g, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT));
            int per = nb * KVH; /* items of one r */
            for (int r = 0; r < rep; r++) {
                size_t o = (size_t)r * per;
                const float *bkv = r ? &one : beta0; /* heads after the first of a kv head add */
                /* dV[j, :] += sum_i P[i, j] dO_i */
                if (dv)
                    BL(cublasGemmBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_T, D, T, T, &one, CARR(AO) + o, ty, ldq,
                                           CARR(AP) + o, ty, T, bkv, ARR(AdV) + o, CUDA_R_32F, ldk, per,
                                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
                /* dK[j, :] += scale sum_i dS[i, j] q_i */
                if (dk)
                    BL(cublasGemmBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_T, D, T, T, &scale, CARR(AQ) + o, ty, ldq,
                                           CARR(AdS) + o, ty, T, bkv, ARR(AdK) + o, CUDA_R_32F, ldk, per,
                                           CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            }
        }
#undef ARR
#undef CARR
    }
out:
    if (buf) cudaFreeAsync(buf, s);
    if (rc == cudaSuccess) rc = cudaGetLastError();
    return rc;
}
