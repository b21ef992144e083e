/* task_text.c — strings, files, CSV and JSON lines for the task layer; Python's whitespace and
 * length rules, and hellaswag's preprocess. */
#include "task_text.h"
#include "task.h"
#include "utf8.h"
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

/* Small allocations only; running out of memory for a prompt string is not recoverable in any
 * useful way, so it aborts rather than threading an error through every string operation. */
static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) abort();
    return q;
}

char *xstrdup(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n + 1);
    return d;
}

void sb_addn(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        b->s = xrealloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

void sb_add(sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }

char *sb_take(sbuf *b) {
    char *s = b->s ? b->s : xstrdup("");
    b->s = NULL;
    b->n = b->cap = 0;
    return s;
}

/* ---- UTF-8 and Python's whitespace ---- */

/* decode one code point at s (len bytes left); invalid bytes count as one code point each */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *adv) {
    unsigned c = s[0];
    int k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (k == 0 || (size_t)k > len) { *adv = 1; return c; }
    uint32_t cp = k == 1 ? c : k == 2 ? (c & 0x1f) : k == 3 ? (c & 0x0f) : (c & 0x07);
    for (int i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) { *adv = 1; return c; }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    *adv = (size_t)k;
    return cp;
}

/* str.isspace(): bidi class WS/B/S or category Zs */
static int py_isspace_cp(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

int utf8_len(const char *s) {
    size_t len = strlen(s), i = 0, adv;
    int n = 0;
    while (i < len) { utf8_next((const unsigned char *)s + i, len - i, &adv); i += adv; n++; }
    return n;
}

size_t py_trailing_space(const char *s, size_t len) {
    /* walk forward remembering where the last non-space code point ended */
    size_t i = 0, keep = 0, adv;
    while (i < len) {
        uint32_t c = utf8_next((const unsigned char *)s + i, len - i, &adv);
        i += adv;
        if (!py_isspace_cp(c)) keep = i;
    }
    return len - keep;
}

char *py_strip(const char *s) {
    size_t len = strlen(s), i = 0, adv;
    while (i < len) {
        uint32_t c = utf8_next((const unsigned char *)s + i, len - i, &adv);
        if (!py_isspace_cp(c)) break;
        i += adv;
    }
    size_t end = len - py_trailing_space(s + i, len - i);
    sbuf b = {0};
    sb_addn(&b, s + i, end > i ? end - i : 0);
    return sb_take(&b);
}

/* ---- hellaswag ---- */

char *hellaswag_preprocess(const char *text) {
    char *t = py_strip(text);
    sbuf b = {0};
    /* " [title]" -> ". " */
    for (const char *p = t; *p;) {
        if (!strncmp(p, " [title]", 8)) { sb_add(&b, ". "); p += 8; }
        else sb_addn(&b, p++, 1);
    }
    free(t);
    t = sb_take(&b);
    /* re.sub(r"\[.*?\]", "", t): '.' does not match a newline */
    for (const char *p = t; *p;) {
        if (*p == '[') {
            const char *q = p + 1;
            while (*q && *q != ']' && *q != '\n') q++;
            if (*q == ']') { p = q + 1; continue; }
        }
        sb_addn(&b, p++, 1);
    }
    free(t);
    t = sb_take(&b);
    /* str.replace("  ", " "): non-overlapping, left to right */
    for (const char *p = t; *p;) {
        if (p[0] == ' ' && p[1] == ' ') { sb_add(&b, " "); p += 2; }
        else sb_addn(&b, p++, 1);
    }
    free(t);
    return sb_take(&b);
}

char *mmlu_doc_text(const char *question, char *const choices[4]) {
    sbuf b = {0};
    char *q = py_strip(question);
    sb_add(&b, q);
    free(q);
    static const char *letter[4] = {"\nA. ", "\nB. ", "\nC. ", "\nD. "};
    for (int i = 0; i < 4; i++) { sb_add(&b, letter[i]); sb_add(&b, choices[i]); }
    sb_add(&b, "\nAnswer:");
    return sb_take(&b);
}

/* ---- files ---- */

static int read_raw(const char *path, char **buf, size_t *len, lop_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return lop_fail(e, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        return lop_fail(e, "%s: not a regular file", path);
    }
    char *b = malloc((size_t)st.st_size + 1);
    if (!b) { fclose(f); return lop_fail(e, "%s: out of memory", path); }
    size_t n = fread(b, 1, (size_t)st.st_size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n != (size_t)st.st_size) { free(b); return lop_fail(e, "%s: read error", path); }
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

static int unzstd(const char *path, char **buf, size_t *len, lop_err *e) {
    char *z;
    size_t zn;
    if (read_raw(path, &z, &zn, e)) return -1;
    ZSTD_DStream *ds = ZSTD_createDStream();
    ZSTD_initDStream(ds);
    sbuf out = {0};
    ZSTD_inBuffer in = {z, zn, 0};
    char tmp[1 << 16];
    size_t ret = 1;
    while (in.pos < in.size) {
        ZSTD_outBuffer ob = {tmp, sizeof tmp, 0};
        ret = ZSTD_decompressStream(ds, &ob, &in);
        if (ZSTD_isError(ret)) break;
        sb_addn(&out, tmp, ob.pos);
    }
    /* flush what the decoder still holds */
    while (!ZSTD_isError(ret) && ret != 0) {
        ZSTD_outBuffer ob = {tmp, sizeof tmp, 0};
        ret = ZSTD_decompressStream(ds, &ob, &in);
        if (ZSTD_isError(ret) || ob.pos == 0) break;
        sb_addn(&out, tmp, ob.pos);
    }
    ZSTD_freeDStream(ds);
    free(z);
    if (ZSTD_isError(ret) || ret != 0) {
        free(out.s);
        return lop_fail(e, "%s: bad or truncated zstd data%s%s", path,
                        ZSTD_isError(ret) ? ": " : "", ZSTD_isError(ret) ? ZSTD_getErrorName(ret) : "");
    }
    *len = out.n;
    *buf = sb_take(&out);
    return 0;
}

int text_read_file(const char *path, char **buf, size_t *len, lop_err *e) {
    size_t pl = strlen(path);
    int rc;
    if (pl > 4 && !strcmp(path + pl - 4, ".zst")) rc = unzstd(path, buf, len, e);
    else if (access(path, F_OK) != 0) {
        char *z = malloc(pl + 5);
        if (!z) return lop_fail(e, "out of memory");
        memcpy(z, path, pl);
        memcpy(z + pl, ".zst", 5);
        if (access(z, F_OK) == 0) rc = unzstd(z, buf, len, e);
        else rc = lop_fail(e, "%s: %s", path, strerror(ENOENT));
        free(z);
    } else rc = read_raw(path, buf, len, e);
    if (rc) return -1;
    if (*len == 0) { free(*buf); return lop_fail(e, "%s: empty file", path); }
    if (memchr(*buf, 0, *len)) { free(*buf); return lop_fail(e, "%s: binary data (NUL byte) in a text file", path); }
    /* the harness reads its files as UTF-8 (Python raises on anything else): so do we, rather
     * than guess code points (acc_norm's lengths) for bytes Python would never have read */
    size_t ok = utf8_valid_prefix(*buf, *len);
    if (ok != *len) { free(*buf); return lop_fail(e, "%s: invalid UTF-8 at byte offset %zu", path, ok); }
    return 0;
}

/* ---- CSV ---- */

int csv_record(const char **pp, const char *end, char ***fields, lop_err *e) {
    const char *p = *pp;
    if (p >= end) return 0;
    char **f = NULL;
    int n = 0;
    sbuf b = {0};
    for (;;) {
        /* one field */
        if (p < end && *p == '"') {
            p++;
            for (;;) {
                if (p >= end) { free(b.s); csv_free(f, n); return lop_fail(e, "CSV: unterminated quoted field"); }
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') { sb_addn(&b, "\"", 1); p += 2; continue; }
                    p++;
                    break;
                }
                sb_addn(&b, p++, 1);
            }
            /* text after the closing quote up to the separator is kept, as Python's csv does */
            while (p < end && *p != ',' && *p != '\n' && *p != '\r') sb_addn(&b, p++, 1);
        } else {
            while (p < end && *p != ',' && *p != '\n' && *p != '\r') sb_addn(&b, p++, 1);
        }
        f = xrealloc(f, sizeof(char *) * (size_t)(n + 1));
        f[n++] = sb_take(&b);
        if (p < end && *p == ',') { p++; continue; }
        if (p < end && *p == '\r') p++;
        if (p < end && *p == '\n') p++;
        break;
    }
    *pp = p;
    *fields = f;
    return n;
}

void csv_free(char **fields, int n) {
    for (int i = 0; i < n; i++) free(fields[i]);
    free(fields);
}

/* ---- JSON lines ---- */

cJSON *jsonl_next(const char **pp, const char *end, int *lineno, int *bad, const char *path,
                  lop_err *e) {
    *bad = 0;
    while (*pp < end) {
        const char *p = *pp, *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        *pp = nl ? nl + 1 : end;
        (*lineno)++;
        const char *q = p;
        while (q < le && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q == le) continue;
        cJSON *o = cJSON_ParseWithLength(p, (size_t)(le - p));
        if (!o || !cJSON_IsObject(o)) {
            cJSON_Delete(o);
            *bad = 1;
            lop_fail(e, "%s:%d: not a JSON object", path, *lineno);
            return NULL;
        }
        return o;
    }
    return NULL;
}
