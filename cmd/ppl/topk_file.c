/* topk_file.c — see topk_file.h. zstd streaming in both directions; the writer is atomic. */
#include "topk_file.h"
#include "cleanup.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

static const char MAGIC[8] = {'L', 'O', 'P', 'T', 'O', 'P', 'K', '1'};

struct topk_writer {
    FILE *f;
    char *path, *tmp;
    ZSTD_CCtx *z;
    int k;
    unsigned char *buf;   /* one record */
    size_t rec;
    void *out;
    size_t out_cap;
};

static int zwrite(topk_writer *w, const void *src, size_t n, ZSTD_EndDirective end, lop_err *e) {
    ZSTD_inBuffer in = {src, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->out, w->out_cap, 0};
        size_t left = ZSTD_compressStream2(w->z, &out, &in, end);
        if (ZSTD_isError(left)) return lop_fail(e, "%s: zstd: %s", w->path, ZSTD_getErrorName(left));
        if (out.pos && fwrite(w->out, 1, out.pos, w->f) != out.pos)
            return lop_fail(e, "%s: write failed", w->tmp);
        if (end == ZSTD_e_end ? left == 0 : in.pos == in.size) return 0;
    }
}

int topk_writer_open(topk_writer **wp, const char *path, int k, int vocab, lop_err *e) {
    *wp = NULL;
    topk_writer *w = calloc(1, sizeof *w);
    if (!w) return lop_fail(e, "out of memory");
    w->k = k;
    w->rec = 8 + (size_t)k * 8;
    w->path = strdup(path);
    w->tmp = malloc(strlen(path) + 32);
    w->buf = malloc(w->rec);
    w->out_cap = ZSTD_CStreamOutSize();
    w->out = malloc(w->out_cap);
    w->z = ZSTD_createCCtx();
    if (!w->path || !w->tmp || !w->buf || !w->out || !w->z) { topk_writer_abort(w); return lop_fail(e, "out of memory"); }
    sprintf(w->tmp, "%s.tmp.%d", path, (int)getpid());
    w->f = fopen(w->tmp, "wb");
    if (!w->f) { lop_fail(e, "%s: cannot create", w->tmp); topk_writer_abort(w); return -1; }
    tmp_add(w->tmp);   /* removed on a signal or an exit before finish */
    ZSTD_CCtx_setParameter(w->z, ZSTD_c_compressionLevel, 3);
    unsigned char h[16];
    memcpy(h, MAGIC, 8);
    uint32_t u[2] = {(uint32_t)k, (uint32_t)vocab};
    memcpy(h + 8, u, 8);
    if (zwrite(w, h, 16, ZSTD_e_continue, e)) { topk_writer_abort(w); return -1; }
    *wp = w;
    return 0;
}

int topk_writer_put(topk_writer *w, const topk_rec *r, lop_err *e) {
    unsigned char *b = w->buf;
    memcpy(b, &r->target, 4);
    memcpy(b + 4, &r->target_lp, 4);
    memcpy(b + 8, r->id, 4 * (size_t)w->k);
    memcpy(b + 8 + 4 * (size_t)w->k, r->lp, 4 * (size_t)w->k);
    return zwrite(w, b, w->rec, ZSTD_e_continue, e);
}

static void writer_free(topk_writer *w) {
    ZSTD_freeCCtx(w->z);
    free(w->path); free(w->tmp); free(w->buf); free(w->out);
    free(w);
}

int topk_writer_finish(topk_writer *w, lop_err *e) {
    int r = zwrite(w, NULL, 0, ZSTD_e_end, e);
    if (!r && (fflush(w->f) || fsync(fileno(w->f)))) r = lop_fail(e, "%s: write failed", w->tmp);
    if (fclose(w->f) && !r) r = lop_fail(e, "%s: write failed", w->tmp);
    w->f = NULL;
    if (!r && rename(w->tmp, w->path)) r = lop_fail(e, "%s: cannot rename into place", w->path);
    if (r) unlink(w->tmp);
    tmp_del(w->tmp);
    writer_free(w);
    return r;
}

void topk_writer_abort(topk_writer *w) {
    if (!w) return;
    if (w->f) { fclose(w->f); unlink(w->tmp); tmp_del(w->tmp); }
    writer_free(w);
}

struct topk_reader {
    FILE *f;
    char *path;
    ZSTD_DCtx *z;
    int k;
    void *in;
    size_t in_cap;
    ZSTD_inBuffer zin;
    int eof;
    unsigned char *rec;   /* one decoded record */
    size_t rec_len;
    int32_t *id;
    float *lp;
};

/* Decode exactly n bytes into dst; returns n, 0 at a clean end (no byte), -1 on error. */
static long zread(topk_reader *r, void *dst, size_t n, lop_err *e) {
    ZSTD_outBuffer out = {dst, n, 0};
    while (out.pos < n) {
        if (r->zin.pos == r->zin.size && !r->eof) {
            size_t got = fread(r->in, 1, r->in_cap, r->f);
            if (ferror(r->f)) return lop_fail(e, "%s: read error", r->path);
            if (got == 0) r->eof = 1;
            r->zin.src = r->in;
            r->zin.size = got;
            r->zin.pos = 0;
        }
        size_t before = out.pos;
        size_t ret = ZSTD_decompressStream(r->z, &out, &r->zin);
        if (ZSTD_isError(ret)) return lop_fail(e, "%s: not a ppl --save-logits file (zstd: %s)", r->path, ZSTD_getErrorName(ret));
        if (out.pos == before && r->zin.pos == r->zin.size && r->eof) {
            if (out.pos == 0) return 0;
            return lop_fail(e, "%s: truncated", r->path);
        }
    }
    return (long)n;
}

int topk_reader_open(topk_reader **rp, const char *path, int *k, int *vocab, lop_err *e) {
    *rp = NULL;
    topk_reader *r = calloc(1, sizeof *r);
    if (!r) return lop_fail(e, "out of memory");
    r->path = strdup(path);
    r->in_cap = ZSTD_DStreamInSize();
    r->in = malloc(r->in_cap);
    r->z = ZSTD_createDCtx();
    r->f = fopen(path, "rb");
    if (!r->f) { lop_fail(e, "%s: cannot open", path); topk_reader_close(r); return -1; }
    if (!r->path || !r->in || !r->z) { topk_reader_close(r); return lop_fail(e, "out of memory"); }
    unsigned char h[16];
    long got = zread(r, h, 16, e);
    if (got < 0) { topk_reader_close(r); return -1; }
    if (got == 0 || memcmp(h, MAGIC, 8)) { lop_fail(e, "%s: not a ppl --save-logits file", path); topk_reader_close(r); return -1; }
    uint32_t u[2];
    memcpy(u, h + 8, 8);
    if (u[0] < 1 || u[0] > 1u << 20 || u[1] < 1) { lop_fail(e, "%s: bad header (k %u, vocab %u)", path, u[0], u[1]); topk_reader_close(r); return -1; }
    r->k = (int)u[0];
    r->rec_len = 8 + (size_t)r->k * 8;
    r->rec = malloc(r->rec_len);
    r->id = malloc(sizeof(int32_t) * r->k);
    r->lp = malloc(sizeof(float) * r->k);
    if (!r->rec || !r->id || !r->lp) { topk_reader_close(r); return lop_fail(e, "out of memory"); }
    *k = r->k;
    *vocab = (int)u[1];
    *rp = r;
    return 0;
}

int topk_reader_next(topk_reader *r, topk_rec *out, lop_err *e) {
    long got = zread(r, r->rec, r->rec_len, e);
    if (got <= 0) return (int)got;
    memcpy(&out->target, r->rec, 4);
    memcpy(&out->target_lp, r->rec + 4, 4);
    memcpy(r->id, r->rec + 8, 4 * (size_t)r->k);
    memcpy(r->lp, r->rec + 8 + 4 * (size_t)r->k, 4 * (size_t)r->k);
    out->id = r->id;
    out->lp = r->lp;
    return 1;
}

void topk_reader_close(topk_reader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    ZSTD_freeDCtx(r->z);
    free(r->path); free(r->in); free(r->rec); free(r->id); free(r->lp);
    free(r);
}
