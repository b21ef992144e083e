/* test_gemm_bf16.c — the bf16 GEMM (gemm_bf16.c) against a float64 loop over the bf16-rounded
 * inputs, on ragged shapes (odd K, row and output tails, several packed-W groups), with
 * accumulate, an output stride, f32/f16 weights rounded while packing, and matmul_forward_bf16
 * (threads, bias). Products of bf16 numbers are exact in float32, so the only error is the
 * float32 summation: the bound checked is K * 2^-24 * sum_k |x_k w_k| (plus a tiny floor). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn.h"
#include "check.h"


static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) { return check_frand(&rng); }
/* independent of the code under test: round to nearest even by integer arithmetic */
static double bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    float r;
    memcpy(&r, &u, 4);
    return r;
}
static uint16_t bf16_bits(float f) {
    float r = (float)bf16_round(f);
    uint32_t u;
    memcpy(&u, &r, 4);
    return (uint16_t)(u >> 16);
}

/* out [N, ldo] vs ref = init + x_bf16 . w_bf16^T; returns the worst err / bound */
static double compare(const float *out, const float *init, const float *x, const float *w, int N,
                      int OC, int K, int ldo, int ldx, const float *bias) {
    double worst = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = init ? init[(size_t)n * ldo + o] : 0, a = init ? fabs(s) : 0;
            if (bias) { s += bias[o]; a += fabs(bias[o]); }
            for (int k = 0; k < K; k++) {
                double p = bf16_round(x[(size_t)n * ldx + k]) * bf16_round(w[(size_t)o * K + k]);
                s += p;
                a += fabs(p);
            }
            double bound = (K + 4) * ldexp(1.0, -24) * a + 1e-30;
            double r = fabs(out[(size_t)n * ldo + o] - s) / bound;
            if (!(r <= worst)) worst = r; /* NaN-propagating */
        }
    return worst;
}

static void test_shape(int N, int OC, int K, int accumulate, int extra_ld) {
    int ldo = OC + extra_ld;
    float *x = malloc(sizeof(float) * (size_t)N * K), *w = malloc(sizeof(float) * (size_t)OC * K);
    uint16_t *wb = malloc(2 * (size_t)OC * K);
    float *out = malloc(sizeof(float) * (size_t)N * ldo), *init = malloc(sizeof(float) * (size_t)N * ldo);
    uint32_t *xp = malloc(4 * gemm_bf16_xpack_size(N, K));
    for (size_t i = 0; i < (size_t)N * K; i++) x[i] = frand() * 3.0f;
    for (size_t i = 0; i < (size_t)OC * K; i++) { w[i] = frand(); wb[i] = bf16_bits(w[i]); }
    for (size_t i = 0; i < (size_t)N * ldo; i++) init[i] = out[i] = frand();
    gemm_bf16_pack_x(xp, x, N, K, K);
    int r = gemm_bf16_nt(out, xp, wb, N, OC, K, ldo, accumulate);
    CHECK(r == 0, "gemm_bf16_nt %dx%dx%d returned %d", N, OC, K, r);
    double e = compare(out, accumulate ? init : NULL, x, w, N, OC, K, ldo, K, NULL);
    CHECK(e <= 1.0, "N=%d OC=%d K=%d acc=%d ldo=%d: error %.3g x the float32 summation bound",
          N, OC, K, accumulate, ldo, e);
    /* the output stride's gap columns are untouched */
    for (int n = 0; n < N && extra_ld; n++)
        for (int o = OC; o < ldo; o++)
            CHECK(out[(size_t)n * ldo + o] == init[(size_t)n * ldo + o], "gap column %d of row %d written", o, n);
    /* the same from float32 and float16 weights rounded while packing (f16 holds these exactly
     * only up to its precision: compare against the f16 values themselves) */
    memcpy(out, init, sizeof(float) * (size_t)N * ldo);
    r = gemm_bf16_nt_dt(out, xp, w, ST_F32, N, OC, K, ldo, accumulate);
    CHECK(r == 0, "gemm_bf16_nt_dt(F32) returned %d", r);
    e = compare(out, accumulate ? init : NULL, x, w, N, OC, K, ldo, K, NULL);
    CHECK(e <= 1.0, "F32 weights N=%d OC=%d K=%d: error %.3g x bound", N, OC, K, e);
    uint16_t *wh = malloc(2 * (size_t)OC * K);
    float *wf16 = malloc(sizeof(float) * (size_t)OC * K);
    for (size_t i = 0; i < (size_t)OC * K; i++) { wh[i] = f32_to_f16(w[i]); wf16[i] = f16_to_f32(wh[i]); }
    memcpy(out, init, sizeof(float) * (size_t)N * ldo);
    r = gemm_bf16_nt_dt(out, xp, wh, ST_F16, N, OC, K, ldo, accumulate);
    CHECK(r == 0, "gemm_bf16_nt_dt(F16) returned %d", r);
    e = compare(out, accumulate ? init : NULL, x, wf16, N, OC, K, ldo, K, NULL);
    CHECK(e <= 1.0, "F16 weights N=%d OC=%d K=%d: error %.3g x bound", N, OC, K, e);
    free(wh); free(wf16);
    free(x); free(w); free(wb); free(out); free(init); free(xp);
}

/* packing x by block-aligned row ranges (as matmul_forward_bf16's threads do) = packing at once;
 * and an x with a row stride larger than K */
static void test_pack_ranges(void) {
    int N = 45, K = 33, ldx = 40, K2 = (K + 1) / 2;
    float *x = malloc(sizeof(float) * N * ldx);
    for (int i = 0; i < N * ldx; i++) x[i] = frand();
    size_t n = gemm_bf16_xpack_size(N, K);
    CHECK(n == (size_t)((N + GB_ROWS - 1) / GB_ROWS) * GB_ROWS * K2, "xpack_size %zu", n);
    uint32_t *a = malloc(4 * n), *b = malloc(4 * n);
    memset(a, 0xAB, 4 * n);
    memset(b, 0xCD, 4 * n);
    gemm_bf16_pack_x(a, x, N, K, ldx);
    gemm_bf16_pack_x(b, x, GB_ROWS, K, ldx);
    gemm_bf16_pack_x(b + (size_t)GB_ROWS * K2, x + (size_t)GB_ROWS * ldx, N - GB_ROWS, K, ldx);
    CHECK(memcmp(a, b, 4 * n) == 0, "packing by row ranges differs from packing at once");
    /* element (n, k) sits in block n/R at pair k/2, row n%R, half k%2 */
    int bad = 0;
    for (int r = 0; r < N; r++)
        for (int k = 0; k < K; k++) {
            uint32_t v = a[(size_t)(r / GB_ROWS) * GB_ROWS * K2 + (size_t)(k / 2) * GB_ROWS + r % GB_ROWS];
            if ((uint16_t)(k & 1 ? v >> 16 : v) != bf16_bits(x[(size_t)r * ldx + k])) bad++;
        }
    CHECK(!bad, "%d packed elements are not the bf16 of x", bad);
    free(x); free(a); free(b);
}

/* matmul_forward_bf16: threads over OC, bias, accumulate; and its float32 fallback */
static void test_matmul(void) {
    int N = 50, IC = 129, OC = 333;
    float *x = malloc(sizeof(float) * N * IC), *w = malloc(sizeof(float) * OC * IC), *bias = malloc(sizeof(float) * OC);
    uint16_t *wb = malloc(2 * (size_t)OC * IC);
    float *out = malloc(sizeof(float) * N * OC), *init = malloc(sizeof(float) * N * OC);
    for (int i = 0; i < N * IC; i++) x[i] = frand();
    for (int i = 0; i < OC * IC; i++) { w[i] = frand(); wb[i] = bf16_bits(w[i]); }
    for (int i = 0; i < OC; i++) bias[i] = frand();
    for (int acc = 0; acc < 2; acc++) {
        for (int i = 0; i < N * OC; i++) init[i] = out[i] = frand();
        int r = matmul_forward_bf16(out, x, wb, ST_BF16, bias, N, IC, OC, acc);
        CHECK(r == 0, "matmul_forward_bf16 returned %d", r);
        double e = compare(out, acc ? init : NULL, x, w, N, OC, IC, OC, IC, bias);
        CHECK(e <= 1.0, "matmul_forward_bf16 acc=%d: error %.3g x bound", acc, e);
    }
    free(x); free(w); free(bias); free(wb); free(out); free(init);
}

int main(void) {
    if (!gemm_bf16_available()) {
        printf("test_gemm_bf16: this CPU has no AVX512-BF16; only the fallback is checked\n");
        float x[6] = {1, 2, 3, 4, 5, 6}, w[6] = {1, 0, -1, 2, 0.5f, 0}, out[4], ref[4];
        CHECK(matmul_forward_bf16(out, x, w, ST_F32, NULL, 2, 3, 2, 0) == 0, "fallback failed");
        CHECK(matmul_forward(ref, x, w, ST_F32, NULL, 2, 3, 2, 0) == 0, "matmul_forward failed");
        CHECK(!memcmp(out, ref, sizeof out), "the fallback is not the float32 path");
        return fails != 0;
    }
    static const int shapes[][3] = { /* N, OC, K */
        {1, 1, 1}, {1, 1, 2}, {1, 32, 64}, {2, 3, 5}, {13, 31, 7}, {14, 32, 64}, {15, 33, 65},
        {27, 17, 3}, {28, 64, 128}, {29, 100, 127}, {41, 16, 96}, {3, 257, 33}, {100, 48, 641},
        {17, 96, 2561}, /* K2 * 128 B per panel > the group budget: one panel per group */
        {16, 1, 1000}, {30, 200, 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int acc = 0; acc < 2; acc++)
            test_shape(shapes[i][0], shapes[i][1], shapes[i][2], acc, (int)(i % 3) * 5);
    test_pack_ranges();
    test_matmul();
    if (!fails) printf("test_gemm_bf16: all passed\n");
    return fails != 0;
}
