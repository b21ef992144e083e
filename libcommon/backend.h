/* backend.h — the seam between the model core (model_forward.c orchestrates the layers) and the
 * kernels that do the arithmetic. A backend is a table of operations over buffers that live in
 * its own memory: the CPU backend (backend_cpu.c) calls today's nn_*.c / gemm_bf16.c kernels on
 * host memory; the CUDA backend (cuda/, built only with nvcc) runs cuBLAS GEMMs and its own
 * kernels on device memory. The core never dereferences a buffer it got from alloc(): it hands
 * pointers (and pointer arithmetic within one buffer) to the ops, and moves data across with
 * upload/download (hooks that read activations get host copies; host_mem says when none is needed).
 *
 *     tools (cmd/)  ->  model core (model_forward.c, model_kv.c)  ->  lop_backend ops  ->  kernels
 *
 * Weights are passed as lop_wref views of the host tensors (mmap'd, stored dtype); a device backend
 * keeps one device copy per weight slot (keyed by the lop_wref's address, re-uploaded when the slot
 * points at other data; weights_changed() drops every copy of data the caller replaced).
 * Every op returns 0, or -1 with e set; none prints or exits. Shapes are beside every pointer. */
#ifndef LOP_BACKEND_H
#define LOP_BACKEND_H
#include <stddef.h>
#include <stdint.h>
#include "model.h"
#include "optim.h"

typedef struct lop_backend lop_backend;

/* Attention over a packed batch (model.h: lop_batch). Sequence b's queries are rows
 * off[b] .. off[b]+len[b]-1 of q, at positions q0[b] ..; without a cache its keys/values are
 * the same rows of k/v; with one (kv != NULL) those rows are first written into the cache of
 * `layer` at positions q0[b] = kv->len[b] .., and the sequence attends to cache positions
 * 0 .. q0[b]+len[b]-1. Causal; window > 0 keeps the last `window` keys; softcap > 0 caps scores. */
typedef struct lop_attn_args {
    float *out;              /* [N, Hq*D] */
    float *att;              /* keep_acts: probabilities at att + att_off[b] ([Hq, T_b, Tk_b]), or NULL */
    const int64_t *att_off;  /* host [B] */
    const float *q, *k, *v;  /* [N, Hq*D], [N, Hkv*D], [N, Hkv*D] (post-norm, post-rope q/k) */
    int B;
    const int *len, *off;    /* host [B], [B+1] */
    lop_kv *kv;              /* or NULL */
    int layer;
    int Hq, Hkv, D, window;
    float scale, softcap;
    lop_gemm gemm;           /* bf16: a device may run q.k and p.v on bf16 tensor cores too */
    int out_gemm_only;       /* 1: only the next matmul reads out (no hook): a device may keep it
                              * in that GEMM's own form (bf16) and not write the float32 */
} lop_attn_args;

/* The head over the rows of xn: see model.h's lop_head_req (its out arrays are host memory). */
typedef struct lop_head_args {
    const float *xn;         /* [N, C] backend memory: the final norm's output */
    int N, C, V;
    const lop_wref *w;       /* lm_head [V, C] */
    float softcap;           /* final_logit_softcapping, 0: none */
    lop_gemm gemm;
} lop_head_args;

/* ---- training (backward + optimizer) ---- */

/* LoRA dropout: element i (flat index into the [N, IC] input) of the adapter with stream `key`
 * (layer * PROJ_N + proj + 1) is kept iff this returns 1; kept elements are scaled by 1/(1-p).
 * A counter-based hash, so the backward, a recomputed forward, a resumed run and every backend
 * see the same mask without storing it. */
static inline int lop_dropout_keep(uint64_t seed, uint64_t key, size_t i, double p) {
    uint64_t z = seed ^ (key * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)i * 0xd1b54a32d192ed03ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (z >> 11) * (1.0 / 9007199254740992.0) >= p;
}

/* Attention backward over a packed batch without a cache (training): sequence b is rows
 * off[b] .. off[b]+len[b]-1; att holds the probabilities the forward kept (lop_attn_args.att,
 * [Hq, T_b, T_b] at att + att_off[b], masked entries 0). Gradients w.r.t. the post-norm,
 * post-rope q and k and v, accumulated (+=; .overwrite: stored). Scratch is the backend's own. */
typedef struct lop_attn_bwd_args {
    float *dq, *dk, *dv;     /* [N, Hq*D], [N, Hkv*D], [N, Hkv*D] (+=; NULL: not wanted) */
    const float *dout;       /* [N, Hq*D] dL/d(attention output) */
    const float *att;        /* kept probabilities */
    const int64_t *att_off;  /* host [B] */
    const float *q, *k, *v;  /* [N, Hq*D], [N, Hkv*D], [N, Hkv*D] as the forward used them */
    const float *out;        /* the forward's output [N, Hq*D] (rows as q), or NULL: a device's
                                fused backward takes delta_i = dO_i . O_i from it (the CPU
                                ignores it) */
    int B;
    const int *len, *off;    /* host [B], [B+1] */
    int Hq, Hkv, D, window;
    float scale, softcap;
    lop_gemm gemm;           /* the forward's: bf16 lets a device run the products on bf16 tensor
                                cores (float32 accumulation); the CPU ignores it */
    int overwrite;           /* 1: dq, dk, dv are stored (=), their old contents never read */
} lop_attn_bwd_args;

/* one tensor of an AdamW step over many (lop_backend_ops.adamw_many) */
typedef struct lop_adamw_item {
    float *p, *g, *m, *v;       /* [n] backend memory */
    const uint8_t *zero_bits;   /* [(n+7)/8] or NULL */
    size_t n;
    int decay;                  /* 1: hp->wd applies, 0: no decay (norms, biases) */
} lop_adamw_item;

typedef struct lop_backend_ops {
    void (*destroy)(lop_backend *be);
    /* memory: n bytes of backend memory (64-byte aligned), NULL when out of memory */
    void *(*alloc)(lop_backend *be, size_t n);
    void (*release)(lop_backend *be, void *p);
    int (*upload)(lop_backend *be, void *dst, const void *src, size_t n, lop_err *e);
    int (*download)(lop_backend *be, void *dst, const void *src, size_t n, lop_err *e);
    int (*copy)(lop_backend *be, void *dst, const void *src, size_t n, lop_err *e);
    /* weights: is there room for `bytes` of weights (plus working memory)? then make w resident
     * (device backends; the CPU's are no-ops) */
    int (*weights_fit)(lop_backend *be, size_t bytes, lop_err *e);
    int (*weight_load)(lop_backend *be, const lop_wref *w, lop_err *e);
    int (*weights_changed)(lop_backend *be, lop_err *e);
    /* the GEMM precision this backend can run (the CPU's bf16 needs AVX512-BF16) */
    lop_gemm (*gemm_supported)(lop_backend *be, lop_gemm g);
    /* out[N, C] = table[ids[n]] * scale; ids host [N] */
    int (*embed)(lop_backend *be, float *out, const int32_t *ids, const lop_wref *table, int N,
                 int C, float scale, lop_err *e);
    /* out[N, OC] = x[N, IC] @ W^T (+ bias[OC]); W [OC, IC] in its stored dtype; bias may be absent */
    int (*matmul)(lop_backend *be, float *out, const float *x, const lop_wref *w,
                  const lop_wref *bias, int N, lop_gemm g, lop_err *e);
    /* out[N, C] = x * rstd * w (gemma: * (1 + w)); rstd[N] may be NULL; w [C] */
    int (*rmsnorm)(lop_backend *be, float *out, float *rstd, const float *x, const lop_wref *w,
                   int N, int C, float eps, int gemma, lop_err *e);
    /* cs[N, D] = cos | sin of pos[n] * inv_freq[i]; pos host [N], inv_freq host [D/2] */
    int (*rope_table)(lop_backend *be, float *cs, const int *pos, const float *inv_freq, int N,
                      int D, lop_err *e);
    /* rotate every head of x[N, H*D] in place by the table */
    int (*rope_apply)(lop_backend *be, float *x, const float *cs, int N, int H, int D, lop_err *e);
    /* optional fusion (NULL: the core calls rmsnorm then rope_apply): out[N, H*D] = rope(rmsnorm
     * of each head of x with w [D]), rstd [N*H]; returns 1 (nothing done) for a D it lacks */
    int (*qk_norm_rope)(lop_backend *be, float *out, float *rstd, const float *x, const lop_wref *w,
                        const float *cs, int N, int H, int D, float eps, int gemma, lop_err *e);
    int (*attention)(lop_backend *be, const lop_attn_args *a, lop_err *e);
    /* h[n] = act(gate[n]) * up[n] */
    int (*glu)(lop_backend *be, float *h, const float *gate, const float *up, size_t n,
               lop_act act, lop_err *e);
    /* out[n] = a[n] + b[n] */
    int (*add)(lop_backend *be, float *out, const float *a, const float *b, size_t n, lop_err *e);
    int (*head)(lop_backend *be, const lop_head_args *a, lop_head_req *h, lop_err *e);
    /* NaN/Inf check of x[n] for the core's error messages: 1 if found now, 0 if not (or deferred:
     * a device records it under slot, slot 0 starting a forward's record), -1 on error; then
     * nonfinite_first(nslots) gives the first slot recorded since (-1: none, -2: error) */
    int (*nonfinite)(lop_backend *be, const float *x, size_t n, int slot, lop_err *e);
    int (*nonfinite_first)(lop_backend *be, int nslots, lop_err *e);
    /* the most backend memory in use so far (device backends; 0 for the cpu), bytes */
    size_t (*mem_peak)(lop_backend *be);
    /* Optional fusions for a device, where each pass over the activations costs as much as the
     * arithmetic (NULL, or a return of 1: the core runs the plain ops instead; the cpu has none).
     * out[N, OC] = x[N, IC] @ W^T + r[N, OC]: a projection whose output only feeds the residual
     * add (no bias; out and r distinct) */
    int (*matmul_add)(lop_backend *be, float *out, const float *x, const lop_wref *w,
                      const float *r, int N, lop_gemm g, lop_err *e);
    /* the MLP's first half: h[N, FF] = act(x @ Wg^T) * (x @ Wu^T) (no biases). gate and up
     * [N, FF] are the core's buffers for the two products, workspace here (contents unspecified
     * after). need_h 0: nothing but the next matmul reads h, which may then exist only in the
     * backend's own form for that GEMM (a bf16 copy) and not as float32 */
    int (*mlp_glu)(lop_backend *be, float *h, float *gate, float *up, const float *x,
                   const lop_wref *wg, const lop_wref *wu, int N, int FF, lop_act act, int need_h,
                   lop_gemm g, lop_err *e);
    /* rmsnorm whose output only the next matmuls read (no hook): with g bf16 a device may keep
     * it in their form only, not as float32 */
    int (*rmsnorm_gemm_in)(lop_backend *be, float *out, float *rstd, const float *x,
                           const lop_wref *w, int N, int C, float eps, int gemma, lop_gemm g,
                           lop_err *e);

    /* ---- training: LoRA in the forward, every backward, the optimizer (NULL in a backend
     * that cannot train). Gradients, AdamW states, LoRA matrices and trainable weights are
     * float32 backend memory (alloc); a trainable weight reaches the ops as a lop_wref with
     * bemem = 1 (frozen ones stay in their stored dtype). Every backward ACCUMULATES (+=) into
     * its gradient outputs, except where an op takes `overwrite` (or lop_attn_bwd_args.overwrite):
     * 1 there makes its activation-gradient outputs (din, dx, dgate/dup, dq/dk/dv) plain stores
     * whose old contents are never read, so the first writer of a buffer needs no zeroing pass
     * before it (a zero and a read of the zeros cost two passes over it: 6% of a GPU step).
     * Weight gradients always accumulate (micro-batches add up). A NULL gradient is not computed. ---- */

    /* p[0 .. n bytes) = 0 */
    int (*zero)(lop_backend *be, void *p, size_t n, lop_err *e);
    /* LoRA beside a matmul (after it): xa[N, r] = drop(x)[N, IC] @ A[r, IC]^T (kept for the
     * backward), out[N, OC] += scale * xa @ B[OC, r]^T. drop(x) = x when dropout <= 0, else
     * x[i] / (1 - dropout) where lop_dropout_keep(seed, key, i, dropout), 0 elsewhere, written
     * into tmp [N, IC] (unused without dropout). */
    int (*lora_forward)(lop_backend *be, float *out, float *xa, float *tmp, const float *x,
                        const float *A, const float *B, int N, int IC, int OC, int r, float scale,
                        float dropout, uint64_t seed, uint64_t key, lop_gemm g, lop_err *e);
    /* matmul backward (forward: matmul): din[N, IC] += dout[N, OC] @ W (overwrite: =);
     * dw[OC, IC] += dout^T @ x; dbias[OC] += column sums of dout. W = w [OC = w->rows,
     * IC = w->cols] in its stored dtype (frozen) or float32 (bemem: trainable, then dw is its
     * gradient). */
    int (*matmul_backward)(lop_backend *be, float *din, float *dw, float *dbias, const float *dout,
                           const float *x, const lop_wref *w, int N, lop_gemm g, int overwrite,
                           lop_err *e);
    /* LoRA backward (x, xa as in lora_forward): dxa[N, r] = scale * dout[N, OC] @ B (scratch,
     * overwritten); dB[OC, r] += scale * dout^T @ xa; dA[r, IC] += dxa^T @ drop(x);
     * din[N, IC] += drop'(dxa @ A) (overwrite: =; the same mask and 1/(1-p)); tmp [N, IC]
     * scratch. */
    int (*lora_backward)(lop_backend *be, float *din, float *dA, float *dB, float *dxa, float *tmp,
                         const float *dout, const float *x, const float *xa, const float *A,
                         const float *B, int N, int IC, int OC, int r, float scale, float dropout,
                         uint64_t seed, uint64_t key, lop_gemm g, int overwrite, lop_err *e);
    /* rmsnorm backward (forward: rmsnorm with rstd[N] kept): dx[N, C] += dL/dx (overwrite: =),
     * dw[C] += dL/dw given dout[N, C] and the forward's input x[N, C]; gemma: the weight acts as
     * 1 + w. The q/k norms are N*heads rows of C = head_dim. */
    int (*rmsnorm_backward)(lop_backend *be, float *dx, float *dw, const float *dout,
                            const float *x, const float *rstd, const lop_wref *w, int N, int C,
                            int gemma, int overwrite, lop_err *e);
    /* rope backward: dx[N, H*D] (dL/d rotated) rotated back in place by the table cs[N, D]
     * (rope_table's; the rotation is orthogonal, so its transpose is the inverse) */
    int (*rope_backward)(lop_backend *be, float *dx, const float *cs, int N, int H, int D,
                         lop_err *e);
    int (*attention_backward)(lop_backend *be, const lop_attn_bwd_args *a, lop_err *e);
    /* GLU backward (forward: glu, h = act(gate) * up): dgate[n] += dh * act'(gate) * up,
     * dup[n] += dh * act(gate) (overwrite: =); g: the precision of the GEMMs that read dgate and
     * dup next (bf16: a device may round them for those GEMMs in this same pass) */
    int (*glu_backward)(lop_backend *be, float *dgate, float *dup, const float *dh,
                        const float *gate, const float *up, size_t n, lop_act act, int overwrite,
                        lop_gemm g, lop_err *e);
    /* embedding backward: dtable[ids[n], :] += dout[n, :] * scale; ids host [N]; dtable [V, C];
     * repeated ids add in row order (deterministic) */
    int (*embed_backward)(lop_backend *be, float *dtable, const float *dout, const int32_t *ids,
                          int N, int C, float scale, lop_err *e);
    /* training head over a chunk of n rows: logits[n, V] = xn[n, C] @ W[V, C]^T, then
     * softcap > 0: logits = softcap * tanh(logits / softcap), copied into capped[n, V] for the
     * backward (capped unused without softcap; NULL when no backward follows: a teacher's rows).
     * W = w (V = w->rows, C = w->cols). */
    int (*head_logits)(lop_backend *be, float *logits, float *capped, const float *xn, int n,
                       const lop_wref *w, float softcap, lop_gemm g, lop_err *e);
    /* its backward: dlogits[n, V] (the loss's dL/dlogits of the capped logits) is taken through
     * the softcap in place (capped: head_logits's), then dxn[n, C] += dlogits @ W and
     * dw[V, C] += dlogits^T @ xn (dw NULL: frozen or tied-and-frozen head) */
    int (*head_backward)(lop_backend *be, float *dxn, float *dw, float *dlogits,
                         const float *capped, const float *xn, int n, const lop_wref *w,
                         float softcap, lop_gemm g, lop_err *e);
    /* masked cross-entropy over logits[n, V] (grad.h: tr_xent_loss): rows with targets[r] in
     * [0, V) (host [n]) score logsumexp - logit[target]; logits are overwritten with
     * gscale * dL/dlogits (rows without a target: 0); *loss_sum (host) = the rows' sum, added
     * in row order, *scored (host) = their count */
    int (*xent)(lop_backend *be, float *logits, const int32_t *targets, int n, int V, float gscale,
                double *loss_sum, int64_t *scored, lop_err *e);
    /* *out (host) = sum of g[i]^2 for i < n, in double (fixed blocks of 65536 summed in order:
     * the same for any thread count) */
    int (*grad_sumsq)(lop_backend *be, double *out, const float *g, size_t n, lop_err *e);
    /* one AdamW step (optim.h, PyTorch's semantics) on p[n]: g[n] is first scaled in place by
     * clip (1: unchanged), then decoupled decay hp->wd, moments m[n], v[n], bias correction of
     * step t (1-based); zero_bits [(n+7)/8] (backend memory) or NULL: elements whose bit is set
     * are held at exactly 0 */
    int (*adamw)(lop_backend *be, float *p, float *g, float *m, float *v, const uint8_t *zero_bits,
                 size_t n, float clip, double lr, const adamw_hp *hp, int64_t t, lop_err *e);
    /* optional: the same step over items[0 .. n) at once, each as adamw would (the same bits);
     * a device runs it as one launch instead of one per tensor (NULL: the core loops adamw) */
    int (*adamw_many)(lop_backend *be, const lop_adamw_item *items, int n, float clip, double lr,
                      const adamw_hp *hp, int64_t t, lop_err *e);
    /* optional: a projection and its LoRA adapter in one op (matmul then lora_forward, no bias):
     * out[N, OC] = x[N, IC] @ W^T + scale * xa @ B^T, xa[N, r] kept as lora_forward keeps it,
     * tmp its dropout scratch. A device runs the adapter's product first and the projection's
     * GEMM over it (beta = 1): out is written once and read inside a compute-bound GEMM, where
     * matmul then lora_forward write it, read it and write it again. NULL or a return of 1: the
     * core runs matmul and lora_forward. Where it exists the core also runs each adapted
     * projection's backward LoRA first (lora_backward storing din) and matmul_backward second
     * (adding into din inside its GEMM), for the same reason. */
    int (*lora_matmul)(lop_backend *be, float *out, float *xa, float *tmp, const float *x,
                       const lop_wref *w, const float *A, const float *B, int N, int r, float scale,
                       float dropout, uint64_t seed, uint64_t key, lop_gemm g, lop_err *e);
} lop_backend_ops;

struct lop_backend {
    const lop_backend_ops *op;
    char name[32];     /* "cpu", "cuda:0" */
    int host_mem;      /* buffers are host memory: hooks read them in place */
    int device;        /* cuda device index (-1: cpu) */
    int att_recompute; /* attention_backward recomputes the probabilities from q and k: a forward
                          for a backward keeps no lop_attn_args.att */
};

/* The CPU backend for a model of config c (scratch sized for its vectors). */
int lop_backend_cpu_new(lop_backend **out, const lop_config *c, lop_err *e);
/* The CUDA backend on device `dev`; in a build without CUDA: an error saying so. */
int lop_backend_cuda_new(lop_backend **out, int dev, const lop_config *c, lop_err *e);
/* Does this build have the CUDA backend? */
int lop_backend_has_cuda(void);
/* A symbol of liblop_cuda.so beyond the seam (e.g. "lop_cuda_kd_loss"), or NULL */
void *lop_backend_cuda_sym(const char *name);
/* "cpu" -> -1, "cuda" -> 0, "cuda:N" -> N; -2 if neither */
int lop_device_parse(const char *s);

/* The CPU head kernel (model_head.c), also the host reducer a device head falls back to for
 * top-k / full logits / block callbacks. */
int head_forward_cpu(const lop_head_args *a, lop_head_req *h, lop_err *e);
#endif
