/* grad.cuh — the CUDA backend's training kernels: the backward of every forward op and the
 * optimizer, launchers over device pointers on a stream, llm.c style
 * (op_backward(din, dweight, dout, inp, weight, shapes...)). Each follows the CPU kernel of the
 * same subject (grad_*.c, nn_rope.c, kd.c, optim.c) in its math; like them every backward
 * ACCUMULATES (+=) into its gradient outputs, except that a `set` flag makes an activation
 * gradient a plain store (its old contents never read: backend.h's overwrite), and a NULL
 * gradient pointer means "not needed".
 * Reductions that decide a gradient (weight-vector column sums, embedding rows, the global norm)
 * run in a fixed order: the same bits for the same inputs on every run. Each launcher returns
 * cudaSuccess or the first CUDA error. */
#ifndef LOP_CUDA_GRAD_CUH
#define LOP_CUDA_GRAD_CUH
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublas_v2.h>
#include <stdint.h>

/* ---- elementwise and row backwards (grad.cu) ---- */

/* RMSNorm (forward: k_rmsnorm, which saved rstd[N]): out = x * rstd * w (gemma: * (1 + w)).
 * dx[N, C] += r w' dy - x r^3/C sum(dy w' x);  dw[C] += sum over rows of dy x r (rows summed in
 * fixed blocks, then the blocks in order). q/k norms: N*heads rows of C = head_dim. */
cudaError_t kg_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x,
                                const float *rstd, const float *w, int N, int C, int gemma,
                                int dx_set, cudaStream_t s);
/* RoPE: x[N, H*D] rotated in place by -angle (the transpose of k_rope_apply; cs from k_rope_table):
 * the gradient w.r.t. the pre-rotation values, the CPU's rope_apply_inverse bit for bit */
cudaError_t kg_rope_backward(float *dx, const float *cs, int N, int H, int D, cudaStream_t s);
/* gated MLP (forward h = act(g) * u; act 0 SiLU, 1 GELU-tanh): dg += dh u act'(g); du += dh act(g)
 * (set: =); dg_bf16 / du_bf16 (or NULL): the results rounded to bf16 too (for the GEMMs next) */
cudaError_t kg_glu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                            size_t n, int act, int set, __nv_bfloat16 *dg_bf16, __nv_bfloat16 *du_bf16,
                            cudaStream_t s);
/* embedding (forward out = table[ids[n]] * scale): dtable[ids[n]] += dout[n] * scale. ids_host [N]
 * host memory: rows are grouped by id on the host, then each table row adds its rows in token
 * order — the CPU's sums exactly (no atomics). */
cudaError_t kg_embedding_backward(float *dtable, const float *dout, const int32_t *ids_host, int N,
                                  int C, float scale, cudaStream_t s);
/* bias: dbias[OC] += column sums of dout[N, OC] (double, rows in order) */
cudaError_t kg_bias_backward(float *dbias, const float *dout, int N, int OC, cudaStream_t s);
/* logit softcapping y = cap * tanh(x / cap) in place; backward from y: dx *= 1 - (y/cap)^2 */
cudaError_t kg_softcap_forward(float *x, size_t n, float cap, cudaStream_t s);
cudaError_t kg_softcap_backward(float *dx, const float *y, size_t n, float cap, cudaStream_t s);
/* LoRA dropout (backend.h's lop_dropout_keep: a counter hash of seed, the adapter's key and the
 * element): out[i] = keep(i) ? x[i] / (1 - p) : 0;  accum: out[i] += keep(i) ? x[i] / (1 - p) : 0 */
cudaError_t kg_dropout(float *out, const float *x, size_t n, uint64_t seed, uint64_t key, double p,
                       int accum, cudaStream_t s);

/* ---- the linear layers (grad_gemm.cu, cuBLAS) ----
 * out[N, OC] = inp[N, IC] @ w[OC, IC]^T: din[N, IC] += dout @ w; dw[OC, IC] += dout^T @ inp;
 * dbias[OC] += column sums. w of element type wdt (kernels.cuh's KDT_*) as stored; bf16: dout
 * and inp are rounded to bf16 (into scratch made here), the products accumulate in float32 into
 * the float32 gradients (cublasGemmEx, 32F compute); f32: cublasSgemm (no TF32), the CPU's
 * numbers to rounding. inp_bf16 / dout_bf16 (or NULL): bf16 copies the caller already has.
 * din_set: din = (beta 0) instead of +=. */
cudaError_t kg_matmul_backward(cublasHandle_t h, float *din, float *dw, float *dbias,
                               const float *dout, const float *inp, const void *w, int wdt,
                               int N, int IC, int OC, int bf16, const __nv_bfloat16 *dout_bf16,
                               const __nv_bfloat16 *inp_bf16, int din_set, cudaStream_t s);
/* LoRA beside a matmul (backend.h's lora_forward / lora_backward; float32 GEMMs, A [r, IC],
 * B [OC, r]): forward xa[N, r] = drop(x) A^T, out[N, OC] += scale xa B^T (drop(x) into tmp [N, IC]
 * when dropout > 0). Backward: dxa[N, r] = scale dout B (overwritten); dB += scale dout^T xa;
 * dA += dxa^T drop(x); din += drop'(dxa A) (tmp is scratch). */
/* tf32 1 (a bf16 run): the rank-r products on TF32 tensor cores (10-bit mantissas, float32
 * accumulation: finer than the bf16 products beside them); 0: float32 */
cudaError_t kg_lora_forward(cublasHandle_t h, float *out, float *xa, float *tmp, const float *x,
                            const float *A, const float *B, int N, int IC, int OC, int r,
                            float scale, float dropout, uint64_t seed, uint64_t key, int tf32,
                            cudaStream_t s);
/* dout_bf16 and B_bf16 (or both NULL): bf16 copies of dout and B; then dxa and dB are bf16
 * products (float32 accumulation), as PEFT's under autocast */
cudaError_t kg_lora_backward(cublasHandle_t h, float *din, float *dA, float *dB, float *dxa,
                             float *tmp, const float *dout, const float *x, const float *xa,
                             const float *A, const float *B, int N, int IC, int OC, int r,
                             float scale, float dropout, uint64_t seed, uint64_t key, int tf32,
                             const __nv_bfloat16 *dout_bf16, const __nv_bfloat16 *B_bf16,
                             int din_set, cudaStream_t s);
/* the adapter's half of a fused projection (backend.h's lora_matmul), before the projection's
 * GEMM adds x W^T over it: xa[N, r] = drop(x) A^T, out[N, OC] = scale xa B^T (stored). With
 * xb and Ab (bf16 copies of x and A; no dropout) xa is a bf16 product with float32 accumulation,
 * as PEFT's lora_A under autocast; else TF32 over float32 (drop(x) into tmp). */
cudaError_t kg_lora_first(cublasHandle_t h, float *out, float *xa, float *tmp, const float *x,
                          const __nv_bfloat16 *xb, const __nv_bfloat16 *Ab, const float *A,
                          const float *B, int N, int IC, int OC, int r, float scale, float dropout,
                          uint64_t seed, uint64_t key, cudaStream_t s);

/* LoRA's skinny products as kernels of their own (lora_skinny.cu; ranks 8 and 16; float32
 * accumulation in a fixed order). rows: y[N, R] = alpha X[N, K] W^T with W(k, i) at
 * W[k * sk + i * si] (y stored); columns: out(c, k) += alpha sum_n X[n, c] Y[n, k] for c < C,
 * k < R, out(c, k) at out[c * oc + k * ok]. X [N, ldx] float32, or its bf16 copy Xb when not NULL.
 * cudaErrorNotSupported (nothing launched): a rank or layout they do not take (K, C, ldx multiples
 * of 4, X 16-byte aligned); the caller then uses cuBLAS. */
int kg_lora_skinny_supports(int r);
cudaError_t kg_lora_rows(float *y, const float *X, const __nv_bfloat16 *Xb, int ldx, const float *W, int sk,
                         int si, int N, int K, int R, float alpha, cudaStream_t s);
cudaError_t kg_lora_cols(float *out, int oc, int ok, const float *X, const __nv_bfloat16 *Xb, int ldx,
                         const float *Y, int N, int C, int R, float alpha, cudaStream_t s);

/* ---- attention (attention_bwd.cu) ----
 * The backward of causal GQA attention over B sequences of T tokens (rows b*T ..), flash style:
 * the probabilities are recomputed from q, k (scores, softcap, mask) and the per-row logsumexp,
 * never stored as a [T, T] matrix. lse [B*T, H] (or NULL: computed here in a first pass, with the
 * row's delta = sum_j P dP), then dQ by query tiles and dK, dV by key tiles (each block owns its
 * rows: no atomics). q [N, H*D], k, v [N, KVH*D]; float32; D <= 256.
 * dq += ..., dk += ..., dv += ... (any may be NULL). */
cudaError_t kg_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                  const float *q, const float *k, const float *v, const float *lse,
                                  int B, int T, int H, int KVH, int D, float scale, float softcap,
                                  int window, cudaStream_t s);

/* The same on tensor cores (attention_bwd_gemm.cu): the scores of a group of (sequence, head)
 * pairs recomputed into a scratch of this call (at most ~768 MB), batched cuBLAS GEMMs for
 * S = Q K^T, dP = dO V^T, dV, dQ, dK, row kernels for the softmax and its backward. bf16: operands
 * rounded to bf16 (P and dS too), float32 accumulation; else float32 GEMMs (no TF32). set: dq,
 * dk, dv are stored (their first product with beta 0), not added to. */
cudaError_t kg_attention_backward_gemm(cublasHandle_t h, float *dq, float *dk, float *dv,
                                       const float *dout, const float *q, const float *k,
                                       const float *v, int B, int T, int H, int KVH, int D,
                                       float scale, float softcap, int window, int bf16, int set,
                                       cudaStream_t s);
/* (sequence, head) pairs a group holds at sequence length T (0: not even one: use the flash kernel) */
size_t kg_attention_backward_gemm_pairs(int T);

/* The bf16 backward fused on tensor cores (attention_bwd_mma.cu, FlashAttention-2's deterministic
 * scheme, mma.sync): nothing of size [T, T] is stored, P and dS are recomputed tile by tile from
 * q, k and the rows' logsumexp (a first kernel recomputes it; its [B*T, H] scratch and delta's come
 * from cudaMallocAsync on s). out [N, H*D]: the forward's attention output, for
 * delta_i = dO_i . O_i. q, k, v, dout (then P, dS) rounded to bf16, float32 accumulation, dQ by
 * query tiles and dK, dV by key tiles (each block owns its rows: no atomics, the same bits on every
 * run). set: dq, dk, dv stored (old contents never read), else added; any may be NULL. D in
 * kg_attention_backward_mma_supports (64, 128, 256). */
int kg_attention_backward_mma_supports(int D);
cudaError_t kg_attention_backward_mma(float *dq, float *dk, float *dv, const float *dout,
                                      const float *out, const float *q, const float *k,
                                      const float *v, int B, int T, int H, int KVH, int D,
                                      float scale, float softcap, int window, int set,
                                      cudaStream_t s);

/* ---- the head's loss (loss.cu) ----
 * Cross-entropy over a chunk of n rows of logits [n, V] (row stride ld): when cap > 0 the logits
 * are raw and capped here (y = cap tanh(x/cap)). Writes dlogits (in place) = gscale * d/dx of the
 * row's loss (softcap backward included), loss[r] = lse - y[target] (double; 0 and a zero row for
 * target < 0 or >= V); dl_bf16 (or NULL): the gradient rounded to bf16 too. One block per row, the
 * vocabulary walked by the block (sums in double). */
cudaError_t kg_xent_backward(float *logits, int ld, double *loss, const int32_t *targets, int n,
                             int V, float cap, float gscale, __nv_bfloat16 *dl_bf16, cudaStream_t s);

/* Distillation (kd.h's definitions; terms ce fkl rkl skl srkl jsd tvd): one block per student row
 * zs [n, Vs] (stride lds) overwritten with gscale * d(loss)/dzs. The teacher is dense (zt [n, >=V]
 * raw logits, stride ldt) or sparse (a top-k cache: tk entries per row, ids [n, tk], logp [n, tk]
 * at temperature T, tail [n] = log of the remaining mass). terms [n, 8]: each term's value
 * (divergences * T^2) and, last, the weighted loss; rows with target < 0 get zeros. */
#define KG_KD_NTERMS 7
typedef struct kg_kd_spec {
    double w[KG_KD_NTERMS];
    double temperature, skew, jsd_beta;
} kg_kd_spec;
cudaError_t kg_kd_backward(float *zs, int lds, int Vs, int V, const float *zt, int ldt,
                           const int32_t *ids, const float *logp, const float *tail, int tk,
                           const int32_t *targets, int n, const kg_kd_spec *spec, float gscale,
                           double *terms, cudaStream_t s);

/* ---- optimizer (adamw.cu) ----
 * AdamW step t with PyTorch's semantics, optim.c's float operations in the same order (bit for
 * bit): g' = g * clip (clip 1: none); p *= 1 - lr wd; m += (g' - m)(1 - b1);
 * v = v b2 + (1 - b2) g'^2; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps); g' is written back into g
 * (the seam's in-place clip). zero_bits (or NULL): bit i
 * set = p[i] held at 0. p_bf16 (or NULL): the updated weights rounded to bf16 (the next step's
 * GEMM operand). */
cudaError_t kg_adamw(float *p, float *g, float *m, float *v, size_t n, double lr,
                     double beta1, double beta2, double eps, double wd, int64_t t, double clip,
                     const uint8_t *zero_bits, __nv_bfloat16 *p_bf16, cudaStream_t s);
/* The same over many tensors in one launch: items [nt] and start [nt + 1] (start[k] = the sum of
 * kg_adamw_many_chunks(items[j].n) for j < k, nchunks = start[nt]) in device memory; decay
 * (float)(1 - lr wd) of each tensor's own wd, formed on the host as kg_adamw does */
typedef struct kg_adamw_item {
    float *p, *g, *m, *v;
    const uint8_t *zb;
    __nv_bfloat16 *pb;
    size_t n;
    float decay;
} kg_adamw_item;
size_t kg_adamw_many_chunks(size_t n);
cudaError_t kg_adamw_many(const kg_adamw_item *items, const long long *start, int nt, long long nchunks,
                          double lr, double beta1, double beta2, double eps, int64_t t, double clip,
                          cudaStream_t s);
/* *acc (device double) += sum of g[n]^2: fixed blocks in double, added in order (a global norm
 * over many tensors is a sequence of calls, then one download) */
cudaError_t kg_sumsq(double *acc, const float *g, size_t n, cudaStream_t s);
/* *out = the same sum (assigned), partials in part [kg_sumsq_parts(n)] the caller keeps */
size_t kg_sumsq_parts(size_t n);
cudaError_t kg_sumsq_set(double *out, double *part, const float *g, size_t n, cudaStream_t s);
/* g[n] *= s */
cudaError_t kg_scale(float *g, size_t n, float s, cudaStream_t st);
#endif
