/* tok_decode.c — ids back to text: token strings (special ones dropped on request), then the
 * decoder chain of tokenizer.json over the list of strings (HF's decode_chain), then joined.
 * ByteLevel maps the GPT-2 alphabet back to bytes and repairs invalid UTF-8 with U+FFFD, one per
 * maximal invalid subpart (Rust's from_utf8_lossy); ByteFallback turns "<0xXX>" runs into bytes,
 * one U+FFFD per byte when a run is not valid UTF-8. */
#include "tok_internal.h"
#include "tok_json.h"
#include "utf8.h"
#include <stdlib.h>
#include <string.h>

int tok_bytelevel_byte(uint32_t cp);

typedef struct slist { tbuf b; tpvec v; } slist;   /* list of strings in one buffer */

static int sl_add(slist *l, const char *s, size_t n) {
    size_t off = l->b.len;
    if (tbuf_put(&l->b, s, n)) return -1;
    return tpvec_push(&l->v, off, n, -1, 0);
}
static void sl_free(slist *l) { tbuf_free(&l->b); tpvec_free(&l->v); }

static int apply(const tdec *d, slist *in, slist *out, lop_err *e);

static int bytelevel(slist *in, slist *out) {
    tbuf raw = {0};
    for (size_t i = 0; i < in->v.n; i++) {
        const char *s = in->b.p + in->v.v[i].off; size_t n = in->v.v[i].len;
        size_t mark = raw.len, j = 0;
        int all = 1;
        while (j < n) {
            uint32_t cp; int k = u8_dec((const unsigned char *)s + j, &cp);
            int b = tok_bytelevel_byte(cp);
            if (b < 0) { all = 0; break; }
            char c = (char)b;
            if (tbuf_put(&raw, &c, 1)) { tbuf_free(&raw); return -1; }
            j += k;
        }
        if (!all) { raw.len = mark; if (tbuf_put(&raw, s, n)) { tbuf_free(&raw); return -1; } }
    }
    size_t ln;
    char *fixed = utf8_lossy(raw.p ? raw.p : "", raw.len, &ln);
    tbuf_free(&raw);
    if (!fixed) return -1;
    int r = sl_add(out, fixed, ln);
    free(fixed);
    return r;
}

static int is_byte_token(const char *s, size_t n, unsigned *b) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return 0;
    unsigned v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i]; v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *b = v;
    return 1;
}

static int flush_bytes(tbuf *pend, slist *out) {
    if (!pend->len) return 0;
    int r = 0;
    if (utf8_valid_prefix(pend->p, pend->len) == pend->len) r = sl_add(out, pend->p, pend->len);
    else for (size_t i = 0; i < pend->len && !r; i++) r = sl_add(out, "\xEF\xBF\xBD", 3);
    pend->len = 0;
    return r;
}

static int bytefallback(slist *in, slist *out) {
    tbuf pend = {0};
    int r = 0;
    for (size_t i = 0; i < in->v.n && !r; i++) {
        const char *s = in->b.p + in->v.v[i].off; size_t n = in->v.v[i].len;
        unsigned b;
        if (is_byte_token(s, n, &b)) { char c = (char)b; r = tbuf_put(&pend, &c, 1); continue; }
        r = flush_bytes(&pend, out);
        if (!r) r = sl_add(out, s, n);
    }
    if (!r) r = flush_bytes(&pend, out);
    tbuf_free(&pend);
    return r;
}

static int replace_tok(const tdec *d, const char *s, size_t n, slist *out, lop_err *e) {
    tmatch *m = NULL; size_t nm = 0;
    if (tpattern_find_all(&d->pat, s, n, &m, &nm, e)) return -2;
    tbuf t = {0};
    size_t pos = 0;
    int r = 0;
    for (size_t i = 0; i < nm && !r; i++) {
        r |= tbuf_put(&t, s + pos, m[i].s - pos);
        r |= tbuf_put(&t, d->content, d->clen);
        pos = m[i].e;
    }
    r |= tbuf_put(&t, s + pos, n - pos);
    if (!r) r = sl_add(out, t.p ? t.p : "", t.len);
    tbuf_free(&t); free(m);
    return r;
}

static int strip_tok(const tdec *d, const char *s, size_t n, slist *out) {
    /* strip up to `start` leading and `stop` trailing occurrences of the content char */
    size_t a = 0, b = n, cl = d->clen;
    for (int i = 0; i < d->start && a + cl <= b && !memcmp(s + a, d->content, cl); i++) a += cl;
    for (int i = 0; i < d->stop && b >= a + cl && !memcmp(s + b - cl, d->content, cl); i++) b -= cl;
    return sl_add(out, s + a, b - a);
}

static int metaspace_tok(const tdec *d, size_t idx, const char *s, size_t n, slist *out) {
    tbuf t = {0};
    int r = 0;
    for (size_t j = 0; j < n && !r;) {
        if (j + d->repl_len <= n && !memcmp(s + j, d->repl, d->repl_len)) {
            if (!(idx == 0 && d->prepend_scheme != PREPEND_NEVER)) r = tbuf_put(&t, " ", 1);
            j += d->repl_len;
        } else {
            int k = u8_len((unsigned char)s[j]);
            r = tbuf_put(&t, s + j, (size_t)k);
            j += (size_t)k;
        }
    }
    if (!r) r = sl_add(out, t.p ? t.p : "", t.len);
    tbuf_free(&t);
    return r;
}

static int apply(const tdec *d, slist *in, slist *out, lop_err *e) {
    int r = 0;
    switch (d->kind) {
    case DEC_SEQ: {
        slist a = {0}, b = {0};
        for (size_t i = 0; i < in->v.n && !r; i++) r = sl_add(&a, in->b.p + in->v.v[i].off, in->v.v[i].len);
        for (int k = 0; k < d->nkids && !r; k++) {
            b.b.len = 0; b.v.n = 0;
            r = apply(&d->kids[k], &a, &b, e);
            slist t = a; a = b; b = t;
        }
        for (size_t i = 0; i < a.v.n && !r; i++) r = sl_add(out, a.b.p + a.v.v[i].off, a.v.v[i].len);
        sl_free(&a); sl_free(&b);
        break;
    }
    case DEC_BYTELEVEL: r = bytelevel(in, out); break;
    case DEC_BYTEFALLBACK: r = bytefallback(in, out); break;
    case DEC_FUSE: {
        tbuf t = {0};
        for (size_t i = 0; i < in->v.n && !r; i++) r = tbuf_put(&t, in->b.p + in->v.v[i].off, in->v.v[i].len);
        if (!r) r = sl_add(out, t.p ? t.p : "", t.len);
        tbuf_free(&t);
        break;
    }
    default:
        for (size_t i = 0; i < in->v.n && !r; i++) {
            const char *s = in->b.p + in->v.v[i].off; size_t n = in->v.v[i].len;
            switch (d->kind) {
            case DEC_REPLACE: r = replace_tok(d, s, n, out, e); if (r == -2) return -2; break;
            case DEC_STRIP: r = strip_tok(d, s, n, out); break;
            case DEC_METASPACE: r = metaspace_tok(d, i, s, n, out); break;
            case DEC_BPE_SUFFIX: {
                tdec rep = {.kind = DEC_REPLACE, .pat = {.lit = d->content, .litlen = d->clen},
                            .content = i + 1 == in->v.n ? "" : " ", .clen = i + 1 == in->v.n ? 0 : 1};
                r = replace_tok(&rep, s, n, out, e);
                if (r == -2) return -2;
                break;
            }
            }
        }
    }
    return r;
}

int tok_decode(const lop_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
               char **out, size_t *len, lop_err *e) {
    slist in = {0}, res = {0};
    *out = NULL;
    if (len) *len = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->nvocab || !t->id_str[id]) continue;   /* HF skips unknown ids */
        if (skip_special && t->special[id]) continue;
        if (sl_add(&in, t->id_str[id], t->id_len[id])) goto oom;
    }
    tbuf joined = {0};
    if (!t->dec) {
        for (size_t i = 0; i < in.v.n; i++)
            if ((i && tbuf_put(&joined, " ", 1)) || tbuf_put(&joined, in.b.p + in.v.v[i].off, in.v.v[i].len)) { tbuf_free(&joined); goto oom; }
    } else {
        int r = apply(t->dec, &in, &res, e);
        if (r == -2) { sl_free(&in); sl_free(&res); return -1; }
        if (r) goto oom;
        for (size_t i = 0; i < res.v.n; i++)
            if (tbuf_put(&joined, res.b.p + res.v.v[i].off, res.v.v[i].len)) { tbuf_free(&joined); goto oom; }
    }
    if (tbuf_put(&joined, "", 0) || tbuf_reserve(&joined, 1)) { tbuf_free(&joined); goto oom; }
    joined.p[joined.len] = 0;
    *out = joined.p;
    if (len) *len = joined.len;
    sl_free(&in); sl_free(&res);
    return 0;
oom:
    sl_free(&in); sl_free(&res);
    return lop_fail(e, "out of memory");
}

void dec_free(tdec *d) {
    if (!d) return;
    for (int i = 0; i < d->nkids; i++) dec_free(&d->kids[i]);
    free(d->kids);
    free(d->pat.lit);
    tregex_free(d->pat.re);
    free(d->content);
}

/* ---- parsing: tokenizer.json's "decoder" ---- */

int tok_dec_parse(const tj *o, tdec *d, lop_err *e) {
    memset(d, 0, sizeof *d);
    const char *ty = tok_type_of(o);
    if (!strcmp(ty, "Sequence")) {
        const tj *l = tj_get(o, "decoders");
        d->kind = DEC_SEQ;
        if (!l || l->type != TJ_ARR) return lop_fail(e, "decoder Sequence without a list");
        d->kids = calloc(l->n ? l->n : 1, sizeof *d->kids);
        if (!d->kids) return lop_fail(e, "out of memory");
        for (uint32_t i = 0; i < l->n; i++) {
            d->nkids++;
            if (tok_dec_parse(&l->kids[i], &d->kids[i], e)) return -1;
        }
        return 0;
    }
    if (!strcmp(ty, "ByteLevel")) { d->kind = DEC_BYTELEVEL; tok_bytelevel_once(); return 0; }
    if (!strcmp(ty, "ByteFallback")) { d->kind = DEC_BYTEFALLBACK; return 0; }
    if (!strcmp(ty, "Fuse")) { d->kind = DEC_FUSE; return 0; }
    if (!strcmp(ty, "Strip")) {
        d->kind = DEC_STRIP;
        uint32_t n;
        const char *c = tj_str(o, "content", &n);
        const tj *st = tj_get(o, "start"), *sp = tj_get(o, "stop");
        if (!c || !n) return lop_fail(e, "decoder Strip without content");
        d->content = tok_dupn(c, n); d->clen = n;
        d->start = st && st->type == TJ_NUM ? (int)st->num : 0;
        d->stop = sp && sp->type == TJ_NUM ? (int)sp->num : 0;
        return d->content ? 0 : lop_fail(e, "out of memory");
    }
    if (!strcmp(ty, "Replace")) {
        d->kind = DEC_REPLACE;
        uint32_t n;
        const char *c = tj_str(o, "content", &n);
        if (!c) return lop_fail(e, "decoder Replace without content");
        d->content = tok_dupn(c, n); d->clen = n;
        if (!d->content) return lop_fail(e, "out of memory");
        return tok_pattern_parse(tj_get(o, "pattern"), &d->pat, "decoder Replace", e);
    }
    if (!strcmp(ty, "Metaspace")) {
        d->kind = DEC_METASPACE;
        uint32_t n;
        const char *r = tj_str(o, "replacement", &n);
        if (!r || !n || n > 4) return lop_fail(e, "decoder Metaspace: bad replacement");
        memcpy(d->repl, r, n); d->repl_len = n;
        if (tok_prepend_scheme_parse(o, &d->prepend_scheme)) return lop_fail(e, "decoder Metaspace: bad prepend_scheme");
        return 0;
    }
    if (!strcmp(ty, "BPEDecoder")) {
        d->kind = DEC_BPE_SUFFIX;
        uint32_t n;
        const char *c = tj_str(o, "suffix", &n);
        if (!c) { c = "</w>"; n = 4; }
        d->content = tok_dupn(c, n); d->clen = n;
        return d->content ? 0 : lop_fail(e, "out of memory");
    }
    return lop_fail(e, "unsupported decoder '%s'", ty);
}
