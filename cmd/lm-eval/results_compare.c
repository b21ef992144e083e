/* results_compare.c — lm-eval --compare: each metric against a base results file, retention by
 * the one rule of libcommon/retention.h, as JSON lines and a table. */
#include "results.h"
#include "retention.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "tool.h"

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
    ret_row *c = res_calloc((size_t)cap, sizeof(ret_row));
    char (*names)[96] = res_calloc((size_t)cap, sizeof *names);
    res_metric m[3];
    const char **g;
    int ng = res_group_rows(rs, &g);
    for (int i = 0; i < ng; i++) {
        int k = res_group_metrics(rs, g[i], m, &sz);
        for (int j = 0; j < k; j++) {
            snprintf(names[n], sizeof names[n], "%s", g[i]);
            c[n] = (ret_row){.task = names[n], .metric = m[j].metric, .value = m[j].value, .se = m[j].se,
                             .n = m[j].n, .higher_better = m[j].higher_better};
            n++;
        }
    }
    for (int t = 0; t < rs->nt; t++) {
        int k = res_task_metrics(&rs->t[t], m);
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
        tool_emit(o);
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
        tool_emit(o);
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
        tool_emit(o);
        if (table) fprintf(table, "perplexity retention (mean of %d tasks' base/this): %.2f%%\n", S.n_ppl, S.perplexity);
    }
    free(c);
    free(names);
    return 0;
}
