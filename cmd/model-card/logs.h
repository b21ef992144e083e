/* logs.h — the JSON lines lop's tools print, sorted into what a model card reports.
 *
 * A log is one file of JSON lines (or an lm-eval --output results file). Each `--log` argument is
 * a stage of the experiment, named `LABEL=FILE` or, by default, after the file (its name up to the
 * first dot: "healed.ppl.jsonl" -> "healed"). Logs with the same label are one stage (a model's
 * ppl and lm-eval logs side by side). Lines are recognized by their keys:
 *   {"task","metric","value",...}          lm-eval            -> stage benchmark results
 *   {"ppl",...}                             ppl               -> stage perplexity
 *   {"layer"|"start","metric","score"}      layer-score       -> layer importance
 *   {"step","loss",...}                     heal-sft/kd-train -> training curve
 *   {"eval_loss"|"eval_ppl",...}            held-out evaluation during training
 *   {"dropped"|"drop"|"action":"drop"..}    layer-drop        -> removed layers
 *   {"merge"|"layers","similarity","accepted"}, {"merged"..} layer-merge
 *   {"sparsity" + "tensor"|"name"}          wmask per tensor; lines with other sparsity keys:
 *                                            its summary
 *   {"provenance":{...}}                    every tool's first line -> the stage's recipe as run
 * Lines nobody recognizes are counted and otherwise ignored (tools may add fields freely); lines
 * that are not JSON at all (a tool's human messages caught with 2>) are counted and skipped. */
#ifndef MC_LOGS_H
#define MC_LOGS_H
#include <stdint.h>
#include <cjson/cJSON.h>
#include "err.h"

#define MC_MAX_FILES 16

typedef struct mc_eval {
    char task[128], metric[64];
    double value, stderr_;   /* stderr_ < 0: unknown */
    long long n;             /* -1: unknown */
} mc_eval;

typedef struct mc_stage {
    char label[128];
    const char *file[MC_MAX_FILES]; /* the --log arguments' paths (argv strings) */
    int nfiles;
    /* ppl */
    int has_ppl;
    double ppl, ppl_stderr, nll;
    long long ppl_tokens;
    /* lm-eval */
    mc_eval *ev;
    int nev;
    /* training */
    char train_tool[16];     /* "heal-sft" or "kd-train" */
    int nsteps;
    long long last_step;
    double first_loss, last_loss, min_loss, peak_lr, sum_tok_s;
    int n_tok_s;
    long long tokens;        /* summed "tokens" of step lines, when they carry it */
    double eval_loss, eval_ppl; /* last held-out values, < 0 when none */
    cJSON *train_terms;      /* last step line's other numeric terms (kd: ce, skl, ...) */
    cJSON *train_info;       /* scalar fields of non-step lines of a training log (its recipe) */
    cJSON *prov[MC_MAX_FILES]; /* provenance lines of the stage's logs (the recipe as run) */
    int nprov;
    int human;               /* lines that are not JSON (a tool's messages caught with 2>) */
    int unknown;             /* lines not recognized */
    int lines;
} mc_stage;

typedef struct mc_score { int layer, n; double score; } mc_score;
typedef struct mc_merge {
    int a, b;            /* the base model's layers a..b folded into one */
    int gone;            /* layers it removed */
    double sim;
    int accepted, has_sim;
} mc_merge;
typedef struct mc_wtensor { char name[192]; double sparsity; } mc_wtensor;

typedef struct mc_logs {
    mc_stage *st;
    int nst;
    /* layer-score (the first metric seen; scores of other metrics are counted) */
    char score_metric[32];
    mc_score *scores;
    int nscores;
    /* layer-drop */
    int *dropped;
    int ndropped;
    int64_t params_before, params_after; /* -1: unknown */
    /* layer-merge */
    mc_merge *merges;
    int nmerges;
    cJSON *merge_stats;      /* scalar fields of layer-merge's closing statistics line */
    /* wmask */
    mc_wtensor *wt;
    int nwt;
    char wmask_method[32];
    double target_sparsity, overall_sparsity, model_sparsity; /* < 0: unknown */
    cJSON *wmask_summary;
} mc_logs;

void logs_init(mc_logs *L);
void logs_free(mc_logs *L);
/* Read one `--log` argument ("LABEL=FILE" or "FILE"). Fails on a missing file, or a line that is
 * not JSON (naming file:line). */
int logs_read(mc_logs *L, const char *arg, lop_err *e);
/* The stage that results are compared against: label "base" (or starting "base"), else the
 * first stage with a perplexity or benchmark; NULL when none. */
const mc_stage *logs_base(const mc_logs *L);
#endif
