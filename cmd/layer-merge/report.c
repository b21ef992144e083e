/* report.c — layer-merge's rule names and summary line (report.h). */
#include "report.h"
#include "tool.h"

const char *lm_rule_name(lop_merge_rule r) {
    return r == LMERGE_AVERAGE ? "average" : r == LMERGE_REPLACE ? "replace" : "rdsc";
}

void lm_summary(int lb, int la, int64_t pb, int64_t pa, const char *out) {
    double red = pb ? 1.0 - (double)pa / (double)pb : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "layers_before", lb);
    cJSON_AddNumberToObject(o, "layers_after", la);
    cJSON_AddNumberToObject(o, "params_before", (double)pb);
    cJSON_AddNumberToObject(o, "params_after", (double)pa);
    cJSON_AddNumberToObject(o, "reduction", red);
    cJSON_AddStringToObject(o, "output", out);
    tool_emit(o);
    char a[32], b[32];
    tool_note("%d \xe2\x86\x92 %d layers: %s \xe2\x86\x92 %s (%.2f%%)", lb, la, tool_commas(pb, a, sizeof a),
         tool_commas(pa, b, sizeof b), 100 * red);
}
