/* wprune.h — width-prune's parts: the job, the selection (common.c), the weight-only streaming
 * rewrite (stream.c) and the activation-scored rewrite (act.c). */
#ifndef LOP_WPRUNE_H
#define LOP_WPRUNE_H
#include <stdio.h>
#include "config.h"
#include "safetensors.h"
#include "width.h"

typedef struct wp_job {
    /* options */
    const char *model, *output, *data;
    int mlp_keep, heads_keep, kv_keep, hidden_keep;
    double mlp_pct, head_pct, hidden_pct; /* -1: not given */
    lop_width_imp imp;
    int samples, ctx, batch;
    st_write_opts wo;
    FILE *json;                        /* stdout, or stderr when the model goes to stdout */
    /* results */
    lop_config cfg;                    /* the source config (edited into the output's) */
    int has_cfg;
    lop_width w;
    int cut_mlp, cut_heads, cut_hidden;
    double **mlp_score;                /* [L] -> [I] (cut_mlp) */
    double **head_score;               /* [L] -> [Hq] (cut_heads) */
    double *hid_score;                 /* [C] (cut_hidden) */
    int64_t params_in, params_out;
    int64_t calib_tokens;
    int calib_samples;
    double seconds;
} wp_job;

/* From the parsed config: the kept counts (percentages resolved), the selection, score arrays. */
int wp_setup(wp_job *j, lop_err *e);
/* Choose layer l's neurons / heads, or the channels, from the scores. */
int wp_decide_mlp(wp_job *j, int l, lop_err *e);
int wp_decide_heads(wp_job *j, int l, lop_err *e);
int wp_decide_hidden(wp_job *j, lop_err *e);
/* Specs and output infos of infos[0..n) (malloc'd), parameter counts into j. */
int wp_plan(wp_job *j, const st_info *infos, int n, lop_wspec **specs, st_info **out, lop_err *e);
/* The output config text (malloc'd). */
char *wp_out_config(wp_job *j, lop_err *e);
/* The JSON lines (per layer and part, the summary) and the human note. */
void wp_report(const wp_job *j);
void wp_job_free(wp_job *j);

int wp_run_stream(wp_job *j, lop_err *e);
int wp_run_activation(wp_job *j, lop_err *e);
#endif
