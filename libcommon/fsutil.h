/* fsutil.h — small file-system helpers: whole-file reads, mkdir -p, copies, atomic writes
 * (a temporary name in the destination's folder, renamed into place). Errors are values. */
#ifndef LOP_FSUTIL_H
#define LOP_FSUTIL_H
#include <stddef.h>
#include <stdint.h>
#include "err.h"

int fs_is_dir(const char *path);
int fs_is_file(const char *path);     /* regular file (follows symlinks) */
/* Read a whole file (or "-" for stdin) into a malloc'd, NUL-terminated buffer. */
int fs_read_all(const char *path, char **buf, size_t *len, lop_err *e);
/* Read everything left on fd into a malloc'd buffer (NUL-terminated, len excludes the NUL). */
int fs_read_fd(int fd, const char *what, char **buf, size_t *len, lop_err *e);
int fs_write_all(int fd, const void *buf, size_t n);  /* retries short writes; -1 sets errno */
int fs_mkdir_p(const char *path, lop_err *e);
/* Copy src to dst (dst written atomically). */
int fs_copy_file(const char *src, const char *dst, lop_err *e);
/* "dir/.base.tmp.XXXXXX" next to path: creates and opens it (mode 0644); *tmp is malloc'd. */
int fs_temp_open(const char *path, char **tmp, lop_err *e);
/* fsync fd, close it, rename tmp to path, fsync the folder. Removes tmp on failure. */
int fs_commit(int fd, const char *tmp, const char *path, lop_err *e);
/* Write buf to path atomically. */
int fs_write_file_atomic(const char *path, const void *buf, size_t n, lop_err *e);
/* Temporaries: every temporary file or folder libcommon creates is announced (created 1) and,
 * once renamed into place or removed, withdrawn (created 0) through this hook, so that the tool
 * layer can remove leftovers on a signal or exit. NULL (the default): no hook. */
typedef void (*fs_temp_hook_fn)(const char *path, int created);
void fs_set_temp_hook(fs_temp_hook_fn fn);
void fs_temp_note(const char *path, int created);
/* mkdtemp for "dir/.base.tmp.XXXXXX"-style templates, announced through the hook; made 0755-umask
 * (mkdtemp makes 0700). NULL on failure (errno set). */
char *fs_temp_dir(char *tmpl);
/* Put the finished folder tmpdir at path: renamed when path does not exist; else the old folder is
 * moved aside (".base.old.XXXXXX"), tmpdir renamed into place, the old one removed (restored if
 * the rename fails). The caller has decided that path may be replaced. */
int fs_dir_replace(const char *tmpdir, const char *path, lop_err *e);
/* Remove a folder tree (best effort; for temporaries). */
void fs_rm_rf(const char *path);
/* Absolute, canonical path (realpath), malloc'd; NULL on failure. */
char *fs_abspath(const char *path);
/* The path of `to` relative to the folder `from_dir` ("../base"), both resolved with realpath
 * first; malloc'd, NULL if either does not exist. */
char *fs_relpath(const char *from_dir, const char *to);
/* Folder part of a path ("." when none), malloc'd. */
char *fs_dirname(const char *path);
#endif
