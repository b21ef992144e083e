/* st_internal.h — pieces shared by the st_*.c files (not a public API). */
#ifndef LOP_ST_INTERNAL_H
#define LOP_ST_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include <zstd.h>
#include "safetensors.h"
#include "sbuf.h"

#define ST_ZSTD_MAGIC 0xFD2FB528u /* first 4 bytes of a zstd frame, little endian */

/* A sequential byte source: a file descriptor, transparently zstd-decompressed when its first
 * bytes are zstd's magic number. Never seeks, so pipes work. */
typedef struct st_src {
    int fd, own_fd;
    const char *what;          /* for messages: the path or "stdin" */
    unsigned char pre[8];      /* bytes peeked for the magic number, not yet consumed */
    size_t pre_len, pre_pos;
    ZSTD_DCtx *z;              /* non-NULL: decompressing */
    unsigned char *zin;        /* compressed input buffer */
    size_t zin_len, zin_pos, zin_cap;
    size_t zret;               /* last ZSTD_decompressStream result: 0 = at a frame end */
    int eof;                   /* fd reached its end */
} st_src;

int src_open_fd(st_src *s, int fd, int own_fd, const char *what, lop_err *e);
/* Read up to n bytes; *got = 0 only at the end of the data. */
int src_read(st_src *s, void *buf, size_t n, size_t *got, lop_err *e);
/* Exactly n bytes, else an error naming the truncation. */
int src_read_exact(st_src *s, void *buf, size_t n, const char *wanted, lop_err *e);
/* Everything that is left, into a malloc'd buffer. */
int src_read_rest(st_src *s, unsigned char **buf, size_t *len, lop_err *e);
/* 1 if no more bytes, 0 if some remain (one is consumed), -1 on error. */
int src_at_end(st_src *s, lop_err *e);
void src_close(st_src *s);

/* Parse a whole in-memory safetensors image (length prefix, header, data). *data_start is the
 * byte offset of the data section in base. Messages are not prefixed with a path. */
int st_parse_image(const unsigned char *base, uint64_t size, st_info **infos, int *n,
                   cJSON **meta, uint64_t *data_start, lop_err *e);
/* Validate the 8-byte length prefix against the total size (UINT64_MAX: unknown, a stream). */
int st_check_prefix(const unsigned char p[8], uint64_t size, uint64_t *hlen, lop_err *e);

/* The bytes a writer puts before the data: 8-byte length + JSON header padded with spaces so the
 * data starts at a multiple of 8. Tensors are laid out in the given order. meta_kv: n_meta
 * key/value pairs of strings for __metadata__. Returns malloc'd bytes, *len set. */
unsigned char *st_build_header(const st_info *infos, int n, const char *const *meta_kv, int n_meta,
                               size_t *len);
/* st_read.c: an empty model (st_close frees it), a file/folder/"-" mapped into it (no adapters),
 * a string of __metadata__, and the hint that its mappings are about to be read in order (for
 * st_stream.c). */
int st_model_new(st_model **out, lop_err *e);
int st_open_mapped(st_model *m, const char *path, lop_err *e);
const char *st_meta_str(const cJSON *md, const char *key);
void st_priv_sequential(const st_model *m);
/* An adapter folder opened as its merged model (st_adapter.c), and the hooks it uses in st_read.c:
 * m takes ownership of base (closed with m) and of buf (freed with m); st_priv_unmap marks tensor
 * i as no longer the base's bytes. */
int st_adapter_open(st_model *m, const char *dir, lop_err *e);
const char *st_adapter_base(void);  /* the --base override, or NULL */
int st_priv_set_base(st_model *m, st_model *base, lop_err *e);
int st_priv_own(st_model *m, void *buf, lop_err *e);
void st_priv_unmap(st_model *m, int i);
#endif
