/* dtype.c — safetensors element types; bf16/f16 <-> f32 with round-to-nearest-even.
 * Loads and stores go through memcpy so that unaligned buffers are fine (UBSan-clean). */
#include "dtype.h"
#include <string.h>

static const struct { const char *name; size_t size; int is_float; } T[ST_NDTYPES] = {
    [ST_F64] = {"F64", 8, 1},  [ST_F32] = {"F32", 4, 1}, [ST_F16] = {"F16", 2, 1},
    [ST_BF16] = {"BF16", 2, 1}, [ST_I64] = {"I64", 8, 0}, [ST_I32] = {"I32", 4, 0},
    [ST_I16] = {"I16", 2, 0},  [ST_I8] = {"I8", 1, 0},   [ST_U64] = {"U64", 8, 0},
    [ST_U32] = {"U32", 4, 0},  [ST_U16] = {"U16", 2, 0}, [ST_U8] = {"U8", 1, 0},
    [ST_BOOL] = {"BOOL", 1, 0},
};

size_t st_dtype_size(st_dtype t) { return (unsigned)t < ST_NDTYPES ? T[t].size : 0; }
const char *st_dtype_name(st_dtype t) { return (unsigned)t < ST_NDTYPES ? T[t].name : "?"; }
int st_dtype_is_float(st_dtype t) { return (unsigned)t < ST_NDTYPES && T[t].is_float; }

int st_dtype_parse(const char *s, st_dtype *out) {
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(s, T[i].name) == 0) { *out = (st_dtype)i; return 0; }
    return -1;
}

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t f32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);                     /* round to nearest, ties to even */
    return (uint16_t)(u >> 16);
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return u2f(sign | 0x7f800000u | (man << 13));   /* Inf, NaN */
    if (exp) return u2f(sign | ((exp + 112) << 23) | (man << 13));    /* normal */
    if (!man) return u2f(sign);                                       /* +-0 */
    /* subnormal: man * 2^-24, exact in f32 */
    float v = (float)man * (1.0f / 16777216.0f);
    return sign ? -v : v;
}

uint16_t f32_to_f16(float f) {
    uint32_t u = f2u(f), sign = (u >> 16) & 0x8000, x = u & 0x7fffffffu;
    if (x >= 0x7f800000u) /* Inf stays Inf; NaN stays a (quiet) NaN */
        return (uint16_t)(sign | (x > 0x7f800000u ? 0x7e00 | ((x >> 13) & 0x3ff) : 0x7c00));
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  /* >= 65520 rounds to Inf */
    if (x < 0x38800000u) {                                   /* below 2^-14: subnormal or 0 */
        if (x <= 0x33000000u) return (uint16_t)sign;         /* <= 2^-25: ties to even 0 */
        uint32_t e = x >> 23, man = (x & 0x7fffff) | 0x800000, shift = 126 - e;
        uint32_t r = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t h = ((x >> 23) - 112) << 10 | ((x >> 13) & 0x3ff), rem = x & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;    /* carry may bump the exponent */
    return (uint16_t)(sign | h);
}

int st_to_f32(float *dst, const void *src, st_dtype t, size_t n) {
    const unsigned char *s = src;
    switch (t) {
    case ST_F32: memmove(dst, src, n * 4); return 0;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = bf16_to_f32(h); }
        return 0;
    case ST_F16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = f16_to_f32(h); }
        return 0;
    case ST_F64:
        for (size_t i = 0; i < n; i++) { double d; memcpy(&d, s + 8 * i, 8); dst[i] = (float)d; }
        return 0;
    default: return -1;
    }
}

int st_from_f32(void *dst, const float *src, st_dtype t, size_t n) {
    unsigned char *d = dst;
    switch (t) {
    case ST_F32: memmove(dst, src, n * 4); return 0;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) { uint16_t h = f32_to_bf16(src[i]); memcpy(d + 2 * i, &h, 2); }
        return 0;
    case ST_F16:
        for (size_t i = 0; i < n; i++) { uint16_t h = f32_to_f16(src[i]); memcpy(d + 2 * i, &h, 2); }
        return 0;
    case ST_F64:
        for (size_t i = 0; i < n; i++) { double v = src[i]; memcpy(d + 8 * i, &v, 8); }
        return 0;
    default: return -1;
    }
}

/* bf16 / f16 / f32 / f64 -> f32 on one thread (vectorized by the compiler for bf16 and f32). */
void st_to_f32_fast(float *dst, const void *src, st_dtype dt, size_t n) {
    if (dt == ST_BF16) {
        const uint16_t *s = src;
        uint32_t *d = (uint32_t *)dst;
        for (size_t i = 0; i < n; i++) d[i] = (uint32_t)s[i] << 16;
    } else if (dt == ST_F32) {
        memcpy(dst, src, n * sizeof(float));
    } else {
        st_to_f32(dst, src, dt, n);
    }
}

