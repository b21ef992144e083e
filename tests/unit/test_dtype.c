/* test_dtype.c — bf16/f16 conversions against an independent reference: the nearest
 * representable value found by search over the (monotonic) bit patterns, computed in double. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dtype.h"
#include "check.h"


/* f16 bits -> value, straight from the IEEE definition (2^128-style overflow: 0x7c00 = 65536) */
static double ref_f16(unsigned h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : 65536.0) : ldexp(1024 + m, e - 25);
    return h & 0x8000 ? -v : v;
}
static double ref_bf16(unsigned h) {
    int e = (h >> 7) & 255, m = h & 127;
    double v = e == 0 ? ldexp(m, -133) : e == 255 ? (m ? NAN : ldexp(1, 128)) : ldexp(128 + m, e - 134);
    return h & 0x8000 ? -v : v;
}
/* nearest non-negative pattern in [0, top] (top = the Inf pattern), ties to even */
static unsigned ref_round(double a, unsigned top, double (*dec)(unsigned)) {
    unsigned lo = 0, hi = top;
    while (hi - lo > 1) { unsigned mid = (lo + hi) / 2; if (dec(mid) <= a) lo = mid; else hi = mid; }
    double dl = a - dec(lo), dh = dec(hi) - a;
    if (dec(lo) == a) return lo;
    if (dl < dh) return lo;
    if (dh < dl) return hi;
    return (lo & 1) ? hi : lo;
}
static unsigned ref_to(float f, unsigned top, double (*dec)(unsigned)) {
    unsigned sign = signbit(f) ? 0x8000 : 0;
    return sign | ref_round(fabs((double)f), top, dec);
}

static float rnd_float(void) {
    unsigned u = (unsigned)rand() << 16 ^ (unsigned)rand() ^ (unsigned)rand() << 31;
    float f; memcpy(&f, &u, 4);
    return f;
}

int main(void) {
    /* every f16 decodes as the definition says, and encodes back to itself */
    for (unsigned h = 0; h < 65536; h++) {
        float f = f16_to_f32((uint16_t)h);
        double r = ref_f16(h);
        if (isnan(r)) { CHECK(isnan(f), "f16 %04x should be NaN", h); CHECK(isnan(f16_to_f32(f32_to_f16(f))), "NaN %04x lost", h); continue; }
        double want = ((h >> 10) & 31) == 31 ? (h & 0x8000 ? -INFINITY : INFINITY) : r;
        CHECK((double)f == want, "f16 %04x -> %g, want %g", h, f, want);
        CHECK(f32_to_f16(f) == h, "f16 %04x does not round-trip (%04x)", h, f32_to_f16(f));
    }
    for (unsigned h = 0; h < 65536; h++) {
        float f = bf16_to_f32((uint16_t)h);
        double r = ref_bf16(h);
        if (isnan(r)) { CHECK(isnan(f), "bf16 %04x should be NaN", h); CHECK(isnan(bf16_to_f32(f32_to_bf16(f))), "NaN %04x lost", h); continue; }
        if (((h >> 7) & 255) != 255) CHECK((double)f == r, "bf16 %04x -> %g, want %g", h, f, r);
        CHECK(f32_to_bf16(f) == h, "bf16 %04x does not round-trip", h);
    }
    /* random floats (all exponents) and values near the f16 range against the reference */
    srand(1);
    for (int i = 0; i < 300000; i++) {
        float f = i & 1 ? rnd_float() : ldexpf((float)rand() / RAND_MAX, rand() % 40 - 28) * (rand() & 1 ? -1 : 1);
        if (isnan(f)) continue;
        unsigned w16 = ref_to(f, 0x7c00, ref_f16), wb = ref_to(f, 0x7f80, ref_bf16);
        CHECK(f32_to_f16(f) == w16, "f32_to_f16(%a) = %04x, want %04x", f, f32_to_f16(f), w16);
        CHECK(f32_to_bf16(f) == wb, "f32_to_bf16(%a) = %04x, want %04x", f, f32_to_bf16(f), wb);
    }
    /* ties and edges, by hand */
    CHECK(f32_to_f16(65519.99f) == 0x7bff, "65519.99 -> max f16");
    CHECK(f32_to_f16(65520.0f) == 0x7c00, "65520 -> Inf");
    CHECK(f32_to_f16(ldexpf(1, -25)) == 0, "2^-25 ties to 0");
    CHECK(f32_to_f16(ldexpf(3, -26)) == 1, "3*2^-26 -> smallest subnormal");
    CHECK(f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00, "1+2^-11 ties to even 1.0");
    CHECK(f32_to_f16(1.0f + 3 * ldexpf(1, -11)) == 0x3c02, "1+3*2^-11 ties to even");
    CHECK(f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80, "bf16 tie to even");
    CHECK(f32_to_bf16(1.0f + 3 * ldexpf(1, -8)) == 0x3f82, "bf16 tie to even (up)");
    CHECK(f32_to_bf16(INFINITY) == 0x7f80 && f32_to_bf16(-INFINITY) == 0xff80, "bf16 Inf");
    CHECK(f32_to_f16(INFINITY) == 0x7c00 && f32_to_f16(-INFINITY) == 0xfc00, "f16 Inf");
    CHECK(isnan(bf16_to_f32(f32_to_bf16(NAN))) && isnan(f16_to_f32(f32_to_f16(-NAN))), "NaN stays NaN");
    uint32_t snan = 0x7f800001; float fs; memcpy(&fs, &snan, 4);
    CHECK(isnan(bf16_to_f32(f32_to_bf16(fs))) && isnan(f16_to_f32(f32_to_f16(fs))), "low-payload NaN stays NaN");
    CHECK(f32_to_bf16(3.4028235e38f) == 0x7f80, "FLT_MAX rounds to bf16 Inf");
    /* dtype table and buffer conversions */
    st_dtype t;
    CHECK(st_dtype_parse("BF16", &t) == 0 && t == ST_BF16 && st_dtype_size(t) == 2, "BF16 parse");
    CHECK(st_dtype_parse("F8_E4M3", &t) == -1, "unknown dtype");
    CHECK(st_dtype_size(ST_BOOL) == 1 && st_dtype_size(ST_I64) == 8 && !st_dtype_is_float(ST_I8), "sizes");
    for (int i = 0; i < ST_NDTYPES; i++) CHECK(st_dtype_parse(st_dtype_name(i), &t) == 0 && (int)t == i, "name %d", i);
    float src[5] = {1.5f, -2.25f, 0, 1e-3f, 65504}, back[5];
    unsigned char buf[5 * 8 + 1];
    for (int d = ST_F64; d <= ST_BF16; d++) {
        CHECK(st_from_f32(buf + 1, src, (st_dtype)d, 5) == 0, "from_f32 %d", d);   /* unaligned on purpose */
        CHECK(st_to_f32(back, buf + 1, (st_dtype)d, 5) == 0, "to_f32 %d", d);
        for (int i = 0; i < 5; i++) {
            double tol = d == ST_BF16 ? 1.0 / 128 : d == ST_F16 ? 1.0 / 1024 : 0;
            CHECK(fabs(back[i] - src[i]) <= tol * fabs(src[i]), "dtype %d elem %d: %g vs %g", d, i, back[i], src[i]);
        }
    }
    CHECK(st_to_f32(back, buf, ST_I32, 1) == -1 && st_from_f32(buf, src, ST_U8, 1) == -1, "ints are not float");
    if (fails) { printf("%d failures\n", fails); return 1; }
    printf("test_dtype: ok\n");
    return 0;
}
