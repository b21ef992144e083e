/* results.h — lm-eval's results: per-document values of each task, the metrics computed from
 * them (the harness's aggregation), groups (mmlu and its four categories), and their outputs:
 * JSON lines, the harness's results layout, its table, shard merging and base comparison. */
#ifndef LM_EVAL_RESULTS_H
#define LM_EVAL_RESULTS_H
#include <stdio.h>
#include <cjson/cJSON.h>
#include "err.h"
#include "task.h"

/* one task's per-document values, in doc_id order */
typedef struct tres {
    char name[96], group[48], source[1024];
    task_kind kind;
    int metrics;           /* MET_* */
    double version;
    int num_fewshot, n_original, n;
    char delim[16];        /* target delimiter, for the configs block */
    int *doc_id;
    double *acc, *acc_norm, *ll;
} tres;

typedef struct res_set {
    tres *t;
    int nt;
    char **groups;         /* groups asked for ("mmlu", "mmlu_stem", ...) */
    int ng;
    cJSON *config;         /* the run's "config" block (owned) */
    double seconds;
} res_set;

void tres_alloc(tres *t, int n);
void res_free(res_set *rs);

/* a metric's value: index into the task's metric list */
typedef struct mval { const char *metric; double value, se; int n; int higher_better; } mval;
/* the task's metrics in the harness's order (perplexity, acc for loglikelihood tasks; acc,
 * acc_norm otherwise); returns how many */
int tres_metrics(const tres *t, mval out[3]);
/* a group's metrics over the evaluated members; returns how many (0 if no member ran) */
int group_metrics(const res_set *rs, const char *group, mval out[3], int *size);
/* the groups whose rows appear: every asked-for group, and mmlu's categories under mmlu */
int res_group_rows(const res_set *rs, const char ***names);

cJSON *res_to_json(const res_set *rs);
int res_from_json(res_set *rs, const cJSON *j, const char *path, lop_err *e);
/* union of the documents of several result sets (shards); the same document twice is an error */
int res_merge(res_set *out, res_set *in, int n, lop_err *e);

void res_emit_lines(const res_set *rs);         /* {"task","metric","value","stderr","n"} */
void res_print_table(const res_set *rs, FILE *f); /* the harness's markdown tables */
/* --compare: lines {"task","metric","value","base","retention"} and the averages */
int res_compare(const res_set *rs, const cJSON *base, const char *base_path, FILE *table, lop_err *e);
#endif
