/* st_header.c — the safetensors header: validation and parsing (every defect the format forbids
 * gets one clear message), and building the header a writer puts before its data. */
#include "st_internal.h"
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXACT 9007199254740992.0 /* 2^53: larger JSON numbers are not exact in a double */

uint64_t st_numel(const st_info *t) {
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i];
    return n;
}

void st_infos_free(st_info *infos, int n) {
    if (!infos) return;
    for (int i = 0; i < n; i++) free(infos[i].name);
    free(infos);
}

/* Offset of the first invalid UTF-8 sequence (overlong, surrogate, > U+10FFFF, truncated) or of a
 * NUL byte; -1 if the text is valid. */
static int64_t utf8_invalid_at(const unsigned char *s, uint64_t n) {
    uint64_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return (int64_t)i;
        if (c < 0x80) { i++; continue; }
        int len; unsigned min, cp;
        if ((c & 0xe0) == 0xc0) { len = 2; min = 0x80; cp = c & 0x1f; }
        else if ((c & 0xf0) == 0xe0) { len = 3; min = 0x800; cp = c & 0x0f; }
        else if ((c & 0xf8) == 0xf0) { len = 4; min = 0x10000; cp = c & 0x07; }
        else return (int64_t)i;
        if (i + (uint64_t)len > n) return (int64_t)i;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return (int64_t)i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return (int64_t)i;
        i += (uint64_t)len;
    }
    return -1;
}

/* A JSON number that is a non-negative integer exactly representable: 0 and *out, else -1. */
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0) || d >= MAX_EXACT || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_entry(const cJSON *t, st_info *o, lop_err *e) {
    const char *name = t->string;
    if (!cJSON_IsObject(t)) return lop_fail(e, "tensor '%s': entry is not a JSON object", name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    if (!cJSON_IsString(dt)) return lop_fail(e, "tensor '%s': missing or non-string \"dtype\"", name);
    if (st_dtype_parse(dt->valuestring, &o->dtype))
        return lop_fail(e, "tensor '%s': unknown dtype '%.32s'", name, dt->valuestring);
    if (!cJSON_IsArray(sh)) return lop_fail(e, "tensor '%s': missing or non-array \"shape\"", name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS) return lop_fail(e, "tensor '%s': %d dimensions (at most %d)", name, nd, ST_MAX_DIMS);
    o->ndim = nd;
    uint64_t numel = 1;
    int i = 0, overflow = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        uint64_t v;
        if (cJSON_IsNumber(d) && d->valuedouble < 0)
            return lop_fail(e, "tensor '%s': negative dimension %g in shape", name, d->valuedouble);
        if (json_u64(d, &v)) return lop_fail(e, "tensor '%s': shape[%d] is not a valid size", name, i);
        o->shape[i++] = (int64_t)v;
        if (__builtin_mul_overflow(numel, v, &numel)) overflow = 1;
    }
    uint64_t nbytes;
    if (overflow || __builtin_mul_overflow(numel, (uint64_t)st_dtype_size(o->dtype), &nbytes) ||
        nbytes >= (uint64_t)MAX_EXACT)
        return lop_fail(e, "tensor '%s': shape size overflows", name);
    o->nbytes = nbytes;
    uint64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return lop_fail(e, "tensor '%s': \"data_offsets\" must be [begin, end]", name);
    if (json_u64(off->child, &b) || json_u64(off->child->next, &en))
        return lop_fail(e, "tensor '%s': data_offsets are not valid byte offsets", name);
    if (en < b) return lop_fail(e, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin", name, b, en);
    if (en - b != nbytes)
        return lop_fail(e, "tensor '%s': %" PRIu64 " bytes in data_offsets but shape x %s size is %" PRIu64,
                        name, en - b, st_dtype_name(o->dtype), nbytes);
    o->offset = b;
    return 0;
}

typedef struct { const st_info *t; int order; } ord;

static int cmp_off(const void *a, const void *b) {
    const ord *x = a, *y = b;
    if (x->t->offset != y->t->offset) return x->t->offset < y->t->offset ? -1 : 1;
    if (x->t->nbytes != y->t->nbytes) return x->t->nbytes < y->t->nbytes ? -1 : 1;
    return x->order - y->order;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int check_layout(st_info *v, int n, uint64_t data_len, lop_err *e) {
    ord *o = malloc((size_t)(n ? n : 1) * sizeof *o);
    char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    if (!o || !names) { free(o); free(names); return lop_fail(e, "out of memory"); }
    for (int i = 0; i < n; i++) { o[i].t = &v[i]; o[i].order = i; names[i] = v[i].name; }
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(names[i], names[i - 1])) {
            lop_fail(e, "duplicate tensor name '%s' in header", names[i]);
            free(o); free(names); return -1;
        }
    free(names);
    qsort(o, (size_t)n, sizeof *o, cmp_off);
    uint64_t end = 0;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const st_info *t = o[i].t;
        if (t->offset < end)
            rc = lop_fail(e, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 ") overlap the previous tensor (ends at %" PRIu64 ")",
                          t->name, t->offset, t->offset + t->nbytes, end);
        else if (t->offset > end)
            rc = lop_fail(e, "tensor '%s': data begins at %" PRIu64 " leaving a hole of %" PRIu64 " bytes after the previous tensor",
                          t->name, t->offset, t->offset - end);
        else if (data_len != UINT64_MAX && t->offset + t->nbytes > data_len)
            rc = lop_fail(e, "tensor '%s': data_offsets end %" PRIu64 " past the end of the data (%" PRIu64 " bytes)",
                          t->name, t->offset + t->nbytes, data_len);
        end = t->offset + t->nbytes;
    }
    if (!rc && data_len != UINT64_MAX && end < data_len)
        rc = lop_fail(e, "%" PRIu64 " bytes after the last tensor's data (file holds %" PRIu64 ", tensors %" PRIu64 ")",
                      data_len - end, data_len, end);
    if (!rc) { /* reorder v by offset */
        st_info *s = malloc((size_t)(n ? n : 1) * sizeof *s);
        if (!s) rc = lop_fail(e, "out of memory");
        else {
            for (int i = 0; i < n; i++) s[i] = *o[i].t;
            memcpy(v, s, (size_t)n * sizeof *s);
            free(s);
        }
    }
    free(o);
    return rc;
}

int st_parse_header(const char *json, uint64_t json_len, uint64_t data_len, st_info **infos,
                    int *n, cJSON **meta, lop_err *e) {
    *infos = NULL; *n = 0;
    if (meta) *meta = NULL;
    if (json_len > ST_MAX_HEADER) return lop_fail(e, "header of %" PRIu64 " bytes exceeds the 100 MB limit", json_len);
    int64_t bad = utf8_invalid_at((const unsigned char *)json, json_len);
    if (bad >= 0) return lop_fail(e, "header is not valid UTF-8 (byte %" PRId64 " of the header)", bad);
    if (json_len == 0 || json[0] != '{') return lop_fail(e, "header does not start with '{' (not a safetensors file?)");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)json_len, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        int64_t pos = at && at >= json && at <= json + json_len ? at - json : -1;
        return lop_fail(e, "header is not valid JSON (near byte %" PRId64 " of the header)", pos);
    }
    for (const char *p = end; p && p < json + json_len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return lop_fail(e, "header has bytes after its JSON object (byte %td of the header)", p - json);
        }
    if (!cJSON_IsObject(root)) { cJSON_Delete(root); return lop_fail(e, "header is not a JSON object"); }
    int cnt = 0;
    cJSON *it, *md = NULL;
    cJSON_ArrayForEach(it, root) {
        if (it->string && !strcmp(it->string, "__metadata__")) {
            if (md) { cJSON_Delete(root); return lop_fail(e, "header has two __metadata__ entries"); }
            md = it;
        } else cnt++;
    }
    if (md) {
        if (!cJSON_IsObject(md)) { cJSON_Delete(root); return lop_fail(e, "__metadata__ is not a JSON object"); }
        cJSON_ArrayForEach(it, md)
            if (!cJSON_IsString(it)) {
                lop_fail(e, "__metadata__ value of '%s' is not a string", it->string);
                cJSON_Delete(root); return -1;
            }
    }
    st_info *v = calloc((size_t)(cnt ? cnt : 1), sizeof *v);
    if (!v) { cJSON_Delete(root); return lop_fail(e, "out of memory"); }
    int k = 0, rc = 0;
    cJSON_ArrayForEach(it, root) {
        if (it == md) continue;
        v[k].name = strdup(it->string ? it->string : "");
        if (!v[k].name) { rc = lop_fail(e, "out of memory"); k++; break; }
        if ((rc = parse_entry(it, &v[k++], e))) break;
    }
    if (!rc) rc = check_layout(v, cnt, data_len, e);
    if (rc) { st_infos_free(v, k); cJSON_Delete(root); return -1; }
    if (md && meta) *meta = cJSON_DetachItemViaPointer(root, md);
    cJSON_Delete(root);
    *infos = v; *n = cnt;
    return 0;
}

int st_check_prefix(const unsigned char p[8], uint64_t size, uint64_t *hlen, lop_err *e) {
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = h << 8 | p[i];
    if (h > ST_MAX_HEADER)
        return lop_fail(e, "header length %" PRIu64 " exceeds the 100 MB limit (not a safetensors file?)", h);
    if (size != UINT64_MAX && h > size - 8)
        return lop_fail(e, "header length %" PRIu64 " runs past the end of the file (%" PRIu64 " bytes)", h, size);
    *hlen = h;
    return 0;
}

int st_parse_image(const unsigned char *base, uint64_t size, st_info **infos, int *n,
                   cJSON **meta, uint64_t *data_start, lop_err *e) {
    if (size == 0) return lop_fail(e, "empty file (no safetensors header)");
    if (size < 8) return lop_fail(e, "file of %" PRIu64 " bytes is too short for a safetensors header", size);
    uint64_t h = 0;
    if (st_check_prefix(base, size, &h, e)) return -1;
    if (st_parse_header((const char *)base + 8, h, size - 8 - h, infos, n, meta, e)) return -1;
    *data_start = 8 + h;
    return 0;
}

/* ---- building ---- */

unsigned char *st_build_header(const st_info *infos, int n, const char *const *meta_kv, int n_meta,
                               size_t *len) {
    sbuf b = {0};
    sb_put(&b, "\0\0\0\0\0\0\0\0", 8);
    sb_puts(&b, "{");
    if (n_meta > 0) {
        sb_puts(&b, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_puts(&b, ",");
            sb_json_string(&b, meta_kv[2 * i]);
            sb_puts(&b, ":");
            sb_json_string(&b, meta_kv[2 * i + 1]);
        }
        sb_puts(&b, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (i || n_meta > 0) sb_puts(&b, ",");
        sb_json_string(&b, infos[i].name);
        sb_printf(&b, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(infos[i].dtype));
        for (int d = 0; d < infos[i].ndim; d++) sb_printf(&b, d ? ",%" PRId64 : "%" PRId64, infos[i].shape[d]);
        sb_printf(&b, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + infos[i].nbytes);
        off += infos[i].nbytes;
    }
    sb_puts(&b, "}");
    while (b.len % 8) sb_puts(&b, " ");   /* data starts 8-aligned, as safetensors writers do */
    if (b.oom) { free(b.s); return NULL; }
    uint64_t h = b.len - 8;
    for (int i = 0; i < 8; i++) b.s[i] = (char)(h >> (8 * i));
    *len = b.len;
    return (unsigned char *)b.s;
}
