/* common.c — the target set (PCRE2 over tensor names), raw-dtype zero helpers, the per-matrix
 * rule, and the JSON lines. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "arch.h"
#include "tool.h"
#include "provenance.h"
#include "wmask.h"

/* The default target set: the linear projections of every layer of every family in the
 * architecture table, whatever the prefix ("model.", "language_model.model.", none): never
 * embeddings, norms, biases or the lm_head. "(^|\.)layers\.[0-9]+\.(self_attn\.q_proj|...)\.weight$" */
static void default_targets(char *re, size_t n) {
    size_t k = (size_t)snprintf(re, n, "(^|\\.)layers\\.[0-9]+\\.(");
    int first = 1;
    for (int a = 0; a < ARCH_N; a++)
        for (int p = 0; p < PROJ_N; p++) {
            const char *path = arch_family((lop_arch)a)->proj[p];
            int seen = 0;   /* each module path once */
            for (int b = 0; b < a && !seen; b++) seen = !strcmp(arch_family((lop_arch)b)->proj[p], path);
            if (seen) continue;
            if (!first && k + 1 < n) re[k++] = '|';
            first = 0;
            for (const char *c = path; *c && k + 2 < n; c++) {
                if (*c == '.') re[k++] = '\\';
                re[k++] = *c;
            }
        }
    snprintf(re + k, n > k ? n - k : 0, ")\\.weight$");
}

struct wm_targets {
    pcre2_code *inc[WM_MAX_RE + 1], *exc[WM_MAX_RE];
    int n_inc, n_exc;
    pcre2_match_data *md;
};

static int compile(pcre2_code **out, const char *opt, const char *re, lop_err *e) {
    int code;
    PCRE2_SIZE off;
    *out = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
    if (!*out) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return lop_failc(e, LOP_EUSAGE, "%s '%s': %s at offset %zu", opt, re, (char *)msg,
                         (size_t)off);
    }
    return 0;
}

int wm_targets_new(wm_targets **out, const wm_job *j, lop_err *e) {
    wm_targets *t = calloc(1, sizeof *t);
    if (!t) return lop_fail(e, "out of memory");
    *out = t;
    if (j->n_include == 0) {
        char re[1024];
        default_targets(re, sizeof re);
        if (compile(&t->inc[t->n_inc++], "default targets", re, e)) goto fail;
    }
    for (int i = 0; i < j->n_include; i++)
        if (compile(&t->inc[t->n_inc++], "--include", j->include[i], e)) goto fail;
    for (int i = 0; i < j->n_exclude; i++)
        if (compile(&t->exc[t->n_exc++], "--exclude", j->exclude[i], e)) goto fail;
    t->md = pcre2_match_data_create(4, NULL);
    if (!t->md) { lop_fail(e, "out of memory"); goto fail; }
    return 0;
fail:
    wm_targets_free(t);
    *out = NULL;
    return -1;
}

static int any(pcre2_code *const *re, int n, const char *s, pcre2_match_data *md) {
    for (int i = 0; i < n; i++)
        if (pcre2_match(re[i], (PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL) >= 0)
            return 1;
    return 0;
}

int wm_targets_match(const wm_targets *t, const char *name) {
    return any(t->inc, t->n_inc, name, t->md) && !any(t->exc, t->n_exc, name, t->md);
}

void wm_targets_free(wm_targets *t) {
    if (!t) return;
    for (int i = 0; i < t->n_inc; i++) pcre2_code_free(t->inc[i]);
    for (int i = 0; i < t->n_exc; i++) pcre2_code_free(t->exc[i]);
    pcre2_match_data_free(t->md);
    free(t);
}

void wm_matrix_shape(const st_info *t, int64_t *rows, int64_t *cols) {
    uint64_t n = st_numel(t);
    *rows = t->ndim >= 2 ? t->shape[0] : 1;
    *cols = *rows ? (int64_t)(n / (uint64_t)*rows) : 0;
}

/* Zero tests on the stored bits (+0 and -0), one tight loop per element size so that they
 * vectorize (the data may sit at any byte offset: memcpy loads). */
#define ZERO_LOOPS(T, MASK)                                                                  \
    static int64_t zeros_##T(const uint8_t *b, uint64_t n) {                                 \
        int64_t z = 0;                                                                       \
        for (uint64_t i = 0; i < n; i++) { T v; memcpy(&v, b + i * sizeof v, sizeof v); z += (v & MASK) == 0; } \
        return z;                                                                            \
    }                                                                                        \
    static void apply_##T(uint8_t *b, const float *w, uint64_t n) {                          \
        for (uint64_t i = 0; i < n; i++) {                                                   \
            T v; memcpy(&v, b + i * sizeof v, sizeof v);                                     \
            v &= (T)0 - (T)(w[i] != 0.0f); /* all ones to keep, 0 to zero */                \
            memcpy(b + i * sizeof v, &v, sizeof v);                                          \
        }                                                                                    \
    }
ZERO_LOOPS(uint16_t, 0x7fffu)
ZERO_LOOPS(uint32_t, 0x7fffffffu)
ZERO_LOOPS(uint64_t, 0x7fffffffffffffffull)

#define CHUNK (1u << 20)
int64_t wm_raw_zeros(const void *p, st_dtype t, uint64_t n) {
    if (!st_dtype_is_float(t)) return 0;
    size_t sz = st_dtype_size(t);
    const uint8_t *b = p;
    int64_t z = 0;
#pragma omp parallel for reduction(+ : z) schedule(static) if (n >= 2 * CHUNK)
    for (uint64_t c = 0; c < n; c += CHUNK) {
        uint64_t m = n - c < CHUNK ? n - c : CHUNK;
        z += sz == 2 ? zeros_uint16_t(b + c * 2, m) : sz == 4 ? zeros_uint32_t(b + c * 4, m)
                                                           : zeros_uint64_t(b + c * 8, m);
    }
    return z;
}

/* Where w[i] == 0 the raw element becomes +0 (a -0 that was there becomes +0 too). */
void wm_raw_apply(void *raw, const float *w, st_dtype t, uint64_t n) {
    size_t sz = st_dtype_size(t);
    uint8_t *b = raw;
#pragma omp parallel for schedule(static) if (n >= 2 * CHUNK)
    for (uint64_t c = 0; c < n; c += CHUNK) {
        uint64_t m = n - c < CHUNK ? n - c : CHUNK;
        if (sz == 2) apply_uint16_t(b + c * 2, w + c, m);
        else if (sz == 4) apply_uint32_t(b + c * 4, w + c, m);
        else apply_uint64_t(b + c * 8, w + c, m);
    }
}

wm_quota wm_quota_default(const wm_job *j, int64_t rows, int64_t cols) {
    wm_quota q = {.nm_n = j->nm_n};
    q.zeros = j->scope == SCOPE_ROW ? rows * prune_count(j->sparsity, cols)
                                    : prune_count(j->sparsity, rows * cols);
    return q;
}

int wm_prune_matrix(const wm_job *j, const char *name, float *w, int64_t rows, int64_t cols,
                    const float *norm, const wm_quota *q, prune_stat *st, lop_err *e) {
    wm_quota dq = wm_quota_default(j, rows, cols);
    if (!q) q = &dq;
    if (j->nm_m) {
        if (cols % j->nm_m)
            return lop_fail(e, "%s: rows of %lld weights do not split into groups of %d (--nm %d:%d)",
                            name, (long long)cols, j->nm_m, j->nm_n, j->nm_m);
        if (prune_nm(w, rows, cols, norm, q->nm_n, j->nm_m, st)) return lop_fail(e, "%s: --nm failed", name);
        return 0;
    }
    if (j->scope == SCOPE_ROW) {
        if (prune_rows_k(w, rows, cols, norm, rows ? q->zeros / rows : 0, rows ? q->zeros % rows : 0, st))
            return lop_fail(e, "%s: out of memory", name);
        return 0;
    }
    /* per tensor: the radix select over this one matrix */
    prune_sel s;
    if (prune_sel_init(&s, q->zeros))
        return lop_fail(e, "out of memory");
    while (!prune_sel_done(&s)) {
        prune_sel_add(&s, w, rows, cols, norm);
        if (prune_sel_next(&s)) { prune_sel_free(&s); return lop_fail(e, "%s: selection failed", name); }
    }
    int64_t ties = s.rem;
    prune_sel_apply(&s, &ties, w, rows, cols, norm, st);
    prune_sel_free(&s);
    return 0;
}

void wm_raw_store(void *raw, const float *w, st_dtype t, uint64_t n) {
    st_from_f32(raw, w, t, n);
    size_t sz = st_dtype_size(t);
    uint8_t *b = raw;
    for (uint64_t i = 0; i < n; i++) {
        if (w[i] == 0.0f || w[i] != w[i]) continue;
        int neg = signbit(w[i]) != 0;
        if (sz == 2) {
            uint16_t v; memcpy(&v, b + i * 2, 2);
            if (!(v & 0x7fffu)) { v = (uint16_t)((neg ? 0x8000u : 0) | 1u); memcpy(b + i * 2, &v, 2); }
        } else if (sz == 4) {
            uint32_t v; memcpy(&v, b + i * 4, 4);
            if (!(v & 0x7fffffffu)) { v = (neg ? 0x80000000u : 0) | 1u; memcpy(b + i * 4, &v, 4); }
        } else {
            uint64_t v; memcpy(&v, b + i * 8, 8);
            if (!(v & 0x7fffffffffffffffull)) { v = (neg ? 0x8000000000000000ull : 0) | 1u; memcpy(b + i * 8, &v, 8); }
        }
    }
}

/* JSON lines: the tool layer's rule (json_stream: --log FILE, else stdout, else stderr when
 * stdout carries the output stream) */
static void report(const char *output, cJSON *o) {
    tool_emit_json(o, !strcmp(output, "-"));
}

static cJSON *tensor_line(const st_info *t, const prune_stat *st, wm_totals *tot) {
    uint64_t n = st_numel(t);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "action", "prune");
    cJSON_AddStringToObject(o, "tensor", t->name);
    cJSON *shape = cJSON_AddArrayToObject(o, "shape");
    for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
    cJSON_AddNumberToObject(o, "params", (double)n);
    cJSON_AddNumberToObject(o, "zeros", (double)st->zeros);
    cJSON_AddNumberToObject(o, "pruned", (double)st->pruned);
    cJSON_AddNumberToObject(o, "sparsity", n ? (double)st->zeros / (double)n : 0.0);
    cJSON_AddNumberToObject(o, "threshold", (double)st->threshold);
    tot->tensors++;
    tot->sel_params += (int64_t)n;
    tot->sel_zeros += st->zeros;
    return o;
}

void wm_report_tensor(const char *output, const st_info *t, const prune_stat *st, wm_totals *tot) {
    report(output, tensor_line(t, st, tot));
}

void wm_report_tensor_q(const wm_job *j, const st_info *t, const prune_stat *st, const wm_quota *q,
                        double loss, wm_totals *tot) {
    cJSON *o = tensor_line(t, st, tot);
    uint64_t n = st_numel(t);
    if (j->owl && q) {
        if (j->nm_m) {
            char nm[32];
            snprintf(nm, sizeof nm, "%d:%d", q->nm_n, j->nm_m);
            cJSON_AddStringToObject(o, "owl_nm", nm);
        } else {
            cJSON_AddNumberToObject(o, "owl_zeros", (double)q->zeros);
            cJSON_AddNumberToObject(o, "owl_sparsity", n ? (double)q->zeros / (double)n : 0.0);
        }
    }
    if (loss >= 0) {
        cJSON_AddNumberToObject(o, "obs_loss", loss);
        tot->obs_loss += loss;
    }
    report(j->output, o);
}

void wm_report_summary(const wm_job *j, const wm_totals *tot) {
    static const char *scopes[] = {"row", "tensor", "global"};
    static const char *methods[] = {"magnitude", "wanda", "sparsegpt"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "action", "summary");
    cJSON_AddStringToObject(o, "method", methods[j->method]);
    if (j->nm_m) {
        char nm[32];
        snprintf(nm, sizeof nm, "%d:%d", j->nm_n, j->nm_m);
        cJSON_AddStringToObject(o, "nm", nm);
    } else {
        cJSON_AddStringToObject(o, "scope", scopes[j->scope]);
    }
    cJSON_AddNumberToObject(o, "target_sparsity", j->sparsity);
    cJSON_AddNumberToObject(o, "tensors", tot->tensors);
    cJSON_AddNumberToObject(o, "params", (double)tot->sel_params);
    cJSON_AddNumberToObject(o, "zeros", (double)tot->sel_zeros);
    cJSON_AddNumberToObject(o, "sparsity", tot->sel_params ? (double)tot->sel_zeros / tot->sel_params : 0.0);
    cJSON_AddNumberToObject(o, "model_params", (double)tot->model_params);
    cJSON_AddNumberToObject(o, "model_zeros", (double)tot->model_zeros);
    cJSON_AddNumberToObject(o, "model_sparsity",
                            tot->model_params ? (double)tot->model_zeros / tot->model_params : 0.0);
    cJSON_AddNumberToObject(o, "seconds", tot->t_total);
    if (j->method != METHOD_MAGNITUDE) {
        cJSON_AddNumberToObject(o, "forward_seconds", tot->t_forward);
        cJSON_AddNumberToObject(o, "select_seconds", tot->t_select);
    }
    if (j->method == METHOD_SPARSEGPT) {
        cJSON_AddNumberToObject(o, "hessian_seconds", tot->t_hessian);
        cJSON_AddNumberToObject(o, "damp", j->damp);
        cJSON_AddNumberToObject(o, "blocksize", j->blocksize);
        cJSON_AddNumberToObject(o, "obs_loss", tot->obs_loss);
    }
    if (j->owl) {
        cJSON_AddNumberToObject(o, "owl_lambda", j->owl_lambda);
        cJSON_AddNumberToObject(o, "owl_m", j->owl_m);
        cJSON_AddNumberToObject(o, "owl_seconds", tot->t_owl);
    }
    cJSON_AddNumberToObject(o, "peak_rss_mb", (double)tool_peak_rss_bytes() / (1 << 20));  /* kept for old scripts */
    cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)tool_peak_rss_bytes());
    report(j->output, o);
}

void wm_owl_report(const wm_job *j, const wm_owl *o) {
    for (int l = 0; l < o->L; l++) {
        if (!o->params[l]) continue;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "action", "owl");
        cJSON_AddNumberToObject(x, "layer", l);
        cJSON_AddNumberToObject(x, "outlier_ratio", o->ratio[l]);
        cJSON_AddNumberToObject(x, "owl_sparsity", o->sparsity[l]);
        cJSON_AddNumberToObject(x, "params", (double)o->params[l]);
        cJSON_AddNumberToObject(x, "zeros", (double)o->zeros[l]);
        cJSON_AddNumberToObject(x, "sparsity", (double)o->zeros[l] / (double)o->params[l]);
        if (j->nm_m) {
            char nm[32];
            snprintf(nm, sizeof nm, "%d:%d", o->nm_n[l], j->nm_m);
            cJSON_AddStringToObject(x, "nm", nm);
        }
        report(j->output, x);
    }
}
