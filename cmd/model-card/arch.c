/* arch.c — config.json and safetensors headers of a model folder, read with cJSON only: the card
 * needs names and shapes, never tensor data. */
#include "arch.h"
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_HEADER (100u << 20)

static char *slurp(const char *path, size_t max, size_t *len, lop_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) { lop_fail(e, "%s: cannot open", path); return NULL; }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            if (cap > max) { free(buf); fclose(f); lop_fail(e, "%s: larger than %zu bytes", path, max); return NULL; }
            char *b2 = realloc(buf, cap * 2);
            if (!b2) { free(buf); buf = NULL; break; }
            buf = b2; cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) { lop_fail(e, "%s: out of memory", path); return NULL; }
    if (bad) { free(buf); lop_fail(e, "%s: read error", path); return NULL; }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int jint(const cJSON *o, const char *k, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    /* out of int's range (1e300 in a hostile config) is as good as absent: no undefined cast */
    return cJSON_IsNumber(v) && v->valuedouble > INT_MIN && v->valuedouble <= INT_MAX ? (int)v->valuedouble : dflt;
}

static void jstr(const cJSON *o, const char *k, char *dst, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsString(v)) snprintf(dst, n, "%s", v->valuestring);
}

/* Sum of numel over one safetensors file's header. */
static int count_file(const char *path, int64_t *params, lop_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return lop_fail(e, "%s: cannot open", path);
    unsigned char l8[8];
    if (fread(l8, 1, 8, f) != 8) { fclose(f); return lop_fail(e, "%s: truncated safetensors header", path); }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | l8[i];
    if (hl == 0 || hl > MAX_HEADER) { fclose(f); return lop_fail(e, "%s: bad safetensors header length %llu", path, (unsigned long long)hl); }
    char *h = malloc(hl + 1);
    if (!h) { fclose(f); return lop_fail(e, "%s: out of memory", path); }
    size_t got = fread(h, 1, hl, f);
    fclose(f);
    if (got != hl) { free(h); return lop_fail(e, "%s: truncated safetensors header", path); }
    h[hl] = 0;
    cJSON *j = cJSON_Parse(h);
    free(h);
    if (!cJSON_IsObject(j)) { cJSON_Delete(j); return lop_fail(e, "%s: safetensors header is not a JSON object", path); }
    const cJSON *t;
    cJSON_ArrayForEach(t, j) {
        if (!strcmp(t->string, "__metadata__")) continue;
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
        if (!cJSON_IsArray(shape)) { lop_fail(e, "%s: tensor %s has no shape", path, t->string); cJSON_Delete(j); return -1; }
        int64_t n = 1;
        const cJSON *d;
        cJSON_ArrayForEach(d, shape) {
            if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e15) { lop_fail(e, "%s: tensor %s has a bad shape", path, t->string); cJSON_Delete(j); return -1; }
            if (__builtin_mul_overflow(n, (int64_t)d->valuedouble, &n)) n = INT64_MAX;
        }
        if (n == INT64_MAX || __builtin_add_overflow(*params, n, params)) {
            lop_fail(e, "%s: tensor %s: more parameters than a count can hold", path, t->string);
            cJSON_Delete(j);
            return -1;
        }
    }
    cJSON_Delete(j);
    return 0;
}

int arch_count_params(const char *dir, int64_t *params, lop_err *e) {
    char p[2048];
    *params = 0;
    if (!is_dir(dir)) return count_file(dir, params, e);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (file_exists(p)) return count_file(p, params, e);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    if (!file_exists(p)) return lop_fail(e, "%s: no model.safetensors or index", dir);
    char *txt = slurp(p, MAX_HEADER, NULL, e);
    if (!txt) return -1;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    if (!cJSON_IsObject(wm)) { cJSON_Delete(j); return lop_fail(e, "%s: no weight_map", p); }
    /* each shard once, in order of first appearance */
    int nsh = 0, cap = 16;
    char **sh = malloc(sizeof(char *) * cap);
    int rc = 0;
    const cJSON *w;
    cJSON_ArrayForEach(w, wm) {
        if (!cJSON_IsString(w) || strchr(w->valuestring, '/')) { rc = lop_fail(e, "%s: bad shard name", p); break; }
        int seen = 0;
        for (int i = 0; i < nsh; i++) if (!strcmp(sh[i], w->valuestring)) seen = 1;
        if (seen) continue;
        if (nsh == cap) { cap *= 2; char **s2 = realloc(sh, sizeof(char *) * cap); if (!s2) { rc = lop_fail(e, "out of memory"); break; } sh = s2; }
        sh[nsh++] = w->valuestring;
    }
    for (int i = 0; rc == 0 && i < nsh; i++) {
        char sp[2048];
        snprintf(sp, sizeof sp, "%s/%s", dir, sh[i]);
        rc = count_file(sp, params, e);
    }
    free(sh);
    cJSON_Delete(j);
    return rc;
}

int arch_read(mc_arch *a, const char *path, lop_err *e) {
    memset(a, 0, sizeof *a);
    a->tied = -1;
    a->params = -1;
    a->zeros = -1;
    snprintf(a->path, sizeof a->path, "%s", path);
    char cp[2048];
    struct stat st;
    if (stat(path, &st) != 0) return lop_fail(e, "%s: no such model folder or config.json", path);
    if (is_dir(path)) snprintf(cp, sizeof cp, "%s/config.json", path);
    else snprintf(cp, sizeof cp, "%s", path);
    char *txt = slurp(cp, 64u << 20, NULL, e);
    if (!txt) return -1;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    if (!cJSON_IsObject(j)) { cJSON_Delete(j); return lop_fail(e, "%s: not a JSON object", cp); }
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    if (cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        snprintf(a->architecture, sizeof a->architecture, "%s", cJSON_GetArrayItem(archs, 0)->valuestring);
    jstr(j, "model_type", a->model_type, sizeof a->model_type);
    jstr(j, "torch_dtype", a->dtype, sizeof a->dtype);
    jstr(j, "dtype", a->dtype, sizeof a->dtype);
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(j, "text_config"); /* gemma3 multimodal */
    const cJSON *c = cJSON_IsObject(tc) ? tc : j;
    a->n_layers = jint(c, "num_hidden_layers", 0);
    a->hidden = jint(c, "hidden_size", 0);
    a->inter = jint(c, "intermediate_size", 0);
    a->n_heads = jint(c, "num_attention_heads", 0);
    a->n_kv_heads = jint(c, "num_key_value_heads", a->n_heads);
    a->head_dim = jint(c, "head_dim", a->n_heads ? a->hidden / a->n_heads : 0);
    a->vocab = jint(c, "vocab_size", 0);
    a->max_pos = jint(c, "max_position_embeddings", 0);
    const cJSON *tw = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
    if (!tw) tw = cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings");
    if (cJSON_IsBool(tw)) a->tied = cJSON_IsTrue(tw);
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(c, "layer_types"), *x;
    if (cJSON_IsArray(lt)) cJSON_ArrayForEach(x, lt) {
        if (!cJSON_IsString(x)) continue;
        if (strstr(x->valuestring, "sliding")) a->n_sliding++;
        else a->n_full++;
    }
    cJSON_Delete(j);
    if (a->n_layers <= 0) return lop_fail(e, "%s: no num_hidden_layers", cp);
    if (is_dir(path)) {
        int64_t n = 0;
        lop_err e2;
        if (arch_count_params(path, &n, &e2) == 0) a->params = n;
    }
    return 0;
}
