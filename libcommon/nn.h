/* nn.h — the float32 kernels of the forward pass (nn_*.c). Plain functions over row-major
 * buffers, shapes commented beside each pointer, llm.c style: `op_forward(out, in, ..., N, C)`.
 * Backward versions belong beside them in grad_*.c (`op_backward(din, dweight, dout, ...)`).
 * Every kernel parallelizes itself with OpenMP (or OpenBLAS for GEMMs); none allocates unless said.
 */
#ifndef LOP_NN_H
#define LOP_NN_H
#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "dtype.h"

/* ---- matmul (nn_matmul.c) ---- */
/* out[N, OC] = x[N, IC] @ W^T (+ bias[OC]); W [OC, IC] in dtype dt (F32: used in place; BF16/F16/
 * F64: converted to float32 into scratch, which must hold OC*IC floats). accumulate: out += ... */
void matmul_forward(float *out, const float *x, const void *w, st_dtype dt, const float *bias,
                    int N, int IC, int OC, float *scratch, int accumulate);
/* Convert n elements of a float dtype to float32, in parallel (OpenMP), fast paths for bf16/f16. */
void nn_to_f32(float *dst, const void *src, st_dtype dt, size_t n);

/* ---- rmsnorm (nn_norm.c) ---- */
/* out[N, C] = x * rstd * w (gemma: x * rstd * (1 + w)), rstd[N] = 1/sqrt(mean(x^2) + eps).
 * rstd may be NULL. out may equal x. w in float32 [C]. */
void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C,
                     float eps, int gemma);

/* ---- rope (nn_rope.c) ---- */
/* inv_freq[D/2] of a rope config (default / linear / llama3) and the attention scaling factor
 * (1 for these types). */
void rope_inv_freq(float *inv_freq, int D, const lop_rope *r);
/* HF rotate_half rope on x[N, H*D] in place: for each head, pairs (i, i + D/2) rotated by
 * pos[n] * inv_freq[i] (angles in double precision for large positions). */
void rope_forward(float *x, const int *pos, const float *inv_freq, int N, int H, int D);

/* ---- attention (nn_attention.c) ---- */
/* One sequence: queries q[T, Hq*D] at positions qpos0 .. qpos0+T-1, keys/values k,v[Tk, Hkv*D]
 * at positions 0..Tk-1 (Tk = qpos0 + T: cached keys first). Causal; window > 0 limits each query
 * to the last `window` keys (itself included); softcap > 0: scores = softcap*tanh(s/softcap).
 * out[T, Hq*D]; att (may be NULL) [Hq, T, Tk] receives the probabilities (masked = 0).
 * Query head h uses kv head h / (Hq/Hkv). */
void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int T, int Tk, int qpos0, int Hq, int Hkv, int D, float scale,
                       int window, float softcap);

/* ---- mlp (nn_mlp.c) ---- */
/* h[n] = act(gate[n]) * up[n] for n < count (SiLU, or GELU with the tanh approximation). */
void glu_forward(float *h, const float *gate, const float *up, size_t count, lop_act act);

/* ---- softmax / cross-entropy (nn_softmax.c) ---- */
/* Fast vectorized exp (max rel. error ~2e-7) used by the reductions. */
void nn_exp(float *y, const float *x, size_t n);
/* logsumexp of x[n] */
float nn_logsumexp(const float *x, int n);
/* out[N, V] = log_softmax(x[N, V]) (out may equal x) */
void log_softmax_forward(float *out, const float *x, int N, int V);
/* Mean cross-entropy of logits[N, V] against target[N] (-1 ignored); also per-row nll[N] (may be
 * NULL). Returns the mean over counted rows (0 if none). */
double crossentropy_forward(float *nll, const float *logits, const int32_t *target, int N, int V);
/* softcap in place: x = cap * tanh(x / cap) */
void softcap_forward(float *x, size_t n, float cap);
#endif
