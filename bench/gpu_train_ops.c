/* gpu_train_ops.c — what one step of full fine-tuning costs in lop's GPU kernels: the sequence of
 * backend ops a training step runs (the engine's forward keeping every layer's activations, the
 * chunked head with cross-entropy, train_step.c's layer backwards, the global norm and AdamW over
 * every parameter), at a real model's shapes, on random values, bf16 GEMMs with float32 masters.
 * NOT a trainer (no model file, no data; one activation set reused by every layer): a measure of
 * the kernels and of the seam's per-op costs, kept beside the trainer's own figures (heal-sft
 * --device cuda, same script): it still runs the global norm and the zeroing one tensor at a
 * time, as the trainer did before its arrays became one device allocation.
 *
 *   gpu_train_ops MODEL [CHUNK_MB] [STEPS]   MODEL gemma-3-270m | qwen3-0.6b; batch 8 x 512;
 *   CHUNK_MB: logits per head chunk (train_step.c: 512 MB on a device); prints one JSON line. LOP_CUDA_PROFILE=1
 *   prints where the time goes. Built by bench/gpu-train.sh against build/libcommon.a. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "backend.h"
#include "nn.h"

typedef struct shape {
    const char *name;
    int C, FF, H, KV, D, L, V, gemma, act, window, sliding_every;
} shape;
static const shape SHAPES[] = {
    {"gemma-3-270m", 640, 2048, 4, 1, 256, 18, 262144, 1, ACT_GELU_TANH, 512, 6},
    {"qwen3-0.6b", 1024, 3072, 16, 8, 128, 28, 151936, 0, ACT_SILU, 0, 0},
};

static lop_backend *G;
static lop_err E;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static void die(const char *w) { fprintf(stderr, "gpu_train_ops: %s: %s\n", w, E.msg); exit(1); }
#define OK(x) do { if (x) die(#x); } while (0)
static uint64_t rs = 88172645463325252ull;
static float frand(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (float)((rs >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1; }
static float *dev_rand(size_t n, float s) {
    float *h = malloc(n * 4), *d = G->op->alloc(G, n * 4);
    if (!h || !d) { fprintf(stderr, "out of memory (%zu floats)\n", n); exit(1); }
    for (size_t i = 0; i < n; i++) h[i] = frand() * s;
    OK(G->op->upload(G, d, h, n * 4, &E));
    free(h);
    return d;
}
static float *syncbuf;
static void sync(void) { float x; OK(G->op->download(G, &x, syncbuf, sizeof x, &E)); } /* waits for the stream */

/* a trainable tensor: value, grad, m, v in device memory */
typedef struct par { lop_wref w; float *g, *m, *v; size_t n; } par;
static par mkpar(int rows, int cols, float s, float init) {
    par p;
    p.n = (size_t)rows * cols;
    float *d = dev_rand(p.n, s);
    if (init != 0) { /* a norm weight around init */
        float *h = malloc(p.n * 4);
        for (size_t i = 0; i < p.n; i++) h[i] = init + 0.01f * frand();
        OK(G->op->upload(G, d, h, p.n * 4, &E));
        free(h);
    }
    p.w = (lop_wref){d, ST_F32, rows, cols, "p", 1};
    p.g = dev_rand(p.n, 0); p.m = dev_rand(p.n, 0); p.v = dev_rand(p.n, 0);
    return p;
}

int main(int argc, char **argv) {
    const shape *s = NULL;
    for (size_t i = 0; i < sizeof SHAPES / sizeof *SHAPES; i++)
        if (argc > 1 && !strcmp(argv[1], SHAPES[i].name)) s = &SHAPES[i];
    if (!s) { fprintf(stderr, "usage: gpu_train_ops gemma-3-270m|qwen3-0.6b [CHUNK_MB] [STEPS]\n"); return 2; }
    double chunk_mb = argc > 2 ? atof(argv[2]) : 32;
    int steps = argc > 3 ? atoi(argv[3]) : 5;
    const int B = 8, T = 512, N = B * T;
    int C = s->C, FF = s->FF, H = s->H, KV = s->KV, D = s->D, L = s->L, V = s->V;
    lop_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.hidden = C; cfg.inter = FF; cfg.n_heads = H; cfg.n_kv_heads = KV; cfg.head_dim = D;
    cfg.n_layers = L; cfg.vocab = V;
    if (lop_backend_cuda_new(&G, 0, &cfg, &E)) { printf("{\"bench\":\"gpu_train_ops\",\"error\":\"%s\"}\n", E.msg); return 0; }
    if (!G->op->adamw) { printf("{\"bench\":\"gpu_train_ops\",\"error\":\"no training ops\"}\n"); return 0; }
    size_t qd = (size_t)H * D, kd = (size_t)KV * D;
    syncbuf = G->op->alloc(G, 64);
    /* parameters: per layer 7 matrices and 4 (gemma: 6) vectors; the tied embedding/head; final norm */
    enum { Q, K, Vv, O, GT, UP, DN, NM };
    int rows[NM] = {(int)qd, (int)kd, (int)kd, C, FF, FF, C}, cols[NM] = {C, C, C, (int)qd, C, C, FF};
    par (*W)[NM] = malloc(sizeof *W * L), (*NV)[6] = malloc(sizeof *NV * L);
    float ninit = s->gemma ? 0.0f : 1.0f;
    size_t nparams = 0;
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < NM; k++) { W[l][k] = mkpar(rows[k], cols[k], 0.02f, 0); nparams += W[l][k].n; }
        int nv[6] = {C, C, D, D, C, C}; /* attn, mlp, q, k norms; gemma's post-attn, post-mlp */
        for (int k = 0; k < (s->gemma ? 6 : 4); k++) { NV[l][k] = mkpar(1, nv[k], 0, ninit); nparams += NV[l][k].n; }
    }
    par emb = mkpar(V, C, 0.02f, 0), fnorm = mkpar(1, C, 0, ninit);
    nparams += emb.n + fnorm.n;
    /* one activation set (every layer reuses it) and the backward's scratch */
    float *x_in = dev_rand((size_t)N * C, 1), *xn_attn = dev_rand((size_t)N * C, 0), *rstd_attn = dev_rand(N, 0),
          *q_raw = dev_rand(N * qd, 0), *k_raw = dev_rand(N * kd, 0), *q_rstd = dev_rand((size_t)N * H, 0),
          *k_rstd = dev_rand((size_t)N * KV, 0), *q = dev_rand(N * qd, 0), *k = dev_rand(N * kd, 0),
          *v = dev_rand(N * kd, 0), *att_out = dev_rand(N * qd, 0), *o = dev_rand((size_t)N * C, 0),
          *rstd_pa = dev_rand(N, 0), *x_mid = dev_rand((size_t)N * C, 0), *rstd_mlp = dev_rand(N, 0),
          *xn_mlp = dev_rand((size_t)N * C, 0), *gate = dev_rand((size_t)N * FF, 0), *up = dev_rand((size_t)N * FF, 0),
          *h = dev_rand((size_t)N * FF, 0), *mlp_out = dev_rand((size_t)N * C, 0), *rstd_pm = dev_rand(N, 0),
          *x_out = dev_rand((size_t)N * C, 0), *xn_f = dev_rand((size_t)N * C, 0), *rstd_f = dev_rand(N, 0),
          *cs_full = dev_rand((size_t)N * D, 0), *cs_loc = dev_rand((size_t)N * D, 0);
    float *dres = dev_rand((size_t)N * C, 0), *dA = dev_rand((size_t)N * C, 0), *dxn = dev_rand((size_t)N * C, 0),
          *dq = dev_rand(N * qd, 0), *dq_raw = dev_rand(N * qd, 0), *datt = dev_rand(N * qd, 0),
          *dk = dev_rand(N * kd, 0), *dk_raw = dev_rand(N * kd, 0), *dv = dev_rand(N * kd, 0),
          *dgate = dev_rand((size_t)N * FF, 0), *dup = dev_rand((size_t)N * FF, 0), *dh = dev_rand((size_t)N * FF, 0);
    int chunk = (int)(chunk_mb * 1048576.0 / 4 / V);
    if (chunk < 1) chunk = 1;
    if (chunk > N) chunk = N;
    float *logits = G->op->alloc(G, sizeof(float) * (size_t)chunk * V);
    int32_t *ids = malloc(sizeof(int32_t) * N), *tg = malloc(sizeof(int32_t) * N);
    int *pos = malloc(sizeof(int) * N), len[8], off[9];
    for (int i = 0; i < N; i++) { ids[i] = (int)((frand() + 1) * 0.5 * (V - 1)); pos[i] = i % T; }
    for (int i = 0; i < N; i++) tg[i] = i % T == T - 1 ? -1 : ids[i + 1];
    for (int b = 0; b < B; b++) { len[b] = T; off[b] = b * T; }
    off[B] = N;
    float inv[512];
    lop_rope rp = {.type = ROPE_DEFAULT, .theta = 1e6};
    rope_inv_freq(inv, D, &rp);
    lop_gemm g = LOP_GEMM_BF16;
    float eps = 1e-6f, scale = 1.0f / sqrtf((float)D), gs = 1.0f / N;
    adamw_hp hp = ADAMW_DEFAULTS;
    double loss = 0, t_total = 0;
    int timed = 0;
#define Z(p, n) OK(G->op->zero(G, p, sizeof(float) * (size_t)(n), &E))
    for (int st = 0; st < steps + 1; st++) {
        sync();
        double t0 = now();
        /* ---- forward (keep every activation) ---- */
        OK(G->op->embed(G, x_in, ids, &emb.w, N, C, s->gemma ? sqrtf((float)C) : 1.0f, &E));
        OK(G->op->rope_table(G, cs_full, pos, inv, N, D, &E));
        if (s->gemma) OK(G->op->rope_table(G, cs_loc, pos, inv, N, D, &E));
        for (int l = 0; l < L; l++) {
            int sl = s->sliding_every && (l + 1) % s->sliding_every;
            const float *cs = sl ? cs_loc : cs_full;
            OK(G->op->rmsnorm(G, xn_attn, rstd_attn, x_in, &NV[l][0].w, N, C, eps, s->gemma, &E));
            OK(G->op->matmul(G, q_raw, xn_attn, &W[l][Q].w, NULL, N, g, &E));
            OK(G->op->matmul(G, k_raw, xn_attn, &W[l][K].w, NULL, N, g, &E));
            OK(G->op->matmul(G, v, xn_attn, &W[l][Vv].w, NULL, N, g, &E));
            OK(G->op->qk_norm_rope(G, q, q_rstd, q_raw, &NV[l][2].w, cs, N, H, D, eps, s->gemma, &E));
            OK(G->op->qk_norm_rope(G, k, k_rstd, k_raw, &NV[l][3].w, cs, N, KV, D, eps, s->gemma, &E));
            lop_attn_args aa = {.out = att_out, .q = q, .k = k, .v = v, .B = B, .len = len, .off = off,
                                .Hq = H, .Hkv = KV, .D = D, .window = sl ? s->window : 0, .scale = scale, .gemm = g};
            OK(G->op->attention(G, &aa, &E));
            OK(G->op->matmul(G, o, att_out, &W[l][O].w, NULL, N, g, &E));
            if (s->gemma) {
                OK(G->op->rmsnorm(G, x_mid, rstd_pa, o, &NV[l][4].w, N, C, eps, 1, &E));
                OK(G->op->add(G, x_mid, x_mid, x_in, (size_t)N * C, &E));
            } else OK(G->op->add(G, x_mid, o, x_in, (size_t)N * C, &E));
            OK(G->op->rmsnorm(G, xn_mlp, rstd_mlp, x_mid, &NV[l][1].w, N, C, eps, s->gemma, &E));
            OK(G->op->matmul(G, gate, xn_mlp, &W[l][GT].w, NULL, N, g, &E));
            OK(G->op->matmul(G, up, xn_mlp, &W[l][UP].w, NULL, N, g, &E));
            OK(G->op->glu(G, h, gate, up, (size_t)N * FF, s->act, &E));
            OK(G->op->matmul(G, mlp_out, h, &W[l][DN].w, NULL, N, g, &E));
            if (s->gemma) {
                OK(G->op->rmsnorm(G, x_out, rstd_pm, mlp_out, &NV[l][5].w, N, C, eps, 1, &E));
                OK(G->op->add(G, x_out, x_out, x_mid, (size_t)N * C, &E));
            } else OK(G->op->add(G, x_out, mlp_out, x_mid, (size_t)N * C, &E));
        }
        OK(G->op->rmsnorm(G, xn_f, rstd_f, x_out, &fnorm.w, N, C, eps, s->gemma, &E));
        /* ---- head, loss, backward ---- */
        Z(dA, (size_t)N * C);
        loss = 0;
        for (int r0 = 0; r0 < N; r0 += chunk) {
            int n = N - r0 < chunk ? N - r0 : chunk;
            double ls; int64_t kk;
            OK(G->op->head_logits(G, logits, NULL, xn_f + (size_t)r0 * C, n, &emb.w, 0, g, &E));
            OK(G->op->xent(G, logits, tg + r0, n, V, gs, &ls, &kk, &E));
            loss += ls;
            OK(G->op->head_backward(G, dA + (size_t)r0 * C, emb.g, logits, NULL, xn_f + (size_t)r0 * C, n,
                                    &emb.w, 0, g, &E));
        }
        OK(G->op->rmsnorm_backward(G, dres, fnorm.g, dA, x_out, rstd_f, &fnorm.w, N, C, s->gemma, 1, &E));
        for (int l = L - 1; l >= 0; l--) {
            int sl = s->sliding_every && (l + 1) % s->sliding_every;
            const float *dm = dres;
            if (s->gemma) {
                OK(G->op->rmsnorm_backward(G, dA, NV[l][5].g, dres, mlp_out, rstd_pm, &NV[l][5].w, N, C, 1, 1, &E));
                dm = dA;
            }
            OK(G->op->matmul_backward(G, dh, W[l][DN].g, NULL, dm, h, &W[l][DN].w, N, g, 1, &E));
            OK(G->op->glu_backward(G, dgate, dup, dh, gate, up, (size_t)N * FF, s->act, 1, g, &E));
            OK(G->op->matmul_backward(G, dxn, W[l][GT].g, NULL, dgate, xn_mlp, &W[l][GT].w, N, g, 1, &E));
            OK(G->op->matmul_backward(G, dxn, W[l][UP].g, NULL, dup, xn_mlp, &W[l][UP].w, N, g, 0, &E));
            OK(G->op->rmsnorm_backward(G, dres, NV[l][1].g, dxn, x_mid, rstd_mlp, &NV[l][1].w, N, C, s->gemma, 0, &E));
            const float *dob = dres;
            if (s->gemma) {
                OK(G->op->rmsnorm_backward(G, dA, NV[l][4].g, dres, o, rstd_pa, &NV[l][4].w, N, C, 1, 1, &E));
                dob = dA;
            }
            OK(G->op->matmul_backward(G, datt, W[l][O].g, NULL, dob, att_out, &W[l][O].w, N, g, 1, &E));
            lop_attn_bwd_args ab = {.dq = dq, .dk = dk, .dv = dv, .dout = datt, .q = q, .k = k, .v = v, .out = att_out, .B = B,
                                    .len = len, .off = off, .Hq = H, .Hkv = KV, .D = D,
                                    .window = sl ? s->window : 0, .scale = scale, .gemm = g, .overwrite = 1};
            OK(G->op->attention_backward(G, &ab, &E));
            const float *cs = sl ? cs_loc : cs_full;
            OK(G->op->rope_backward(G, dq, cs, N, H, D, &E));
            OK(G->op->rope_backward(G, dk, cs, N, KV, D, &E));
            OK(G->op->rmsnorm_backward(G, dq_raw, NV[l][2].g, dq, q_raw, q_rstd, &NV[l][2].w, N * H, D, s->gemma, 1, &E));
            OK(G->op->rmsnorm_backward(G, dk_raw, NV[l][3].g, dk, k_raw, k_rstd, &NV[l][3].w, N * KV, D, s->gemma, 1, &E));
            OK(G->op->matmul_backward(G, dxn, W[l][Q].g, NULL, dq_raw, xn_attn, &W[l][Q].w, N, g, 1, &E));
            OK(G->op->matmul_backward(G, dxn, W[l][K].g, NULL, dk_raw, xn_attn, &W[l][K].w, N, g, 0, &E));
            OK(G->op->matmul_backward(G, dxn, W[l][Vv].g, NULL, dv, xn_attn, &W[l][Vv].w, N, g, 0, &E));
            OK(G->op->rmsnorm_backward(G, dres, NV[l][0].g, dxn, x_in, rstd_attn, &NV[l][0].w, N, C, s->gemma, 0, &E));
        }
        OK(G->op->embed_backward(G, emb.g, dres, ids, N, C, s->gemma ? sqrtf((float)C) : 1.0f, &E));
        /* ---- global norm (one op per tensor, as tr_grad_sumsq) and AdamW ---- */
        double ss = 0, t;
        for (int l = 0; l < L; l++) {
            for (int kx = 0; kx < NM; kx++) { OK(G->op->grad_sumsq(G, &t, W[l][kx].g, W[l][kx].n, &E)); ss += t; }
            for (int kx = 0; kx < (s->gemma ? 6 : 4); kx++) { OK(G->op->grad_sumsq(G, &t, NV[l][kx].g, NV[l][kx].n, &E)); ss += t; }
        }
        OK(G->op->grad_sumsq(G, &t, emb.g, emb.n, &E)); ss += t;
        OK(G->op->grad_sumsq(G, &t, fnorm.g, fnorm.n, &E)); ss += t;
        float clip = (float)(1.0 / (sqrt(ss) + 1e-6));
        if (clip > 1) clip = 1;
        for (int l = 0; l < L; l++) {
            for (int kx = 0; kx < NM; kx++) {
                par *p = &W[l][kx];
                OK(G->op->adamw(G, (float *)p->w.data, p->g, p->m, p->v, NULL, p->n, clip, 1e-5, &hp, st + 1, &E));
                Z(p->g, p->n);
            }
            for (int kx = 0; kx < (s->gemma ? 6 : 4); kx++) {
                par *p = &NV[l][kx];
                OK(G->op->adamw(G, (float *)p->w.data, p->g, p->m, p->v, NULL, p->n, clip, 1e-5, &hp, st + 1, &E));
                Z(p->g, p->n);
            }
        }
        OK(G->op->adamw(G, (float *)emb.w.data, emb.g, emb.m, emb.v, NULL, emb.n, clip, 1e-5, &hp, st + 1, &E));
        Z(emb.g, emb.n);
        OK(G->op->adamw(G, (float *)fnorm.w.data, fnorm.g, fnorm.m, fnorm.v, NULL, fnorm.n, clip, 1e-5, &hp, st + 1, &E));
        Z(fnorm.g, fnorm.n);
        sync();
        double dt = now() - t0;
        if (st > 0) { t_total += dt; timed++; }
    }
    double tps = (double)N * timed / t_total;
    double mat = 0;
    for (int k2 = 0; k2 < NM; k2++) mat += (double)rows[k2] * cols[k2];
    mat = mat * L + (double)V * C; /* the tied head */
    double fpt = 6 * mat + 12.0 * L * T * H * D;
    printf("{\"bench\":\"gpu_train_ops\",\"model\":\"%s\",\"batch\":\"%dx%d\",\"params\":%zu,\"head_chunk_rows\":%d,"
           "\"step_ms\":%.2f,\"tokens_per_s\":%.1f,\"tflops\":%.1f,\"gpu_peak_mb\":%zu,\"loss_sum\":%.6g}\n",
           s->name, B, T, nparams, chunk, 1e3 * t_total / timed, tps, fpt * tps / 1e12,
           G->op->mem_peak(G) >> 20, loss);
    G->op->destroy(G);
    return 0;
}
