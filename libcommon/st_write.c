/* st_write.c — writing safetensors: a stream on stdout, one file, or an HF folder (shards named as
 * transformers names them, model.safetensors.index.json, config.json, tokenizer files copied).
 * Files and folders are built under temporary names and renamed into place by st_writer_finish. */
#include "fsutil.h"
#include "st_internal.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SHARD 5000000000ull /* transformers' max_shard_size="5GB" */

/* Files a model folder carries besides weights and config.json, copied from the source folder. */
static const char *const TOKENIZER_FILES[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "generation_config.json", "chat_template.jinja", "chat_template.json", "added_tokens.json",
    "vocab.json", "merges.txt", NULL};

enum { W_STREAM, W_FILE, W_FOLDER, W_DEVICE }; /* device: written in place, no rename */

struct st_writer {
    int kind, n, next;
    char *path;
    st_info *infos;               /* copies of the caller's, in write order */
    char *config, *source;
    int fd;                       /* the open output (stream: 1) */
    char *tmp;                    /* file: its temporary name */
    ZSTD_CCtx *z;
    unsigned char *zout; size_t zcap;
    char *tmpdir;                 /* folder: built here, renamed into place */
    int nshards, cur;             /* folder: shard count and the one being written (-1: none) */
    int *shard_of;                /* [n] */
};

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int out_raw(st_writer *w, const void *p, size_t n, lop_err *e) {
    if (fs_write_all(w->fd, p, n))
        return lop_fail(e, "%s: write failed: %s", w->kind == W_STREAM ? "stdout" : w->path, strerror(errno));
    return 0;
}

static int out_z(st_writer *w, const void *p, size_t n, ZSTD_EndDirective end, lop_err *e) {
    ZSTD_inBuffer in = {p, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->zout, w->zcap, 0};
        size_t r = ZSTD_compressStream2(w->z, &out, &in, end);
        if (ZSTD_isError(r)) return lop_fail(e, "zstd: %s", ZSTD_getErrorName(r));
        if (out.pos && out_raw(w, w->zout, out.pos, e)) return -1;
        if (end == ZSTD_e_end ? r == 0 : in.pos == in.size) return 0;
    }
}

static int out_write(st_writer *w, const void *p, size_t n, lop_err *e) {
    return w->z ? out_z(w, p, n, ZSTD_e_continue, e) : out_raw(w, p, n, e);
}

static int start_zstd(st_writer *w, int level, int workers, lop_err *e) {
    w->z = ZSTD_createCCtx();
    w->zcap = ZSTD_CStreamOutSize();
    w->zout = malloc(w->zcap);
    if (!w->z || !w->zout) return lop_fail(e, "out of memory");
    if (ZSTD_isError(ZSTD_CCtx_setParameter(w->z, ZSTD_c_compressionLevel, level)))
        return lop_failc(e, LOP_EUSAGE, "zstd level %d out of range", level);
    /* multithreaded zstd buffers several jobs per worker: memory would no longer be bounded by
     * the largest tensor, so it is used only when asked for */
    if (workers > 0 && !ZSTD_isError(ZSTD_CCtx_setParameter(w->z, ZSTD_c_nbWorkers, workers)))
        ZSTD_CCtx_setParameter(w->z, ZSTD_c_jobSize, 4 << 20);
    return 0;
}

/* Header (with __metadata__) + nothing else: written at open for streams and files. */
static int write_header(st_writer *w, const st_info *v, int n, int with_config, lop_err *e) {
    const char *kv[6] = {"format", "pt"};
    int nm = 1;
    if (with_config && w->config) { kv[2 * nm] = "config"; kv[2 * nm + 1] = w->config; nm++; }
    if (with_config && w->source) { kv[2 * nm] = "source"; kv[2 * nm + 1] = w->source; nm++; }
    size_t len;
    unsigned char *h = st_build_header(v, n, kv, nm, &len);
    if (!h) return lop_fail(e, "out of memory");
    if (len - 8 > ST_MAX_HEADER) { free(h); return lop_fail(e, "header of %zu bytes exceeds the 100 MB limit", len - 8); }
    int rc = out_write(w, h, len, e);
    free(h);
    return rc;
}

/* transformers' rule, keeping order: start a new shard when the next tensor would push the
 * current one past the limit (a tensor larger than the limit gets a shard of its own). */
static int plan_shards(st_writer *w, uint64_t max) {
    w->shard_of = malloc((size_t)(w->n ? w->n : 1) * sizeof *w->shard_of);
    if (!w->shard_of) return -1;
    int s = 0; uint64_t cur = 0; int in_cur = 0;
    for (int i = 0; i < w->n; i++) {
        uint64_t b = w->infos[i].nbytes;
        if (in_cur && cur + b > max) { s++; cur = 0; in_cur = 0; }
        w->shard_of[i] = s;
        cur += b; in_cur++;
    }
    w->nshards = s + 1;
    return 0;
}

static void shard_name(const st_writer *w, int s, char *buf, size_t len) {
    if (w->nshards == 1) snprintf(buf, len, "model.safetensors");
    else snprintf(buf, len, "model-%05d-of-%05d.safetensors", s + 1, w->nshards);
}

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

static int close_shard(st_writer *w, lop_err *e) {
    if (w->fd < 0) return 0;
    int rc = 0;
    if (fsync(w->fd) != 0 && errno != EINVAL) rc = lop_fail(e, "%s: fsync: %s", w->path, strerror(errno));
    if (close(w->fd) != 0 && !rc) rc = lop_fail(e, "%s: %s", w->path, strerror(errno));
    w->fd = -1;
    return rc;
}

static int open_shard(st_writer *w, int s, lop_err *e) {
    if (close_shard(w, e)) return -1;
    char name[64];
    shard_name(w, s, name, sizeof name);
    char *p = join(w->tmpdir, name);
    if (!p) return lop_fail(e, "out of memory");
    w->fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    free(p);
    if (w->fd < 0) return lop_fail(e, "%s/%s: %s", w->path, name, strerror(errno));
    w->cur = s;
    int a = 0, b = 0;
    while (a < w->n && w->shard_of[a] < s) a++;
    b = a;
    while (b < w->n && w->shard_of[b] == s) b++;
    return write_header(w, w->infos + a, b - a, 0, e);
}

int st_writer_open(st_writer **out, const char *path, const st_info *infos, int n,
                   const char *config_json, const char *source_dir, const st_write_opts *o,
                   lop_err *e) {
    *out = NULL;
    st_writer *w = calloc(1, sizeof *w);
    if (!w) return lop_fail(e, "out of memory");
    w->fd = -1; w->cur = -1; w->n = n;
    w->path = strdup(path);
    /* "healed/" names the folder "healed": without the slash, its parent is where the temporary
     * folder goes */
    if (w->path) for (size_t k = strlen(w->path); k > 1 && w->path[k - 1] == '/'; k--) w->path[k - 1] = 0;
    if (w->path) path = w->path;
    w->infos = calloc((size_t)(n ? n : 1), sizeof *w->infos);
    if (!w->path || !w->infos) { st_writer_abort(w); return lop_fail(e, "out of memory"); }
    for (int i = 0; i < n; i++) {
        w->infos[i] = infos[i];
        w->infos[i].nbytes = st_numel(&infos[i]) * st_dtype_size(infos[i].dtype);
        if (!(w->infos[i].name = strdup(infos[i].name))) { st_writer_abort(w); return lop_fail(e, "out of memory"); }
    }
    if (config_json && !(w->config = strdup(config_json))) { st_writer_abort(w); return lop_fail(e, "out of memory"); }
    if (source_dir) {
        w->source = fs_abspath(source_dir);
        if (!w->source) w->source = strdup(source_dir);
    }
    int level = o ? o->zstd_level : 0;
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (!strcmp(path, "-")) w->kind = W_STREAM;
    else if (exists && !S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) w->kind = W_DEVICE; /* /dev/null, a FIFO */
    else if (ends_with(path, ".safetensors") || ends_with(path, ".zst") || (exists && S_ISREG(st.st_mode))) w->kind = W_FILE;
    else w->kind = W_FOLDER;
    if (w->kind == W_FILE && ends_with(path, ".zst") && level == 0) level = 3;
    int rc = 0;
    if (w->kind == W_FOLDER) {
        if (level > 0) rc = lop_failc(e, LOP_EUSAGE, "%s: zstd compression is for a file or stream output, not a folder", path);
        else if (plan_shards(w, o && o->max_shard_size ? o->max_shard_size : DEFAULT_SHARD)) rc = lop_fail(e, "out of memory");
        else {
            char *parent = fs_dirname(path);
            const char *base = strrchr(path, '/');
            base = base && base[1] ? base + 1 : path;
            size_t len = strlen(parent ? parent : ".") + strlen(base) + 32;
            w->tmpdir = malloc(len);
            if (!parent || !w->tmpdir) rc = lop_fail(e, "out of memory");
            else {
                snprintf(w->tmpdir, len, "%s/.%s.tmp.XXXXXX", parent, base);
                if (!fs_is_dir(parent)) rc = lop_fail(e, "%s: folder %s does not exist", path, parent);
                else if (!fs_temp_dir(w->tmpdir)) { rc = lop_fail(e, "%s: cannot create a temporary folder: %s", path, strerror(errno)); free(w->tmpdir); w->tmpdir = NULL; }
            }
            free(parent);
        }
    } else {
        if (w->kind == W_STREAM) {
            w->fd = 1;
            struct stat so;   /* a larger pipe buffer halves the context switches of big writes */
            if (fstat(1, &so) == 0 && S_ISFIFO(so.st_mode)) fcntl(1, F_SETPIPE_SZ, 1 << 20);
        }
        else if (w->kind == W_DEVICE) {
            w->fd = open(path, O_WRONLY | O_CLOEXEC);
            if (w->fd < 0) rc = lop_fail(e, "%s: %s", path, strerror(errno));
        } else w->fd = fs_temp_open(path, &w->tmp, e);
        if (w->fd < 0) rc = -1;
        if (!rc && level > 0) rc = start_zstd(w, level, 0, e);
        if (!rc) rc = write_header(w, w->infos, n, 1, e);
    }
    if (rc) { st_writer_abort(w); return -1; }
    *out = w;
    return 0;
}

int st_writer_put(st_writer *w, int idx, const void *data, lop_err *e) {
    if (idx != w->next || idx >= w->n)
        return lop_fail(e, "tensor %d written out of order (expected %d of %d)", idx, w->next, w->n);
    if (w->kind == W_FOLDER && w->shard_of[idx] != w->cur && open_shard(w, w->shard_of[idx], e)) return -1;
    if (out_write(w, data, w->infos[idx].nbytes, e)) return -1;
    w->next++;
    return 0;
}

/* A folder may be replaced only if it holds nothing but what a model folder holds, so that a
 * mistaken -o never deletes a user's other files. */
static int replaceable(const char *dir, lop_err *e) {
    DIR *d = opendir(dir);
    if (!d) return lop_fail(e, "%s: %s", dir, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) && !rc) {
        const char *f = de->d_name;
        if (!strcmp(f, ".") || !strcmp(f, "..")) continue;
        int ok = !strcmp(f, "config.json") || !strcmp(f, "model.safetensors.index.json") ||
                 !fnmatch("model*.safetensors", f, 0);
        for (int i = 0; TOKENIZER_FILES[i] && !ok; i++) ok = !strcmp(f, TOKENIZER_FILES[i]);
        if (!ok) rc = lop_fail(e, "%s: refusing to replace this folder: it holds '%s', which is not part of a model folder", dir, f);
    }
    closedir(d);
    return rc;
}

static int finish_folder(st_writer *w, lop_err *e) {
    for (int s = w->cur + 1; s < w->nshards; s++)   /* shards with no tensors (n == 0) */
        if (open_shard(w, s, e)) return -1;
    if (close_shard(w, e)) return -1;
    char name[64];
    int rc = 0;
    if (w->nshards > 1) {                           /* the index, as transformers writes it */
        sbuf b = {0};
        uint64_t total = 0;
        for (int i = 0; i < w->n; i++) total += w->infos[i].nbytes;
        sb_printf(&b, "{\n  \"metadata\": {\n    \"total_size\": %" PRIu64 "\n  },\n  \"weight_map\": {", total);
        for (int i = 0; i < w->n; i++) {
            shard_name(w, w->shard_of[i], name, sizeof name);
            sb_puts(&b, i ? ",\n    " : "\n    ");
            sb_json_string(&b, w->infos[i].name);
            sb_printf(&b, ": \"%s\"", name);
        }
        sb_puts(&b, "\n  }\n}\n");
        char *p = join(w->tmpdir, "model.safetensors.index.json");
        if (b.oom || !p) rc = lop_fail(e, "out of memory");
        else rc = fs_write_file_atomic(p, b.s, b.len, e);
        free(p); free(b.s);
        if (rc) return -1;
    }
    char *cp = join(w->tmpdir, "config.json");
    if (!cp) return lop_fail(e, "out of memory");
    if (w->config) {   /* ends with a newline, as transformers writes it */
        size_t len = strlen(w->config);
        char *t = malloc(len + 2);
        if (!t) rc = lop_fail(e, "out of memory");
        else {
            memcpy(t, w->config, len);
            if (!len || t[len - 1] != '\n') t[len++] = '\n';
            rc = fs_write_file_atomic(cp, t, len, e);
            free(t);
        }
    } else if (w->source) {
        char *sp = join(w->source, "config.json");
        if (sp && fs_is_file(sp)) rc = fs_copy_file(sp, cp, e);
        free(sp);
    }
    free(cp);
    if (rc) return -1;
    for (int i = 0; w->source && TOKENIZER_FILES[i] && !rc; i++) {
        char *sp = join(w->source, TOKENIZER_FILES[i]), *dp = join(w->tmpdir, TOKENIZER_FILES[i]);
        if (!sp || !dp) rc = lop_fail(e, "out of memory");
        else if (fs_is_file(sp)) {
            struct stat ss;
            /* an empty tokenizer.json would make the output unloadable: refuse to carry it */
            if (!strcmp(TOKENIZER_FILES[i], "tokenizer.json") && stat(sp, &ss) == 0 && ss.st_size == 0)
                rc = lop_fail(e, "%s is empty: the output would carry an unusable tokenizer", sp);
            else rc = fs_copy_file(sp, dp, e);
        }
        free(sp); free(dp);
    }
    if (rc) return -1;
    /* into place: rename the finished folder over the old one (moved aside, then removed) */
    struct stat st;
    if (lstat(w->path, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return lop_fail(e, "%s: exists and is not a folder", w->path);
        if (replaceable(w->path, e)) return -1;
    }
    return fs_dir_replace(w->tmpdir, w->path, e);
}

static void writer_free(st_writer *w) {
    st_infos_free(w->infos, w->n);
    if (w->z) ZSTD_freeCCtx(w->z);
    free(w->zout); free(w->path); free(w->tmp); free(w->tmpdir); free(w->shard_of);
    free(w->config); free(w->source);
    free(w);
}

int st_writer_finish(st_writer *w, lop_err *e) {
    int rc = 0;
    if (w->next != w->n) rc = lop_fail(e, "%s: only %d of %d tensors were written", w->path, w->next, w->n);
    else if (w->kind == W_FOLDER) {
        rc = finish_folder(w, e);
        if (!rc) { free(w->tmpdir); w->tmpdir = NULL; }
    } else {
        if (w->z) rc = out_z(w, NULL, 0, ZSTD_e_end, e);
        if (w->kind == W_FILE) {
            if (!rc) { rc = fs_commit(w->fd, w->tmp, w->path, e); w->fd = -1; free(w->tmp); w->tmp = NULL; }
        } else if (w->kind == W_DEVICE) {
            if (close(w->fd) != 0 && !rc) rc = lop_fail(e, "%s: %s", w->path, strerror(errno));
            w->fd = -1;
        }
    }
    if (rc) { st_writer_abort(w); return -1; }
    writer_free(w);
    return 0;
}

void st_writer_abort(st_writer *w) {
    if (!w) return;
    if (w->kind != W_STREAM && w->fd >= 0) close(w->fd);
    if (w->tmp) { unlink(w->tmp); fs_temp_note(w->tmp, 0); }
    if (w->tmpdir) { fs_rm_rf(w->tmpdir); fs_temp_note(w->tmpdir, 0); }
    writer_free(w);
}
