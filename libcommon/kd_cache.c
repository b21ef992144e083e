/* kd_cache.c — the top-k teacher cache (format in kd_cache.h). */
#include "kd_cache.h"
#include "fsutil.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define MAGIC "LOPKDC01"
#define TAIL_MAGIC "LOPKDEND"
#define MAX_T (1 << 22)

/* ---------------------------------------------------------------- top-k */

static void heap_down(int32_t *hid, float *hv, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, s = i;
        /* min-heap on (value, then larger id first out) so ties keep the lower ids */
        if (l < n && (hv[l] < hv[s] || (hv[l] == hv[s] && hid[l] > hid[s]))) s = l;
        if (r < n && (hv[r] < hv[s] || (hv[r] == hv[s] && hid[r] > hid[s]))) s = r;
        if (s == i) return;
        float tv = hv[i]; hv[i] = hv[s]; hv[s] = tv;
        int32_t ti = hid[i]; hid[i] = hid[s]; hid[s] = ti;
        i = s;
    }
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

void kdc_topk(const float *z, int V, double T, int k, int32_t *ids, float *lp, float *tail,
              uint8_t *mark) {
    if (k > V) k = V;
    double invT = 1.0 / T, mx = -INFINITY;
    for (int i = 0; i < V; i++) if (z[i] * invT > mx) mx = z[i] * invT;
    double s = 0;
    for (int i = 0; i < V; i++) s += exp(z[i] * invT - mx);
    double lse = mx + log(s);
    /* k largest by a min-heap of the best so far (lp doubles as the heap's values) */
    int n = 0;
    for (int i = 0; i < V; i++) {
        if (n < k) {
            ids[n] = i; lp[n] = z[i]; n++;
            if (n == k) for (int j = k / 2 - 1; j >= 0; j--) heap_down(ids, lp, k, j);
        } else if (z[i] > lp[0]) {
            ids[0] = i; lp[0] = z[i];
            heap_down(ids, lp, k, 0);
        }
    }
    qsort(ids, k, sizeof *ids, cmp_i32);
    for (int j = 0; j < k; j++) { lp[j] = (float)(z[ids[j]] * invT - lse); mark[ids[j]] = 1; }
    double m2 = -INFINITY, s2 = 0;
    for (int i = 0; i < V; i++) if (!mark[i] && z[i] * invT > m2) m2 = z[i] * invT;
    for (int i = 0; i < V; i++) if (!mark[i]) s2 += exp(z[i] * invT - m2);
    *tail = k < V ? (float)(m2 + log(s2) - lse) : -INFINITY;
    for (int j = 0; j < k; j++) mark[ids[j]] = 0;
}

/* ---------------------------------------------------------------- byte planes */

static void shuffle4(uint8_t *dst, const uint8_t *src, size_t n) { /* n 4-byte values */
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++) dst[b * n + i] = src[4 * i + b];
}
static void unshuffle4(uint8_t *dst, const uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++) dst[4 * i + b] = src[b * n + i];
}

static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---------------------------------------------------------------- writing */

struct kd_cache_w {
    int fd;
    char *tmp, *path;
    int V, k, level;
    uint64_t off, data0;
    uint64_t *index; int64_t n, cap;  /* [2n]: offset, size */
    uint8_t *raw, *comp; size_t rawcap, compcap;
};

static int wr(kd_cache_w *w, const void *b, size_t n, lop_err *e) {
    if (fs_write_all(w->fd, b, n)) return lop_fail(e, "%s: write failed: %s", w->path, strerror(errno));
    w->off += n;
    return 0;
}

static int grow(uint8_t **b, size_t *cap, size_t need) {
    if (*cap >= need) return 0;
    uint8_t *t = realloc(*b, need);
    if (!t) return -1;
    *b = t; *cap = need;
    return 0;
}

int kdc_create(kd_cache_w **out, const char *path, int V, int k, double T, const char *meta_json,
               const char *const *vocab, int nvocab, int level, lop_err *e) {
    *out = NULL;
    if (V < 1 || k < 1 || !(T > 0)) return lop_fail(e, "%s: bad cache parameters", path);
    if (k > V) k = V;
    kd_cache_w *w = calloc(1, sizeof *w);
    if (!w) return lop_fail(e, "out of memory");
    w->V = V; w->k = k; w->level = level; w->fd = -1;
    w->path = strdup(path);
    cJSON *j = meta_json ? cJSON_Parse(meta_json) : cJSON_CreateObject();
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j); free(w->path); free(w);
        return lop_fail(e, "%s: internal: cache metadata is not a JSON object", path);
    }
    cJSON_DeleteItemFromObject(j, "format");
    cJSON_AddStringToObject(j, "format", "lop-kd-cache");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddNumberToObject(j, "vocab", V);
    cJSON_AddNumberToObject(j, "k", k);
    cJSON_AddNumberToObject(j, "temperature", T);
    cJSON_AddNumberToObject(j, "tokenizer_size", vocab ? nvocab : 0);
    char *js = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!js || (w->fd = fs_temp_open(path, &w->tmp, e)) < 0) {
        if (!js) lop_fail(e, "out of memory");
        free(js); free(w->path); free(w);
        return -1;
    }
    uint8_t h[16];
    memcpy(h, MAGIC, 8);
    size_t jl = strlen(js);
    put_u64(h + 8, jl);
    int r = wr(w, h, 16, e) || wr(w, js, jl, e);
    free(js);
    /* the vocabulary: u32 length + bytes per token, one zstd frame */
    size_t vraw = 0;
    for (int i = 0; vocab && i < nvocab; i++) vraw += 4 + (vocab[i] ? strlen(vocab[i]) : 0);
    uint8_t vl[8];
    if (!r && vocab && nvocab > 0) {
        uint8_t *raw = malloc(vraw ? vraw : 1), *p = raw;
        size_t cb = ZSTD_compressBound(vraw);
        uint8_t *c = malloc(cb);
        if (!raw || !c) { free(raw); free(c); r = lop_fail(e, "out of memory"); }
        else {
            for (int i = 0; i < nvocab; i++) {
                size_t l = vocab[i] ? strlen(vocab[i]) : 0;
                put_u32(p, (uint32_t)l); memcpy(p + 4, vocab[i] ? vocab[i] : "", l); p += 4 + l;
            }
            size_t cl = ZSTD_compress(c, cb, raw, vraw, 3);
            if (ZSTD_isError(cl)) r = lop_fail(e, "zstd: %s", ZSTD_getErrorName(cl));
            else { put_u64(vl, cl); r = wr(w, vl, 8, e) || wr(w, c, cl, e); }
            free(raw); free(c);
        }
    } else if (!r) {
        put_u64(vl, 0);
        r = wr(w, vl, 8, e);
    }
    if (r) { kdc_abort(w); return -1; }
    w->data0 = w->off;
    *out = w;
    return 0;
}

int kdc_put(kd_cache_w *w, int T, const int32_t *ids, const int32_t *targets,
            const int32_t *topk_ids, const float *topk_lp, const float *tail, lop_err *e) {
    int ns = 0, k = w->k;
    if (T < 1 || T > MAX_T) return lop_fail(e, "%s: block of %d positions", w->path, T);
    for (int t = 0; t < T; t++) ns += targets[t] >= 0;
    size_t nk = (size_t)ns * k;
    size_t raw = 12 + 8 * (size_t)T + 8 * nk + 4 * (size_t)ns;
    if (grow(&w->raw, &w->rawcap, raw + 4 * nk) ||
        grow(&w->comp, &w->compcap, ZSTD_compressBound(raw)))
        return lop_fail(e, "out of memory");
    uint8_t *p = w->raw;
    put_u32(p, (uint32_t)T); put_u32(p + 4, (uint32_t)ns); put_u32(p + 8, (uint32_t)k);
    p += 12;
    memcpy(p, ids, 4 * (size_t)T); p += 4 * (size_t)T;
    memcpy(p, targets, 4 * (size_t)T); p += 4 * (size_t)T;
    /* delta-coded ids into scratch past the record, then byte planes into the record */
    uint32_t *d = (uint32_t *)(w->raw + raw);
    for (int r = 0; r < ns; r++) {
        const int32_t *row = topk_ids + (size_t)r * k;
        for (int j = 0; j < k; j++) {
            if (row[j] < 0 || row[j] >= w->V || (j && row[j] <= row[j - 1]))
                return lop_fail(e, "%s: internal: top-k ids not ascending in [0, %d)", w->path, w->V);
            d[(size_t)r * k + j] = (uint32_t)(j ? row[j] - row[j - 1] : row[j]);
        }
    }
    shuffle4(p, (const uint8_t *)d, nk); p += 4 * nk;
    shuffle4(p, (const uint8_t *)topk_lp, nk); p += 4 * nk;
    memcpy(p, tail, 4 * (size_t)ns);
    size_t cl = ZSTD_compress(w->comp, w->compcap, w->raw, raw, w->level);
    if (ZSTD_isError(cl)) return lop_fail(e, "zstd: %s", ZSTD_getErrorName(cl));
    if (w->n == w->cap) {
        int64_t nc = w->cap ? w->cap * 2 : 1024;
        uint64_t *ix = realloc(w->index, sizeof *ix * 2 * nc);
        if (!ix) return lop_fail(e, "out of memory");
        w->index = ix; w->cap = nc;
    }
    w->index[2 * w->n] = w->off;
    w->index[2 * w->n + 1] = cl;
    w->n++;
    return wr(w, w->comp, cl, e);
}

int64_t kdc_written_bytes(const kd_cache_w *w) { return (int64_t)w->off; }
int64_t kdc_block_bytes(const kd_cache_w *w) { return (int64_t)(w->off - w->data0); }

static void wfree(kd_cache_w *w) {
    free(w->tmp); free(w->path); free(w->index); free(w->raw); free(w->comp); free(w);
}

void kdc_abort(kd_cache_w *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (w->tmp) { unlink(w->tmp); fs_temp_note(w->tmp, 0); }
    wfree(w);
}

int kdc_finish(kd_cache_w *w, lop_err *e) {
    uint64_t ioff = w->off;
    uint8_t b[16], tl[24];
    int r = 0;
    for (int64_t i = 0; i < w->n && !r; i++) {
        put_u64(b, w->index[2 * i]); put_u64(b + 8, w->index[2 * i + 1]);
        r = wr(w, b, 16, e);
    }
    put_u64(tl, ioff); put_u64(tl + 8, (uint64_t)w->n); memcpy(tl + 16, TAIL_MAGIC, 8);
    if (!r) r = wr(w, tl, 24, e);
    if (r) { kdc_abort(w); return -1; }
    r = fs_commit(w->fd, w->tmp, w->path, e);
    w->fd = -1;
    wfree(w);
    return r;
}

/* ---------------------------------------------------------------- reading */

struct kd_cache {
    int fd;
    char *path, *meta;
    int V, k;
    double T;
    int64_t n;
    uint64_t size;
    uint64_t *index;       /* [2n] */
    char **tokens; int ntok;
    uint8_t *comp; size_t compcap;
};

static int rd(const kd_cache *c, void *b, size_t n, uint64_t off, lop_err *e) {
    if (off > c->size || n > c->size - off)
        return lop_fail(e, "%s: truncated (wants bytes %llu..%llu of %llu)", c->path,
                        (unsigned long long)off, (unsigned long long)(off + n), (unsigned long long)c->size);
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(c->fd, (uint8_t *)b + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return lop_fail(e, "%s: read failed: %s", c->path, r ? strerror(errno) : "short file");
        got += (size_t)r;
    }
    return 0;
}

static int load_vocab(kd_cache *c, uint64_t off, uint64_t len, int ntok, lop_err *e) {
    if (!len) return 0;
    uint8_t *z = malloc(len);
    if (!z) return lop_fail(e, "out of memory");
    if (rd(c, z, len, off, e)) { free(z); return -1; }
    unsigned long long raw = ZSTD_getFrameContentSize(z, len);
    if (raw == ZSTD_CONTENTSIZE_ERROR || raw == ZSTD_CONTENTSIZE_UNKNOWN || raw > ((uint64_t)1 << 31)) {
        free(z); return lop_fail(e, "%s: corrupt vocabulary section", c->path);
    }
    uint8_t *b = malloc(raw + 1);
    char **t = calloc(ntok ? ntok : 1, sizeof *t);
    if (!b || !t) { free(z); free(b); free(t); return lop_fail(e, "out of memory"); }
    size_t got = ZSTD_decompress(b, raw, z, len);
    free(z);
    if (ZSTD_isError(got) || got != raw) { free(b); free(t); return lop_fail(e, "%s: corrupt vocabulary section", c->path); }
    size_t p = 0;
    for (int i = 0; i < ntok; i++) {
        if (raw - p < 4) goto bad;
        uint32_t l = get_u32(b + p);
        if (raw - p - 4 < l) goto bad;
        t[i] = malloc(l + 1);
        if (!t[i]) goto bad;
        memcpy(t[i], b + p + 4, l); t[i][l] = 0;
        p += 4 + l;
    }
    free(b);
    c->tokens = t; c->ntok = ntok;
    return 0;
bad:
    for (int i = 0; i < ntok; i++) free(t[i]);
    free(t); free(b);
    return lop_fail(e, "%s: corrupt vocabulary section", c->path);
}

int kdc_open(kd_cache **out, const char *path, lop_err *e) {
    *out = NULL;
    kd_cache *c = calloc(1, sizeof *c);
    if (!c) return lop_fail(e, "out of memory");
    c->path = strdup(path);
    c->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0) { lop_fail(e, "%s: %s", path, strerror(errno)); goto fail; }
    struct stat sb;
    if (fstat(c->fd, &sb) || !S_ISREG(sb.st_mode)) { lop_fail(e, "%s: not a regular file", path); goto fail; }
    c->size = (uint64_t)sb.st_size;
    uint8_t h[16], tl[24];
    if (c->size < 16 + 8 + 24) { lop_fail(e, "%s: not a kd-train teacher cache (too short)", path); goto fail; }
    if (rd(c, h, 16, 0, e)) goto fail;
    if (memcmp(h, MAGIC, 8)) { lop_fail(e, "%s: not a kd-train teacher cache (bad magic)", path); goto fail; }
    if (rd(c, tl, 24, c->size - 24, e)) goto fail;
    if (memcmp(tl + 16, TAIL_MAGIC, 8)) { lop_fail(e, "%s: truncated teacher cache (no trailer; was it interrupted?)", path); goto fail; }
    uint64_t jl = get_u64(h + 8);
    if (jl > c->size - 16 - 8 - 24 || jl > (64u << 20)) { lop_fail(e, "%s: header length %llu out of range", path, (unsigned long long)jl); goto fail; }
    c->meta = malloc(jl + 1);
    if (!c->meta) { lop_fail(e, "out of memory"); goto fail; }
    if (rd(c, c->meta, jl, 16, e)) goto fail;
    c->meta[jl] = 0;
    cJSON *j = cJSON_Parse(c->meta);
    cJSON *V = cJSON_GetObjectItem(j, "vocab"), *k = cJSON_GetObjectItem(j, "k"),
          *T = cJSON_GetObjectItem(j, "temperature"), *fmt = cJSON_GetObjectItem(j, "format"),
          *nt = cJSON_GetObjectItem(j, "tokenizer_size");
    int ok = cJSON_IsObject(j) && cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "lop-kd-cache") &&
             cJSON_IsNumber(V) && cJSON_IsNumber(k) && cJSON_IsNumber(T) && V->valuedouble >= 1 &&
             V->valuedouble < (1 << 26) && k->valuedouble >= 1 && k->valuedouble <= V->valuedouble &&
             T->valuedouble > 0 && isfinite(T->valuedouble) &&
             (!nt || (cJSON_IsNumber(nt) && nt->valuedouble >= 0 && nt->valuedouble < (1 << 26)));
    if (ok) {
        c->V = V->valueint; c->k = k->valueint; c->T = T->valuedouble;
    }
    int ntok = ok && nt ? nt->valueint : 0;
    cJSON_Delete(j);
    if (!ok) { lop_fail(e, "%s: bad cache header (format, vocab, k, temperature)", path); goto fail; }
    uint8_t vl[8];
    if (rd(c, vl, 8, 16 + jl, e)) goto fail;
    uint64_t vlen = get_u64(vl);
    if (vlen > c->size) { lop_fail(e, "%s: vocabulary section out of range", path); goto fail; }
    if (load_vocab(c, 24 + jl, vlen, ntok, e)) goto fail;
    uint64_t data0 = 24 + jl + vlen, ioff = get_u64(tl), n = get_u64(tl + 8);
    if (ioff < data0 || ioff > c->size - 24 || n != (c->size - 24 - ioff) / 16 || (c->size - 24 - ioff) % 16) {
        lop_fail(e, "%s: corrupt block index", path); goto fail;
    }
    c->n = (int64_t)n;
    c->index = malloc(16 * (n ? n : 1));
    if (!c->index) { lop_fail(e, "out of memory"); goto fail; }
    uint8_t *ib = (uint8_t *)c->index;
    if (rd(c, ib, 16 * n, ioff, e)) goto fail;
    for (uint64_t i = 0; i < 2 * n; i++) c->index[i] = get_u64(ib + 8 * i);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t o = c->index[2 * i], s = c->index[2 * i + 1];
        if (o < data0 || s > ioff || o > ioff - s) { lop_fail(e, "%s: block %llu outside the file", path, (unsigned long long)i); goto fail; }
    }
    *out = c;
    return 0;
fail:
    kdc_close(c);
    return -1;
}

void kdc_close(kd_cache *c) {
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    for (int i = 0; i < c->ntok; i++) free(c->tokens[i]);
    free(c->tokens); free(c->path); free(c->meta); free(c->index); free(c->comp); free(c);
}

int kdc_vocab(const kd_cache *c) { return c->V; }
int kdc_k(const kd_cache *c) { return c->k; }
double kdc_temperature(const kd_cache *c) { return c->T; }
int64_t kdc_blocks(const kd_cache *c) { return c->n; }
int64_t kdc_file_bytes(const kd_cache *c) { return (int64_t)c->size; }
const char *kdc_meta(const kd_cache *c) { return c->meta; }
const char *const *kdc_tokens(const kd_cache *c, int *n) {
    *n = c->ntok;
    return (const char *const *)c->tokens;
}

void kdc_block_free(kdc_block *b) {
    free(b->buf);
    memset(b, 0, sizeof *b);
}

int kdc_read(kd_cache *c, int64_t g, kdc_block *b, lop_err *e) {
    if (g < 0 || g >= c->n) return lop_fail(e, "%s: no block %lld (the cache holds %lld)", c->path, (long long)g, (long long)c->n);
    uint64_t off = c->index[2 * g], len = c->index[2 * g + 1];
    if (grow(&c->comp, &c->compcap, len ? len : 1)) return lop_fail(e, "out of memory");
    if (rd(c, c->comp, len, off, e)) return -1;
    unsigned long long raw = ZSTD_getFrameContentSize(c->comp, len);
    int k = c->k;
    uint64_t maxraw = 12 + 8ull * MAX_T + (8ull * k + 4) * MAX_T;
    if (raw == ZSTD_CONTENTSIZE_ERROR || raw == ZSTD_CONTENTSIZE_UNKNOWN || raw < 12 || raw > maxraw)
        return lop_fail(e, "%s: block %lld is corrupt", c->path, (long long)g);
    /* layout of b->buf: raw record | ids | targets | topk_ids | topk_lp | tail */
    size_t need = raw * 2 + 64;
    if (b->cap < need) {
        void *t = realloc(b->buf, need);
        if (!t) return lop_fail(e, "out of memory");
        b->buf = t; b->cap = need;
    }
    uint8_t *r = b->buf;
    size_t got = ZSTD_decompress(r, raw, c->comp, len);
    if (ZSTD_isError(got) || got != raw) return lop_fail(e, "%s: block %lld is corrupt", c->path, (long long)g);
    uint32_t T = get_u32(r), ns = get_u32(r + 4), kk = get_u32(r + 8);
    if (T < 1 || T > MAX_T || ns > T || kk != (uint32_t)k ||
        raw != 12 + 8ull * T + 8ull * ns * k + 4ull * ns)
        return lop_fail(e, "%s: block %lld is corrupt (sizes)", c->path, (long long)g);
    size_t nk = (size_t)ns * k;
    uint8_t *o = r + ((raw + 15) & ~(size_t)15);
    b->T = (int)T; b->nscored = (int)ns; b->k = k;
    b->ids = (int32_t *)o; b->targets = b->ids + T; b->topk_ids = b->targets + T;
    b->topk_lp = (float *)(b->topk_ids + nk); b->tail = b->topk_lp + nk;
    const uint8_t *p = r + 12;
    memcpy(b->ids, p, 4ull * T); p += 4ull * T;
    memcpy(b->targets, p, 4ull * T); p += 4ull * T;
    unshuffle4((uint8_t *)b->topk_ids, p, nk); p += 4 * nk;
    unshuffle4((uint8_t *)b->topk_lp, p, nk); p += 4 * nk;
    memcpy(b->tail, p, 4ull * ns);
    uint32_t sc = 0;
    for (uint32_t t = 0; t < T; t++) {
        if (b->ids[t] < 0 || b->targets[t] < -1) return lop_fail(e, "%s: block %lld: bad token id", c->path, (long long)g);
        sc += b->targets[t] >= 0;
    }
    if (sc != ns) return lop_fail(e, "%s: block %lld is corrupt (scored count)", c->path, (long long)g);
    for (size_t rr = 0; rr < ns; rr++) { /* undo the deltas; ids ascending within [0, V) */
        int32_t *row = b->topk_ids + rr * k;
        uint64_t acc = 0;
        for (int j = 0; j < k; j++) {
            uint64_t d = (uint32_t)row[j];
            if (j && d == 0) return lop_fail(e, "%s: block %lld: repeated top-k id", c->path, (long long)g);
            acc += d;
            if (acc >= (uint64_t)c->V) return lop_fail(e, "%s: block %lld: top-k id out of range", c->path, (long long)g);
            row[j] = (int32_t)acc;
        }
    }
    return 0;
}
