/* report.h — what layer-merge reports, shared by its two paths (--merge in main.c, --laco in
 * laco.c): the rule's name and the closing summary line. */
#ifndef LM_REPORT_H
#define LM_REPORT_H
#include <stdint.h>
#include "layers.h"

const char *lm_rule_name(lop_merge_rule r);
/* {"layers_before","layers_after","params_before","params_after","reduction","output"} and a note */
void lm_summary(int lb, int la, int64_t pb, int64_t pa, const char *out);
#endif
