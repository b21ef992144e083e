/* outsource.c — the output guard's checks of a model source (see outpath.h): its config and
 * tokenizer files are usable and agree with its tensors. Apart from outpath.c so that a tool that
 * never reads a model (model-card) does not link the safetensors reader. */
#include "outpath.h"
#include "config.h"
#include "fsutil.h"
#include "safetensors.h"
#include "tool.h"
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usable_json(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p) tool_die(1, "out of memory");
    snprintf(p, n, "%s/%s", dir, name);
    struct stat st;
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
        char head = 0, tail = 0;
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && st.st_size > 0) {
            /* first and last non-blank bytes: '{' ... '}' (a full parse is the reader's job) */
            char buf[4096];
            ssize_t r = pread(fd, buf, sizeof buf, 0);
            for (ssize_t i = 0; i < r && !head; i++) if (buf[i] > ' ') head = buf[i];
            off_t at = st.st_size > (off_t)sizeof buf ? st.st_size - (off_t)sizeof buf : 0;
            r = pread(fd, buf, sizeof buf, at);
            for (ssize_t i = r - 1; i >= 0 && !tail; i--) if (buf[i] > ' ') tail = buf[i];
        }
        if (fd >= 0) close(fd);
        if (st.st_size == 0) tool_die(1, "%s is empty: an output would carry it unusable (remove it, or restore it)", p);
        if (head != '{' || tail != '}')
            tool_die(1, "%s is not a JSON object: an output would carry it unusable", p);
    }
    free(p);
}

int out_source_usable(const char *model) {
    if (!model || !strcmp(model, "-")) return 1;
    char *dir = fs_is_dir(model) ? strdup(model) : fs_dirname(model);
    if (!dir) tool_die(1, "out of memory");
    usable_json(dir, "config.json");
    usable_json(dir, "tokenizer.json");
    usable_json(dir, "tokenizer_config.json");
    size_t n = strlen(dir) + 16;
    char *c = malloc(n);
    if (!c) tool_die(1, "out of memory");
    snprintf(c, n, "%s/config.json", dir);
    int has = fs_is_file(c);
    free(c); free(dir);
    size_t ml = strlen(model);
    if (has && !(ml >= 4 && !strcmp(model + ml - 4, ".zst"))) {   /* config and tensors agree on the layer count (headers only: mmap, no reads) */
        st_model *st;
        lop_err e;
        lop_config cfg;
        if (st_open(&st, model, &e)) tool_die_err(&e);
        if (st->config_json && config_parse(&cfg, st->config_json, &e) == 0) {
            const char **names = malloc(sizeof(char *) * (st->n ? st->n : 1));
            if (!names) tool_die(1, "out of memory");
            for (int i = 0; i < st->n; i++) names[i] = st->info[i].name;
            config_detect_prefix(&cfg, names, st->n);
            int bad = config_check_layer_count(&cfg, names, st->n, &e);
            free(names);
            config_free(&cfg);
            if (bad) { st_close(st); tool_die(1, "%s: %s", model, e.msg); }
        }
        st_close(st);
    }
    return has;
}

uint64_t out_model_bytes(const char *model) {
    struct stat st;
    if (!model || !strcmp(model, "-") || stat(model, &st) != 0) return 0;
    if (S_ISREG(st.st_mode)) return (uint64_t)st.st_size;
    if (!S_ISDIR(st.st_mode)) return 0;
    DIR *d = opendir(model);
    if (!d) return 0;
    uint64_t sum = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (fnmatch("*.safetensors", de->d_name, 0)) continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", model, de->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) sum += (uint64_t)st.st_size;
    }
    closedir(d);
    return sum;
}

