/* tok_normalize.c — normalizers: Unicode forms (utf8proc), Replace, Prepend, Strip, Lowercase,
 * StripAccents, Sequence. Each maps one string to one string, as HF's NormalizedString does
 * (we need no alignments: lop never reports offsets). */
#include "tok_internal.h"
#include "tok_json.h"
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static int unicode_form(int kind, const char *s, size_t n, tbuf *out, lop_err *e) {
    if (!n) return 0;
    int opt = UTF8PROC_STABLE;
    switch (kind) {
    case NORM_NFC: opt |= UTF8PROC_COMPOSE; break;
    case NORM_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case NORM_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    default: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    /* ASCII is invariant under every form: skip the work for it */
    size_t i = 0;
    while (i < n && !((unsigned char)s[i] & 0x80)) i++;
    if (i == n) return tbuf_put(out, s, n) ? lop_fail(e, "out of memory") : 0;
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &res, opt);
    if (r < 0) return lop_fail(e, "unicode normalization failed: %s", utf8proc_errmsg(r));
    int bad = tbuf_put(out, res, (size_t)r);
    free(res);
    return bad ? lop_fail(e, "out of memory") : 0;
}

static int replace(const tnorm *nm, const char *s, size_t n, tbuf *out, lop_err *e) {
    tmatch *m = NULL; size_t nm_ = 0;
    if (tpattern_find_all(&nm->pat, s, n, &m, &nm_, e)) return -1;
    size_t pos = 0;
    int bad = 0;
    for (size_t i = 0; i < nm_ && !bad; i++) {
        bad |= tbuf_put(out, s + pos, m[i].s - pos);
        bad |= tbuf_put(out, nm->content, nm->clen);
        pos = m[i].e;
    }
    bad |= tbuf_put(out, s + pos, n - pos);
    free(m);
    return bad ? lop_fail(e, "out of memory") : 0;
}

static int strip(const tnorm *nm, const char *s, size_t n, tbuf *out, lop_err *e) {
    size_t a = 0, b = n;
    if (nm->left)
        while (a < b) {
            uint32_t cp; int k = u8_dec((const unsigned char *)s + a, &cp);
            if (!u8_is_space(cp)) break;
            a += k;
        }
    if (nm->right)
        while (b > a) {
            size_t k = b - 1;
            while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
            uint32_t cp; u8_dec((const unsigned char *)s + k, &cp);
            if (!u8_is_space(cp)) break;
            b = k;
        }
    return tbuf_put(out, s + a, b - a) ? lop_fail(e, "out of memory") : 0;
}

/* Rust's char::to_lowercase: the simple mapping, except U+0130 which lowers to "i\u0307". */
static int lower(const char *s, size_t n, tbuf *out, lop_err *e) {
    if (tbuf_reserve(out, n * 2 + 8)) return lop_fail(e, "out of memory");
    for (size_t i = 0; i < n;) {
        uint32_t cp; int k = u8_dec((const unsigned char *)s + i, &cp);
        i += k;
        if (tbuf_reserve(out, 8)) return lop_fail(e, "out of memory");
        if (cp == 0x130) { memcpy(out->p + out->len, "i\xCC\x87", 3); out->len += 3; continue; }
        uint32_t lc = cp < 0x80 ? (cp >= 'A' && cp <= 'Z' ? cp + 32 : cp)
                                : (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
        out->len += u8_enc(lc, out->p + out->len);
    }
    return 0;
}

static int strip_accents(const char *s, size_t n, tbuf *out, lop_err *e) {
    for (size_t i = 0; i < n;) {
        uint32_t cp; int k = u8_dec((const unsigned char *)s + i, &cp);
        if (cp < 0x300 || utf8proc_category((utf8proc_int32_t)cp) != UTF8PROC_CATEGORY_MN)
            if (tbuf_put(out, s + i, k)) return lop_fail(e, "out of memory");
        i += k;
    }
    return 0;
}

int norm_apply(const tnorm *nm, const char *s, size_t n, tbuf *out, lop_err *e) {
    switch (nm->kind) {
    case NORM_SEQ: {
        if (nm->nkids == 0) return tbuf_put(out, s, n) ? lop_fail(e, "out of memory") : 0;
        tbuf a = {0}, b = {0};
        if (tbuf_put(&a, s, n)) return lop_fail(e, "out of memory");
        for (int i = 0; i < nm->nkids; i++) {
            b.len = 0;
            if (norm_apply(&nm->kids[i], a.p, a.len, &b, e)) { tbuf_free(&a); tbuf_free(&b); return -1; }
            tbuf t = a; a = b; b = t;
        }
        int bad = tbuf_put(out, a.p, a.len);
        tbuf_free(&a); tbuf_free(&b);
        return bad ? lop_fail(e, "out of memory") : 0;
    }
    case NORM_NFC: case NORM_NFD: case NORM_NFKC: case NORM_NFKD:
        return unicode_form(nm->kind, s, n, out, e);
    case NORM_REPLACE: return replace(nm, s, n, out, e);
    case NORM_PREPEND:
        /* HF prepends only to non-empty strings */
        if (n && tbuf_put(out, nm->content, nm->clen)) return lop_fail(e, "out of memory");
        return tbuf_put(out, s, n) ? lop_fail(e, "out of memory") : 0;
    case NORM_STRIP: return strip(nm, s, n, out, e);
    case NORM_LOWER: return lower(s, n, out, e);
    case NORM_STRIP_ACCENTS: return strip_accents(s, n, out, e);
    }
    return lop_fail(e, "internal: bad normalizer");
}

void norm_free(tnorm *nm) {
    if (!nm) return;
    for (int i = 0; i < nm->nkids; i++) norm_free(&nm->kids[i]);
    free(nm->kids);
    free(nm->pat.lit);
    tregex_free(nm->pat.re);
    free(nm->content);
}

/* ---- parsing: tokenizer.json's "normalizer" ---- */

int tok_norm_parse(const tj *o, tnorm *nm, lop_err *e) {
    memset(nm, 0, sizeof *nm);
    const char *ty = tok_type_of(o);
    if (!strcmp(ty, "Sequence")) {
        const tj *l = tj_get(o, "normalizers");
        nm->kind = NORM_SEQ;
        if (!l || l->type != TJ_ARR) return lop_fail(e, "normalizer Sequence without a list");
        nm->kids = calloc(l->n ? l->n : 1, sizeof *nm->kids);
        if (!nm->kids) return lop_fail(e, "out of memory");
        for (uint32_t i = 0; i < l->n; i++) {
            nm->nkids++;
            if (tok_norm_parse(&l->kids[i], &nm->kids[i], e)) return -1;
        }
        return 0;
    }
    if (!strcmp(ty, "NFC")) { nm->kind = NORM_NFC; return 0; }
    if (!strcmp(ty, "NFD")) { nm->kind = NORM_NFD; return 0; }
    if (!strcmp(ty, "NFKC")) { nm->kind = NORM_NFKC; return 0; }
    if (!strcmp(ty, "NFKD")) { nm->kind = NORM_NFKD; return 0; }
    if (!strcmp(ty, "Lowercase")) { nm->kind = NORM_LOWER; return 0; }
    if (!strcmp(ty, "StripAccents")) { nm->kind = NORM_STRIP_ACCENTS; return 0; }
    if (!strcmp(ty, "Strip")) {
        nm->kind = NORM_STRIP;
        nm->left = tj_bool(o, "strip_left", 1); nm->right = tj_bool(o, "strip_right", 1);
        return 0;
    }
    if (!strcmp(ty, "Replace") || !strcmp(ty, "Prepend")) {
        uint32_t n;
        const char *c = tj_str(o, ty[0] == 'R' ? "content" : "prepend", &n);
        if (!c) return lop_fail(e, "normalizer %s without its string", ty);
        nm->kind = ty[0] == 'R' ? NORM_REPLACE : NORM_PREPEND;
        nm->content = tok_dupn(c, n); nm->clen = n;
        if (!nm->content) return lop_fail(e, "out of memory");
        if (nm->kind == NORM_REPLACE) return tok_pattern_parse(tj_get(o, "pattern"), &nm->pat, "normalizer Replace", e);
        return 0;
    }
    return lop_fail(e, "unsupported normalizer '%s'", ty);
}
