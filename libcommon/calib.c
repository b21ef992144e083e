/* calib.c — reading calibration files and cutting token streams into samples (see calib.h).
 * The tokenizing step is in calib_load.c, so this file links without the tokenizer. */
#include "calib.h"
#include "textio.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lop_calib_opts calib_default_opts(void) {
    lop_calib_opts o = {CALIB_AUTO, 2048, 0, 0, 0, NULL};
    return o;
}

/* ---- whole files ---- */

int calib_read_file(const char *path, char **buf, size_t *len, lop_err *e) {
    return text_read(path, buf, len, e);
}

static int ends_with(const char *s, size_t n, const char *suf) {
    size_t k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

int calib_is_jsonl(const char *path, const char *buf) {
    size_t n = strlen(path);
    if (ends_with(path, n, ".zst")) n -= 4;
    if ((n >= 6 && !strncmp(path + n - 6, ".jsonl", 6)) || (n >= 5 && !strncmp(path + n - 5, ".json", 5)))
        return 1;
    while (*buf == ' ' || *buf == '\t' || *buf == '\r' || *buf == '\n') buf++;
    return *buf == '{';
}

/* ---- samples of a file ---- */

static int texts_push(lop_texts *t, int *cap, const char *s, size_t n, lop_err *e) {
    if (t->n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        char **nt = realloc(t->text, nc * sizeof *nt);
        if (!nt) return lop_fail(e, "out of memory");
        t->text = nt;
        size_t *nl = realloc(t->len, nc * sizeof *nl);
        if (!nl) return lop_fail(e, "out of memory");
        t->len = nl;
        *cap = nc;
    }
    char *c = malloc(n + 1);
    if (!c) return lop_fail(e, "out of memory");
    memcpy(c, s, n); c[n] = 0;
    t->text[t->n] = c; t->len[t->n] = n; t->n++;
    return 0;
}

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

static int read_jsonl(const char *path, char *buf, size_t len, const char *field, lop_texts *t,
                      lop_err *e) {
    int cap = 0;
    size_t line = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && buf[j] != '\n') j++;
        line++;
        if (!blank(buf + i, j - i)) {
            cJSON *o = cJSON_ParseWithLength(buf + i, j - i);
            const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, field) : NULL;
            if (!o || !cJSON_IsObject(o)) {
                cJSON_Delete(o);
                return lop_fail(e, "%s:%zu: not a JSON object", path, line);
            }
            if (!cJSON_IsString(v)) {
                cJSON_Delete(o);
                return lop_fail(e, "%s:%zu: no string \"%s\" field", path, line, field);
            }
            int rc = texts_push(t, &cap, v->valuestring, strlen(v->valuestring), e);
            cJSON_Delete(o);
            if (rc) return rc;
        }
        i = j + 1;
    }
    return 0;
}

static int read_lines(char *buf, size_t len, lop_texts *t, lop_err *e) {
    int cap = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && buf[j] != '\n') j++;
        size_t k = j;
        if (k > i && buf[k - 1] == '\r') k--;   /* CRLF files */
        if (!blank(buf + i, k - i) && texts_push(t, &cap, buf + i, k - i, e)) return -1;
        i = j + 1;
    }
    return 0;
}

int calib_read_texts(const char *path, lop_calib_mode mode, const char *field, lop_texts *out,
                     lop_err *e) {
    memset(out, 0, sizeof *out);
    char *buf; size_t len;
    if (calib_read_file(path, &buf, &len, e)) return -1;
    if (memchr(buf, 0, len)) {
        free(buf);
        return lop_fail(e, "%s: binary data (NUL byte) in a text file", path);
    }
    int rc, cap = 0;
    out->jsonl = calib_is_jsonl(path, buf);
    if (out->jsonl) rc = read_jsonl(path, buf, len, field ? field : "text", out, e);
    else if (mode == CALIB_LINES) rc = read_lines(buf, len, out, e);
    else rc = blank(buf, len) ? 0 : texts_push(out, &cap, buf, len, e);
    free(buf);
    int jsonl = out->jsonl;
    if (!rc && out->n == 0) rc = lop_fail(e, "%s: no calibration text (empty file)", path);
    if (rc) calib_texts_free(out);
    out->jsonl = jsonl;
    return rc;
}

void calib_texts_free(lop_texts *t) {
    for (int i = 0; i < t->n; i++) free(t->text[i]);
    free(t->text); free(t->len);
    memset(t, 0, sizeof *t);
}

/* ---- choosing samples ---- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* keep[0..n) = 1 for the samples chosen out of n (first k, or k at random in file order) */
static int choose(int n, const lop_calib_opts *o, unsigned char **keep, int *k, lop_err *e) {
    unsigned char *m = calloc(n ? n : 1, 1);
    int *perm = malloc((n ? n : 1) * sizeof *perm);
    if (!m || !perm) { free(m); free(perm); return lop_fail(e, "out of memory"); }
    int want = o->samples > 0 && o->samples < n ? o->samples : n;
    if (o->random && want < n) {
        uint64_t s = o->seed;
        for (int i = 0; i < n; i++) perm[i] = i;
        for (int i = 0; i < want; i++) {   /* partial Fisher-Yates */
            int j = i + (int)(splitmix64(&s) % (uint64_t)(n - i));
            int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
            m[perm[i]] = 1;
        }
    } else {
        for (int i = 0; i < want; i++) m[i] = 1;
    }
    free(perm);
    *keep = m; *k = want;
    return 0;
}

static int alloc_calib(lop_calib *c, int n, int64_t tokens, lop_err *e) {
    memset(c, 0, sizeof *c);
    c->ids = malloc((n ? n : 1) * sizeof *c->ids);
    c->len = malloc((n ? n : 1) * sizeof *c->len);
    c->store = malloc((tokens ? tokens : 1) * sizeof *c->store);
    if (!c->ids || !c->len || !c->store) { calib_free(c); return lop_fail(e, "out of memory"); }
    return 0;
}

int calib_from_seqs(lop_calib *c, int32_t *const *seqs, const int *lens, int n,
                    const lop_calib_opts *o, lop_err *e) {
    memset(c, 0, sizeof *c);
    /* empty sequences are not samples */
    int *idx = malloc((n ? n : 1) * sizeof *idx), m = 0;
    if (!idx) return lop_fail(e, "out of memory");
    for (int i = 0; i < n; i++) if (lens[i] > 0) idx[m++] = i;
    if (m == 0) { free(idx); return lop_fail(e, "no calibration text (no tokens)"); }
    unsigned char *keep; int k;
    if (choose(m, o, &keep, &k, e)) { free(idx); return -1; }
    int64_t tot = 0;
    for (int i = 0; i < m; i++) {
        int l = lens[idx[i]];
        if (o->ctx > 0 && l > o->ctx) l = o->ctx;
        if (keep[i]) tot += l;
    }
    if (alloc_calib(c, k, tot, e)) { free(idx); free(keep); return -1; }
    int64_t at = 0;
    for (int i = 0; i < m; i++) {
        if (!keep[i]) continue;
        int l = lens[idx[i]];
        if (o->ctx > 0 && l > o->ctx) l = o->ctx;
        memcpy(c->store + at, seqs[idx[i]], l * sizeof(int32_t));
        c->len[c->n++] = l;
        at += l;
    }
    at = 0;
    for (int i = 0; i < c->n; i++) { c->ids[i] = c->store + at; at += c->len[i]; }
    c->tokens = tot;
    free(idx); free(keep);
    return 0;
}

int calib_pack(lop_calib *c, const int32_t *ids, size_t n, int bos, const lop_calib_opts *o,
               lop_err *e) {
    memset(c, 0, sizeof *c);
    if (o->ctx < 2) return lop_failc(e, LOP_EUSAGE, "context of %d tokens is too short to pack windows", o->ctx);
    if (n == 0) return lop_fail(e, "no calibration text (no tokens)");
    size_t per = bos >= 0 ? (size_t)o->ctx - 1 : (size_t)o->ctx;   /* text tokens per window */
    size_t nw = n / per;
    int tail_only = 0;
    if (nw == 0) { nw = 1; tail_only = 1; }
    if (nw > (size_t)1 << 30) return lop_fail(e, "too many calibration windows");
    unsigned char *keep; int k;
    if (choose((int)nw, o, &keep, &k, e)) return -1;
    int64_t tot = 0;
    for (size_t w = 0; w < nw; w++)
        if (keep[w]) tot += (tail_only ? (int64_t)n : (int64_t)per) + (bos >= 0);
    if (alloc_calib(c, k, tot, e)) { free(keep); return -1; }
    int64_t at = 0;
    for (size_t w = 0; w < nw; w++) {
        if (!keep[w]) continue;
        size_t take = tail_only ? n : per;
        int32_t *dst = c->store + at;
        c->ids[c->n] = dst;
        if (bos >= 0) *dst++ = bos;
        memcpy(dst, ids + w * per, take * sizeof(int32_t));
        c->len[c->n] = (int)(take + (bos >= 0));
        at += c->len[c->n++];
    }
    c->tokens = tot;
    free(keep);
    return 0;
}

void calib_free(lop_calib *c) {
    free(c->ids); free(c->len); free(c->store);
    memset(c, 0, sizeof *c);
}
