/* wmask.h — what the parts of wmask share: the job (options), the target set, the per-tensor
 * accounting and the raw-dtype helpers. */
#ifndef WMASK_H
#define WMASK_H
#include <stdint.h>
#include "err.h"
#include "prune.h"
#include "safetensors.h"

typedef enum { METHOD_MAGNITUDE, METHOD_WANDA } wm_method;
typedef enum { SCOPE_ROW, SCOPE_TENSOR, SCOPE_GLOBAL } wm_scope;

#define WM_MAX_RE 16

typedef struct wm_job {
    const char *model, *output;
    double sparsity;
    wm_method method;
    wm_scope scope;
    int nm_n, nm_m;              /* --nm N:M (0:0 = none) */
    const char *include[WM_MAX_RE], *exclude[WM_MAX_RE];
    int n_include, n_exclude;
    /* wanda */
    const char *data;
    int samples, ctx, batch, one_shot;
    const char *dump_acts;       /* debug: the linear layers' inputs X as safetensors */
    const char *device;          /* --device: where the calibration forwards run (NULL: cpu) */
    /* output */
    uint64_t max_shard;
    int zstd_level;
} wm_job;

/* The target set: compiled regexes (default: the attention and MLP projections). */
typedef struct wm_targets wm_targets;
int wm_targets_new(wm_targets **out, const wm_job *j, lop_err *e);
int wm_targets_match(const wm_targets *t, const char *name);
void wm_targets_free(wm_targets *t);

/* The totals behind the summary line. */
typedef struct wm_totals {
    int tensors;                 /* selected */
    int64_t sel_params, sel_zeros, model_params, model_zeros;
    double t_total, t_forward, t_select, t_io;
} wm_totals;

/* A tensor as a matrix [rows, cols]: rows = shape[0] (1 for vectors), cols = the rest. */
void wm_matrix_shape(const st_info *t, int64_t *rows, int64_t *cols);
/* Zeros among n elements of a float dtype in its stored form (+0 and -0). */
int64_t wm_raw_zeros(const void *p, st_dtype t, uint64_t n);
/* Set raw element i to +0 where w[i] == 0 (branch-free; -0 becomes +0). */
void wm_raw_apply(void *raw, const float *w, st_dtype t, uint64_t n);
/* The pruning of one float32 matrix by the job's rule (row / N:M / tensor; not global). */
int wm_prune_matrix(const wm_job *j, const char *name, float *w, int64_t rows, int64_t cols,
                    const float *norm, prune_stat *st, lop_err *e);
/* One JSON line for a pruned tensor, and the running totals (on stderr when output is "-"). */
void wm_report_tensor(const char *output, const st_info *t, const prune_stat *st, wm_totals *tot);
void wm_report_summary(const wm_job *j, const wm_totals *tot);

/* The two methods. */
int wm_run_magnitude(const wm_job *j, const wm_targets *tg, wm_totals *tot, lop_err *e);
int wm_run_wanda(const wm_job *j, const wm_targets *tg, wm_totals *tot, lop_err *e);
#endif
