/* tok_pretok.c — pre-tokenizers: Split (regex or literal, five delimiter behaviours, invert),
 * ByteLevel (GPT-2 byte-to-char alphabet), Metaspace, Digits, Whitespace, WhitespaceSplit,
 * Sequence. Each turns a list of pieces into a finer list; empty pieces are dropped, as HF's
 * PreTokenizedString::split does. */
#include "tok_internal.h"
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

const tregex *g_bytelevel_re;

/* GPT-2's byte -> printable char table, as UTF-8 (1 or 2 bytes). */
static char bl_utf8[256][3];
static uint8_t bl_len[256];
static int16_t bl_inv[256 + 68];   /* char -> byte */
/* Called once (pthread_once in tok_load) before any ByteLevel component runs. */
void tok_bytelevel_init(void) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = printable ? (uint32_t)b : 256u + (uint32_t)n++;
        bl_len[b] = (uint8_t)u8_enc(cp, bl_utf8[b]);
    }
    for (int i = 0; i < 256 + 68; i++) bl_inv[i] = -1;
    n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        bl_inv[printable ? b : 256 + n++] = (int16_t)b;
    }
}
/* for the decoder: char -> byte, -1 if the char is not in the alphabet */
int tok_bytelevel_byte(uint32_t cp) { return cp < 256 + 68 ? bl_inv[cp] : -1; }

/* Split the piece pc of buf by the matches m (relative to the piece) under behavior. */
static int split_piece(tbuf *buf, const tpiece *pc, const tmatch *m, size_t nm, int behavior,
                       int invert, tpvec *out) {
    /* the alternating (range, is_match) list covering the piece */
    size_t cap = nm * 2 + 1, k = 0;
    struct rg { size_t s, e; int match; } *r = malloc(cap * sizeof *r);
    if (!r) return -1;
    size_t prev = 0;
    if (pc->len == 0) r[k++] = (struct rg){0, 0, 0};
    for (size_t i = 0; i < nm; i++) {
        if (prev != m[i].s) r[k++] = (struct rg){prev, m[i].s, 0};
        r[k++] = (struct rg){m[i].s, m[i].e, 1};
        prev = m[i].e;
    }
    if (prev != pc->len) r[k++] = (struct rg){prev, pc->len, 0};
    if (invert) for (size_t i = 0; i < k; i++) r[i].match = !r[i].match;

    /* fold per behavior into kept ranges (is_match now means "remove") */
    size_t nk = 0;
    struct rg *o = malloc((k + 1) * sizeof *o);
    if (!o) { free(r); return -1; }
    switch (behavior) {
    case SPLIT_REMOVED:
        for (size_t i = 0; i < k; i++) if (!r[i].match) o[nk++] = r[i];
        break;
    case SPLIT_ISOLATED:
        for (size_t i = 0; i < k; i++) { o[nk] = r[i]; o[nk++].match = 0; }
        break;
    case SPLIT_MERGED_PREV: {
        int pm = 0;
        for (size_t i = 0; i < k; i++) {
            if (r[i].match && !pm && nk) o[nk - 1].e = r[i].e;
            else o[nk++] = (struct rg){r[i].s, r[i].e, 0};
            pm = r[i].match;
        }
        break;
    }
    case SPLIT_MERGED_NEXT: {
        int pm = 0;
        for (size_t i = k; i-- > 0;) {   /* right to left, then reverse */
            if (r[i].match && !pm && nk) o[nk - 1].s = r[i].s;
            else o[nk++] = (struct rg){r[i].s, r[i].e, 0};
            pm = r[i].match;
        }
        for (size_t i = 0; i < nk / 2; i++) { struct rg t = o[i]; o[i] = o[nk - 1 - i]; o[nk - 1 - i] = t; }
        break;
    }
    case SPLIT_CONTIGUOUS: {
        int pm = 0;
        for (size_t i = 0; i < k; i++) {
            if (r[i].match == pm && nk) o[nk - 1].e = r[i].e;
            else o[nk++] = (struct rg){r[i].s, r[i].e, 0};
            pm = r[i].match;
        }
        break;
    }
    }
    int bad = 0;
    for (size_t i = 0; i < nk && !bad; i++)
        if (o[i].e > o[i].s)
            bad = tpvec_push(out, pc->off + o[i].s, o[i].e - o[i].s, -1, pc->at0 && o[i].s == 0);
    free(r); free(o);
    (void)buf;
    return bad;
}

/* Every char satisfying pred is its own match (HF's char patterns). */
static int char_matches(const char *s, size_t n, int (*pred)(uint32_t), tmatch **out, size_t *nout) {
    size_t cap = 0, cnt = 0;
    tmatch *m = NULL;
    for (size_t i = 0; i < n;) {
        uint32_t cp; int k = u8_dec((const unsigned char *)s + i, &cp);
        if (pred(cp)) {
            if (cnt == cap) {
                size_t nc = cap ? cap * 2 : 64;
                tmatch *nm = realloc(m, nc * sizeof *nm);
                if (!nm) { free(m); return -1; }
                m = nm; cap = nc;
            }
            m[cnt++] = (tmatch){i, i + k};
        }
        i += k;
    }
    *out = m; *nout = cnt;
    return 0;
}

static int is_numeric(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    int c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}
static int is_space(uint32_t cp) { return u8_is_space(cp); }

/* Append the piece with ' ' replaced by repl (and repl prepended if asked) to buf. */
static int metaspace(const tpre *p, tbuf *buf, const tpiece *pc, tpvec *out, lop_err *e) {
    size_t need = pc->len * p->repl_len + p->repl_len + 1;
    if (tbuf_reserve(buf, need)) return lop_fail(e, "out of memory");
    const char *s = buf->p + pc->off;      /* stable: reserved above */
    size_t start = buf->len;
    char *w = buf->p + buf->len;
    int starts_repl = (pc->len && s[0] == ' ') ||
                      (pc->len >= p->repl_len && !memcmp(s, p->repl, p->repl_len));
    int prepend = p->prepend_scheme == PREPEND_ALWAYS ? !starts_repl
                : p->prepend_scheme == PREPEND_FIRST ? !starts_repl && pc->at0 : 0;
    if (prepend) { memcpy(w, p->repl, p->repl_len); w += p->repl_len; }
    for (size_t i = 0; i < pc->len; i++) {
        if (s[i] == ' ') { memcpy(w, p->repl, p->repl_len); w += p->repl_len; }
        else *w++ = s[i];
    }
    buf->len = (size_t)(w - buf->p);
    tpiece np = {start, buf->len - start, -1, pc->at0};
    if (!p->split) return tpvec_push(out, np.off, np.len, -1, np.at0) ? lop_fail(e, "out of memory") : 0;
    tpattern pat = {.lit = (char *)p->repl, .litlen = p->repl_len};
    tmatch *m = NULL; size_t nm = 0;
    if (tpattern_find_all(&pat, buf->p + np.off, np.len, &m, &nm, e)) return -1;
    int bad = split_piece(buf, &np, m, nm, SPLIT_MERGED_NEXT, 0, out);
    free(m);
    return bad ? lop_fail(e, "out of memory") : 0;
}

static int bytelevel(const tpre *p, tbuf *buf, const tpiece *pc0, tpvec *out, lop_err *e) {
    tpiece pc = *pc0;
    if (p->add_prefix_space && !(pc.len && buf->p[pc.off] == ' ')) {
        if (tbuf_reserve(buf, pc.len + 2)) return lop_fail(e, "out of memory");
        size_t st = buf->len;
        buf->p[buf->len++] = ' ';
        memcpy(buf->p + buf->len, buf->p + pc.off, pc.len);
        buf->len += pc.len;
        pc.off = st; pc.len += 1;
    }
    tpvec parts = {0};
    if (p->use_regex) {
        tmatch *m = NULL; size_t nm = 0;
        if (tregex_find_all(g_bytelevel_re, buf->p + pc.off, pc.len, &m, &nm, e)) return -1;
        int bad = split_piece(buf, &pc, m, nm, SPLIT_ISOLATED, 0, &parts);
        free(m);
        if (bad) { tpvec_free(&parts); return lop_fail(e, "out of memory"); }
    } else if (tpvec_push(&parts, pc.off, pc.len, -1, pc.at0)) return lop_fail(e, "out of memory");
    for (size_t i = 0; i < parts.n; i++) {
        tpiece q = parts.v[i];
        if (tbuf_reserve(buf, q.len * 2 + 1)) { tpvec_free(&parts); return lop_fail(e, "out of memory"); }
        const unsigned char *s = (const unsigned char *)buf->p + q.off;
        size_t st = buf->len;
        char *w = buf->p + buf->len;
        for (size_t j = 0; j < q.len; j++) {
            unsigned b = s[j];
            w[0] = bl_utf8[b][0];
            if (bl_len[b] == 2) { w[1] = bl_utf8[b][1]; w += 2; } else w += 1;
        }
        buf->len = (size_t)(w - buf->p);
        if (tpvec_push(out, st, buf->len - st, -1, q.at0)) { tpvec_free(&parts); return lop_fail(e, "out of memory"); }
    }
    tpvec_free(&parts);
    return 0;
}

static int one(const tpre *p, tbuf *buf, const tpiece *pc, tpvec *out, lop_err *e) {
    tmatch *m = NULL; size_t nm = 0;
    int bad;
    switch (p->kind) {
    case PRE_SPLIT:
        if (tpattern_find_all(&p->pat, buf->p + pc->off, pc->len, &m, &nm, e)) return -1;
        bad = split_piece(buf, pc, m, nm, p->behavior, p->invert, out);
        free(m);
        return bad ? lop_fail(e, "out of memory") : 0;
    case PRE_DIGITS:
        if (char_matches(buf->p + pc->off, pc->len, is_numeric, &m, &nm)) return lop_fail(e, "out of memory");
        bad = split_piece(buf, pc, m, nm, p->individual_digits ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS, 0, out);
        free(m);
        return bad ? lop_fail(e, "out of memory") : 0;
    case PRE_WSSPLIT:
        if (char_matches(buf->p + pc->off, pc->len, is_space, &m, &nm)) return lop_fail(e, "out of memory");
        bad = split_piece(buf, pc, m, nm, SPLIT_REMOVED, 0, out);
        free(m);
        return bad ? lop_fail(e, "out of memory") : 0;
    case PRE_WHITESPACE:
        if (tpattern_find_all(&p->pat, buf->p + pc->off, pc->len, &m, &nm, e)) return -1;
        bad = split_piece(buf, pc, m, nm, SPLIT_REMOVED, 1, out);
        free(m);
        return bad ? lop_fail(e, "out of memory") : 0;
    case PRE_METASPACE: return metaspace(p, buf, pc, out, e);
    case PRE_BYTELEVEL: return bytelevel(p, buf, pc, out, e);
    }
    return lop_fail(e, "internal: bad pre-tokenizer");
}

int pre_apply(const tpre *p, tbuf *buf, tpvec *in, tpvec *out, lop_err *e) {
    if (p->kind == PRE_SEQ) {
        tpvec a = {0}, b = {0};
        for (size_t i = 0; i < in->n; i++)
            if (tpvec_push(&a, in->v[i].off, in->v[i].len, in->v[i].id, in->v[i].at0)) goto oom;
        for (int k = 0; k < p->nkids; k++) {
            b.n = 0;
            if (pre_apply(&p->kids[k], buf, &a, &b, e)) { tpvec_free(&a); tpvec_free(&b); return -1; }
            tpvec t = a; a = b; b = t;
        }
        for (size_t i = 0; i < a.n; i++)
            if (tpvec_push(out, a.v[i].off, a.v[i].len, a.v[i].id, a.v[i].at0)) goto oom;
        tpvec_free(&a); tpvec_free(&b);
        return 0;
    oom:
        tpvec_free(&a); tpvec_free(&b);
        return lop_fail(e, "out of memory");
    }
    for (size_t i = 0; i < in->n; i++) {
        if (in->v[i].id >= 0) {
            if (tpvec_push(out, in->v[i].off, in->v[i].len, in->v[i].id, in->v[i].at0)) return lop_fail(e, "out of memory");
            continue;
        }
        tpiece pc = in->v[i];
        if (one(p, buf, &pc, out, e)) return -1;
    }
    return 0;
}

void pre_free(tpre *p) {
    if (!p) return;
    for (int i = 0; i < p->nkids; i++) pre_free(&p->kids[i]);
    free(p->kids);
    free(p->pat.lit);
    tregex_free(p->pat.re);
}
