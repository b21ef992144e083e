/* results_json.c — the harness's results file: written (with "lop_samples", the per-document
 * values --merge needs), read back, and shards merged into one result set. */
#include "results.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tool.h"

static cJSON *num_or_na(double v) {
    return isnan(v) || isinf(v) ? cJSON_CreateString("N/A") : cJSON_CreateNumber(v);
}

static void add_metrics(cJSON *o, const res_metric *m, int k) {
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
    res_metric m[3];
    int sz;
    for (int g = 0; g < ngr; g++) {
        int k = res_group_metrics(rs, gnames[g], m, &sz);
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
        const res_task *t = &rs->t[i];
        cJSON *o = cJSON_AddObjectToObject(results, t->name);
        cJSON_AddStringToObject(o, "alias", t->name);
        int k = res_task_metrics(t, m);
        add_metrics(o, m, k);
    }
    cJSON *groups = cJSON_AddObjectToObject(root, "groups");
    for (int g = 0; g < ngr; g++) {
        int k = res_group_metrics(rs, gnames[g], m, &sz);
        if (!k) continue;
        cJSON *o = cJSON_AddObjectToObject(groups, gnames[g]);
        cJSON_AddStringToObject(o, "alias", gnames[g]);
        add_metrics(o, m, k);
    }
    cJSON *gs = cJSON_AddObjectToObject(root, "group_subtasks");
    for (int g = 0; g < ngr; g++) {
        cJSON *a = cJSON_AddArrayToObject(gs, gnames[g]);
        if (!strcmp(gnames[g], "mmlu")) {
            for (int c = 0; c < res_n_categories(); c++)
                if (res_has_members(rs, res_category(c))) cJSON_AddItemToArray(a, cJSON_CreateString(res_category(c)));
        } else
            for (int i = 0; i < rs->nt; i++)
                if (!strcmp(rs->t[i].group, gnames[g])) cJSON_AddItemToArray(a, cJSON_CreateString(rs->t[i].name));
    }
    cJSON *cf = cJSON_AddObjectToObject(root, "configs");
    for (int i = 0; i < rs->nt; i++) {
        const res_task *t = &rs->t[i];
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
        int k = res_task_metrics(&rs->t[i], m);
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
        const res_task *t = &rs->t[i];
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
    rs->t = res_calloc((size_t)n, sizeof(res_task));
    cJSON_ArrayForEach(it, ls) {
        if (!strcmp(it->string, "__groups__")) {
            const cJSON *g;
            int ng = cJSON_GetArraySize(it);
            rs->groups = res_calloc((size_t)ng, sizeof(char *));
            cJSON_ArrayForEach(g, it) if (cJSON_IsString(g)) rs->groups[rs->ng++] = strdup(g->valuestring);
            continue;
        }
        res_task *t = &rs->t[rs->nt];
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
        res_task_alloc(t, nd);
        rs->nt++;
        double *tmp = res_calloc((size_t)nd, sizeof(double));
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

typedef struct doc_vals { int id; double acc, accn, ll; } doc_vals;
static int by_id(const void *a, const void *b) {
    const doc_vals *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

int res_merge(res_set *out, res_set *in, int n, lop_err *e) {
    memset(out, 0, sizeof *out);
    int cap = 0;
    for (int f = 0; f < n; f++) cap += in[f].nt;
    out->t = res_calloc((size_t)cap, sizeof(res_task));
    for (int f = 0; f < n; f++) {
        for (int g = 0; g < in[f].ng; g++) {
            int dup = 0;
            for (int i = 0; i < out->ng; i++) dup |= !strcmp(out->groups[i], in[f].groups[g]);
            if (dup) continue;
            out->groups = realloc(out->groups, sizeof(char *) * (size_t)(out->ng + 1));
            out->groups[out->ng++] = strdup(in[f].groups[g]);
        }
        for (int i = 0; i < in[f].nt; i++) {
            res_task *s = &in[f].t[i];
            int k;
            for (k = 0; k < out->nt; k++)
                if (!strcmp(out->t[k].name, s->name)) break;
            if (k == out->nt) { out->t[k] = *s; out->t[k].n = 0; out->t[k].doc_id = NULL;
                out->t[k].acc = out->t[k].acc_norm = out->t[k].ll = NULL; out->nt++; }
            res_task *t = &out->t[k];
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
            if (!t->doc_id || !t->acc || !t->acc_norm || !t->ll) tool_die(1, "out of memory");
            memcpy(t->doc_id + t->n, s->doc_id, sizeof(int) * (size_t)s->n);
            memcpy(t->acc + t->n, s->acc, sizeof(double) * (size_t)s->n);
            memcpy(t->acc_norm + t->n, s->acc_norm, sizeof(double) * (size_t)s->n);
            memcpy(t->ll + t->n, s->ll, sizeof(double) * (size_t)s->n);
            t->n = nn;
        }
    }
    for (int k = 0; k < out->nt; k++) {
        res_task *t = &out->t[k];
        doc_vals *v = res_calloc((size_t)t->n, sizeof(doc_vals));
        for (int d = 0; d < t->n; d++) v[d] = (doc_vals){t->doc_id[d], t->acc[d], t->acc_norm[d], t->ll[d]};
        qsort(v, (size_t)t->n, sizeof(doc_vals), by_id);
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

