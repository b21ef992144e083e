/* fsutil.c — file-system helpers (see fsutil.h). */
#include "fsutil.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static fs_temp_hook_fn g_temp_hook;
void fs_set_temp_hook(fs_temp_hook_fn fn) { g_temp_hook = fn; }
void fs_temp_note(const char *path, int created) { if (g_temp_hook && path) g_temp_hook(path, created); }

int fs_is_dir(const char *path) { struct stat st; return stat(path, &st) == 0 && S_ISDIR(st.st_mode); }
int fs_is_file(const char *path) { struct stat st; return stat(path, &st) == 0 && S_ISREG(st.st_mode); }

int fs_write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; n -= (size_t)w;
    }
    return 0;
}

int fs_read_fd(int fd, const char *what, char **buf, size_t *len, lop_err *e) {
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    if (!b) return lop_fail(e, "%s: out of memory", what);
    for (;;) {
        if (n == cap) {
            char *nb = cap > SIZE_MAX / 4 ? NULL : realloc(b, cap * 2 + 1);
            if (!nb) { free(b); return lop_fail(e, "%s: out of memory", what); }
            b = nb; cap *= 2;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0) { if (errno == EINTR) continue; free(b); return lop_fail(e, "%s: %s", what, strerror(errno)); }
        if (r == 0) break;
        n += (size_t)r;
    }
    b[n] = 0;
    *buf = b; *len = n;
    return 0;
}

int fs_read_all(const char *path, char **buf, size_t *len, lop_err *e) {
    if (strcmp(path, "-") == 0) return fs_read_fd(0, "stdin", buf, len, e);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lop_fail(e, "%s: %s", path, strerror(errno));
    if (fs_is_dir(path)) { close(fd); return lop_fail(e, "%s: is a folder", path); }
    int r = fs_read_fd(fd, path, buf, len, e);
    close(fd);
    return r;
}

int fs_mkdir_p(const char *path, lop_err *e) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return lop_fail(e, "%s: path too long", path);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p; *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return lop_fail(e, "%s: %s", buf, strerror(errno));
            if (!fs_is_dir(buf)) return lop_fail(e, "%s: not a folder", buf);
            *p = c;
            if (!c) break;
        }
    }
    return 0;
}

char *fs_dirname(const char *path) {
    const char *s = strrchr(path, '/');
    if (!s) return strdup(".");
    if (s == path) return strdup("/");
    return strndup(path, (size_t)(s - path));
}

char *fs_abspath(const char *path) { return realpath(path, NULL); }

char *fs_relpath(const char *from_dir, const char *to) {
    char *a = realpath(from_dir, NULL), *b = realpath(to, NULL), *out = NULL;
    if (a && b) {
        /* the longest common prefix that ends at a path separator */
        size_t i = 0, cut = 0;
        while (a[i] && a[i] == b[i]) { i++; if (a[i - 1] == '/') cut = i; }
        if (!a[i] && (!b[i] || b[i] == '/')) cut = i;          /* a is b or an ancestor of b */
        else if (!b[i] && a[i] == '/') cut = i;                /* b is an ancestor of a */
        const char *ra = a + cut, *rb = b + cut;
        while (*ra == '/') ra++;
        while (*rb == '/') rb++;
        size_t ups = *ra ? 1 : 0;
        for (const char *c = ra; *c; c++) ups += *c == '/';
        size_t n = ups * 3 + strlen(rb) + 2;
        if ((out = malloc(n))) {
            out[0] = 0;
            for (size_t k = 0; k < ups; k++) strcat(out, k + 1 < ups || *rb ? "../" : "..");
            strcat(out, rb);
            if (!out[0]) strcpy(out, ".");
        }
    }
    free(a); free(b);
    return out;
}

int fs_temp_open(const char *path, char **tmp, lop_err *e) {
    char *dir = fs_dirname(path);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(dir) + strlen(base) + 32;
    char *t = malloc(n);
    if (!dir || !t) { free(dir); free(t); return lop_fail(e, "out of memory"); }
    snprintf(t, n, "%s/.%s.tmp.XXXXXX", dir, base);
    free(dir);
    int fd = mkstemp(t);
    if (fd < 0) { lop_fail(e, "%s: cannot create a temporary file: %s", path, strerror(errno)); free(t); return -1; }
    fchmod(fd, 0644);
    fs_temp_note(t, 1);
    *tmp = t;
    return fd;
}

static void fsync_dir_of(const char *path) {
    char *dir = fs_dirname(path);
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY) : -1;
    if (fd >= 0) { fsync(fd); close(fd); }
    free(dir);
}

int fs_commit(int fd, const char *tmp, const char *path, lop_err *e) {
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
        int er = errno; close(fd); unlink(tmp); fs_temp_note(tmp, 0);
        return lop_fail(e, "%s: %s", path, strerror(er));
    }
    if (close(fd) != 0) { int er = errno; unlink(tmp); fs_temp_note(tmp, 0); return lop_fail(e, "%s: %s", path, strerror(er)); }
    if (rename(tmp, path) != 0) { int er = errno; unlink(tmp); fs_temp_note(tmp, 0); return lop_fail(e, "%s: %s", path, strerror(er)); }
    fs_temp_note(tmp, 0);
    fsync_dir_of(path);
    return 0;
}

int fs_write_file_atomic(const char *path, const void *buf, size_t n, lop_err *e) {
    char *tmp;
    int fd = fs_temp_open(path, &tmp, e);
    if (fd < 0) return -1;
    if (fs_write_all(fd, buf, n) != 0) {
        int er = errno; close(fd); unlink(tmp); fs_temp_note(tmp, 0); free(tmp);
        return lop_fail(e, "%s: %s", path, strerror(er));
    }
    int r = fs_commit(fd, tmp, path, e);
    free(tmp);
    return r;
}

int fs_copy_file(const char *src, const char *dst, lop_err *e) {
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return lop_fail(e, "%s: %s", src, strerror(errno));
    char *tmp;
    int out = fs_temp_open(dst, &tmp, e);
    if (out < 0) { close(in); return -1; }
    char *buf = malloc(1 << 16);
    if (!buf) { close(in); close(out); unlink(tmp); fs_temp_note(tmp, 0); free(tmp); return lop_fail(e, "out of memory"); }
    for (;;) {
        ssize_t r = read(in, buf, 1 << 16);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 || (r > 0 && fs_write_all(out, buf, (size_t)r) != 0)) {
            int er = errno; close(in); close(out); unlink(tmp); fs_temp_note(tmp, 0); free(tmp); free(buf);
            return lop_fail(e, "copying %s to %s: %s", src, dst, strerror(er));
        }
        if (r == 0) break;
    }
    close(in);
    free(buf);
    int rc = fs_commit(out, tmp, dst, e);
    free(tmp);
    return rc;
}

char *fs_temp_dir(char *tmpl) {
    if (!mkdtemp(tmpl)) return NULL;
    mode_t um = umask(0);
    umask(um);
    chmod(tmpl, 0777 & ~um);
    fs_temp_note(tmpl, 1);
    return tmpl;
}

int fs_dir_replace(const char *tmpdir, const char *path, lop_err *e) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (rename(tmpdir, path) != 0) return lop_fail(e, "%s: %s", path, strerror(errno));
        fs_temp_note(tmpdir, 0);
        fsync_dir_of(path);
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) return lop_fail(e, "%s: exists and is not a folder", path);
    char *parent = fs_dirname(path);
    const char *base = strrchr(path, '/');
    base = base && base[1] ? base + 1 : path;
    size_t len = strlen(parent ? parent : ".") + strlen(base) + 32;
    char *old = malloc(len);
    if (!old || !parent) { free(old); free(parent); return lop_fail(e, "out of memory"); }
    snprintf(old, len, "%s/.%s.old.XXXXXX", parent, base);
    free(parent);
    int rc = 0;
    if (!fs_temp_dir(old)) { rc = lop_fail(e, "%s: %s", path, strerror(errno)); free(old); return rc; }
    /* the old folder replaces the empty placeholder: while it sits aside it is NOT a temporary
     * (a signal now must not delete it), so the placeholder is withdrawn first */
    fs_temp_note(old, 0);
    if (rename(path, old) != 0) { rc = lop_fail(e, "%s: %s", path, strerror(errno)); rmdir(old); free(old); return rc; }
    if (rename(tmpdir, path) != 0) {
        rc = lop_fail(e, "%s: %s", path, strerror(errno));
        rename(old, path);                          /* put the old folder back */
        free(old);
        return rc;
    }
    fs_temp_note(tmpdir, 0);
    fs_rm_rf(old);
    fsync_dir_of(path);
    free(old);
    return 0;
}

void fs_rm_rf(const char *path) {
    DIR *d = opendir(path);
    if (!d) { unlink(path); return; }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        size_t n = strlen(path) + strlen(de->d_name) + 2;
        char *p = malloc(n);
        if (!p) continue;
        snprintf(p, n, "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) fs_rm_rf(p);
        else unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(path);
}
