/* results_lines.c — lm-eval's JSON lines: one {"task","metric","value","stderr","n"} per metric
 * of every task, then of every group. */
#include "results.h"
#include <math.h>
#include "tool.h"

static void emit_metric(const char *task, const res_metric *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", task);
    cJSON_AddStringToObject(o, "metric", m->metric);
    cJSON_AddItemToObject(o, "value", isnan(m->value) ? cJSON_CreateNull() : cJSON_CreateNumber(m->value));
    cJSON_AddItemToObject(o, "stderr", isnan(m->se) ? cJSON_CreateNull() : cJSON_CreateNumber(m->se));
    cJSON_AddNumberToObject(o, "n", m->n);
    tool_emit(o);
}

void res_emit_lines(const res_set *rs) {
    res_metric m[3];
    for (int i = 0; i < rs->nt; i++) {
        int k = res_task_metrics(&rs->t[i], m);
        for (int j = 0; j < k; j++) emit_metric(rs->t[i].name, &m[j]);
    }
    const char **g;
    int ng = res_group_rows(rs, &g), sz;
    for (int i = 0; i < ng; i++) {
        int k = res_group_metrics(rs, g[i], m, &sz);
        for (int j = 0; j < k; j++) emit_metric(g[i], &m[j]);
    }
}

