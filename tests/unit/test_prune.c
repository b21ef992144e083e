/* test_prune.c — exact-count selection against a naive reference: sort every weight by
 * (score, already-zero first, position) in double precision and zero the first k. */
#include "prune.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"


static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) { return check_xorshift(&rng); }
static float uniform(void) { return (float)((next() >> 11) * 0x1.0p-53) * 2 - 1; }

/* reference order: score (|w|*x computed as the float product), then nonzero, then position */
typedef struct { float score; int nz; int64_t pos; } ref_item;
static int ref_cmp(const void *a, const void *b) {
    const ref_item *x = a, *y = b;
    int xn = isnan(x->score), yn = isnan(y->score);
    if (xn != yn) return xn - yn;
    if (!xn && x->score != y->score) return x->score < y->score ? -1 : 1;
    if (x->nz != y->nz) return x->nz - y->nz;
    return (x->pos > y->pos) - (x->pos < y->pos);
}
/* zero the k lowest of w[idx[0..n)] by the reference order */
static void ref_prune(float *w, const int64_t *idx, int64_t n, int64_t k, const float *norm,
                      int64_t cols, int64_t posbase) {
    ref_item *it = malloc((size_t)n * sizeof *it);
    for (int64_t t = 0; t < n; t++) {
        float v = w[idx[t]], x = norm ? norm[idx[t] % cols] : 1.0f;
        it[t].score = fabsf(v * x);
        it[t].nz = v != 0;
        it[t].pos = posbase + t;
    }
    qsort(it, (size_t)n, sizeof *it, ref_cmp);
    for (int64_t t = 0; t < k; t++) w[idx[it[t].pos - posbase]] = 0;
    free(it);
}

/* a matrix with ties, exact zeros, negative zeros and repeated magnitudes of both signs */
static void fill(float *w, int64_t n, int quantize) {
    for (int64_t i = 0; i < n; i++) {
        float v = uniform();
        if (quantize) v = roundf(v * 8) / 8; /* many ties and zeros */
        if (i % 97 == 5) v = -0.0f;
        w[i] = v;
    }
}

static void test_count(void) {
    CHECK(prune_count(0.5, 640) == 320, "640*0.5");
    CHECK(prune_count(0.57, 100) == 57, "0.57*100 -> %lld", (long long)prune_count(0.57, 100));
    CHECK(prune_count(0.7, 10) == 7, "0.7*10");
    CHECK(prune_count(0.5, 171) == 85, "floor 85.5");
    CHECK(prune_count(0, 100) == 0 && prune_count(1, 100) == 100, "ends");
    CHECK(prune_count(0.29, 100) == 29, "0.29*100 -> %lld", (long long)prune_count(0.29, 100));
}

static void test_select(void) {
    for (int trial = 0; trial < 300; trial++) {
        int64_t n = 1 + (int64_t)(next() % 500);
        uint64_t *a = malloc((size_t)n * 8), *b = malloc((size_t)n * 8);
        for (int64_t i = 0; i < n; i++) a[i] = ((next() % 7) << 32) | (uint64_t)i; /* distinct */
        if (trial % 3 == 0) for (int64_t i = 0; i < n; i++) a[i] = (uint64_t)(n - i); /* sorted */
        memcpy(b, a, (size_t)n * 8);
        int64_t k = 1 + (int64_t)(next() % (uint64_t)n);
        uint64_t got = prune_select_u64(a, n, k);
        int64_t less = 0;
        for (int64_t i = 0; i < n; i++) less += b[i] < got;
        CHECK(less == k - 1, "select n=%lld k=%lld: %lld smaller", (long long)n, (long long)k,
              (long long)less);
        for (int64_t i = 0; i < k - 1; i++) CHECK(a[i] < got, "prefix not below the k-th");
        free(a); free(b);
    }
}

static int same(const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) && !(a[i] == 0 && b[i] == 0)) return 0;
    return 1;
}

static void test_rows(int use_norm, int quantize) {
    int64_t rows = 37, cols = 640;
    double sp[] = {0.0, 0.1, 0.5, 0.57, 0.9, 1.0};
    float *w = malloc(rows * cols * 4), *r = malloc(rows * cols * 4), norm[640];
    int64_t *idx = malloc(cols * sizeof *idx);
    for (int64_t j = 0; j < cols; j++) norm[j] = (j % 13 == 0) ? 0.0f : fabsf(uniform()) * 3;
    for (size_t si = 0; si < sizeof sp / sizeof *sp; si++) {
        fill(w, rows * cols, quantize);
        memcpy(r, w, rows * cols * 4);
        prune_stat st;
        CHECK(prune_rows(w, rows, cols, use_norm ? norm : NULL, sp[si], &st) == 0, "prune_rows");
        int64_t k = prune_count(sp[si], cols), zeros = 0;
        for (int64_t i = 0; i < rows; i++) {
            int64_t z0 = 0;
            for (int64_t j = 0; j < cols; j++) { idx[j] = i * cols + j; z0 += r[i * cols + j] == 0; }
            ref_prune(r, idx, cols, k, use_norm ? norm : NULL, cols, 0);
            int64_t z = 0;
            for (int64_t j = 0; j < cols; j++) z += w[i * cols + j] == 0;
            CHECK(z == (z0 > k ? z0 : k), "row %lld: %lld zeros, k %lld, %lld before", (long long)i,
                  (long long)z, (long long)k, (long long)z0);
            zeros += z;
        }
        CHECK(same(w, r, rows * cols), "rows: partition differs from reference (sp %g norm %d q %d)",
              sp[si], use_norm, quantize);
        CHECK(st.zeros == zeros, "rows: zeros reported %lld vs %lld", (long long)st.zeros,
              (long long)zeros);
    }
    free(w); free(r); free(idx);
}

/* prune_rows_k: a tensor budget spread over rows (k each, k+1 for the first `extra` rows) */
static void test_rows_k(void) {
    int64_t rows = 23, cols = 100;
    float *w = malloc(rows * cols * 4), *r = malloc(rows * cols * 4), norm[100];
    int64_t idx[100];
    for (int64_t j = 0; j < cols; j++) norm[j] = fabsf(uniform()) * 2;
    int64_t budgets[] = {0, 1, 22, 23, 1151, 2299, 2300};
    for (size_t bi = 0; bi < sizeof budgets / sizeof *budgets; bi++) {
        int64_t zb = budgets[bi], k = zb / rows, extra = zb % rows;
        for (int64_t i = 0; i < rows * cols; i++) w[i] = uniform(); /* no zeros before */
        memcpy(r, w, rows * cols * 4);
        prune_stat st;
        CHECK(prune_rows_k(w, rows, cols, norm, k, extra, &st) == 0, "prune_rows_k %lld", (long long)zb);
        for (int64_t i = 0; i < rows; i++) {
            for (int64_t j = 0; j < cols; j++) idx[j] = i * cols + j;
            ref_prune(r, idx, cols, k + (i < extra), norm, cols, 0);
        }
        CHECK(same(w, r, rows * cols), "rows_k %lld: differs from reference", (long long)zb);
        CHECK(st.zeros == zb && st.pruned == zb, "rows_k: %lld zeros for a budget of %lld",
              (long long)st.zeros, (long long)zb);
    }
    prune_stat st;
    CHECK(prune_rows_k(w, rows, cols, NULL, 100, 1, &st) == -1, "k = cols with extra rows must fail");
    CHECK(prune_rows_k(w, rows, cols, NULL, 3, 24, &st) == -1, "extra > rows must fail");
    free(w); free(r);
}

static void test_nm(int use_norm) {
    int64_t rows = 9, cols = 64;
    float *w = malloc(rows * cols * 4), *r = malloc(rows * cols * 4), norm[64];
    for (int64_t j = 0; j < cols; j++) norm[j] = fabsf(uniform());
    int nm[][2] = {{2, 4}, {4, 8}, {1, 4}, {0, 4}, {4, 4}, {3, 16}};
    for (size_t t = 0; t < sizeof nm / sizeof *nm; t++) {
        int n = nm[t][0], m = nm[t][1];
        fill(w, rows * cols, 1);
        memcpy(r, w, rows * cols * 4);
        prune_stat st;
        CHECK(prune_nm(w, rows, cols, use_norm ? norm : NULL, n, m, &st) == 0, "prune_nm");
        int64_t idx[16];
        for (int64_t i = 0; i < rows; i++)
            for (int64_t g = 0; g < cols; g += m) {
                for (int j = 0; j < m; j++) idx[j] = i * cols + g + j;
                ref_prune(r, idx, m, n, use_norm ? norm : NULL, cols, 0);
                int z = 0;
                for (int j = 0; j < m; j++) z += w[i * cols + g + j] == 0;
                CHECK(z >= n, "group with %d zeros < %d", z, n);
            }
        CHECK(same(w, r, rows * cols), "nm %d:%d differs from reference", n, m);
    }
    prune_stat st;
    CHECK(prune_nm(w, rows, 62, NULL, 2, 4, &st) == -1, "62 %% 4 must fail");
    CHECK(prune_nm(w, rows, cols, NULL, 5, 4, &st) == -1, "5:4 must fail");
    free(w); free(r);
}

/* global over three matrices of different shapes == reference over their concatenation */
static void test_global(int use_norm, int quantize) {
    int64_t shp[3][2] = {{17, 40}, {5, 64}, {33, 40}};
    float *w[3], *r[3], norm[64];
    int64_t total = 0;
    for (int j = 0; j < 64; j++) norm[j] = fabsf(uniform()) + (j % 5 == 0 ? 0 : 0.5f);
    for (int t = 0; t < 3; t++) {
        int64_t n = shp[t][0] * shp[t][1];
        w[t] = malloc(n * 4); r[t] = malloc(n * 4);
        fill(w[t], n, quantize);
        memcpy(r[t], w[t], n * 4);
        total += n;
    }
    double sp[] = {0.0, 0.3, 0.5, 0.999, 1.0};
    for (size_t si = 0; si < sizeof sp / sizeof *sp; si++) {
        float *cw[3], *cr[3];
        for (int t = 0; t < 3; t++) {
            int64_t n = shp[t][0] * shp[t][1];
            cw[t] = malloc(n * 4); cr[t] = malloc(n * 4);
            memcpy(cw[t], w[t], n * 4); memcpy(cr[t], r[t], n * 4);
        }
        int64_t k = prune_count(sp[si], total);
        prune_sel s;
        CHECK(prune_sel_init(&s, k) == 0, "init");
        int passes = 0;
        while (!prune_sel_done(&s)) {
            for (int t = 0; t < 3; t++)
                prune_sel_add(&s, cw[t], shp[t][0], shp[t][1], use_norm ? norm : NULL);
            CHECK(prune_sel_next(&s) == 0, "next");
            passes++;
        }
        CHECK(passes == (k ? 2 : 0), "passes %d", passes);
        int64_t ties = s.rem, zeros = 0;
        for (int t = 0; t < 3; t++) {
            prune_stat st;
            prune_sel_apply(&s, &ties, cw[t], shp[t][0], shp[t][1], use_norm ? norm : NULL, &st);
            zeros += st.zeros;
        }
        CHECK(ties == 0, "ties left %lld", (long long)ties);
        prune_sel_free(&s);
        /* the reference over the concatenation (norm per column of each matrix) */
        float *cat = malloc(total * 4), *catn = malloc(total * 4);
        int64_t off = 0;
        for (int t = 0; t < 3; t++) {
            int64_t n = shp[t][0] * shp[t][1];
            memcpy(cat + off, cr[t], n * 4);
            for (int64_t i = 0; i < n; i++) catn[off + i] = use_norm ? norm[i % shp[t][1]] : 1.0f;
            off += n;
        }
        int64_t *idx = malloc(total * sizeof *idx);
        for (int64_t i = 0; i < total; i++) idx[i] = i;
        ref_prune(cat, idx, total, k, catn, total, 0); /* catn indexed by i % total == i */
        off = 0;
        int64_t z = 0;
        for (int t = 0; t < 3; t++) {
            int64_t n = shp[t][0] * shp[t][1];
            CHECK(same(cw[t], cat + off, n), "global: matrix %d differs (sp %g norm %d q %d)", t,
                  sp[si], use_norm, quantize);
            off += n;
        }
        for (int64_t i = 0; i < total; i++) z += cat[i] == 0;
        CHECK(z == zeros, "global zeros %lld vs %lld", (long long)zeros, (long long)z);
        CHECK(zeros >= k, "global: fewer zeros than k");
        free(cat); free(catn); free(idx);
        for (int t = 0; t < 3; t++) { free(cw[t]); free(cr[t]); }
    }
    for (int t = 0; t < 3; t++) { free(w[t]); free(r[t]); }
}

/* NaN sorts last; already-zero weights go first among equal scores */
static void test_order(void) {
    float w[6] = {NAN, 0.5f, 0.0f, -0.5f, 0.25f, 0.0f}, x[6] = {1, 1, 1, 1, 0, 1};
    prune_stat st;
    prune_rows(w, 1, 6, x, 0.5, &st); /* scores NaN .5 0 .5 0(nonzero) 0: zeros, then w[4] */
    CHECK(w[4] == 0 && w[1] == 0.5f && w[3] == -0.5f && isnan(w[0]), "tie order");
    CHECK(st.zeros == 3 && st.pruned == 1, "zeros %lld pruned %lld", (long long)st.zeros,
          (long long)st.pruned);
    float v[4] = {NAN, 1, 2, 3};
    prune_rows(v, 1, 4, NULL, 0.75, &st);
    CHECK(isnan(v[0]) && v[1] == 0 && v[2] == 0 && v[3] == 0, "NaN last");
}

int main(void) {
    test_count();
    test_select();
    test_order();
    for (int q = 0; q < 2; q++)
        for (int u = 0; u < 2; u++) { test_rows(u, q); test_global(u, q); }
    test_nm(0);
    test_nm(1);
    test_rows_k();
    if (fails) { printf("%d failures\n", fails); return 1; }
    printf("test_prune: ok\n");
    return 0;
}
