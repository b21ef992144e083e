/* common.c — width-prune's selection from scores, plan, config and report (see wprune.h). */
#include "tool.h"
#include "wprune.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int wp_setup(wp_job *j, lop_err *e) {
    const lop_config *c = &j->cfg;
    int I = c->inter, Hq = c->n_heads, Hkv = c->n_kv_heads, r = Hq / Hkv;
    int ni = j->mlp_keep, nkv = j->kv_keep, nq = j->heads_keep;
    if (j->mlp_pct >= 0) {
        ni = I - (int)llround(j->mlp_pct / 100.0 * I);
        if (ni < 1) return lop_failc(e, LOP_EUSAGE, "--mlp-percent %g of %d neurons leaves none", j->mlp_pct, I);
    }
    if (nkv && nkv > Hkv)
        return lop_failc(e, LOP_EUSAGE, "--kv-keep %d: num_key_value_heads is %d (keep 1..%d)", nkv, Hkv, Hkv);
    if (j->head_pct >= 0) {
        int g = nkv ? nkv : Hkv;
        int per = (int)llround((1.0 - j->head_pct / 100.0) * Hq / g);
        if (per > r) per = r;
        if (per < 1) return lop_failc(e, LOP_EUSAGE, "--head-percent %g of %d heads leaves none in a KV group", j->head_pct, Hq);
        nq = per * g;
    }
    int nc = j->hidden_keep;
    if (j->hidden_pct >= 0) {
        nc = c->hidden - (int)llround(j->hidden_pct / 100.0 * c->hidden);
        if (nc < 1) return lop_failc(e, LOP_EUSAGE, "--hidden-percent %g of %d channels leaves none", j->hidden_pct, c->hidden);
    }
    if (width_init(&j->w, c, nc, ni, nq, nkv, e)) return -1;
    lop_width *w = &j->w;
    j->cut_mlp = w->ni < w->F;
    j->cut_heads = w->nq < w->Hq || w->nkv < w->Hkv;
    j->cut_hidden = w->nc < w->C;
    if (!j->cut_mlp && !j->cut_heads && !j->cut_hidden)
        tool_note("every count asked for is the model's own: the output is the model, re-written");
    int L = w->L;
    if (j->cut_mlp) {
        j->mlp_score = calloc((size_t)(L ? L : 1), sizeof *j->mlp_score);
        for (int l = 0; j->mlp_score && l < L; l++)
            if (!(j->mlp_score[l] = calloc((size_t)w->F, sizeof(double)))) return lop_fail(e, "out of memory");
        if (!j->mlp_score) return lop_fail(e, "out of memory");
    }
    if (j->cut_heads) {
        j->head_score = calloc((size_t)(L ? L : 1), sizeof *j->head_score);
        for (int l = 0; j->head_score && l < L; l++)
            if (!(j->head_score[l] = calloc((size_t)w->Hq, sizeof(double)))) return lop_fail(e, "out of memory");
        if (!j->head_score) return lop_fail(e, "out of memory");
    }
    if (j->cut_hidden && !(j->hid_score = calloc((size_t)w->C, sizeof(double)))) return lop_fail(e, "out of memory");
    return 0;
}

int wp_decide_mlp(wp_job *j, int l, lop_err *e) {
    lop_width *w = &j->w;
    if (w->mlp[l]) return 0;
    if (!(w->mlp[l] = malloc((size_t)w->ni * sizeof(int)))) return lop_fail(e, "out of memory");
    return width_topk(j->mlp_score[l], w->F, w->ni, w->mlp[l], e);
}

int wp_decide_heads(wp_job *j, int l, lop_err *e) {
    lop_width *w = &j->w;
    if (w->qh[l]) return 0;
    w->qh[l] = malloc((size_t)w->nq * sizeof(int));
    w->kvh[l] = malloc((size_t)w->nkv * sizeof(int));
    if (!w->qh[l] || !w->kvh[l]) return lop_fail(e, "out of memory");
    return width_pick_heads(w, j->head_score[l], w->qh[l], w->kvh[l], e);
}

int wp_decide_hidden(wp_job *j, lop_err *e) {
    lop_width *w = &j->w;
    if (w->hid) return 0;
    if (!(w->hid = malloc((size_t)w->nc * sizeof(int)))) return lop_fail(e, "out of memory");
    return width_topk(j->hid_score, w->C, w->nc, w->hid, e);
}

int wp_plan(wp_job *j, const st_info *infos, int n, lop_wspec **specs, st_info **out, lop_err *e) {
    *specs = calloc((size_t)(n ? n : 1), sizeof **specs);
    *out = calloc((size_t)(n ? n : 1), sizeof **out);
    if (!*specs || !*out) return lop_fail(e, "out of memory");
    j->params_in = j->params_out = 0;
    for (int i = 0; i < n; i++) {
        if (width_tensor_spec(&j->w, &j->cfg, &infos[i], &(*specs)[i], e)) return -1;
        width_out_info(&j->w, &infos[i], &(*specs)[i], &(*out)[i]);
        j->params_in += (int64_t)st_numel(&infos[i]);
        j->params_out += (int64_t)st_numel(&(*out)[i]);
    }
    return 0;
}

char *wp_out_config(wp_job *j, lop_err *e) {
    if (width_config_apply(&j->cfg, &j->w, e)) return NULL;
    char *s = config_to_json(&j->cfg);
    if (!s) lop_fail(e, "out of memory");
    return s;
}

/* ---- report ---- */

static void out_json(const wp_job *j, cJSON *o) {
    tool_emit_json(o, j->json != stdout);   /* the tool layer's rule: stdout, --log FILE, or stderr under -o - */
}

static void add_ints(cJSON *o, const char *k, const int *v, int n) {
    cJSON_AddItemToObject(o, k, cJSON_CreateIntArray(v, n));
}

/* scores to 6 significant digits (a raw array: cJSON would print 17) */
static void add_scores(cJSON *o, const double *v, int n) {
    size_t cap = (size_t)n * 16 + 4, k = 0;
    char *s = malloc(cap);
    if (!s) return;
    s[k++] = '[';
    for (int i = 0; i < n; i++) {
        double x = isfinite(v[i]) ? v[i] : 0;
        k += (size_t)snprintf(s + k, cap - k, "%s%.6g", i ? "," : "", x);
    }
    s[k++] = ']';
    s[k] = 0;
    cJSON_AddRawToObject(o, "scores", s);
    free(s);
}

void wp_report(const wp_job *j) {
    const lop_width *w = &j->w;
    for (int l = 0; l < w->L; l++) {
        if (j->cut_mlp) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "layer", l);
            cJSON_AddStringToObject(o, "part", "mlp");
            cJSON_AddNumberToObject(o, "before", w->F);
            cJSON_AddNumberToObject(o, "after", w->ni);
            add_ints(o, "kept", w->mlp[l], w->ni);
            add_scores(o, j->mlp_score[l], w->F);
            out_json(j, o);
        }
        if (j->cut_heads) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "layer", l);
            cJSON_AddStringToObject(o, "part", "heads");
            cJSON_AddNumberToObject(o, "before", w->Hq);
            cJSON_AddNumberToObject(o, "after", w->nq);
            cJSON_AddNumberToObject(o, "kv_before", w->Hkv);
            cJSON_AddNumberToObject(o, "kv_after", w->nkv);
            add_ints(o, "kept", w->qh[l], w->nq);
            add_ints(o, "kv_kept", w->kvh[l], w->nkv);
            add_scores(o, j->head_score[l], w->Hq);
            out_json(j, o);
        }
    }
    if (j->cut_hidden) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "part", "hidden");
        cJSON_AddNumberToObject(o, "before", w->C);
        cJSON_AddNumberToObject(o, "after", w->nc);
        add_ints(o, "kept", w->hid, w->nc);
        add_scores(o, j->hid_score, w->C);
        out_json(j, o);
    }
    double red = j->params_in ? 1.0 - (double)j->params_out / (double)j->params_in : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "importance", width_imp_name(j->imp));
    int pairs[4][2] = {{w->C, w->nc}, {w->F, w->ni}, {w->Hq, w->nq}, {w->Hkv, w->nkv}};
    const char *keys[4] = {"hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads"};
    for (int k = 0; k < 4; k++) add_ints(o, keys[k], pairs[k], 2);
    cJSON_AddNumberToObject(o, "params_before", (double)j->params_in);
    cJSON_AddNumberToObject(o, "params_after", (double)j->params_out);
    cJSON_AddNumberToObject(o, "params_removed", (double)(j->params_in - j->params_out));
    cJSON_AddNumberToObject(o, "reduction", red);
    if (j->imp == WIDTH_ACTIVATION) {
        cJSON_AddNumberToObject(o, "calib_samples", j->calib_samples);
        cJSON_AddNumberToObject(o, "calib_tokens", (double)j->calib_tokens);
    }
    cJSON_AddNumberToObject(o, "seconds", round(j->seconds * 1000) / 1000);
    cJSON_AddNumberToObject(o, "peak_rss_mb", round(tool_peak_rss_bytes() / 1e5) / 10);
    cJSON_AddStringToObject(o, "output", j->output);
    out_json(j, o);
    char a[32], b[32];
    tool_note("%s: hidden %d\xe2\x86\x92%d, mlp %d\xe2\x86\x92%d, heads %d\xe2\x86\x92%d (kv %d\xe2\x86\x92%d): %s \xe2\x86\x92 %s (%.2f%%)",
         width_imp_name(j->imp), w->C, w->nc, w->F, w->ni, w->Hq, w->nq, w->Hkv, w->nkv,
         tool_commas(j->params_in, a, sizeof a), tool_commas(j->params_out, b, sizeof b), 100 * red);
}

void wp_job_free(wp_job *j) {
    for (int l = 0; l < j->w.L; l++) {
        if (j->mlp_score) free(j->mlp_score[l]);
        if (j->head_score) free(j->head_score[l]);
    }
    free(j->mlp_score); free(j->head_score); free(j->hid_score);
    width_free(&j->w);
    if (j->has_cfg) config_free(&j->cfg);
}
