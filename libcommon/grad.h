/* grad.h — training kernels: the backwards of the layer kernels (nn.h), called by the CPU
 * backend only (backend_cpu_train.c; the trainer reaches them through backend.h's ops).
 *
 * llm.c style: op_forward(out, in, weight, ...) / op_backward(din, dweight, dout, ...), shapes
 * beside the pointers. Rows are tokens: N = B*T rows of a batch of B sequences of T tokens.
 * Every backward ACCUMULATES (+=) into its gradient outputs (dx, dw, ...): the caller zeroes them
 * once, so residual branches, tied weights and gradient accumulation need no extra copies.
 * A NULL gradient pointer means "not needed" (frozen weight, input of the first op).
 * All math is float32 (float64 accumulators where a long sum needs it), as transformers' float32.
 * GEMMs go through OpenBLAS sgemm; elementwise loops through OpenMP.
 */
#ifndef LOP_GRAD_H
#define LOP_GRAD_H
#include <stddef.h>
#include <stdint.h>
struct lop_backend;

/* ---- linear: out[N,OC] = in[N,IC] @ w[OC,IC]^T (+ bias[OC]) ---- */
void tr_matmul_forward(float *out, const float *in, const float *w, const float *bias,
                       int N, int IC, int OC);
/* din[N,IC] += dout @ w; dw[OC,IC] += dout^T @ in; dbias[OC] += column sums of dout */
void tr_matmul_backward(float *din, float *dw, float *dbias, const float *dout,
                        const float *in, const float *w, int N, int IC, int OC);

/* ---- embedding backward (forward: nn.h's embedding_forward, out = table[ids[n]] * scale) ---- */
void tr_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C,
                           float scale);

/* The forwards of RMSNorm, RoPE, attention and the gated MLP are the engine's (nn.h:
 * rmsnorm_forward, rope_inv_freq/rope_forward, attention_forward_batch, glu_forward); the
 * backwards below are theirs (RoPE's is nn.h's rope_inverse: the rotation is orthogonal). */

/* ---- RMSNorm backward (forward: rmsnorm_forward, which saves rstd[N]) ----
 * out = x * rstd * w (plain) or x * rstd * (1 + w) (gemma != 0); q/k norms: N*heads rows. */
void tr_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x,
                         const float *rstd, const float *w, int N, int C, int gemma);

/* ---- causal GQA attention backward over B sequences of T tokens ----
 * The forward is attention_forward_batch with one attn_seq per sequence and att[B, H, T, T]
 * (the probabilities, zeros where masked): q[N, H*D], k,v[N, KVH*D]; head h reads kv head
 * h / (H/KVH); score = scale * q.k, softcapped when softcap > 0; key j visible from query i iff
 * j <= i and (window == 0 or i - j < window).
 * dq[N,H*D], dk,dv[N,KVH*D] += ...; scratch holds 2*T*T floats. */
void tr_attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                           const float *att, const float *q, const float *k, const float *v,
                           int B, int T, int H, int KVH, int D, float scale, float softcap,
                           int window);

/* ---- gated MLP backward (forward: glu_forward, h = act(g) * u; act 0: SiLU, 1: GELU-tanh) ---- */
void tr_glu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                     size_t n, int act);

/* ---- logit softcapping y = cap * tanh(x / cap), in place; backward from y ---- */
void tr_softcap_forward(float *x, size_t n, float cap);
void tr_softcap_backward(float *dx, const float *y, size_t n, float cap);

/* ---- pluggable loss over a chunk of rows of logits ----
 * The head computes logits for rows [row0, row0+n) of the batch (after final softcapping) and
 * calls the loss with them. The loss returns the SUM of its per-row losses over the rows it
 * scores (double) and the number of rows it scored in *scored, and overwrites logits[n, V] with
 * gscale * d(sum)/d(logits) (gscale: 1/tokens of the optimizer step, so a step's loss is a mean).
 * targets[n] are the next-token ids (-1: not scored). ctx is the caller's (kd-train: teacher
 * logits, temperature). Rows are independent: a loss may look at row0 to find its own data. */
typedef struct tr_loss_chunk {
    float *logits;            /* [n, V] in: logits, out: dloss/dlogits * gscale */
    const int32_t *targets;   /* [n] */
    int64_t row0;             /* first row's index in the batch (b*T + t) */
    int n, V;
    float gscale;
    struct lop_backend *be;   /* where logits live (backend.h) */
    int device;               /* 1: in a device's memory (not be->host_mem): the loss must run
                                 there (kd.c's does, through lop_cuda_kd_loss; tr_xent_loss
                                 refuses) */
} tr_loss_chunk;
typedef double (*tr_loss_fn)(const tr_loss_chunk *c, void *ctx, int64_t *scored);

/* Cross-entropy with masking (the default loss): sum over scored rows of
 * logsumexp(logits) - logits[target]. */
double tr_xent_loss(const tr_loss_chunk *c, void *ctx, int64_t *scored);
#endif
