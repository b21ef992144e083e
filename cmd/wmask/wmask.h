/* wmask.h — what the parts of wmask share: the job (options), the target set, the per-tensor
 * accounting and the raw-dtype helpers. */
#ifndef WMASK_H
#define WMASK_H
#include <stdint.h>
#include "err.h"
#include "prune.h"
#include "safetensors.h"

typedef enum { METHOD_MAGNITUDE, METHOD_WANDA, METHOD_SPARSEGPT } wm_method;
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
    /* sparsegpt */
    double damp;                 /* --damp: λ of H += λ·mean(diag H)·I (default 0.01) */
    int blocksize;               /* --blocksize: columns per OBS block (default 128) */
    /* OWL */
    int owl;
    double owl_lambda, owl_m;    /* --owl-lambda (0.08), --owl-m (5) */
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

/* A tensor's budget: zeros in all (unstructured: per row, zeros / rows each and one more for
 * the first zeros % rows rows; per tensor: exactly zeros), or N of every M (nm_n, --nm). */
typedef struct wm_quota {
    int64_t zeros;
    int nm_n;
} wm_quota;
wm_quota wm_quota_default(const wm_job *j, int64_t rows, int64_t cols);

/* The totals behind the summary line. */
typedef struct wm_totals {
    int tensors;                 /* selected */
    int64_t sel_params, sel_zeros, model_params, model_zeros;
    double t_total, t_forward, t_select, t_io, t_hessian, t_owl;
    double obs_loss;             /* sparsegpt: Σ (w - q)² / [H⁻¹]_jj² over every pruned tensor */
} wm_totals;

/* A tensor as a matrix [rows, cols]: rows = shape[0] (1 for vectors), cols = the rest. */
void wm_matrix_shape(const st_info *t, int64_t *rows, int64_t *cols);
/* Zeros among n elements of a float dtype in its stored form (+0 and -0). */
int64_t wm_raw_zeros(const void *p, st_dtype t, uint64_t n);
/* Set raw element i to +0 where w[i] == 0 (branch-free; -0 becomes +0). */
void wm_raw_apply(void *raw, const float *w, st_dtype t, uint64_t n);
/* The pruning of one float32 matrix by the job's rule (row / N:M / tensor; not global). */
int wm_prune_matrix(const wm_job *j, const char *name, float *w, int64_t rows, int64_t cols,
                    const float *norm, const wm_quota *q, prune_stat *st, lop_err *e);
/* One JSON line for a pruned tensor, and the running totals (on stderr when output is "-"). */
void wm_report_tensor(const char *output, const st_info *t, const prune_stat *st, wm_totals *tot);
/* The same with the budget it was given (--owl) and the OBS loss (sparsegpt, < 0: none). */
void wm_report_tensor_q(const wm_job *j, const st_info *t, const prune_stat *st, const wm_quota *q,
                        double loss, wm_totals *tot);
/* A raw copy of float32 w in the tensor's dtype where a nonzero w never rounds to zero (the
 * smallest subnormal of its sign instead): sparsegpt's updated weights keep the exact mask. */
void wm_raw_store(void *raw, const float *w, st_dtype t, uint64_t n);
void wm_report_summary(const wm_job *j, const wm_totals *tot);

/* The methods (wanda.c runs wanda and sparsegpt: both are calibrated, layer by layer). */
int wm_run_magnitude(const wm_job *j, const wm_targets *tg, wm_totals *tot, lop_err *e);
int wm_run_wanda(const wm_job *j, const wm_targets *tg, wm_totals *tot, lop_err *e);

/* ---- sparsegpt.c ---- */
/* H (upper triangle, row-major [in, in], float64) += Xᵀ X for X [rows, in]. -1: out of memory. */
int wm_hess_add(double *H, const float *X, int64_t rows, int64_t in);
/* H summed over `tokens` tokens -> in place U, the upper Cholesky factor of (2/tokens·H +
 * damp·mean(diag)·I)⁻¹ (lower triangle zeroed); dead[n] = inputs with H_jj == 0 (then H_jj = 1). */
int wm_hess_prepare(double *H, int64_t n, int64_t tokens, double damp, uint8_t *dead, lop_err *e);
/* SparseGPT on float32 wf [rows, cols] in place (pruned and updated) with the budget q. */
int wm_sgpt_prune(const wm_job *j, const char *name, float *wf, int64_t rows, int64_t cols,
                  const double *U, const uint8_t *dead, const wm_quota *q, prune_stat *st,
                  double *loss, lop_err *e);

/* ---- owl.c: outlier-weighted layerwise sparsity (Yin et al. 2024) ---- */
struct lop_model;
struct lop_calib;
typedef struct wm_owl {
    int L, K;                    /* layers; K = L * PROJ_N projections */
    double *ratio;               /* [L] outlier ratio in % (-1: no target in the layer) */
    double *sparsity;            /* [L] OWL's real-valued sparsity of the layer */
    int64_t *params, *zeros;     /* [L] target weights of the layer, zeros given to it */
    int *nm_n;                   /* [L] --nm: the layer's N */
    wm_quota *quota;             /* [K] each projection's budget */
    char **name;                 /* [K] tensor names (NULL: not a target) */
} wm_owl;
/* The plan: one pass of the dense model over the calibration text for every target's ‖X_j‖,
 * layer outlier ratios, sparsities, then whole-weight budgets (see owl.c). target[K]. */
int wm_owl_plan(wm_owl *o, const wm_job *j, struct lop_model *m, const struct lop_calib *cal,
                int batch, const uint8_t *target, wm_totals *tot, lop_err *e);
const wm_quota *wm_owl_quota(const wm_owl *o, const char *name); /* NULL: not planned */
void wm_owl_report(const wm_job *j, const wm_owl *o);   /* one JSON line per layer */
void wm_owl_free(wm_owl *o);

/* ---- wanda.c: shared by the calibrated paths ---- */
int wm_find_targets(struct lop_model *m, const wm_targets *tg, uint8_t *target, lop_err *e);
int wm_load_calib(const wm_job *j, struct lop_model *m, struct lop_calib *cal, lop_err *e);
#endif
