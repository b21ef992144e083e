/* backend_cuda.cu — the CUDA backend (backend.h's ops on one GPU): activations in device memory,
 * weights uploaded once in their stored dtype, GEMMs through cuBLAS, the rest through kernels.cu,
 * attention.cu and head.cu.
 *
 * GEMM precision (lop_gemm):
 *   f32  — weights converted to float32 per matrix into a scratch buffer, cublasSgemm with the
 *          default math mode (no TF32): the CPU float32 path's numbers to rounding.
 *   bf16 — activations rounded to bf16 (once per input: q/k/v and gate/up share the conversion),
 *          bf16 weights used as stored, float32 accumulation and output (cublasGemmEx, 32F compute).
 * Everything else stays float32. One stream (the legacy default), so every copy is ordered.
 *
 * This file and its kernels are linked into liblop_cuda.so (with their own copies of err.c and
 * dtype.c), which the tools load only when asked for a GPU (backend_cuda_load.c): a tool run on
 * the CPU never maps cuBLAS or the CUDA runtime. */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
extern "C" {
#include "backend.h"
}
#include "kernels.cuh"
#include "backend_cuda_train.cuh"

#define VCHUNK 16384      /* vocabulary rows per head GEMM (LOP_CUDA_HEAD=vchunk,rows overrides) */
#define HEAD_LOGIT_MB 512 /* the head's logits buffer: rows per chunk = this / (VCHUNK * 4 B) */
#define LT_WS_MB 32       /* cuBLASLt's workspace */
/* the optional fusions (LOP_CUDA_FUSE, a mask): residual in the GEMM's epilogue, gate/up as bf16
 * GEMM outputs + GLU from bf16, GEMM inputs kept in bf16 only when no hook reads them, bf16 GEMMs
 * through cuBLASLt. Measured on an H200 (Qwen3-0.6B bf16, 16 x 512 tokens, tokens/s in one run):
 * none 217k, LT 220k, RESID|PRIVATE|LT 225k, all four 207k: the bf16-output gate/up GEMMs are
 * slower than the float32-output ones plus a float32 GLU (~1 ms a layer in the profile where two
 * 52-GFLOP GEMMs take ~0.2 ms; not understood yet), so FUSE_GLU is off by default. */
enum { FUSE_RESID = 1, FUSE_GLU = 2, FUSE_PRIVATE = 4, FUSE_LT = 8,
       FUSE_DEFAULT = FUSE_RESID | FUSE_PRIVATE | FUSE_LT };

typedef struct dbuf {     /* one device copy of host weight data */
    const void *host;
    st_dtype dt;          /* as stored on the device (F64 is converted to F32 on upload) */
    size_t n;             /* elements */
    int vec;              /* a vector, kept as float32 */
    void *dev;
    int refs, orig, stale;
} dbuf;

typedef struct wslot { const lop_wref *key; dbuf *buf; } wslot;

/* LOP_CUDA_PROFILE=1: the GPU time of each kind of op, from CUDA events recorded on the stream
 * around it (nothing synchronizes: the step runs as it would; gaps between ops are nobody's);
 * LOP_CUDA_PROFILE=sync: wall time with the device synchronized around each op (launch costs
 * included). Totals go to stderr when the backend is destroyed. */
enum { P_EMBED, P_MATMUL, P_MMADD, P_MLP, P_NORM, P_ROPE, P_ATTN, P_GLU, P_ADD, P_HEAD, P_COPY, P_MMLORA, P_TRAIN0,
       P_N = P_TRAIN0 + TP_N };
static const char *prof_names[P_N] = {"embed", "matmul", "matmul+add", "gate,up+glu", "rmsnorm", "rope",
                                      "attention", "glu", "add", "head", "copy", "matmul+lora", "b:matmul",
                                      "lora, b:lora",
                                      "b:rmsnorm", "b:rope", "b:attention", "b:glu", "b:embed", "t:head",
                                      "t:xent", "t:sumsq", "t:adamw", "t:zero"};

enum { S_FLAGS, S_WCONV, S_XBF, S_IDS, S_POS, S_SEQ, S_META, S_HX, S_HXB, S_HLG, S_HST, S_HROW, S_HTGT, S_INV,
       S_N };

/* one cuBLASLt matmul shape (bf16 W^T x [+ float32 residual] -> float32 or bf16), its algorithm
 * chosen once */
typedef struct lt_plan {
    int N, IC, OC, ldo, bf16_out, ok;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, cd;
    cublasLtMatmulAlgo_t algo;
} lt_plan;
#define LT_PLANS 16

typedef struct cu_be {
    lop_backend be;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *ltws;           /* LT_WS_MB of workspace: cuBLASLt's and the cuBLAS handle's */
    lt_plan plan[LT_PLANS];
    int nplan;
    int fuse;             /* FUSE_* bits: the optional fusions (LOP_CUDA_FUSE=0 turns them off) */
    int head_vc, head_rows; /* the head's chunk: vocabulary rows per GEMM, batch rows per GEMM (0: all) */
    int head_discard;     /* drop each logit chunk from L2 once reduced (no write-back) */
    int xbf_only;         /* the bf16 copy in S_XBF is the only copy of its input (mlp_glu, need_h 0) */
    cudaStream_t st;
    void *scr[S_N];
    size_t scr_cap[S_N];
    wslot *slot;          /* open addressing by key */
    int slot_cap, slot_n;
    dbuf **bufs;
    int nbufs, bufs_cap;
    int loading;          /* inside weight_load: buffers made are the model's originals */
    unsigned long gen;    /* bumped by every op that may write device memory, except matmul */
    int hidden;           /* the model's width: norms of this width feed GEMMs */
    int n_slots;          /* NaN/Inf flags: the embedding and each layer */
    lop_gemm last_gemm;   /* of the last matmul: producers write a bf16 copy when it was bf16 */
    const float *xbf_src; /* the bf16 copy in S_XBF is of this input ... */
    size_t xbf_n;
    unsigned long xbf_gen;/* ... made at this gen */
    /* per-forward batch metadata (re-uploaded when it changes) */
    int *h_meta;          /* host copy of what S_META holds */
    size_t h_meta_n;
    int meta_ntiles;
    size_t mem_base, mem_peak; /* device memory in use when made, and the most since */
    int prof;             /* 1 events, 2 sync */
    double prof_s[P_N], prof_t0;
    long prof_n[P_N];
    cudaEvent_t *prof_ev; /* [PROF_EV] pairs around ops not yet read, kinds in prof_k */
    int *prof_k, prof_used, prof_open;
    float inv_cache[2][512];
    float *inv_dev[2];
    void *train;          /* the training ops' state (backend_cuda_train.cu) */
} cu_be;

#define CU(call, what)                                                                         \
    do {                                                                                       \
        cudaError_t rc_ = (call);                                                              \
        if (rc_ != cudaSuccess)                                                                \
            return lop_fail(e, "cuda: %s failed: %s", what, cudaGetErrorString(rc_));          \
    } while (0)
#define BL(call, what)                                                                         \
    do {                                                                                       \
        cublasStatus_t rc_ = (call);                                                           \
        if (rc_ != CUBLAS_STATUS_SUCCESS)                                                      \
            return lop_fail(e, "cublas: %s failed (status %d)", what, (int)rc_);               \
    } while (0)

static int kdt(st_dtype t) { return t == ST_BF16 ? KDT_BF16 : t == ST_F16 ? KDT_F16 : KDT_F32; }

#include <time.h>
static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
#define PROF_EV 8192
/* read the recorded pairs (waits for the last) */
static void prof_flush(cu_be *c) {
    if (!c->prof_used) return;
    cudaEventSynchronize(c->prof_ev[c->prof_used - 1]);
    for (int i = 0; i + 1 < c->prof_used; i += 2) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, c->prof_ev[i], c->prof_ev[i + 1]) == cudaSuccess)
            c->prof_s[c->prof_k[i / 2]] += ms * 1e-3;
    }
    cudaGetLastError();
    c->prof_used = 0;
}
static void prof_begin(cu_be *c) {
    if (!c->prof || c->prof_open++) return; /* an op inside a timed op counts as the outer one */
    if (c->prof == 2) {
        cudaDeviceSynchronize();
        c->prof_t0 = now_s();
        return;
    }
    if (!c->prof_ev) {
        c->prof_ev = (cudaEvent_t *)calloc(PROF_EV, sizeof *c->prof_ev);
        c->prof_k = (int *)calloc(PROF_EV / 2, sizeof *c->prof_k);
        for (int i = 0; c->prof_ev && i < PROF_EV; i++)
            if (cudaEventCreate(&c->prof_ev[i]) != cudaSuccess) { c->prof = 2; break; }
        if (!c->prof_ev || !c->prof_k) c->prof = 2;
        cudaGetLastError();
        if (c->prof == 2) { /* no events: synchronized timing from here on */
            cudaDeviceSynchronize();
            c->prof_t0 = now_s();
            return;
        }
    }
    if (c->prof_used == PROF_EV) prof_flush(c);
    cudaEventRecord(c->prof_ev[c->prof_used], c->st);
}
static void prof_end(cu_be *c, int k) {
    if (!c->prof || --c->prof_open) return;
    if (c->prof == 2) {
        cudaDeviceSynchronize();
        c->prof_s[k] += now_s() - c->prof_t0;
    } else {
        cudaEventRecord(c->prof_ev[c->prof_used + 1], c->st);
        c->prof_k[c->prof_used / 2] = k;
        c->prof_used += 2;
    }
    c->prof_n[k]++;
}

/* sample the device's memory in use (after every allocation: that is where peaks happen) */
static void mem_sample(cu_be *c) {
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) != cudaSuccess) { cudaGetLastError(); return; }
    size_t used = tot - fr;
    if (used > c->mem_peak) c->mem_peak = used;
}

/* a growable device scratch buffer */
static void *scratch(cu_be *c, int s, size_t bytes, lop_err *e) {
    if (bytes <= c->scr_cap[s] && c->scr[s]) return c->scr[s];
    if (c->scr[s]) cudaFree(c->scr[s]);
    c->scr[s] = NULL;
    c->scr_cap[s] = 0;
    size_t want = bytes + bytes / 8 + 256;
    if (cudaMalloc(&c->scr[s], want) != cudaSuccess) {
        cudaGetLastError();
        lop_fail(e, "%s: out of GPU memory (%zu MB of scratch)", c->be.name, want >> 20);
        return NULL;
    }
    c->scr_cap[s] = want;
    mem_sample(c);
    return c->scr[s];
}

/* ---- memory ---- */

static void cu_destroy(lop_backend *be) {
    cu_be *c = (cu_be *)be;
    if (c->prof) {
        prof_flush(c);
        double tot = 0;
        for (int k = 0; k < P_N; k++) tot += c->prof_s[k];
        fprintf(stderr, "lop cuda profile (%s, %s): %.1f ms in ops\n", c->be.name,
                c->prof == 2 ? "each op synchronized" : "GPU time by events", tot * 1e3);
        for (int k = 0; k < P_N; k++)
            if (c->prof_n[k])
                fprintf(stderr, "  %-10s %9.2f ms %5.1f%%  %ld calls\n", prof_names[k], c->prof_s[k] * 1e3,
                        tot > 0 ? 100 * c->prof_s[k] / tot : 0, c->prof_n[k]);
    }
    if (c->prof_ev) {
        for (int i = 0; i < PROF_EV; i++) if (c->prof_ev[i]) cudaEventDestroy(c->prof_ev[i]);
        free(c->prof_ev);
    }
    free(c->prof_k);
    cu_train_destroy(be);
    for (int i = 0; i < c->nplan; i++) {
        cublasLtMatmulDescDestroy(c->plan[i].op);
        cublasLtMatrixLayoutDestroy(c->plan[i].a);
        cublasLtMatrixLayoutDestroy(c->plan[i].b);
        cublasLtMatrixLayoutDestroy(c->plan[i].cd);
    }
    if (c->lt) cublasLtDestroy(c->lt);
    if (c->ltws) cudaFree(c->ltws);
    for (int s = 0; s < S_N; s++) if (c->scr[s]) cudaFree(c->scr[s]);
    for (int i = 0; i < c->nbufs; i++) { if (c->bufs[i]->dev) cudaFree(c->bufs[i]->dev); free(c->bufs[i]); }
    for (int i = 0; i < 2; i++) if (c->inv_dev[i]) cudaFree(c->inv_dev[i]);
    free(c->bufs);
    free(c->slot);
    free(c->h_meta);
    if (c->blas) cublasDestroy(c->blas);
    free(c);
}

static void *cu_alloc(lop_backend *be, size_t n) {
    void *p = NULL;
    if (cudaMalloc(&p, n ? n : 256) != cudaSuccess) { cudaGetLastError(); return NULL; }
    mem_sample((cu_be *)be);
    return p;
}

static size_t cu_mem_peak(lop_backend *be) {
    cu_be *c = (cu_be *)be;
    mem_sample(c);
    return c->mem_peak > c->mem_base ? c->mem_peak - c->mem_base : 0;
}

static void cu_release(lop_backend *be, void *p) {
    if (!p) return;
    cu_train_written(be, NULL, 0); /* a trainable weight's bf16 copy must not outlive its memory */
    cudaFree(p);
}

static int cu_upload(lop_backend *be, void *dst, const void *src, size_t n, lop_err *e) {
    cu_be *c = (cu_be *)be;
    c->gen++;
    cu_train_written(be, dst, n);
    CU(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice), "upload");
    return 0;
}

static int cu_download(lop_backend *be, void *dst, const void *src, size_t n, lop_err *e) {
    (void)be;
    CU(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost), "download");
    return 0;
}

static int cu_copy_impl(lop_backend *be, void *dst, const void *src, size_t n, lop_err *e) {
    cu_be *c = (cu_be *)be;
    c->gen++;
    cu_train_written(be, dst, n);
    if (dst == src || !n) return 0;
    CU(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, c->st), "copy");
    return 0;
}

static int cu_copy(lop_backend *be, void *dst, const void *src, size_t n, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_copy_impl(be, dst, src, n, e);
    prof_end(c_, P_COPY);
    return r_;
}

/* ---- weights ---- */

static unsigned hash_ptr(const void *p) {
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 17; x *= 0xed5ad4bbu; x ^= x >> 11;
    return (unsigned)x;
}

static wslot *slot_find(cu_be *c, const lop_wref *key, int add) {
    if (add && 2 * (c->slot_n + 1) > c->slot_cap) {
        int nc = c->slot_cap ? 2 * c->slot_cap : 1024;
        wslot *ns = (wslot *)calloc(nc, sizeof *ns);
        if (!ns) return NULL;
        for (int i = 0; i < c->slot_cap; i++) {
            if (!c->slot[i].key) continue;
            unsigned h = hash_ptr(c->slot[i].key) & (nc - 1);
            while (ns[h].key) h = (h + 1) & (nc - 1);
            ns[h] = c->slot[i];
        }
        free(c->slot);
        c->slot = ns;
        c->slot_cap = nc;
    }
    if (!c->slot_cap) return NULL;
    unsigned h = hash_ptr(key) & (c->slot_cap - 1);
    while (c->slot[h].key && c->slot[h].key != key) h = (h + 1) & (c->slot_cap - 1);
    if (c->slot[h].key) return &c->slot[h];
    if (!add) return NULL;
    c->slot[h].key = key;
    c->slot[h].buf = NULL;
    c->slot_n++;
    return &c->slot[h];
}

static void buf_unref(cu_be *c, dbuf *b) {
    if (!b || --b->refs > 0) return;
    cudaFree(b->dev);
    for (int i = 0; i < c->nbufs; i++)
        if (c->bufs[i] == b) { c->bufs[i] = c->bufs[--c->nbufs]; break; }
    free(b);
}

/* device copy of w (vec: float32 vector); NULL with e set on failure */
static const void *weight_dev(cu_be *c, const lop_wref *w, int vec, lop_err *e) {
    if (w->bemem) return w->data; /* a trainable float32 weight, already in device memory */
    size_t n = (size_t)(w->rows * w->cols);
    st_dtype want = vec || w->dtype == ST_F64 ? ST_F32 : w->dtype;
    wslot *s = slot_find(c, w, 1);
    if (!s) { lop_fail(e, "out of memory"); return NULL; }
    dbuf *b = s->buf;
    if (b && b->host == w->data && b->dt == want && b->n == n && b->vec == vec && !b->stale) return b->dev;
    buf_unref(c, b);
    s->buf = NULL;
    for (int i = 0; i < c->nbufs; i++) { /* shared data (a tied head) */
        dbuf *o = c->bufs[i];
        if (o->host == w->data && o->dt == want && o->n == n && o->vec == vec && !o->stale) {
            o->refs++;
            s->buf = o;
            return o->dev;
        }
    }
    b = (dbuf *)calloc(1, sizeof *b);
    if (!b) { lop_fail(e, "out of memory"); return NULL; }
    *b = (dbuf){w->data, want, n, vec, NULL, 1, c->loading, 0};
    size_t bytes = n * st_dtype_size(want);
    if (cudaMalloc(&b->dev, bytes ? bytes : 4) != cudaSuccess) {
        cudaGetLastError();
        free(b);
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        lop_fail(e, "%s: out of GPU memory for weight %s (%zu MB; %zu MB free)", c->be.name,
                 w->name ? w->name : "?", bytes >> 20, fr >> 20);
        return NULL;
    }
    cudaError_t rc;
    if (want == w->dtype) {
        rc = cudaMemcpy(b->dev, w->data, bytes, cudaMemcpyHostToDevice);
    } else { /* vectors and f64 matrices: float32 on the host first */
        float *tmp = (float *)malloc(n * sizeof(float));
        if (!tmp) { cudaFree(b->dev); free(b); lop_fail(e, "out of memory"); return NULL; }
        st_to_f32(tmp, w->data, w->dtype, n);
        rc = cudaMemcpy(b->dev, tmp, bytes, cudaMemcpyHostToDevice);
        free(tmp);
    }
    if (rc != cudaSuccess) {
        cudaFree(b->dev); free(b);
        lop_fail(e, "cuda: weight upload failed: %s", cudaGetErrorString(rc));
        return NULL;
    }
    if (c->nbufs == c->bufs_cap) {
        int nc = c->bufs_cap ? 2 * c->bufs_cap : 256;
        dbuf **nb = (dbuf **)realloc(c->bufs, sizeof *nb * nc);
        if (!nb) { cudaFree(b->dev); free(b); lop_fail(e, "out of memory"); return NULL; }
        c->bufs = nb;
        c->bufs_cap = nc;
    }
    c->bufs[c->nbufs++] = b;
    s->buf = b;
    mem_sample(c);
    return b->dev;
}

static int cu_weights_fit(lop_backend *be, size_t bytes, lop_err *e) {
    cu_be *c = (cu_be *)be;
    size_t fr = 0, tot = 0;
    CU(cudaMemGetInfo(&fr, &tot), "cudaMemGetInfo");
    size_t margin = (size_t)1 << 30; /* activations, GEMM scratch, the head's logit chunk */
    if (bytes + margin > fr)
        return lop_fail(e, "the model does not fit %s: its weights take %.2f GiB, the GPU has %.2f GiB "
                        "free of %.2f GiB (and a forward needs about 1 GiB more)", c->be.name,
                        bytes / 1073741824.0, fr / 1073741824.0, tot / 1073741824.0);
    return 0;
}

static int cu_weight_load(lop_backend *be, const lop_wref *w, lop_err *e) {
    cu_be *c = (cu_be *)be;
    if (!w->data) return 0;
    c->loading = 1;
    const void *d = weight_dev(c, w, w->rows == 1, e);
    c->loading = 0;
    return d ? 0 : -1;
}

/* every copy not made from the model's original tensors is re-read at its next use */
static int cu_weights_changed(lop_backend *be, lop_err *e) {
    (void)e;
    cu_be *c = (cu_be *)be;
    for (int i = 0; i < c->nbufs; i++) if (!c->bufs[i]->orig) c->bufs[i]->stale = 1;
    cu_train_written(be, NULL, 0);
    return 0;
}

static lop_gemm cu_gemm_supported(lop_backend *be, lop_gemm g) { (void)be; return g; }

/* ---- ops ---- */

/* Where a producer writes the bf16 copy of its output for the next bf16 GEMM (which then skips its
 * own conversion), or NULL when the GEMMs run in float32. Call after the op's gen bump. */
static __nv_bfloat16 *shadow_for(cu_be *c, const float *out, size_t n, lop_err *e) {
    if (c->last_gemm != LOP_GEMM_BF16) return NULL;
    __nv_bfloat16 *b = (__nv_bfloat16 *)scratch(c, S_XBF, n * 2, e);
    if (!b) { c->xbf_src = NULL; return NULL; }
    c->xbf_src = out;
    c->xbf_n = n;
    c->xbf_gen = c->gen;
    c->xbf_only = 0;
    return b;
}

static int cu_embed_impl(lop_backend *be, float *out, const int32_t *ids, const lop_wref *t, int N,
                    int C, float scale, lop_err *e) {
    cu_be *c = (cu_be *)be;
    c->gen++;
    const void *tab = weight_dev(c, t, 0, e);
    int32_t *d = (int32_t *)scratch(c, S_IDS, sizeof(int32_t) * N, e);
    if (!tab || !d) return -1;
    CU(cudaMemcpy(d, ids, sizeof(int32_t) * N, cudaMemcpyHostToDevice), "upload ids");
    CU(k_embed(out, d, tab, kdt(t->dtype == ST_F64 ? ST_F32 : t->dtype),
               N, C, scale, c->st), "embedding");
    return 0;
}

static int cu_embed(lop_backend *be, float *out, const int32_t *ids, const lop_wref *t, int N,
                    int C, float scale, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_embed_impl(be, out, ids, t, N, C, scale, e);
    prof_end(c_, P_EMBED);
    return r_;
}

static int lt_gemm(cu_be *c, void *out, int bf16_out, int ldo, const void *Wb, const __nv_bfloat16 *xb,
                   const float *r, int N, int IC, int OC, lop_err *e);

/* the bf16 form of a GEMM input x[nx]: the copy its producer wrote, or a conversion now */
static const __nv_bfloat16 *x_bf16(cu_be *c, const float *x, size_t nx, lop_err *e) {
    if (c->xbf_src == x && c->xbf_n == nx && c->xbf_gen == c->gen) return (const __nv_bfloat16 *)c->scr[S_XBF];
    if (c->xbf_only && c->xbf_src == x) { /* its float32 form was never written */
        lop_fail(e, "cuda: internal: the bf16-only copy of a GEMM input was overwritten before its GEMM");
        return NULL;
    }
    __nv_bfloat16 *xb = (__nv_bfloat16 *)scratch(c, S_XBF, nx * 2, e);
    if (!xb) return NULL;
    cudaError_t r = k_to_bf16(xb, x, KDT_F32, nx, c->st);
    if (r != cudaSuccess) { lop_fail(e, "cuda: x to bf16: %s", cudaGetErrorString(r)); return NULL; }
    c->xbf_src = x; c->xbf_n = nx; c->xbf_gen = c->gen; c->xbf_only = 0;
    return xb;
}

/* W in bf16: as stored, or converted into the scratch (valid until the next conversion) */
static const void *weight_bf16(cu_be *c, const lop_wref *w, lop_err *e) {
    /* a trainable weight: its bf16 copy, rewritten by each AdamW step */
    if (w->bemem) return cu_train_bf16_of(&c->be, w, e);
    const void *W = weight_dev(c, w, 0, e);
    if (!W) return NULL;
    st_dtype wdt = w->dtype == ST_F64 ? ST_F32 : w->dtype;
    if (wdt == ST_BF16) return W;
    size_t n = (size_t)w->rows * w->cols;
    void *t = scratch(c, S_WCONV, n * 2, e);
    if (!t) return NULL;
    cudaError_t r = k_to_bf16((__nv_bfloat16 *)t, W, kdt(wdt), n, c->st);
    if (r != cudaSuccess) { lop_fail(e, "cuda: W to bf16: %s", cudaGetErrorString(r)); return NULL; }
    return t;
}

static int cu_matmul_impl(lop_backend *be, float *out, const float *x, const lop_wref *w,
                     const lop_wref *bias, int N, lop_gemm g, lop_err *e) {
    cu_be *c = (cu_be *)be;
    int IC = (int)w->cols, OC = (int)w->rows;
    const void *W = weight_dev(c, w, 0, e);
    if (!W) return -1;
    st_dtype wdt = w->dtype == ST_F64 ? ST_F32 : w->dtype;
    const float one = 1.0f, zero = 0.0f;
    c->last_gemm = g;
    if (g == LOP_GEMM_BF16) {
        const __nv_bfloat16 *xb = x_bf16(c, x, (size_t)N * IC, e);
        const void *Wb = xb ? weight_bf16(c, w, e) : NULL;
        if (!Wb) return -1;
        int rc = c->fuse & FUSE_LT ? lt_gemm(c, out, 0, OC, Wb, xb, NULL, N, IC, OC, e) : 1;
        if (rc < 0) return -1;
        if (rc) BL(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, IC, &one, Wb, CUDA_R_16BF, IC, xb,
                        CUDA_R_16BF, IC, &zero, out, CUDA_R_32F, OC, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT), "bf16 GEMM");
    } else {
        const float *Wf = (const float *)W;
        if (wdt != ST_F32) {
            float *t = (float *)scratch(c, S_WCONV, (size_t)OC * IC * 4, e);
            if (!t) return -1;
            CU(k_to_f32(t, W, kdt(wdt), (size_t)OC * IC, c->st), "W to f32");
            Wf = t;
        }
        BL(cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, IC, &one, Wf, IC, x, IC, &zero,
                       out, OC), "f32 GEMM");
    }
    if (out == c->xbf_src) c->xbf_src = NULL, c->xbf_only = 0;
    cu_train_written(be, out, sizeof(float) * (size_t)N * OC); /* a GEMM bumps no gen: say what it wrote */
    if (bias && bias->data) {
        const float *b = (const float *)weight_dev(c, bias, 1, e);
        if (!b) return -1;
        CU(k_add_bias(out, b, N, OC, c->st), "bias");
    }
    return 0;
}

static int cu_matmul(lop_backend *be, float *out, const float *x, const lop_wref *w,
                     const lop_wref *bias, int N, lop_gemm g, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_matmul_impl(be, out, x, w, bias, N, g, e);
    prof_end(c_, P_MATMUL);
    return r_;
}

/* the cuBLASLt plan of shape (N, IC, OC): descriptors and the heuristic's first algorithm; ok 0
 * when cuBLASLt has none (the core then runs matmul + add) */
static lt_plan *lt_plan_get(cu_be *c, int N, int IC, int OC, int ldo, int bf16_out, lop_err *e) {
    for (int i = 0; i < c->nplan; i++) {
        lt_plan *q = &c->plan[i];
        if (q->N == N && q->IC == IC && q->OC == OC && q->ldo == ldo && q->bf16_out == bf16_out) return q;
    }
    if (c->nplan == LT_PLANS) { /* forget the oldest */
        lt_plan *o = &c->plan[0];
        cublasLtMatmulDescDestroy(o->op);
        cublasLtMatrixLayoutDestroy(o->a);
        cublasLtMatrixLayoutDestroy(o->b);
        cublasLtMatrixLayoutDestroy(o->cd);
        memmove(c->plan, c->plan + 1, sizeof *c->plan * (LT_PLANS - 1));
        c->nplan--;
    }
    lt_plan *p = &c->plan[c->nplan];
    memset(p, 0, sizeof *p);
    p->N = N; p->IC = IC; p->OC = OC; p->ldo = ldo; p->bf16_out = bf16_out;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    size_t ws = (size_t)LT_WS_MB << 20;
    uint32_t al16 = 16;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res;
    int got = 0;
    if (cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, IC, OC, IC) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, IC, N, IC) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&p->cd, bf16_out ? CUDA_R_16BF : CUDA_R_32F, OC, N, ldo) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                             sizeof ws) != CUBLAS_STATUS_SUCCESS ||
        /* the heuristic assumes 256-byte aligned pointers unless told: the core's activations are
         * 64-byte aligned, and the call checks 16 */
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al16,
                                             sizeof al16) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al16,
                                             sizeof al16) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al16,
                                             sizeof al16) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al16,
                                             sizeof al16) != CUBLAS_STATUS_SUCCESS) {
        if (pref) cublasLtMatmulPreferenceDestroy(pref);
        cublasLtMatmulDescDestroy(p->op);
        cublasLtMatrixLayoutDestroy(p->a);
        cublasLtMatrixLayoutDestroy(p->b);
        cublasLtMatrixLayoutDestroy(p->cd);
        lop_fail(e, "cublasLt: cannot describe a %d x %d x %d matmul", N, IC, OC);
        return NULL;
    }
    if (cublasLtMatmulAlgoGetHeuristic(c->lt, p->op, p->a, p->b, p->cd, p->cd, pref, 1, &res, &got) ==
            CUBLAS_STATUS_SUCCESS && got > 0) {
        p->algo = res.algo;
        p->ok = 1;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    c->nplan++;
    return p;
}

/* out[N, OC] (leading dimension ldo; float32, or bf16 when bf16_out) = x @ W^T (+ r, float32,
 * when r): one cuBLASLt call with the plan of its shape; 1 when cuBLASLt has no algorithm for it
 * (or pointers are not 16-byte aligned): the caller then uses cublasGemmEx */
static int lt_gemm(cu_be *c, void *out, int bf16_out, int ldo, const void *Wb, const __nv_bfloat16 *xb,
                   const float *r, int N, int IC, int OC, lop_err *e) {
    if (!c->lt || ((uintptr_t)out | (uintptr_t)r | (uintptr_t)Wb | (uintptr_t)xb) & 15) return 1;
    /* a plan costs a heuristic query: row counts that recur (ppl's batches of whole windows,
     * calibration batches) get one; lm-eval's forwards, each of another odd size, keep
     * cublasGemmEx (with cuBLASLt everywhere its items/s fell from 269 to 203 in one run) */
    if (N % 256) return 1;
    lt_plan *p = lt_plan_get(c, N, IC, OC, ldo, bf16_out, e);
    if (!p) return -1;
    if (!p->ok) return 1;
    const float one = 1.0f, zero = 0.0f;
    BL(cublasLtMatmul(c->lt, p->op, &one, Wb, p->a, xb, p->b, r ? &one : &zero, r ? (const void *)r : out,
                      p->cd, out, p->cd, &p->algo, c->ltws, (size_t)LT_WS_MB << 20, c->st), "bf16 GEMM (cuBLASLt)");
    return 0;
}

/* out = x @ W^T + r in one cuBLASLt call (beta = 1 on a separate C): the residual add costs one
 * read of r inside the GEMM's epilogue instead of a write of the product and a pass of three
 * arrays. bf16 GEMMs only: --gemm f32 keeps its plain ops (the cpu's numbers to rounding). */
static int cu_matmul_add_impl(lop_backend *be, float *out, const float *x, const lop_wref *w,
                              const float *r, int N, lop_gemm g, lop_err *e) {
    cu_be *c = (cu_be *)be;
    if (g != LOP_GEMM_BF16 || !(c->fuse & FUSE_RESID) || !c->lt || out == r ||
        (((uintptr_t)out | (uintptr_t)r) & 15))
        return 1;
    int IC = (int)w->cols, OC = (int)w->rows;
    const __nv_bfloat16 *xb = x_bf16(c, x, (size_t)N * IC, e);
    const void *Wb = xb ? weight_bf16(c, w, e) : NULL;
    if (!Wb) return -1;
    int rc = lt_gemm(c, out, 0, OC, Wb, xb, r, N, IC, OC, e);
    if (rc) return rc; /* 1: no algorithm, the core adds */
    c->last_gemm = g;
    if (out == c->xbf_src) c->xbf_src = NULL, c->xbf_only = 0;
    cu_train_written(be, out, sizeof(float) * (size_t)N * OC); /* a GEMM bumps no gen: say what it wrote */
    return 0;
}

static int cu_matmul_add(lop_backend *be, float *out, const float *x, const lop_wref *w, const float *r,
                         int N, lop_gemm g, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_matmul_add_impl(be, out, x, w, r, N, g, e);
    prof_end(c_, P_MMADD);
    return r_;
}

/* a projection and its LoRA adapter (backend.h's lora_matmul), bf16 GEMMs only: the adapter's
 * product stored into out first (its xa from the same bf16 x the projection reads), then the
 * projection's GEMM over it with beta = 1, in place: out is written once by the skinny product and
 * read inside the compute-bound GEMM, where matmul then lora_forward cost three passes over it
 * (write, read, write: the seven projections' outputs are 486 MB a layer in float32 at 8 x 512
 * tokens on the 4B card). f32: 1, the plain ops. */
static int cu_lora_matmul_impl(lop_backend *be, float *out, float *xa, float *tmp, const float *x,
                               const lop_wref *w, const float *A, const float *B, int N, int r,
                               float scale, float dropout, uint64_t seed, uint64_t key, lop_gemm g,
                               lop_err *e) {
    cu_be *c = (cu_be *)be;
    if (g != LOP_GEMM_BF16) return 1;
    int IC = (int)w->cols, OC = (int)w->rows;
    c->last_gemm = g;
    const __nv_bfloat16 *xb = x_bf16(c, x, (size_t)N * IC, e);
    const void *Wb = xb ? weight_bf16(c, w, e) : NULL;
    if (!Wb) return -1;
    if (cu_lora_first(be, out, xa, tmp, x, xb, A, B, N, IC, OC, r, scale, dropout, seed, key, e)) return -1;
    const float one = 1.0f;
    int rc = c->fuse & FUSE_LT ? lt_gemm(c, out, 0, OC, Wb, xb, out, N, IC, OC, e) : 1;
    if (rc < 0) return -1;
    if (rc) BL(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, IC, &one, Wb, CUDA_R_16BF, IC, xb,
                            CUDA_R_16BF, IC, &one, out, CUDA_R_32F, OC, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT), "bf16 GEMM");
    if (out == c->xbf_src) c->xbf_src = NULL, c->xbf_only = 0;
    cu_train_written(be, out, sizeof(float) * (size_t)N * OC);
    return 0;
}

static int cu_lora_matmul(lop_backend *be, float *out, float *xa, float *tmp, const float *x,
                          const lop_wref *w, const float *A, const float *B, int N, int r, float scale,
                          float dropout, uint64_t seed, uint64_t key, lop_gemm g, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_lora_matmul_impl(be, out, xa, tmp, x, w, A, B, N, r, scale, dropout, seed, key, g, e);
    prof_end(c_, P_MMLORA);
    return r_;
}

/* gate and up as bf16 GEMM outputs (into the core's gate/up buffers, half their size), then the
 * GLU reading bf16 and writing h's bf16 copy for the down projection (and float32 h only when
 * asked): gate/up/h cost 2 + 2 + 2 bytes an element instead of 4 + 4 + 4 + 2 read twice. bf16
 * GEMMs only. */
static int cu_mlp_glu_impl(lop_backend *be, float *h, float *gate, float *up, const float *x,
                           const lop_wref *wg, const lop_wref *wu, int N, int FF, lop_act act,
                           int need_h, lop_gemm g, lop_err *e) {
    cu_be *c = (cu_be *)be;
    if (g != LOP_GEMM_BF16 || !(c->fuse & FUSE_GLU)) return 1;
    int IC = (int)wg->cols;
    if ((int)wg->rows != FF || (int)wu->rows != FF || (int)wu->cols != IC) return 1;
    const __nv_bfloat16 *xb = x_bf16(c, x, (size_t)N * IC, e);
    if (!xb) return -1;
    const float one = 1.0f, zero = 0.0f;
    c->last_gemm = g;
    __nv_bfloat16 *gb = (__nv_bfloat16 *)gate, *ub = (__nv_bfloat16 *)up;
    for (int k = 0; k < 2; k++) {
        __nv_bfloat16 *o = k ? ub : gb;
        const void *Wk = weight_bf16(c, k ? wu : wg, e);
        if (!Wk) return -1;
        int rc = c->fuse & FUSE_LT ? lt_gemm(c, o, 1, FF, Wk, xb, NULL, N, IC, FF, e) : 1;
        if (rc < 0) return -1;
        if (rc)
            BL(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, FF, N, IC, &one, Wk, CUDA_R_16BF, IC, xb,
                            CUDA_R_16BF, IC, &zero, o, CUDA_R_16BF, FF, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT), "bf16 GEMM (gate/up)");
    }
    c->gen++;
    size_t n = (size_t)N * FF;
    __nv_bfloat16 *hb = shadow_for(c, h, n, e);
    if (!hb) return -1;
    int only = !need_h && (c->fuse & FUSE_PRIVATE);
    CU(k_glu_bf16(only ? NULL : h, gb, ub, n, act == ACT_GELU_TANH ? 1 : 0, hb, c->st), "glu (bf16)");
    c->xbf_only = only;
    return 0;
}

static int cu_mlp_glu(lop_backend *be, float *h, float *gate, float *up, const float *x,
                      const lop_wref *wg, const lop_wref *wu, int N, int FF, lop_act act, int need_h,
                      lop_gemm g, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_mlp_glu_impl(be, h, gate, up, x, wg, wu, N, FF, act, need_h, g, e);
    prof_end(c_, P_MLP);
    return r_;
}

static int cu_rmsnorm_impl(lop_backend *be, float *out, float *rstd, const float *x, const lop_wref *w,
                      int N, int C, float eps, int gemma, lop_err *e) {
    cu_be *c = (cu_be *)be;
    c->gen++;
    const float *wd = (const float *)weight_dev(c, w, 1, e);
    if (!wd) return -1;
    __nv_bfloat16 *ob = C == c->hidden ? shadow_for(c, out, (size_t)N * C, e) : NULL;
    CU(k_rmsnorm(out, rstd, x, wd, N, C, eps, gemma, ob, c->st), "rmsnorm");
    return 0;
}

/* NaN/Inf checks without a sync per layer: a flag per slot on the device, read once per forward */
static int cu_nonfinite(lop_backend *be, const float *x, size_t n, int slot, lop_err *e) {
    cu_be *c = (cu_be *)be;
    int *f = (int *)scratch(c, S_FLAGS, sizeof(int) * (size_t)(c->n_slots), e);
    if (!f) return -1;
    if (slot < 0 || slot >= c->n_slots) return 0;
    if (slot == 0) CU(cudaMemsetAsync(f, 0, sizeof(int) * (size_t)c->n_slots, c->st), "memset");
    CU(k_nonfinite(x, n, f + slot, c->st), "finite check");
    return 0;
}

static int cu_nonfinite_first(lop_backend *be, int nslots, lop_err *e) {
    cu_be *c = (cu_be *)be;
    if (!c->scr[S_FLAGS]) return -1;
    if (nslots > c->n_slots) nslots = c->n_slots;
    int h[4096];
    if (nslots > 4096) nslots = 4096;
    cudaError_t r = cudaMemcpy(h, c->scr[S_FLAGS], sizeof(int) * (size_t)nslots, cudaMemcpyDeviceToHost);
    if (r != cudaSuccess) { lop_fail(e, "cuda: download: %s", cudaGetErrorString(r)); return -2; }
    for (int i = 0; i < nslots; i++) if (h[i]) return i;
    return -1;
}

static int cu_qk_norm_rope_impl(lop_backend *be, float *out, float *rstd, const float *x, const lop_wref *w,
                                const float *cs, int N, int H, int D, float eps, int gemma, lop_err *e) {
    cu_be *c = (cu_be *)be;
    if (!k_qk_norm_rope_supports(D)) return 1;
    c->gen++;
    const float *wd = (const float *)weight_dev(c, w, 1, e);
    if (!wd) return -1;
    CU(k_qk_norm_rope(out, rstd, x, wd, cs, N, H, D, eps, gemma, c->st), "qk norm + rope");
    return 0;
}

static int cu_qk_norm_rope(lop_backend *be, float *out, float *rstd, const float *x, const lop_wref *w,
                           const float *cs, int N, int H, int D, float eps, int gemma, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_qk_norm_rope_impl(be, out, rstd, x, w, cs, N, H, D, eps, gemma, e);
    prof_end(c_, P_ROPE);
    return r_;
}

static int cu_rmsnorm(lop_backend *be, float *out, float *rstd, const float *x, const lop_wref *w,
                      int N, int C, float eps, int gemma, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_rmsnorm_impl(be, out, rstd, x, w, N, C, eps, gemma, e);
    prof_end(c_, P_NORM);
    return r_;
}

/* a norm that feeds bf16 GEMMs only: its bf16 copy, and no float32 */
static int cu_rmsnorm_gemm_in_impl(lop_backend *be, float *out, float *rstd, const float *x,
                                   const lop_wref *w, int N, int C, float eps, int gemma, lop_gemm g,
                                   lop_err *e) {
    cu_be *c = (cu_be *)be;
    if (g != LOP_GEMM_BF16 || !(c->fuse & FUSE_PRIVATE)) return cu_rmsnorm_impl(be, out, rstd, x, w, N, C, eps, gemma, e);
    c->gen++;
    const float *wd = (const float *)weight_dev(c, w, 1, e);
    if (!wd) return -1;
    c->last_gemm = g;
    __nv_bfloat16 *ob = shadow_for(c, out, (size_t)N * C, e);
    if (!ob) return -1;
    CU(k_rmsnorm(NULL, rstd, x, wd, N, C, eps, gemma, ob, c->st), "rmsnorm");
    c->xbf_only = 1;
    return 0;
}

static int cu_rmsnorm_gemm_in(lop_backend *be, float *out, float *rstd, const float *x, const lop_wref *w,
                              int N, int C, float eps, int gemma, lop_gemm g, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_rmsnorm_gemm_in_impl(be, out, rstd, x, w, N, C, eps, gemma, g, e);
    prof_end(c_, P_NORM);
    return r_;
}

static int cu_rope_table_impl(lop_backend *be, float *cs, const int *pos, const float *inv, int N,
                         int D, lop_err *e) {
    cu_be *c = (cu_be *)be;
    c->gen++;
    /* inverse frequencies: two tables at most (full, local), uploaded when they change */
    int slot = 0, h = D / 2;
    if (h > 512) return lop_fail(e, "cuda: head_dim %d is above 1024", D);
    if (c->inv_dev[0] && !memcmp(c->inv_cache[0], inv, sizeof(float) * h)) slot = 0;
    else if (c->inv_dev[1] && !memcmp(c->inv_cache[1], inv, sizeof(float) * h)) slot = 1;
    else {
        slot = c->inv_dev[0] ? 1 : 0;
        if (!c->inv_dev[slot]) CU(cudaMalloc(&c->inv_dev[slot], sizeof(float) * 512), "alloc");
        CU(cudaMemcpy(c->inv_dev[slot], inv, sizeof(float) * h, cudaMemcpyHostToDevice), "upload");
        memcpy(c->inv_cache[slot], inv, sizeof(float) * h);
        if (slot == 1 && c->inv_dev[0]) { /* next miss replaces slot 0 */ }
    }
    int *pd = (int *)scratch(c, S_POS, sizeof(int) * N, e);
    if (!pd) return -1;
    CU(cudaMemcpy(pd, pos, sizeof(int) * N, cudaMemcpyHostToDevice), "upload positions");
    CU(k_rope_table(cs, pd, c->inv_dev[slot], N, D, c->st), "rope table");
    return 0;
}

static int cu_rope_table(lop_backend *be, float *cs, const int *pos, const float *inv, int N,
                         int D, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_rope_table_impl(be, cs, pos, inv, N, D, e);
    prof_end(c_, P_ROPE);
    return r_;
}

static int cu_rope_apply_impl(lop_backend *be, float *x, const float *cs, int N, int H, int D,
                         lop_err *e) {
    cu_be *c = (cu_be *)be;
    c->gen++;
    CU(k_rope_apply(x, cs, N, H, D, c->st), "rope");
    return 0;
}

static int cu_rope_apply(lop_backend *be, float *x, const float *cs, int N, int H, int D,
                         lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_rope_apply_impl(be, x, cs, N, H, D, e);
    prof_end(c_, P_ROPE);
    return r_;
}

/* the attention's per-sequence and per-tile tables (and, with a cache, seq/pos of every row),
 * uploaded once per batch: layers reuse them */
static int attn_meta(cu_be *c, const lop_attn_args *a, attn_seq_d **seqs, attn_tile_d **tiles,
                     int **seq, int **pos, lop_err *e) {
    int B = a->B, N = a->off[B];
    int ntiles = 0;
    for (int b = 0; b < B; b++) ntiles += (a->len[b] + ATTN_BQ - 1) / ATTN_BQ;
    size_t ints = (size_t)B * (sizeof(attn_seq_d) / 4) + (size_t)ntiles * 2 + (a->kv ? 2 * (size_t)N : 0);
    int *h = (int *)malloc(sizeof(int) * ints);
    if (!h) return lop_fail(e, "out of memory");
    attn_seq_d *hs = (attn_seq_d *)h;
    attn_tile_d *ht = (attn_tile_d *)(h + (size_t)B * (sizeof(attn_seq_d) / 4));
    int *hseq = (int *)(ht + ntiles), *hpos = hseq + (a->kv ? N : 0);
    int kd = a->Hkv * a->D, t = 0;
    for (int b = 0; b < B; b++) {
        int q0 = a->kv ? a->kv->len[b] : 0;
        long long kbase = a->kv ? (long long)b * a->kv->max_t * kd : (long long)a->off[b] * kd;
        hs[b] = (attn_seq_d){kbase, a->off[b], a->len[b], q0, 0};
        for (int t0 = 0; t0 < a->len[b]; t0 += ATTN_BQ) ht[t++] = (attn_tile_d){b, t0};
        if (a->kv)
            for (int i = 0; i < a->len[b]; i++) {
                hseq[a->off[b] + i] = b;
                hpos[a->off[b] + i] = q0 + i;
            }
    }
    int *d = (int *)c->scr[S_META];
    if (!(c->h_meta && c->h_meta_n == ints && d && !memcmp(c->h_meta, h, sizeof(int) * ints))) {
        d = (int *)scratch(c, S_META, sizeof(int) * ints, e);
        if (!d) { free(h); return -1; }
        cudaError_t rc = cudaMemcpy(d, h, sizeof(int) * ints, cudaMemcpyHostToDevice);
        free(c->h_meta);
        c->h_meta = h;
        c->h_meta_n = ints;
        if (rc != cudaSuccess) { c->h_meta = NULL; free(h); return lop_fail(e, "cuda: upload: %s", cudaGetErrorString(rc)); }
    } else {
        free(h);
    }
    *seqs = (attn_seq_d *)d;
    *tiles = (attn_tile_d *)(d + (size_t)B * (sizeof(attn_seq_d) / 4));
    *seq = (int *)(*tiles + ntiles);
    *pos = *seq + (a->kv ? N : 0);
    c->meta_ntiles = ntiles;
    return 0;
}

static int cu_attention_impl(lop_backend *be, const lop_attn_args *a, lop_err *e) {
    cu_be *c = (cu_be *)be;
    c->gen++;
    if (a->att) return lop_failc(e, LOP_EUSAGE, "attention probabilities are kept on the cpu only");
    if (a->D > 256) return lop_fail(e, "cuda: head_dim %d is above the attention kernel's 256", a->D);
    attn_seq_d *seqs = NULL; attn_tile_d *tiles = NULL; int *seq = NULL, *pos = NULL;
    if (attn_meta(c, a, &seqs, &tiles, &seq, &pos, e)) return -1;
    const float *K = a->k, *V = a->v;
    int kd = a->Hkv * a->D, N = a->off[a->B];
    if (a->kv) {
        float *kc = a->kv->k[a->layer], *vc = a->kv->v[a->layer];
        CU(k_kv_store(kc, a->k, seq, pos, N, kd, a->kv->max_t, c->st), "kv store");
        CU(k_kv_store(vc, a->v, seq, pos, N, kd, a->kv->max_t, c->st), "kv store");
        K = kc;
        V = vc;
    }
    if (a->gemm == LOP_GEMM_BF16 && k_attention_bf16_supports(a->D)) {
        __nv_bfloat16 *ob = shadow_for(c, a->out, (size_t)N * a->Hq * a->D, e);
        int only = ob && a->out_gemm_only && (c->fuse & FUSE_PRIVATE);
        CU(k_attention_bf16(only ? NULL : a->out, a->q, K, V, seqs, tiles, c->meta_ntiles, a->Hq, a->Hkv,
                            a->D, a->scale, a->window, a->softcap, ob, c->st), "attention (tensor cores)");
        c->xbf_only = only;
    }
    else
        CU(k_attention(a->out, a->q, K, V, seqs, tiles, c->meta_ntiles, a->Hq, a->Hkv, a->D, a->scale,
                       a->window, a->softcap, c->st), "attention");
    return 0;
}

static int cu_attention(lop_backend *be, const lop_attn_args *a, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_attention_impl(be, a, e);
    prof_end(c_, P_ATTN);
    return r_;
}

static int cu_glu_impl(lop_backend *be, float *h, const float *gate, const float *up, size_t n,
                  lop_act act, lop_err *e) {
    cu_be *c = (cu_be *)be;
    c->gen++;
    __nv_bfloat16 *hb = shadow_for(c, h, n, e);
    CU(k_glu(h, gate, up, n, act == ACT_GELU_TANH ? 1 : 0, hb, c->st), "glu");
    return 0;
}

static int cu_glu(lop_backend *be, float *h, const float *gate, const float *up, size_t n,
                  lop_act act, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_glu_impl(be, h, gate, up, n, act, e);
    prof_end(c_, P_GLU);
    return r_;
}

static int cu_add_impl(lop_backend *be, float *out, const float *a, const float *b, size_t n, lop_err *e) {
    cu_be *c = (cu_be *)be;
    c->gen++;
    CU(k_add(out, a, b, n, c->st), "add");
    return 0;
}

static int cu_add(lop_backend *be, float *out, const float *a, const float *b, size_t n, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_add_impl(be, out, a, b, n, e);
    prof_end(c_, P_ADD);
    return r_;
}

/* insert (v, id) into a sorted top-K list (ties: lower id first), as model_head.c */
static void topk_insert(int32_t *ids, float *vals, int *n, int K, float v, int32_t id) {
    int i;
    if (*n < K) i = (*n)++;
    else {
        if (!(v > vals[K - 1] || (v == vals[K - 1] && id < ids[K - 1]))) return;
        i = K - 1;
    }
    while (i > 0 && (v > vals[i - 1] || (v == vals[i - 1] && id < ids[i - 1]))) {
        vals[i] = vals[i - 1]; ids[i] = ids[i - 1]; i--;
    }
    vals[i] = v; ids[i] = id;
}

static int cu_head_impl(lop_backend *be, const lop_head_args *a, lop_head_req *h, lop_err *e) {
    cu_be *c = (cu_be *)be;
    c->gen++;
    int N = a->N, C = a->C, V = a->V;
    int *row = (int *)malloc(sizeof(int) * N), *wl = (int *)malloc(sizeof(int) * N);
    int32_t *tg = (int32_t *)malloc(sizeof(int32_t) * N);
    int rc = -1, R = 0, nwant = 0;
    int K = h->topk > 0 ? (h->topk < V ? h->topk : V) : 0;
    int host = K > 1 || h->block || (h->want_logits && h->logits); /* chunks go to the host too */
    float *hl = NULL;
    int32_t *kid = NULL; float *kval = NULL; int *kn = NULL;
    head_state_d *hs = NULL;
    if (!row || !wl || !tg) { lop_fail(e, "out of memory"); goto out; }
    for (int i = 0; i < N; i++) {
        int want = h->want_logits && h->want_logits[i] && h->logits;
        if (!h->select || h->select[i] || want) {
            wl[R] = want ? nwant++ : -1;
            tg[R] = h->target && h->target[i] >= 0 && h->target[i] < V ? h->target[i] : -1;
            row[R++] = i;
        }
    }
    if (!R) { rc = 0; goto out; }
    {
        const void *W = weight_dev(c, a->w, 0, e);
        if (!W) goto out;
        st_dtype wdt = a->w->dtype == ST_F64 ? ST_F32 : a->w->dtype;
        size_t es = st_dtype_size(wdt);
        int bf16 = a->gemm == LOP_GEMM_BF16;
        int vc = V < c->head_vc ? V : c->head_vc;
        int rc_rows = c->head_rows > 0 ? c->head_rows : (int)(((size_t)HEAD_LOGIT_MB << 20) / ((size_t)vc * 4));
        if (rc_rows > R) rc_rows = R;
        float *X = (float *)scratch(c, S_HX, sizeof(float) * (size_t)R * C, e);
        int *drow = (int *)scratch(c, S_HROW, sizeof(int) * R, e);
        int32_t *dtg = (int32_t *)scratch(c, S_HTGT, sizeof(int32_t) * R, e);
        head_state_d *dst = (head_state_d *)scratch(c, S_HST, sizeof(head_state_d) * R, e);
        float *lg = (float *)scratch(c, S_HLG, sizeof(float) * (size_t)rc_rows * vc, e);
        if (!X || !drow || !dtg || !dst || !lg) goto out;
        __nv_bfloat16 *Xb = NULL;
        if (bf16 && !(Xb = (__nv_bfloat16 *)scratch(c, S_HXB, 2 * (size_t)R * C, e))) goto out;
        void *wc = NULL;
        if ((bf16 && wdt != ST_BF16) || (!bf16 && wdt != ST_F32)) {
            wc = scratch(c, S_WCONV, (size_t)vc * C * (bf16 ? 2 : 4), e);
            if (!wc) goto out;
        }
        if (cudaMemcpy(drow, row, sizeof(int) * R, cudaMemcpyHostToDevice) != cudaSuccess ||
            cudaMemcpy(dtg, tg, sizeof(int32_t) * R, cudaMemcpyHostToDevice) != cudaSuccess ||
            k_gather_rows(X, a->xn, drow, R, C, c->st) != cudaSuccess ||
            (bf16 && k_to_bf16(Xb, X, KDT_F32, (size_t)R * C, c->st) != cudaSuccess) ||
            k_head_init(dst, R, c->st) != cudaSuccess) {
            lop_fail(e, "cuda: head setup failed: %s", cudaGetErrorString(cudaGetLastError()));
            goto out;
        }
        if (host) {
            hl = (float *)malloc(sizeof(float) * (size_t)rc_rows * vc);
            if (K > 1) {
                kid = (int32_t *)malloc(sizeof(int32_t) * (size_t)R * K);
                kval = (float *)malloc(sizeof(float) * (size_t)R * K);
                kn = (int *)calloc(R, sizeof(int));
            }
            if (!hl || (K > 1 && (!kid || !kval || !kn))) { lop_fail(e, "out of memory"); goto out; }
        }
        const float one = 1.0f, zero = 0.0f;
        for (int v0 = 0; v0 < V; v0 += vc) {
            int nv = V - v0 < vc ? V - v0 : vc;
            const void *Wc = (const char *)W + (size_t)v0 * C * es;
            if (wc) {
                cudaError_t r = bf16 ? k_to_bf16((__nv_bfloat16 *)wc, Wc, kdt(wdt), (size_t)nv * C, c->st)
                                     : k_to_f32((float *)wc, Wc, kdt(wdt), (size_t)nv * C, c->st);
                if (r != cudaSuccess) { lop_fail(e, "cuda: head conversion: %s", cudaGetErrorString(r)); goto out; }
                Wc = wc;
            }
            for (int r0 = 0; r0 < R; r0 += rc_rows) {
                int nr = R - r0 < rc_rows ? R - r0 : rc_rows;
                int lr = bf16 && (c->fuse & FUSE_LT) ? lt_gemm(c, lg, 0, nv, Wc, Xb + (size_t)r0 * C, NULL, nr, C, nv, e) : 1;
                if (lr < 0) goto out;
                cublasStatus_t bs = !lr ? CUBLAS_STATUS_SUCCESS : bf16
                    ? cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, nv, nr, C, &one, Wc, CUDA_R_16BF, C,
                                   Xb + (size_t)r0 * C, CUDA_R_16BF, C, &zero, lg, CUDA_R_32F, nv,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT)
                    : cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, nv, nr, C, &one, (const float *)Wc, C,
                                  X + (size_t)r0 * C, C, &zero, lg, nv);
                if (bs != CUBLAS_STATUS_SUCCESS) { lop_fail(e, "cublas: head GEMM failed (%d)", (int)bs); goto out; }
                cudaError_t r = k_head_reduce(lg, dst + r0, dtg + r0, nr, nv, v0, a->softcap,
                                              !host && c->head_discard, c->st);
                if (r != cudaSuccess) { lop_fail(e, "cuda: head reduce: %s", cudaGetErrorString(r)); goto out; }
                if (!host) continue;
                r = cudaMemcpy(hl, lg, sizeof(float) * (size_t)nr * nv, cudaMemcpyDeviceToHost);
                if (r != cudaSuccess) { lop_fail(e, "cuda: download: %s", cudaGetErrorString(r)); goto out; }
                for (int i = 0; i < nr; i++) {
                    const float *lr = hl + (size_t)i * nv;
                    int q = r0 + i;
                    if (wl[q] >= 0) memcpy(h->logits + (size_t)wl[q] * V + v0, lr, sizeof(float) * nv);
                    if (K > 1) {
                        int32_t *ids = kid + (size_t)q * K;
                        float *vals = kval + (size_t)q * K;
                        for (int j = 0; j < nv; j++)
                            if (kn[q] < K || lr[j] >= vals[K - 1]) topk_insert(ids, vals, &kn[q], K, lr[j], v0 + j);
                    }
                }
                if (h->block && h->block(h->user, v0, nv, hl, nr, row + r0)) {
                    lop_fail(e, "a head block callback stopped the forward");
                    goto out;
                }
            }
        }
        hs = (head_state_d *)malloc(sizeof *hs * R);
        if (!hs) { lop_fail(e, "out of memory"); goto out; }
        CU(cudaMemcpy(hs, dst, sizeof *hs * R, cudaMemcpyDeviceToHost), "download head state");
        for (int q = 0; q < R; q++) /* as the cpu head: non-finite logits are an error */
            if (!isfinite(hs[q].mx) || !isfinite(hs[q].sum)) {
                lop_fail(e, "non-finite logits (NaN or Inf): the hidden states are finite, the lm_head "
                            "(%s) is not", a->w->name ? a->w->name : "unnamed");
                goto out;
            }
        for (int q = 0; q < R; q++) {
            int i = row[q];
            double lse = hs[q].mx + log(hs[q].sum);
            if (h->lse) h->lse[i] = (float)lse;
            if (h->target_logprob) h->target_logprob[i] = tg[q] >= 0 ? (float)(hs[q].tlogit - lse) : 0.0f;
            if (h->argmax) h->argmax[i] = hs[q].amax_id;
            if (h->topk > 0)
                for (int k = 0; k < h->topk; k++) {
                    int32_t id = -1; float v = -INFINITY;
                    if (K > 1 && k < kn[q]) { id = kid[(size_t)q * K + k]; v = kval[(size_t)q * K + k]; }
                    else if (K == 1 && k == 0) { id = hs[q].amax_id; v = hs[q].amax; }
                    h->topk_id[(size_t)i * h->topk + k] = id;
                    h->topk_logit[(size_t)i * h->topk + k] = v;
                }
        }
        rc = 0;
    }
out:
    free(row); free(wl); free(tg); free(hl); free(kid); free(kval); free(kn); free(hs);
    return rc;
}

static int cu_head(lop_backend *be, const lop_head_args *a, lop_head_req *h, lop_err *e) {
    cu_be *c_ = (cu_be *)be;
    prof_begin(c_);
    int r_ = cu_head_impl(be, a, h, e);
    prof_end(c_, P_HEAD);
    return r_;
}

/* ---- what the training ops (backend_cuda_train.cu) need of this file ---- */
cublasHandle_t cu_blas_of(lop_backend *be) { return ((cu_be *)be)->blas; }
cudaStream_t cu_stream_of(lop_backend *be) { return ((cu_be *)be)->st; }
const void *cu_weight_of(lop_backend *be, const lop_wref *w, int vec, lop_err *e) {
    return weight_dev((cu_be *)be, w, vec, e);
}
void cu_touch(lop_backend *be) { ((cu_be *)be)->gen++; }
void cu_xbf_pass(lop_backend *be, const float *x) {
    cu_be *c = (cu_be *)be;
    if (c->xbf_src == x && c->xbf_gen + 1 == c->gen) c->xbf_gen = c->gen;
}
unsigned long cu_gen(lop_backend *be) { return ((cu_be *)be)->gen; }
void **cu_train_state(lop_backend *be) { return &((cu_be *)be)->train; }
void cu_prof_begin(lop_backend *be) { prof_begin((cu_be *)be); }
void cu_prof_end(lop_backend *be, int kind) { prof_end((cu_be *)be, P_TRAIN0 + kind); }

static const lop_backend_ops cuda_ops = {
    cu_destroy, cu_alloc, cu_release, cu_upload, cu_download, cu_copy,
    cu_weights_fit, cu_weight_load, cu_weights_changed, cu_gemm_supported,
    cu_embed, cu_matmul, cu_rmsnorm, cu_rope_table, cu_rope_apply, cu_qk_norm_rope, cu_attention,
    cu_glu, cu_add, cu_head, cu_nonfinite, cu_nonfinite_first, cu_mem_peak,
    cu_matmul_add, cu_mlp_glu, cu_rmsnorm_gemm_in,
    /* training (backend_cuda_train.cu) */
    cu_zero, cu_lora_forward, cu_matmul_backward, cu_lora_backward, cu_rmsnorm_backward,
    cu_rope_backward, cu_attention_backward, cu_glu_backward, cu_embed_backward, cu_head_logits,
    cu_head_backward, cu_xent, cu_grad_sumsq, cu_adamw, cu_adamw_many, cu_lora_matmul,
};

/* The one symbol liblop_cuda.so exports (backend_cuda_load.c finds it with dlsym). */
extern "C" __attribute__((visibility("default"))) int lop_cuda_backend_new(lop_backend **out, int dev,
                                                                          const lop_config *cfg, lop_err *e) {
    *out = NULL;
    int n = 0;
    cudaError_t r = cudaGetDeviceCount(&n);
    if (r != cudaSuccess || n == 0)
        return lop_failc(e, LOP_EUSAGE, "no CUDA GPU is available (%s)",
                         r != cudaSuccess ? cudaGetErrorString(r) : "0 devices");
    if (dev >= n) return lop_failc(e, LOP_EUSAGE, "cuda:%d: this machine has %d GPU%s", dev, n, n == 1 ? "" : "s");
    if (cfg->head_dim > 256)
        return lop_failc(e, LOP_EUSAGE, "cuda: head_dim %d is above the attention kernel's 256", cfg->head_dim);
    CU(cudaSetDevice(dev), "cudaSetDevice");
    cu_be *c = (cu_be *)calloc(1, sizeof *c);
    if (!c) return lop_fail(e, "out of memory");
    c->be.op = &cuda_ops;
    snprintf(c->be.name, sizeof c->be.name, "cuda:%d", dev);
    c->be.host_mem = 0;
    c->be.device = dev;
    c->be.att_recompute = 1; /* attention_backward recomputes the probabilities (backend_cuda_train.cu) */
    c->st = 0;
    c->hidden = cfg->hidden;
    c->n_slots = cfg->n_layers + 2;
    c->last_gemm = LOP_GEMM_F32;
    if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) {
        free(c);
        return lop_fail(e, "cublas: cannot create a handle on cuda:%d", dev);
    }
    cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH); /* no TF32: --gemm f32 means float32 */
    cublasSetStream(c->blas, c->st);
    /* cuBLASLt for the bf16 GEMMs (1% ahead of cublasGemmEx on the 0.6B shapes, and it has the
     * residual epilogue) with a workspace it shares with the cuBLAS handle (one stream: their uses
     * never overlap) */
    if (cudaMalloc(&c->ltws, (size_t)LT_WS_MB << 20) != cudaSuccess) { cudaGetLastError(); c->ltws = NULL; }
    if (!c->ltws || cublasLtCreate(&c->lt) != CUBLAS_STATUS_SUCCESS) c->lt = NULL; /* cuBLAS alone */
    if (c->ltws) cublasSetWorkspace(c->blas, c->ltws, (size_t)LT_WS_MB << 20);
    const char *pe = getenv("LOP_CUDA_PROFILE");
    c->prof = pe && *pe && strcmp(pe, "0") ? (strcmp(pe, "sync") ? 1 : 2) : 0;
    pe = getenv("LOP_CUDA_FUSE"); /* a mask of FUSE_* (for comparisons) */
    c->fuse = pe && *pe ? atoi(pe) : FUSE_DEFAULT;
    c->head_vc = VCHUNK;
    if ((pe = getenv("LOP_CUDA_HEAD")) && *pe) { /* "vchunk,rows" (rows 0: as many as fit 512 MB) */
        int a = 0, b = 0;
        int d = 0;
        if (sscanf(pe, "%d,%d,%d", &a, &b, &d) >= 1 && a >= 256) {
            c->head_vc = a; c->head_rows = b > 0 ? b : 0; c->head_discard = d > 0;
        }
    }
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) c->mem_base = c->mem_peak = tot - fr;
    *out = &c->be;
    return 0;
}
