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
} lop_backend_ops;

struct lop_backend {
    const lop_backend_ops *op;
    char name[32];     /* "cpu", "cuda:0" */
    int host_mem;      /* buffers are host memory: hooks read them in place */
    int device;        /* cuda device index (-1: cpu) */
};

/* The CPU backend for a model of config c (scratch sized for its vectors). */
int lop_backend_cpu_new(lop_backend **out, const lop_config *c, lop_err *e);
/* The CUDA backend on device `dev`; in a build without CUDA: an error saying so. */
int lop_backend_cuda_new(lop_backend **out, int dev, const lop_config *c, lop_err *e);
/* Does this build have the CUDA backend? */
int lop_backend_has_cuda(void);
/* "cpu" -> -1, "cuda" -> 0, "cuda:N" -> N; -2 if neither */
int lop_device_parse(const char *s);

/* The CPU head kernel (model_head.c), also the host reducer a device head falls back to for
 * top-k / full logits / block callbacks. */
int head_forward_cpu(const lop_head_args *a, lop_head_req *h, lop_err *e);
#endif
