/* st_stream.c — the streaming reader (safetensors.h: st_reader): the tensors of a file, folder,
 * adapter, pipe or .zst one at a time in file order. Files and folders are opened with st_open and
 * handed out in place (each tensor's pages given back once the next is asked for); pipes and zstd
 * inputs are read tensor by tensor through st_src.c, never seeking. */
#include "fsutil.h"
#include "st_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct st_reader {
    st_model *m;                  /* files and folders: mmap'd, tensors handed out in place */
    st_src src;                   /* pipes and zstd: read tensor by tensor */
    int streaming, next, n;
    st_info *infos;               /* streaming: the header, by offset */
    cJSON *meta;
    char *config, *source;
    unsigned char *buf; size_t cap; /* streaming: the current tensor */
    int ended;
};

/* Streaming from fd: the header first, then tensors as st_reader_next asks. */
static int reader_stream(st_reader *r, int fd, int own, const char *what, lop_err *e) {
    r->streaming = 1;
    if (src_open_fd(&r->src, fd, own, what, e)) return -1;
    unsigned char pre[8];
    size_t have = 0, got = 1;
    while (have < 8 && got) {
        if (src_read(&r->src, pre + have, 8 - have, &got, e)) return -1;
        have += got;
    }
    if (have == 0) return lop_fail(e, "%s: empty input (no safetensors header)", what);
    if (have < 8) return lop_fail(e, "%s: input of %zu bytes is too short for a safetensors header", what, have);
    uint64_t h = 0;
    if (st_check_prefix(pre, UINT64_MAX, &h, e)) return lop_wrap(e, "%s", what);
    char *json = malloc(h + 1);
    if (!json) return lop_fail(e, "out of memory");
    if (src_read_exact(&r->src, json, h, "the header", e)) { free(json); return -1; }
    int rc = st_parse_header(json, h, UINT64_MAX, &r->infos, &r->n, &r->meta, e);
    free(json);
    if (rc) return lop_wrap(e, "%s", what);
    const char *c = st_meta_str(r->meta, "config"), *s = st_meta_str(r->meta, "source");
    if ((c && !(r->config = strdup(c))) || (s && !(r->source = strdup(s)))) return lop_fail(e, "out of memory");
    return 0;
}

int st_reader_open(st_reader **out, const char *path, lop_err *e) {
    *out = NULL;
    st_reader *r = calloc(1, sizeof *r);
    if (!r) return lop_fail(e, "out of memory");
    r->src.fd = -1;
    int rc;
    if (!strcmp(path, "-")) rc = reader_stream(r, 0, 0, "stdin", e);
    else if (fs_is_dir(path)) rc = st_open(&r->m, path, e);
    else {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        unsigned char mg[4];
        if (fd < 0) rc = lop_fail(e, "%s: %s", path, strerror(errno));
        else if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 4 && pread(fd, mg, 4, 0) == 4 &&
                 (mg[0] | mg[1] << 8 | mg[2] << 16 | (uint32_t)mg[3] << 24) != ST_ZSTD_MAGIC) {
            close(fd);
            rc = st_open(&r->m, path, e);
        } else rc = reader_stream(r, fd, 1, path, e);  /* .zst or a FIFO */
    }
    if (rc) { st_reader_close(r); return -1; }
    if (r->m) {
        st_priv_sequential(r->m);
        r->n = r->m->n;
    }
    *out = r;
    return 0;
}

const st_info *st_reader_infos(const st_reader *r, int *n) {
    *n = r->n;
    return r->m ? r->m->info : r->infos;
}
const char *st_reader_config(const st_reader *r) { return r->m ? r->m->config_json : r->config; }
const char *st_reader_source(const st_reader *r) { return r->m ? r->m->source_dir : r->source; }
const cJSON *st_reader_metadata(const st_reader *r) { return r->m ? r->m->metadata : r->meta; }

static void release_tensor(st_reader *r, int i) { st_release(r->m, i); }

int st_reader_next(st_reader *r, int *idx, const void **data, lop_err *e) {
    if (r->m) {
        release_tensor(r, r->next - 1);
        if (r->next >= r->n) return 0;
        *idx = r->next;
        *data = r->m->data[r->next++];
        return 1;
    }
    if (r->ended) return 0;
    if (r->next >= r->n) {
        int end = src_at_end(&r->src, e);
        if (end < 0) return -1;
        if (!end) return lop_fail(e, "%s: bytes after the last tensor's data", r->src.what);
        r->ended = 1;
        return 0;
    }
    const st_info *t = &r->infos[r->next];
    if (t->nbytes > r->cap) {
        free(r->buf);
        r->cap = t->nbytes;
        r->buf = aligned_alloc(64, (r->cap + 63) / 64 * 64);
        if (!r->buf) { r->cap = 0; return lop_fail(e, "out of memory for tensor '%s' (%llu bytes)", t->name, (unsigned long long)t->nbytes); }
    }
    char what[160];
    snprintf(what, sizeof what, "tensor '%.100s' (%d of %d)", t->name, r->next + 1, r->n);
    if (src_read_exact(&r->src, r->buf, t->nbytes, what, e)) return -1;
    *idx = r->next++;
    *data = r->buf ? (const void *)r->buf : (const void *)"";
    return 1;
}

void st_reader_close(st_reader *r) {
    if (!r) return;
    st_close(r->m);
    if (r->streaming) src_close(&r->src);
    st_infos_free(r->infos, r->n);
    cJSON_Delete(r->meta);
    free(r->config); free(r->source); free(r->buf);
    free(r);
}
