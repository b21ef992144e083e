/* attention_mma.cu — the attention of --gemm bf16 on tensor cores (FlashAttention-2's scheme with
 * mma.sync m16n8k16): q, k, v rounded to bf16 as they are staged in shared memory, scores and the
 * output accumulated in float32 registers, softmax (max, exp, sum) in float32. One block of 4
 * warps takes 64 queries of one head (16 rows a warp) and walks the keys they may see (causal,
 * sliding window) in tiles of 64; nothing of size [T, Tk] is ever stored.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16 with .bf16 inputs, g = lane/4, c = lane%4):
 *   A (16x16, row major): a0 = A[g][2c..2c+1], a1 = A[g+8][2c..], a2 = A[g][2c+8..], a3 = A[g+8][2c+8..]
 *   B (16x8, k x n):      b0 = B[2c..2c+1][g], b1 = B[2c+8..2c+9][g]
 *   C (16x8, float32):    c0,c1 = C[g][2c..2c+1], c2,c3 = C[g+8][2c..2c+1]
 * so the scores' C fragments of two neighbouring 8-key tiles are exactly the A fragment of P for
 * the P.V product (no shared-memory round trip). Fragments come from shared memory through
 * ldmatrix (x4: four 8x8 matrices an instruction; .trans for V, staged row-major like K). Row
 * strides are padded by 8 bf16 (16 bytes): the 8 rows of each 8x8 load hit 32 different banks. */
#include "kernels.cuh"
#include <cuda_bf16.h>
#include <math.h>

#define MBQ 64
#define MBK 64

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

__device__ __forceinline__ void ldsm_x4(uint32_t *r, const void *p) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t *r, const void *p) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

__device__ __forceinline__ void mma_bf16(float *d, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <int D>
__global__ void __launch_bounds__(128) attn_mma_k(float *__restrict__ out, const float *__restrict__ q,
                                                  const float *__restrict__ k, const float *__restrict__ v,
                                                  const attn_seq_d *__restrict__ seqs,
                                                  const attn_tile_d *__restrict__ tiles, int Hq, int Hkv,
                                                  float scale, int window, float softcap,
                                                  __nv_bfloat16 *__restrict__ ob) {
    constexpr int LDQ = D + 8, LDK = D + 8, LDV = D + 8;
    extern __shared__ __align__(16) unsigned char smraw[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)smraw;        /* [MBQ][LDQ] */
    __nv_bfloat16 *Ks = Qs + MBQ * LDQ;                 /* [MBK][LDK] */
    __nv_bfloat16 *Vs = Ks + MBK * LDK;                 /* [MBK][LDV] */
    const attn_tile_d tl = tiles[blockIdx.x];
    const attn_seq_d sq = seqs[tl.b];
    const int h = blockIdx.y, kh = h / (Hq / Hkv);
    const int ldq = Hq * D, ldk = Hkv * D;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
    const int nq = min(MBQ, sq.T - tl.t0);
    /* Q tile -> bf16 (rows past the sequence are zeros) */
    const float *qb = q + (size_t)(sq.qoff + tl.t0) * ldq + h * D;
    for (int i = tid; i < MBQ * D / 4; i += 128) {
        int r = i / (D / 4), d = (i - r * (D / 4)) * 4;
        float4 x = r < nq ? *(const float4 *)(qb + (size_t)r * ldq + d) : make_float4(0, 0, 0, 0);
        uint2 p = {pack_bf16(x.x, x.y), pack_bf16(x.z, x.w)};
        *(uint2 *)(Qs + r * LDQ + d) = p;
    }
    const int p_first = sq.q0 + tl.t0, p_last = p_first + nq - 1;
    const int kmin = window > 0 && p_first - window + 1 > 0 ? p_first - window + 1 : 0;
    const int kmax = p_last;
    const float *kb = k + sq.kbase + kh * D, *vb = v + sq.kbase + kh * D;
    /* this thread's two rows (g and g+8 of the warp's 16) */
    int pos[2], lo[2];
    float m_i[2] = {-INFINITY, -INFINITY}, l_i[2] = {0.0f, 0.0f};
    for (int s = 0; s < 2; s++) {
        pos[s] = p_first + warp * 16 + g + 8 * s;
        lo[s] = window > 0 ? pos[s] - window + 1 : 0;
    }
    float o[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    const float sl2 = scale * 1.4426950408889634f; /* exp(x) = exp2(x * log2 e) */
    for (int j0 = kmin; j0 <= kmax; j0 += MBK) {
        __syncthreads();
        for (int i = tid; i < MBK * D / 4; i += 128) {
            int r = i / (D / 4), d = (i - r * (D / 4)) * 4, p = j0 + r;
            float4 x = make_float4(0, 0, 0, 0), y = x;
            if (p <= kmax) {
                x = *(const float4 *)(kb + (size_t)p * ldk + d);
                y = *(const float4 *)(vb + (size_t)p * ldk + d);
            }
            uint2 pk = {pack_bf16(x.x, x.y), pack_bf16(x.z, x.w)};
            *(uint2 *)(Ks + r * LDK + d) = pk;
            uint2 pv = {pack_bf16(y.x, y.y), pack_bf16(y.z, y.w)};
            *(uint2 *)(Vs + r * LDV + d) = pv;
        }
        __syncthreads();
        /* S[16 x 64] = Q K^T for this warp's rows */
        float s[MBK / 8][4];
#pragma unroll
        for (int n = 0; n < MBK / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
        const __nv_bfloat16 *qw = Qs + (warp * 16 + (lane & 15)) * LDQ + (lane >> 4) * 8;
        const __nv_bfloat16 *kw = Ks + ((lane >> 4) * 8 + (lane & 7)) * LDK + ((lane >> 3) & 1) * 8;
#pragma unroll
        for (int kc = 0; kc < D / 16; kc++) {
            uint32_t a[4];
            ldsm_x4(a, qw + kc * 16);
#pragma unroll
            for (int n = 0; n < MBK / 8; n += 2) {
                uint32_t b[4]; /* b0, b1 of key tiles n and n+1 */
                ldsm_x4(b, kw + n * 8 * LDK + kc * 16);
                mma_bf16(s[n], a, b[0], b[1]);
                mma_bf16(s[n + 1], a, b[2], b[3]);
            }
        }
        /* scale, softcap, mask; online softmax per row (4 lanes share a row) */
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int n = 0; n < MBK / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int rs = e >> 1, key = j0 + n * 8 + 2 * c + (e & 1);
                float x = s[n][e];
                if (softcap > 0) x = softcap * tanhf(x * scale / softcap) * 1.4426950408889634f;
                else x *= sl2;
                bool ok = key <= pos[rs] && key >= lo[rs] && key <= kmax;
                s[n][e] = ok ? x : -INFINITY;
                mx[rs] = fmaxf(mx[rs], s[n][e]);
            }
        float alpha[2];
#pragma unroll
        for (int rs = 0; rs < 2; rs++) {
            mx[rs] = fmaxf(mx[rs], __shfl_xor_sync(0xffffffffu, mx[rs], 1));
            mx[rs] = fmaxf(mx[rs], __shfl_xor_sync(0xffffffffu, mx[rs], 2));
            float mnew = fmaxf(m_i[rs], mx[rs]);
            alpha[rs] = mnew == -INFINITY ? 1.0f : exp2f(m_i[rs] - mnew);
            m_i[rs] = mnew;
        }
        float rsum[2] = {0.0f, 0.0f};
#pragma unroll
        for (int n = 0; n < MBK / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int rs = e >> 1;
                float p = s[n][e] == -INFINITY ? 0.0f : exp2f(s[n][e] - m_i[rs]);
                s[n][e] = p;
                rsum[rs] += p;
            }
#pragma unroll
        for (int rs = 0; rs < 2; rs++) {
            rsum[rs] += __shfl_xor_sync(0xffffffffu, rsum[rs], 1);
            rsum[rs] += __shfl_xor_sync(0xffffffffu, rsum[rs], 2);
            l_i[rs] = l_i[rs] * alpha[rs] + rsum[rs];
        }
#pragma unroll
        for (int j = 0; j < D / 8; j++) {
            o[j][0] *= alpha[0]; o[j][1] *= alpha[0];
            o[j][2] *= alpha[1]; o[j][3] *= alpha[1];
        }
        /* O[16 x D] += P[16 x 64] V[64 x D]; P's A fragments are the scores' C fragments */
#pragma unroll
        for (int kc = 0; kc < MBK / 16; kc++) {
            uint32_t a[4];
            a[0] = pack_bf16(s[2 * kc][0], s[2 * kc][1]);
            a[1] = pack_bf16(s[2 * kc][2], s[2 * kc][3]);
            a[2] = pack_bf16(s[2 * kc + 1][0], s[2 * kc + 1][1]);
            a[3] = pack_bf16(s[2 * kc + 1][2], s[2 * kc + 1][3]);
            const __nv_bfloat16 *vr = Vs + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDV + (lane >> 4) * 8;
#pragma unroll
            for (int j = 0; j < D / 8; j += 2) {
                uint32_t b[4]; /* b0, b1 of d tiles j and j+1 */
                ldsm_x4_t(b, vr + j * 8);
                mma_bf16(o[j], a, b[0], b[1]);
                mma_bf16(o[j + 1], a, b[2], b[3]);
            }
        }
    }
    /* out = O / l for the rows of this tile */
#pragma unroll
    for (int rs = 0; rs < 2; rs++) {
        int row = warp * 16 + g + 8 * rs;
        if (row >= nq) continue;
        float inv = 1.0f / l_i[rs];
        float *orow = out ? out + (size_t)(sq.qoff + tl.t0 + row) * ldq + h * D : NULL;
        __nv_bfloat16 *brow = ob ? ob + (size_t)(sq.qoff + tl.t0 + row) * ldq + h * D : NULL;
#pragma unroll
        for (int j = 0; j < D / 8; j++) {
            float2 y = make_float2(o[j][2 * rs] * inv, o[j][2 * rs + 1] * inv);
            if (orow) *(float2 *)(orow + j * 8 + 2 * c) = y;
            if (brow) *(uint32_t *)(brow + j * 8 + 2 * c) = pack_bf16(y.x, y.y);
        }
    }
}

template <int D>
static cudaError_t launch_mma(float *out, const float *q, const float *k, const float *v,
                              const attn_seq_d *seqs, const attn_tile_d *tiles, int ntiles, int Hq,
                              int Hkv, float scale, int window, float softcap, __nv_bfloat16 *ob,
                              cudaStream_t s) {
    size_t smem = sizeof(__nv_bfloat16) * ((size_t)MBQ * (D + 8) + 2 * (size_t)MBK * (D + 8));
    static int set = 0;
    if (!set) {
        cudaError_t r = cudaFuncSetAttribute(attn_mma_k<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (r != cudaSuccess) return r;
        set = 1;
    }
    dim3 grid((unsigned)ntiles, (unsigned)Hq);
    attn_mma_k<D><<<grid, 128, smem, s>>>(out, q, k, v, seqs, tiles, Hq, Hkv, scale, window, softcap, ob);
    return cudaGetLastError();
}

/* The head dims with a tensor-core kernel (others fall back to the float32 kernel). */
int k_attention_bf16_supports(int D) { return D == 64 || D == 128 || D == 256; }

cudaError_t k_attention_bf16(float *out, const float *q, const float *k, const float *v,
                             const attn_seq_d *seqs, const attn_tile_d *tiles, int ntiles, int Hq,
                             int Hkv, int D, float scale, int window, float softcap,
                             __nv_bfloat16 *ob, cudaStream_t s) {
    if (ntiles <= 0) return cudaSuccess;
    if (D == 64) return launch_mma<64>(out, q, k, v, seqs, tiles, ntiles, Hq, Hkv, scale, window, softcap, ob, s);
    if (D == 128) return launch_mma<128>(out, q, k, v, seqs, tiles, ntiles, Hq, Hkv, scale, window, softcap, ob, s);
    if (D == 256) return launch_mma<256>(out, q, k, v, seqs, tiles, ntiles, Hq, Hkv, scale, window, softcap, ob, s);
    return cudaErrorInvalidValue;
}
