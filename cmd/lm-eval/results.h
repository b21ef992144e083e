/* results.h — lm-eval's results: per-document values of each task, the metrics computed from
 * them (the harness's aggregation) and groups (mmlu and its four categories), in results.c; and
 * their four outputs, one file each: JSON lines (results_lines.c), the harness's results file with
 * shard merging (results_json.c), its markdown table (results_table.c) and the comparison with a
 * base (results_compare.c). */
#ifndef LM_EVAL_RESULTS_H
#define LM_EVAL_RESULTS_H
#include <stdio.h>
#include <cjson/cJSON.h>
#include "err.h"
#include "task.h"

/* one task's per-document values, in doc_id order */
typedef struct res_task {
    char name[96], group[48], source[1024];
    task_kind kind;
    int metrics;           /* MET_* */
    double version;
    int num_fewshot, n_original, n;
    char delim[16];        /* target delimiter, for the configs block */
    int *doc_id;
    double *acc, *acc_norm, *ll;
} res_task;

typedef struct res_set {
    res_task *t;
    int nt;
    char **groups;         /* groups asked for ("mmlu", "mmlu_stem", ...) */
    int ng;
    cJSON *config;         /* the run's "config" block (owned) */
    double seconds;
} res_set;

void res_task_alloc(res_task *t, int n);
void res_free(res_set *rs);
/* calloc that stops the tool on out of memory (these are the tool's own data) */
void *res_calloc(size_t n, size_t s);

/* a metric's value: index into the task's metric list */
typedef struct res_metric { const char *metric; double value, se; int n; int higher_better; } res_metric;
/* the task's metrics in the harness's order (perplexity, acc for loglikelihood tasks; acc,
 * acc_norm otherwise); returns how many */
int res_task_metrics(const res_task *t, res_metric out[3]);
/* a group's metrics over the evaluated members; returns how many (0 if no member ran) */
int res_group_metrics(const res_set *rs, const char *group, res_metric out[3], int *size);
/* the groups whose rows appear: every asked-for group, and mmlu's categories under mmlu */
int res_group_rows(const res_set *rs, const char ***names);
/* mmlu's categories in the harness's report order (libcommon's group table, task.h), and whether
 * any evaluated task belongs to a group */
int res_n_categories(void);
const char *res_category(int c);
int res_has_members(const res_set *rs, const char *group);

/* ---- the outputs ---- */

/* results_json.c */
cJSON *res_to_json(const res_set *rs);
int res_from_json(res_set *rs, const cJSON *j, const char *path, lop_err *e);
/* union of the documents of several result sets (shards); the same document twice is an error */
int res_merge(res_set *out, res_set *in, int n, lop_err *e);

/* results_lines.c, results_table.c, results_compare.c */
void res_emit_lines(const res_set *rs);         /* {"task","metric","value","stderr","n"} */
void res_print_table(const res_set *rs, FILE *f); /* the harness's markdown tables */
/* --compare: lines {"task","metric","value","base","retention"} and the averages */
int res_compare(const res_set *rs, const cJSON *base, const char *base_path, FILE *table, lop_err *e);
#endif
