/* backend_cuda_train.cu — the CUDA backend's training ops (backend.h's seam: LoRA beside a matmul,
 * every backward, the training head, cross-entropy, the global norm, AdamW) over the kernels of
 * grad.cuh, plus distillation's loss (lop_cuda_kd, found with dlsym: the seam runs other losses on
 * host logits).
 *
 * Precision: lop_gemm bf16 runs the backward GEMMs on bf16 tensor cores (weights as stored, a
 * trainable float32 weight through a bf16 copy that each AdamW step rewrites, activations and
 * gradients rounded once per product) with float32 accumulation into float32 gradients; f32 runs
 * cublasSgemm without TF32. Every other op is float32 (double where the CPU kernel sums in double);
 * AdamW, RoPE's and the embedding's backwards are the CPU's bits.
 *
 * Attention: the forward's probabilities are not needed (a->att may be NULL): the backward
 * recomputes them, per call, from q and k — on tensor cores through batched GEMMs over a scratch
 * of the scores of a group of (sequence, head) pairs (attention_bwd_gemm.cu), or with the flash
 * kernel tile by tile from each row's logsumexp (attention_bwd.cu; LOP_CUDA_ATTN_BWD=flash, and
 * sequences too long for the scratch). */
#include "backend_cuda_train.cuh"
#include "grad.cuh"
#include "kernels.cuh"
#include <stdlib.h>
#include <string.h>
#include <math.h>
extern "C" {
#include "kd.h"
}

#define CU(call, what)                                                                         \
    do {                                                                                       \
        cudaError_t rc_ = (call);                                                              \
        if (rc_ != cudaSuccess)                                                                \
            return lop_fail(e, "cuda: %s failed: %s", what, cudaGetErrorString(rc_));          \
    } while (0)

/* ---------------------------------------------------------------- state: bf16 copies */

typedef struct shadow { const float *p; size_t n; __nv_bfloat16 *b; int valid; } shadow;

/* bf16 copies of float32 arrays that the backward's bf16 GEMMs read, each made once and reused
 * while only matmul and LoRA backwards run (they write neither those arrays nor the copies; any
 * other op ends every copy's life): the input of q, k and v (one for three), of gate and up; the
 * GLU backward's two outputs, written by its kernel beside the float32 (the gate and up
 * backwards' dout, no conversion pass); a frozen matmul's dout, read again by the LoRA products
 * beside it. */
#define BFC_SLOTS 4
typedef struct bfc {
    const float *src;  /* the float32 array [n] this copies, NULL: free */
    size_t n, cap;
    __nv_bfloat16 *b;  /* [cap] */
    unsigned long gen; /* alive at this cu_gen (kept alive by each chain op) */
    unsigned long op;  /* the cu_gen of the op that last made or read it (eviction: least recent) */
} bfc;
typedef struct train_st {
    shadow *sh;
    int nsh, capsh;
    int pool_set;
    double *sq_part, *sq_host;  /* grad_sumsq: partials (device), the result (pinned host) */
    size_t sq_cap;
    bfc bf[BFC_SLOTS];
    /* adamw_many's table: pinned host staging, its device copy, and the event after the copy
     * (the staging is rewritten only once the last copy has left it) */
    void *aw_host, *aw_dev;
    size_t aw_cap;
    cudaEvent_t aw_ev;
    int aw_ev_ok;
    /* xent's gradient rounded to bf16 in the same pass, for the head_backward that follows */
    __nv_bfloat16 *xl_b;
    size_t xl_cap, xl_n;
    const float *xl_src;
    unsigned long xl_gen;
} train_st;

static train_st *st_of(lop_backend *be) {
    void **s = cu_train_state(be);
    if (!*s) {
        train_st *t = (train_st *)calloc(1, sizeof *t);
        if (!t) return NULL;
        /* scratch of the kernels comes from the stream-ordered pool: keep what it holds between
         * steps instead of giving it back at every synchronization */
        cudaMemPool_t pool;
        if (cudaDeviceGetDefaultMemPool(&pool, be->device) == cudaSuccess) {
            uint64_t thr = UINT64_MAX;
            cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &thr);
            t->pool_set = 1;
        }
        cudaGetLastError();
        *s = t;
    }
    return (train_st *)*s;
}

void cu_train_destroy(lop_backend *be) {
    train_st *t = (train_st *)*cu_train_state(be);
    if (!t) return;
    for (int i = 0; i < t->nsh; i++) cudaFree(t->sh[i].b);
    free(t->sh);
    if (t->sq_part) cudaFree(t->sq_part);
    if (t->sq_host) cudaFreeHost(t->sq_host);
    if (t->xl_b) cudaFree(t->xl_b);
    for (int i = 0; i < BFC_SLOTS; i++) cudaFree(t->bf[i].b);
    if (t->aw_host) cudaFreeHost(t->aw_host);
    if (t->aw_dev) cudaFree(t->aw_dev);
    if (t->aw_ev_ok) cudaEventDestroy(t->aw_ev);
    free(t);
    *cu_train_state(be) = NULL;
}

static shadow *shadow_find(train_st *t, const float *p, size_t n) {
    for (int i = 0; i < t->nsh; i++)
        if (t->sh[i].p == p && t->sh[i].n == n) return &t->sh[i];
    return NULL;
}

const __nv_bfloat16 *cu_train_bf16_of(lop_backend *be, const lop_wref *w, lop_err *e) {
    train_st *t = st_of(be);
    if (!t) { lop_fail(e, "out of memory"); return NULL; }
    const float *p = (const float *)w->data;
    size_t n = (size_t)(w->rows * w->cols);
    shadow *s = shadow_find(t, p, n);
    if (!s) {
        if (t->nsh == t->capsh) {
            int nc = t->capsh ? 2 * t->capsh : 64;
            shadow *ns = (shadow *)realloc(t->sh, sizeof *ns * nc);
            if (!ns) { lop_fail(e, "out of memory"); return NULL; }
            t->sh = ns;
            t->capsh = nc;
        }
        s = &t->sh[t->nsh];
        *s = (shadow){p, n, NULL, 0};
        if (cudaMalloc((void **)&s->b, n * 2) != cudaSuccess) {
            cudaGetLastError();
            lop_fail(e, "%s: out of GPU memory for the bf16 copy of %s (%zu MB)", be->name,
                     w->name ? w->name : "a trainable weight", (n * 2) >> 20);
            return NULL;
        }
        t->nsh++;
    }
    if (!s->valid) {
        cudaError_t r = k_to_bf16(s->b, p, KDT_F32, n, cu_stream_of(be));
        if (r != cudaSuccess) { lop_fail(e, "cuda: bf16 copy: %s", cudaGetErrorString(r)); return NULL; }
        s->valid = 1;
    }
    return s->b;
}

void cu_train_written(lop_backend *be, const void *p, size_t n) {
    train_st *t = (train_st *)*cu_train_state(be);
    if (!t) return;
    const char *a = (const char *)p, *b = a + n;
    for (int i = 0; i < t->nsh; i++) {
        const char *x = (const char *)t->sh[i].p, *y = x + t->sh[i].n * 4;
        if (!p || (x < b && a < y)) t->sh[i].valid = 0;
    }
    for (int i = 0; i < BFC_SLOTS; i++) {
        const char *x = (const char *)t->bf[i].src, *y = x + t->bf[i].n * 4;
        if (x && (!p || (x < b && a < y))) t->bf[i].src = NULL;
    }
}

/* the operand a GEMM reads for weight w and its element type (*wdt, KDT_*): a frozen weight as
 * stored on the device (F64 is stored as F32), a trainable one in place or, for bf16 GEMMs, its
 * bf16 copy */
static const void *gemm_weight(lop_backend *be, const lop_wref *w, int bf16, int *wdt, lop_err *e) {
    if (w->bemem) {
        *wdt = bf16 ? KDT_BF16 : KDT_F32;
        return bf16 ? (const void *)cu_train_bf16_of(be, w, e) : w->data;
    }
    *wdt = w->dtype == ST_BF16 ? KDT_BF16 : w->dtype == ST_F16 ? KDT_F16 : KDT_F32;
    return cu_weight_of(be, w, 0, e);
}

#define PROF(kind, body)                     \
    do {                                     \
        cu_prof_begin(be);                   \
        cu_touch(be);                        \
        int r__ = (body);                    \
        cu_prof_end(be, kind);               \
        return r__;                          \
    } while (0)

/* ---------------------------------------------------------------- ops */

static int zero_impl(lop_backend *be, void *p, size_t n, lop_err *e) {
    cu_train_written(be, p, n);
    if (n) CU(cudaMemsetAsync(p, 0, n, cu_stream_of(be)), "memset");
    return 0;
}

int cu_zero(lop_backend *be, void *p, size_t n, lop_err *e) { PROF(TP_ZERO, zero_impl(be, p, n, e)); }

/* LoRA's rank-r products: float32, or in a bf16 run TF32 tensor cores (their skinny shapes
 * [N, IC] x [IC, r] are most of a LoRA step in float32: 32% of the 4B card's) */
static int lora_fwd(lop_backend *be, float *out, float *xa, float *tmp, const float *x,
                    const float *A, const float *B, int N, int IC, int OC, int r, float scale,
                    float dropout, uint64_t seed, uint64_t key, lop_gemm g, lop_err *e) {
    cu_xbf_pass(be, x);
    CU(kg_lora_forward(cu_blas_of(be), out, xa, tmp, x, A, B, N, IC, OC, r, scale, dropout, seed,
                       key, g == LOP_GEMM_BF16, cu_stream_of(be)), "LoRA forward");
    return 0;
}

int cu_lora_forward(lop_backend *be, float *out, float *xa, float *tmp, const float *x,
                    const float *A, const float *B, int N, int IC, int OC, int r, float scale,
                    float dropout, uint64_t seed, uint64_t key, lop_gemm g, lop_err *e) {
    PROF(TP_LORA, lora_fwd(be, out, xa, tmp, x, A, B, N, IC, OC, r, scale, dropout, seed, key, g, e));
}

/* a chain op (matmul / LoRA backward) begins, after its cu_touch: the copies alive at the op
 * before live on, except those of the arrays it writes (out[k] of bytes[k]) */
static void bfc_chain(train_st *t, unsigned long gen, void *const *out, const size_t *bytes, int nout) {
    for (int i = 0; i < BFC_SLOTS; i++) {
        bfc *c = &t->bf[i];
        if (!c->src || c->gen + 1 != gen) { c->src = NULL; continue; }
        const char *a = (const char *)c->src, *b = a + c->n * 4;
        int hit = 0;
        for (int k = 0; k < nout; k++)
            if (out[k] && (const char *)out[k] < b && a < (const char *)out[k] + bytes[k]) hit = 1;
        if (hit) c->src = NULL;
        else c->gen = gen;
    }
}

/* the live copy of src[n], or NULL */
static const __nv_bfloat16 *bfc_find(train_st *t, unsigned long gen, const float *src, size_t n) {
    for (int i = 0; i < BFC_SLOTS; i++)
        if (t->bf[i].src == src && t->bf[i].n == n && t->bf[i].gen == gen) {
            t->bf[i].op = gen;
            return t->bf[i].b;
        }
    return NULL;
}

/* a slot for a copy of src[n] made now (a dead one, else the live one read least recently, never
 * one this op uses), grown as needed; with convert the copy is made here, else the caller's
 * kernel writes it. NULL: no slot or no memory (the caller then converts into scratch of its
 * own) */
static __nv_bfloat16 *bfc_make(lop_backend *be, train_st *t, const float *src, size_t n, int convert) {
    unsigned long gen = cu_gen(be);
    bfc *c = NULL;
    for (int i = 0; i < BFC_SLOTS && !c; i++)
        if (!t->bf[i].src || t->bf[i].gen != gen) c = &t->bf[i];
    if (!c)
        for (int i = 0; i < BFC_SLOTS; i++)
            if (t->bf[i].op != gen && (!c || t->bf[i].op < c->op)) c = &t->bf[i];
    if (!c) return NULL; /* every slot holds a copy this very op reads */
    c->src = NULL;
    if (n > c->cap) {
        cudaFree(c->b);
        c->b = NULL;
        c->cap = 0;
        if (cudaMalloc((void **)&c->b, n * 2) != cudaSuccess) { cudaGetLastError(); return NULL; }
        c->cap = n;
    }
    if (convert && k_to_bf16(c->b, src, KDT_F32, n, cu_stream_of(be)) != cudaSuccess) return NULL;
    c->src = src;
    c->n = n;
    c->gen = c->op = gen;
    return c->b;
}

/* the copy of src[n] for a bf16 GEMM: the live one, or one made now */
static const __nv_bfloat16 *bfc_get(lop_backend *be, train_st *t, const float *src, size_t n) {
    const __nv_bfloat16 *b = bfc_find(t, cu_gen(be), src, n);
    return b ? b : bfc_make(be, t, src, n, 1);
}

static int matmul_bwd(lop_backend *be, float *din, float *dw, float *dbias, const float *dout,
                      const float *x, const lop_wref *w, int N, lop_gemm g, int set, lop_err *e) {
    int bf16 = g == LOP_GEMM_BF16, wdt = KDT_F32;
    size_t IC = (size_t)w->cols, OC = (size_t)w->rows;
    train_st *t = st_of(be);
    if (!t) return lop_fail(e, "out of memory");
    void *outs[3] = {din, dw, dbias};
    size_t ob[3] = {4 * N * IC, 4 * OC * IC, 4 * OC};
    bfc_chain(t, cu_gen(be), outs, ob, 3);
    const void *W = NULL;
    if (din && !(W = gemm_weight(be, w, bf16, &wdt, e))) return -1;
    const __nv_bfloat16 *db = bf16 ? bfc_get(be, t, dout, (size_t)N * OC) : NULL;
    const __nv_bfloat16 *xb = bf16 && dw ? bfc_get(be, t, x, (size_t)N * IC) : NULL;
    CU(kg_matmul_backward(cu_blas_of(be), din, dw, dbias, dout, x, W, wdt, N, (int)IC, (int)OC, bf16, db,
                          xb, set, cu_stream_of(be)), "matmul backward");
    return 0;
}

int cu_matmul_backward(lop_backend *be, float *din, float *dw, float *dbias, const float *dout,
                       const float *x, const lop_wref *w, int N, lop_gemm g, int overwrite, lop_err *e) {
    PROF(TP_MATMUL, matmul_bwd(be, din, dw, dbias, dout, x, w, N, g, overwrite, e));
}

/* in a bf16 run the products with dout (dxa and dB) read the bf16 copy of dout the frozen GEMM's
 * backward just made (the largest operand, read twice), with B's bf16 copy; the others (dA, din)
 * stay TF32 over float32 x and din */
static int lora_bwd(lop_backend *be, float *din, float *dA, float *dB, float *dxa, float *tmp,
                    const float *dout, const float *x, const float *xa, const float *A,
                    const float *B, int N, int IC, int OC, int r, float scale, float dropout,
                    uint64_t seed, uint64_t key, lop_gemm g, int set, lop_err *e) {
    train_st *t = st_of(be);
    if (!t) return lop_fail(e, "out of memory");
    void *outs[5] = {din, dA, dB, dxa, tmp};
    size_t ob[5] = {(size_t)4 * N * IC, (size_t)4 * r * IC, (size_t)4 * OC * r, (size_t)4 * N * r,
                    (size_t)4 * N * IC};
    bfc_chain(t, cu_gen(be), outs, ob, 5);
    const __nv_bfloat16 *db = NULL, *Bb = NULL;
    /* the copy of dout: the frozen GEMM's, or made here for it (with lora_matmul this op runs
     * first and the projection's backward finds it) */
    if (g == LOP_GEMM_BF16 && (db = bfc_get(be, t, dout, (size_t)N * OC))) {
        lop_wref bw = {B, ST_F32, OC, r, "a LoRA B", 1};
        if (!(Bb = cu_train_bf16_of(be, &bw, e))) return -1;
    }
    CU(kg_lora_backward(cu_blas_of(be), din, dA, dB, dxa, tmp, dout, x, xa, A, B, N, IC, OC, r, scale,
                        dropout, seed, key, g == LOP_GEMM_BF16, Bb ? db : NULL, Bb, set, cu_stream_of(be)),
       "LoRA backward");
    return 0;
}

int cu_lora_backward(lop_backend *be, float *din, float *dA, float *dB, float *dxa, float *tmp,
                     const float *dout, const float *x, const float *xa, const float *A,
                     const float *B, int N, int IC, int OC, int r, float scale, float dropout,
                     uint64_t seed, uint64_t key, lop_gemm g, int overwrite, lop_err *e) {
    PROF(TP_LORA, lora_bwd(be, din, dA, dB, dxa, tmp, dout, x, xa, A, B, N, IC, OC, r, scale, dropout,
                           seed, key, g, overwrite, e));
}

/* lora_matmul's adapter half (backend_cuda.cu runs the projection after it): no gen bump, so
 * the bf16 copy of x it reads stays the one the projection's GEMM reads next */
int cu_lora_first(lop_backend *be, float *out, float *xa, float *tmp, const float *x,
                  const __nv_bfloat16 *xb, const float *A, const float *B, int N, int IC, int OC,
                  int r, float scale, float dropout, uint64_t seed, uint64_t key, lop_err *e) {
    const __nv_bfloat16 *Ab = NULL;
    if (dropout <= 0 && xb) {
        lop_wref aw = {A, ST_F32, (int64_t)r, (int64_t)IC, "a LoRA A", 1};
        if (!(Ab = cu_train_bf16_of(be, &aw, e))) return -1;
    }
    CU(kg_lora_first(cu_blas_of(be), out, xa, tmp, x, xb, Ab, A, B, N, IC, OC, r, scale, dropout, seed,
                     key, cu_stream_of(be)), "LoRA forward");
    return 0;
}

static int rmsnorm_bwd(lop_backend *be, float *dx, float *dw, const float *dout, const float *x,
                       const float *rstd, const lop_wref *w, int N, int C, int gemma, int set,
                       lop_err *e) {
    const float *wd = (const float *)cu_weight_of(be, w, 1, e);
    if (!wd) return -1;
    CU(kg_rmsnorm_backward(dx, dw, dout, x, rstd, wd, N, C, gemma, set, cu_stream_of(be)), "rmsnorm backward");
    return 0;
}

int cu_rmsnorm_backward(lop_backend *be, float *dx, float *dw, const float *dout, const float *x,
                        const float *rstd, const lop_wref *w, int N, int C, int gemma, int overwrite,
                        lop_err *e) {
    PROF(TP_NORM, rmsnorm_bwd(be, dx, dw, dout, x, rstd, w, N, C, gemma, overwrite, e));
}

static int rope_bwd(lop_backend *be, float *dx, const float *cs, int N, int H, int D, lop_err *e) {
    CU(kg_rope_backward(dx, cs, N, H, D, cu_stream_of(be)), "rope backward");
    return 0;
}

int cu_rope_backward(lop_backend *be, float *dx, const float *cs, int N, int H, int D, lop_err *e) {
    PROF(TP_ROPE, rope_bwd(be, dx, cs, N, H, D, e));
}

/* bf16 (the forward's output at hand, a supported head dim): the fused tensor-core kernel
 * (attention_bwd_mma.cu: no [T, T] scratch); else tensor-core GEMMs over recomputed scores when a
 * group of pairs fits their scratch, else the float32 flash kernel (attention_bwd.cu).
 * LOP_CUDA_ATTN_BWD = mma (the default) | gemm | flash picks a path (tests, benchmarks). o [N, Hq*D]:
 * the forward's output rows of these queries, or NULL. */
static cudaError_t attn_bwd_one(lop_backend *be, const lop_attn_bwd_args *a, float *dq, float *dk,
                                float *dv, const float *dout, const float *o, const float *q,
                                const float *k, const float *v, int B, int T) {
    /* default: cuBLAS over recomputed scores. The fused tensor-core kernel (LOP_CUDA_ATTN_BWD=mma,
     * exact to the bf16 bound and deterministic in test_cuda) measured slower on the H200:
     * Qwen3-0.6B 56,674 tokens/s against 58,732, Gemma's D=256 0.71 ms a layer against 0.47
     * (its staging is synchronous and its D=128 tiles run two blocks an SM): kept for that work */
    const char *ev = getenv("LOP_CUDA_ATTN_BWD");
    int flash = ev && !strcmp(ev, "flash"), mma = ev && !strcmp(ev, "mma");
    if (mma && a->gemm == LOP_GEMM_BF16 && o && kg_attention_backward_mma_supports(a->D))
        return kg_attention_backward_mma(dq, dk, dv, dout, o, q, k, v, B, T, a->Hq, a->Hkv, a->D, a->scale,
                                         a->softcap, a->window, a->overwrite, cu_stream_of(be));
    if (!flash && kg_attention_backward_gemm_pairs(T) >= (size_t)a->Hq)
        return kg_attention_backward_gemm(cu_blas_of(be), dq, dk, dv, dout, q, k, v, B, T, a->Hq, a->Hkv,
                                          a->D, a->scale, a->softcap, a->window, a->gemm == LOP_GEMM_BF16,
                                          a->overwrite, cu_stream_of(be));
    if (a->overwrite) { /* the flash kernel adds: its rows start at 0 */
        size_t n = (size_t)B * T, qd = (size_t)a->Hq * a->D, kd = (size_t)a->Hkv * a->D;
        cudaStream_t s = cu_stream_of(be);
        cudaError_t r = cudaSuccess;
        if (dq) r = cudaMemsetAsync(dq, 0, sizeof(float) * n * qd, s);
        if (dk && r == cudaSuccess) r = cudaMemsetAsync(dk, 0, sizeof(float) * n * kd, s);
        if (dv && r == cudaSuccess) r = cudaMemsetAsync(dv, 0, sizeof(float) * n * kd, s);
        if (r != cudaSuccess) return r;
    }
    return kg_attention_backward(dq, dk, dv, dout, q, k, v, NULL, B, T, a->Hq, a->Hkv, a->D, a->scale,
                                 a->softcap, a->window, cu_stream_of(be));
}

static int attn_bwd(lop_backend *be, const lop_attn_bwd_args *a, lop_err *e) {
    if (a->D > 256) return lop_fail(e, "cuda: head_dim %d is above the attention backward's 256", a->D);
    int same = 1;
    for (int b = 0; b < a->B; b++) same &= a->len[b] == a->len[0] && a->off[b] == b * a->len[0];
    if (same) {
        CU(attn_bwd_one(be, a, a->dq, a->dk, a->dv, a->dout, a->out, a->q, a->k, a->v, a->B, a->len[0]),
           "attention backward");
        return 0;
    }
    size_t qd = (size_t)a->Hq * a->D, kd = (size_t)a->Hkv * a->D;
    for (int b = 0; b < a->B; b++) {
        size_t r0 = (size_t)a->off[b];
        CU(attn_bwd_one(be, a, a->dq ? a->dq + r0 * qd : NULL, a->dk ? a->dk + r0 * kd : NULL,
                        a->dv ? a->dv + r0 * kd : NULL, a->dout + r0 * qd, a->out ? a->out + r0 * qd : NULL,
                        a->q + r0 * qd, a->k + r0 * kd, a->v + r0 * kd, 1, a->len[b]),
           "attention backward");
    }
    return 0;
}

int cu_attention_backward(lop_backend *be, const lop_attn_bwd_args *a, lop_err *e) {
    PROF(TP_ATTN, attn_bwd(be, a, e));
}

/* in a bf16 run the kernel also writes bf16 copies of dgate and dup for the GEMMs that read them
 * next (the gate and up backwards): no conversion pass over either */
static int glu_bwd(lop_backend *be, float *dgate, float *dup, const float *dh, const float *gate,
                   const float *up, size_t n, lop_act act, int set, lop_gemm g, lop_err *e) {
    train_st *t = g == LOP_GEMM_BF16 ? st_of(be) : NULL;
    __nv_bfloat16 *gb = t && dgate ? bfc_make(be, t, dgate, n, 0) : NULL;
    __nv_bfloat16 *ub = t && dup ? bfc_make(be, t, dup, n, 0) : NULL;
    CU(kg_glu_backward(dgate, dup, dh, gate, up, n, act == ACT_GELU_TANH, set, gb, ub, cu_stream_of(be)),
       "glu backward");
    return 0;
}

int cu_glu_backward(lop_backend *be, float *dgate, float *dup, const float *dh, const float *gate,
                    const float *up, size_t n, lop_act act, int overwrite, lop_gemm g, lop_err *e) {
    PROF(TP_GLU, glu_bwd(be, dgate, dup, dh, gate, up, n, act, overwrite, g, e));
}

static int embed_bwd(lop_backend *be, float *dtable, const float *dout, const int32_t *ids, int N,
                     int C, float scale, lop_err *e) {
    CU(kg_embedding_backward(dtable, dout, ids, N, C, scale, cu_stream_of(be)), "embedding backward");
    return 0;
}

int cu_embed_backward(lop_backend *be, float *dtable, const float *dout, const int32_t *ids, int N,
                      int C, float scale, lop_err *e) {
    PROF(TP_EMBED, embed_bwd(be, dtable, dout, ids, N, C, scale, e));
}

static int head_fwd(lop_backend *be, float *logits, float *capped, const float *xn, int n,
                    const lop_wref *w, float softcap, lop_gemm g, lop_err *e) {
    int bf16 = g == LOP_GEMM_BF16, wdt = KDT_F32, C = (int)w->cols, V = (int)w->rows;
    const void *W = gemm_weight(be, w, bf16, &wdt, e);
    if (!W) return -1;
    cudaStream_t s = cu_stream_of(be);
    cublasHandle_t h = cu_blas_of(be);
    cublasSetStream(h, s);
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t bs;
    void *tmp = NULL;
    if (bf16) { /* x rounded once; a float32 weight rounded (a trainable one has its copy) */
        size_t nx = (size_t)n * C;
        CU(cudaMallocAsync(&tmp, nx * 2 + (wdt == KDT_BF16 ? 0 : (size_t)V * C * 2), s), "alloc");
        __nv_bfloat16 *xb = (__nv_bfloat16 *)tmp, *wb = xb + nx;
        CU(k_to_bf16(xb, xn, KDT_F32, nx, s), "x to bf16");
        if (wdt != KDT_BF16) { CU(k_to_bf16(wb, W, wdt, (size_t)V * C, s), "W to bf16"); W = wb; }
        bs = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, V, n, C, &one, W, CUDA_R_16BF, C, xb, CUDA_R_16BF,
                          C, &zero, logits, CUDA_R_32F, V, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    } else {
        if (wdt != KDT_F32) {
            CU(cudaMallocAsync(&tmp, (size_t)V * C * 4, s), "alloc");
            CU(k_to_f32((float *)tmp, W, wdt, (size_t)V * C, s), "W to f32");
            W = tmp;
        }
        bs = cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, V, n, C, &one, (const float *)W, C, xn, C, &zero,
                         logits, V);
    }
    if (tmp) cudaFreeAsync(tmp, s);
    if (bs != CUBLAS_STATUS_SUCCESS) return lop_fail(e, "cublas: head GEMM failed (%d)", (int)bs);
    if (softcap > 0) {
        CU(kg_softcap_forward(logits, (size_t)n * V, softcap, s), "softcap");
        if (capped) /* NULL: no backward follows (a teacher's rows) */
            CU(cudaMemcpyAsync(capped, logits, sizeof(float) * (size_t)n * V, cudaMemcpyDeviceToDevice, s), "copy");
    }
    return 0;
}

int cu_head_logits(lop_backend *be, float *logits, float *capped, const float *xn, int n,
                   const lop_wref *w, float softcap, lop_gemm g, lop_err *e) {
    PROF(TP_HEAD, head_fwd(be, logits, capped, xn, n, w, softcap, g, e));
}

static int head_bwd(lop_backend *be, float *dxn, float *dw, float *dlogits, const float *capped,
                    const float *xn, int n, const lop_wref *w, float softcap, lop_gemm g, lop_err *e) {
    int V = (int)w->rows;
    if (softcap > 0)
        CU(kg_softcap_backward(dlogits, capped, (size_t)n * V, softcap, cu_stream_of(be)), "softcap backward");
    /* the bf16 copy xent wrote of these very gradients, when nothing has run since */
    train_st *t = (train_st *)*cu_train_state(be);
    const __nv_bfloat16 *db = NULL;
    if (t && g == LOP_GEMM_BF16 && softcap <= 0 && t->xl_src == dlogits && t->xl_n == (size_t)n * V &&
        t->xl_gen + 1 == cu_gen(be))
        db = t->xl_b;
    if (t) t->xl_src = NULL;
    int bf16 = g == LOP_GEMM_BF16, wdt = KDT_F32;
    const void *W = NULL;
    if (dxn && !(W = gemm_weight(be, w, bf16, &wdt, e))) return -1;
    CU(kg_matmul_backward(cu_blas_of(be), dxn, dw, NULL, dlogits, xn, W, wdt, n, (int)w->cols, V, bf16, db,
                          NULL, 0, cu_stream_of(be)), "head backward");
    return 0;
}

int cu_head_backward(lop_backend *be, float *dxn, float *dw, float *dlogits, const float *capped,
                     const float *xn, int n, const lop_wref *w, float softcap, lop_gemm g,
                     lop_err *e) {
    PROF(TP_HEAD, head_bwd(be, dxn, dw, dlogits, capped, xn, n, w, softcap, g, e));
}

static int xent_impl(lop_backend *be, float *logits, const int32_t *targets, int n, int V,
                     float gscale, double *loss_sum, int64_t *scored, lop_err *e) {
    *loss_sum = 0;
    *scored = 0;
    if (n <= 0) return 0;
    cudaStream_t s = cu_stream_of(be);
    void *buf = NULL;
    CU(cudaMallocAsync(&buf, sizeof(double) * n + sizeof(int32_t) * n, s), "alloc");
    double *dl = (double *)buf;
    int32_t *dt = (int32_t *)(dl + n);
    double *hl = (double *)malloc(sizeof(double) * n);
    if (!hl) { cudaFreeAsync(buf, s); return lop_fail(e, "out of memory"); }
    /* a bf16 copy of the gradient for head_backward's GEMMs (bf16 runs) */
    train_st *t = st_of(be);
    __nv_bfloat16 *xb = NULL;
    size_t nv = (size_t)n * V;
    if (t && t->xl_cap < nv) {
        if (t->xl_b) cudaFree(t->xl_b);
        t->xl_b = NULL;
        t->xl_cap = 0;
        if (cudaMalloc((void **)&t->xl_b, nv * 2) == cudaSuccess) t->xl_cap = nv;
        else cudaGetLastError();
    }
    if (t && t->xl_cap >= nv) xb = t->xl_b;
    cudaError_t r = cudaMemcpyAsync(dt, targets, sizeof(int32_t) * n, cudaMemcpyHostToDevice, s);
    if (r == cudaSuccess) r = kg_xent_backward(logits, V, dl, dt, n, V, 0.0f, gscale, xb, s);
    if (t) {
        t->xl_src = r == cudaSuccess && xb ? logits : NULL;
        t->xl_n = nv;
        t->xl_gen = cu_gen(be);
    }
    if (r == cudaSuccess) r = cudaMemcpyAsync(hl, dl, sizeof(double) * n, cudaMemcpyDeviceToHost, s);
    if (r == cudaSuccess) r = cudaStreamSynchronize(s);
    cudaFreeAsync(buf, s);
    if (r != cudaSuccess) { free(hl); return lop_fail(e, "cuda: cross-entropy: %s", cudaGetErrorString(r)); }
    double sum = 0;
    int64_t k = 0;
    for (int i = 0; i < n; i++) /* rows in order, as grad_xent.c */
        if (targets[i] >= 0 && targets[i] < V) { sum += hl[i]; k++; }
    free(hl);
    *loss_sum = sum;
    *scored = k;
    return 0;
}

int cu_xent(lop_backend *be, float *logits, const int32_t *targets, int n, int V, float gscale,
            double *loss_sum, int64_t *scored, lop_err *e) {
    PROF(TP_XENT, xent_impl(be, logits, targets, n, V, gscale, loss_sum, scored, e));
}

/* one host sync per call (the seam returns the sum): kept cheap with buffers that persist */
static int sumsq_impl(lop_backend *be, double *out, const float *g, size_t n, lop_err *e) {
    cudaStream_t s = cu_stream_of(be);
    train_st *t = st_of(be);
    if (!t) return lop_fail(e, "out of memory");
    size_t np = kg_sumsq_parts(n) + 1; /* + the result */
    if (np > t->sq_cap) {
        if (t->sq_part) cudaFree(t->sq_part);
        t->sq_part = NULL;
        t->sq_cap = 0;
        size_t want = np < 4096 ? 4096 : np;
        CU(cudaMalloc((void **)&t->sq_part, sizeof(double) * want), "alloc");
        t->sq_cap = want;
    }
    if (!t->sq_host) CU(cudaMallocHost((void **)&t->sq_host, sizeof(double)), "pinned alloc");
    double *res = t->sq_part + np - 1;
    cudaError_t r = kg_sumsq_set(res, t->sq_part, g, n, s);
    if (r == cudaSuccess) r = cudaMemcpyAsync(t->sq_host, res, sizeof(double), cudaMemcpyDeviceToHost, s);
    if (r == cudaSuccess) r = cudaStreamSynchronize(s);
    if (r != cudaSuccess) return lop_fail(e, "cuda: sum of squares: %s", cudaGetErrorString(r));
    *out = *t->sq_host;
    return 0;
}

int cu_grad_sumsq(lop_backend *be, double *out, const float *g, size_t n, lop_err *e) {
    PROF(TP_SUMSQ, sumsq_impl(be, out, g, n, e));
}

static int adamw_impl(lop_backend *be, float *p, float *g, float *m, float *v,
                      const uint8_t *zero_bits, size_t n, float clip, double lr,
                      const adamw_hp *hp, int64_t t, lop_err *e) {
    train_st *ts = st_of(be);
    if (!ts) return lop_fail(e, "out of memory");
    shadow *sh = shadow_find(ts, p, n); /* rewritten with the step: stays valid */
    CU(kg_adamw(p, g, m, v, n, lr, hp->beta1, hp->beta2, hp->eps, hp->wd, t, clip, zero_bits,
                sh ? sh->b : NULL, cu_stream_of(be)), "AdamW");
    if (sh) sh->valid = 1;
    return 0;
}

int cu_adamw(lop_backend *be, float *p, float *g, float *m, float *v, const uint8_t *zero_bits,
             size_t n, float clip, double lr, const adamw_hp *hp, int64_t t, lop_err *e) {
    PROF(TP_ADAMW, adamw_impl(be, p, g, m, v, zero_bits, n, clip, lr, hp, t, e));
}

/* every trainable tensor's AdamW step in one launch: the table of tensors (with each one's bf16
 * copy, rewritten in the same pass) goes up once; the per-tensor launches were 310 a step for
 * Qwen3-0.6B, most of them norms of a few thousand elements */
static int adamw_many_impl(lop_backend *be, const lop_adamw_item *items, int n, float clip, double lr,
                           const adamw_hp *hp, int64_t t, lop_err *e) {
    train_st *ts = st_of(be);
    if (!ts) return lop_fail(e, "out of memory");
    if (n <= 0) return 0;
    cudaStream_t s = cu_stream_of(be);
    size_t bytes = sizeof(kg_adamw_item) * (size_t)n + sizeof(long long) * ((size_t)n + 1);
    if (bytes > ts->aw_cap) {
        if (ts->aw_ev_ok) cudaEventSynchronize(ts->aw_ev);
        if (ts->aw_host) cudaFreeHost(ts->aw_host);
        if (ts->aw_dev) cudaFree(ts->aw_dev);
        ts->aw_host = ts->aw_dev = NULL;
        ts->aw_cap = 0;
        CU(cudaMallocHost(&ts->aw_host, bytes), "pinned alloc");
        CU(cudaMalloc(&ts->aw_dev, bytes), "alloc");
        ts->aw_cap = bytes;
    }
    if (!ts->aw_ev_ok) {
        CU(cudaEventCreateWithFlags(&ts->aw_ev, cudaEventDisableTiming), "event");
        ts->aw_ev_ok = 1;
    } else {
        CU(cudaEventSynchronize(ts->aw_ev), "event wait");
    }
    kg_adamw_item *it = (kg_adamw_item *)ts->aw_host;
    long long *start = (long long *)(it + n);
    long long nch = 0;
    for (int i = 0; i < n; i++) {
        const lop_adamw_item *a = &items[i];
        shadow *w = shadow_find(ts, a->p, a->n);
        double wd = a->decay ? hp->wd : 0.0;
        it[i] = (kg_adamw_item){a->p, a->g, a->m, a->v, a->zero_bits, w ? w->b : NULL, a->n,
                                (float)(1.0 - lr * wd)};
        start[i] = nch;
        nch += (long long)kg_adamw_many_chunks(a->n);
    }
    start[n] = nch;
    CU(cudaMemcpyAsync(ts->aw_dev, ts->aw_host, bytes, cudaMemcpyHostToDevice, s), "upload");
    CU(cudaEventRecord(ts->aw_ev, s), "event");
    CU(kg_adamw_many((const kg_adamw_item *)ts->aw_dev, (const long long *)((kg_adamw_item *)ts->aw_dev + n), n,
                     nch, lr, hp->beta1, hp->beta2, hp->eps, t, clip, s), "AdamW");
    for (int i = 0; i < n; i++) { /* the copies were rewritten with the step: they stay valid */
        shadow *w = shadow_find(ts, items[i].p, items[i].n);
        if (w) w->valid = 1;
    }
    return 0;
}

int cu_adamw_many(lop_backend *be, const lop_adamw_item *items, int n, float clip, double lr,
                  const adamw_hp *hp, int64_t t, lop_err *e) {
    PROF(TP_ADAMW, adamw_many_impl(be, items, n, clip, lr, hp, t, e));
}

/* ---------------------------------------------------------------- distillation */

/* kd-train's loss on the GPU (kd.h's kd_row over n rows, fused and chunked over the vocabulary):
 * zs [n, Vs] student logits in backend memory, overwritten with gscale * dL/dzs; the teacher
 * dense (zt [n, >= V] at row stride ldt) or sparse (ids/logp [n, tk], tail [n], backend memory);
 * targets host [n]; terms host [n, KD_NTERMS + 1]: each term (divergences * T^2) and the weighted
 * loss of the row (rows with target < 0: zeros). Not in the seam (the trainer runs other losses on
 * host logits): found with dlsym by what wants it. */
extern "C" __attribute__((visibility("default"))) int
lop_cuda_kd_loss(lop_backend *be, float *zs, int Vs, int V, const float *zt, int ldt,
                 const int32_t *ids, const float *logp, const float *tail, int tk,
                 const int32_t *targets, int n, const kd_spec *spec, float gscale, double *terms,
                 lop_err *e) {
    if (n <= 0) return 0;
    if (!zt && ids && tk > 512) return lop_fail(e, "cuda: a top-k cache of %d entries per row (at most 512)", tk);
    cu_touch(be);
    cudaStream_t s = cu_stream_of(be);
    kg_kd_spec k;
    for (int i = 0; i < KG_KD_NTERMS; i++) k.w[i] = spec->w[i];
    k.temperature = spec->temperature;
    k.skew = spec->skew;
    k.jsd_beta = spec->jsd_beta;
    void *buf = NULL;
    size_t tb = sizeof(double) * (size_t)n * (KG_KD_NTERMS + 1);
    CU(cudaMallocAsync(&buf, tb + sizeof(int32_t) * n, s), "alloc");
    double *dt = (double *)buf;
    int32_t *dg = (int32_t *)((char *)buf + tb);
    cudaError_t r = cudaMemcpyAsync(dg, targets, sizeof(int32_t) * n, cudaMemcpyHostToDevice, s);
    if (r == cudaSuccess)
        r = kg_kd_backward(zs, Vs, Vs, V, zt, ldt, ids, logp, tail, tk, dg, n, &k, gscale, dt, s);
    if (r == cudaSuccess) r = cudaMemcpyAsync(terms, dt, tb, cudaMemcpyDeviceToHost, s);
    if (r == cudaSuccess) r = cudaStreamSynchronize(s);
    cudaFreeAsync(buf, s);
    if (r != cudaSuccess) return lop_fail(e, "cuda: distillation loss: %s", cudaGetErrorString(r));
    return 0;
}
