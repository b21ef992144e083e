/* textio.c — whole text inputs (textio.h), through st_src.c's byte source: one zstd rule (the
 * magic number) and one decoder for every input lop reads. */
#include "textio.h"
#include "st_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int text_read_bytes(const char *path, char **buf, size_t *len, lop_err *e) {
    int is_stdin = !strcmp(path, "-");
    int fd = is_stdin ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lop_fail(e, "%s: %s", path, strerror(errno));
    struct stat st;
    size_t cap = 1 << 16;
    if (fstat(fd, &st) == 0) {
        if (S_ISDIR(st.st_mode)) { if (!is_stdin) close(fd); return lop_fail(e, "%s: is a folder", path); }
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size + 1 > cap && (uint64_t)st.st_size < SIZE_MAX / 2)
            cap = (size_t)st.st_size + 1;   /* plain text: one read; zstd grows from there */
    }
    st_src s;
    const char *what = is_stdin ? "stdin" : path;
    if (src_open_fd(&s, fd, !is_stdin, what, e)) { src_close(&s); return -1; }
    char *b = malloc(cap);
    size_t n = 0;
    int rc = 0;
    if (!b) rc = lop_fail(e, "%s: out of memory", what);
    while (!rc) {
        if (cap - n < 2) {
            char *nb = cap > SIZE_MAX / 4 ? NULL : realloc(b, cap * 2);
            if (!nb) { rc = lop_fail(e, "%s: out of memory", what); break; }
            b = nb; cap *= 2;
        }
        size_t got;
        if (src_read(&s, b + n, cap - n - 1, &got, e)) { rc = -1; break; }
        if (!got) break;
        n += got;
    }
    src_close(&s);
    if (rc) { free(b); return -1; }
    b[n] = 0;
    *buf = b; *len = n;
    return 0;
}

int text_read(const char *path, char **buf, size_t *len, lop_err *e) {
    if (text_read_bytes(path, buf, len, e)) return -1;
    if (memchr(*buf, 0, *len)) {
        free(*buf); *buf = NULL;
        return lop_fail(e, "%s: binary data (a NUL byte) in a text file", strcmp(path, "-") ? path : "stdin");
    }
    return 0;
}
