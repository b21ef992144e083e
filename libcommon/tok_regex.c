/* tok_regex.c — Split/Replace patterns through PCRE2 (UTF + UCP + JIT), made to behave like the
 * Oniguruma regexes Hugging Face tokenizers compiles:
 *  - onig's \s is the Unicode White_Space property; PCRE2's also takes U+180E, so \s and \S are
 *    rewritten to explicit classes;
 *  - onig's \h is a hex digit (PCRE2: horizontal space); \w is letters, marks, Nd and Pc;
 *  - matches are iterated like onig's find_iter: an empty match right where the previous match
 *    ended is skipped by advancing one character.
 * Patterns come from strangers' tokenizer.json files, so every match runs under explicit limits
 * (below), whatever PCRE2's build-time defaults are: a pattern that backtracks catastrophically,
 * such as (a+)+$ on "aaaa...!", fails with "regex match failed: match limit exceeded" within a
 * fraction of a second instead of running for minutes or taking gigabytes. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tok_internal.h"
#include "tok_json.h"
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

struct tregex { pcre2_code *code; int jit; };

#define RX_MATCH_LIMIT 10000000u     /* backtracking steps of one match attempt (PCRE2's default) */
#define RX_DEPTH_LIMIT 1000000u      /* nested backtracking points (interpreter; default 10M) */
#define RX_HEAP_LIMIT (256u << 10)   /* KiB of backtracking memory (interpreter; default 20 GB) */
#define RX_JIT_STACK_MAX (256u << 20) /* bytes of JIT stack, taken only when a piece needs it */

#define WS_LIST "\\t\\n\\x0B\\f\\r\\x20\\x85\\xA0\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define WORD_LIST "\\p{L}\\p{M}\\p{Nd}\\p{Pc}"
#define HEX_LIST "0-9a-fA-F"

/* Rewrite the onig-specific escapes (see above) into PCRE2 syntax. */
static char *translate(const char *p, size_t n, size_t *outlen) {
    tbuf b = {0};
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            const char *list = d == 's' || d == 'S' ? WS_LIST : d == 'w' || d == 'W' ? WORD_LIST
                             : d == 'h' || d == 'H' ? HEX_LIST : NULL;
            int neg = d == 'S' || d == 'W' || d == 'H';
            if (list && !(in_class && neg)) {
                if (in_class) { if (tbuf_put(&b, list, strlen(list))) goto oom; }
                else {
                    if (tbuf_put(&b, neg ? "[^" : "[", neg ? 2 : 1) || tbuf_put(&b, list, strlen(list)) ||
                        tbuf_put(&b, "]", 1)) goto oom;
                }
                i++;
                continue;
            }
            if (tbuf_put(&b, p + i, 2)) goto oom;
            i++;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            if (tbuf_put(&b, "[", 1)) goto oom;
            /* a leading ^ and a leading ] are part of the class syntax */
            if (i + 1 < n && p[i + 1] == '^') { if (tbuf_put(&b, "^", 1)) goto oom; i++; }
            if (i + 1 < n && p[i + 1] == ']') { if (tbuf_put(&b, "]", 1)) goto oom; i++; }
            continue;
        }
        if (c == '[' && in_class && i + 1 < n && p[i + 1] == ':') {
            /* POSIX class [:alpha:] inside a class: copy through its closing ":]" */
            const char *end = strstr(p + i, ":]");
            size_t k = end ? (size_t)(end - (p + i)) + 2 : 1;
            if (tbuf_put(&b, p + i, k)) goto oom;
            i += k - 1;
            continue;
        }
        if (c == ']' && in_class) in_class = 0;
        if (tbuf_put(&b, &c, 1)) goto oom;
    }
    if (tbuf_put(&b, "", 1)) goto oom;
    *outlen = b.len - 1;
    return b.p;
oom:
    tbuf_free(&b);
    return NULL;
}

tregex *tregex_compile(const char *pattern, size_t len, lop_err *e) {
    size_t tl;
    char *tp = translate(pattern, len, &tl);
    if (!tp) { lop_fail(e, "out of memory"); return NULL; }
    int err; PCRE2_SIZE eoff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)tp, tl, PCRE2_UTF | PCRE2_UCP, &err, &eoff, NULL);
    free(tp);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        lop_fail(e, "regex '%.*s': %s", (int)(len > 200 ? 200 : len), pattern, (char *)msg);
        return NULL;
    }
    tregex *r = calloc(1, sizeof *r);
    if (!r) { pcre2_code_free(code); lop_fail(e, "out of memory"); return NULL; }
    r->code = code;
    r->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    return r;
}

void tregex_free(tregex *r) {
    if (!r) return;
    pcre2_code_free(r->code);
    free(r);
}

static int push_match(tmatch **out, size_t *n, size_t *cap, size_t s, size_t e) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        tmatch *nm = realloc(*out, nc * sizeof *nm);
        if (!nm) return -1;
        *out = nm; *cap = nc;
    }
    (*out)[(*n)++] = (tmatch){s, e};
    return 0;
}

void rx_scratch_free(rx_scratch *x) {
    pcre2_match_data_free(x->md);
    pcre2_match_context_free(x->mc);
    pcre2_jit_stack_free(x->js);
    x->md = x->mc = x->js = NULL;
}

/* the match context with the limits above (made on first use, one per scratch) */
static int rx_context(rx_scratch *x) {
    if (x->mc) return 0;
    if (!(x->mc = pcre2_match_context_create(NULL))) return -1;
    pcre2_set_match_limit(x->mc, RX_MATCH_LIMIT);
    pcre2_set_depth_limit(x->mc, RX_DEPTH_LIMIT);
    pcre2_set_heap_limit(x->mc, RX_HEAP_LIMIT);
    return 0;
}

int rx_next(const tregex *r, rx_scratch *x, const char *s, size_t n, size_t *pos, size_t *last,
            size_t *ms, size_t *me, lop_err *e) {
    if (!x->md && !(x->md = pcre2_match_data_create(1, NULL))) return lop_fail(e, "out of memory");
    if (rx_context(x)) return lop_fail(e, "out of memory");
    while (*pos <= n) {
        int rc = r->jit
            ? pcre2_jit_match(r->code, (PCRE2_SPTR)s, n, *pos, 0, x->md, x->mc)
            : pcre2_match(r->code, (PCRE2_SPTR)s, n, *pos, PCRE2_NO_UTF_CHECK, x->md, x->mc);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !x->js) {
            /* a long piece with deep backtracking: a bigger JIT stack, then retry */
            x->js = pcre2_jit_stack_create(64 * 1024, RX_JIT_STACK_MAX, NULL);
            if (!x->js) return lop_fail(e, "out of memory");
            pcre2_jit_stack_assign(x->mc, NULL, x->js);
            continue;
        }
        if (rc == PCRE2_ERROR_NOMATCH) return 0;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return lop_fail(e, "regex match failed: %s", (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(x->md);
        size_t a = ov[0], b = ov[1];
        if (a == b && *last == b) {          /* empty match where the last one ended */
            if (*pos >= n) return 0;
            *pos += (size_t)u8_len((unsigned char)s[*pos]);
            continue;
        }
        *ms = a; *me = b;
        *pos = b; *last = b;
        if (a == b && b >= n) *pos = n + 1;  /* an empty match at the very end is the last */
        return 1;
    }
    return 0;
}

int tpattern_next(const tpattern *p, rx_scratch *x, const char *s, size_t n, size_t *pos, size_t *last,
                  size_t *ms, size_t *me, lop_err *e) {
    if (p->re) return rx_next(p->re, x, s, n, pos, last, ms, me, e);
    (void)last; (void)e;
    if (!p->litlen || *pos + p->litlen > n) return 0;
    const char *f = memmem(s + *pos, n - *pos, p->lit, p->litlen);
    if (!f) return 0;
    *ms = (size_t)(f - s); *me = *ms + p->litlen;
    *pos = *me;
    return 1;
}

int tpattern_find_all(const tpattern *p, const char *s, size_t n, tmatch **out, size_t *nout, lop_err *e) {
    size_t cap = 0, cnt = 0, pos = 0, last = SIZE_MAX, ms, me;
    tmatch *m = NULL;
    rx_scratch x = {0};
    int r;
    while ((r = tpattern_next(p, &x, s, n, &pos, &last, &ms, &me, e)) == 1)
        if (push_match(&m, &cnt, &cap, ms, me)) { r = lop_fail(e, "out of memory"); break; }
    rx_scratch_free(&x);
    if (r < 0) { free(m); return -1; }
    *out = m; *nout = cnt;
    return 0;
}

/* ---- parsing: a pattern of tokenizer.json ---- */

/* {"String": "..."} or {"Regex": "..."} */
int tok_pattern_parse(const tj *o, tpattern *p, const char *where, lop_err *e) {
    memset(p, 0, sizeof *p);
    uint32_t n;
    const char *s;
    if (o && (s = tj_str(o, "String", &n))) {
        p->lit = tok_dupn(s, n); p->litlen = n;
        return p->lit ? 0 : lop_fail(e, "out of memory");
    }
    if (o && (s = tj_str(o, "Regex", &n))) {
        p->re = tregex_compile(s, n, e);
        return p->re ? 0 : lop_wrap(e, "%s", where);
    }
    return lop_fail(e, "%s: pattern must be {\"String\": ...} or {\"Regex\": ...}", where);
}
