/* width.c — width-pruning selections, tensor slicing and the config edit (see width.h). */
#include "width.h"
#include "arch.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *width_imp_name(lop_width_imp m) {
    switch (m) {
    case WIDTH_ACTIVATION: return "activation";
    case WIDTH_MAW: return "maw";
    case WIDTH_VOW: return "vow";
    case WIDTH_PON: return "pon";
    }
    return "?";
}

int width_imp_parse(const char *s, lop_width_imp *out) {
    static const lop_width_imp all[] = {WIDTH_ACTIVATION, WIDTH_MAW, WIDTH_VOW, WIDTH_PON};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (!strcmp(s, width_imp_name(all[i]))) { *out = all[i]; return 0; }
    return -1;
}

/* ---- selections ---- */

static int *iota(int n) {
    int *a = malloc((size_t)(n ? n : 1) * sizeof *a);
    if (a) for (int i = 0; i < n; i++) a[i] = i;
    return a;
}

void width_free(lop_width *w) {
    for (int l = 0; l < w->L; l++) {
        if (w->mlp) free(w->mlp[l]);
        if (w->qh) free(w->qh[l]);
        if (w->kvh) free(w->kvh[l]);
    }
    free(w->mlp); free(w->qh); free(w->kvh); free(w->hid);
    memset(w, 0, sizeof *w);
}

int width_init(lop_width *w, const lop_config *c, int nc, int ni, int nq, int nkv, lop_err *e) {
    memset(w, 0, sizeof *w);
    w->L = c->n_layers; w->C = c->hidden; w->F = c->inter; w->Hq = c->n_heads;
    w->Hkv = c->n_kv_heads; w->D = c->head_dim;
    w->nc = nc ? nc : w->C; w->ni = ni ? ni : w->F;
    w->nkv = nkv ? nkv : w->Hkv; w->nq = nq ? nq : w->nkv * (w->Hq / w->Hkv);
    if (w->nc < 1 || w->nc > w->C)
        return lop_failc(e, LOP_EUSAGE, "--hidden-keep %d: hidden_size is %d (keep 1..%d)", w->nc, w->C, w->C);
    if (w->ni < 1 || w->ni > w->F)
        return lop_failc(e, LOP_EUSAGE, "--mlp-keep %d: intermediate_size is %d (keep 1..%d)", w->ni, w->F, w->F);
    if (w->nkv < 1 || w->nkv > w->Hkv)
        return lop_failc(e, LOP_EUSAGE, "--kv-keep %d: num_key_value_heads is %d (keep 1..%d)", w->nkv, w->Hkv, w->Hkv);
    if (w->nq < 1 || w->nq > w->Hq)
        return lop_failc(e, LOP_EUSAGE, "--heads-keep %d: num_attention_heads is %d (keep 1..%d)", w->nq, w->Hq, w->Hq);
    int r = w->Hq / w->Hkv;
    if (w->nq % w->nkv)
        return lop_failc(e, LOP_EUSAGE, "--heads-keep %d is not a multiple of the %d KV groups kept "
                         "(GQA: the same number of query heads per group; or remove whole groups "
                         "with --kv-keep)", w->nq, w->nkv);
    if (w->nq / w->nkv > r)
        return lop_failc(e, LOP_EUSAGE, "--heads-keep %d over %d KV groups is %d query heads per group, "
                         "but a group has %d", w->nq, w->nkv, w->nq / w->nkv, r);
    int L = w->L;
    w->mlp = calloc((size_t)(L ? L : 1), sizeof *w->mlp);
    w->qh = calloc((size_t)(L ? L : 1), sizeof *w->qh);
    w->kvh = calloc((size_t)(L ? L : 1), sizeof *w->kvh);
    if (!w->mlp || !w->qh || !w->kvh) { width_free(w); return lop_fail(e, "out of memory"); }
    /* parts kept whole are chosen already */
    int fail = 0;
    for (int l = 0; l < L; l++) {
        if (w->ni == w->F) fail |= !(w->mlp[l] = iota(w->F));
        if (w->nq == w->Hq && w->nkv == w->Hkv) {
            fail |= !(w->qh[l] = iota(w->Hq));
            fail |= !(w->kvh[l] = iota(w->Hkv));
        }
    }
    if (w->nc == w->C) fail |= !(w->hid = iota(w->C));
    if (fail) { width_free(w); return lop_fail(e, "out of memory"); }
    return 0;
}

static const double *g_score;
static int cmp_desc(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    double sx = g_score[x], sy = g_score[y];
    if (isnan(sx)) sx = -INFINITY;
    if (isnan(sy)) sy = -INFINITY;
    if (sx != sy) return sx > sy ? -1 : 1;
    return (x > y) - (x < y);
}
static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int width_topk(const double *score, int n, int k, int *keep, lop_err *e) {
    if (k < 0 || k > n) return lop_fail(e, "cannot keep %d of %d", k, n);
    int *idx = iota(n);
    if (!idx) return lop_fail(e, "out of memory");
    g_score = score;   /* selections are made one at a time */
    qsort(idx, (size_t)n, sizeof *idx, cmp_desc);
    qsort(idx, (size_t)k, sizeof *idx, cmp_int);
    memcpy(keep, idx, (size_t)k * sizeof *keep);
    free(idx);
    return 0;
}

int width_pick_heads(const lop_width *w, const double *qscore, int *qkeep, int *kvkeep, lop_err *e) {
    int r = w->Hq / w->Hkv, per = w->nq / w->nkv;
    double *gs = calloc((size_t)w->Hkv, sizeof *gs);
    if (!gs) return lop_fail(e, "out of memory");
    for (int h = 0; h < w->Hq; h++) gs[h / r] += qscore[h];
    int rc = width_topk(gs, w->Hkv, w->nkv, kvkeep, e);
    free(gs);
    int loc[4096];
    if (r > 4096) return lop_fail(e, "more than 4096 query heads per KV group");
    for (int g = 0; g < w->nkv && !rc; g++) {
        rc = width_topk(qscore + (size_t)kvkeep[g] * r, r, per, loc, e);
        for (int j = 0; j < per; j++) qkeep[g * per + j] = kvkeep[g] * r + loc[j];
    }
    return rc;
}

/* ---- weight statistics ---- */

int width_stat(lop_width_imp m, const void *wv, st_dtype dt, int64_t rows, int64_t cols, int by_col,
               double *out, lop_err *e) {
    if (!st_dtype_is_float(dt)) return lop_fail(e, "cannot score a %s tensor", st_dtype_name(dt));
    size_t es = st_dtype_size(dt);
    float *row = malloc((size_t)(cols ? cols : 1) * sizeof *row);
    int64_t nacc = by_col ? cols : 0;
    double *mx = NULL, *mn = NULL, *s1 = NULL, *s2 = NULL;
    if (by_col) {
        mx = malloc((size_t)(nacc ? nacc : 1) * sizeof *mx);
        mn = malloc((size_t)(nacc ? nacc : 1) * sizeof *mn);
        s1 = calloc((size_t)(nacc ? nacc : 1), sizeof *s1);
        s2 = calloc((size_t)(nacc ? nacc : 1), sizeof *s2);
    }
    if (!row || (by_col && (!mx || !mn || !s1 || !s2))) {
        free(row); free(mx); free(mn); free(s1); free(s2);
        return lop_fail(e, "out of memory");
    }
    for (int64_t j = 0; j < nacc; j++) { mx[j] = -INFINITY; mn[j] = INFINITY; }
    for (int64_t i = 0; i < rows; i++) {
        st_to_f32(row, (const char *)wv + (size_t)i * cols * es, dt, (size_t)cols);
        if (by_col) {
            for (int64_t j = 0; j < cols; j++) {
                double v = row[j];
                if (v > mx[j]) mx[j] = v;
                if (v < mn[j]) mn[j] = v;
                s1[j] += m == WIDTH_PON ? fabs(v) : v;
            }
            continue;
        }
        double a = 0, b = 0, hi = -INFINITY, lo = INFINITY;
        switch (m) {
        case WIDTH_MAW:
            for (int64_t j = 0; j < cols; j++) { if (row[j] > hi) hi = row[j]; if (row[j] < lo) lo = row[j]; }
            out[i] += hi + fabs(lo);
            break;
        case WIDTH_VOW:   /* two passes: mean, then squared deviations */
            for (int64_t j = 0; j < cols; j++) a += row[j];
            a /= (double)cols;
            for (int64_t j = 0; j < cols; j++) b += (row[j] - a) * (row[j] - a);
            out[i] += cols > 1 ? b / (double)(cols - 1) : 0;
            break;
        case WIDTH_PON:
            for (int64_t j = 0; j < cols; j++) a += fabs(row[j]);
            out[i] += a;
            break;
        default: break;
        }
    }
    if (by_col && m == WIDTH_VOW) {   /* second pass over the columns for the deviations */
        for (int64_t j = 0; j < cols; j++) s1[j] /= (double)rows;
        for (int64_t i = 0; i < rows; i++) {
            st_to_f32(row, (const char *)wv + (size_t)i * cols * es, dt, (size_t)cols);
            for (int64_t j = 0; j < cols; j++) s2[j] += (row[j] - s1[j]) * (row[j] - s1[j]);
        }
    }
    for (int64_t j = 0; j < nacc; j++) {
        switch (m) {
        case WIDTH_MAW: out[j] += mx[j] + fabs(mn[j]); break;
        case WIDTH_VOW: out[j] += rows > 1 ? s2[j] / (double)(rows - 1) : 0; break;
        case WIDTH_PON: out[j] += s1[j]; break;
        default: break;
        }
    }
    free(row); free(mx); free(mn); free(s1); free(s2);
    return 0;
}

/* ---- tensors ---- */

/* A tensor's slicing comes from the architecture table (arch.h: arch_layer_axes, arch_model_axes):
 * each dimension's axis is one of the selections here, or kept whole. */
static lop_wsel axis_sel(arch_axis a) {
    switch (a) {
    case ARCH_AXIS_HIDDEN: return WSEL_HIDDEN;
    case ARCH_AXIS_FFN: return WSEL_MLP;
    case ARCH_AXIS_QHEADS: return WSEL_QHEADS;
    case ARCH_AXIS_KVHEADS: return WSEL_KVHEADS;
    default: return WSEL_ALL;
    }
}

/* The size a dimension along axis a has in the source (-1: not checked, the vocabulary). */
static int64_t axis_size(const lop_width *w, arch_axis a) {
    switch (a) {
    case ARCH_AXIS_HIDDEN: return w->C;
    case ARCH_AXIS_FFN: return w->F;
    case ARCH_AXIS_QHEADS: return (int64_t)w->Hq * w->D;
    case ARCH_AXIS_KVHEADS: return (int64_t)w->Hkv * w->D;
    case ARCH_AXIS_HEAD_DIM: return w->D;
    default: return -1;
    }
}

static int64_t kept_size(const lop_width *w, lop_wsel s, int64_t full) {
    switch (s) {
    case WSEL_HIDDEN: return w->nc;
    case WSEL_MLP: return w->ni;
    case WSEL_QHEADS: return (int64_t)w->nq * w->D;
    case WSEL_KVHEADS: return (int64_t)w->nkv * w->D;
    default: return full;
    }
}

static int shape_is(const st_info *t, int ndim, int64_t a, int64_t b) {
    if (t->ndim != ndim || t->shape[0] != a) return 0;
    return ndim == 1 || t->shape[1] == b;
}

static void shape_str(const st_info *t, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int d = 0; d < t->ndim && k + 24 < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
}

int width_tensor_spec(const lop_width *w, const lop_config *c, const st_info *t, lop_wspec *s,
                      lop_err *e) {
    memset(s, 0, sizeof *s);
    s->layer = -1;
    char sh[128];
    shape_str(t, sh, sizeof sh);
    size_t pl = strlen(c->prefix);
    const char *nm = t->name;
    int hidden_cut = w->nc < w->C;
    arch_axis ax[2];
    if (!strncmp(nm, c->prefix, pl) && !strncmp(nm + pl, "layers.", 7)) {
        const char *rest;
        int l = config_tensor_layer(c, nm, &rest);
        int nd = l >= 0 ? arch_layer_axes(c->family, rest, ax) : 0;
        if (l >= 0) {
            if (l >= w->L) return lop_fail(e, "%s: layer %d, but the config has %d layers", nm, l, w->L);
            s->layer = l;
        }
        if (nd) {
            int64_t a = axis_size(w, ax[0]), b = nd == 2 ? axis_size(w, ax[1]) : -1;
            if (!shape_is(t, nd, a, b)) {
                if (nd == 1) return lop_fail(e, "%s: shape [%s], expected [%lld]", nm, sh, (long long)a);
                return lop_fail(e, "%s: shape [%s], expected [%lld, %lld]", nm, sh, (long long)a, (long long)b);
            }
            s->sel[0] = axis_sel(ax[0]);
            s->sel[1] = nd == 2 ? axis_sel(ax[1]) : WSEL_ALL;
            for (int d = 0; d < 2; d++) {
                s->needs_mlp |= s->sel[d] == WSEL_MLP;
                s->needs_heads |= s->sel[d] == WSEL_QHEADS || s->sel[d] == WSEL_KVHEADS;
            }
            return 0;
        }
    }
    char ename[160], nname[160];
    int is_embed = !strcmp(nm, config_embed_name(c, ename, sizeof ename));
    int is_head = !strcmp(nm, c->head_name);
    int is_norm = !strcmp(nm, config_final_norm_name(c, nname, sizeof nname));
    int gemma_cut = c->gemma && hidden_cut;
    if (is_embed || is_head) {
        arch_model_axes(is_embed ? ARCH_EMBED : ARCH_HEAD, ax);
        if (t->ndim != 2 || t->shape[1] != axis_size(w, ax[1]))
            return lop_fail(e, "%s: shape [%s], expected [vocab, %d]", nm, sh, w->C);
        s->sel[0] = axis_sel(ax[0]); s->sel[1] = axis_sel(ax[1]);
        /* the head of a tied Gemma model is the embedding: scaled with it */
        if (gemma_cut && (is_embed || c->tied)) s->op = WOP_EMBED_SCALE;
        return 0;
    }
    if (is_norm) {
        arch_model_axes(ARCH_FINAL_NORM, ax);
        if (!shape_is(t, 1, axis_size(w, ax[0]), 0)) return lop_fail(e, "%s: shape [%s], expected [%d]", nm, sh, w->C);
        s->sel[0] = axis_sel(ax[0]);
        if (gemma_cut && c->tied) s->op = WOP_GEMMA_FINAL_NORM;
        return 0;
    }
    /* anything else is copied; with channels cut, one that has a hidden-sized dimension may be
     * tied to the residual stream (a vision projector) and cannot be left as it is */
    if (hidden_cut)
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] == w->C)
                return lop_failc(e, LOP_EUSAGE, "%s: shape [%s] has a hidden_size dimension that "
                                 "width-prune does not know how to slice; --hidden-keep cannot "
                                 "prune this model", nm, sh);
    return 0;
}

void width_out_info(const lop_width *w, const st_info *t, const lop_wspec *s, st_info *o) {
    *o = *t;
    o->offset = 0;
    if (t->ndim >= 1) o->shape[0] = kept_size(w, s->sel[0], t->shape[0]);
    if (t->ndim >= 2) o->shape[1] = kept_size(w, s->sel[1], t->shape[1]);
    o->nbytes = st_numel(o) * st_dtype_size(o->dtype);
}

/* The kept indices along one dimension (NULL: all n of them). */
static int *sel_index(const lop_width *w, lop_wsel s, int layer, int64_t *n, lop_err *e) {
    const int *src = NULL;
    int cnt = 0, unit = 1;
    switch (s) {
    case WSEL_ALL: return NULL;
    case WSEL_HIDDEN: src = w->hid; cnt = w->nc; break;
    case WSEL_MLP: src = w->mlp[layer]; cnt = w->ni; break;
    case WSEL_QHEADS: src = w->qh[layer]; cnt = w->nq; unit = w->D; break;
    case WSEL_KVHEADS: src = w->kvh[layer]; cnt = w->nkv; unit = w->D; break;
    }
    if (!src) { lop_fail(e, "internal: a selection is used before it is made"); *n = -1; return NULL; }
    int *idx = malloc((size_t)cnt * unit * sizeof *idx + 1);
    if (!idx) { lop_fail(e, "out of memory"); *n = -1; return NULL; }
    for (int i = 0; i < cnt; i++)
        for (int u = 0; u < unit; u++) idx[i * unit + u] = src[i] * unit + u;
    *n = (int64_t)cnt * unit;
    return idx;
}

int width_slice(const lop_width *w, const st_info *t, const lop_wspec *s, const void *in, void *out,
                double scale, lop_err *e) {
    size_t es = st_dtype_size(t->dtype);
    int64_t rows = t->ndim ? t->shape[0] : 1, cols = 1;
    for (int d = 1; d < t->ndim; d++) cols *= t->shape[d];
    int64_t nr = rows, nc = cols;
    int *ri = sel_index(w, s->sel[0], s->layer, &nr, e);
    if (nr < 0) return -1;
    int *ci = t->ndim >= 2 ? sel_index(w, s->sel[1], s->layer, &nc, e) : NULL;
    if (nc < 0) { free(ri); return -1; }
    if (!ri) nr = rows;
    if (!ci) nc = cols;
    const char *src = in;
    char *dst = out;
    #pragma omp parallel for schedule(static) if (nr * nc >= (1 << 18))
    for (int64_t r = 0; r < nr; r++) {
        const char *srow = src + (size_t)(ri ? ri[r] : r) * cols * es;
        char *drow = dst + (size_t)r * nc * es;
        if (!ci) { memcpy(drow, srow, (size_t)cols * es); continue; }
        switch (es) {
        case 2: for (int64_t j = 0; j < nc; j++) memcpy(drow + j * 2, srow + (size_t)ci[j] * 2, 2); break;
        case 4: for (int64_t j = 0; j < nc; j++) memcpy(drow + j * 4, srow + (size_t)ci[j] * 4, 4); break;
        default: for (int64_t j = 0; j < nc; j++) memcpy(drow + j * es, srow + (size_t)ci[j] * es, es); break;
        }
    }
    free(ri); free(ci);
    if (s->op == WOP_NONE) return 0;
    if (!st_dtype_is_float(t->dtype)) return lop_fail(e, "%s: cannot rescale a %s tensor", t->name, st_dtype_name(t->dtype));
    /* rescale in float32 blocks, rounded back to the stored dtype (round to nearest even) */
    uint64_t n = (uint64_t)nr * nc;
    #pragma omp parallel for schedule(static)
    for (uint64_t b = 0; b < (n + 4095) / 4096; b++) {
        float buf[4096];
        uint64_t o = b * 4096, m = n - o < 4096 ? n - o : 4096;
        st_to_f32(buf, dst + o * es, t->dtype, m);
        for (uint64_t i = 0; i < m; i++)
            buf[i] = s->op == WOP_EMBED_SCALE ? (float)(buf[i] * scale)
                                              : (float)((1.0 + buf[i]) / scale - 1.0);
        st_from_f32(dst + o * es, buf, t->dtype, m);
    }
    return 0;
}

double width_gemma_scale(const lop_width *w) {
    return sqrt((double)w->C / (double)w->nc);
}

/* ---- config ---- */

static int set_int(cJSON *o, const char *k, int v) {
    cJSON *n = cJSON_CreateNumber(v);
    if (!n) return -1;
    if (cJSON_GetObjectItemCaseSensitive(o, k)) cJSON_ReplaceItemInObjectCaseSensitive(o, k, n);
    else cJSON_AddItemToObject(o, k, n);
    return 0;
}

int width_config_apply(lop_config *c, const lop_width *w, lop_err *e) {
    cJSON *tj = c->text_json;
    int rc = 0;
    if (w->ni != w->F) rc |= set_int(tj, "intermediate_size", w->ni);
    if (w->nq != w->Hq) rc |= set_int(tj, "num_attention_heads", w->nq);
    if (w->nkv != w->Hkv) rc |= set_int(tj, "num_key_value_heads", w->nkv);
    if (w->nc != w->C) rc |= set_int(tj, "hidden_size", w->nc);
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(tj, "head_dim");
    if ((w->nq != w->Hq || w->nc != w->C) && (!hd || cJSON_IsNull(hd))) rc |= set_int(tj, "head_dim", w->D);
    if (rc) return lop_fail(e, "out of memory");
    c->inter = w->ni; c->n_heads = w->nq; c->n_kv_heads = w->nkv; c->hidden = w->nc;
    return 0;
}
