/* test_nn.c — every forward kernel of nn.h against a naive double-precision loop. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn.h"
#include "check.h"


static uint64_t rng = 88172645463325252ull;
static float frand(void) { return check_frand(&rng); }
static float *randv(size_t n, float s) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand() * s;
    return p;
}
/* max |a-b| / (|b| + floor) */
static double maxrel(const float *a, const double *b, size_t n, double floor) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]) / (fabs(b[i]) + floor);
        if (!(d <= m)) m = d; /* NaN-propagating */
    }
    return m;
}
static uint16_t to_bf16(float f) { uint32_t u; memcpy(&u, &f, 4); return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16); }
static double from_bf16(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }

static void test_matmul(void) {
    int N = 37, IC = 96, OC = 333;
    float *x = randv((size_t)N * IC, 1), *wf = randv((size_t)OC * IC, 1), *bias = randv(OC, 1);
    uint16_t *wb = malloc(sizeof(uint16_t) * OC * IC);
    for (int i = 0; i < OC * IC; i++) wb[i] = to_bf16(wf[i]);
    float *out = malloc(sizeof(float) * N * OC);
    double *ref = malloc(sizeof(double) * N * OC);
    for (int pass = 0; pass < 3; pass++) { /* f32, bf16, bf16 + accumulate */
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) {
                double s = bias[o] + (pass == 2 ? 1.0 : 0.0);
                for (int i = 0; i < IC; i++)
                    s += (double)x[n * IC + i] * (pass ? from_bf16(wb[o * IC + i]) : wf[o * IC + i]);
                ref[n * OC + o] = s;
            }
        for (int i = 0; i < N * OC; i++) out[i] = pass == 2 ? 1.0f : 0.0f;
        int r = matmul_forward(out, x, pass ? (const void *)wb : wf, pass ? ST_BF16 : ST_F32, bias,
                               N, IC, OC, pass == 2);
        CHECK(r == 0, "matmul_forward returned %d", r);
        double e = maxrel(out, ref, (size_t)N * OC, 1.0);
        CHECK(e < 1e-5, "matmul pass %d: max rel err %g", pass, e);
    }
    /* a big one, to cross the parallel threshold and the chunking of rows */
    int N2 = 64, IC2 = 512, OC2 = 1000;
    float *x2 = randv((size_t)N2 * IC2, 1);
    uint16_t *w2 = malloc(sizeof(uint16_t) * OC2 * IC2);
    for (int i = 0; i < OC2 * IC2; i++) w2[i] = to_bf16(frand());
    float *o2 = malloc(sizeof(float) * N2 * OC2);
    double *r2 = malloc(sizeof(double) * N2 * OC2);
    for (int n = 0; n < N2; n++)
        for (int o = 0; o < OC2; o++) {
            double s = 0;
            for (int i = 0; i < IC2; i++) s += (double)x2[n * IC2 + i] * from_bf16(w2[o * IC2 + i]);
            r2[n * OC2 + o] = s;
        }
    CHECK(matmul_forward(o2, x2, w2, ST_BF16, NULL, N2, IC2, OC2, 0) == 0, "matmul big");
    double e = maxrel(o2, r2, (size_t)N2 * OC2, 1.0);
    CHECK(e < 1e-5, "matmul big: max rel err %g", e);
    free(x); free(wf); free(bias); free(wb); free(out); free(ref);
    free(x2); free(w2); free(o2); free(r2);
}

static void test_rmsnorm(void) {
    int N = 9, C = 77;
    float *x = randv((size_t)N * C, 3), *w = randv(C, 1), *out = malloc(sizeof(float) * N * C), rstd[9];
    double *ref = malloc(sizeof(double) * N * C), rr[9];
    for (int g = 0; g < 2; g++) {
        for (int n = 0; n < N; n++) {
            double ss = 0;
            for (int i = 0; i < C; i++) ss += (double)x[n * C + i] * x[n * C + i];
            rr[n] = 1 / sqrt(ss / C + 1e-6);
            for (int i = 0; i < C; i++) ref[n * C + i] = x[n * C + i] * rr[n] * (g ? 1.0 + w[i] : w[i]);
        }
        rmsnorm_forward(out, rstd, x, w, N, C, 1e-6f, g);
        double e = maxrel(out, ref, (size_t)N * C, 1e-3);
        CHECK(e < 1e-5, "rmsnorm gemma=%d: max rel err %g", g, e);
        e = maxrel(rstd, rr, N, 0);
        CHECK(e < 1e-6, "rmsnorm rstd: %g", e);
    }
    free(x); free(w); free(out); free(ref);
}

static void test_rope(void) {
    int N = 5, H = 3, D = 16;
    int pos[5] = {0, 1, 7, 100, 4000};
    lop_rope cfgs[3] = {
        {.theta = 10000, .type = ROPE_DEFAULT},
        {.theta = 1e6, .type = ROPE_LINEAR, .factor = 8},
        {.theta = 500000, .type = ROPE_LLAMA3, .factor = 8, .low_freq_factor = 1,
         .high_freq_factor = 4, .original_max_pos = 8192},
    };
    for (int c = 0; c < 3; c++) {
        float inv[8];
        double invr[8];
        rope_inv_freq(inv, D, &cfgs[c]);
        for (int i = 0; i < D / 2; i++) {
            double f = 1.0 / pow(cfgs[c].theta, 2.0 * i / D);
            if (c == 1) f /= 8;
            if (c == 2) { /* llama3: by wavelength against original_max_pos/4 and /1 */
                double wl = 2 * M_PI / f;
                if (wl > 8192.0) f /= 8;
                else if (wl >= 8192.0 / 4) {
                    double s = (8192.0 / wl - 1) / 3;
                    f = (1 - s) * f / 8 + s * f;
                }
            }
            invr[i] = f;
        }
        double e = maxrel(inv, invr, D / 2, 0);
        CHECK(e < 1e-6, "rope inv_freq cfg %d: %g", c, e);
        float *x = randv((size_t)N * H * D, 1);
        double *ref = malloc(sizeof(double) * N * H * D);
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < D / 2; i++) {
                    double a = (double)(float)((float)pos[n] * inv[i]);
                    double x1 = x[(n * H + h) * D + i], x2 = x[(n * H + h) * D + i + D / 2];
                    ref[(n * H + h) * D + i] = x1 * cos(a) - x2 * sin(a);
                    ref[(n * H + h) * D + i + D / 2] = x2 * cos(a) + x1 * sin(a);
                }
        float *x2 = malloc(sizeof(float) * N * H * D), cs[5 * 16];
        memcpy(x2, x, sizeof(float) * N * H * D);
        double *orig = malloc(sizeof(double) * N * H * D);
        for (int i = 0; i < N * H * D; i++) orig[i] = x[i];
        rope_forward(x, pos, inv, N, H, D);
        e = maxrel(x, ref, (size_t)N * H * D, 1e-2);
        CHECK(e < 1e-5, "rope cfg %d: %g", c, e);
        rope_table(cs, pos, inv, N, D);
        rope_apply(x2, cs, N, H, D);
        e = maxrel(x2, ref, (size_t)N * H * D, 1e-2);
        CHECK(e < 1e-5, "rope_table+apply cfg %d: %g", c, e);
        rope_apply_inverse(x2, cs, N, H, D);
        e = maxrel(x2, orig, (size_t)N * H * D, 1e-2);
        CHECK(e < 1e-5, "rope_apply_inverse cfg %d: %g", c, e);
        free(x2); free(orig);
        free(x); free(ref);
    }
}

/* naive attention in double */
static void attn_ref(double *out, double *att, const float *q, const float *k, const float *v,
                     int T, int Tk, int qpos0, int Hq, int Hkv, int D, double scale, int window,
                     double cap) {
    double *s = malloc(sizeof(double) * Tk);
    for (int h = 0; h < Hq; h++) {
        int kh = h / (Hq / Hkv);
        for (int i = 0; i < T; i++) {
            int p = qpos0 + i;
            double m = -INFINITY, sum = 0;
            for (int j = 0; j < Tk; j++) {
                int vis = j <= p && (window <= 0 || p - j < window);
                if (!vis) { s[j] = -INFINITY; continue; }
                double d = 0;
                for (int c = 0; c < D; c++) d += (double)q[(i * Hq + h) * D + c] * k[(j * Hkv + kh) * D + c];
                d *= scale;
                if (cap > 0) d = cap * tanh(d / cap);
                s[j] = d;
                if (d > m) m = d;
            }
            for (int j = 0; j < Tk; j++) { s[j] = s[j] == -INFINITY ? 0 : exp(s[j] - m); sum += s[j]; }
            for (int j = 0; j < Tk; j++) { s[j] /= sum; att[((size_t)h * T + i) * Tk + j] = s[j]; }
            for (int c = 0; c < D; c++) {
                double o = 0;
                for (int j = 0; j < Tk; j++) o += s[j] * v[(j * Hkv + kh) * D + c];
                out[(i * Hq + h) * D + c] = o;
            }
        }
    }
    free(s);
}

static void test_attention(void) {
    struct { int T, qpos0, Hq, Hkv, D, window; float cap; } cs[] = {
        {150, 0, 4, 2, 16, 0, 0}, {150, 0, 2, 1, 32, 8, 0}, {70, 0, 3, 3, 8, 0, 5.0f},
        {3, 90, 4, 1, 16, 0, 0}, {1, 200, 2, 2, 16, 50, 0}, {130, 5, 4, 2, 16, 64, 30.0f},
    };
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        int T = cs[c].T, Tk = cs[c].qpos0 + T, Hq = cs[c].Hq, Hkv = cs[c].Hkv, D = cs[c].D;
        float *q = randv((size_t)T * Hq * D, 2), *k = randv((size_t)Tk * Hkv * D, 2),
              *v = randv((size_t)Tk * Hkv * D, 1);
        float *out = malloc(sizeof(float) * T * Hq * D), *att = malloc(sizeof(float) * Hq * T * Tk);
        double *ro = malloc(sizeof(double) * T * Hq * D), *ra = malloc(sizeof(double) * Hq * T * Tk);
        float scale = 1.0f / sqrtf((float)D);
        attention_forward(out, att, q, k, v, T, Tk, cs[c].qpos0, Hq, Hkv, D, scale, cs[c].window, cs[c].cap);
        attn_ref(ro, ra, q, k, v, T, Tk, cs[c].qpos0, Hq, Hkv, D, scale, cs[c].window, cs[c].cap);
        double e = maxrel(out, ro, (size_t)T * Hq * D, 1e-2);
        CHECK(e < 2e-5, "attention case %zu: out err %g", c, e);
        e = maxrel(att, ra, (size_t)Hq * T * Tk, 1e-3);
        CHECK(e < 2e-5, "attention case %zu: probs err %g", c, e);
        /* without att (the inference path) the output is the same */
        float *out2 = malloc(sizeof(float) * T * Hq * D);
        attention_forward(out2, NULL, q, k, v, T, Tk, cs[c].qpos0, Hq, Hkv, D, scale, cs[c].window, cs[c].cap);
        CHECK(memcmp(out, out2, sizeof(float) * T * Hq * D) == 0, "attention case %zu: att=NULL differs", c);
        free(q); free(k); free(v); free(out); free(att); free(ro); free(ra); free(out2);
    }
}

static void test_glu(void) {
    size_t n = 100000;
    float *g = randv(n, 6), *u = randv(n, 2), *h = malloc(sizeof(float) * n);
    double *r = malloc(sizeof(double) * n);
    for (int a = 0; a < 2; a++) {
        for (size_t i = 0; i < n; i++) {
            double x = g[i];
            r[i] = (a ? 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))) : x / (1 + exp(-x))) * u[i];
        }
        glu_forward(h, g, u, n, a ? ACT_GELU_TANH : ACT_SILU);
        /* floor 1: float32 1+tanh(z) cancels for z << 0, as in PyTorch's own float32 kernel */
        double e = maxrel(h, r, n, 1.0);
        CHECK(e < 1e-6, "glu act %d: %g", a, e);
    }
    free(g); free(u); free(h); free(r);
}

static void test_softmax(void) {
    size_t n = 5000;
    float *x = randv(n, 40), *y = malloc(sizeof(float) * n);
    double *r = malloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) r[i] = exp((double)x[i]);
    nn_exp(y, x, n);
    double e = maxrel(y, r, n, 0);
    CHECK(e < 5e-7, "nn_exp: %g", e);
    y[0] = nn_expf(-200.0f);
    CHECK(y[0] == 0.0f, "nn_expf(-200) = %g", y[0]);
    int N = 7, V = 1000;
    float *lg = randv((size_t)N * V, 10), *ls = malloc(sizeof(float) * N * V), nll[7];
    int32_t tg[7] = {0, 5, 999, -1, 17, 500, 3};
    double *rl = malloc(sizeof(double) * N * V), rn[7], mean = 0;
    int cnt = 0;
    for (int i = 0; i < N; i++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < V; j++) m = fmax(m, lg[i * V + j]);
        for (int j = 0; j < V; j++) s += exp(lg[i * V + j] - m);
        double l = m + log(s);
        for (int j = 0; j < V; j++) rl[i * V + j] = lg[i * V + j] - l;
        rn[i] = tg[i] < 0 ? 0 : l - lg[i * V + tg[i]];
        if (tg[i] >= 0) { mean += rn[i]; cnt++; }
        float lf = nn_logsumexp(lg + i * V, V);
        CHECK(fabs(lf - l) < 1e-5 * fabs(l) + 1e-6, "logsumexp row %d: %g vs %g", i, lf, l);
        float m2 = nn_max(lg + i * V, V), se = nn_sumexp(lg + i * V, V, m2);
        CHECK(fabs(m2 + log(se) - l) < 1e-5 * fabs(l) + 1e-5, "max+sumexp row %d", i);
    }
    log_softmax_forward(ls, lg, N, V);
    e = maxrel(ls, rl, (size_t)N * V, 1);
    CHECK(e < 1e-5, "log_softmax: %g", e);
    double ce = crossentropy_forward(nll, lg, tg, N, V);
    CHECK(fabs(ce - mean / cnt) < 1e-5, "crossentropy mean %g vs %g", ce, mean / cnt);
    e = maxrel(nll, rn, N, 1);
    CHECK(e < 1e-5, "crossentropy per row: %g", e);
    float sc[3] = {100, -3, 0.5f};
    softcap_forward(sc, 3, 30);
    CHECK(fabs(sc[0] - 30 * tanh(100.0 / 30)) < 1e-5 && fabs(sc[1] - 30 * tanh(-0.1)) < 1e-6, "softcap");
    free(x); free(y); free(r); free(lg); free(ls); free(rl);
}

int main(void) {
    test_matmul();
    test_rmsnorm();
    test_rope();
    test_attention();
    test_glu();
    test_softmax();
    if (fails) { printf("%d check(s) failed\n", fails); return 1; }
    printf("test_nn: all kernels match the double-precision references\n");
    return 0;
}
