/* attention_bwd.cu — the backward of causal GQA attention (grad_attn.c's math) flash style: no
 * [T, T] probability matrix is kept from the forward; P is recomputed tile by tile from q, k and
 * each query row's logsumexp.
 *
 *   stats (if lse is not given) and dQ — a block per (32 queries, head): pass 1 walks the keys the
 *     queries see with an online softmax and gives lse_i and delta_i = sum_j P_ij dP_ij
 *     (dP = dO V^T); pass 2 recomputes P, dS = P (dP - delta) (times the softcap's derivative)
 *     and dQ += scale dS K.
 *   dK, dV — a block per (32 keys, kv head) walks every query head of its group and the queries
 *     that see its keys: dV += P^T dO, dK += scale dS^T Q. Each block owns its output rows: no
 *     atomics, the same bits on every run.
 *
 * Threads: 256 = 8 warps x 4 rows; the lane is the column (key, or query) of a 32-wide tile, so a
 * score is one lane's dot product over d with the row operand broadcast from shared memory and
 * the column operand at a row stride of D+1 floats (no bank conflicts). float32 throughout. */
#include "grad.cuh"
#include <math.h>

#define TB 32   /* rows (and columns) of a tile */
#define NW 8    /* warps; each owns TB / NW = 4 rows */
#define RPW (TB / NW)

struct abw {
    int T, H, KVH, D, window;
    float scale, softcap;
};

__device__ __forceinline__ float score_of(float dot, const abw &a, float *raw) {
    float x = dot * a.scale;
    *raw = x;
    if (a.softcap > 0) x = a.softcap * tanhf(x / a.softcap);
    return x;
}
__device__ __forceinline__ float cap_grad(float raw, const abw &a) {
    if (a.softcap <= 0) return 1.0f;
    float t = tanhf(raw / a.softcap);
    return 1.0f - t * t;
}
__device__ __forceinline__ bool visible(int i, int j, int window) {
    return j <= i && (window <= 0 || i - j < window);
}

/* grid (B * ceil(T/TB), H) */
template <int DPER>
__global__ void __launch_bounds__(256) attn_bwd_dq_k(float *dq, float *lse_out, float *delta_out,
                                                     const float *lse_in, const float *dout,
                                                     const float *q, const float *k, const float *v,
                                                     abw a) {
    extern __shared__ float sm[];
    const int D = a.D, ld = D + 1, ldq = a.H * D, ldk = a.KVH * D;
    float *Qs = sm, *dOs = Qs + TB * D, *Ks = dOs + TB * D, *Vs = Ks + TB * ld, *dS = Vs + TB * ld;
    const int tpb = (a.T + TB - 1) / TB, b = blockIdx.x / tpb, t0 = (blockIdx.x % tpb) * TB;
    const int h = blockIdx.y, kh = h / (a.H / a.KVH);
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, tid = threadIdx.x;
    const int nq = min(TB, a.T - t0);
    const size_t row0 = (size_t)b * a.T;
    for (int i = tid; i < TB * D; i += 256) {
        int r = i / D, d = i - r * D;
        bool ok = r < nq;
        Qs[i] = ok ? q[(row0 + t0 + r) * ldq + h * D + d] : 0.0f;
        dOs[i] = ok ? dout[(row0 + t0 + r) * ldq + h * D + d] : 0.0f;
    }
    const int kmin = a.window > 0 ? max(0, t0 - a.window + 1) : 0, kmax = t0 + nq - 1;
    const float *kb = k + row0 * ldk + kh * D, *vb = v + row0 * ldk + kh * D;
    float lse[RPW], dl[RPW];
    for (int pass = lse_in ? 1 : 0; pass < 2; pass++) {
        float m[RPW], l[RPW], acc[RPW], dqa[RPW][DPER];
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) {
            m[rr] = -INFINITY; l[rr] = 0; acc[rr] = 0;
#pragma unroll
            for (int i = 0; i < DPER; i++) dqa[rr][i] = 0;
            if (pass == 1 && lse_in) {
                int r = w * RPW + rr;
                size_t gi = (row0 + t0 + min(r, nq - 1)) * a.H + h;
                lse[rr] = lse_in[gi];
                dl[rr] = delta_out[gi];
            }
        }
        for (int j0 = kmin; j0 <= kmax; j0 += TB) {
            __syncthreads();
            for (int i = tid; i < TB * D; i += 256) {
                int r = i / D, d = i - r * D, p = j0 + r;
                bool ok = p <= kmax;
                Ks[r * ld + d] = ok ? kb[(size_t)p * ldk + d] : 0.0f;
                Vs[r * ld + d] = ok ? vb[(size_t)p * ldk + d] : 0.0f;
            }
            __syncthreads();
            const int j = j0 + lane;
#pragma unroll
            for (int rr = 0; rr < RPW; rr++) {
                const int r = w * RPW + rr, i = t0 + r;
                const float *qr = Qs + r * D, *orow = dOs + r * D, *kr = Ks + lane * ld, *vr = Vs + lane * ld;
                float s = 0, dp = 0;
                for (int d = 0; d < D; d++) {
                    s = fmaf(qr[d], kr[d], s);
                    dp = fmaf(orow[d], vr[d], dp);
                }
                float raw, x = score_of(s, a, &raw);
                bool ok = r < nq && j <= kmax && visible(i, j, a.window);
                if (pass == 0) {
                    float xm = ok ? x : -INFINITY, tm = xm;
                    for (int o = 16; o; o >>= 1) tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, o));
                    float mn = fmaxf(m[rr], tm);
                    float al = mn == -INFINITY ? 1.0f : expf(m[rr] - mn);
                    float e = ok ? expf(x - mn) : 0.0f, ed = e * dp;
                    for (int o = 16; o; o >>= 1) {
                        e += __shfl_xor_sync(0xffffffffu, e, o);
                        ed += __shfl_xor_sync(0xffffffffu, ed, o);
                    }
                    l[rr] = l[rr] * al + e;
                    acc[rr] = acc[rr] * al + ed;
                    m[rr] = mn;
                } else {
                    float p = ok ? expf(x - lse[rr]) : 0.0f;
                    dS[r * (TB + 1) + lane] = ok ? p * (dp - dl[rr]) * cap_grad(raw, a) : 0.0f;
                }
            }
            if (pass == 1) {
                __syncthreads();
                const int nk = min(TB, kmax - j0 + 1);
                for (int jj = 0; jj < nk; jj++) {
                    float kv[DPER];
#pragma unroll
                    for (int i = 0; i < DPER; i++) {
                        int d = lane + 32 * i;
                        kv[i] = d < D ? Ks[jj * ld + d] : 0.0f;
                    }
#pragma unroll
                    for (int rr = 0; rr < RPW; rr++) {
                        float ds = dS[(w * RPW + rr) * (TB + 1) + jj];
#pragma unroll
                        for (int i = 0; i < DPER; i++) dqa[rr][i] = fmaf(ds, kv[i], dqa[rr][i]);
                    }
                }
            }
        }
        if (pass == 0) {
#pragma unroll
            for (int rr = 0; rr < RPW; rr++) {
                lse[rr] = m[rr] + logf(l[rr]);
                dl[rr] = acc[rr] / l[rr];
                int r = w * RPW + rr;
                if (lane == 0 && r < nq) {
                    size_t gi = (row0 + t0 + r) * a.H + h;
                    lse_out[gi] = lse[rr];
                    delta_out[gi] = dl[rr];
                }
            }
        } else if (dq) {
#pragma unroll
            for (int rr = 0; rr < RPW; rr++) {
                int r = w * RPW + rr;
                if (r >= nq) continue;
                float *o = dq + (row0 + t0 + r) * ldq + h * D;
#pragma unroll
                for (int i = 0; i < DPER; i++) {
                    int d = lane + 32 * i;
                    if (d < D) o[d] += a.scale * dqa[rr][i];
                }
            }
        }
    }
}

/* grid (B * ceil(T/TB), KVH) */
template <int DPER>
__global__ void __launch_bounds__(256) attn_bwd_dkv_k(float *dk, float *dv, const float *lse_g,
                                                      const float *delta_g, const float *dout,
                                                      const float *q, const float *k, const float *v,
                                                      abw a) {
    extern __shared__ float sm[];
    const int D = a.D, ld = D + 1, ldq = a.H * D, ldk = a.KVH * D;
    float *Ks = sm, *Vs = Ks + TB * D, *Qt = Vs + TB * D, *dOt = Qt + TB * ld, *Ps = dOt + TB * ld,
          *dSs = Ps + TB * (TB + 1), *ls = dSs + TB * (TB + 1), *dls = ls + TB;
    const int tpb = (a.T + TB - 1) / TB, b = blockIdx.x / tpb, j0 = (blockIdx.x % tpb) * TB;
    const int kh = blockIdx.y, rep = a.H / a.KVH;
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, tid = threadIdx.x;
    const int nk = min(TB, a.T - j0);
    const size_t row0 = (size_t)b * a.T;
    for (int i = tid; i < TB * D; i += 256) {
        int r = i / D, d = i - r * D;
        bool ok = r < nk;
        Ks[i] = ok ? k[(row0 + j0 + r) * ldk + kh * D + d] : 0.0f;
        Vs[i] = ok ? v[(row0 + j0 + r) * ldk + kh * D + d] : 0.0f;
    }
    const int qmin = j0, jlast = j0 + nk - 1;
    const int qmax = a.window > 0 ? min(a.T - 1, jlast + a.window - 1) : a.T - 1;
    float dka[RPW][DPER], dva[RPW][DPER];
#pragma unroll
    for (int rr = 0; rr < RPW; rr++)
#pragma unroll
        for (int i = 0; i < DPER; i++) dka[rr][i] = dva[rr][i] = 0;
    for (int h = kh * rep; h < (kh + 1) * rep; h++)
        for (int i0 = qmin; i0 <= qmax; i0 += TB) {
            const int nqt = min(TB, qmax - i0 + 1);
            __syncthreads();
            for (int i = tid; i < TB * D; i += 256) {
                int r = i / D, d = i - r * D;
                bool ok = r < nqt;
                size_t g = (row0 + i0 + r) * ldq + h * D + d;
                Qt[r * ld + d] = ok ? q[g] : 0.0f;
                dOt[r * ld + d] = ok ? dout[g] : 0.0f;
            }
            if (tid < TB) {
                bool ok = tid < nqt;
                size_t gi = (row0 + i0 + tid) * a.H + h;
                ls[tid] = ok ? lse_g[gi] : 0.0f;
                dls[tid] = ok ? delta_g[gi] : 0.0f;
            }
            __syncthreads();
            const int i = i0 + lane; /* this lane's query */
#pragma unroll
            for (int rr = 0; rr < RPW; rr++) {
                const int r = w * RPW + rr, j = j0 + r;
                const float *kr = Ks + r * D, *vr = Vs + r * D, *qr = Qt + lane * ld, *orow = dOt + lane * ld;
                float s = 0, dp = 0;
                for (int d = 0; d < D; d++) {
                    s = fmaf(kr[d], qr[d], s);
                    dp = fmaf(vr[d], orow[d], dp);
                }
                float raw, x = score_of(s, a, &raw);
                bool ok = r < nk && lane < nqt && visible(i, j, a.window);
                float p = ok ? expf(x - ls[lane]) : 0.0f;
                Ps[r * (TB + 1) + lane] = p;
                dSs[r * (TB + 1) + lane] = ok ? p * (dp - dls[lane]) * cap_grad(raw, a) : 0.0f;
            }
            __syncthreads();
            for (int ii = 0; ii < nqt; ii++) {
                float qv[DPER], ov[DPER];
#pragma unroll
                for (int c = 0; c < DPER; c++) {
                    int d = lane + 32 * c;
                    qv[c] = d < D ? Qt[ii * ld + d] : 0.0f;
                    ov[c] = d < D ? dOt[ii * ld + d] : 0.0f;
                }
#pragma unroll
                for (int rr = 0; rr < RPW; rr++) {
                    int r = w * RPW + rr;
                    float p = Ps[r * (TB + 1) + ii], ds = dSs[r * (TB + 1) + ii];
#pragma unroll
                    for (int c = 0; c < DPER; c++) {
                        dva[rr][c] = fmaf(p, ov[c], dva[rr][c]);
                        dka[rr][c] = fmaf(ds, qv[c], dka[rr][c]);
                    }
                }
            }
        }
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) {
        int r = w * RPW + rr;
        if (r >= nk) continue;
        size_t g = (row0 + j0 + r) * ldk + kh * D;
#pragma unroll
        for (int c = 0; c < DPER; c++) {
            int d = lane + 32 * c;
            if (d >= D) continue;
            if (dv) dv[g + d] += dva[rr][c];
            if (dk) dk[g + d] += a.scale * dka[rr][c];
        }
    }
}

template <int DPER>
static cudaError_t launch(float *dq, float *dk, float *dv, const float *dout, const float *q,
                          const float *k, const float *v, const float *lse, float *lse_s, float *dl_s,
                          int B, const abw &a, cudaStream_t s) {
    const int D = a.D;
    size_t smq = sizeof(float) * ((size_t)2 * TB * D + (size_t)2 * TB * (D + 1) + (size_t)TB * (TB + 1));
    size_t smk = sizeof(float) * ((size_t)2 * TB * D + (size_t)2 * TB * (D + 1) + (size_t)2 * TB * (TB + 1) + 2 * TB);
    static size_t setq = 0, setk = 0;
    cudaError_t r;
    if (smq > setq) {
        if ((r = cudaFuncSetAttribute(attn_bwd_dq_k<DPER>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smq)) != cudaSuccess) return r;
        setq = smq;
    }
    if (smk > setk) {
        if ((r = cudaFuncSetAttribute(attn_bwd_dkv_k<DPER>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smk)) != cudaSuccess) return r;
        setk = smk;
    }
    unsigned tiles = (unsigned)(B * ((a.T + TB - 1) / TB));
    /* stats + dQ (the stats pass only when no lse was given; delta always comes from pass 1's
     * companion: with lse given, the caller's delta is not known, so it is computed too) */
    attn_bwd_dq_k<DPER><<<dim3(tiles, a.H), 256, smq, s>>>(dq, lse_s, dl_s, lse, dout, q, k, v, a);
    if ((r = cudaGetLastError()) != cudaSuccess) return r;
    if (dk || dv) {
        attn_bwd_dkv_k<DPER><<<dim3(tiles, a.KVH), 256, smk, s>>>(dk, dv, lse_s, dl_s, dout, q, k, v, a);
        if ((r = cudaGetLastError()) != cudaSuccess) return r;
    }
    return cudaSuccess;
}

cudaError_t kg_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                  const float *q, const float *k, const float *v, const float *lse,
                                  int B, int T, int H, int KVH, int D, float scale, float softcap,
                                  int window, cudaStream_t s) {
    if (B <= 0 || T <= 0) return cudaSuccess;
    if (D > 256 || H % KVH) return cudaErrorInvalidValue;
    (void)lse; /* delta needs the same pass as lse: both are recomputed here */
    abw a = {T, H, KVH, D, window, scale, softcap};
    float *st = NULL;
    size_t nr = (size_t)B * T * H;
    cudaError_t r = cudaMallocAsync((void **)&st, sizeof(float) * 2 * nr, s);
    if (r != cudaSuccess) return r;
    float *ls = st, *dl = st + nr;
    if (D <= 32) r = launch<1>(dq, dk, dv, dout, q, k, v, NULL, ls, dl, B, a, s);
    else if (D <= 64) r = launch<2>(dq, dk, dv, dout, q, k, v, NULL, ls, dl, B, a, s);
    else if (D <= 128) r = launch<4>(dq, dk, dv, dout, q, k, v, NULL, ls, dl, B, a, s);
    else r = launch<8>(dq, dk, dv, dout, q, k, v, NULL, ls, dl, B, a, s);
    cudaFreeAsync(st, s);
    return r;
}
