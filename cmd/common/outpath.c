/* outpath.c — the output guard (see outpath.h). */
#include "outpath.h"
#include "provenance.h"
#include "fsutil.h"
#include "tool.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define MAX_PATHS 32

typedef struct in_path {
    const char *role, *path;
    char *real;          /* realpath */
    dev_t dev; ino_t ino;
    int is_dir;
    int implicit;        /* the folder of a model file: only its model files are protected */
} in_path;

typedef struct out_path {
    const char *opt;
    char *path;          /* trailing slashes removed */
    out_kind kind;
} out_path;

static in_path g_in[MAX_PATHS];
static int g_nin;
static out_path g_out[MAX_PATHS];
static int g_nout, g_checked;

void out_input(const char *role, const char *path) {
    prov_input(role, path);
    if (!path || !*path || !strcmp(path, "-") || g_nin == MAX_PATHS) return;
    struct stat st;
    if (stat(path, &st) != 0) return;   /* a missing input fails where it is read */
    in_path *p = &g_in[g_nin++];
    p->role = role; p->path = path;
    p->real = fs_abspath(path);
    p->dev = st.st_dev; p->ino = st.st_ino;
    p->is_dir = S_ISDIR(st.st_mode);
    /* a model file's folder is read too (config.json, tokenizer files): an input folder */
    const char *rp = p->real ? p->real : path;
    size_t n = strlen(rp);
    if (S_ISREG(st.st_mode) && ((n >= 12 && !strcmp(rp + n - 12, ".safetensors")) ||
                                (n >= 16 && !strcmp(rp + n - 16, ".safetensors.zst")))) {
        char *dir = p->real ? fs_dirname(p->real) : NULL;   /* through a symlink: the target's */
        size_t dl = dir ? strlen(dir) + 16 : 0;
        char *cj = dir ? malloc(dl) : NULL;
        if (cj) snprintf(cj, dl, "%s/config.json", dir);
        /* only a model folder (one with a config.json the reader takes) is an input */
        if (cj && fs_is_file(cj) && g_nin < MAX_PATHS) {
            out_input(role, dir);   /* kept: the table holds its pointer */
            g_in[g_nin - 1].implicit = 1;
        } else free(dir);
        free(cj);
    }
}

const char *out_output(const char *opt, const char *path, out_kind kind) {
    if (!path || !strcmp(path, "-")) return path;
    char *p = strdup(path);
    if (!p) tool_die(1, "out of memory");
    for (size_t k = strlen(p); k > 1 && p[k - 1] == '/'; k--) p[k - 1] = 0;
    if (g_nout < MAX_PATHS) {
        g_out[g_nout].opt = opt; g_out[g_nout].path = p; g_out[g_nout].kind = kind;
        g_nout++;
        g_checked = 0;
    }
    return p;
}

/* a is b or inside b (canonical paths) */
static int within(const char *a, const char *b) {
    size_t n = strlen(b);
    if (strncmp(a, b, n)) return 0;
    return a[n] == 0 || a[n] == '/' || (n == 1 && b[0] == '/');
}

/* canonical form of a path that may not exist: realpath of its parent + its base name */
static char *canon_future(const char *path) {
    char *r = fs_abspath(path);
    if (r) return r;
    char *dir = fs_dirname(path);
    char *rd = dir ? fs_abspath(dir) : NULL;
    free(dir);
    if (!rd) return NULL;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(rd) + strlen(base) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", strcmp(rd, "/") ? rd : "", base);
    free(rd);
    return s;
}

/* Files lop writes into an output folder (model, adapter, checkpoint): a folder holding anything
 * else is never replaced, --force or not. */
static int lop_file(const char *f) {
    static const char *const names[] = {
        "config.json", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "tokenizer.model", "generation_config.json",
        "chat_template.jinja", "chat_template.json", "added_tokens.json", "vocab.json",
        "merges.txt", "adapter_config.json", "adapter_model.safetensors", "state.json",
        "state.safetensors", NULL};
    for (int i = 0; names[i]; i++) if (!strcmp(f, names[i])) return 1;
    return !fnmatch("model*.safetensors", f, 0) || !fnmatch("step-[0-9]*", f, 0);
}

/* a name that a model folder's reader would pick up */
static int model_file_name(const char *f) {
    return !strcmp(f, "config.json") || !strcmp(f, "model.safetensors") ||
           !strcmp(f, "model.safetensors.index.json") || !strcmp(f, "tokenizer.json") ||
           !strcmp(f, "tokenizer_config.json") || !strcmp(f, "adapter_config.json") ||
           !strcmp(f, "adapter_model.safetensors") ||
           !fnmatch("model-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].safetensors", f, 0);
}

/* first entry of a folder that is not '.'/'..' (and, with only_foreign, not a lop file); 0: none */
static int folder_entry(const char *dir, int only_foreign, char *name, size_t n) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    int found = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (only_foreign && lop_file(de->d_name)) continue;
        snprintf(name, n, "%s", de->d_name);
        found = 1;
        break;
    }
    closedir(d);
    return found;
}

static void check_one(const out_path *o) {
    const char *path = o->path, *opt = o->opt;
    char *cwd = getcwd(NULL, 0), *canon = canon_future(path);
    if (!strcmp(path, ".") || !strcmp(path, "..") || (canon && cwd && within(cwd, canon)))
        tool_die(2, "%s %s: refusing to write over the working folder (or a folder holding it)", opt, path);
    free(cwd);
    for (int i = 0; i < g_nout; i++) {
        const out_path *q = &g_out[i];
        if (q == o) break;
        char *c2 = canon_future(q->path);
        int same = c2 && canon && !strcmp(c2, canon);
        free(c2);
        if (same) tool_die(2, "%s %s: the same path as %s", opt, path, q->opt);
    }
    struct stat st, lst;
    int exists = stat(path, &st) == 0;
    int link_only = !exists && lstat(path, &lst) == 0;   /* a dangling symlink */
    if (exists) {
        for (int i = 0; i < g_nin; i++)
            if (g_in[i].dev == st.st_dev && g_in[i].ino == st.st_ino)
                tool_die(2, "%s %s: is the input %s %s; an output never replaces an input", opt, path,
                    g_in[i].role, g_in[i].path);
        if (S_ISDIR(st.st_mode) && canon)
            for (int i = 0; i < g_nin; i++)
                if (g_in[i].real && within(g_in[i].real, canon) &&
                    !(o->kind == OUT_CKPTS && !strcmp(g_in[i].role, "checkpoint")))
                    tool_die(2, "%s %s: holds the input %s %s; an output never replaces an input", opt,
                        path, g_in[i].role, g_in[i].path);
    }
    /* a file written into an input folder: refused when it exists (it is part of that input) or
     * when the folder's reader would pick it up */
    if (canon) {
        const char *base = strrchr(canon, '/');
        base = base ? base + 1 : canon;
        char *dir = fs_dirname(canon);
        for (int i = 0; dir && i < g_nin; i++)
            if (g_in[i].is_dir && g_in[i].real && within(dir, g_in[i].real) &&
                (((exists || link_only) && !g_in[i].implicit) || model_file_name(base)))
                tool_die(2, "%s %s: would replace a file of the input %s folder %s", opt, path,
                    g_in[i].role, g_in[i].path);
        free(dir);
    }
    free(canon);
    if (exists && !S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) return;  /* /dev/null, a FIFO */
    if (exists && S_ISDIR(st.st_mode)) {
        char name[NAME_MAX + 1];
        if (o->kind == OUT_FILE) tool_die(2, "%s %s: is a folder; a file is written here", opt, path);
        int resumed = 0;
        if (o->kind == OUT_CKPTS) {   /* earlier checkpoints: fine when one of them is resumed */
            char *rc = fs_abspath(path);
            for (int i = 0; rc && i < g_nin; i++)
                if (g_in[i].real && !strcmp(g_in[i].role, "checkpoint") && within(g_in[i].real, rc))
                    resumed = 1;
            free(rc);
        }
        if (!resumed && folder_entry(path, 0, name, sizeof name)) {
            if (!tool_opt.force)
                tool_die(2, "%s %s: the folder exists and is not empty (-f/--force replaces it)", opt, path);
            if (folder_entry(path, 1, name, sizeof name))
                tool_die(2, "%s %s: holds '%s', which lop does not write; refusing to replace this "
                       "folder, even with --force", opt, path, name);
        }
    } else if (exists || link_only) {
        if (o->kind == OUT_FOLDER || o->kind == OUT_CKPTS)
            tool_die(2, "%s %s: is a file; a folder is written here", opt, path);
        if (!tool_opt.force) tool_die(2, "%s %s: exists (-f/--force replaces it)", opt, path);
    }
    /* the parent folder: exists, is a folder, takes a new file (probed: access() says yes to
     * root on a read-only file system's permissions, a probe does not lie) */
    char *dir = fs_dirname(path);
    if (!dir) tool_die(1, "out of memory");
    struct stat ds;
    if (stat(dir, &ds) != 0) tool_die(1, "%s %s: folder %s does not exist", opt, path, dir);
    if (!S_ISDIR(ds.st_mode)) tool_die(1, "%s %s: %s is not a folder", opt, path, dir);
    size_t n = strlen(dir) + 32;
    char *probe = malloc(n);
    if (!probe) tool_die(1, "out of memory");
    snprintf(probe, n, "%s/.lop-probe.XXXXXX", dir);
    int fd = mkstemp(probe);
    if (fd < 0) tool_die(1, "%s %s: cannot write in %s (%s)", opt, path, dir, strerror(errno));
    close(fd);
    unlink(probe);
    free(probe); free(dir);
}

void out_check(void) {
    if (g_checked) return;
    for (int i = 0; i < g_nout; i++) check_one(&g_out[i]);
    g_checked = 1;
}

void out_space(const char *path, uint64_t bytes) {
    if (!path || !strcmp(path, "-")) return;
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) return;
    char *dir = fs_dirname(path);
    struct statvfs vs;
    if (dir && statvfs(dir, &vs) == 0) {
        uint64_t avail = (uint64_t)vs.f_bavail * vs.f_frsize;
        if (bytes > avail) {
            char a[32], b[32];
            tool_die(1, "%s: needs about %s bytes, %s has %s free", path, tool_commas((int64_t)bytes, a, sizeof a),
                dir, tool_commas((int64_t)avail, b, sizeof b));
        }
    }
    free(dir);
}

int out_is_folder(const char *path) {
    if (!path || !strcmp(path, "-")) return 0;
    size_t n = strlen(path);
    if ((n >= 12 && !strcmp(path + n - 12, ".safetensors")) || (n >= 4 && !strcmp(path + n - 4, ".zst")))
        return 0;
    struct stat st;
    return stat(path, &st) != 0 || S_ISDIR(st.st_mode);
}
