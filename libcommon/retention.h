/* retention.h — one rule for "how much of the base's capability is left", shared by
 * lm-eval --compare and model-card (they used to disagree: 145% vs 125.2% from the same logs).
 *
 * Per row (task, metric): retention = value / base × 100 for higher-is-better metrics,
 * base / value × 100 for perplexities. The summary ("capability retention") is the mean of the
 * per-task retentions over the TOP-LEVEL tasks only (an mmlu subject counts through its group when
 * the group was evaluated) and ONE metric per task: acc_norm where the task has it, else acc.
 * Beside each number: n, the task's chance accuracy, and whether the difference is within noise:
 * |value − base| < 2·sqrt(se_value² + se_base²) (two standard errors of the difference; then the
 * retention says nothing about the model, and the table marks it). */
#ifndef LOP_RETENTION_H
#define LOP_RETENTION_H

typedef struct ret_row {
    const char *task, *metric;
    double value, base;           /* base < 0 or NaN: the base has no such row */
    double se, base_se;           /* standard errors, < 0 unknown */
    long long n;                  /* documents, < 0 unknown */
    int higher_better;
    /* filled by ret_compute: */
    double retention;             /* NaN when not computable */
    int in_summary;               /* counted in the capability (or perplexity) summary */
    int noise;                    /* 1: the difference is within two standard errors */
} ret_row;

typedef struct ret_summary {
    int n_cap, n_ppl, n_noise;    /* rows in each summary; summary rows within noise */
    double capability, perplexity;/* mean retentions (NaN when none) */
    double avg, base_avg;         /* mean value and mean base over the capability rows */
} ret_summary;

/* chance accuracy of a built-in task (mmlu*: 0.25, piqa: 0.5, ...), or -1 when unknown */
double ret_chance(const char *task);
/* 1 if task is reported at the top level among the evaluated task names (names[n]) */
int ret_top_level(const char *task, const char *const *names, int n);
/* fill retention / in_summary / noise of rows[n] and the summary */
void ret_compute(ret_row *rows, int n, ret_summary *s);
#endif
