/* test_grad.c — every training kernel's backward against central finite differences of its own
 * forward (float32 forward, loss L = sum(out * R) accumulated in double, step h), and the
 * forwards that are not one-liners against naive double-precision loops. */
#include "grad.h"
#include "nn.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

static uint64_t rs = 88172645463325252ull;
static float frand(void) { return check_frand(&rs); }
static float *rnd(size_t n, float s) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand() * s;
    return p;
}
static float *zeros(size_t n) { return calloc(n, sizeof(float)); }
static double dotR(const float *o, const float *R, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)o[i] * R[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);
/* compare grad[n] with d loss / d x[i] by central differences */
static void check(const char *name, float *x, size_t n, const float *grad, loss_fn f, void *ctx,
                  float h, double tol) {
    double num2 = 0, diff2 = 0;
    for (size_t i = 0; i < n; i++) {
        float xi = x[i];
        x[i] = xi + h; double lp = f(ctx);
        x[i] = xi - h; double lm = f(ctx);
        x[i] = xi;
        double g = (lp - lm) / (2.0 * h);
        num2 += g * g; diff2 += (g - grad[i]) * (g - grad[i]);
    }
    double rel = sqrt(diff2) / (sqrt(num2) + 1e-12);
    int ok = rel < tol && num2 > 0;
    if (!ok) fails++;
    printf("%-34s rel.err %.2e  %s\n", name, rel, ok ? "ok" : "FAIL");
}

/* ---------- matmul ---------- */
typedef struct { int N, I, O; float *in, *w, *b, *out, *R; } mm_ctx;
static double mm_loss(void *p) {
    mm_ctx *c = p;
    tr_matmul_forward(c->out, c->in, c->w, c->b, c->N, c->I, c->O);
    return dotR(c->out, c->R, (size_t)c->N * c->O);
}
static void test_matmul(void) {
    mm_ctx c = {5, 7, 6, 0, 0, 0, 0, 0};
    c.in = rnd(35, 1); c.w = rnd(42, 1); c.b = rnd(6, 1); c.out = zeros(30); c.R = rnd(30, 1);
    float *din = zeros(35), *dw = zeros(42), *db = zeros(6);
    tr_matmul_backward(din, dw, db, c.R, c.in, c.w, c.N, c.I, c.O);
    check("matmul d_in", c.in, 35, din, mm_loss, &c, 1e-2f, 1e-3);
    check("matmul d_w", c.w, 42, dw, mm_loss, &c, 1e-2f, 1e-3);
    check("matmul d_bias", c.b, 6, db, mm_loss, &c, 1e-2f, 1e-3);
    free(c.in); free(c.w); free(c.b); free(c.out); free(c.R); free(din); free(dw); free(db);
}

/* ---------- embedding ---------- */
typedef struct { int N, C; int32_t *ids; float *tab, *out, *R, scale; } em_ctx;
static double em_loss(void *p) {
    em_ctx *c = p;
    embedding_forward(c->out, c->ids, c->tab, ST_F32, c->N, c->C, c->scale);
    return dotR(c->out, c->R, (size_t)c->N * c->C);
}
static void test_embedding(void) {
    int32_t ids[6] = {3, 1, 3, 0, 4, 3}; /* repeats add up */
    em_ctx c = {6, 5, ids, rnd(25, 1), zeros(30), rnd(30, 1), sqrtf(5.0f)};
    float *dt = zeros(25);
    tr_embedding_backward(dt, c.R, ids, 6, 5, c.scale);
    check("embedding d_table (repeated ids)", c.tab, 25, dt, em_loss, &c, 1e-2f, 1e-3);
    free(c.tab); free(c.out); free(c.R); free(dt);
}

/* ---------- rmsnorm ---------- */
typedef struct { int N, C, gemma; float *x, *w, *out, *rstd, *R; } rn_ctx;
static double rn_loss(void *p) {
    rn_ctx *c = p;
    rmsnorm_forward(c->out, c->rstd, c->x, c->w, c->N, c->C, 1e-6f, c->gemma);
    return dotR(c->out, c->R, (size_t)c->N * c->C);
}
static void test_rmsnorm(int gemma) {
    rn_ctx c = {6, 16, gemma, rnd(96, 2), rnd(16, 1), zeros(96), zeros(6), rnd(96, 1)};
    rn_loss(&c);
    /* forward against double */
    double maxe = 0;
    for (int n = 0; n < 6; n++) {
        double ss = 0;
        for (int i = 0; i < 16; i++) ss += (double)c.x[n * 16 + i] * c.x[n * 16 + i];
        double r = 1 / sqrt(ss / 16 + 1e-6);
        for (int i = 0; i < 16; i++) {
            double y = c.x[n * 16 + i] * r * (gemma ? 1 + c.w[i] : c.w[i]);
            maxe = fmax(maxe, fabs(y - c.out[n * 16 + i]));
        }
    }
    if (maxe > 1e-5) { fails++; printf("rmsnorm forward max err %g FAIL\n", maxe); }
    float *dx = zeros(96), *dw = zeros(16);
    tr_rmsnorm_backward(dx, dw, c.R, c.x, c.rstd, c.w, 6, 16, gemma);
    check(gemma ? "rmsnorm(1+w) d_x" : "rmsnorm d_x", c.x, 96, dx, rn_loss, &c, 1e-2f, 1e-3);
    check(gemma ? "rmsnorm(1+w) d_w" : "rmsnorm d_w", c.w, 16, dw, rn_loss, &c, 1e-2f, 1e-3);
    free(c.x); free(c.w); free(c.out); free(c.rstd); free(c.R); free(dx); free(dw);
}

/* ---------- rope ---------- */
typedef struct { int N, H, D; float *x, *y, *R, *inv; int32_t *pos; } rp_ctx;
static double rp_loss(void *p) {
    rp_ctx *c = p;
    size_t n = (size_t)c->N * c->H * c->D;
    memcpy(c->y, c->x, n * sizeof(float));
    rope_forward(c->y, c->pos, c->inv, c->N, c->H, c->D);
    return dotR(c->y, c->R, n);
}
static void test_rope(void) {
    int32_t pos[5] = {0, 1, 2, 7, 30};
    float inv[4];
    rope_inv_freq(inv, 8, &(lop_rope){.theta = 10000.0, .type = ROPE_DEFAULT});
    if (fabsf(inv[1] - 0.1f) > 1e-7f) { fails++; printf("rope inv_freq[1] %g != 0.1 FAIL\n", inv[1]); }
    rp_ctx c = {5, 3, 8, rnd(120, 1), zeros(120), rnd(120, 1), inv, pos};
    float *dx = malloc(120 * sizeof(float));
    memcpy(dx, c.R, 120 * sizeof(float));
    rope_inverse(dx, pos, inv, 5, 3, 8);
    check("rope d_x", c.x, 120, dx, rp_loss, &c, 1e-2f, 1e-3);
    /* forward: position 30, pair (1, 5) rotated by 30*0.1 rad */
    rp_loss(&c);
    size_t o = (4 * 3 + 2) * 8;
    double a = 30 * 0.1, y1 = c.x[o + 1] * cos(a) - c.x[o + 5] * sin(a);
    if (fabs(y1 - c.y[o + 1]) > 1e-5) { fails++; printf("rope forward FAIL\n"); }
    free(c.x); free(c.y); free(c.R); free(dx);
}

/* ---------- attention ---------- */
typedef struct { int B, T, H, KVH, D, window; float scale, cap; float *q, *k, *v, *out, *att, *R; } at_ctx;
static double at_loss(void *p) {
    at_ctx *c = p;
    /* the engine's kernel (nn_attention.c), as the training forward uses it */
    attn_seq s[8];
    int qs = c->T * c->H * c->D, ks = c->T * c->KVH * c->D;
    for (int b = 0; b < c->B && b < 8; b++)
        s[b] = (attn_seq){c->out + (size_t)b * qs, c->att + (size_t)b * c->H * c->T * c->T,
                          c->q + (size_t)b * qs, c->k + (size_t)b * ks, c->v + (size_t)b * ks,
                          c->T, c->T, 0};
    attention_forward_batch(s, c->B < 8 ? c->B : 8, c->H, c->KVH, c->D, c->scale, c->window, c->cap);
    return dotR(c->out, c->R, (size_t)c->B * c->T * c->H * c->D);
}
static double naive_attn_err(at_ctx *c) {
    int qs = c->H * c->D, ks = c->KVH * c->D;
    double maxe = 0;
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++)
            for (int i = 0; i < c->T; i++) {
                double s[64], mx = -1e300, z = 0;
                int kh = h / (c->H / c->KVH);
                for (int j = 0; j <= i; j++) {
                    if (c->window && i - j >= c->window) { s[j] = -1e300; continue; }
                    double d = 0;
                    for (int e = 0; e < c->D; e++)
                        d += (double)c->q[(size_t)(b * c->T + i) * qs + h * c->D + e] *
                             c->k[(size_t)(b * c->T + j) * ks + kh * c->D + e];
                    d *= c->scale;
                    if (c->cap > 0) d = c->cap * tanh(d / c->cap);
                    s[j] = d; if (d > mx) mx = d;
                }
                for (int j = 0; j <= i; j++) { s[j] = s[j] < -1e299 ? 0 : exp(s[j] - mx); z += s[j]; }
                for (int e = 0; e < c->D; e++) {
                    double o = 0;
                    for (int j = 0; j <= i; j++)
                        o += s[j] / z * c->v[(size_t)(b * c->T + j) * ks + kh * c->D + e];
                    maxe = fmax(maxe, fabs(o - c->out[(size_t)(b * c->T + i) * qs + h * c->D + e]));
                }
            }
    return maxe;
}
static void test_attention(int window, float cap) {
    at_ctx c = {2, 7, 4, 2, 8, window, 0.5f, cap, 0, 0, 0, 0, 0, 0};
    size_t nq = 2 * 7 * 4 * 8, nk = 2 * 7 * 2 * 8;
    c.q = rnd(nq, 1); c.k = rnd(nk, 1); c.v = rnd(nk, 1); c.out = zeros(nq);
    c.att = zeros(2 * 4 * 7 * 7); c.R = rnd(nq, 1);
    at_loss(&c);
    double fe = naive_attn_err(&c);
    char name[96];
    snprintf(name, sizeof name, "attention fwd vs double (w=%d cap=%g)", window, cap);
    printf("%-34s max.err %.2e  %s\n", name, fe, fe < 1e-5 ? "ok" : "FAIL");
    if (fe >= 1e-5) fails++;
    float *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk), *scr = zeros(2 * 7 * 7);
    tr_attention_backward(dq, dk, dv, scr, c.R, c.att, c.q, c.k, c.v, 2, 7, 4, 2, 8, 0.5f, cap, window);
    snprintf(name, sizeof name, "attention d_q (w=%d cap=%g)", window, cap);
    check(name, c.q, nq, dq, at_loss, &c, 1e-2f, 1e-3);
    snprintf(name, sizeof name, "attention d_k (w=%d cap=%g)", window, cap);
    check(name, c.k, nk, dk, at_loss, &c, 1e-2f, 1e-3);
    snprintf(name, sizeof name, "attention d_v (w=%d cap=%g)", window, cap);
    check(name, c.v, nk, dv, at_loss, &c, 1e-2f, 1e-3);
    free(c.q); free(c.k); free(c.v); free(c.out); free(c.att); free(c.R);
    free(dq); free(dk); free(dv); free(scr);
}

/* ---------- gated activations, softcap ---------- */
typedef struct { size_t n; int act; float *g, *u, *h, *R; } gl_ctx;
static double gl_loss(void *p) {
    gl_ctx *c = p;
    glu_forward(c->h, c->g, c->u, c->n, c->act ? ACT_GELU_TANH : ACT_SILU);
    return dotR(c->h, c->R, c->n);
}
static void test_glu(int act) {
    gl_ctx c = {40, act, rnd(40, 3), rnd(40, 1), zeros(40), rnd(40, 1)};
    gl_loss(&c);
    double x = c.g[3], a = act == 0 ? x / (1 + exp(-x))
        : 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    if (fabs(a * c.u[3] - c.h[3]) > 1e-5) { fails++; printf("glu forward FAIL\n"); }
    float *dg = zeros(40), *du = zeros(40);
    tr_glu_backward(dg, du, c.R, c.g, c.u, 40, act);
    check(act ? "gelu-tanh gate d_g" : "swiglu d_g", c.g, 40, dg, gl_loss, &c, 1e-2f, 1e-3);
    check(act ? "gelu-tanh gate d_u" : "swiglu d_u", c.u, 40, du, gl_loss, &c, 1e-2f, 1e-3);
    free(c.g); free(c.u); free(c.h); free(c.R); free(dg); free(du);
}
typedef struct { float *x, *y, *R; } sc_ctx;
static double sc_loss(void *p) {
    sc_ctx *c = p;
    memcpy(c->y, c->x, 30 * sizeof(float));
    tr_softcap_forward(c->y, 30, 3.0f);
    return dotR(c->y, c->R, 30);
}
static void test_softcap(void) {
    sc_ctx c = {rnd(30, 6), zeros(30), rnd(30, 1)};
    sc_loss(&c);
    float *dx = malloc(30 * sizeof(float));
    memcpy(dx, c.R, 30 * sizeof(float));
    tr_softcap_backward(dx, c.y, 30, 3.0f);
    check("softcap d_x", c.x, 30, dx, sc_loss, &c, 1e-2f, 1e-3);
    free(c.x); free(c.y); free(c.R); free(dx);
}

/* ---------- cross-entropy ---------- */
typedef struct { float *x, *buf; int32_t *t; int n, V; } xe_ctx;
static double xe_loss(void *p) {
    xe_ctx *c = p;
    memcpy(c->buf, c->x, sizeof(float) * c->n * c->V);
    tr_loss_chunk ch = {c->buf, c->t, 0, c->n, c->V, 1.0f, NULL, 0};
    return tr_xent_loss(&ch, NULL, NULL);
}
static void test_xent(void) {
    int32_t t[4] = {2, -1, 0, 9};
    xe_ctx c = {rnd(40, 4), zeros(40), t, 4, 10};
    double L = xe_loss(&c), ref = 0;
    for (int r = 0; r < 4; r++) {
        if (t[r] < 0) continue;
        double z = 0;
        for (int j = 0; j < 10; j++) z += exp((double)c.x[r * 10 + j]);
        ref += log(z) - c.x[r * 10 + t[r]];
    }
    if (fabs(L - ref) > 1e-5) { fails++; printf("xent value %g vs %g FAIL\n", L, ref); }
    float *g = zeros(40);
    memcpy(g, c.x, sizeof(float) * 40);
    int64_t k = 0;
    tr_loss_chunk ch = {g, t, 0, 4, 10, 1.0f, NULL, 0};
    tr_xent_loss(&ch, NULL, &k);
    if (k != 3) { fails++; printf("xent scored %lld != 3 FAIL\n", (long long)k); }
    check("cross-entropy d_logits (masked)", c.x, 40, g, xe_loss, &c, 1e-2f, 1e-3);
    free(c.x); free(c.buf); free(g);
}

int main(void) {
    test_matmul();
    test_embedding();
    test_rmsnorm(0);
    test_rmsnorm(1);
    test_rope();
    test_attention(0, 0);
    test_attention(3, 0);
    test_attention(3, 2.0f);
    test_glu(0);
    test_glu(1);
    test_softcap();
    test_xent();
    if (fails) printf("%d check(s) FAILED\n", fails);
    return fails != 0;
}
