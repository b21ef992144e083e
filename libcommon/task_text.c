/* task_text.c — strings, files, CSV and JSON lines for the task layer; Python's whitespace and
 * length rules, and hellaswag's preprocess. */
#include "task_text.h"
#include "task.h"
#include "textio.h"
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

char *text_take(sbuf *b) {
    char *s = sb_take(b);
    if (!s) abort();
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
    sb_put(&b, s + i, end > i ? end - i : 0);
    return text_take(&b);
}

/* ---- hellaswag ---- */

char *hellaswag_preprocess(const char *text) {
    char *t = py_strip(text);
    sbuf b = {0};
    /* " [title]" -> ". " */
    for (const char *p = t; *p;) {
        if (!strncmp(p, " [title]", 8)) { sb_puts(&b, ". "); p += 8; }
        else sb_put(&b, p++, 1);
    }
    free(t);
    t = text_take(&b);
    /* re.sub(r"\[.*?\]", "", t): '.' does not match a newline */
    for (const char *p = t; *p;) {
        if (*p == '[') {
            const char *q = p + 1;
            while (*q && *q != ']' && *q != '\n') q++;
            if (*q == ']') { p = q + 1; continue; }
        }
        sb_put(&b, p++, 1);
    }
    free(t);
    t = text_take(&b);
    /* str.replace("  ", " "): non-overlapping, left to right */
    for (const char *p = t; *p;) {
        if (p[0] == ' ' && p[1] == ' ') { sb_puts(&b, " "); p += 2; }
        else sb_put(&b, p++, 1);
    }
    free(t);
    return text_take(&b);
}

char *mmlu_doc_text(const char *question, char *const choices[4]) {
    sbuf b = {0};
    char *q = py_strip(question);
    sb_puts(&b, q);
    free(q);
    static const char *letter[4] = {"\nA. ", "\nB. ", "\nC. ", "\nD. "};
    for (int i = 0; i < 4; i++) { sb_puts(&b, letter[i]); sb_puts(&b, choices[i]); }
    sb_puts(&b, "\nAnswer:");
    return text_take(&b);
}

/* ---- files ---- */

int text_read_file(const char *path, char **buf, size_t *len, lop_err *e) {
    /* a data folder may hold FILE.zst only; zstd or not is decided by the bytes (textio.c) */
    char *z = NULL;
    if (strcmp(path, "-") && access(path, F_OK) != 0) {
        size_t pl = strlen(path);
        if ((z = malloc(pl + 5)) == NULL) return lop_fail(e, "out of memory");
        memcpy(z, path, pl);
        memcpy(z + pl, ".zst", 5);
        if (access(z, F_OK) != 0) { free(z); return lop_fail(e, "%s: %s", path, strerror(ENOENT)); }
    }
    int rc = text_read(z ? z : path, buf, len, e);
    free(z);
    if (rc) return -1;
    if (*len == 0) { free(*buf); return lop_fail(e, "%s: empty file", path); }
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
                    if (p + 1 < end && p[1] == '"') { sb_put(&b, "\"", 1); p += 2; continue; }
                    p++;
                    break;
                }
                sb_put(&b, p++, 1);
            }
            /* text after the closing quote up to the separator is kept, as Python's csv does */
            while (p < end && *p != ',' && *p != '\n' && *p != '\r') sb_put(&b, p++, 1);
        } else {
            while (p < end && *p != ',' && *p != '\n' && *p != '\r') sb_put(&b, p++, 1);
        }
        f = xrealloc(f, sizeof(char *) * (size_t)(n + 1));
        f[n++] = text_take(&b);
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
