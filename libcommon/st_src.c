/* st_src.c — a sequential byte source over a file descriptor (pipe or file), decompressing zstd
 * transparently when the first bytes are zstd's magic number. Never seeks. */
#include "st_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t raw_read(st_src *s, void *buf, size_t n) {
    if (s->pre_pos < s->pre_len) {            /* peeked bytes first */
        size_t k = s->pre_len - s->pre_pos;
        if (k > n) k = n;
        memcpy(buf, s->pre + s->pre_pos, k);
        s->pre_pos += k;
        return (ssize_t)k;
    }
    for (;;) {
        ssize_t r = read(s->fd, buf, n);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) s->eof = 1;
        return r;
    }
}

int src_open_fd(st_src *s, int fd, int own_fd, const char *what, lop_err *e) {
    memset(s, 0, sizeof *s);
    s->fd = fd; s->own_fd = own_fd; s->what = what;
    struct stat st;   /* a larger pipe buffer: fewer, bigger reads */
    if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) fcntl(fd, F_SETPIPE_SZ, 1 << 20);
    while (s->pre_len < 4) {                  /* peek for the zstd magic number */
        ssize_t r = read(fd, s->pre + s->pre_len, 4 - s->pre_len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return lop_fail(e, "%s: %s", what, strerror(errno));
        if (r == 0) { s->eof = 1; break; }
        s->pre_len += (size_t)r;
    }
    uint32_t m = 0;
    for (int i = 3; i >= 0; i--) m = m << 8 | s->pre[i];
    if (s->pre_len == 4 && m == ST_ZSTD_MAGIC) {
        s->z = ZSTD_createDCtx();
        s->zin_cap = ZSTD_DStreamInSize();
        s->zin = malloc(s->zin_cap);
        if (!s->z || !s->zin) return lop_fail(e, "%s: out of memory", what);
        s->zret = 1;
    }
    return 0;
}

int src_read(st_src *s, void *buf, size_t n, size_t *got, lop_err *e) {
    *got = 0;
    if (!n) return 0;
    if (!s->z) {
        ssize_t r = raw_read(s, buf, n);
        if (r < 0) return lop_fail(e, "%s: %s", s->what, strerror(errno));
        *got = (size_t)r;
        return 0;
    }
    ZSTD_outBuffer out = {buf, n, 0};
    while (out.pos == 0) {
        if (s->zin_pos == s->zin_len && !s->eof) {
            ssize_t r = raw_read(s, s->zin, s->zin_cap);
            if (r < 0) return lop_fail(e, "%s: %s", s->what, strerror(errno));
            s->zin_len = (size_t)r; s->zin_pos = 0;
        }
        if (s->zin_pos == s->zin_len && s->eof) {
            if (s->zret != 0) return lop_fail(e, "%s: truncated zstd stream", s->what);
            break;                            /* clean end of the last frame */
        }
        ZSTD_inBuffer in = {s->zin, s->zin_len, s->zin_pos};
        size_t r = ZSTD_decompressStream(s->z, &out, &in);
        s->zin_pos = in.pos;
        if (ZSTD_isError(r)) return lop_fail(e, "%s: zstd: %s", s->what, ZSTD_getErrorName(r));
        s->zret = r;
    }
    *got = out.pos;
    return 0;
}

int src_read_exact(st_src *s, void *buf, size_t n, const char *wanted, lop_err *e) {
    size_t done = 0;
    while (done < n) {
        size_t got;
        if (src_read(s, (char *)buf + done, n - done, &got, e)) return -1;
        if (!got) return lop_fail(e, "%s: truncated: the stream ended %zu bytes into %s (%zu expected)",
                                  s->what, done, wanted, n);
        done += got;
    }
    return 0;
}

int src_read_rest(st_src *s, unsigned char **buf, size_t *len, lop_err *e) {
    size_t cap = 1 << 20, n = 0;
    unsigned char *b = malloc(cap);
    if (!b) return lop_fail(e, "%s: out of memory", s->what);
    for (;;) {
        if (n == cap) {
            unsigned char *nb = realloc(b, cap *= 2);
            if (!nb) { free(b); return lop_fail(e, "%s: out of memory", s->what); }
            b = nb;
        }
        size_t got;
        if (src_read(s, b + n, cap - n, &got, e)) { free(b); return -1; }
        if (!got) break;
        n += got;
    }
    *buf = b; *len = n;
    return 0;
}

int src_at_end(st_src *s, lop_err *e) {
    unsigned char c;
    size_t got;
    if (src_read(s, &c, 1, &got, e)) return -1;
    return got == 0;
}

void src_close(st_src *s) {
    if (s->z) ZSTD_freeDCtx(s->z);
    free(s->zin);
    if (s->own_fd && s->fd >= 0) close(s->fd);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}
