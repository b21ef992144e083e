/* attention.cu — causal GQA attention, flash style: a block takes 64 queries of one head and walks
 * the keys those queries may see (causal, sliding window) in tiles of 32, keeping a running max
 * and sum per query (online softmax) and the output in registers; no [T, Tk] matrix is ever
 * stored. float32 throughout (the CPU kernel's semantics: scores = q.k * scale, softcap, mask,
 * softmax, @ v).
 *
 * Threads: 256 = 16 row groups x 16 column groups. Thread (rg, cg) owns query rows 4rg..4rg+3;
 * for scores it owns keys cg and cg+16 of the tile, for the output dims cg + 16 i (i < DPER), so
 * neighbouring lanes touch neighbouring shared-memory words. Q and K tiles use a row stride of
 * D+1 floats (no bank conflicts when 16 lanes read 16 different keys at one d). */
#include "kernels.cuh"
#include <math.h>

#define BQ ATTN_BQ
#define BK 32

template <int DPER>
__global__ void __launch_bounds__(256) attn_k(float *__restrict__ out, const float *__restrict__ q,
                                              const float *__restrict__ k, const float *__restrict__ v,
                                              const attn_seq_d *__restrict__ seqs,
                                              const attn_tile_d *__restrict__ tiles, int Hq, int Hkv,
                                              int D, float scale, int window, float softcap) {
    constexpr int DP = DPER * 16;
    extern __shared__ float sm[];
    const int ld = D + 1;
    float *Qs = sm;               /* [BQ, ld] */
    float *Ks = Qs + BQ * ld;     /* [BK, ld] */
    float *Vs = Ks + BK * ld;     /* [BK, DP] */
    float *Ps = Vs + BK * DP;     /* [BQ, BK + 1] */
    const attn_tile_d tl = tiles[blockIdx.x];
    const attn_seq_d sq = seqs[tl.b];
    const int h = blockIdx.y, kh = h / (Hq / Hkv);
    const int ldq = Hq * D, ldk = Hkv * D;
    const int tid = threadIdx.x, rg = tid >> 4, cg = tid & 15;
    const int nq = min(BQ, sq.T - tl.t0);
    const float *qb = q + (size_t)(sq.qoff + tl.t0) * ldq + h * D;
    for (int i = tid; i < BQ * D; i += 256) {
        int r = i / D, d = i - r * D;
        Qs[r * ld + d] = r < nq ? qb[(size_t)r * ldq + d] : 0.0f;
    }
    const int p_first = sq.q0 + tl.t0, p_last = p_first + nq - 1;
    const int kmin = window > 0 && p_first - window + 1 > 0 ? p_first - window + 1 : 0;
    const int kmax = p_last; /* inclusive */
    const float *kb = k + sq.kbase + kh * D, *vb = v + sq.kbase + kh * D;
    float m_i[4], l_i[4], acc[4][DPER];
    int pos[4], lo[4];
#pragma unroll
    for (int rr = 0; rr < 4; rr++) {
        m_i[rr] = -INFINITY;
        l_i[rr] = 0.0f;
        pos[rr] = p_first + rg * 4 + rr;
        lo[rr] = window > 0 ? pos[rr] - window + 1 : 0;
#pragma unroll
        for (int i = 0; i < DPER; i++) acc[rr][i] = 0.0f;
    }
    for (int j0 = kmin; j0 <= kmax; j0 += BK) {
        __syncthreads();
        for (int i = tid; i < BK * D; i += 256) {
            int r = i / D, d = i - r * D, p = j0 + r;
            bool ok = p <= kmax;
            Ks[r * ld + d] = ok ? kb[(size_t)p * ldk + d] : 0.0f;
            Vs[r * DP + d] = ok ? vb[(size_t)p * ldk + d] : 0.0f;
        }
        __syncthreads();
        float s[4][2];
#pragma unroll
        for (int rr = 0; rr < 4; rr++) s[rr][0] = s[rr][1] = 0.0f;
        const float *q0 = Qs + (rg * 4) * ld, *k0 = Ks + cg * ld, *k1 = Ks + (cg + 16) * ld;
        for (int d = 0; d < D; d++) {
            float a = k0[d], b = k1[d];
#pragma unroll
            for (int rr = 0; rr < 4; rr++) {
                float qv = q0[rr * ld + d];
                s[rr][0] = fmaf(qv, a, s[rr][0]);
                s[rr][1] = fmaf(qv, b, s[rr][1]);
            }
        }
#pragma unroll
        for (int rr = 0; rr < 4; rr++) {
            int row = rg * 4 + rr;
            float p2[2];
            float mx = -INFINITY;
#pragma unroll
            for (int cc = 0; cc < 2; cc++) {
                int key = j0 + cg + 16 * cc;
                float x = s[rr][cc] * scale;
                if (softcap > 0) x = softcap * tanhf(x / softcap);
                bool ok = row < nq && key <= pos[rr] && key >= lo[rr] && key <= kmax;
                p2[cc] = ok ? x : -INFINITY;
                mx = fmaxf(mx, p2[cc]);
            }
#pragma unroll
            for (int off = 8; off; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            float mnew = fmaxf(m_i[rr], mx);
            float alpha = mnew == -INFINITY ? 1.0f : __expf(m_i[rr] - mnew);
            float e0 = p2[0] == -INFINITY ? 0.0f : expf(p2[0] - mnew);
            float e1 = p2[1] == -INFINITY ? 0.0f : expf(p2[1] - mnew);
            float rs = e0 + e1;
#pragma unroll
            for (int off = 8; off; off >>= 1) rs += __shfl_xor_sync(0xffffffffu, rs, off);
            l_i[rr] = l_i[rr] * alpha + rs;
            m_i[rr] = mnew;
#pragma unroll
            for (int i = 0; i < DPER; i++) acc[rr][i] *= alpha;
            Ps[row * (BK + 1) + cg] = e0;
            Ps[row * (BK + 1) + cg + 16] = e1;
        }
        __syncthreads();
        const int nk = min(BK, kmax - j0 + 1);
        for (int j = 0; j < nk; j++) {
            float vv[DPER];
#pragma unroll
            for (int i = 0; i < DPER; i++) vv[i] = Vs[j * DP + cg + 16 * i];
#pragma unroll
            for (int rr = 0; rr < 4; rr++) {
                float pp = Ps[(rg * 4 + rr) * (BK + 1) + j];
#pragma unroll
                for (int i = 0; i < DPER; i++) acc[rr][i] = fmaf(pp, vv[i], acc[rr][i]);
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < 4; rr++) {
        int row = rg * 4 + rr;
        if (row >= nq) continue;
        float inv = 1.0f / l_i[rr];
        float *o = out + (size_t)(sq.qoff + tl.t0 + row) * ldq + h * D;
#pragma unroll
        for (int i = 0; i < DPER; i++) {
            int d = cg + 16 * i;
            if (d < D) o[d] = acc[rr][i] * inv;
        }
    }
}

template <int DPER>
static cudaError_t launch(float *out, const float *q, const float *k, const float *v,
                          const attn_seq_d *seqs, const attn_tile_d *tiles, int ntiles, int Hq,
                          int Hkv, int D, float scale, int window, float softcap, cudaStream_t s) {
    constexpr int DP = DPER * 16;
    size_t smem = sizeof(float) * ((size_t)BQ * (D + 1) + (size_t)BK * (D + 1) + (size_t)BK * DP +
                                   (size_t)BQ * (BK + 1));
    static size_t set = 0;
    if (smem > set) {
        cudaError_t r = cudaFuncSetAttribute(attn_k<DPER>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (r != cudaSuccess) return r;
        set = smem;
    }
    dim3 grid((unsigned)ntiles, (unsigned)Hq);
    attn_k<DPER><<<grid, 256, smem, s>>>(out, q, k, v, seqs, tiles, Hq, Hkv, D, scale, window, softcap);
    return cudaGetLastError();
}

cudaError_t k_attention(float *out, const float *q, const float *k, const float *v,
                        const attn_seq_d *seqs, const attn_tile_d *tiles, int ntiles, int Hq,
                        int Hkv, int D, float scale, int window, float softcap, cudaStream_t s) {
    if (ntiles <= 0) return cudaSuccess;
    if (D <= 16) return launch<1>(out, q, k, v, seqs, tiles, ntiles, Hq, Hkv, D, scale, window, softcap, s);
    if (D <= 32) return launch<2>(out, q, k, v, seqs, tiles, ntiles, Hq, Hkv, D, scale, window, softcap, s);
    if (D <= 64) return launch<4>(out, q, k, v, seqs, tiles, ntiles, Hq, Hkv, D, scale, window, softcap, s);
    if (D <= 128) return launch<8>(out, q, k, v, seqs, tiles, ntiles, Hq, Hkv, D, scale, window, softcap, s);
    if (D <= 256) return launch<16>(out, q, k, v, seqs, tiles, ntiles, Hq, Hkv, D, scale, window, softcap, s);
    return cudaErrorInvalidValue;
}
