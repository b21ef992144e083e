/* stats.c — min, max, mean, std, exact zeros, NaN/Inf counts of one tensor, in one pass over
 * fixed-size chunks converted to double (sums in double, so bf16 models give exact-enough means). */
#include "stats.h"
#include <math.h>
#include <string.h>

static double elem(const unsigned char *p, st_dtype t, uint64_t i) {
    union { int8_t i8; int16_t i16; int32_t i32; int64_t i64; uint16_t u16; uint32_t u32; uint64_t u64; double f64; float f32; } u;
    size_t sz = st_dtype_size(t);
    memcpy(&u, p + i * sz, sz);
    switch (t) {
    case ST_F64: return u.f64;
    case ST_F32: return u.f32;
    case ST_F16: return f16_to_f32(u.u16);
    case ST_BF16: return bf16_to_f32(u.u16);
    case ST_I64: return (double)u.i64;
    case ST_I32: return u.i32;
    case ST_I16: return u.i16;
    case ST_I8: return u.i8;
    case ST_U64: return (double)u.u64;
    case ST_U32: return u.u32;
    case ST_U16: return u.u16;
    case ST_U8: case ST_BOOL: return *(const uint8_t *)(p + i);
    default: return NAN;
    }
}

void tensor_stats_compute(tensor_stats *s, const void *data, st_dtype t, uint64_t n) {
    memset(s, 0, sizeof *s);
    s->n = n;
    double sum = 0, sq = 0, mn = INFINITY, mx = -INFINITY;
    /* two passes would need the data twice; a shifted sum keeps the variance stable instead */
    double shift = 0;
    int have_shift = 0;
    for (uint64_t i = 0; i < n; i++) {
        double v = elem(data, t, i);
        if (v == 0) s->zeros++;
        if (isnan(v)) { s->nan++; continue; }
        if (isinf(v)) { s->inf++; continue; }
        if (!have_shift) { shift = v; have_shift = 1; }
        double d = v - shift;
        sum += d; sq += d * d;
        if (v < mn) mn = v;
        if (v > mx) mx = v;
        s->finite++;
    }
    if (s->finite) {
        double m = sum / (double)s->finite;
        double var = sq / (double)s->finite - m * m;
        s->mean = shift + m;
        s->std = sqrt(var > 0 ? var : 0);
        s->min = mn; s->max = mx;
    }
}
