/* layers.c — layer maps, tensor plans for dropping / renaming / merging layers, and the streaming
 * executor (see layers.h; a whole rewrite is surgery.c, choosing layers by score layer_scores.c). */
#include "layers.h"
#include "arch.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- layer maps ---- */

static int map_alloc(lop_layer_map *m, int n_src, int n_out, lop_err *e) {
    m->n_src = n_src; m->n_out = n_out;
    m->first = malloc((n_out ? n_out : 1) * sizeof(int));
    m->last = malloc((n_out ? n_out : 1) * sizeof(int));
    if (!m->first || !m->last) { layer_map_free(m); return lop_fail(e, "out of memory"); }
    return 0;
}

int layer_map_keep(lop_layer_map *m, int n_src, const int *keep, int n, lop_err *e) {
    memset(m, 0, sizeof *m);
    for (int i = 0; i < n; i++) {
        if (keep[i] < 0 || keep[i] >= n_src)
            return lop_failc(e, LOP_EUSAGE, "layer %d out of range (the model has %d layers)", keep[i], n_src);
        if (i && keep[i] <= keep[i - 1]) return lop_failc(e, LOP_EUSAGE, "kept layers not sorted/distinct");
    }
    if (map_alloc(m, n_src, n, e)) return -1;
    for (int i = 0; i < n; i++) m->first[i] = m->last[i] = keep[i];
    return 0;
}

int layer_map_merge(lop_layer_map *m, int n_src, const int *first, const int *last, int ng,
                    lop_err *e) {
    memset(m, 0, sizeof *m);
    int absorbed = 0;
    for (int g = 0; g < ng; g++) {
        if (first[g] < 0 || last[g] >= n_src)
            return lop_failc(e, LOP_EUSAGE, "merge %d-%d out of range (the model has %d layers)", first[g], last[g], n_src);
        if (last[g] <= first[g])
            return lop_failc(e, LOP_EUSAGE, "merge %d-%d: needs at least two layers, A < B", first[g], last[g]);
        if (g && first[g] <= last[g - 1])
            return lop_failc(e, LOP_EUSAGE, "merges %d-%d and %d-%d overlap or are not in order", first[g - 1], last[g - 1], first[g], last[g]);
        absorbed += last[g] - first[g];
    }
    if (map_alloc(m, n_src, n_src - absorbed, e)) return -1;
    int j = 0, g = 0;
    for (int l = 0; l < n_src; l++) {
        if (g < ng && l == first[g]) {
            m->first[j] = first[g]; m->last[j] = last[g]; j++;
            l = last[g]; g++;
        } else {
            m->first[j] = m->last[j] = l; j++;
        }
    }
    return 0;
}

void layer_map_free(lop_layer_map *m) {
    free(m->first); free(m->last);
    memset(m, 0, sizeof *m);
}

int *layer_map_bases(const lop_layer_map *m) {
    int *b = malloc((m->n_out ? m->n_out : 1) * sizeof *b);
    if (b) memcpy(b, m->first, m->n_out * sizeof *b);
    return b;
}

/* ---- names ---- */

/* Digits at s followed by '.', as a layer index (no leading '+', at most 9 digits), else -1. */
static int index_at(const char *s, const char **after) {
    int v = 0, k = 0;
    while (isdigit((unsigned char)s[k]) && k < 9) v = v * 10 + (s[k++] - '0');
    if (k == 0 || s[k] != '.') return -1;
    if (k > 1 && s[0] == '0') return -1;   /* "01" is not a layer index a writer produces */
    *after = s + k + 1;
    return v;
}

int layer_of_name(const char *name, const char *prefix, const char **rest) {
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl)) return -1;
    const char *after;
    int v = index_at(name + pl, &after);
    if (v >= 0 && rest) *rest = after;
    return v;
}

int layer_find_prefix(const st_info *infos, int n, char *prefix, int len, int *n_layers,
                      lop_err *e) {
    /* candidates: each distinct prefix ending in "layers." followed by "N." */
    int best = -1, best_count = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = infos[i].name, *p = nm, *after;
        const char *hit = NULL;
        while ((p = strstr(p, "layers.")) != NULL) {
            if ((p == nm || p[-1] == '.') && index_at(p + 7, &after) >= 0) { hit = p + 7; break; }
            p += 7;
        }
        if (!hit) continue;
        size_t pl = hit - nm;
        int count = 0;
        for (int j = 0; j < n; j++)
            if (!strncmp(infos[j].name, nm, pl) && index_at(infos[j].name + pl, &after) >= 0) count++;
        if (count > best_count) { best = i; best_count = count; }
        if (best == i && pl + 1 > (size_t)len) return lop_fail(e, "tensor name too long: %s", nm);
        if (best == i) { memcpy(prefix, nm, pl); prefix[pl] = 0; }
    }
    if (best < 0) return lop_fail(e, "no layer tensors (names like model.layers.N.*) in the model");
    int mx = -1;
    for (int j = 0; j < n; j++) {
        int v = layer_of_name(infos[j].name, prefix, NULL);
        if (v > mx) mx = v;
    }
    *n_layers = mx + 1;
    return 0;
}

int layer_rest_merged(const char *rest) { return arch_suffix_merged(rest); }

/* ---- plans ---- */

static const st_info *g_sort_infos; /* qsort has no user pointer; plans are built one at a time */

static int cmp_name_idx(const void *a, const void *b) {
    return strcmp(g_sort_infos[*(const int *)a].name, g_sort_infos[*(const int *)b].name);
}

static int find_name(const st_info *infos, const int *sorted, int n, const char *name) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(infos[sorted[mid]].name, name);
        if (!c) return sorted[mid];
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
}

static int cmp_ready(const void *a, const void *b) {
    const lop_plan_item *x = a, *y = b;
    if (x->ready != y->ready) return (x->ready > y->ready) - (x->ready < y->ready);
    return (x->src[0] > y->src[0]) - (x->src[0] < y->src[0]);
}

static char *layer_name(const char *prefix, int layer, const char *rest) {
    size_t n = strlen(prefix) + strlen(rest) + 16;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%d.%s", prefix, layer, rest);
    return s;
}

void layer_plan_free(lop_plan *p) {
    for (int i = 0; i < p->n; i++) { free(p->item[i].info.name); free(p->item[i].src); }
    free(p->item); free(p->out_infos); free(p->last_use); free(p->layer_params);
    memset(p, 0, sizeof *p);
}

static int add_item(lop_plan *p, const st_info *base, char *name, lop_plan_op op, int *src,
                    int nsrc, int layer_out, lop_err *e) {
    if (!name || !src) { free(name); free(src); return lop_fail(e, "out of memory"); }
    lop_plan_item *it = &p->item[p->n++];
    it->info = *base;
    it->info.name = name;
    it->info.offset = 0;
    it->op = op; it->src = src; it->nsrc = nsrc; it->layer_out = layer_out;
    it->ready = 0;
    for (int k = 0; k < nsrc; k++) if (src[k] > it->ready) it->ready = src[k];
    return 0;
}

static int *ints1(int v) { int *a = malloc(sizeof *a); if (a) *a = v; return a; }

int layer_plan_build(lop_plan *p, const st_info *infos, int n_in, const char *prefix,
                     const lop_layer_map *map, lop_merge_rule rule, lop_err *e) {
    memset(p, 0, sizeof *p);
    p->rule = rule; p->n_in = n_in; p->n_src_layers = map->n_src;
    int *grp = malloc((map->n_src ? map->n_src : 1) * sizeof *grp);
    int *sorted = malloc((n_in ? n_in : 1) * sizeof *sorted);
    p->item = calloc(n_in ? n_in : 1, sizeof *p->item);
    p->last_use = malloc((n_in ? n_in : 1) * sizeof *p->last_use);
    p->layer_params = calloc(map->n_src ? map->n_src : 1, sizeof *p->layer_params);
    int rc = 0;
    if (!grp || !sorted || !p->item || !p->last_use || !p->layer_params) { rc = lop_fail(e, "out of memory"); goto out; }
    for (int l = 0; l < map->n_src; l++) grp[l] = -1;
    for (int j = 0; j < map->n_out; j++)
        for (int l = map->first[j]; l <= map->last[j]; l++) grp[l] = j;
    for (int i = 0; i < n_in; i++) sorted[i] = i;
    g_sort_infos = infos;
    qsort(sorted, n_in, sizeof *sorted, cmp_name_idx);

    for (int i = 0; i < n_in && !rc; i++) {
        const st_info *t = &infos[i];
        const char *rest;
        int l = layer_of_name(t->name, prefix, &rest);
        p->params_in += (int64_t)st_numel(t);
        if (l < 0) {   /* embeddings, final norm, head: unchanged */
            rc = add_item(p, t, strdup(t->name), PLAN_COPY, ints1(i), 1, -1, e);
            continue;
        }
        if (l >= map->n_src) { rc = lop_fail(e, "%s: layer %d, but the model has %d layers", t->name, l, map->n_src); break; }
        p->layer_params[l] += (int64_t)st_numel(t);
        int j = grp[l];
        if (j < 0 || l != map->first[j]) continue;   /* dropped, or absorbed by its group's base */
        int size = map->last[j] - map->first[j] + 1;
        if (size == 1 || !layer_rest_merged(rest)) {
            rc = add_item(p, t, layer_name(prefix, j, rest), PLAN_COPY, ints1(i), 1, j, e);
            continue;
        }
        if (!st_dtype_is_float(t->dtype)) { rc = lop_fail(e, "%s: cannot merge a %s tensor", t->name, st_dtype_name(t->dtype)); break; }
        int *src = malloc(size * sizeof *src);
        if (!src) { rc = lop_fail(e, "out of memory"); break; }
        src[0] = i;
        for (int k = 1; k < size && !rc; k++) {
            char *nm = layer_name(prefix, l + k, rest);
            int s = nm ? find_name(infos, sorted, n_in, nm) : -1;
            if (!nm) rc = lop_fail(e, "out of memory");
            else if (s < 0) rc = lop_fail(e, "cannot merge layers %d-%d: %s has no counterpart %s", l, l + size - 1, t->name, nm);
            else if (infos[s].ndim != t->ndim || memcmp(infos[s].shape, t->shape, t->ndim * sizeof t->shape[0]))
                rc = lop_fail(e, "cannot merge layers %d-%d: %s and %s differ in shape", l, l + size - 1, t->name, nm);
            else if (!st_dtype_is_float(infos[s].dtype))
                rc = lop_fail(e, "%s: cannot merge a %s tensor", nm, st_dtype_name(infos[s].dtype));
            src[k] = s;
            free(nm);
        }
        if (rc) { free(src); break; }
        rc = add_item(p, t, layer_name(prefix, j, rest), PLAN_MERGE, src, size, j, e);
    }
    if (rc) goto out;
    qsort(p->item, p->n, sizeof *p->item, cmp_ready);
    for (int i = 0; i < n_in; i++) p->last_use[i] = -1;
    for (int k = 0; k < p->n; k++) {
        p->params_out += (int64_t)st_numel(&p->item[k].info);
        for (int s = 0; s < p->item[k].nsrc; s++) p->last_use[p->item[k].src[s]] = k;
    }
    /* a merged tensor of a member layer that its base lacks would be silently lost */
    for (int i = 0; i < n_in && !rc; i++) {
        const char *rest;
        int l = layer_of_name(infos[i].name, prefix, &rest);
        if (l < 0 || grp[l] < 0 || l == map->first[grp[l]] || !layer_rest_merged(rest)) continue;
        if (p->last_use[i] < 0)
            rc = lop_fail(e, "cannot merge layers %d-%d: %s has no counterpart in layer %d",
                          map->first[grp[l]], map->last[grp[l]], infos[i].name, map->first[grp[l]]);
    }
    if (rc) goto out;
    p->out_infos = malloc((p->n ? p->n : 1) * sizeof *p->out_infos);
    if (!p->out_infos) { rc = lop_fail(e, "out of memory"); goto out; }
    for (int k = 0; k < p->n; k++) p->out_infos[k] = p->item[k].info;
out:
    free(grp); free(sorted);
    if (rc) layer_plan_free(p);
    return rc;
}

/* ---- merging numbers ---- */

#define MCHUNK 2048

int layer_merge_tensor(void *out, st_dtype odt, const void *const *in, const st_dtype *dt, int n,
                       uint64_t numel, lop_merge_rule rule, lop_err *e) {
    if (!st_dtype_is_float(odt)) return lop_fail(e, "cannot merge into a %s tensor", st_dtype_name(odt));
    for (int k = 0; k < n; k++)
        if (!st_dtype_is_float(dt[k])) return lop_fail(e, "cannot merge a %s tensor", st_dtype_name(dt[k]));
    uint64_t nch = (numel + MCHUNK - 1) / MCHUNK;
    size_t osz = st_dtype_size(odt);
    #pragma omp parallel for schedule(static)
    for (uint64_t c = 0; c < nch; c++) {
        float base[MCHUNK], acc[MCHUNK], t[MCHUNK];
        uint64_t o = c * MCHUNK;
        size_t m = numel - o < MCHUNK ? (size_t)(numel - o) : MCHUNK;
        st_to_f32(base, (const char *)in[0] + o * st_dtype_size(dt[0]), dt[0], m);
        memcpy(acc, base, m * sizeof *acc);
        for (int k = 1; k < n; k++) {
            st_to_f32(t, (const char *)in[k] + o * st_dtype_size(dt[k]), dt[k], m);
            switch (rule) {
            case LMERGE_RDSC:    for (size_t i = 0; i < m; i++) acc[i] = acc[i] + (t[i] - base[i]); break;
            case LMERGE_AVERAGE: for (size_t i = 0; i < m; i++) acc[i] = acc[i] + t[i]; break;
            case LMERGE_REPLACE: for (size_t i = 0; i < m; i++) acc[i] = acc[i] + (t[i] - acc[i]); break;
            }
        }
        if (rule == LMERGE_AVERAGE)
            for (size_t i = 0; i < m; i++) acc[i] = acc[i] / (float)n;
        st_from_f32((char *)out + o * osz, acc, odt, m);
    }
    return 0;
}

/* ---- the streaming executor ---- */

int layer_plan_run(const lop_plan *p, st_reader *r, st_writer *w,
                   void (*progress)(void *user, uint64_t bytes), void *user, lop_err *e) {
    int n_in;
    const st_info *in = st_reader_infos(r, &n_in);
    if (n_in != p->n_in) return lop_fail(e, "plan built for %d tensors, stream has %d", p->n_in, n_in);
    void **held = calloc(n_in ? n_in : 1, sizeof *held);
    if (!held) return lop_fail(e, "out of memory");
    void *obuf = NULL;
    uint64_t ocap = 0, bytes = 0;
    int rc = 0, next = 0, expect = 0, idx;
    const void *data;
    for (;;) {
        int got = st_reader_next(r, &idx, &data, e);
        if (got < 0) { rc = -1; break; }
        if (got == 0) break;
        if (idx != expect) { rc = lop_fail(e, "tensor stream out of order (got %d, expected %d)", idx, expect); break; }
        expect++;
        bytes += in[idx].nbytes;
        int lu = p->last_use[idx];
        if (lu >= 0 && p->item[lu].ready > idx) {   /* needed by a later output: hold a copy */
            held[idx] = malloc(in[idx].nbytes ? in[idx].nbytes : 1);
            if (!held[idx]) { rc = lop_fail(e, "out of memory holding %s (%llu bytes)", in[idx].name, (unsigned long long)in[idx].nbytes); break; }
            memcpy(held[idx], data, in[idx].nbytes);
        }
        for (; next < p->n && p->item[next].ready == idx && !rc; next++) {
            const lop_plan_item *it = &p->item[next];
            if (it->op == PLAN_COPY) {
                rc = st_writer_put(w, next, it->src[0] == idx ? data : held[it->src[0]], e);
            } else {
                const void *srcs[64];
                st_dtype dts[64];
                if (it->nsrc > 64) { rc = lop_fail(e, "cannot merge more than 64 layers at once"); break; }
                for (int k = 0; k < it->nsrc; k++) {
                    srcs[k] = it->src[k] == idx ? data : held[it->src[k]];
                    dts[k] = in[it->src[k]].dtype;
                }
                if (it->info.nbytes > ocap) {
                    free(obuf);
                    ocap = it->info.nbytes;
                    obuf = malloc(ocap);
                    if (!obuf) { ocap = 0; rc = lop_fail(e, "out of memory"); break; }
                }
                rc = layer_merge_tensor(obuf, it->info.dtype, srcs, dts, it->nsrc, st_numel(&it->info), p->rule, e);
                if (!rc) rc = st_writer_put(w, next, obuf, e);
            }
            for (int k = 0; k < it->nsrc; k++)
                if (p->last_use[it->src[k]] == next) { free(held[it->src[k]]); held[it->src[k]] = NULL; }
        }
        if (rc) break;
        if (progress) progress(user, bytes);
    }
    if (!rc && (expect != n_in || next != p->n))
        rc = lop_fail(e, "tensor stream ended early (%d of %d tensors)", expect, n_in);
    for (int i = 0; i < n_in; i++) free(held[i]);
    free(held); free(obuf);
    return rc;
}
