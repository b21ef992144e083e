/* tok_json.c — recursive-descent JSON parser with in-place string unescaping and an arena. */
#include "tok_json.h"
#include "tok_internal.h"
#include <stdlib.h>
#include <string.h>

typedef struct block { struct block *next; size_t used, cap; char data[]; } block;

typedef struct parser {
    char *p, *end, *base;
    block *blocks;
    tj *stack; size_t sn, scap;   /* children being collected, reused by every level */
    lop_err *e;
    int depth;
    const char *const *raw_keys;
} parser;

static void *arena_alloc(parser *ps, size_t n) {
    n = (n + 15) & ~(size_t)15;
    block *b = ps->blocks;
    if (!b || b->used + n > b->cap) {
        size_t cap = n > (1u << 22) ? n : (1u << 22);
        block *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->next = b; nb->used = 0; nb->cap = cap;
        ps->blocks = b = nb;
    }
    void *r = b->data + b->used;
    b->used += n;
    return r;
}

static int fail(parser *ps, const char *what) {
    return lop_fail(ps->e, "JSON: %s at byte %zu", what, (size_t)(ps->p - ps->base));
}

static void ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t')) ps->p++;
}

static int hex4(const char *s, uint32_t *v) {
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i]; x <<= 4;
        if (c >= '0' && c <= '9') x |= c - '0';
        else if (c >= 'a' && c <= 'f') x |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') x |= c - 'A' + 10;
        else return -1;
    }
    *v = x;
    return 0;
}

/* At an opening quote: unescape in place; the result is NUL-terminated where the closing
 * quote (or earlier) was. */
static int str(parser *ps, const char **out, uint32_t *len) {
    char *r = ++ps->p, *w = r, *start = r;
    for (;;) {
        /* fast scan to the next quote or backslash */
        while (r < ps->end && *r != '"' && *r != '\\') {
            if ((unsigned char)*r < 0x20) { ps->p = r; return fail(ps, "control character in string"); }
            *w++ = *r++;
        }
        if (r >= ps->end) { ps->p = r; return fail(ps, "unterminated string"); }
        if (*r == '"') break;
        r++;
        if (r >= ps->end) { ps->p = r; return fail(ps, "bad escape"); }
        switch (*r++) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (ps->end - r < 4 || hex4(r, &cp)) { ps->p = r; return fail(ps, "bad \\u escape"); }
            r += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (ps->end - r < 6 || r[0] != '\\' || r[1] != 'u' || hex4(r + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF) { ps->p = r; return fail(ps, "lone surrogate in \\u escape"); }
                r += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) { ps->p = r; return fail(ps, "lone surrogate in \\u escape"); }
            w += u8_enc(cp, w);
            break;
        }
        default: ps->p = r; return fail(ps, "bad escape");
        }
    }
    *w = 0;                       /* w <= r: the closing quote is at r */
    ps->p = r + 1;
    *out = start;
    *len = (uint32_t)(w - start);
    return 0;
}

static int value(parser *ps, tj *v);

static int is_raw_key(const parser *ps, const char *k, uint32_t kl) {
    if (!ps->raw_keys) return 0;
    for (const char *const *r = ps->raw_keys; *r; r++)
        if (strlen(*r) == kl && !memcmp(*r, k, kl)) return 1;
    return 0;
}

/* Skip one value, keeping its text: brackets are matched, strings stepped over (escapes too). */
static int skip_raw(parser *ps, tj *v) {
    ws(ps);
    char *st = ps->p;
    int depth = 0;
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == '"') {
            ps->p++;
            for (;;) {
                char *q = memchr(ps->p, '"', (size_t)(ps->end - ps->p));
                if (!q) return fail(ps, "unterminated string");
                size_t bs = 0;
                for (char *b = q - 1; b >= ps->p && *b == '\\'; b--) bs++;
                ps->p = q + 1;
                if (!(bs & 1)) break;
            }
            if (!depth) break;
            continue;
        }
        if (c == '[' || c == '{') depth++;
        else if (c == ']' || c == '}') { if (--depth <= 0) { ps->p++; break; } }
        else if (!depth && (c == ',' || c == '}' || c == ']')) break;
        else if (!depth && (c == ' ' || c == '\n' || c == '\r' || c == '\t')) break;
        ps->p++;
    }
    if (depth > 0) return fail(ps, "unexpected end");
    v->type = TJ_RAW; v->s = st; v->n = (uint32_t)(ps->p - st);
    return 0;
}

static int push(parser *ps, tj *v) {
    if (ps->sn == ps->scap) {
        size_t nc = ps->scap ? ps->scap * 2 : 1024;
        tj *ns = realloc(ps->stack, nc * sizeof *ns);
        if (!ns) return lop_fail(ps->e, "out of memory");
        ps->stack = ns; ps->scap = nc;
    }
    ps->stack[ps->sn++] = *v;
    return 0;
}

static int finish(parser *ps, tj *v, size_t base) {
    size_t n = ps->sn - base;
    v->n = (uint32_t)n;
    v->kids = NULL;
    if (n) {
        v->kids = arena_alloc(ps, n * sizeof(tj));
        if (!v->kids) return lop_fail(ps->e, "out of memory");
        memcpy(v->kids, ps->stack + base, n * sizeof(tj));
    }
    ps->sn = base;
    return 0;
}

static int container(parser *ps, tj *v, int obj) {
    if (++ps->depth > 200) return fail(ps, "nesting too deep");
    size_t base = ps->sn;
    ps->p++;
    ws(ps);
    char close = obj ? '}' : ']';
    if (ps->p < ps->end && *ps->p == close) { ps->p++; ps->depth--; return finish(ps, v, base); }
    for (;;) {
        tj kid; memset(&kid, 0, sizeof kid);
        if (obj) {
            ws(ps);
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected a member name");
            if (str(ps, &kid.key, &kid.keylen)) return -1;
            ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail(ps, "expected ':'");
            ps->p++;
        }
        const char *k = kid.key; uint32_t kl = kid.keylen;
        if (obj && is_raw_key(ps, k, kl)) { if (skip_raw(ps, &kid)) return -1; }
        else if (value(ps, &kid)) return -1;
        kid.key = k; kid.keylen = kl;
        if (push(ps, &kid)) return -1;
        ws(ps);
        if (ps->p >= ps->end) return fail(ps, "unexpected end");
        if (*ps->p == ',') { ps->p++; continue; }
        if (*ps->p == close) { ps->p++; break; }
        return fail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    ps->depth--;
    return finish(ps, v, base);
}

static int value(parser *ps, tj *v) {
    ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end");
    char c = *ps->p;
    switch (c) {
    case '{': v->type = TJ_OBJ; return container(ps, v, 1);
    case '[': v->type = TJ_ARR; return container(ps, v, 0);
    case '"': v->type = TJ_STR; return str(ps, &v->s, &v->n);
    case 't':
        if (ps->end - ps->p >= 4 && !memcmp(ps->p, "true", 4)) { v->type = TJ_TRUE; ps->p += 4; return 0; }
        return fail(ps, "bad literal");
    case 'f':
        if (ps->end - ps->p >= 5 && !memcmp(ps->p, "false", 5)) { v->type = TJ_FALSE; ps->p += 5; return 0; }
        return fail(ps, "bad literal");
    case 'n':
        if (ps->end - ps->p >= 4 && !memcmp(ps->p, "null", 4)) { v->type = TJ_NULL; ps->p += 4; return 0; }
        return fail(ps, "bad literal");
    default: {
        if (c != '-' && (c < '0' || c > '9')) return fail(ps, "unexpected character");
        char tmp[64]; size_t k = 0;
        while (ps->p < ps->end && k < sizeof tmp - 1 &&
               (strchr("+-.eE", *ps->p) || (*ps->p >= '0' && *ps->p <= '9')))
            tmp[k++] = *ps->p++;
        tmp[k] = 0;
        char *endp;
        v->num = strtod(tmp, &endp);
        if (*endp) return fail(ps, "bad number");
        v->type = TJ_NUM;
        return 0;
    }
    }
}

int tj_parse(tj_doc *doc, char *buf, size_t len, lop_err *e) { return tj_parse_ex(doc, buf, len, NULL, e); }

int tj_parse_ex(tj_doc *doc, char *buf, size_t len, const char *const *raw_keys, lop_err *e) {
    parser ps = {.p = buf, .end = buf + len, .base = buf, .e = e, .raw_keys = raw_keys};
    doc->root = NULL; doc->blocks = NULL;
    tj *root = arena_alloc(&ps, sizeof *root);
    if (!root) return lop_fail(e, "out of memory");
    memset(root, 0, sizeof *root);
    int r = value(&ps, root);
    if (!r) { ws(&ps); if (ps.p != ps.end) r = fail(&ps, "trailing characters"); }
    free(ps.stack);
    doc->blocks = ps.blocks;
    if (r) { tj_free(doc); return -1; }
    doc->root = root;
    return 0;
}

void tj_free(tj_doc *doc) {
    block *b = doc->blocks;
    while (b) { block *n = b->next; free(b); b = n; }
    doc->blocks = NULL; doc->root = NULL;
}

const tj *tj_get(const tj *obj, const char *key) {
    if (!obj || obj->type != TJ_OBJ) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < obj->n; i++)
        if (obj->kids[i].keylen == kl && !memcmp(obj->kids[i].key, key, kl)) return &obj->kids[i];
    return NULL;
}

const char *tj_str(const tj *obj, const char *key, uint32_t *len) {
    const tj *v = tj_get(obj, key);
    if (!v || v->type != TJ_STR) return NULL;
    if (len) *len = v->n;
    return v->s;
}

int tj_bool(const tj *obj, const char *key, int dflt) {
    const tj *v = tj_get(obj, key);
    if (!v) return dflt;
    if (v->type == TJ_TRUE) return 1;
    if (v->type == TJ_FALSE) return 0;
    return dflt;
}

/* An element of a raw container: scalars and arrays of scalars need no arena (kids are read
 * into the stack and handed over from there); anything deeper is parsed normally. */
static int raw_walk(const tj *raw, int obj, int (*mcb)(void *, const tj *),
                    int (*ecb)(void *, uint32_t, const tj *), void *ctx, lop_err *e) {
    if (raw->type != TJ_RAW) return lop_fail(e, "JSON: internal: not a raw value");
    char *p = (char *)raw->s;
    parser ps = {.p = p, .end = p + raw->n, .base = p, .e = e};
    int r = 0;
    ws(&ps);
    if (ps.p >= ps.end || *ps.p != (obj ? '{' : '[')) return fail(&ps, obj ? "expected an object" : "expected a list");
    ps.p++;
    ws(&ps);
    char close = obj ? '}' : ']';
    if (ps.p < ps.end && *ps.p == close) goto done;
    for (uint32_t i = 0;; i++) {
        tj kid; memset(&kid, 0, sizeof kid);
        const char *k = NULL; uint32_t kl = 0;
        if (obj) {
            ws(&ps);
            if (ps.p >= ps.end || *ps.p != '"') { r = fail(&ps, "expected a member name"); goto done; }
            if ((r = str(&ps, &k, &kl))) goto done;
            ws(&ps);
            if (ps.p >= ps.end || *ps.p != ':') { r = fail(&ps, "expected ':'"); goto done; }
            ps.p++;
        }
        ws(&ps);
        size_t base = ps.sn;
        if (ps.p < ps.end && *ps.p == '[') {
            /* a small list of scalars (a merge pair) */
            ps.p++;
            ws(&ps);
            kid.type = TJ_ARR;
            if (ps.p < ps.end && *ps.p == ']') ps.p++;
            else for (;;) {
                tj el; memset(&el, 0, sizeof el);
                ws(&ps);
                if (ps.p < ps.end && (*ps.p == '[' || *ps.p == '{')) { r = fail(&ps, "nested value in a list of scalars"); goto done; }
                if ((r = value(&ps, &el)) || (r = push(&ps, &el))) goto done;
                ws(&ps);
                if (ps.p < ps.end && *ps.p == ',') { ps.p++; continue; }
                if (ps.p < ps.end && *ps.p == ']') { ps.p++; break; }
                r = fail(&ps, "expected ',' or ']'"); goto done;
            }
            kid.n = (uint32_t)(ps.sn - base);
            kid.kids = ps.stack + base;
        } else if ((r = value(&ps, &kid))) goto done;
        kid.key = k; kid.keylen = kl;
        r = obj ? mcb(ctx, &kid) : ecb(ctx, i, &kid);
        ps.sn = base;
        if (r) goto done;
        ws(&ps);
        if (ps.p >= ps.end) { r = fail(&ps, "unexpected end"); goto done; }
        if (*ps.p == ',') { ps.p++; continue; }
        if (*ps.p == close) break;
        r = fail(&ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        goto done;
    }
done:
    free(ps.stack);
    block *b = ps.blocks;
    while (b) { block *nb = b->next; free(b); b = nb; }
    return r;
}

int tj_raw_members(const tj *raw, int (*cb)(void *ctx, const tj *member), void *ctx, lop_err *e) {
    return raw_walk(raw, 1, cb, NULL, ctx, e);
}
int tj_raw_elements(const tj *raw, int (*cb)(void *ctx, uint32_t i, const tj *el), void *ctx, lop_err *e) {
    return raw_walk(raw, 0, NULL, cb, ctx, e);
}

size_t tj_raw_count(const tj *raw) {
    const char *p = raw->s, *end = raw->s + raw->n;
    size_t commas = 0, any = 0;
    int depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            p++;
            while (p < end && *p != '"') p += *p == '\\' ? 2 : 1;
            p++;
            if (depth == 1) any = 1;
            continue;
        }
        if (c == '[' || c == '{') { depth++; if (depth == 2) any = 1; }
        else if (c == ']' || c == '}') depth--;
        else if (c == ',' && depth == 1) commas++;
        else if (depth == 1 && c != ' ' && c != '\n' && c != '\r' && c != '\t') any = 1;
        p++;
    }
    return any ? commas + 1 : 0;
}
