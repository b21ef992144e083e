/* results.c — lm-eval's results as data: per-document values of each task, the metrics the
 * harness computes from them, and groups (mmlu and its four categories). The outputs are
 * results_lines.c, results_json.c, results_table.c and results_compare.c. */
#include "results.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tool.h"

void *res_calloc(size_t n, size_t s) {
    void *p = calloc(n ? n : 1, s);
    if (!p) tool_die(1, "out of memory");
    return p;
}

void res_task_alloc(res_task *t, int n) {
    t->n = n;
    t->doc_id = res_calloc((size_t)n, sizeof(int));
    t->acc = res_calloc((size_t)n, sizeof(double));
    t->acc_norm = res_calloc((size_t)n, sizeof(double));
    t->ll = res_calloc((size_t)n, sizeof(double));
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

int res_task_metrics(const res_task *t, res_metric out[3]) {
    int k = 0;
    if (t->metrics & MET_PPL) {
        out[k] = (res_metric){"perplexity", 0, 0, t->n, 0};
        task_agg_perplexity(t->ll, t->n, &out[k].value, &out[k].se);
        k++;
    }
    if (t->metrics & MET_ACC) {
        out[k] = (res_metric){"acc", 0, 0, t->n, 1};
        task_agg_mean(t->acc, t->n, &out[k].value, &out[k].se);
        k++;
    }
    if (t->metrics & MET_ACC_NORM) {
        out[k] = (res_metric){"acc_norm", 0, 0, t->n, 1};
        task_agg_mean(t->acc_norm, t->n, &out[k].value, &out[k].se);
        k++;
    }
    return k;
}

/* mmlu's categories in the harness's report order, from libcommon's group table (task.h) */
int res_n_categories(void) { const char *const *v; return task_subgroups("mmlu", &v); }
const char *res_category(int c) { const char *const *v; task_subgroups("mmlu", &v); return v[c]; }

int res_has_members(const res_set *rs, const char *cat) {
    for (int i = 0; i < rs->nt; i++)
        if (!strcmp(rs->t[i].group, cat)) return 1;
    return 0;
}

/* the harness aggregates a group from its members' aggregates: size-weighted means and
 * pooled_sample_stderr; mmlu from its categories, a category from its subjects */
int res_group_metrics(const res_set *rs, const char *group, res_metric out[3], int *size) {
    int is_top = !strcmp(group, "mmlu");
    int k = 0, nm = 0;
    double means[64], ses[64];
    int sizes[64];
    const char *metric = "acc";
    *size = 0;
    if (is_top) {
        for (int c = 0; c < res_n_categories(); c++) {
            res_metric m[3];
            int sz;
            if (!res_has_members(rs, res_category(c)) || res_group_metrics(rs, res_category(c), m, &sz) < 1) continue;
            means[nm] = m[0].value; ses[nm] = m[0].se; sizes[nm] = sz; nm++;
        }
    } else {
        for (int i = 0; i < rs->nt && nm < 64; i++) {
            if (strcmp(rs->t[i].group, group)) continue;
            res_metric m[3];
            int n = res_task_metrics(&rs->t[i], m);
            for (int j = 0; j < n; j++)
                if (!strcmp(m[j].metric, metric)) {
                    means[nm] = m[j].value; ses[nm] = m[j].se; sizes[nm] = rs->t[i].n; nm++;
                }
        }
    }
    if (nm == 0) return 0;
    out[k] = (res_metric){metric, 0, 0, 0, 1};
    task_agg_group(means, ses, sizes, nm, &out[k].value, &out[k].se);
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
            for (int c = 0; c < res_n_categories(); c++) {
                dup = 0;
                for (int i = 0; i < n; i++) dup |= !strcmp(rows[i], res_category(c));
                if (!dup && res_has_members(rs, res_category(c))) rows[n++] = res_category(c);
            }
    }
    *names = rows;
    return n;
}

