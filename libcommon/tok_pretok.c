/* tok_pretok.c — pre-tokenizers: Split (regex or literal, five delimiter behaviours, invert),
 * ByteLevel (GPT-2 byte-to-char alphabet), Metaspace, Digits, Whitespace, WhitespaceSplit,
 * Sequence. Each turns a list of pieces into a finer list; empty pieces are dropped, as HF's
 * PreTokenizedString::split does. */
#include "tok_internal.h"
#include <pthread.h>
#include "tok_json.h"
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

const tregex *tok_bytelevel_re;

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

/* ---- the splitter: matches -> pieces under one of HF's five delimiter behaviours ----
 * Matches arrive left to right; the alternating (range, is_match) list is folded as HF's
 * SplitDelimiterBehavior does, with one piece of lookahead, and each finished piece goes to
 * the next stage at once. */
typedef struct splitter {
    tok_ctx *c; int stage; size_t base; int at0;
    int behavior, invert;
    int has_pend; size_t ps, pe;        /* piece waiting for a possible merge */
    int prev_match;
} splitter;

static int emit(splitter *sp, size_t s, size_t e) {
    if (e <= s) return 0;               /* HF drops empty pieces */
    return pre_stream(sp->c, sp->stage + 1, sp->base + s, e - s, sp->at0 && s == 0);
}

static int element(splitter *sp, size_t s, size_t e, int m) {
    if (sp->invert) m = !m;
    int r = 0;
    switch (sp->behavior) {
    case SPLIT_REMOVED: if (!m) r = emit(sp, s, e); break;
    case SPLIT_ISOLATED: r = emit(sp, s, e); break;
    case SPLIT_MERGED_PREV:
        if (m && !sp->prev_match && sp->has_pend) sp->pe = e;
        else { if (sp->has_pend) r = emit(sp, sp->ps, sp->pe); sp->has_pend = 1; sp->ps = s; sp->pe = e; }
        break;
    case SPLIT_CONTIGUOUS:
        if (m == sp->prev_match && sp->has_pend) sp->pe = e;
        else { if (sp->has_pend) r = emit(sp, sp->ps, sp->pe); sp->has_pend = 1; sp->ps = s; sp->pe = e; }
        break;
    case SPLIT_MERGED_NEXT:             /* a delimiter joins the next piece if that is no delimiter */
        if (sp->has_pend) {
            if (!m) { r = emit(sp, sp->ps, e); sp->has_pend = 0; }
            else { r = emit(sp, sp->ps, sp->pe); sp->ps = s; sp->pe = e; }
        } else if (m) { sp->has_pend = 1; sp->ps = s; sp->pe = e; }
        else r = emit(sp, s, e);
        break;
    }
    sp->prev_match = m;
    return r;
}

static int finish(splitter *sp) {
    int r = sp->has_pend ? emit(sp, sp->ps, sp->pe) : 0;
    sp->has_pend = 0;
    return r;
}

/* Where the matches of the current stage come from. */
typedef struct msrc {
    int kind;                            /* 0 pattern, 1 numeric chars, 2 space chars */
    const tpattern *pat; const tregex *re;
    size_t pos, last;
} msrc;

static int is_numeric(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    int c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

static int next_match(tok_ctx *c, msrc *m, size_t off, size_t n, size_t *ms, size_t *me) {
    const char *s = c->buf.p + off;      /* re-read: buf may have moved */
    if (m->kind == 0) {
        if (m->re) return rx_next(m->re, &c->rx, s, n, &m->pos, &m->last, ms, me, c->e);
        return tpattern_next(m->pat, &c->rx, s, n, &m->pos, &m->last, ms, me, c->e);
    }
    /* every char satisfying the predicate is its own match (HF's char patterns) */
    while (m->pos < n) {
        uint32_t cp; int k = u8_dec((const unsigned char *)s + m->pos, &cp);
        size_t at = m->pos;
        m->pos += (size_t)k;
        if (m->kind == 1 ? is_numeric(cp) : u8_is_space(cp)) { *ms = at; *me = at + (size_t)k; return 1; }
    }
    return 0;
}

static int split_stream(tok_ctx *c, int stage, size_t off, size_t n, int at0, msrc *m, int behavior, int invert) {
    splitter sp = {.c = c, .stage = stage, .base = off, .at0 = at0, .behavior = behavior, .invert = invert};
    m->pos = 0; m->last = SIZE_MAX;
    size_t prev = 0, ms, me;
    int r;
    while ((r = next_match(c, m, off, n, &ms, &me)) == 1) {
        if (prev != ms && element(&sp, prev, ms, 0)) return -1;
        if (element(&sp, ms, me, 1)) return -1;
        prev = me;
    }
    if (r < 0) return -1;
    if (prev != n && element(&sp, prev, n, 0)) return -1;
    return finish(&sp);
}

/* Append buf[off..off+n) with ' ' -> repl (and repl first, per the prepend scheme). */
static int metaspace(tok_ctx *c, const tpre *p, int stage, size_t off, size_t n, int at0) {
    tbuf *buf = &c->buf;
    if (tbuf_reserve(buf, n * p->repl_len + p->repl_len + 1)) return lop_fail(c->e, "out of memory");
    const char *s = buf->p + off;
    size_t start = buf->len;
    char *w = buf->p + buf->len;
    int starts_repl = (n && s[0] == ' ') || (n >= p->repl_len && !memcmp(s, p->repl, p->repl_len));
    int prepend = p->prepend_scheme == PREPEND_ALWAYS ? !starts_repl
                : p->prepend_scheme == PREPEND_FIRST ? !starts_repl && at0 : 0;
    if (prepend) { memcpy(w, p->repl, p->repl_len); w += p->repl_len; }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') { memcpy(w, p->repl, p->repl_len); w += p->repl_len; }
        else *w++ = s[i];
    }
    buf->len = (size_t)(w - buf->p);
    size_t nl = buf->len - start;
    if (!p->split) return pre_stream(c, stage + 1, start, nl, at0);
    tpattern pat = {.lit = (char *)p->repl, .litlen = p->repl_len};
    msrc m = {.kind = 0, .pat = &pat};
    return split_stream(c, stage, start, nl, at0, &m, SPLIT_MERGED_NEXT, 0);
}

/* ByteLevel: optional prefix space, optional GPT-2 split, then bytes -> the byte alphabet. The
 * mapping is done as the last step of this stage, piece by piece (bl_map). */
static int bl_map(tok_ctx *c, int stage, size_t off, size_t n, int at0) {
    tbuf *buf = &c->buf;
    if (tbuf_reserve(buf, n * 2 + 1)) return lop_fail(c->e, "out of memory");
    const unsigned char *s = (const unsigned char *)buf->p + off;
    size_t st = buf->len;
    char *w = buf->p + buf->len;
    for (size_t j = 0; j < n; j++) {
        unsigned b = s[j];
        w[0] = bl_utf8[b][0];
        if (bl_len[b] == 2) { w[1] = bl_utf8[b][1]; w += 2; } else w += 1;
    }
    buf->len = (size_t)(w - buf->p);
    int r = pre_stream(c, stage + 1, st, buf->len - st, at0);
    buf->len = st;
    return r;
}

static int bytelevel(tok_ctx *c, const tpre *p, int stage, size_t off, size_t n, int at0) {
    tbuf *buf = &c->buf;
    if (p->add_prefix_space && !(n && buf->p[off] == ' ')) {
        if (tbuf_reserve(buf, n + 2)) return lop_fail(c->e, "out of memory");
        size_t st = buf->len;
        buf->p[buf->len++] = ' ';
        memcpy(buf->p + buf->len, buf->p + off, n);
        buf->len += n;
        off = st; n += 1;
    }
    if (!p->use_regex) return bl_map(c, stage, off, n, at0);
    /* GPT-2 split (Isolated): each piece is mapped by a pseudo-stage that calls bl_map */
    size_t pos = 0, last = SIZE_MAX, prev = 0, ms, me;
    int r;
    while ((r = rx_next(tok_bytelevel_re, &c->rx, c->buf.p + off, n, &pos, &last, &ms, &me, c->e)) == 1) {
        if (prev != ms && bl_map(c, stage, off + prev, ms - prev, at0 && prev == 0)) return -1;
        if (me > ms && bl_map(c, stage, off + ms, me - ms, at0 && ms == 0)) return -1;
        prev = me;
    }
    if (r < 0) return -1;
    if (prev < n) return bl_map(c, stage, off + prev, n - prev, at0 && prev == 0);
    return 0;
}

int pre_stream(tok_ctx *c, int stage, size_t off, size_t len, int at0) {
    const lop_tokenizer *t = c->t;
    if (stage >= t->nstages) return bpe_word(t, c->buf.p + off, len, &c->out, c->sc, c->e);
    const tpre *p = t->stages[stage];
    size_t mark = c->buf.len;             /* what this stage appends is dropped when done */
    int r;
    msrc m = {0};
    switch (p->kind) {
    case PRE_SPLIT: m.pat = &p->pat; m.re = p->pat.re; r = split_stream(c, stage, off, len, at0, &m, p->behavior, p->invert); break;
    case PRE_WHITESPACE: m.re = p->pat.re; r = split_stream(c, stage, off, len, at0, &m, SPLIT_REMOVED, 1); break;
    case PRE_DIGITS: m.kind = 1; r = split_stream(c, stage, off, len, at0, &m, p->individual_digits ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS, 0); break;
    case PRE_WSSPLIT: m.kind = 2; r = split_stream(c, stage, off, len, at0, &m, SPLIT_REMOVED, 0); break;
    case PRE_METASPACE: r = metaspace(c, p, stage, off, len, at0); break;
    case PRE_BYTELEVEL: r = bytelevel(c, p, stage, off, len, at0); break;
    default: r = lop_fail(c->e, "internal: bad pre-tokenizer");
    }
    c->buf.len = mark;
    return r;
}

void pre_free(tpre *p) {
    if (!p) return;
    for (int i = 0; i < p->nkids; i++) pre_free(&p->kids[i]);
    free(p->kids);
    free(p->pat.lit);
    tregex_free(p->pat.re);
}

/* ---- parsing: tokenizer.json's "pre_tokenizer", and its stages ---- */

int tok_prepend_scheme_parse(const tj *o, int *scheme) {
    const char *ps = tj_str(o, "prepend_scheme", NULL);
    if (ps) {
        if (!strcmp(ps, "always")) *scheme = PREPEND_ALWAYS;
        else if (!strcmp(ps, "first")) *scheme = PREPEND_FIRST;
        else if (!strcmp(ps, "never")) *scheme = PREPEND_NEVER;
        else return -1;
        return 0;
    }
    *scheme = tj_bool(o, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
    return 0;
}


static pthread_once_t bl_once = PTHREAD_ONCE_INIT;
static void bl_init(void) {
    tok_bytelevel_init();
    static const char re[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    tok_bytelevel_re = tregex_compile(re, sizeof re - 1, NULL);
}

void tok_bytelevel_once(void) { pthread_once(&bl_once, bl_init); }

int tok_pre_parse(const tj *o, tpre *p, lop_err *e) {
    memset(p, 0, sizeof *p);
    const char *ty = tok_type_of(o);
    if (!strcmp(ty, "Sequence")) {
        const tj *l = tj_get(o, "pretokenizers");
        p->kind = PRE_SEQ;
        if (!l || l->type != TJ_ARR) return lop_fail(e, "pre_tokenizer Sequence without a list");
        p->kids = calloc(l->n ? l->n : 1, sizeof *p->kids);
        if (!p->kids) return lop_fail(e, "out of memory");
        for (uint32_t i = 0; i < l->n; i++) {
            p->nkids++;
            if (tok_pre_parse(&l->kids[i], &p->kids[i], e)) return -1;
        }
        return 0;
    }
    if (!strcmp(ty, "Split")) {
        p->kind = PRE_SPLIT;
        const char *b = tj_str(o, "behavior", NULL);
        if (!b) return lop_fail(e, "pre_tokenizer Split without behavior");
        if (!strcmp(b, "Removed")) p->behavior = SPLIT_REMOVED;
        else if (!strcmp(b, "Isolated")) p->behavior = SPLIT_ISOLATED;
        else if (!strcmp(b, "MergedWithPrevious")) p->behavior = SPLIT_MERGED_PREV;
        else if (!strcmp(b, "MergedWithNext")) p->behavior = SPLIT_MERGED_NEXT;
        else if (!strcmp(b, "Contiguous")) p->behavior = SPLIT_CONTIGUOUS;
        else return lop_fail(e, "unsupported Split behavior '%s'", b);
        p->invert = tj_bool(o, "invert", 0);
        return tok_pattern_parse(tj_get(o, "pattern"), &p->pat, "pre_tokenizer Split", e);
    }
    if (!strcmp(ty, "ByteLevel")) {
        p->kind = PRE_BYTELEVEL;
        p->add_prefix_space = tj_bool(o, "add_prefix_space", 1);
        p->use_regex = tj_bool(o, "use_regex", 1);
        tok_bytelevel_once();
        if (!tok_bytelevel_re) return lop_fail(e, "ByteLevel regex failed to compile");
        return 0;
    }
    if (!strcmp(ty, "Metaspace")) {
        p->kind = PRE_METASPACE;
        uint32_t n;
        const char *r = tj_str(o, "replacement", &n);
        if (!r || !n || n > 4) return lop_fail(e, "pre_tokenizer Metaspace: bad replacement");
        memcpy(p->repl, r, n); p->repl_len = n;
        if (tok_prepend_scheme_parse(o, &p->prepend_scheme)) return lop_fail(e, "pre_tokenizer Metaspace: bad prepend_scheme");
        p->split = tj_bool(o, "split", 1);
        return 0;
    }
    if (!strcmp(ty, "Digits")) { p->kind = PRE_DIGITS; p->individual_digits = tj_bool(o, "individual_digits", 0); return 0; }
    if (!strcmp(ty, "WhitespaceSplit")) { p->kind = PRE_WSSPLIT; return 0; }
    if (!strcmp(ty, "Whitespace")) {
        p->kind = PRE_WHITESPACE;
        static const char re[] = "\\w+|[^\\w\\s]+";
        p->pat.re = tregex_compile(re, sizeof re - 1, e);
        return p->pat.re ? 0 : -1;
    }
    return lop_fail(e, "unsupported pre_tokenizer '%s'", ty);
}


/* the pre-tokenizer tree as a list of stages (a Sequence runs its kids in order) */
static int count_stages(const tpre *p) {
    if (p->kind != PRE_SEQ) return 1;
    int n = 0;
    for (int i = 0; i < p->nkids; i++) n += count_stages(&p->kids[i]);
    return n;
}
static void fill_stages(const tpre *p, const tpre **out, int *k) {
    if (p->kind != PRE_SEQ) { out[(*k)++] = p; return; }
    for (int i = 0; i < p->nkids; i++) fill_stages(&p->kids[i], out, k);
}
int tok_pre_flatten(lop_tokenizer *t, lop_err *e) {
    free(t->stages); t->stages = NULL; t->nstages = 0;
    if (!t->pre) return 0;
    int n = count_stages(t->pre), k = 0;
    t->stages = malloc((size_t)(n ? n : 1) * sizeof *t->stages);
    if (!t->stages) return lop_fail(e, "out of memory");
    fill_stages(t->pre, t->stages, &k);
    t->nstages = k;
    return 0;
}

int tok_pre_has_bytelevel(const tpre *p) {
    if (!p) return 0;
    if (p->kind == PRE_BYTELEVEL) return 1;
    for (int i = 0; i < p->nkids; i++) if (tok_pre_has_bytelevel(&p->kids[i])) return 1;
    return 0;
}
