/* attention_bwd_mma.cu — the attention backward of --gemm bf16 on tensor cores, fused
 * (FlashAttention-2's deterministic scheme with mma.sync m16n8k16): nothing of size [T, T] is ever
 * stored; P and dS are recomputed tile by tile from q, k and each row's logsumexp. Three kernels:
 *   prep  — a block per (64 queries, head): lse_i by the forward's online max/sum over S = Q K^T
 *           (without the P.V product), and delta_i = dO_i . O_i (float32, from the forward's O);
 *   dQ    — a block per (64 queries, head): walks the keys its queries see, S = Q K^T,
 *           dP = dO V^T, dS = P (dP - delta) cg, dQ += dS K; written once (times scale);
 *   dK/dV — a block per (64 keys, kv head): walks every query head of its group and the queries
 *           that see its keys, S^T = K Q^T, dP^T = V dO^T, dS^T, dV += P^T dO, dK += dS^T Q;
 *           accumulated in registers across all of them, written once (dK times scale).
 * Each block owns the rows it writes, and walks its loops in a fixed order: no atomics, the same
 * bits on every run. Operands are rounded to bf16 as they are staged in shared memory (P and dS
 * as they become A fragments); products accumulate in float32; softmax math in float32, in log2
 * units (x2 = x log2 e, lse2 = lse log2 e: exp2 is what the hardware has).
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16 with .bf16 inputs, g = lane/4, c = lane%4):
 *   A (16x16, row major): a0 = A[g][2c..2c+1], a1 = A[g+8][2c..], a2 = A[g][2c+8..], a3 = A[g+8][2c+8..]
 *   B (16x8, k x n):      b0 = B[2c..2c+1][g], b1 = B[2c+8..2c+9][g]
 *   C (16x8, float32):    c0,c1 = C[g][2c..2c+1], c2,c3 = C[g+8][2c..2c+1]
 * so the C fragments of two neighbouring 8-column tiles of a 16-row product are the A fragment of
 * the next product over those 16 columns (attention_mma.cu's S -> P reuse), here for dS (dQ) and
 * for P^T, dS^T (dV, dK). Every operand tile is staged row-major [rows][D + 8] bf16 (16 bytes of
 * padding: the 8 row addresses of an 8x8 ldmatrix hit 32 distinct banks) and read three ways:
 *   as A (its rows are the product's rows):        off_a,  ldmatrix x4
 *   as B = tile^T (its rows are the product's n):  off_bt, ldmatrix x4 (Q K^T's K)
 *   as B = tile (its rows are the reduction k):    off_bn, ldmatrix x4 .trans (P V's V)
 *
 * Tiles (kg_attention_backward_mma picks them per head dim; no accumulator set above ~160 floats a
 * thread, ptxas: no spills): prep and dQ take 64 queries a block (4 warps x 16 rows), dK/dV 64 keys
 * (warps of 16 keys). D 64: dQ walks keys 64 at a time, dK/dV queries 64 at a time; D 128: 64 and
 * 32 (dK + dV accumulators alone are 64 + 64 floats a thread); D 256: 32 and 32, and the dK/dV
 * kernel runs 8 warps, two per 16 keys, each accumulating half of the dims (both warps of a pair
 * compute the same S^T and dP^T: the price of 64 + 64 accumulator floats instead of 128 + 128). */
#include "grad.cuh"
#include "kernels.cuh"
#include <cuda_bf16.h>
#include <math.h>

#define BWD_LOG2E 1.4426950408889634f
#define TQ 64 /* queries of a prep / dQ block; keys of a dK/dV block */

typedef struct bwd_args {
    int T, H, KVH, window;
    float scale, softcap;
} bwd_args;

static __device__ __forceinline__ uint32_t bw_pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

static __device__ __forceinline__ void bw_ldsm(uint32_t *r, const void *p) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

static __device__ __forceinline__ void bw_ldsm_t(uint32_t *r, const void *p) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}

static __device__ __forceinline__ void bw_mma(float *d, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Per-lane ldmatrix addresses (element offsets into a tile of row stride LD):
 * A of rows r0..r0+15, k columns kc*16..: lanes 0-15 rows 0-15 at column 0, lanes 16-31 at 8,
 *   so matrices 0..3 = (rows 0-7, k 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15) = a0..a3. */
static __device__ __forceinline__ int off_a(int lane, int LD) { return (lane & 15) * LD + (lane >> 4) * 8; }
/* B = tile^T for two 8-column n tiles (tile rows n0..n0+15), k columns kc*16..: matrices
 *   (rows 0-7, k 0-7), (0-7, 8-15), (8-15, 0-7), (8-15, 8-15) = b0, b1 of n tile 0, b0, b1 of n
 *   tile 1 (non-transposed: lane gets row g, columns 2c.. = B[2c..][g]). */
static __device__ __forceinline__ int off_bt(int lane, int LD) {
    return ((lane >> 4) * 8 + (lane & 7)) * LD + ((lane >> 3) & 1) * 8;
}
/* B = tile for k rows kc*16..+15 and two 8-column n tiles (columns n0..n0+15): matrices
 *   (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15), transposed on load
 *   (lane gets tile rows 2c.., column g = B[2c..][g]) = b0, b1 of n tile 0, b0, b1 of n tile 1. */
static __device__ __forceinline__ int off_bn(int lane, int LD) {
    return ((lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8;
}

/* rows r < nvalid of a bf16 tile (src row 0, row stride ld, 16-byte aligned rows) -> smem
 * [rows][LD] by cp.async (16 bytes a copy, nothing through registers); the rest zeros. The caller
 * commits the group and waits for it before a __syncthreads: the next tile's copies run while the
 * warps compute on the current one (the float32 loads and conversions staged in the loop, each
 * waited for, left the tensor cores idle half the time). */
static __device__ __forceinline__ void cp16(void *dst, const void *src) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(src));
}
static __device__ __forceinline__ void cp4(void *dst, const void *src) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(a), "l"(src));
}
static __device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
static __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

template <int D, int LD, int NT>
static __device__ __forceinline__ void stage(__nv_bfloat16 *dst, const __nv_bfloat16 *src, size_t ld, int rows,
                                             int nvalid, int tid) {
    for (int i = tid; i < rows * (D / 8); i += NT) {
        int r = i / (D / 8), d = (i - r * (D / 8)) * 8;
        if (r < nvalid) cp16(dst + r * LD + d, src + (size_t)r * ld + d);
        else *(uint4 *)(dst + r * LD + d) = make_uint4(0, 0, 0, 0);
    }
}

/* n < nvalid floats of src (the rows' lse2 / delta) -> dst[n] by cp.async, the rest zeros */
static __device__ __forceinline__ void stage_vec(float *dst, const float *src, size_t stride, int n, int nvalid,
                                                 int tid) {
    if (tid < n) {
        if (tid < nvalid) cp4(dst + tid, src + (size_t)tid * stride);
        else dst[tid] = 0.0f;
    }
}

/* the score of the raw product dot in log2 units, and the softcap's derivative dx/d(scale dot) */
static __device__ __forceinline__ float score2(float dot, float scale, float softcap, float *cg) {
    if (softcap > 0) {
        float t = tanhf(dot * scale / softcap);
        *cg = 1.0f - t * t;
        return softcap * t * BWD_LOG2E;
    }
    *cg = 1.0f;
    return dot * scale * BWD_LOG2E;
}

/* grid (B * ceil(T/64), H), 128 threads. lse2 [B*T, H] = log2 sum_j exp2(x2_ij);
 * delta [B*T, H] = dO_i . O_i. q, k: the bf16 copies. Key tiles double-buffered. */
template <int D>
__global__ void __launch_bounds__(128) bwd_prep_k(float *__restrict__ lse2, float *__restrict__ delta,
                                                  const float *__restrict__ dout, const float *__restrict__ out,
                                                  const __nv_bfloat16 *__restrict__ q,
                                                  const __nv_bfloat16 *__restrict__ k, bwd_args a) {
    constexpr int LD = D + 8, BK = 64;
    extern __shared__ __align__(16) unsigned char smraw[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)smraw; /* [TQ][LD] */
    __nv_bfloat16 *Ks = Qs + TQ * LD;            /* [2][BK][LD] */
    const int tpb = (a.T + TQ - 1) / TQ, b = blockIdx.x / tpb;
    const int t0 = (tpb - 1 - (int)(blockIdx.x % tpb)) * TQ; /* the longest key walks first */
    const int h = blockIdx.y, kh = h / (a.H / a.KVH);
    const int ldq = a.H * D, ldk = a.KVH * D;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
    const int nq = min(TQ, a.T - t0);
    const size_t row0 = (size_t)b * a.T;
    const int p_last = t0 + nq - 1;
    const int kmin = a.window > 0 && t0 - a.window + 1 > 0 ? t0 - a.window + 1 : 0, kmax = p_last;
    const __nv_bfloat16 *kb = k + row0 * ldk + kh * D;
    stage<D, LD, 128>(Qs, q + (row0 + t0) * ldq + h * D, ldq, TQ, nq, tid);
    stage<D, LD, 128>(Ks, kb + (size_t)kmin * ldk, ldk, BK, kmax - kmin + 1, tid);
    cp_commit();
    /* delta from the float32 tensors while the copies run: a warp per row, lanes over d */
    for (int rr = 0; rr < 16; rr++) {
        int r = warp * 16 + rr;
        if (r >= nq) break; /* uniform in the warp */
        const float *o = out + (row0 + t0 + r) * ldq + h * D, *d = dout + (row0 + t0 + r) * ldq + h * D;
        float acc = 0.0f;
        for (int x = lane; x < D; x += 32) acc = fmaf(o[x], d[x], acc);
        for (int m = 16; m; m >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, m);
        if (!lane) delta[(row0 + t0 + r) * a.H + h] = acc;
    }
    int pos[2], lo[2];
    float m_i[2] = {-INFINITY, -INFINITY}, l_i[2] = {0.0f, 0.0f};
    for (int s = 0; s < 2; s++) {
        pos[s] = t0 + warp * 16 + g + 8 * s;
        lo[s] = a.window > 0 ? pos[s] - a.window + 1 : 0;
    }
    const __nv_bfloat16 *qw = Qs + warp * 16 * LD + off_a(lane, LD);
    const int obt = off_bt(lane, LD);
    for (int j0 = kmin, it = 0; j0 <= kmax; j0 += BK, it++) {
        const int bf = it & 1;
        if (j0 + BK <= kmax) {
            stage<D, LD, 128>(Ks + (bf ^ 1) * BK * LD, kb + (size_t)(j0 + BK) * ldk, ldk, BK, kmax - j0 - BK + 1, tid);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const __nv_bfloat16 *kw = Ks + bf * BK * LD + obt;
        float s[BK / 8][4];
#pragma unroll
        for (int n = 0; n < BK / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kc = 0; kc < D / 16; kc++) {
            uint32_t af[4];
            bw_ldsm(af, qw + kc * 16);
#pragma unroll
            for (int n = 0; n < BK / 8; n += 2) {
                uint32_t bfr[4];
                bw_ldsm(bfr, kw + n * 8 * LD + kc * 16);
                bw_mma(s[n], af, bfr[0], bfr[1]);
                bw_mma(s[n + 1], af, bfr[2], bfr[3]);
            }
        }
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int n = 0; n < BK / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int rs = e >> 1, key = j0 + n * 8 + 2 * c + (e & 1);
                float cg, x = score2(s[n][e], a.scale, a.softcap, &cg);
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
        for (int n = 0; n < BK / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int rs = e >> 1;
                rsum[rs] += s[n][e] == -INFINITY ? 0.0f : exp2f(s[n][e] - m_i[rs]);
            }
#pragma unroll
        for (int rs = 0; rs < 2; rs++) {
            rsum[rs] += __shfl_xor_sync(0xffffffffu, rsum[rs], 1);
            rsum[rs] += __shfl_xor_sync(0xffffffffu, rsum[rs], 2);
            l_i[rs] = l_i[rs] * alpha[rs] + rsum[rs];
        }
        __syncthreads(); /* every warp is done with this buffer before the next copy into it */
    }
    /* every row of the sequence sees its own key: l >= 1, m finite */
    if (c == 0)
        for (int rs = 0; rs < 2; rs++) {
            int r = warp * 16 + g + 8 * rs;
            if (r < nq) lse2[(row0 + t0 + r) * a.H + h] = m_i[rs] + log2f(l_i[rs]);
        }
}

/* grid (B * ceil(T/64), H), 128 threads; BK keys a tile, NB buffers of K and V tiles (2: the
 * next tile's copies overlap this one's products). dq [N, H*D] = (set) or += scale dS K */
template <int D, int BK, int NB>
__global__ void __launch_bounds__(128) bwd_dq_k(float *__restrict__ dq, const float *__restrict__ lse2,
                                                const float *__restrict__ delta,
                                                const __nv_bfloat16 *__restrict__ dout,
                                                const __nv_bfloat16 *__restrict__ q,
                                                const __nv_bfloat16 *__restrict__ k,
                                                const __nv_bfloat16 *__restrict__ v, bwd_args a, int set) {
    constexpr int LD = D + 8;
    extern __shared__ __align__(16) unsigned char smraw[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)smraw; /* [TQ][LD] */
    __nv_bfloat16 *dOs = Qs + TQ * LD;           /* [TQ][LD] */
    __nv_bfloat16 *Ks = dOs + TQ * LD;           /* [NB][BK][LD] */
    __nv_bfloat16 *Vs = Ks + NB * BK * LD;       /* [NB][BK][LD] */
    const int tpb = (a.T + TQ - 1) / TQ, b = blockIdx.x / tpb;
    const int t0 = (tpb - 1 - (int)(blockIdx.x % tpb)) * TQ; /* the longest key walks first */
    const int h = blockIdx.y, kh = h / (a.H / a.KVH);
    const int ldq = a.H * D, ldk = a.KVH * D;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
    const int nq = min(TQ, a.T - t0);
    const size_t row0 = (size_t)b * a.T;
    const int p_last = t0 + nq - 1;
    const int kmin = a.window > 0 && t0 - a.window + 1 > 0 ? t0 - a.window + 1 : 0, kmax = p_last;
    const __nv_bfloat16 *kb = k + row0 * ldk + kh * D, *vb = v + row0 * ldk + kh * D;
    stage<D, LD, 128>(Qs, q + (row0 + t0) * ldq + h * D, ldq, TQ, nq, tid);
    stage<D, LD, 128>(dOs, dout + (row0 + t0) * ldq + h * D, ldq, TQ, nq, tid);
    stage<D, LD, 128>(Ks, kb + (size_t)kmin * ldk, ldk, BK, kmax - kmin + 1, tid);
    stage<D, LD, 128>(Vs, vb + (size_t)kmin * ldk, ldk, BK, kmax - kmin + 1, tid);
    cp_commit();
    /* this thread's two rows (g and g+8 of the warp's 16); rows past the sequence see nothing */
    int pos[2], lo[2];
    bool valid[2];
    float ls[2], dl[2];
    for (int s = 0; s < 2; s++) {
        int r = warp * 16 + g + 8 * s;
        pos[s] = t0 + r;
        lo[s] = a.window > 0 ? pos[s] - a.window + 1 : 0;
        valid[s] = r < nq;
        ls[s] = valid[s] ? lse2[(row0 + pos[s]) * a.H + h] : 0.0f;
        dl[s] = valid[s] ? delta[(row0 + pos[s]) * a.H + h] : 0.0f;
    }
    float acc[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
    const __nv_bfloat16 *qw = Qs + warp * 16 * LD + off_a(lane, LD), *ow = dOs + warp * 16 * LD + off_a(lane, LD);
    const int obt = off_bt(lane, LD), obn = off_bn(lane, LD);
    for (int j0 = kmin, it = 0; j0 <= kmax; j0 += BK, it++) {
        const int bf = NB == 2 ? (it & 1) : 0;
        const bool more = j0 + BK <= kmax;
        if (NB == 2 && more) {
            const size_t o = (size_t)(bf ^ 1) * BK * LD;
            stage<D, LD, 128>(Ks + o, kb + (size_t)(j0 + BK) * ldk, ldk, BK, kmax - j0 - BK + 1, tid);
            stage<D, LD, 128>(Vs + o, vb + (size_t)(j0 + BK) * ldk, ldk, BK, kmax - j0 - BK + 1, tid);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const __nv_bfloat16 *Kc = Ks + (size_t)bf * BK * LD, *Vc = Vs + (size_t)bf * BK * LD;
        /* S = Q K^T and dP = dO V^T [16 x BK] for this warp's rows */
        float s[BK / 8][4], dp[BK / 8][4];
#pragma unroll
        for (int n = 0; n < BK / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.0f;
#pragma unroll
        for (int kc = 0; kc < D / 16; kc++) {
            uint32_t aq[4], ao[4];
            bw_ldsm(aq, qw + kc * 16);
            bw_ldsm(ao, ow + kc * 16);
#pragma unroll
            for (int n = 0; n < BK / 8; n += 2) {
                uint32_t bfr[4];
                bw_ldsm(bfr, Kc + obt + n * 8 * LD + kc * 16);
                bw_mma(s[n], aq, bfr[0], bfr[1]);
                bw_mma(s[n + 1], aq, bfr[2], bfr[3]);
                bw_ldsm(bfr, Vc + obt + n * 8 * LD + kc * 16);
                bw_mma(dp[n], ao, bfr[0], bfr[1]);
                bw_mma(dp[n + 1], ao, bfr[2], bfr[3]);
            }
        }
        /* dS = P (dP - delta) cg into s; masked entries exactly 0 */
#pragma unroll
        for (int n = 0; n < BK / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int rs = e >> 1, key = j0 + n * 8 + 2 * c + (e & 1);
                float cg, x = score2(s[n][e], a.scale, a.softcap, &cg);
                bool ok = valid[rs] && key <= pos[rs] && key >= lo[rs] && key <= kmax;
                float p = ok ? exp2f(x - ls[rs]) : 0.0f;
                s[n][e] = ok ? p * (dp[n][e] - dl[rs]) * cg : 0.0f;
            }
        /* dQ[16 x D] += dS[16 x BK] K[BK x D]: dS's A fragments are its C fragments */
#pragma unroll
        for (int kc = 0; kc < BK / 16; kc++) {
            uint32_t af[4];
            af[0] = bw_pack(s[2 * kc][0], s[2 * kc][1]);
            af[1] = bw_pack(s[2 * kc][2], s[2 * kc][3]);
            af[2] = bw_pack(s[2 * kc + 1][0], s[2 * kc + 1][1]);
            af[3] = bw_pack(s[2 * kc + 1][2], s[2 * kc + 1][3]);
            const __nv_bfloat16 *kr = Kc + kc * 16 * LD + obn;
#pragma unroll
            for (int j = 0; j < D / 8; j += 2) {
                uint32_t bfr[4];
                bw_ldsm_t(bfr, kr + j * 8);
                bw_mma(acc[j], af, bfr[0], bfr[1]);
                bw_mma(acc[j + 1], af, bfr[2], bfr[3]);
            }
        }
        __syncthreads(); /* every warp is done with this buffer before the next copy into it */
        if (NB == 1 && more) {
            stage<D, LD, 128>(Ks, kb + (size_t)(j0 + BK) * ldk, ldk, BK, kmax - j0 - BK + 1, tid);
            stage<D, LD, 128>(Vs, vb + (size_t)(j0 + BK) * ldk, ldk, BK, kmax - j0 - BK + 1, tid);
            cp_commit();
        }
    }
#pragma unroll
    for (int rs = 0; rs < 2; rs++) {
        if (!valid[rs]) continue;
        float *row = dq + (row0 + pos[rs]) * ldq + h * D + 2 * c;
#pragma unroll
        for (int j = 0; j < D / 8; j++) {
            float2 y = make_float2(a.scale * acc[j][2 * rs], a.scale * acc[j][2 * rs + 1]);
            float2 *p = (float2 *)(row + j * 8);
            if (!set) { float2 o = *p; y.x += o.x; y.y += o.y; }
            *p = y;
        }
    }
}

/* grid (B * ceil(T/64), KVH), 128 * (D / DW) threads; BQ queries a tile, NB buffers of the
 * query tiles (Q, dO, their lse2 and delta). Warp w owns keys (w % 4) * 16 .. +15 of the block's
 * 64 and dims (w / 4) * DW .. +DW-1 of dK, dV. The tiles walk every query head of the kv head,
 * then the queries that see the block's keys, as one sequence.
 * dk = (set) or += scale dS^T Q; dv = (set) or += P^T dO (either may be NULL) */
template <int D, int DW, int BQ, int NB>
__global__ void __launch_bounds__(128 * (D / DW)) bwd_dkdv_k(float *__restrict__ dk, float *__restrict__ dv,
                                                             const float *__restrict__ lse2,
                                                             const float *__restrict__ delta,
                                                             const __nv_bfloat16 *__restrict__ dout,
                                                             const __nv_bfloat16 *__restrict__ q,
                                                             const __nv_bfloat16 *__restrict__ k,
                                                             const __nv_bfloat16 *__restrict__ v, bwd_args a,
                                                             int set) {
    constexpr int LD = D + 8, NT = 128 * (D / DW);
    extern __shared__ __align__(16) unsigned char smraw[];
    __nv_bfloat16 *Ks = (__nv_bfloat16 *)smraw; /* [TQ][LD] */
    __nv_bfloat16 *Vs = Ks + TQ * LD;            /* [TQ][LD] */
    __nv_bfloat16 *Qs = Vs + TQ * LD;            /* [NB][BQ][LD] */
    __nv_bfloat16 *dOs = Qs + NB * BQ * LD;      /* [NB][BQ][LD] */
    float *ls_s = (float *)(dOs + NB * BQ * LD); /* [NB][BQ] lse2 of the tile's queries */
    float *dl_s = ls_s + NB * BQ;                /* [NB][BQ] delta */
    const int tpb = (a.T + TQ - 1) / TQ, b = blockIdx.x / tpb;
    const int k0 = (int)(blockIdx.x % tpb) * TQ; /* the first key tiles have the longest walks */
    const int kh = blockIdx.y, rep = a.H / a.KVH;
    const int ldq = a.H * D, ldk = a.KVH * D;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
    const int kw = (warp & 3) * 16, dh0 = (warp >> 2) * DW;
    const int nk = min(TQ, a.T - k0);
    const size_t row0 = (size_t)b * a.T;
    /* the queries that see a key of this tile: from its first key to its last + window - 1 */
    const int klast = k0 + nk - 1;
    const int qmax = a.window > 0 && a.window < a.T - klast ? klast + a.window - 1 : a.T - 1;
    const int nti = (qmax - k0) / BQ + 1, ntiles = rep * nti;
    stage<D, LD, NT>(Ks, k + (row0 + k0) * ldk + kh * D, ldk, TQ, nk, tid);
    stage<D, LD, NT>(Vs, v + (row0 + k0) * ldk + kh * D, ldk, TQ, nk, tid);
    /* query tile t: head kh * rep + t / nti, queries i0 = k0 + (t % nti) * BQ .. */
#define TILE_ISSUE(t_, buf_)                                                                            \
    do {                                                                                                \
        const int h_ = kh * rep + (t_) / nti, i0_ = k0 + ((t_) % nti) * BQ, nv_ = qmax - i0_ + 1;       \
        const size_t o_ = (size_t)(buf_) * BQ * LD;                                                     \
        stage<D, LD, NT>(Qs + o_, q + (row0 + i0_) * ldq + h_ * D, ldq, BQ, nv_, tid);                  \
        stage<D, LD, NT>(dOs + o_, dout + (row0 + i0_) * ldq + h_ * D, ldq, BQ, nv_, tid);              \
        stage_vec(ls_s + (buf_) * BQ, lse2 + (row0 + i0_) * a.H + h_, a.H, BQ, nv_, tid);               \
        stage_vec(dl_s + (buf_) * BQ, delta + (row0 + i0_) * a.H + h_, a.H, BQ, nv_, tid);              \
    } while (0)
    TILE_ISSUE(0, 0);
    cp_commit();
    int key[2];
    for (int s = 0; s < 2; s++) key[s] = k0 + kw + g + 8 * s;
    float ak[DW / 8][4], av[DW / 8][4];
#pragma unroll
    for (int j = 0; j < DW / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) ak[j][e] = av[j][e] = 0.0f;
    const __nv_bfloat16 *kwp = Ks + kw * LD + off_a(lane, LD), *vwp = Vs + kw * LD + off_a(lane, LD);
    const int obt = off_bt(lane, LD), obn = off_bn(lane, LD) + dh0;
    for (int t = 0; t < ntiles; t++) {
        const int bf = NB == 2 ? (t & 1) : 0;
        const bool more = t + 1 < ntiles;
        if (NB == 2 && more) {
            TILE_ISSUE(t + 1, bf ^ 1);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const int i0 = k0 + (t % nti) * BQ;
        const __nv_bfloat16 *Qc = Qs + (size_t)bf * BQ * LD, *dOc = dOs + (size_t)bf * BQ * LD;
        const float *lsc = ls_s + bf * BQ, *dlc = dl_s + bf * BQ;
        /* S^T = K Q^T and dP^T = V dO^T [16 keys x BQ queries] for this warp's keys */
        float st[BQ / 8][4], dpt[BQ / 8][4];
#pragma unroll
        for (int n = 0; n < BQ / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) st[n][e] = dpt[n][e] = 0.0f;
#pragma unroll
        for (int kc = 0; kc < D / 16; kc++) {
            uint32_t akf[4], avf[4];
            bw_ldsm(akf, kwp + kc * 16);
            bw_ldsm(avf, vwp + kc * 16);
#pragma unroll
            for (int n = 0; n < BQ / 8; n += 2) {
                uint32_t bfr[4];
                bw_ldsm(bfr, Qc + obt + n * 8 * LD + kc * 16);
                bw_mma(st[n], akf, bfr[0], bfr[1]);
                bw_mma(st[n + 1], akf, bfr[2], bfr[3]);
                bw_ldsm(bfr, dOc + obt + n * 8 * LD + kc * 16);
                bw_mma(dpt[n], avf, bfr[0], bfr[1]);
                bw_mma(dpt[n + 1], avf, bfr[2], bfr[3]);
            }
        }
        /* P^T into st, dS^T into dpt; masked entries (and queries past qmax) exactly 0 */
#pragma unroll
        for (int n = 0; n < BQ / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int rs = e >> 1, col = n * 8 + 2 * c + (e & 1), qi = i0 + col;
                float cg, x = score2(st[n][e], a.scale, a.softcap, &cg);
                bool ok = qi <= qmax && key[rs] <= qi && (a.window <= 0 || qi - key[rs] < a.window);
                float p = ok ? exp2f(x - lsc[col]) : 0.0f;
                st[n][e] = p;
                dpt[n][e] = ok ? p * (dpt[n][e] - dlc[col]) * cg : 0.0f;
            }
        /* dV[16 x DW] += P^T[16 x BQ] dO[BQ x DW]; dK[16 x DW] += dS^T[16 x BQ] Q[BQ x DW] */
#pragma unroll
        for (int kc = 0; kc < BQ / 16; kc++) {
            uint32_t ap[4], ad[4];
            ap[0] = bw_pack(st[2 * kc][0], st[2 * kc][1]);
            ap[1] = bw_pack(st[2 * kc][2], st[2 * kc][3]);
            ap[2] = bw_pack(st[2 * kc + 1][0], st[2 * kc + 1][1]);
            ap[3] = bw_pack(st[2 * kc + 1][2], st[2 * kc + 1][3]);
            ad[0] = bw_pack(dpt[2 * kc][0], dpt[2 * kc][1]);
            ad[1] = bw_pack(dpt[2 * kc][2], dpt[2 * kc][3]);
            ad[2] = bw_pack(dpt[2 * kc + 1][0], dpt[2 * kc + 1][1]);
            ad[3] = bw_pack(dpt[2 * kc + 1][2], dpt[2 * kc + 1][3]);
            const int ro = kc * 16 * LD + obn;
#pragma unroll
            for (int j = 0; j < DW / 8; j += 2) {
                uint32_t bfr[4];
                bw_ldsm_t(bfr, dOc + ro + j * 8);
                bw_mma(av[j], ap, bfr[0], bfr[1]);
                bw_mma(av[j + 1], ap, bfr[2], bfr[3]);
                bw_ldsm_t(bfr, Qc + ro + j * 8);
                bw_mma(ak[j], ad, bfr[0], bfr[1]);
                bw_mma(ak[j + 1], ad, bfr[2], bfr[3]);
            }
        }
        __syncthreads(); /* every warp is done with this buffer before the next copy into it */
        if (NB == 1 && more) {
            TILE_ISSUE(t + 1, 0);
            cp_commit();
        }
    }
#undef TILE_ISSUE
#pragma unroll
    for (int rs = 0; rs < 2; rs++) {
        if (key[rs] > klast) continue;
        size_t o = (row0 + key[rs]) * ldk + kh * D + dh0 + 2 * c;
#pragma unroll
        for (int j = 0; j < DW / 8; j++) {
            if (dk) {
                float2 y = make_float2(a.scale * ak[j][2 * rs], a.scale * ak[j][2 * rs + 1]);
                float2 *p = (float2 *)(dk + o + j * 8);
                if (!set) { float2 x = *p; y.x += x.x; y.y += x.y; }
                *p = y;
            }
            if (dv) {
                float2 y = make_float2(av[j][2 * rs], av[j][2 * rs + 1]);
                float2 *p = (float2 *)(dv + o + j * 8);
                if (!set) { float2 x = *p; y.x += x.x; y.y += x.y; }
                *p = y;
            }
        }
    }
}

/* the kernels' shared memory above 48 KB is opted into once per instantiation */
template <typename K>
static cudaError_t smem_optin(K kern, size_t smem, int *done) {
    if (*done) return cudaSuccess;
    cudaError_t r = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (r == cudaSuccess) *done = 1;
    return r;
}

/* tiles: dQ's keys a tile (BK) and dK/dV's queries a tile (BQ) and dims a warp (DW) per head dim,
 * chosen so that no accumulator set passes ~160 floats a thread; NB 2 (double-buffered tiles)
 * where the shared memory still leaves two blocks an SM, else 1 */
template <int D, int BK, int DW, int BQ, int NB>
static cudaError_t launch_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out,
                              const __nv_bfloat16 *ob, const __nv_bfloat16 *qb, const __nv_bfloat16 *kb,
                              const __nv_bfloat16 *vb, float *lse2, float *delta, int B, bwd_args a, int set,
                              cudaStream_t s) {
    static int d0 = 0, d1 = 0, d2 = 0;
    const size_t es = sizeof(__nv_bfloat16), LD = D + 8;
    const size_t sm_prep = es * (TQ + 2 * 64) * LD;
    const size_t sm_dq = es * (2 * TQ + 2 * NB * BK) * LD;
    const size_t sm_kv = es * (2 * TQ + 2 * NB * BQ) * LD + sizeof(float) * 2 * NB * BQ;
    cudaError_t r;
    const int tpb = (a.T + TQ - 1) / TQ;
    if ((r = smem_optin(bwd_prep_k<D>, sm_prep, &d0)) != cudaSuccess) return r;
    bwd_prep_k<D><<<dim3((unsigned)(B * tpb), (unsigned)a.H), 128, sm_prep, s>>>(lse2, delta, dout, out, qb, kb, a);
    if ((r = cudaGetLastError()) != cudaSuccess) return r;
    if (dq) {
        if ((r = smem_optin(bwd_dq_k<D, BK, NB>, sm_dq, &d1)) != cudaSuccess) return r;
        bwd_dq_k<D, BK, NB><<<dim3((unsigned)(B * tpb), (unsigned)a.H), 128, sm_dq, s>>>(dq, lse2, delta, ob, qb,
                                                                                         kb, vb, a, set);
        if ((r = cudaGetLastError()) != cudaSuccess) return r;
    }
    if (dk || dv) {
        if ((r = smem_optin(bwd_dkdv_k<D, DW, BQ, NB>, sm_kv, &d2)) != cudaSuccess) return r;
        bwd_dkdv_k<D, DW, BQ, NB><<<dim3((unsigned)(B * tpb), (unsigned)a.KVH), 128 * (D / DW), sm_kv, s>>>(
            dk, dv, lse2, delta, ob, qb, kb, vb, a, set);
        if ((r = cudaGetLastError()) != cudaSuccess) return r;
    }
    return cudaSuccess;
}

int kg_attention_backward_mma_supports(int D) { return D == 64 || D == 128 || D == 256; }

cudaError_t kg_attention_backward_mma(float *dq, float *dk, float *dv, const float *dout, const float *out,
                                      const float *q, const float *k, const float *v, int B, int T, int H,
                                      int KVH, int D, float scale, float softcap, int window, int set,
                                      cudaStream_t s) {
    if (B <= 0 || T <= 0 || (!dq && !dk && !dv)) return cudaSuccess;
    if (!kg_attention_backward_mma_supports(D) || KVH <= 0 || H % KVH || !out || !dout || !q || !k || !v)
        return cudaErrorInvalidValue;
    bwd_args a = {T, H, KVH, window, scale, softcap};
    /* lse2 [B*T, H], delta [B*T, H], then the bf16 copies of q, dout [N, H*D] and k, v [N, KVH*D]
     * the tiles are copied from (once each, 16 bytes a copy) */
    char *buf = NULL;
    size_t n = (size_t)B * T * H, nq = (size_t)B * T * H * D, nk = (size_t)B * T * KVH * D;
    size_t bytes = sizeof(float) * 2 * n;
    bytes = (bytes + 255) & ~(size_t)255;
    size_t oq = bytes, oo = oq + ((2 * nq + 255) & ~(size_t)255), ok = oo + ((2 * nq + 255) & ~(size_t)255),
           ov = ok + ((2 * nk + 255) & ~(size_t)255), total = ov + 2 * nk;
    cudaError_t r = cudaMallocAsync((void **)&buf, total, s);
    if (r != cudaSuccess) return r;
    float *lse2 = (float *)buf, *delta = lse2 + n;
    __nv_bfloat16 *qb = (__nv_bfloat16 *)(buf + oq), *ob = (__nv_bfloat16 *)(buf + oo),
                  *kb = (__nv_bfloat16 *)(buf + ok), *vb = (__nv_bfloat16 *)(buf + ov);
    if ((r = k_to_bf16(qb, q, KDT_F32, nq, s)) == cudaSuccess && (r = k_to_bf16(ob, dout, KDT_F32, nq, s)) == cudaSuccess &&
        (r = k_to_bf16(kb, k, KDT_F32, nk, s)) == cudaSuccess && (r = k_to_bf16(vb, v, KDT_F32, nk, s)) == cudaSuccess) {
        if (D == 64) r = launch_bwd<64, 64, 64, 64, 2>(dq, dk, dv, dout, out, ob, qb, kb, vb, lse2, delta, B, a, set, s);
        else if (D == 128) r = launch_bwd<128, 64, 128, 32, 2>(dq, dk, dv, dout, out, ob, qb, kb, vb, lse2, delta, B, a, set, s);
        else r = launch_bwd<256, 32, 128, 32, 1>(dq, dk, dv, dout, out, ob, qb, kb, vb, lse2, delta, B, a, set, s);
    }
    cudaError_t f = cudaFreeAsync(buf, s);
    return r != cudaSuccess ? r : f;
}
