/* test_cuda.c — every CUDA backend op against the CPU backend's on fresh random data (backend.h):
 * embedding, matmul (f32 and bf16 GEMMs, each weight dtype, bias), RMSNorm (plain and Gemma),
 * RoPE, attention (GQA, causal, sliding window, softcap, head dims 8..256, a kv cache), GLU,
 * add, the optional fusions (matmul + residual, gate/up + GLU, a norm kept in bf16 for its GEMMs),
 * and the head (logsumexp, target log-prob, argmax, top-k, full logits, softcap, several
 * vocabulary chunks); then the training ops (t_train: LoRA, every backward, the training head,
 * cross-entropy, the global norm, AdamW, the distillation loss). Outputs are poisoned with NaN
 * first, so an element never written fails.
 * Bounds: float32 ops 2e-5 relative (rounding order), bf16 GEMMs 1e-2.
 * Without CUDA in the build, or without a GPU, it says so and passes (make test-cuda on a GPU). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend.h"
#include "dtype.h"
#include "nn.h"
#include "kd.h"
#include "kd_cache.h"
#include "optim.h"
#include "check.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void) { return check_frand(&rng); } /* uniform [-1, 1): check.h's generator */
static void fill(float *x, size_t n, float s) { for (size_t i = 0; i < n; i++) x[i] = frand() * s; }

static lop_backend *G, *H; /* gpu, cpu */
static lop_err E;

static void *dev_of(const void *h, size_t bytes) {
    void *d = G->op->alloc(G, bytes);
    if (!d || G->op->upload(G, d, h, bytes, &E)) { fprintf(stderr, "alloc/upload failed\n"); exit(1); }
    return d;
}
static float *dev_nan(size_t n) {
    float *t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) t[i] = NAN;
    float *d = dev_of(t, n * sizeof *t);
    free(t);
    return d;
}
static float *host_of(const float *d, size_t n) {
    float *h = malloc(n * sizeof *h);
    if (G->op->download(G, h, d, n * sizeof *h, &E)) { fprintf(stderr, "download: %s\n", E.msg); exit(1); }
    return h;
}

/* relative error ||a - b|| / ||b||; NaN anywhere fails */
static void cmp(const char *what, const float *got, const float *ref, size_t n, double tol) {
    double d = 0, r = 0, mx = 0;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) != isnan(ref[i])) bad++;
        if (isnan(got[i]) || isnan(ref[i])) continue;
        double x = (double)got[i] - ref[i];
        d += x * x; r += (double)ref[i] * ref[i];
        if (fabs(x) > mx) mx = fabs(x);
    }
    double rel = r > 0 ? sqrt(d / r) : sqrt(d);
    int ok = !bad && rel <= tol;
    printf("%-4s %-58s rel %.2e  max|d| %.2e%s\n", ok ? "ok" : "FAIL", what, rel, mx,
           bad ? "  (NaN mismatch: an element not written)" : "");
    if (!ok) fails++;
}

#define CK(x) do { if (x) { printf("FAIL %s: %s\n", #x, E.msg); fails++; return; } } while (0)

/* A fresh weight. The device keeps one copy per lop_wref (keyed by its address) while it points
 * at the same data: these stack wrefs and freed-then-reused buffers would look unchanged, so the
 * device is told to re-read them (as a tool that frees and replaces weights must do). */
static lop_wref wmat(st_dtype dt, int rows, int cols, float scale, void **keep) {
    if (G->op->weights_changed(G, &E)) { fprintf(stderr, "weights_changed: %s\n", E.msg); exit(1); }
    size_t n = (size_t)rows * cols;
    float *f = malloc(n * sizeof *f);
    fill(f, n, scale);
    void *raw = malloc(n * st_dtype_size(dt));
    st_from_f32(raw, f, dt, n);
    free(f);
    *keep = raw;
    return (lop_wref){raw, dt, rows, cols, "w", 0};
}

static void t_embed(void) {
    int V = 1000, C = 96, N = 77;
    void *raw;
    lop_wref t = wmat(ST_BF16, V, C, 1, &raw);
    int32_t ids[77];
    for (int i = 0; i < N; i++) ids[i] = (int)((frand() + 1) * 499.9);
    float *ref = malloc(sizeof(float) * N * C), *d = dev_nan((size_t)N * C);
    CK(H->op->embed(H, ref, ids, &t, N, C, 9.797959f, &E));
    CK(G->op->embed(G, d, ids, &t, N, C, 9.797959f, &E));
    float *got = host_of(d, (size_t)N * C);
    cmp("embedding bf16 table, scale sqrt(C)", got, ref, (size_t)N * C, 0);
    free(got); free(ref); free(raw); G->op->release(G, d);
}

static void t_matmul(st_dtype dt, int N, int IC, int OC, int bias, lop_gemm g) {
    void *raw, *braw = NULL;
    lop_wref w = wmat(dt, OC, IC, 0.1f, &raw), b = {0};
    if (bias) b = wmat(ST_BF16, 1, OC, 1, &braw);
    float *x = malloc(sizeof(float) * N * IC), *ref = malloc(sizeof(float) * N * OC);
    fill(x, (size_t)N * IC, 1);
    float *dx = dev_of(x, sizeof(float) * N * IC), *dout = dev_nan((size_t)N * OC);
    CK(H->op->matmul(H, ref, x, &w, &b, N, LOP_GEMM_F32, &E));
    CK(G->op->matmul(G, dout, dx, &w, &b, N, g, &E));
    float *got = host_of(dout, (size_t)N * OC);
    char what[128];
    snprintf(what, sizeof what, "matmul %s W %s [%d x %d] N=%d%s", g == LOP_GEMM_BF16 ? "bf16" : "f32",
             st_dtype_name(dt), OC, IC, N, bias ? " +bias" : "");
    cmp(what, got, ref, (size_t)N * OC, g == LOP_GEMM_BF16 ? 1e-2 : 2e-5);
    free(got); free(x); free(ref); free(raw); free(braw);
    G->op->release(G, dx); G->op->release(G, dout);
}

static void t_rmsnorm(int N, int C, int gemma) {
    void *raw;
    lop_wref w = wmat(ST_BF16, 1, C, 1, &raw);
    float *x = malloc(sizeof(float) * N * C), *ref = malloc(sizeof(float) * N * C), *rr = malloc(sizeof(float) * N);
    fill(x, (size_t)N * C, 3);
    float *dx = dev_of(x, sizeof(float) * N * C), *dout = dev_nan((size_t)N * C), *dr = dev_nan(N);
    CK(H->op->rmsnorm(H, ref, rr, x, &w, N, C, 1e-6f, gemma, &E));
    CK(G->op->rmsnorm(G, dout, dr, dx, &w, N, C, 1e-6f, gemma, &E));
    float *got = host_of(dout, (size_t)N * C), *gr = host_of(dr, N);
    char what[96];
    snprintf(what, sizeof what, "rmsnorm%s N=%d C=%d", gemma ? " (gemma 1+w)" : "", N, C);
    cmp(what, got, ref, (size_t)N * C, 1e-6);
    cmp("  its rstd", gr, rr, N, 1e-6);
    free(got); free(gr); free(x); free(ref); free(rr); free(raw);
    G->op->release(G, dx); G->op->release(G, dout); G->op->release(G, dr);
}

static void t_rope(int N, int H_, int D) {
    float inv[512];
    lop_rope r = {.type = ROPE_DEFAULT, .theta = 1e6};
    rope_inv_freq(inv, D, &r);
    int *pos = malloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) pos[i] = i * 37 % 5000;
    float *cs = malloc(sizeof(float) * N * D), *x = malloc(sizeof(float) * N * H_ * D);
    fill(x, (size_t)N * H_ * D, 2);
    float *dcs = dev_nan((size_t)N * D), *dx = dev_of(x, sizeof(float) * N * H_ * D);
    CK(H->op->rope_table(H, cs, pos, inv, N, D, &E));
    CK(G->op->rope_table(G, dcs, pos, inv, N, D, &E));
    float *gcs = host_of(dcs, (size_t)N * D);
    cmp("rope table (angles in double)", gcs, cs, (size_t)N * D, 1e-7);
    CK(H->op->rope_apply(H, x, cs, N, H_, D, &E));
    CK(G->op->rope_apply(G, dx, dcs, N, H_, D, &E));
    float *gx = host_of(dx, (size_t)N * H_ * D);
    cmp("rope apply", gx, x, (size_t)N * H_ * D, 1e-6);
    free(pos); free(cs); free(x); free(gcs); free(gx);
    G->op->release(G, dcs); G->op->release(G, dx);
}

/* the fused qk-norm + rope against the cpu's rmsnorm then rope_apply (exact: the same float ops) */
static void t_qk_norm_rope(int N, int H_, int D, int gemma) {
    if (!G->op->qk_norm_rope) return;
    float inv[512];
    lop_rope r = {.type = ROPE_DEFAULT, .theta = 1e4};
    rope_inv_freq(inv, D, &r);
    int *pos = malloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) pos[i] = i % 700;
    void *raw;
    lop_wref w = wmat(ST_BF16, 1, D, 1, &raw);
    size_t n = (size_t)N * H_ * D;
    float *cs = malloc(sizeof(float) * N * D), *x = malloc(n * 4), *ref = malloc(n * 4), *rr = malloc(sizeof(float) * N * H_);
    fill(x, n, 3);
    float *dcs = dev_nan((size_t)N * D), *dx = dev_of(x, n * 4), *dout = dev_nan(n), *dr = dev_nan((size_t)N * H_);
    CK(H->op->rope_table(H, cs, pos, inv, N, D, &E));
    CK(G->op->rope_table(G, dcs, pos, inv, N, D, &E));
    CK(H->op->rmsnorm(H, ref, rr, x, &w, N * H_, D, 1e-6f, gemma, &E));
    CK(H->op->rope_apply(H, ref, cs, N, H_, D, &E));
    int rc = G->op->qk_norm_rope(G, dout, dr, dx, &w, dcs, N, H_, D, 1e-6f, gemma, &E);
    char what[96];
    snprintf(what, sizeof what, "qk-norm + rope fused D=%d H=%d%s", D, H_, gemma ? " (gemma)" : "");
    if (rc) { printf("FAIL %s: returned %d\n", what, rc); fails++; }
    else {
        float *got = host_of(dout, n), *gr = host_of(dr, (size_t)N * H_);
        cmp(what, got, ref, n, 1e-6);
        cmp("  its rstd", gr, rr, (size_t)N * H_, 1e-6);
        free(got); free(gr);
    }
    free(pos); free(cs); free(x); free(ref); free(rr); free(raw);
    G->op->release(G, dcs); G->op->release(G, dx); G->op->release(G, dout); G->op->release(G, dr);
}

/* a minimal lop_kv on a backend (as model_kv.c lays it out) */
static lop_kv *kv_make(lop_backend *be, int B, int max_t, int L, int row) {
    lop_kv *kv = calloc(1, sizeof *kv);
    kv->B = B; kv->max_t = max_t; kv->n_layers = L; kv->row = row; kv->be = be;
    kv->len = calloc(B, sizeof(int));
    kv->k = calloc(L, sizeof(float *)); kv->v = calloc(L, sizeof(float *));
    for (int l = 0; l < L; l++) {
        kv->k[l] = be->op->alloc(be, sizeof(float) * B * max_t * row);
        kv->v[l] = be->op->alloc(be, sizeof(float) * B * max_t * row);
    }
    return kv;
}

static void t_attention_g(int D, int Hq, int Hkv, int window, float softcap, int cached, lop_gemm g) {
    enum { B = 4 };
    int len[B] = {1, 70, 200, 129}, off[B + 1] = {0};
    for (int b = 0; b < B; b++) off[b + 1] = off[b] + len[b];
    int N = off[B], qd = Hq * D, kd = Hkv * D;
    float *q = malloc(sizeof(float) * N * qd), *k = malloc(sizeof(float) * N * kd),
          *v = malloc(sizeof(float) * N * kd), *ref = malloc(sizeof(float) * N * qd);
    fill(q, (size_t)N * qd, 1); fill(k, (size_t)N * kd, 1); fill(v, (size_t)N * kd, 1);
    float *dq = dev_of(q, sizeof(float) * N * qd), *dk = dev_of(k, sizeof(float) * N * kd),
          *dv = dev_of(v, sizeof(float) * N * kd), *dout = dev_nan((size_t)N * qd);
    lop_attn_args a = {.out = ref, .q = q, .k = k, .v = v, .B = B, .len = len, .off = off, .Hq = Hq,
                       .Hkv = Hkv, .D = D, .window = window, .scale = 1.0f / sqrtf((float)D),
                       .softcap = softcap};
    lop_kv *hk = NULL, *gk = NULL;
    if (cached) { /* a prefix of 50 random positions already in each sequence's cache */
        hk = kv_make(H, B, 400, 1, kd);
        gk = kv_make(G, B, 400, 1, kd);
        float *pre = malloc(sizeof(float) * B * 400 * kd);
        fill(pre, (size_t)B * 400 * kd, 1);
        memcpy(hk->k[0], pre, sizeof(float) * B * 400 * kd);
        G->op->upload(G, gk->k[0], pre, sizeof(float) * B * 400 * kd, &E);
        fill(pre, (size_t)B * 400 * kd, 1);
        memcpy(hk->v[0], pre, sizeof(float) * B * 400 * kd);
        G->op->upload(G, gk->v[0], pre, sizeof(float) * B * 400 * kd, &E);
        free(pre);
        for (int b = 0; b < B; b++) hk->len[b] = gk->len[b] = 50 + 3 * b;
        a.kv = hk;
    }
    CK(H->op->attention(H, &a, &E));
    a.out = dout; a.q = dq; a.k = dk; a.v = dv; a.kv = gk; a.gemm = g;
    CK(G->op->attention(G, &a, &E));
    float *got = host_of(dout, (size_t)N * qd);
    char what[128];
    snprintf(what, sizeof what, "attention%s D=%d Hq=%d Hkv=%d window=%d softcap=%g%s",
             g == LOP_GEMM_BF16 ? " bf16" : "", D, Hq, Hkv, window, softcap, cached ? " kv-cache" : "");
    cmp(what, got, ref, (size_t)N * qd, g == LOP_GEMM_BF16 ? 1e-2 : 2e-5);
    if (cached) { /* the cache rows the call wrote */
        float *gkc = host_of(gk->k[0], (size_t)B * 400 * kd);
        cmp("  kv cache keys written", gkc, hk->k[0], (size_t)B * 400 * kd, 0);
        free(gkc);
    }
    free(got); free(q); free(k); free(v); free(ref);
    G->op->release(G, dq); G->op->release(G, dk); G->op->release(G, dv); G->op->release(G, dout);
}

static void t_attention(int D, int Hq, int Hkv, int window, float softcap, int cached) {
    t_attention_g(D, Hq, Hkv, window, softcap, cached, LOP_GEMM_F32);
}

static void t_glu_add(void) {
    size_t n = 100003;
    float *g = malloc(n * 4), *u = malloc(n * 4), *ref = malloc(n * 4);
    fill(g, n, 6); fill(u, n, 2);
    float *dg = dev_of(g, n * 4), *du = dev_of(u, n * 4), *dh = dev_nan(n);
    for (int act = 0; act < 2; act++) {
        H->op->glu(H, ref, g, u, n, (lop_act)act, &E);
        G->op->glu(G, dh, dg, du, n, (lop_act)act, &E);
        float *got = host_of(dh, n);
        cmp(act ? "glu GELU(tanh)" : "glu SiLU", got, ref, n, 1e-6);
        free(got);
    }
    H->op->add(H, ref, g, u, n, &E);
    G->op->add(G, dh, dg, du, n, &E);
    float *got = host_of(dh, n);
    cmp("add", got, ref, n, 0);
    free(got); free(g); free(u); free(ref);
    G->op->release(G, dg); G->op->release(G, du); G->op->release(G, dh);
}

/* the fused projection + residual against the cpu's matmul then add (bf16; f32 is declined) */
static void t_matmul_add(int N, int IC, int OC) {
    if (!G->op->matmul_add) return;
    void *raw;
    lop_wref w = wmat(ST_BF16, OC, IC, 0.1f, &raw);
    float *x = malloc(sizeof(float) * N * IC), *r = malloc(sizeof(float) * N * OC),
          *ref = malloc(sizeof(float) * N * OC);
    fill(x, (size_t)N * IC, 1);
    fill(r, (size_t)N * OC, 0.5f);
    float *dx = dev_of(x, sizeof(float) * N * IC), *dr = dev_of(r, sizeof(float) * N * OC),
          *dout = dev_nan((size_t)N * OC);
    CK(H->op->matmul(H, ref, x, &w, NULL, N, LOP_GEMM_F32, &E));
    CK(H->op->add(H, ref, ref, r, (size_t)N * OC, &E));
    int rc = G->op->matmul_add(G, dout, dx, &w, dr, N, LOP_GEMM_BF16, &E);
    char what[128];
    snprintf(what, sizeof what, "matmul + residual (cuBLASLt) bf16 [%d x %d] N=%d", OC, IC, N);
    if (rc) { printf("FAIL %s: returned %d (%s)\n", what, rc, rc < 0 ? E.msg : "declined"); fails++; }
    else {
        float *got = host_of(dout, (size_t)N * OC);
        cmp(what, got, ref, (size_t)N * OC, 1e-2);
        free(got);
    }
    int f = G->op->matmul_add(G, dout, dx, &w, dr, N, LOP_GEMM_F32, &E);
    printf("%-4s   --gemm f32 declined (the plain ops keep its numbers): %d\n", f == 1 ? "ok" : "FAIL", f);
    fails += f != 1;
    free(x); free(r); free(ref); free(raw);
    G->op->release(G, dx); G->op->release(G, dr); G->op->release(G, dout);
}

/* gate/up GEMMs + GLU fused (bf16) against the cpu's two matmuls and glu; then, with need_h 0,
 * the down projection through the bf16-only copy of h */
static void t_mlp_glu(int N, int C, int FF, lop_act act) {
    if (!G->op->mlp_glu) return;
    void *rg, *ru, *rd;
    lop_wref wg = wmat(ST_BF16, FF, C, 0.1f, &rg), wu = wmat(ST_BF16, FF, C, 0.1f, &ru),
             wd = wmat(ST_F32, C, FF, 0.05f, &rd);
    size_t nf = (size_t)N * FF;
    float *x = malloc(sizeof(float) * N * C), *g = malloc(nf * 4), *u = malloc(nf * 4), *h = malloc(nf * 4),
          *y = malloc(sizeof(float) * N * C);
    fill(x, (size_t)N * C, 1);
    CK(H->op->matmul(H, g, x, &wg, NULL, N, LOP_GEMM_F32, &E));
    CK(H->op->matmul(H, u, x, &wu, NULL, N, LOP_GEMM_F32, &E));
    CK(H->op->glu(H, h, g, u, nf, act, &E));
    CK(H->op->matmul(H, y, h, &wd, NULL, N, LOP_GEMM_F32, &E));
    float *dx = dev_of(x, sizeof(float) * N * C), *dg = dev_nan(nf), *du = dev_nan(nf), *dh = dev_nan(nf),
          *dy = dev_nan((size_t)N * C);
    char what[128];
    snprintf(what, sizeof what, "gate,up GEMMs + %s (bf16) N=%d C=%d FF=%d", act ? "GELU" : "SiLU", N, C, FF);
    int rc = G->op->mlp_glu(G, dh, dg, du, dx, &wg, &wu, N, FF, act, 1, LOP_GEMM_BF16, &E);
    if (rc) { printf("FAIL %s: returned %d (%s)\n", what, rc, rc < 0 ? E.msg : "declined"); fails++; }
    else {
        float *got = host_of(dh, nf);
        cmp(what, got, h, nf, 1e-2);
        free(got);
    }
    /* need_h 0: h exists only as the down GEMM's bf16 input (its float32 stays NaN) */
    G->op->release(G, dh);
    dh = dev_nan(nf);
    rc = G->op->mlp_glu(G, dh, dg, du, dx, &wg, &wu, N, FF, act, 0, LOP_GEMM_BF16, &E);
    if (!rc) rc = G->op->matmul(G, dy, dh, &wd, NULL, N, LOP_GEMM_BF16, &E);
    if (rc) { printf("FAIL mlp_glu need_h 0 + down: %d (%s)\n", rc, E.msg); fails++; }
    else {
        float *got = host_of(dy, (size_t)N * C);
        cmp("  then the down GEMM on h's bf16-only copy", got, y, (size_t)N * C, 1e-2);
        free(got);
    }
    int f = G->op->mlp_glu(G, dh, dg, du, dx, &wg, &wu, N, FF, act, 1, LOP_GEMM_F32, &E);
    printf("%-4s   --gemm f32 declined: %d\n", f == 1 ? "ok" : "FAIL", f);
    fails += f != 1;
    free(x); free(g); free(u); free(h); free(y); free(rg); free(ru); free(rd);
    G->op->release(G, dx); G->op->release(G, dg); G->op->release(G, du); G->op->release(G, dh);
    G->op->release(G, dy);
}

/* a norm feeding bf16 GEMMs only (its float32 never written), then the GEMM, against the cpu's
 * rmsnorm then matmul */
static void t_rmsnorm_gemm_in(int N, int C, int OC) {
    if (!G->op->rmsnorm_gemm_in) return;
    void *rn, *rw;
    lop_wref wn = wmat(ST_BF16, 1, C, 1, &rn), w = wmat(ST_BF16, OC, C, 0.1f, &rw);
    float *x = malloc(sizeof(float) * N * C), *xn = malloc(sizeof(float) * N * C),
          *ref = malloc(sizeof(float) * N * OC);
    fill(x, (size_t)N * C, 3);
    CK(H->op->rmsnorm(H, xn, NULL, x, &wn, N, C, 1e-6f, 0, &E));
    CK(H->op->matmul(H, ref, xn, &w, NULL, N, LOP_GEMM_F32, &E));
    float *dx = dev_of(x, sizeof(float) * N * C), *dxn = dev_nan((size_t)N * C), *dout = dev_nan((size_t)N * OC);
    CK(G->op->rmsnorm_gemm_in(G, dxn, NULL, dx, &wn, N, C, 1e-6f, 0, LOP_GEMM_BF16, &E));
    CK(G->op->matmul(G, dout, dxn, &w, NULL, N, LOP_GEMM_BF16, &E));
    float *got = host_of(dout, (size_t)N * OC);
    char what[96];
    snprintf(what, sizeof what, "rmsnorm (bf16 copy only) then bf16 GEMM N=%d C=%d", N, C);
    cmp(what, got, ref, (size_t)N * OC, 1e-2);
    /* in f32 it is the plain rmsnorm (its float32 written, exact) */
    CK(G->op->rmsnorm_gemm_in(G, dxn, NULL, dx, &wn, N, C, 1e-6f, 0, LOP_GEMM_F32, &E));
    float *gxn = host_of(dxn, (size_t)N * C);
    cmp("  --gemm f32: the float32 norm", gxn, xn, (size_t)N * C, 1e-6);
    free(got); free(gxn); free(x); free(xn); free(ref); free(rn); free(rw);
    G->op->release(G, dx); G->op->release(G, dxn); G->op->release(G, dout);
}

static void t_head(int N, int C, int V, float cap, int topk, lop_gemm g) {
    void *raw;
    lop_wref w = wmat(ST_BF16, V, C, 0.2f, &raw);
    float *xn = malloc(sizeof(float) * N * C);
    fill(xn, (size_t)N * C, 1);
    float *dx = dev_of(xn, sizeof(float) * N * C);
    uint8_t *sel = malloc(N), *want = calloc(N, 1);
    int32_t *tg = malloc(sizeof(int32_t) * N);
    int nwant = 0;
    for (int i = 0; i < N; i++) {
        sel[i] = i % 3 != 1;
        tg[i] = i % 7 == 0 ? -1 : (int)((frand() + 1) * 0.5 * (V - 1));
        if (i == 2 || i == N - 1) { want[i] = 1; nwant++; }
    }
    float *lp[2], *lse[2], *lg[2], *tl[2];
    int32_t *am[2], *ti[2];
    for (int s = 0; s < 2; s++) {
        lp[s] = calloc(N, 4); lse[s] = calloc(N, 4); am[s] = calloc(N, 4);
        ti[s] = calloc((size_t)N * (topk ? topk : 1), 4); tl[s] = calloc((size_t)N * (topk ? topk : 1), 4);
        lg[s] = calloc((size_t)nwant * V, 4);
        lop_head_req h = {.select = sel, .target = tg, .target_logprob = lp[s], .lse = lse[s],
                          .argmax = am[s], .topk = topk, .topk_id = ti[s], .topk_logit = tl[s],
                          .want_logits = topk ? want : NULL, .logits = topk ? lg[s] : NULL};
        lop_head_args a = {.xn = s ? dx : xn, .N = N, .C = C, .V = V, .w = &w, .softcap = cap,
                           .gemm = s ? g : LOP_GEMM_F32};
        lop_backend *be = s ? G : H;
        CK(be->op->head(be, &a, &h, &E));
    }
    double tol = g == LOP_GEMM_BF16 ? 1e-2 : 2e-5;
    char what[128];
    snprintf(what, sizeof what, "head %s N=%d C=%d V=%d cap=%g topk=%d: target log-prob",
             g == LOP_GEMM_BF16 ? "bf16" : "f32", N, C, V, cap, topk);
    cmp(what, lp[1], lp[0], N, tol);
    cmp("  logsumexp", lse[1], lse[0], N, tol);
    int amiss = 0, tmiss = 0;
    for (int i = 0; i < N; i++) {
        if (!sel[i] && !(topk && want[i])) continue;
        amiss += am[0][i] != am[1][i];
        for (int k = 0; k < topk; k++) tmiss += ti[0][(size_t)i * topk + k] != ti[1][(size_t)i * topk + k];
    }
    int ok = g == LOP_GEMM_BF16 ? amiss <= N / 50 : amiss == 0;
    printf("%-4s   argmax equal to the cpu's: %d rows differ\n", ok ? "ok" : "FAIL", amiss);
    fails += !ok;
    if (topk) {
        ok = g == LOP_GEMM_BF16 ? tmiss <= N * topk / 10 : tmiss == 0;
        printf("%-4s   top-%d ids equal: %d differ\n", ok ? "ok" : "FAIL", topk, tmiss);
        fails += !ok;
        cmp("  full logits of the wanted rows", lg[1], lg[0], (size_t)nwant * V, tol);
    }
    for (int s = 0; s < 2; s++) { free(lp[s]); free(lse[s]); free(am[s]); free(ti[s]); free(tl[s]); free(lg[s]); }
    free(xn); free(sel); free(want); free(tg); free(raw);
    G->op->release(G, dx);
}

/* ================================================================ training ops (backend.h's seam)
 * Each against the CPU backend's op on fresh random data; gradient outputs start from random
 * values (every backward accumulates). Bounds: float32 1e-5 relative (a different order of the
 * same sums), attention 1e-4 (probabilities recomputed from the logsumexp), bf16 GEMMs 1e-2;
 * AdamW, RoPE's and the embedding's backwards bit for bit. */

static float *rnd_host(size_t n, float s) { float *x = malloc(n * sizeof *x); fill(x, n, s); return x; }
/* a host buffer and its device copy */
typedef struct hd { float *h, *d; size_t n; } hd;
static hd hd_rnd(size_t n, float s) { hd r = {rnd_host(n, s), NULL, n}; r.d = dev_of(r.h, n * 4); return r; }
static hd hd_zero(size_t n) { hd r = {calloc(n, 4), NULL, n}; r.d = dev_of(r.h, n * 4); return r; }
static void hd_cmp(const char *what, hd x, double tol) {
    float *g = host_of(x.d, x.n);
    cmp(what, g, x.h, x.n, tol);
    free(g);
}
static void hd_free(hd x) { free(x.h); if (x.d) G->op->release(G, x.d); }
/* a trainable weight on each side: float32 in backend memory (bemem) */
static void wtrain(hd w, int rows, int cols, lop_wref *hw, lop_wref *gw) {
    *hw = (lop_wref){w.h, ST_F32, rows, cols, "trainable", 1};
    *gw = (lop_wref){w.d, ST_F32, rows, cols, "trainable", 1};
}

/* g bf16: the GPU's rank-r products on TF32 tensor cores (a bf16 run's), against float32 */
static void t_lora(int N, int IC, int OC, int r, float p, lop_gemm g) {
    double tol = g == LOP_GEMM_BF16 ? 5e-3 : 1e-5;
    if (!G->op->lora_forward) { printf("FAIL lora_forward missing\n"); fails++; return; }
    hd x = hd_rnd((size_t)N * IC, 1), A = hd_rnd((size_t)r * IC, 0.1f), B = hd_rnd((size_t)OC * r, 0.1f);
    hd out = hd_rnd((size_t)N * OC, 1), xa = hd_zero((size_t)N * r), tmp = hd_zero((size_t)N * IC);
    uint64_t seed = 1234567, key = 3 * 7 + 2 + 1;
    float sc = 2.0f;
    CK(H->op->lora_forward(H, out.h, xa.h, tmp.h, x.h, A.h, B.h, N, IC, OC, r, sc, p, seed, key, LOP_GEMM_F32, &E));
    CK(G->op->lora_forward(G, out.d, xa.d, tmp.d, x.d, A.d, B.d, N, IC, OC, r, sc, p, seed, key, g, &E));
    char what[128];
    snprintf(what, sizeof what, "lora forward N=%d IC=%d OC=%d r=%d dropout=%g %s: out", N, IC, OC, r, p,
             g == LOP_GEMM_BF16 ? "tf32" : "f32");
    hd_cmp(what, out, tol);
    hd_cmp("  xa", xa, tol);
    hd dout = hd_rnd((size_t)N * OC, 1), din = hd_rnd((size_t)N * IC, 1), dA = hd_rnd((size_t)r * IC, 1),
       dB = hd_rnd((size_t)OC * r, 1), dxa = hd_zero((size_t)N * r);
    CK(H->op->lora_backward(H, din.h, dA.h, dB.h, dxa.h, tmp.h, dout.h, x.h, xa.h, A.h, B.h, N, IC, OC, r,
                            sc, p, seed, key, LOP_GEMM_F32, 0, &E));
    CK(G->op->lora_backward(G, din.d, dA.d, dB.d, dxa.d, tmp.d, dout.d, x.d, xa.d, A.d, B.d, N, IC, OC, r,
                            sc, p, seed, key, g, 0, &E));
    hd_cmp("lora backward: din", din, tol);
    hd_cmp("  dA", dA, tol);
    hd_cmp("  dB", dB, tol);
    hd_cmp("  dxa", dxa, tol);
    hd_free(x); hd_free(A); hd_free(B); hd_free(out); hd_free(xa); hd_free(tmp);
    hd_free(dout); hd_free(din); hd_free(dA); hd_free(dB); hd_free(dxa);
}

/* lora_matmul (the adapter first, the projection's GEMM adding over it) against the cpu's matmul
 * then lora_forward; twice on one x (q then k: the bf16 copy of x shared); then the backward in
 * the order the core runs it with lora_matmul (lora_backward storing din, matmul_backward adding,
 * with the copy of dout the LoRA backward made) against the cpu's usual order. A frozen bf16
 * weight, the bf16 run's bound; f32 products must decline (1). */
static void t_lora_matmul(int N, int IC, int OC, int r, float p) {
    double tol = 1e-2;
    if (!G->op->lora_matmul) { printf("FAIL lora_matmul missing\n"); fails++; return; }
    void *raw[2] = {NULL, NULL};
    lop_wref w[2] = {wmat(ST_BF16, OC, IC, 0.05f, &raw[0]), wmat(ST_BF16, OC, IC, 0.05f, &raw[1])};
    lop_wref nob = {0};
    hd x = hd_rnd((size_t)N * IC, 1), A = hd_rnd((size_t)r * IC, 0.1f), B = hd_rnd((size_t)OC * r, 0.1f);
    hd out[2] = {hd_rnd((size_t)N * OC, 1), hd_rnd((size_t)N * OC, 1)};
    hd xa = hd_zero((size_t)N * r), tmp = hd_zero((size_t)N * IC);
    uint64_t seed = 99, key = 5;
    float sc = 2.0f;
    int rc = G->op->lora_matmul(G, out[0].d, xa.d, tmp.d, x.d, &w[0], A.d, B.d, N, r, sc, p, seed, key,
                                LOP_GEMM_F32, &E);
    if (rc != 1) { printf("FAIL lora_matmul with f32 products returned %d, not 1\n", rc); fails++; }
    for (int k = 0; k < 2; k++) {
        CK(H->op->matmul(H, out[k].h, x.h, &w[k], &nob, N, LOP_GEMM_F32, &E));
        CK(H->op->lora_forward(H, out[k].h, xa.h, tmp.h, x.h, A.h, B.h, N, IC, OC, r, sc, p, seed, key,
                               LOP_GEMM_F32, &E));
        CK(G->op->lora_matmul(G, out[k].d, xa.d, tmp.d, x.d, &w[k], A.d, B.d, N, r, sc, p, seed, key,
                              LOP_GEMM_BF16, &E));
    }
    char what[128];
    snprintf(what, sizeof what, "lora_matmul N=%d IC=%d OC=%d r=%d dropout=%g: out (first)", N, IC, OC, r, p);
    hd_cmp(what, out[0], tol);
    hd_cmp("  out (second, same x)", out[1], tol);
    hd_cmp("  xa", xa, tol);
    hd dout = hd_rnd((size_t)N * OC, 1), din = hd_rnd((size_t)N * IC, 1), dA = hd_rnd((size_t)r * IC, 1),
       dB = hd_rnd((size_t)OC * r, 1), dxa = hd_zero((size_t)N * r);
    CK(H->op->matmul_backward(H, din.h, NULL, NULL, dout.h, x.h, &w[1], N, LOP_GEMM_F32, 1, &E));
    CK(H->op->lora_backward(H, din.h, dA.h, dB.h, dxa.h, tmp.h, dout.h, x.h, xa.h, A.h, B.h, N, IC, OC, r, sc,
                            p, seed, key, LOP_GEMM_F32, 0, &E));
    CK(G->op->lora_backward(G, din.d, dA.d, dB.d, dxa.d, tmp.d, dout.d, x.d, xa.d, A.d, B.d, N, IC, OC, r, sc,
                            p, seed, key, LOP_GEMM_BF16, 1, &E));
    CK(G->op->matmul_backward(G, din.d, NULL, NULL, dout.d, x.d, &w[1], N, LOP_GEMM_BF16, 0, &E));
    hd_cmp("  backward, LoRA first (din stored) then the projection (added): din", din, tol);
    hd_cmp("  dA", dA, tol);
    hd_cmp("  dB", dB, tol);
    hd_free(x); hd_free(A); hd_free(B); hd_free(out[0]); hd_free(out[1]); hd_free(xa); hd_free(tmp);
    hd_free(dout); hd_free(din); hd_free(dA); hd_free(dB); hd_free(dxa);
    free(raw[0]); free(raw[1]);
}

/* The backward's chains of ops on the GPU, where bf16 copies made by one op are read by the next
 * (backend_cuda_train.cu's bfc): a frozen bf16 GEMM's backward then the LoRA beside it (dout's
 * copy), the GLU backward then gate's and up's (dgate's and dup's copies written by its kernel),
 * and three products of one input (q, k, v: one copy) whose input is then rewritten by an upload
 * (the next product must see the new values). Against the cpu's float32, bf16's bound. */
static void t_chains(int N, int IC, int OC, int r) {
    double tol = 1e-2;
    void *raw = NULL;
    lop_wref w = wmat(ST_BF16, OC, IC, 0.1f, &raw);
    hd x = hd_rnd((size_t)N * IC, 1), dout = hd_rnd((size_t)N * OC, 1), din = hd_rnd((size_t)N * IC, 1);
    hd A = hd_rnd((size_t)r * IC, 0.1f), B = hd_rnd((size_t)OC * r, 0.1f), xa = hd_rnd((size_t)N * r, 1);
    hd dA = hd_rnd((size_t)r * IC, 1), dB = hd_rnd((size_t)OC * r, 1), dxa = hd_zero((size_t)N * r),
       tmp = hd_zero((size_t)N * IC);
    for (int side = 0; side < 2; side++) {
        lop_backend *be = side ? G : H;
        lop_gemm g = side ? LOP_GEMM_BF16 : LOP_GEMM_F32;
#define S(v_) (side ? (v_).d : (v_).h)
        CK(be->op->matmul_backward(be, S(din), NULL, NULL, S(dout), S(x), &w, N, g, 1, &E));
        CK(be->op->lora_backward(be, S(din), S(dA), S(dB), S(dxa), S(tmp), S(dout), S(x), S(xa), S(A), S(B), N,
                                 IC, OC, r, 2.0f, 0, 1, 1, g, 0, &E));
#undef S
    }
    hd_cmp("chain: frozen bf16 matmul backward + LoRA backward (dout's copy): din", din, tol);
    hd_cmp("  dA", dA, tol);
    hd_cmp("  dB", dB, tol);
    hd_cmp("  dxa", dxa, tol);
    /* GLU backward -> gate and up backwards (trainable f32 weights, bf16 products) */
    int FF = OC;
    hd gt = hd_rnd((size_t)N * FF, 3), up = hd_rnd((size_t)N * FF, 1), dh = hd_rnd((size_t)N * FF, 1);
    hd dg = hd_rnd((size_t)N * FF, 1), du = hd_rnd((size_t)N * FF, 1);
    hd Wg = hd_rnd((size_t)FF * IC, 0.1f), Wu = hd_rnd((size_t)FF * IC, 0.1f);
    hd dWg = hd_rnd((size_t)FF * IC, 1), dWu = hd_rnd((size_t)FF * IC, 1);
    lop_wref hg, gg, hu, gu;
    wtrain(Wg, FF, IC, &hg, &gg);
    wtrain(Wu, FF, IC, &hu, &gu);
    for (int side = 0; side < 2; side++) {
        lop_backend *be = side ? G : H;
        lop_gemm g = side ? LOP_GEMM_BF16 : LOP_GEMM_F32;
#define S(v_) (side ? (v_).d : (v_).h)
        CK(be->op->glu_backward(be, S(dg), S(du), S(dh), S(gt), S(up), (size_t)N * FF, ACT_SILU, 1, g, &E));
        CK(be->op->matmul_backward(be, S(din), S(dWg), NULL, S(dg), S(x), side ? &gg : &hg, N, g, 1, &E));
        CK(be->op->matmul_backward(be, S(din), S(dWu), NULL, S(du), S(x), side ? &gu : &hu, N, g, 0, &E));
#undef S
    }
    hd_cmp("chain: GLU backward -> gate and up backwards (dgate's, dup's copies): din", din, tol);
    hd_cmp("  dW gate", dWg, tol);
    hd_cmp("  dW up", dWu, tol);
    /* one input for three products, then an upload rewrites it: the third must read the new x */
    for (int k = 0; k < 3; k++) {
        if (k == 2) {
            for (size_t i = 0; i < x.n; i++) x.h[i] = -0.5f * x.h[i] + 0.25f;
            CK(G->op->upload(G, x.d, x.h, x.n * 4, &E));
        }
        for (int side = 0; side < 2; side++) {
            lop_backend *be = side ? G : H;
            lop_gemm g = side ? LOP_GEMM_BF16 : LOP_GEMM_F32;
#define S(v_) (side ? (v_).d : (v_).h)
            CK(be->op->matmul_backward(be, S(din), k == 1 ? S(dWu) : S(dWg), NULL, k == 1 ? S(du) : S(dg), S(x),
                                       side ? (k == 1 ? &gu : &gg) : (k == 1 ? &hu : &hg), N, g, k == 0, &E));
#undef S
        }
    }
    hd_cmp("chain: three products of one input, rewritten before the third: din", din, tol);
    hd_cmp("  dW (first and third)", dWg, tol);
    hd_cmp("  dW (second)", dWu, tol);
    hd_free(x); hd_free(dout); hd_free(din); hd_free(A); hd_free(B); hd_free(xa); hd_free(dA); hd_free(dB);
    hd_free(dxa); hd_free(tmp); hd_free(gt); hd_free(up); hd_free(dh); hd_free(dg); hd_free(du);
    hd_free(Wg); hd_free(Wu); hd_free(dWg); hd_free(dWu);
    free(raw);
}

/* ow: the seam's overwrite (din stored over its random contents) */
static void t_matmul_bwd(st_dtype dt, int trainable, int N, int IC, int OC, int bias, lop_gemm g, int ow) {
    void *raw = NULL;
    lop_wref hw, gw;
    hd W = {0};
    if (trainable) { W = hd_rnd((size_t)OC * IC, 0.1f); wtrain(W, OC, IC, &hw, &gw); }
    else { hw = gw = wmat(dt, OC, IC, 0.1f, &raw); }
    hd x = hd_rnd((size_t)N * IC, 1), dout = hd_rnd((size_t)N * OC, 1), din = hd_rnd((size_t)N * IC, 1);
    hd dw = hd_rnd((size_t)OC * IC, 1), db = hd_zero(OC);
    float *hdw = trainable ? dw.h : NULL, *gdw = trainable ? dw.d : NULL;
    CK(H->op->matmul_backward(H, din.h, hdw, bias ? db.h : NULL, dout.h, x.h, &hw, N, LOP_GEMM_F32, ow, &E));
    CK(G->op->matmul_backward(G, din.d, gdw, bias ? db.d : NULL, dout.d, x.d, &gw, N, g, ow, &E));
    double tol = g == LOP_GEMM_BF16 ? 1e-2 : 1e-5;
    char what[128];
    snprintf(what, sizeof what, "matmul backward %s W %s%s [%d x %d] N=%d: din", g == LOP_GEMM_BF16 ? "bf16" : "f32",
             trainable ? "f32 trainable" : st_dtype_name(dt), ow ? " (overwrite)" : "", OC, IC, N);
    hd_cmp(what, din, tol);
    if (trainable) hd_cmp("  dW", dw, tol);
    if (bias) hd_cmp("  dbias", db, 1e-6);
    hd_free(x); hd_free(dout); hd_free(din); hd_free(dw); hd_free(db);
    if (trainable) hd_free(W);
    free(raw);
}

static void t_rmsnorm_bwd(int N, int C, int gemma, int ow) {
    void *raw;
    lop_wref w = wmat(ST_BF16, 1, C, 1, &raw);
    hd x = hd_rnd((size_t)N * C, 3), rs = hd_zero(N), dout = hd_rnd((size_t)N * C, 1);
    hd dx = hd_rnd((size_t)N * C, 1), dw = hd_rnd(C, 1);
    float *y = malloc(sizeof(float) * N * C);
    CK(H->op->rmsnorm(H, y, rs.h, x.h, &w, N, C, 1e-6f, gemma, &E));
    G->op->upload(G, rs.d, rs.h, sizeof(float) * N, &E); /* the same rstd on both sides */
    CK(H->op->rmsnorm_backward(H, dx.h, dw.h, dout.h, x.h, rs.h, &w, N, C, gemma, ow, &E));
    CK(G->op->rmsnorm_backward(G, dx.d, dw.d, dout.d, x.d, rs.d, &w, N, C, gemma, ow, &E));
    char what[96];
    snprintf(what, sizeof what, "rmsnorm backward%s%s N=%d C=%d: dx", gemma ? " (gemma)" : "",
             ow ? " (overwrite)" : "", N, C);
    hd_cmp(what, dx, 1e-5);
    hd_cmp("  dw", dw, 1e-5);
    free(y); free(raw); hd_free(x); hd_free(rs); hd_free(dout); hd_free(dx); hd_free(dw);
}

static void t_rope_bwd(int N, int H_, int D) {
    float inv[512];
    lop_rope r = {.type = ROPE_DEFAULT, .theta = 1e4};
    rope_inv_freq(inv, D, &r);
    int *pos = malloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) pos[i] = i % 513;
    hd cs = hd_zero((size_t)N * D), x = hd_rnd((size_t)N * H_ * D, 1);
    CK(H->op->rope_table(H, cs.h, pos, inv, N, D, &E));
    CK(G->op->rope_table(G, cs.d, pos, inv, N, D, &E));
    CK(H->op->rope_backward(H, x.h, cs.h, N, H_, D, &E));
    CK(G->op->rope_backward(G, x.d, cs.d, N, H_, D, &E));
    hd_cmp("rope backward (bit for bit)", x, 0);
    free(pos); hd_free(cs); hd_free(x);
}

static void t_attn_bwd_g(int B, const int *len, int Hq, int Hkv, int D, int window, float softcap,
                         lop_gemm gm, const char *path, int ow) {
    int off[9] = {0};
    int64_t att_off[8], att_n = 0;
    for (int b = 0; b < B; b++) {
        off[b + 1] = off[b] + len[b];
        att_off[b] = att_n;
        att_n += (int64_t)Hq * len[b] * len[b];
    }
    int N = off[B], qd = Hq * D, kd = Hkv * D;
    hd q = hd_rnd((size_t)N * qd, 1), k = hd_rnd((size_t)N * kd, 1), v = hd_rnd((size_t)N * kd, 1);
    hd dout = hd_rnd((size_t)N * qd, 1), dq = hd_rnd((size_t)N * qd, 1), dk = hd_rnd((size_t)N * kd, 1),
       dv = hd_rnd((size_t)N * kd, 1);
    float *out = malloc(sizeof(float) * N * qd), *att = calloc((size_t)att_n, sizeof(float));
    float scale = 1.0f / sqrtf((float)D);
    lop_attn_args a = {.out = out, .att = att, .att_off = att_off, .q = q.h, .k = k.h, .v = v.h, .B = B,
                       .len = len, .off = off, .Hq = Hq, .Hkv = Hkv, .D = D, .window = window,
                       .scale = scale, .softcap = softcap};
    CK(H->op->attention(H, &a, &E));
    lop_attn_bwd_args ab = {.dq = dq.h, .dk = dk.h, .dv = dv.h, .dout = dout.h, .att = att, .att_off = att_off,
                            .q = q.h, .k = k.h, .v = v.h, .B = B, .len = len, .off = off, .Hq = Hq,
                            .Hkv = Hkv, .D = D, .window = window, .scale = scale, .softcap = softcap,
                            .overwrite = ow};
    CK(H->op->attention_backward(H, &ab, &E));
    float *outd = dev_of(out, sizeof(float) * N * qd); /* the forward's output: the mma path's delta */
    ab = (lop_attn_bwd_args){.dq = dq.d, .dk = dk.d, .dv = dv.d, .dout = dout.d, .att = NULL, .att_off = NULL,
                             .q = q.d, .k = k.d, .v = v.d, .out = outd, .B = B, .len = len, .off = off, .Hq = Hq,
                             .Hkv = Hkv, .D = D, .window = window, .scale = scale, .softcap = softcap,
                             .gemm = gm, .overwrite = ow};
    setenv("LOP_CUDA_ATTN_BWD", path, 1);
    CK(G->op->attention_backward(G, &ab, &E));
    unsetenv("LOP_CUDA_ATTN_BWD");
    char what[160];
    snprintf(what, sizeof what, "attention backward %s%s%s B=%d T0=%d D=%d Hq=%d Hkv=%d window=%d softcap=%g: dq",
             path, gm == LOP_GEMM_BF16 ? " bf16" : "", ow ? " (overwrite)" : "", B, len[0], D, Hq, Hkv,
             window, softcap);
    double tol = gm == LOP_GEMM_BF16 ? 1e-2 : 1e-4;
    hd_cmp(what, dq, tol);
    hd_cmp("  dk", dk, tol);
    hd_cmp("  dv", dv, tol);
    G->op->release(G, outd);
    free(out); free(att);
    hd_free(q); hd_free(k); hd_free(v); hd_free(dout); hd_free(dq); hd_free(dk); hd_free(dv);
}

static void t_attn_bwd(int B, const int *len, int Hq, int Hkv, int D, int window, float softcap) {
    t_attn_bwd_g(B, len, Hq, Hkv, D, window, softcap, LOP_GEMM_F32, "flash", 0);
    t_attn_bwd_g(B, len, Hq, Hkv, D, window, softcap, LOP_GEMM_F32, "gemm", 0);
    t_attn_bwd_g(B, len, Hq, Hkv, D, window, softcap, LOP_GEMM_BF16, "gemm", 0);
    /* the trainer's first writes: stored over random contents */
    t_attn_bwd_g(B, len, Hq, Hkv, D, window, softcap, LOP_GEMM_F32, "flash", 1);
    t_attn_bwd_g(B, len, Hq, Hkv, D, window, softcap, LOP_GEMM_BF16, "gemm", 1);
    /* the fused bf16 kernel (D it lacks: the gemm path), added and stored */
    t_attn_bwd_g(B, len, Hq, Hkv, D, window, softcap, LOP_GEMM_BF16, "mma", 0);
    t_attn_bwd_g(B, len, Hq, Hkv, D, window, softcap, LOP_GEMM_BF16, "mma", 1);
}

/* the mma path twice over the same inputs (stored): the same bits (no atomics) */
static void t_attn_bwd_det(int B, const int *len, int Hq, int Hkv, int D, int window, float softcap) {
    int off[9] = {0};
    for (int b = 0; b < B; b++) off[b + 1] = off[b] + len[b];
    int N = off[B], qd = Hq * D, kd = Hkv * D;
    hd q = hd_rnd((size_t)N * qd, 1), k = hd_rnd((size_t)N * kd, 1), v = hd_rnd((size_t)N * kd, 1);
    hd dout = hd_rnd((size_t)N * qd, 1), out = hd_rnd((size_t)N * qd, 1);
    hd dq = hd_zero((size_t)N * qd), dk = hd_zero((size_t)N * kd), dv = hd_zero((size_t)N * kd);
    float *got[2][3] = {{NULL}};
    lop_attn_bwd_args ab = {.dq = dq.d, .dk = dk.d, .dv = dv.d, .dout = dout.d, .q = q.d, .k = k.d, .v = v.d,
                            .out = out.d, .B = B, .len = len, .off = off, .Hq = Hq, .Hkv = Hkv, .D = D,
                            .window = window, .scale = 1.0f / sqrtf((float)D), .softcap = softcap,
                            .gemm = LOP_GEMM_BF16, .overwrite = 1};
    setenv("LOP_CUDA_ATTN_BWD", "mma", 1);
    int ok = 1;
    for (int run = 0; run < 2 && ok; run++) {
        if (G->op->attention_backward(G, &ab, &E)) { printf("FAIL attention backward: %s\n", E.msg); ok = 0; }
        got[run][0] = host_of(dq.d, dq.n);
        got[run][1] = host_of(dk.d, dk.n);
        got[run][2] = host_of(dv.d, dv.n);
    }
    unsetenv("LOP_CUDA_ATTN_BWD");
    int same = ok && !memcmp(got[0][0], got[1][0], sizeof(float) * dq.n) &&
               !memcmp(got[0][1], got[1][1], sizeof(float) * dk.n) &&
               !memcmp(got[0][2], got[1][2], sizeof(float) * dv.n);
    printf("%-4s attention backward mma B=%d T0=%d D=%d Hq=%d Hkv=%d window=%d: two runs, the same bits\n",
           same ? "ok" : "FAIL", B, len[0], D, Hq, Hkv, window);
    if (!same) fails++;
    for (int run = 0; run < 2; run++)
        for (int t = 0; t < 3; t++) free(got[run][t]);
    hd_free(q); hd_free(k); hd_free(v); hd_free(dout); hd_free(out); hd_free(dq); hd_free(dk); hd_free(dv);
}

static void t_glu_bwd(void) {
    size_t n = 100003;
    hd g = hd_rnd(n, 6), u = hd_rnd(n, 2), dh = hd_rnd(n, 1);
    for (int t = 0; t < 4; t++) {
        int act = t & 1, ow = t >> 1;
        hd dg = hd_rnd(n, 1), du = hd_rnd(n, 1);
        CK(H->op->glu_backward(H, dg.h, du.h, dh.h, g.h, u.h, n, (lop_act)act, ow, LOP_GEMM_F32, &E));
        CK(G->op->glu_backward(G, dg.d, du.d, dh.d, g.d, u.d, n, (lop_act)act, ow, ow ? LOP_GEMM_BF16 : LOP_GEMM_F32, &E));
        char what[80];
        snprintf(what, sizeof what, "glu backward %s%s: dgate", act ? "GELU(tanh)" : "SiLU", ow ? " (overwrite)" : "");
        hd_cmp(what, dg, 1e-6);
        hd_cmp("  dup", du, 1e-6);
        hd_free(dg); hd_free(du);
    }
    hd_free(g); hd_free(u); hd_free(dh);
}

static void t_embed_bwd(void) {
    int V = 3000, C = 200, N = 4000;
    int32_t *ids = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) ids[i] = (int)((frand() + 1) * 0.5 * (i % 2 ? 40 : V - 1)); /* many repeats */
    hd dout = hd_rnd((size_t)N * C, 1), dt = hd_rnd((size_t)V * C, 1);
    CK(H->op->embed_backward(H, dt.h, dout.h, ids, N, C, 25.3f, &E));
    CK(G->op->embed_backward(G, dt.d, dout.d, ids, N, C, 25.3f, &E));
    hd_cmp("embedding backward, repeated ids (bit for bit)", dt, 0);
    free(ids); hd_free(dout); hd_free(dt);
}

static void t_head_train(int n, int C, int V, float cap, int trainable, lop_gemm g) {
    void *raw = NULL;
    lop_wref hw, gw;
    hd W = {0};
    if (trainable) { W = hd_rnd((size_t)V * C, 0.2f); wtrain(W, V, C, &hw, &gw); }
    else hw = gw = wmat(ST_BF16, V, C, 0.2f, &raw);
    hd xn = hd_rnd((size_t)n * C, 1), lg = hd_zero((size_t)n * V), cp = hd_zero((size_t)n * V);
    CK(H->op->head_logits(H, lg.h, cp.h, xn.h, n, &hw, cap, LOP_GEMM_F32, &E));
    CK(G->op->head_logits(G, lg.d, cp.d, xn.d, n, &gw, cap, g, &E));
    double tol = g == LOP_GEMM_BF16 ? 1e-2 : 1e-5;
    char what[128];
    snprintf(what, sizeof what, "training head %s %s n=%d C=%d V=%d cap=%g: logits", g == LOP_GEMM_BF16 ? "bf16" : "f32",
             trainable ? "trainable" : "frozen bf16", n, C, V, cap);
    hd_cmp(what, lg, tol);
    /* the same logits on both sides from here: the loss and backward alone */
    G->op->upload(G, lg.d, lg.h, sizeof(float) * (size_t)n * V, &E);
    if (cap > 0) G->op->upload(G, cp.d, cp.h, sizeof(float) * (size_t)n * V, &E);
    int32_t *tg = malloc(sizeof(int32_t) * n);
    for (int i = 0; i < n; i++) tg[i] = i % 5 == 0 ? -1 : (int)((frand() + 1) * 0.5 * (V - 1));
    double ls[2]; int64_t sc[2];
    float gs = 1.0f / 300;
    CK(H->op->xent(H, lg.h, tg, n, V, gs, &ls[0], &sc[0], &E));
    CK(G->op->xent(G, lg.d, tg, n, V, gs, &ls[1], &sc[1], &E));
    double rel = fabs(ls[1] - ls[0]) / fabs(ls[0]);
    int ok = rel < 1e-6 && sc[0] == sc[1];
    printf("%-4s cross-entropy: loss sum %.9g vs cpu %.9g (rel %.1e), scored %lld / %lld\n", ok ? "ok" : "FAIL",
           ls[1], ls[0], rel, (long long)sc[1], (long long)sc[0]);
    fails += !ok;
    hd_cmp("  dlogits", lg, 1e-5);
    /* the backward from each side's own gradients (the GPU's bf16 runs read xent's bf16 copy) */
    hd dxn = hd_rnd((size_t)n * C, 1), dw = hd_zero((size_t)V * C);
    CK(H->op->head_backward(H, dxn.h, trainable ? dw.h : NULL, lg.h, cp.h, xn.h, n, &hw, cap, LOP_GEMM_F32, &E));
    CK(G->op->head_backward(G, dxn.d, trainable ? dw.d : NULL, lg.d, cp.d, xn.d, n, &gw, cap, g, &E));
    hd_cmp("  head backward: dxn", dxn, tol);
    if (trainable) hd_cmp("  dW", dw, tol);
    free(tg); free(raw);
    hd_free(xn); hd_free(lg); hd_free(cp); hd_free(dxn); hd_free(dw);
    if (trainable) hd_free(W);
}

static void t_sumsq_adamw(size_t n, float clip, int t) {
    hd g = hd_rnd(n, 0.01f);
    double s[2];
    CK(H->op->grad_sumsq(H, &s[0], g.h, n, &E));
    CK(G->op->grad_sumsq(G, &s[1], g.d, n, &E));
    double rel = fabs(s[1] - s[0]) / s[0];
    int ok = rel < 1e-11;
    printf("%-4s grad sum of squares n=%zu: %.17g vs cpu %.17g (rel %.1e)\n", ok ? "ok" : "FAIL", n, s[1], s[0], rel);
    fails += !ok;
    hd p = hd_rnd(n, 1), m = hd_rnd(n, 0.001f), v = hd_zero(n);
    for (size_t i = 0; i < n; i++) v.h[i] = fabsf(m.h[i]) * 1e-3f;
    G->op->upload(G, v.d, v.h, n * 4, &E);
    size_t nb = (n + 7) / 8;
    uint8_t *zb = malloc(nb);
    for (size_t i = 0; i < nb; i++) zb[i] = (uint8_t)((frand() + 1) * 127.5f) & (uint8_t)((frand() + 1) * 127.5f);
    uint8_t *dzb = dev_of(zb, nb);
    adamw_hp hp = {0.9, 0.999, 1e-8, 0.1};
    CK(H->op->adamw(H, p.h, g.h, m.h, v.h, zb, n, clip, 1e-3, &hp, t, &E));
    CK(G->op->adamw(G, p.d, g.d, m.d, v.d, dzb, n, clip, 1e-3, &hp, t, &E));
    char what[96];
    snprintf(what, sizeof what, "AdamW step %d clip %g, sparsity mask (bit for bit): p", t, clip);
    hd_cmp(what, p, 0);
    hd_cmp("  m", m, 0);
    hd_cmp("  v", v, 0);
    hd_cmp("  g (clipped in place)", g, 0);
    free(zb); G->op->release(G, dzb);
    hd_free(g); hd_free(p); hd_free(m); hd_free(v);
}

/* adamw_many over tensors of odd sizes (below a chunk, across chunks, with and without decay and
 * a sparsity mask) against the cpu's adamw tensor by tensor: bit for bit */
static void t_adamw_many(float clip, int t) {
    if (!G->op->adamw_many) { printf("FAIL adamw_many missing on the GPU\n"); fails++; return; }
    enum { NT = 6 };
    size_t ns[NT] = {1, 1023, 4096, 4097, 300007, 65536 * 3 + 5};
    hd p[NT], g[NT], m[NT], v[NT];
    uint8_t *zb[NT], *dzb[NT];
    lop_adamw_item it[NT];
    adamw_hp hp = {0.9, 0.999, 1e-8, 0.1}, h0 = hp;
    h0.wd = 0;
    for (int k = 0; k < NT; k++) {
        size_t n = ns[k], nb = (n + 7) / 8;
        p[k] = hd_rnd(n, 1); g[k] = hd_rnd(n, 0.01f); m[k] = hd_rnd(n, 0.001f); v[k] = hd_zero(n);
        for (size_t i = 0; i < n; i++) v[k].h[i] = fabsf(m[k].h[i]) * 1e-3f;
        G->op->upload(G, v[k].d, v[k].h, n * 4, &E);
        zb[k] = malloc(nb);
        for (size_t i = 0; i < nb; i++) zb[k][i] = (uint8_t)((frand() + 1) * 127.5f) & (uint8_t)((frand() + 1) * 127.5f);
        dzb[k] = dev_of(zb[k], nb);
        int masked = k % 2, decay = k % 3 != 0;
        it[k] = (lop_adamw_item){p[k].d, g[k].d, m[k].d, v[k].d, masked ? dzb[k] : NULL, n, decay};
        CK(H->op->adamw(H, p[k].h, g[k].h, m[k].h, v[k].h, masked ? zb[k] : NULL, n, clip, 1e-3,
                        decay ? &hp : &h0, t, &E));
    }
    CK(G->op->adamw_many(G, it, NT, clip, 1e-3, &hp, t, &E));
    for (int k = 0; k < NT; k++) {
        char what[96];
        snprintf(what, sizeof what, "AdamW over %d tensors at once, step %d clip %g: p of n=%zu", NT, t, clip, ns[k]);
        hd_cmp(what, p[k], 0);
        hd_cmp("  m", m[k], 0);
        hd_cmp("  v", v[k], 0);
        hd_cmp("  g", g[k], 0);
        hd_free(p[k]); hd_free(g[k]); hd_free(m[k]); hd_free(v[k]);
        free(zb[k]); G->op->release(G, dzb[k]);
    }
}

/* the distillation loss (lop_cuda_kd_loss, beside the seam) against kd.c's kd_row */
typedef int (*kd_fn)(lop_backend *, float *, int, int, const float *, int, const int32_t *,
                     const float *, const float *, int, const int32_t *, int, const kd_spec *, float,
                     double *, lop_err *);
static void t_kd(const char *loss, double T, int sparse, int n, int Vs, int V, int tk) {
    kd_fn fn = (kd_fn)lop_backend_cuda_sym("lop_cuda_kd_loss");
    if (!fn) { printf("FAIL lop_cuda_kd_loss not found in liblop_cuda.so\n"); fails++; return; }
    kd_spec sp = KD_SPEC_DEFAULT;
    if (kd_parse_loss(loss, &sp, &E)) { printf("FAIL %s\n", E.msg); fails++; return; }
    sp.temperature = T;
    hd zs = hd_rnd((size_t)n * Vs, 4), zt = hd_rnd((size_t)n * V, 5);
    int32_t *tg = malloc(sizeof(int32_t) * n), *ids = malloc(sizeof(int32_t) * n * (tk ? tk : 1));
    float *lp = malloc(sizeof(float) * n * (tk ? tk : 1)), *tail = malloc(sizeof(float) * n);
    uint8_t *mark = calloc(V, 1);
    for (int i = 0; i < n; i++) {
        tg[i] = i % 7 == 3 ? -1 : (int)((frand() + 1) * 0.5 * (Vs - 1));
        if (sparse) kdc_topk(zt.h + (size_t)i * V, V, T, tk, ids + (size_t)i * tk, lp + (size_t)i * tk, &tail[i], mark);
    }
    int32_t *dids = sparse ? dev_of(ids, sizeof(int32_t) * n * tk) : NULL;
    float *dlp = sparse ? dev_of(lp, sizeof(float) * n * tk) : NULL, *dtail = sparse ? dev_of(tail, sizeof(float) * n) : NULL;
    double *tr = malloc(sizeof(double) * n * (KD_NTERMS + 1)), *tg_ = malloc(sizeof(double) * n * (KD_NTERMS + 1));
    kd_work w = {0};
    float gs = 1.0f / 100;
    double lsum = 0;
    for (int i = 0; i < n; i++) {
        double *t = tr + (size_t)i * (KD_NTERMS + 1);
        float *z = zs.h + (size_t)i * Vs;
        if (tg[i] < 0) { memset(z, 0, sizeof(float) * Vs); for (int k = 0; k <= KD_NTERMS; k++) t[k] = 0; continue; }
        kd_trow row = {0};
        if (sparse) { row.k = tk; row.ids = ids + (size_t)i * tk; row.logp = lp + (size_t)i * tk; row.logp_tail = tail[i]; }
        else row.logits = zt.h + (size_t)i * V;
        t[KD_NTERMS] = kd_row(&sp, z, Vs, V, &row, tg[i], gs, t, &w);
        lsum += t[KD_NTERMS];
    }
    if (fn(G, zs.d, Vs, V, sparse ? NULL : zt.d, V, dids, dlp, dtail, tk, tg, n, &sp, gs, tg_, &E)) {
        printf("FAIL lop_cuda_kd_loss: %s\n", E.msg); fails++;
    } else {
        double gsum = 0, md = 0;
        for (int i = 0; i < n; i++) {
            gsum += tg_[(size_t)i * (KD_NTERMS + 1) + KD_NTERMS];
            for (int k = 0; k <= KD_NTERMS; k++) {
                double a = tr[(size_t)i * (KD_NTERMS + 1) + k], b = tg_[(size_t)i * (KD_NTERMS + 1) + k];
                double d = fabs(a - b) / (fabs(a) > 1e-3 ? fabs(a) : 1e-3);
                if (d > md) md = d;
            }
        }
        int ok = md < 1e-9;
        printf("%-4s kd %s T=%g %s V=%d (student %d): terms max rel %.1e, loss %.9g vs cpu %.9g\n", ok ? "ok" : "FAIL",
               loss, T, sparse ? "top-k + tail" : "dense", V, Vs, md, gsum, lsum);
        fails += !ok;
        hd_cmp("  dlogits", zs, 1e-6);
    }
    kd_work_free(&w);
    free(tg); free(ids); free(lp); free(tail); free(mark); free(tr); free(tg_);
    if (sparse) { G->op->release(G, dids); G->op->release(G, dlp); G->op->release(G, dtail); }
    hd_free(zs); hd_free(zt);
}

static void t_train(void) {
    if (!G->op->matmul_backward) { printf("FAIL the cuda backend has no training ops\n"); fails++; return; }
    t_lora(300, 640, 1024, 16, 0, LOP_GEMM_F32);
    t_lora(77, 256, 96, 8, 0.1f, LOP_GEMM_F32);
    t_lora(300, 640, 1024, 16, 0, LOP_GEMM_BF16);
    t_lora(77, 256, 96, 8, 0.1f, LOP_GEMM_BF16);
    /* realistic lengths: reductions of thousands (IC, OC, N), odd sizes */
    t_lora(1100, 2600, 700, 16, 0, LOP_GEMM_F32);
    t_lora(1100, 700, 2600, 8, 0.1f, LOP_GEMM_F32);
    t_lora(1100, 2600, 700, 16, 0, LOP_GEMM_BF16);
    t_lora(1100, 10240, 2560, 16, 0, LOP_GEMM_F32); /* the 4B card's down projection */
    t_lora(300, 640, 1024, 32, 0.1f, LOP_GEMM_F32); /* a rank the skinny kernels leave to cuBLAS */
    t_lora(301, 642, 1026, 16, 0, LOP_GEMM_F32);    /* widths not a multiple of 4: cuBLAS */
    t_chains(300, 640, 1024, 16);
    t_lora_matmul(512, 640, 1024, 16, 0);            /* cuBLASLt's path (rows a multiple of 256) */
    t_lora_matmul(300, 640, 1024, 16, 0);            /* cublasGemmEx's */
    t_lora_matmul(300, 256, 96, 8, 0.1f);            /* dropout: float32 x */
    setenv("LOP_CUDA_LORA", "own", 1);              /* lora_skinny.cu's kernels (LOP_CUDA_LORA=own) */
    t_lora(300, 640, 1024, 16, 0, LOP_GEMM_F32);
    t_lora(77, 256, 96, 8, 0.1f, LOP_GEMM_BF16);
    t_lora(1100, 2600, 700, 16, 0, LOP_GEMM_BF16);
    t_lora(1100, 10240, 2560, 16, 0, LOP_GEMM_F32);
    t_chains(300, 640, 1024, 16);
    unsetenv("LOP_CUDA_LORA");
    for (int g = 0; g < 2; g++) {
        lop_gemm gm = g ? LOP_GEMM_BF16 : LOP_GEMM_F32;
        t_matmul_bwd(ST_BF16, 0, 300, 640, 1024, 0, gm, 0);
        t_matmul_bwd(ST_F32, 1, 513, 1024, 768, 1, gm, 0);
        t_matmul_bwd(ST_F32, 1, 64, 2048, 640, 0, gm, 0);
        t_matmul_bwd(ST_BF16, 0, 300, 640, 1024, 0, gm, 1);
        t_matmul_bwd(ST_F32, 1, 513, 1024, 768, 1, gm, 1);
    }
    t_matmul_bwd(ST_F16, 0, 30, 96, 200, 1, LOP_GEMM_F32, 0);
    t_matmul_bwd(ST_F16, 0, 30, 96, 200, 1, LOP_GEMM_BF16, 0);
    t_rmsnorm_bwd(513, 640, 1, 0);
    t_rmsnorm_bwd(1000, 2560, 0, 0);
    t_rmsnorm_bwd(8192, 128, 1, 0);
    t_chains(300, 640, 1024, 16);
    t_chains(1024, 2560, 2048, 16);
    t_rmsnorm_bwd(513, 640, 1, 1);
    t_rmsnorm_bwd(8192, 128, 0, 1);
    t_rope_bwd(300, 4, 128);
    t_rope_bwd(70, 2, 8);
    int l1[4] = {128, 128, 128, 128}, l2[3] = {200, 70, 129}, l3[2] = {512, 512};
    t_attn_bwd(4, l1, 4, 2, 64, 0, 0);
    t_attn_bwd(3, l2, 8, 2, 128, 0, 0);
    t_attn_bwd(2, l3, 4, 1, 256, 100, 0);
    t_attn_bwd(4, l1, 8, 8, 128, 0, 50.0f);
    t_attn_bwd(3, l2, 4, 4, 100, 33, 0);
    t_attn_bwd(4, l1, 2, 1, 16, 0, 0);
    t_attn_bwd_det(4, l1, 8, 2, 128, 0, 0);
    t_attn_bwd_det(3, l2, 4, 2, 64, 33, 30.0f);
    t_attn_bwd_det(2, l3, 4, 1, 256, 100, 0);
    t_glu_bwd();
    t_embed_bwd();
    t_head_train(100, 64, 40000, 0, 0, LOP_GEMM_F32);
    t_head_train(70, 48, 33000, 30.0f, 1, LOP_GEMM_F32);
    t_head_train(128, 128, 20000, 0, 1, LOP_GEMM_BF16);
    t_head_train(64, 128, 20000, 0, 0, LOP_GEMM_BF16);
    t_sumsq_adamw(3000007, 0.37f, 3);
    t_sumsq_adamw(65536 * 3, 1.0f, 1);
    t_adamw_many(0.37f, 3);
    t_adamw_many(1.0f, 1);
    const char *losses[] = {"ce:0.5,skl:0.5", "fkl", "rkl", "srkl:0.7,ce:0.3", "jsd", "tvd", "ce,fkl,rkl,skl,srkl,jsd,tvd"};
    for (int i = 0; i < 7; i++) t_kd(losses[i], i % 2 ? 2.0 : 1.0, 0, 40, 5003, 5000, 0);
    for (int i = 0; i < 7; i++) t_kd(losses[i], i % 2 ? 1.0 : 2.0, 1, 40, 5003, 5000, 128);
    t_kd("ce:0.5,skl:0.5", 1.0, 0, 8, 262144, 262144, 0);
    t_kd("fkl:0.5,ce:0.5", 2.0, 1, 8, 151936, 151936, 64);
}

int main(void) {
#if defined(__SANITIZE_ADDRESS__)
    printf("test_cuda: skipped under AddressSanitizer (the CUDA runtime and ASan's shadow memory "
           "do not share an address space by default)\n");
    return 0;
#endif
    if (!lop_backend_has_cuda()) {
        printf("test_cuda: skipped: this build has no CUDA (nvcc was not found; make CUDA=1)\n");
        return 0;
    }
    lop_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.hidden = 4096; cfg.inter = 16384; cfg.n_heads = 32; cfg.head_dim = 256;
    setenv("LOP_CUDA_FUSE", "15", 1); /* every optional path, those off by default too */
    if (lop_backend_cuda_new(&G, 0, &cfg, &E)) {
        printf("test_cuda: skipped: %s\n", E.msg);
        return 0;
    }
    if (lop_backend_cpu_new(&H, &cfg, &E)) { printf("cpu backend: %s\n", E.msg); return 1; }
    printf("test_cuda on %s\n", G->name);
    t_embed();
    for (int g = 0; g < 2; g++) {
        lop_gemm gm = g ? LOP_GEMM_BF16 : LOP_GEMM_F32;
        t_matmul(ST_BF16, 300, 640, 1024, 0, gm);
        t_matmul(ST_F32, 77, 96, 200, 1, gm);
        t_matmul(ST_F16, 5, 256, 129, 1, gm);
        t_matmul(ST_BF16, 1, 1024, 3072, 0, gm);
        t_matmul(ST_BF16, 512, 640, 1024, 0, gm);
        t_matmul(ST_F32, 256, 96, 200, 1, gm);
    }
    t_rmsnorm(513, 640, 1);
    t_rmsnorm(1000, 2560, 0);
    t_rmsnorm(4096, 128, 1);
    t_rope(300, 4, 128);
    t_rope(70, 2, 8);
    t_qk_norm_rope(300, 16, 128, 0);
    t_qk_norm_rope(100, 4, 256, 1);
    t_qk_norm_rope(77, 8, 64, 0);
    int dims[] = {8, 16, 64, 100, 128, 256};
    for (int i = 0; i < 6; i++) t_attention(dims[i], 4, 2, 0, 0, 0);
    t_attention(256, 4, 1, 32, 0, 0);
    t_attention(128, 8, 8, 0, 50.0f, 0);
    t_attention(64, 6, 2, 0, 0, 1);
    t_attention(128, 4, 2, 40, 0, 1);
    /* the tensor-core kernel of --gemm bf16 (head dims 64, 128, 256) */
    t_attention_g(64, 4, 2, 0, 0, 0, LOP_GEMM_BF16);
    t_attention_g(128, 8, 2, 0, 0, 0, LOP_GEMM_BF16);
    t_attention_g(256, 4, 1, 32, 0, 0, LOP_GEMM_BF16);
    t_attention_g(128, 4, 4, 0, 50.0f, 0, LOP_GEMM_BF16);
    t_attention_g(128, 4, 2, 40, 0, 1, LOP_GEMM_BF16);
    t_attention_g(256, 8, 4, 0, 0, 1, LOP_GEMM_BF16);
    t_glu_add();
    /* cuBLASLt runs row counts that are multiples of 256 (others: cublasGemmEx, and matmul_add
     * declines); both kinds here */
    t_matmul_add(512, 640, 1024);
    t_matmul_add(256, 1024, 3072);
    t_matmul_add(256, 96, 200);
    t_rmsnorm_gemm_in(300, 1024, 512);
    t_mlp_glu(512, 256, 1024, ACT_SILU);
    t_mlp_glu(300, 256, 1024, ACT_SILU);
    t_mlp_glu(33, 96, 301, ACT_GELU_TANH); /* an element count not a multiple of 8 */
    t_head(200, 64, 40000, 0, 0, LOP_GEMM_F32);
    t_head(70, 48, 33000, 30.0f, 5, LOP_GEMM_F32);
    t_head(300, 128, 20000, 0, 1, LOP_GEMM_BF16);
    t_head(768, 128, 20000, 0, 1, LOP_GEMM_BF16); /* 512 rows selected: cuBLASLt */
    t_train();
    G->op->destroy(G);
    H->op->destroy(H);
    printf("test_cuda: %s (%d failed)\n", fails ? "FAILED" : "all passed", fails);
    return fails ? 1 : 0;
}
