/* results.c — metrics from per-document values, groups, and every output of lm-eval. */
#include "results.h"
#include "retention.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tool.h"

static void *xcalloc(size_t n, size_t s) {
    void *p = calloc(n ? n : 1, s);
    if (!p) die(1, "out of memory");
    return p;
}

void tres_alloc(tres *t, int n) {
    t->n = n;
    t->doc_id = xcalloc((size_t)n, sizeof(int));
    t->acc = xcalloc((size_t)n, sizeof(double));
    t->acc_norm = xcalloc((size_t)n, sizeof(double));
    t->ll = xcalloc((size_t)n, sizeof(double));
}

void res_free(res_set *rs) {
    for (int i = 0; i < rs->nt; i++) {
        free(rs->t[i].doc_id); free(rs->t[i].acc); free(rs->t[i].acc_norm); free(rs->t[i].ll);
    }
    free(rs->t);
    for (int i = 0; i < rs->ng; i++) free(rs->groups[i]);
    free(rs->groups);
    cJSON_Delete(rs->config);
    memset(rs, 0, sizeof *rs);
}

int tres_metrics(const tres *t, mval out[3]) {
    int k = 0;
    if (t->metrics & MET_PPL) {
        out[k] = (mval){"perplexity", 0, 0, t->n, 0};
        agg_perplexity(t->ll, t->n, &out[k].value, &out[k].se);
        k++;
    }
    if (t->metrics & MET_ACC) {
        out[k] = (mval){"acc", 0, 0, t->n, 1};
        agg_mean(t->acc, t->n, &out[k].value, &out[k].se);
        k++;
    }
    if (t->metrics & MET_ACC_NORM) {
        out[k] = (mval){"acc_norm", 0, 0, t->n, 1};
        agg_mean(t->acc_norm, t->n, &out[k].value, &out[k].se);
        k++;
    }
    return k;
}

static const char *const CATS[] = {"mmlu_humanities", "mmlu_other", "mmlu_social_sciences", "mmlu_stem"};

static int cat_has_members(const res_set *rs, const char *cat) {
    for (int i = 0; i < rs->nt; i++)
        if (!strcmp(rs->t[i].group, cat)) return 1;
    return 0;
}

/* the harness aggregates a group from its members' aggregates: size-weighted means and
 * pooled_sample_stderr; mmlu from its categories, a category from its subjects */
int group_metrics(const res_set *rs, const char *group, mval out[3], int *size) {
    int is_top = !strcmp(group, "mmlu");
    int k = 0, nm = 0;
    double means[64], ses[64];
    int sizes[64];
    const char *metric = "acc";
    *size = 0;
    if (is_top) {
        for (int c = 0; c < 4; c++) {
            mval m[3];
            int sz;
            if (!cat_has_members(rs, CATS[c]) || group_metrics(rs, CATS[c], m, &sz) < 1) continue;
            means[nm] = m[0].value; ses[nm] = m[0].se; sizes[nm] = sz; nm++;
        }
    } else {
        for (int i = 0; i < rs->nt && nm < 64; i++) {
            if (strcmp(rs->t[i].group, group)) continue;
            mval m[3];
            int n = tres_metrics(&rs->t[i], m);
            for (int j = 0; j < n; j++)
                if (!strcmp(m[j].metric, metric)) {
                    means[nm] = m[j].value; ses[nm] = m[j].se; sizes[nm] = rs->t[i].n; nm++;
                }
        }
    }
    if (nm == 0) return 0;
    out[k] = (mval){metric, 0, 0, 0, 1};
    agg_group(means, ses, sizes, nm, &out[k].value, &out[k].se);
    for (int i = 0; i < nm; i++) *size += sizes[i];
    out[k].n = *size;
    k++;
    return k;
}

int res_group_rows(const res_set *rs, const char ***names) {
    static const char *rows[16];
    int n = 0;
    for (int g = 0; g < rs->ng && n < 11; g++) {
        int dup = 0;
        for (int i = 0; i < n; i++) dup |= !strcmp(rows[i], rs->groups[g]);
        if (!dup) rows[n++] = rs->groups[g];
        if (!strcmp(rs->groups[g], "mmlu"))
            for (int c = 0; c < 4; c++) {
                dup = 0;
                for (int i = 0; i < n; i++) dup |= !strcmp(rows[i], CATS[c]);
                if (!dup && cat_has_members(rs, CATS[c])) rows[n++] = CATS[c];
            }
    }
    *names = rows;
    return n;
}

/* ---- JSON ---- */

static cJSON *num_or_na(double v) {
    return isnan(v) || isinf(v) ? cJSON_CreateString("N/A") : cJSON_CreateNumber(v);
}

static void add_metrics(cJSON *o, const mval *m, int k) {
    char key[64];
    for (int j = 0; j < k; j++) {
        snprintf(key, sizeof key, "%s,none", m[j].metric);
        cJSON_AddItemToObject(o, key, num_or_na(m[j].value));
        snprintf(key, sizeof key, "%s_stderr,none", m[j].metric);
        cJSON_AddItemToObject(o, key, num_or_na(m[j].se));
    }
}

static cJSON *dbl_array(const double *x, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

static const char *kind_name(task_kind k) {
    return k == TASK_MC ? "multiple_choice" : k == TASK_MULTI ? "multiple_choice_multi_input" : "loglikelihood";
}

cJSON *res_to_json(const res_set *rs) {
    cJSON *root = cJSON_CreateObject();
    cJSON *results = cJSON_AddObjectToObject(root, "results");
    const char **gnames;
    int ngr = res_group_rows(rs, &gnames);
    mval m[3];
    int sz;
    for (int g = 0; g < ngr; g++) {
        int k = group_metrics(rs, gnames[g], m, &sz);
        if (!k) continue;
        cJSON *o = cJSON_AddObjectToObject(results, gnames[g]);
        char alias[96];
        if (!strcmp(gnames[g], "mmlu") || !strncmp(gnames[g], "mmlu_", 5) == 0) snprintf(alias, sizeof alias, "%s", gnames[g]);
        else {
            int under_mmlu = 0;
            for (int i = 0; i < rs->ng; i++) under_mmlu |= !strcmp(rs->groups[i], "mmlu");
            snprintf(alias, sizeof alias, "%s%s", under_mmlu ? " - " : "", under_mmlu ? gnames[g] + 5 : gnames[g]);
            for (char *c = alias; *c; c++) if (*c == '_' && under_mmlu) *c = ' ';
        }
        cJSON_AddStringToObject(o, "alias", alias);
        add_metrics(o, m, k);
    }
    for (int i = 0; i < rs->nt; i++) {
        const tres *t = &rs->t[i];
        cJSON *o = cJSON_AddObjectToObject(results, t->name);
        cJSON_AddStringToObject(o, "alias", t->name);
        int k = tres_metrics(t, m);
        add_metrics(o, m, k);
    }
    cJSON *groups = cJSON_AddObjectToObject(root, "groups");
    for (int g = 0; g < ngr; g++) {
        int k = group_metrics(rs, gnames[g], m, &sz);
        if (!k) continue;
        cJSON *o = cJSON_AddObjectToObject(groups, gnames[g]);
        cJSON_AddStringToObject(o, "alias", gnames[g]);
        add_metrics(o, m, k);
    }
    cJSON *gs = cJSON_AddObjectToObject(root, "group_subtasks");
    for (int g = 0; g < ngr; g++) {
        cJSON *a = cJSON_AddArrayToObject(gs, gnames[g]);
        if (!strcmp(gnames[g], "mmlu")) {
            for (int c = 0; c < 4; c++)
                if (cat_has_members(rs, CATS[c])) cJSON_AddItemToArray(a, cJSON_CreateString(CATS[c]));
        } else
            for (int i = 0; i < rs->nt; i++)
                if (!strcmp(rs->t[i].group, gnames[g])) cJSON_AddItemToArray(a, cJSON_CreateString(rs->t[i].name));
    }
    cJSON *cf = cJSON_AddObjectToObject(root, "configs");
    for (int i = 0; i < rs->nt; i++) {
        const tres *t = &rs->t[i];
        cJSON *o = cJSON_AddObjectToObject(cf, t->name);
        cJSON_AddStringToObject(o, "task", t->name);
        if (t->group[0]) cJSON_AddStringToObject(o, "tag", t->group);
        cJSON_AddStringToObject(o, "dataset_path", t->source);
        cJSON_AddStringToObject(o, "output_type", t->kind == TASK_LOGLIK ? "loglikelihood" : "multiple_choice");
        cJSON_AddStringToObject(o, "target_delimiter", t->kind == TASK_LOGLIK ? "" : t->delim);
        cJSON_AddStringToObject(o, "fewshot_delimiter", "\n\n");
        cJSON_AddNumberToObject(o, "num_fewshot", t->num_fewshot);
        cJSON *md = cJSON_AddObjectToObject(o, "metadata");
        cJSON_AddNumberToObject(md, "version", t->version);
    }
    cJSON *ver = cJSON_AddObjectToObject(root, "versions");
    for (int g = 0; g < ngr; g++) cJSON_AddNumberToObject(ver, gnames[g], strcmp(gnames[g], "mmlu") ? 1.0 : 2.0);
    for (int i = 0; i < rs->nt; i++) cJSON_AddNumberToObject(ver, rs->t[i].name, rs->t[i].version);
    cJSON *ns = cJSON_AddObjectToObject(root, "n-shot");
    for (int i = 0; i < rs->nt; i++) cJSON_AddNumberToObject(ns, rs->t[i].name, rs->t[i].num_fewshot);
    cJSON *hb = cJSON_AddObjectToObject(root, "higher_is_better");
    for (int i = 0; i < rs->nt; i++) {
        cJSON *o = cJSON_AddObjectToObject(hb, rs->t[i].name);
        int k = tres_metrics(&rs->t[i], m);
        for (int j = 0; j < k; j++) cJSON_AddBoolToObject(o, m[j].metric, m[j].higher_better);
    }
    cJSON *nsm = cJSON_AddObjectToObject(root, "n-samples");
    for (int i = 0; i < rs->nt; i++) {
        cJSON *o = cJSON_AddObjectToObject(nsm, rs->t[i].name);
        cJSON_AddNumberToObject(o, "original", rs->t[i].n_original);
        cJSON_AddNumberToObject(o, "effective", rs->t[i].n);
    }
    cJSON_AddItemToObject(root, "config", rs->config ? cJSON_Duplicate(rs->config, 1) : cJSON_CreateObject());
    cJSON_AddNullToObject(root, "git_hash");
    cJSON_AddNumberToObject(root, "date", (double)time(NULL));
    char secs[32];
    snprintf(secs, sizeof secs, "%.2f", rs->seconds);
    cJSON_AddStringToObject(root, "total_evaluation_time_seconds", secs);
    /* what lm-eval --merge needs to recompute everything exactly */
    cJSON *ls = cJSON_AddObjectToObject(root, "lop_samples");
    cJSON *ga = cJSON_AddArrayToObject(ls, "__groups__");
    for (int g = 0; g < rs->ng; g++) cJSON_AddItemToArray(ga, cJSON_CreateString(rs->groups[g]));
    for (int i = 0; i < rs->nt; i++) {
        const tres *t = &rs->t[i];
        cJSON *o = cJSON_AddObjectToObject(ls, t->name);
        cJSON_AddStringToObject(o, "group", t->group);
        cJSON_AddStringToObject(o, "source", t->source);
        cJSON_AddStringToObject(o, "kind", kind_name(t->kind));
        cJSON_AddNumberToObject(o, "metrics", t->metrics);
        cJSON_AddNumberToObject(o, "version", t->version);
        cJSON_AddNumberToObject(o, "num_fewshot", t->num_fewshot);
        cJSON_AddNumberToObject(o, "n_original", t->n_original);
        cJSON_AddStringToObject(o, "delimiter", t->delim);
        cJSON *ids = cJSON_AddArrayToObject(o, "doc_id");
        for (int d = 0; d < t->n; d++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(t->doc_id[d]));
        cJSON_AddItemToObject(o, "acc", dbl_array(t->acc, t->n));
        cJSON_AddItemToObject(o, "acc_norm", dbl_array(t->acc_norm, t->n));
        cJSON_AddItemToObject(o, "ll", dbl_array(t->ll, t->n));
    }
    return root;
}

static int get_num(const cJSON *o, const char *k, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x)) return -1;
    *v = x->valuedouble;
    return 0;
}

static int get_dbls(const cJSON *o, const char *k, double *out, int n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return -1;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x)) return -1;
        out[i++] = x->valuedouble;
    }
    return 0;
}

int res_from_json(res_set *rs, const cJSON *j, const char *path, lop_err *e) {
    memset(rs, 0, sizeof *rs);
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(j, "lop_samples");
    if (!cJSON_IsObject(ls))
        return lop_fail(e, "%s: no \"lop_samples\" (only lm-eval --output files can be merged)", path);
    const cJSON *it;
    int n = 0;
    cJSON_ArrayForEach(it, ls) if (strcmp(it->string, "__groups__")) n++;
    rs->t = xcalloc((size_t)n, sizeof(tres));
    cJSON_ArrayForEach(it, ls) {
        if (!strcmp(it->string, "__groups__")) {
            const cJSON *g;
            int ng = cJSON_GetArraySize(it);
            rs->groups = xcalloc((size_t)ng, sizeof(char *));
            cJSON_ArrayForEach(g, it) if (cJSON_IsString(g)) rs->groups[rs->ng++] = strdup(g->valuestring);
            continue;
        }
        tres *t = &rs->t[rs->nt];
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(it, "doc_id");
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(it, "kind");
        const cJSON *grp = cJSON_GetObjectItemCaseSensitive(it, "group");
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(it, "source");
        const cJSON *dl = cJSON_GetObjectItemCaseSensitive(it, "delimiter");
        double metrics, version, k, no;
        if (!cJSON_IsArray(ids) || !cJSON_IsString(kind) || get_num(it, "metrics", &metrics) ||
            get_num(it, "version", &version) || get_num(it, "num_fewshot", &k) ||
            get_num(it, "n_original", &no)) {
            res_free(rs);
            return lop_fail(e, "%s: lop_samples.%s is incomplete", path, it->string);
        }
        snprintf(t->name, sizeof t->name, "%s", it->string);
        snprintf(t->group, sizeof t->group, "%s", cJSON_IsString(grp) ? grp->valuestring : "");
        snprintf(t->source, sizeof t->source, "%s", cJSON_IsString(src) ? src->valuestring : "");
        snprintf(t->delim, sizeof t->delim, "%s", cJSON_IsString(dl) ? dl->valuestring : " ");
        t->kind = !strcmp(kind->valuestring, "multiple_choice") ? TASK_MC
                : !strcmp(kind->valuestring, "loglikelihood") ? TASK_LOGLIK : TASK_MULTI;
        t->metrics = (int)metrics;
        t->version = version;
        t->num_fewshot = (int)k;
        t->n_original = (int)no;
        int nd = cJSON_GetArraySize(ids);
        tres_alloc(t, nd);
        rs->nt++;
        double *tmp = xcalloc((size_t)nd, sizeof(double));
        if (get_dbls(it, "doc_id", tmp, nd) || get_dbls(it, "acc", t->acc, nd) ||
            get_dbls(it, "acc_norm", t->acc_norm, nd) || get_dbls(it, "ll", t->ll, nd)) {
            free(tmp);
            res_free(rs);
            return lop_fail(e, "%s: lop_samples.%s: arrays missing or of different lengths", path, it->string);
        }
        for (int d = 0; d < nd; d++) t->doc_id[d] = (int)tmp[d];
        free(tmp);
    }
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(j, "config");
    rs->config = cfg ? cJSON_Duplicate(cfg, 1) : cJSON_CreateObject();
    return 0;
}

typedef struct dv { int id; double acc, accn, ll; } dv;
static int by_id(const void *a, const void *b) {
    const dv *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

int res_merge(res_set *out, res_set *in, int n, lop_err *e) {
    memset(out, 0, sizeof *out);
    int cap = 0;
    for (int f = 0; f < n; f++) cap += in[f].nt;
    out->t = xcalloc((size_t)cap, sizeof(tres));
    for (int f = 0; f < n; f++) {
        for (int g = 0; g < in[f].ng; g++) {
            int dup = 0;
            for (int i = 0; i < out->ng; i++) dup |= !strcmp(out->groups[i], in[f].groups[g]);
            if (dup) continue;
            out->groups = realloc(out->groups, sizeof(char *) * (size_t)(out->ng + 1));
            out->groups[out->ng++] = strdup(in[f].groups[g]);
        }
        for (int i = 0; i < in[f].nt; i++) {
            tres *s = &in[f].t[i];
            int k;
            for (k = 0; k < out->nt; k++)
                if (!strcmp(out->t[k].name, s->name)) break;
            if (k == out->nt) { out->t[k] = *s; out->t[k].n = 0; out->t[k].doc_id = NULL;
                out->t[k].acc = out->t[k].acc_norm = out->t[k].ll = NULL; out->nt++; }
            tres *t = &out->t[k];
            if (t->kind != s->kind || t->metrics != s->metrics || t->num_fewshot != s->num_fewshot ||
                t->n_original != s->n_original) {
                res_free(out);
                return lop_fail(e, "task %s: the files were made with different settings (few-shot, task file or data)", s->name);
            }
            /* append, then sort by doc_id below */
            int nn = t->n + s->n;
            t->doc_id = realloc(t->doc_id, sizeof(int) * (size_t)(nn ? nn : 1));
            t->acc = realloc(t->acc, sizeof(double) * (size_t)(nn ? nn : 1));
            t->acc_norm = realloc(t->acc_norm, sizeof(double) * (size_t)(nn ? nn : 1));
            t->ll = realloc(t->ll, sizeof(double) * (size_t)(nn ? nn : 1));
            if (!t->doc_id || !t->acc || !t->acc_norm || !t->ll) die(1, "out of memory");
            memcpy(t->doc_id + t->n, s->doc_id, sizeof(int) * (size_t)s->n);
            memcpy(t->acc + t->n, s->acc, sizeof(double) * (size_t)s->n);
            memcpy(t->acc_norm + t->n, s->acc_norm, sizeof(double) * (size_t)s->n);
            memcpy(t->ll + t->n, s->ll, sizeof(double) * (size_t)s->n);
            t->n = nn;
        }
    }
    for (int k = 0; k < out->nt; k++) {
        tres *t = &out->t[k];
        dv *v = xcalloc((size_t)t->n, sizeof(dv));
        for (int d = 0; d < t->n; d++) v[d] = (dv){t->doc_id[d], t->acc[d], t->acc_norm[d], t->ll[d]};
        qsort(v, (size_t)t->n, sizeof(dv), by_id);
        for (int d = 0; d < t->n; d++) {
            if (d && v[d].id == v[d - 1].id) {
                lop_fail(e, "task %s: document %d appears in two files (overlapping shards?)", t->name, v[d].id);
                free(v);
                res_free(out);
                return -1;
            }
            t->doc_id[d] = v[d].id; t->acc[d] = v[d].acc; t->acc_norm[d] = v[d].accn; t->ll[d] = v[d].ll;
        }
        free(v);
    }
    out->config = in[0].config ? cJSON_Duplicate(in[0].config, 1) : cJSON_CreateObject();
    cJSON_DeleteItemFromObject(out->config, "shard");
    cJSON_AddNullToObject(out->config, "shard");
    for (int f = 0; f < n; f++) out->seconds += in[f].seconds;
    return 0;
}

/* ---- JSON lines ---- */

static void emit_metric(const char *task, const mval *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", task);
    cJSON_AddStringToObject(o, "metric", m->metric);
    cJSON_AddItemToObject(o, "value", isnan(m->value) ? cJSON_CreateNull() : cJSON_CreateNumber(m->value));
    cJSON_AddItemToObject(o, "stderr", isnan(m->se) ? cJSON_CreateNull() : cJSON_CreateNumber(m->se));
    cJSON_AddNumberToObject(o, "n", m->n);
    emit(o);
}

void res_emit_lines(const res_set *rs) {
    mval m[3];
    for (int i = 0; i < rs->nt; i++) {
        int k = tres_metrics(&rs->t[i], m);
        for (int j = 0; j < k; j++) emit_metric(rs->t[i].name, &m[j]);
    }
    const char **g;
    int ng = res_group_rows(rs, &g), sz;
    for (int i = 0; i < ng; i++) {
        int k = group_metrics(rs, g[i], m, &sz);
        for (int j = 0; j < k; j++) emit_metric(g[i], &m[j]);
    }
}

/* ---- the harness's markdown table (pytablewriter: headers centred, text left, numbers right) ---- */

#define TCOLS 9
typedef struct trow { char c[TCOLS][128]; } trow;

static int dwidth(const char *s) { /* display width: code points */
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void print_table(FILE *f, const char *first, const trow *r, int n) {
    static const char *hdr[TCOLS] = {"", "Version", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr"};
    static const int right[TCOLS] = {0, 1, 0, 1, 0, 0, 1, 0, 1};
    int w[TCOLS];
    for (int c = 0; c < TCOLS; c++) {
        w[c] = dwidth(c ? hdr[c] : first);
        if (w[c] < 3) w[c] = 3;
        for (int i = 0; i < n; i++) if (dwidth(r[i].c[c]) > w[c]) w[c] = dwidth(r[i].c[c]);
    }
    for (int c = 0; c < TCOLS; c++) {
        const char *h = c ? hdr[c] : first;
        int pad = w[c] - dwidth(h), l = pad / 2;
        fprintf(f, "|%*s%s%*s", l, "", h, pad - l, "");
    }
    fprintf(f, "|\n");
    for (int c = 0; c < TCOLS; c++) {
        fputc('|', f);
        for (int k = 0; k < w[c] - right[c]; k++) fputc('-', f);
        if (right[c]) fputc(':', f);
    }
    fprintf(f, "|\n");
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < TCOLS; c++) {
            int pad = w[c] - dwidth(r[i].c[c]);
            if (right[c]) fprintf(f, "|%*s%s", pad, "", r[i].c[c]);
            else fprintf(f, "|%s%*s", r[i].c[c], pad, "");
        }
        fprintf(f, "|\n");
    }
}

static int add_rows(trow *rows, int n, const char *name, double version, int nshot, const mval *m, int k) {
    for (int j = 0; j < k; j++) {
        trow *r = &rows[n++];
        memset(r, 0, sizeof *r);
        snprintf(r->c[0], sizeof r->c[0], "%s", j ? "" : name);
        if (!j) snprintf(r->c[1], sizeof r->c[1], "%g", version);
        snprintf(r->c[2], sizeof r->c[2], "none");
        if (nshot >= 0) snprintf(r->c[3], sizeof r->c[3], "%d", nshot);
        snprintf(r->c[4], sizeof r->c[4], "%s", m[j].metric);
        snprintf(r->c[5], sizeof r->c[5], "%s", m[j].higher_better ? "↑" : "↓");
        snprintf(r->c[6], sizeof r->c[6], "%.4f", m[j].value);
        snprintf(r->c[7], sizeof r->c[7], "±");
        if (isnan(m[j].se)) snprintf(r->c[8], sizeof r->c[8], "N/A");
        else snprintf(r->c[8], sizeof r->c[8], "%.4f", m[j].se);
    }
    return n;
}

void res_print_table(const res_set *rs, FILE *f) {
    int cap = rs->nt * 3 + 64, n = 0, sz;
    trow *rows = xcalloc((size_t)cap, sizeof(trow));
    mval m[3];
    const char **g;
    int ng = res_group_rows(rs, &g);
    uint8_t *shown = xcalloc((size_t)rs->nt, 1);
    char name[128];
    /* groups with their members indented under them, as the harness prints them */
    for (int i = 0; i < ng; i++) {
        int top = !strcmp(g[i], "mmlu");
        int under = 0;
        for (int j = 0; j < ng; j++) under |= !strcmp(g[j], "mmlu") && !top;
        if (under) continue; /* printed under mmlu */
        int k = group_metrics(rs, g[i], m, &sz);
        if (!k) continue;
        n = add_rows(rows, n, g[i], top ? 2 : 1, -1, m, k);
        for (int c = 0; c < 4; c++) {
            if (top ? !cat_has_members(rs, CATS[c]) : strcmp(g[i], CATS[c])) continue;
            if (top) {
                snprintf(name, sizeof name, " - %s", CATS[c] + 5);
                for (char *p = name; *p; p++) if (*p == '_') *p = ' ';
                k = group_metrics(rs, CATS[c], m, &sz);
                n = add_rows(rows, n, name, 1, -1, m, k);
            }
            for (int t = 0; t < rs->nt; t++) {
                if (strcmp(rs->t[t].group, CATS[c])) continue;
                snprintf(name, sizeof name, "%s- %s", top ? "  " : " ", rs->t[t].name + 5);
                k = tres_metrics(&rs->t[t], m);
                n = add_rows(rows, n, name, rs->t[t].version, rs->t[t].num_fewshot, m, k);
                shown[t] = 1;
            }
        }
    }
    for (int t = 0; t < rs->nt; t++) {
        if (shown[t]) continue;
        int k = tres_metrics(&rs->t[t], m);
        n = add_rows(rows, n, rs->t[t].name, rs->t[t].version, rs->t[t].num_fewshot, m, k);
    }
    print_table(f, "Tasks", rows, n);
    if (ng) {
        n = 0;
        for (int i = 0; i < ng; i++) {
            int k = group_metrics(rs, g[i], m, &sz);
            n = add_rows(rows, n, g[i], strcmp(g[i], "mmlu") ? 1 : 2, -1, m, k);
        }
        fputc('\n', f);
        print_table(f, "Groups", rows, n);
    }
    free(shown);
    free(rows);
}

/* ---- --compare ---- */

static int base_value(const cJSON *base, const char *task, const char *metric, double *v, double *se) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(base, "results"), task);
    char key[96];
    snprintf(key, sizeof key, "%s,none", metric);
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(r, key);
    if (!cJSON_IsNumber(x)) return -1;
    *v = x->valuedouble;
    snprintf(key, sizeof key, "%s_stderr,none", metric);
    const cJSON *y = cJSON_GetObjectItemCaseSensitive(r, key);
    *se = cJSON_IsNumber(y) ? y->valuedouble : -1;
    return 0;
}

/* retention against a base results file, by the one rule of libcommon/retention.h */
int res_compare(const res_set *rs, const cJSON *base, const char *base_path, FILE *table, lop_err *e) {
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(base, "results")))
        return lop_fail(e, "%s: no \"results\" object (not a results file)", base_path);
    int cap = rs->nt * 3 + 64, n = 0, sz;
    ret_row *c = xcalloc((size_t)cap, sizeof(ret_row));
    char (*names)[96] = xcalloc((size_t)cap, sizeof *names);
    mval m[3];
    const char **g;
    int ng = res_group_rows(rs, &g);
    for (int i = 0; i < ng; i++) {
        int k = group_metrics(rs, g[i], m, &sz);
        for (int j = 0; j < k; j++) {
            snprintf(names[n], sizeof names[n], "%s", g[i]);
            c[n] = (ret_row){.task = names[n], .metric = m[j].metric, .value = m[j].value, .se = m[j].se,
                             .n = m[j].n, .higher_better = m[j].higher_better};
            n++;
        }
    }
    for (int t = 0; t < rs->nt; t++) {
        int k = tres_metrics(&rs->t[t], m);
        for (int j = 0; j < k; j++) {
            snprintf(names[n], sizeof names[n], "%s", rs->t[t].name);
            c[n] = (ret_row){.task = names[n], .metric = m[j].metric, .value = m[j].value, .se = m[j].se,
                             .n = m[j].n, .higher_better = m[j].higher_better};
            n++;
        }
    }
    for (int i = 0; i < n; i++)
        if (base_value(base, c[i].task, c[i].metric, &c[i].base, &c[i].base_se)) c[i].base = NAN;
    ret_summary S;
    ret_compute(c, n, &S);
    if (table) {
        fprintf(table, "|%-32s|%-10s|%9s|%9s|%6s|%6s|%11s|\n", "Task", "Metric", "Value", "Base", "n", "Chance", "Retention");
        fprintf(table, "|%.32s|%.10s|%.8s:|%.8s:|%.5s:|%.5s:|%.10s:|\n", "--------------------------------", "----------",
                "--------", "--------", "-----", "-----", "----------");
    }
    for (int i = 0; i < n; i++) {
        double ch = ret_chance(c[i].task);
        char chs[16], ns[24];
        snprintf(chs, sizeof chs, ch >= 0 && c[i].higher_better ? "%.2f" : "-", ch);
        snprintf(ns, sizeof ns, c[i].n >= 0 ? "%lld" : "-", c[i].n);
        if (isnan(c[i].base)) {
            if (table) fprintf(table, "|%-32s|%-10s|%9.4f|%9s|%6s|%6s|%11s|\n", c[i].task, c[i].metric, c[i].value, "-", ns, chs, "-");
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "task", c[i].task);
        cJSON_AddStringToObject(o, "metric", c[i].metric);
        cJSON_AddNumberToObject(o, "value", c[i].value);
        cJSON_AddNumberToObject(o, "base", c[i].base);
        cJSON_AddItemToObject(o, "retention", isfinite(c[i].retention) ? cJSON_CreateNumber(c[i].retention) : cJSON_CreateNull());
        if (c[i].n >= 0) cJSON_AddNumberToObject(o, "n", (double)c[i].n);
        if (ch >= 0 && c[i].higher_better) cJSON_AddNumberToObject(o, "chance", ch);
        cJSON_AddBoolToObject(o, "within_noise", c[i].noise);
        emit(o);
        if (table) fprintf(table, "|%-32s|%-10s|%9.4f|%9.4f|%6s|%6s|%9.2f%%%s|\n", c[i].task, c[i].metric, c[i].value,
                           c[i].base, ns, chs, c[i].retention, c[i].noise ? " ~" : "  ");
    }
    if (S.n_cap) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "compare", "capability");
        cJSON_AddNumberToObject(o, "tasks", S.n_cap);
        cJSON_AddNumberToObject(o, "avg", S.avg);
        cJSON_AddNumberToObject(o, "base_avg", S.base_avg);
        cJSON_AddNumberToObject(o, "retention", S.capability);
        cJSON_AddNumberToObject(o, "within_noise", S.n_noise);
        emit(o);
        if (table) {
            fprintf(table, "\ncapability retention (mean of %d tasks' this/base, acc_norm where a task has it): %.2f%%"
                           "  (average %.4f vs %.4f)\n", S.n_cap, S.capability, S.avg, S.base_avg);
            if (S.n_noise)
                fprintf(table, "~ %d of %d tasks differ from the base by less than two standard errors: at this n "
                               "their retention does not tell the models apart\n", S.n_noise, S.n_cap);
        }
    }
    if (S.n_ppl) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "compare", "perplexity");
        cJSON_AddNumberToObject(o, "tasks", S.n_ppl);
        cJSON_AddNumberToObject(o, "retention", S.perplexity);
        emit(o);
        if (table) fprintf(table, "perplexity retention (mean of %d tasks' base/this): %.2f%%\n", S.n_ppl, S.perplexity);
    }
    free(c);
    free(names);
    return 0;
}
