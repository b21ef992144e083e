/* task_text.c — the task layer's inputs: task files (text_read, FILE.zst lookup), CSV records and
 * JSON lines; small string helpers. */
#include "task_text.h"
#include "task.h"
#include "textio.h"
#include "utf8.h"
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

char *task_strdup(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n + 1);
    return d;
}

char *task_text_take(sbuf *b) {
    char *s = sb_take(b);
    if (!s) abort();
    return s;
}

/* ---- files ---- */

int task_read_file(const char *path, char **buf, size_t *len, lop_err *e) {
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
    /* (NUL bytes are refused by text_read) the harness reads its files as UTF-8 (Python raises on anything else): so do we, rather
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
        f[n++] = task_text_take(&b);
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
