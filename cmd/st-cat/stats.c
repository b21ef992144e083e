/* stats.c — min, max, mean, std, exact zeros, NaN/Inf counts of one tensor, in one pass over
 * chunks converted to float32 (sums in double, shifted by the first finite value so that the
 * variance stays accurate when the mean is large). */
#include "stats.h"
#include <math.h>
#include <string.h>

typedef struct acc { double shift, sum, sq, mn, mx; int have; uint64_t finite, zeros, nan, inf; } acc;

static void add(acc *a, double v) {
    if (v == 0) a->zeros++;
    if (isnan(v)) { a->nan++; return; }
    if (isinf(v)) { a->inf++; return; }
    if (!a->have) { a->shift = v; a->have = 1; }
    double d = v - a->shift;
    a->sum += d; a->sq += d * d;
    if (v < a->mn) a->mn = v;
    if (v > a->mx) a->mx = v;
    a->finite++;
}

static double int_elem(const unsigned char *p, st_dtype t) {
    union { int8_t i8; int16_t i16; int32_t i32; int64_t i64; uint16_t u16; uint32_t u32; uint64_t u64; double f64; } u;
    memcpy(&u, p, st_dtype_size(t));
    switch (t) {
    case ST_F64: return u.f64;
    case ST_I64: return (double)u.i64;
    case ST_I32: return u.i32;
    case ST_I16: return u.i16;
    case ST_I8: return u.i8;
    case ST_U64: return (double)u.u64;
    case ST_U32: return u.u32;
    case ST_U16: return u.u16;
    default: return *p;   /* U8, BOOL */
    }
}

void tensor_stats_compute(tensor_stats *s, const void *data, st_dtype t, uint64_t n) {
    memset(s, 0, sizeof *s);
    s->n = n;
    acc a = {.mn = INFINITY, .mx = -INFINITY};
    const unsigned char *p = data;
    if (t == ST_F32 || t == ST_F16 || t == ST_BF16) {
        float buf[4096];
        size_t sz = st_dtype_size(t);
        for (uint64_t i = 0; i < n; i += 4096) {
            size_t k = n - i < 4096 ? (size_t)(n - i) : 4096;
            st_to_f32(buf, p + i * sz, t, k);
            for (size_t j = 0; j < k; j++) add(&a, buf[j]);
        }
    } else {
        size_t sz = st_dtype_size(t);
        for (uint64_t i = 0; i < n; i++) add(&a, int_elem(p + i * sz, t));
    }
    s->finite = a.finite; s->zeros = a.zeros; s->nan = a.nan; s->inf = a.inf;
    if (a.finite) {
        double m = a.sum / (double)a.finite, var = a.sq / (double)a.finite - m * m;
        s->mean = a.shift + m;
        s->std = sqrt(var > 0 ? var : 0);
        s->min = a.mn; s->max = a.mx;
    }
}
