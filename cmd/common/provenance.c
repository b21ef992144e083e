/* provenance.c — the provenance line (see provenance.h). */
#include "provenance.h"
#include "tool.h"   /* LOP_VERSION */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static cJSON *g_opts, *g_inputs;
static int g_written;

static cJSON *opts(void) {
    if (!g_opts) g_opts = cJSON_CreateObject();
    return g_opts;
}

static void opt_set(const char *key, cJSON *v) {
    if (!key || !v || !opts()) { cJSON_Delete(v); return; }
    if (cJSON_GetObjectItemCaseSensitive(g_opts, key)) cJSON_ReplaceItemInObjectCaseSensitive(g_opts, key, v);
    else cJSON_AddItemToObject(g_opts, key, v);
}
void prov_opt_str(const char *key, const char *v) { opt_set(key, v ? cJSON_CreateString(v) : cJSON_CreateNull()); }
void prov_opt_num(const char *key, double v) { opt_set(key, cJSON_CreateNumber(v)); }
void prov_opt_bool(const char *key, int v) { opt_set(key, cJSON_CreateBool(v)); }
void prov_opt_json(const char *key, cJSON *v) { opt_set(key, v); }

/* ---- fingerprints ---- */

typedef struct fnv { uint64_t h; } fnv;
static void fnv_init(fnv *f) { f->h = 0xcbf29ce484222325ull; }
static void fnv_add(fnv *f, const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = f->h;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ull; }
    f->h = h;
}

/* bytes [off, off+n) of fd into the hash */
static void hash_range(fnv *f, int fd, uint64_t off, uint64_t n) {
    static unsigned char buf[1 << 16];
    while (n) {
        ssize_t k = pread(fd, buf, n < sizeof buf ? (size_t)n : sizeof buf, (off_t)off);
        if (k <= 0) break;
        fnv_add(f, buf, (size_t)k);
        off += (uint64_t)k; n -= (uint64_t)k;
    }
}

#define WHOLE_LIMIT (64ull << 20)
#define SAMPLE (16ull << 20)

/* a file: whole when small, else head + tail; returns "whole" or "head+tail" */
static const char *hash_file(fnv *f, const char *path, uint64_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) { if (fd >= 0) close(fd); return NULL; }
    *size = (uint64_t)st.st_size;
    fnv_add(f, size, sizeof *size);
    const char *how = "whole";
    if (*size <= WHOLE_LIMIT) hash_range(f, fd, 0, *size);
    else { hash_range(f, fd, 0, SAMPLE); hash_range(f, fd, *size - SAMPLE, SAMPLE); how = "head+tail"; }
    close(fd);
    return how;
}

/* a safetensors file: its 8-byte length and JSON header (names, dtypes, shapes, offsets) */
static void hash_st_header(fnv *f, const char *path, uint64_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) { if (fd >= 0) close(fd); return; }
    *size += (uint64_t)st.st_size;
    unsigned char pre[8];
    if (pread(fd, pre, 8, 0) == 8) {
        uint64_t h = 0;
        for (int i = 7; i >= 0; i--) h = h << 8 | pre[i];
        if (h > 100u << 20) h = 100u << 20;
        hash_range(f, fd, 0, 8 + h);
    }
    close(fd);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* a folder (model, adapter, checkpoint, eval data): config-like files whole, safetensors by
 * header, other files by size; in name order so the hash does not depend on readdir */
static void hash_dir(fnv *f, const char *dir, uint64_t *size) {
    DIR *d = opendir(dir);
    if (!d) return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) { cap = cap ? cap * 2 : 32; char **v = realloc(names, cap * sizeof *v); if (!v) break; names = v; }
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    if (names) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (!names[i]) continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(p, &st) || !S_ISREG(st.st_mode)) { free(names[i]); continue; }
        fnv_add(f, names[i], strlen(names[i]) + 1);
        size_t L = strlen(names[i]);
        if (L > 12 && !strcmp(names[i] + L - 12, ".safetensors")) hash_st_header(f, p, size);
        else if (L > 5 && !strcmp(names[i] + L - 5, ".json") && (uint64_t)st.st_size <= WHOLE_LIMIT) {
            uint64_t s2; hash_file(f, p, &s2); *size += s2;
        } else { uint64_t s2 = (uint64_t)st.st_size; fnv_add(f, &s2, sizeof s2); *size += s2; }
        free(names[i]);
    }
    free(names);
}

void prov_input(const char *role, const char *path) {
    if (!path || !*path || !strcmp(path, "-")) return;
    if (!g_inputs && !(g_inputs = cJSON_CreateArray())) return;
    cJSON *it;
    cJSON_ArrayForEach(it, g_inputs) {   /* once per (role, path) */
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(it, "role"), *p = cJSON_GetObjectItemCaseSensitive(it, "given");
        if (cJSON_IsString(r) && cJSON_IsString(p) && !strcmp(r->valuestring, role) && !strcmp(p->valuestring, path)) return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "role", role);
    cJSON_AddStringToObject(o, "given", path);
    char *abs = realpath(path, NULL);
    cJSON_AddStringToObject(o, "path", abs ? abs : path);
    free(abs);
    struct stat st;
    fnv f; fnv_init(&f);
    uint64_t size = 0;
    const char *how = NULL;
    if (!stat(path, &st) && S_ISDIR(st.st_mode)) { hash_dir(&f, path, &size); how = "config+headers"; }
    else if (!stat(path, &st) && S_ISREG(st.st_mode)) {
        size_t L = strlen(path);
        if (L > 12 && !strcmp(path + L - 12, ".safetensors")) { hash_st_header(&f, path, &size); how = "header"; }
        else how = hash_file(&f, path, &size);
    }
    if (how) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)f.h);
        cJSON_AddNumberToObject(o, "bytes", (double)size);
        cJSON_AddStringToObject(o, "hash", hex);
        cJSON_AddStringToObject(o, "hashed", how);
    } else cJSON_AddNullToObject(o, "bytes");
    cJSON_AddItemToArray(g_inputs, o);
}

int prov_is_line(const cJSON *o) {
    return cJSON_IsObject(o) && cJSON_GetObjectItemCaseSensitive(o, "provenance") != NULL;
}

void prov_write(FILE *f, const prov_run *run) {
    if (g_written) return;
    g_written = 1;
    const char *env = getenv("LOP_PROVENANCE");
    if (env && !strcmp(env, "0")) return;
    cJSON *o = cJSON_CreateObject(), *p = cJSON_AddObjectToObject(o, "provenance");
    cJSON_AddStringToObject(p, "tool", run->tool);
    cJSON_AddStringToObject(p, "version", LOP_VERSION);
    cJSON *av = cJSON_AddArrayToObject(p, "argv");
    for (int i = 0; i < run->argc; i++) cJSON_AddItemToArray(av, cJSON_CreateString(run->argv[i]));
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd)) cJSON_AddStringToObject(p, "cwd", cwd);
    time_t t = time(NULL);
    struct tm tm;
    char ts[32];
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(p, "time", ts);
    cJSON_AddNumberToObject(p, "threads", run->threads);
    cJSON_AddNumberToObject(p, "seed", (double)run->seed);
    cJSON_AddItemToObject(p, "options", g_opts ? g_opts : cJSON_CreateObject());
    g_opts = NULL;
    cJSON_AddItemToObject(p, "inputs", g_inputs ? g_inputs : cJSON_CreateArray());
    g_inputs = NULL;
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s) { fprintf(f, "%s\n", s); fflush(f); free(s); }
}
