/* nn.h — the float32 kernels of the forward pass (nn_*.c). Plain functions over row-major
 * buffers, shapes commented beside each pointer, llm.c style: `op_forward(out, in, ..., N, C)`.
 * Backward versions belong beside them in grad_*.c (`op_backward(din, dweight, dout, ...)`).
 * Every kernel parallelizes itself with OpenMP (or OpenBLAS for GEMMs); none allocates unless said.
 */
#ifndef LOP_NN_H
#define LOP_NN_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "arch.h"
#include "dtype.h"

/* ---- matmul (nn_matmul.c) ---- */
/* out[N, OC] = x[N, IC] @ W^T (+ bias[OC]); W [OC, IC] in dtype dt (F32: used in place; BF16/F16/
 * F64: converted to float32 in per-thread chunks of rows). accumulate: out += ... instead of =.
 * Parallel over OC (OpenMP threads, each calling single-threaded OpenBLAS: the engine sets
 * openblas_set_num_threads(1) around its work). Returns -1 only when scratch cannot be allocated. */
int matmul_forward(float *out, const float *x, const void *w, st_dtype dt, const float *bias,
                   int N, int IC, int OC, int accumulate);
/* Convert n elements of a float dtype to float32, in parallel (OpenMP) / on the calling thread. */
void nn_to_f32(float *dst, const void *src, st_dtype dt, size_t n);
/* on the calling thread: dtype.c's st_to_f32_fast (a conversion, not a kernel: kept here under
 * its old name for the engine's callers) */
static inline void nn_to_f32_serial(float *dst, const void *src, st_dtype dt, size_t n) {
    st_to_f32_fast(dst, src, dt, n);
}

/* ---- embedding (nn_matmul.c) ----
 * out[N, C] = table[ids[n]] * scale, table [V, C] in dtype dt (rows converted as looked up;
 * Gemma: scale = sqrt(C) rounded to float32, others 1). */
void embedding_forward(float *out, const int32_t *ids, const void *table, st_dtype dt, int N, int C,
                       float scale);

/* Per-thread scratch: a 64-byte aligned buffer of >= n floats owned by the calling thread, slot
 * 0..3 (0: matmul, 1: attention, 2-3: head); NULL when out of memory. Never free it. */
float *nn_scratch(int slot, size_t n);

/* ---- bf16 GEMM (gemm_bf16.c): an opt-in, less exact alternative to the float32 GEMMs ----
 * out[N, ldo] (+)= x @ W^T with x and W rounded to bf16 (nearest even) and float32 accumulation
 * through AVX512-BF16 (vdpbf16ps). Products of bf16 numbers are exact in float32; the error
 * against float32 GEMMs is the rounding of x (and of non-bf16 W) to 8 significant bits.
 * Single-threaded (callers split OC across threads); per-thread scratch for the packed W.
 * Only call the kernels when gemm_bf16_available() (else they return -1 and do nothing). */
#define GB_ROWS 14 /* rows per block of the packed x (the micro-kernel's register rows) */
int gemm_bf16_available(void); /* this CPU has avx512_bf16 (cached runtime check) */
/* x[N, K] (row stride ldx floats) -> xp, bf16 k-pairs in blocks of GB_ROWS rows (zero padded):
 * xp holds gemm_bf16_xpack_size(N, K) uint32. Rows n0.. of a block-aligned n0 (multiple of
 * GB_ROWS) start at xp + n0 * ((K+1)/2), so callers may pack or use row ranges separately. */
size_t gemm_bf16_xpack_size(int N, int K);
void gemm_bf16_pack_x(uint32_t *xp, const float *x, int N, int K, int ldx);
/* out[n, o] (+)= sum_k x[n, k] W[o, k] for n < N, o < OC; W [OC, K] as stored (bf16; the _dt
 * form takes any float dtype and rounds each row to bf16 while packing). Returns -1 (nothing
 * done) when out of memory or the CPU lacks AVX512-BF16. */
int gemm_bf16_nt(float *out, const uint32_t *xp, const uint16_t *w, int N, int OC, int K, int ldo,
                 int accumulate);
int gemm_bf16_nt_dt(float *out, const uint32_t *xp, const void *w, st_dtype dt, int N, int OC,
                    int K, int ldo, int accumulate);
/* The same in two steps, for a W multiplied against several x: W [OC, K] (any float dtype) ->
 * wp (gemm_bf16_wpack_size(OC, K) uint32, 64-byte aligned), then out (+)= x . W^T from it. */
size_t gemm_bf16_wpack_size(int OC, int K);
int gemm_bf16_pack_w(uint32_t *wp, const void *w, st_dtype dt, int OC, int K);
int gemm_bf16_nt_packed(float *out, const uint32_t *xp, const uint32_t *wp, int N, int OC, int K,
                        int ldo, int accumulate);
/* A growable 64-byte aligned buffer of >= n uint32 owned by the calling thread, for a packed x
 * its OpenMP team shares: slot 0 matmul_forward_bf16, slot 1 the lm_head. NULL: out of memory. */
uint32_t *gemm_bf16_xbuf(int slot, size_t n);
/* matmul_forward with the bf16 GEMM: x rounded to bf16 once (packed in parallel), W used as
 * stored when bf16 (f32/f16/f64 rows rounded to bf16 while packing), OC split across threads.
 * Falls back to matmul_forward when the CPU lacks AVX512-BF16. -1: out of memory. */
int matmul_forward_bf16(float *out, const float *x, const void *w, st_dtype dt, const float *bias,
                        int N, int IC, int OC, int accumulate);

/* ---- rmsnorm (nn_norm.c) ---- */
/* out[N, C] = x * rstd * w (gemma: x * rstd * (1 + w)), rstd[N] = 1/sqrt(mean(x^2) + eps).
 * rstd may be NULL. out may equal x. w in float32 [C]. */
void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C,
                     float eps, int gemma);

/* ---- rope (nn_rope.c) ---- */
#define NN_MAX_HEAD_DIM 1024 /* head_dim limit of rope_forward and attention_forward */
/* inv_freq[D/2] of a rope config (default / linear / llama3) and the attention scaling factor
 * (1 for these types). */
void rope_inv_freq(float *inv_freq, int D, const lop_rope *r);
/* HF rotate_half rope on x[N, H*D] in place: for each head, pairs (i, i + D/2) rotated by
 * pos[n] * inv_freq[i] (angles in double precision for large positions). */
void rope_forward(float *x, const int *pos, const float *inv_freq, int N, int H, int D);
/* The inverse rotation, in place (rope_forward's backward: dx from dy). */
void rope_inverse(float *x, const int *pos, const float *inv_freq, int N, int H, int D);
/* The same in two steps, so a forward computes the angles once for all layers:
 * cs[N, D] = per row cos(pos*inv_freq[i]) for i < D/2, then sin(...) for i < D/2;
 * rope_apply rotates x[N, H*D] in place (rope_apply_inverse rotates back: the backward). */
void rope_table(float *cs, const int *pos, const float *inv_freq, int N, int D);
void rope_apply(float *x, const float *cs, int N, int H, int D);
void rope_apply_inverse(float *x, const float *cs, int N, int H, int D);

/* ---- attention (nn_attention.c) ---- */
/* One sequence: queries q[T, Hq*D] at positions qpos0 .. qpos0+T-1, keys/values k,v[Tk, Hkv*D]
 * at positions 0..Tk-1 (Tk = qpos0 + T: cached keys first). Causal; window > 0 limits each query
 * to the last `window` keys (itself included); softcap > 0: scores = softcap*tanh(s/softcap).
 * out[T, Hq*D]; att (may be NULL) [Hq, T, Tk] receives the probabilities (masked = 0).
 * Query head h uses kv head h / (Hq/Hkv). */
void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int T, int Tk, int qpos0, int Hq, int Hkv, int D, float scale,
                       int window, float softcap);

/* Many sequences at once (one parallel loop over every (sequence, head, query block)). */
typedef struct attn_seq {
    float *out, *att;            /* [T, Hq*D], [Hq, T, Tk] or NULL */
    const float *q, *k, *v;      /* [T, Hq*D], [Tk, Hkv*D], [Tk, Hkv*D] */
    int T, Tk, qpos0;
} attn_seq;
void attention_forward_batch(const attn_seq *seqs, int B, int Hq, int Hkv, int D, float scale,
                             int window, float softcap);

/* ---- mlp (nn_mlp.c) ---- */
/* h[n] = act(gate[n]) * up[n] for n < count (SiLU, or GELU with the tanh approximation). */
void glu_forward(float *h, const float *gate, const float *up, size_t count, lop_act act);

/* ---- softmax / cross-entropy (nn_softmax.c) ---- */
/* exp(x) for one float, branch-free and vectorizable: 2^n * p(r), r = x - n ln2 in
 * [-ln2/2, ln2/2], degree-6 polynomial (Cephes expf coefficients); max relative error ~2e-7;
 * x < -87.3: 0. Rounding by the 1.5*2^23 trick (roundf would be a libm call). */
static inline float nn_expf(float x) {
    float xc = x < -87.3f ? -87.3f : (x > 88.0f ? 88.0f : x);
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    uint32_t e = (uint32_t)((int32_t)n + 127) << 23;   /* unsigned: a NaN input (n garbage) stays defined; the NaN propagates through p */
    float s;
    memcpy(&s, &e, sizeof s);
    return x <= -87.3f ? 0.0f : p * s;
}

/* tanh through nn_expf (vectorizable): sign(z) * (1 - 2 / (exp(2|z|) + 1)); absolute error
 * ~1e-7 (what a float32 tanh kernel has). */
static inline float nn_tanhf(float z) {
    float a = z < 0 ? -z : z;
    float t = 1.0f - 2.0f / (nn_expf(2.0f * a) + 1.0f);
    return z < 0 ? -t : t;
}

/* Fast vectorized exp (max rel. error ~2e-7) used by the reductions. */
void nn_exp(float *y, const float *x, size_t n);
/* sum of exp(x[i] - m) and max of x[n], vectorized (float accumulation) */
float nn_sumexp(const float *x, int n, float m);
float nn_max(const float *x, int n);
/* logsumexp of x[n] (double accumulation) */
float nn_logsumexp(const float *x, int n);
/* out[N, V] = log_softmax(x[N, V]) (out may equal x) */
void log_softmax_forward(float *out, const float *x, int N, int V);
/* Mean cross-entropy of logits[N, V] against target[N] (-1 ignored); also per-row nll[N] (may be
 * NULL). Returns the mean over counted rows (0 if none). */
double crossentropy_forward(float *nll, const float *logits, const int32_t *target, int N, int V);
/* softcap in place: x = cap * tanh(x / cap) */
void softcap_forward(float *x, size_t n, float cap);
#endif
