/* utf8.c — UTF-8 validation, lossy repair, and the few Unicode predicates the tokenizer needs. */
#include "utf8.h"
#include "tok_internal.h"
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* Length of the valid sequence at s[i..n), or 0 with *sub = length of the maximal invalid
 * subpart (>= 1) that a replacement character stands for. */
static size_t seq_len(const unsigned char *s, size_t i, size_t n, size_t *sub) {
    unsigned c = s[i];
    if (c < 0x80) return 1;
    int need; unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) { need = 2; lo = 0xA0; }
    else if (c == 0xED) { need = 2; hi = 0x9F; }
    else if (c >= 0xE1 && c <= 0xEF) need = 2;
    else if (c == 0xF0) { need = 3; lo = 0x90; }
    else if (c == 0xF4) { need = 3; hi = 0x8F; }
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else { *sub = 1; return 0; }
    size_t k = 1;
    for (int j = 0; j < need; j++, k++) {
        if (i + k >= n) { *sub = k; return 0; }
        unsigned d = s[i + k];
        if (d < lo || d > hi) { *sub = k; return 0; }
        lo = 0x80; hi = 0xBF;
    }
    return k;
}

size_t utf8_valid_prefix(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, sub;
    while (i < n) {
        /* fast path over ASCII, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w; memcpy(&w, u + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        size_t k = seq_len(u, i, n, &sub);
        if (!k) return i;
        i += k;
    }
    return n;
}

char *utf8_lossy(const char *s, size_t n, size_t *outlen) {
    const unsigned char *u = (const unsigned char *)s;
    char *o = malloc(n * 3 + 1); /* each bad byte becomes at most 3 bytes */
    if (!o) return NULL;
    size_t i = 0, j = 0, sub;
    while (i < n) {
        size_t k = seq_len(u, i, n, &sub);
        if (k) { memcpy(o + j, u + i, k); j += k; i += k; }
        else { memcpy(o + j, "\xEF\xBF\xBD", 3); j += 3; i += sub; }
    }
    o[j] = 0;
    if (outlen) *outlen = j;
    return o;
}

int u8_enc(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = 0xC0 | (cp >> 6); o[1] = 0x80 | (cp & 0x3F); return 2; }
    if (cp < 0x10000) {
        o[0] = 0xE0 | (cp >> 12); o[1] = 0x80 | ((cp >> 6) & 0x3F); o[2] = 0x80 | (cp & 0x3F);
        return 3;
    }
    o[0] = 0xF0 | (cp >> 18); o[1] = 0x80 | ((cp >> 12) & 0x3F);
    o[2] = 0x80 | ((cp >> 6) & 0x3F); o[3] = 0x80 | (cp & 0x3F);
    return 4;
}

/* The White_Space property: what Rust's char::is_whitespace and Oniguruma's \s match. */
int u8_is_space(uint32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    if (c < 0x85) return 0;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Rust regex's Unicode \w: alphabetic, marks, decimal digits, connector punctuation, joiners. */
int u8_is_word(uint32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (c == 0x200C || c == 0x200D) return 1;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}
