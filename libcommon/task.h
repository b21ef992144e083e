/* task.h — evaluation tasks as lm-evaluation-harness defines them: documents read from the
 * files of ../shared/data/eval (or a user's JSONL), turned into the harness's (context,
 * continuation) requests, and scored with the harness's metrics.
 *
 * A document holds the harness's strings, already built:
 *   ctx[i]  = fewshot_context = description + few-shot examples + doc_to_text(doc)
 *   cont[i] = target_delimiter + choice        (what the model is asked to continue with)
 *   chars[i]= len(choice) in code points        (acc_norm's divisor, as the harness's
 *                                                completion_len, which leaves the delimiter out)
 * Three kinds (the three JSONL shapes):
 *   TASK_MC       one context, n continuations (choices): acc = argmax ll, acc_norm = argmax ll/chars
 *   TASK_MULTI    n contexts (winogrande's partial scoring), one continuation: acc = argmax ll
 *   TASK_LOGLIK   one context, one continuation (lambada): acc = is_greedy, perplexity
 * A document's requests are r = 0..n_req-1 with context ctx[n_ctx > 1 ? r : 0] and
 * continuation cont[n_cont > 1 ? r : 0]. */
#ifndef LOP_TASK_H
#define LOP_TASK_H
#include <stddef.h>
#include <stdint.h>
#include "err.h"

typedef enum { TASK_MC = 0, TASK_MULTI = 1, TASK_LOGLIK = 2 } task_kind;

/* metrics a task reports (the harness's metric_list) */
enum { MET_ACC = 1, MET_ACC_NORM = 2, MET_PPL = 4 };

typedef struct task_doc {
    int doc_id;        /* index in the task's full document list (before --limit/--shard) */
    int n_ctx, n_cont; /* see above */
    char **ctx;        /* [n_ctx] malloc'd strings */
    char **cont;       /* [n_cont] */
    int *chars;        /* [n_req] choice lengths in code points (MC) or 0 */
    int gold;          /* index of the right request (MC, MULTI), -1 for LOGLIK */
} task_doc;

static inline int task_doc_nreq(const task_doc *d) { return d->n_ctx > d->n_cont ? d->n_ctx : d->n_cont; }
static inline const char *task_req_ctx(const task_doc *d, int r) { return d->ctx[d->n_ctx > 1 ? r : 0]; }
static inline const char *task_req_cont(const task_doc *d, int r) { return d->cont[d->n_cont > 1 ? r : 0]; }

typedef struct lop_task {
    char name[96];      /* harness task name: "hellaswag", "mmlu_anatomy", or the task file's stem */
    char group[48];     /* "mmlu_stem" etc. for MMLU subjects, "" otherwise */
    char source[1024];  /* the file the documents came from */
    task_kind kind;
    int metrics;        /* MET_* */
    double version;     /* the harness's metadata version */
    int num_fewshot;
    int n_original;     /* documents in the file */
    int n_docs;         /* after --limit and --shard */
    task_doc *docs;
} lop_task;

/* ---- the task registry ---- */

/* Expand a comma-separated list of task and group names ("hellaswag,mmlu,arc_easy") into task
 * names, in order, without duplicates ("mmlu" -> its 57 subjects; "mmlu_stem" -> its subjects).
 * *names is malloc'd (free with task_names_free). Unknown names fail (usage error). */
int task_expand(const char *list, char ***names, int *n, lop_err *e);
void task_names_free(char **names, int n);
/* 1 if name is a built-in task (not a group) */
int task_is_builtin(const char *name);
/* Every built-in task and group name, for --help / --list: NULL-terminated static array. */
const char *const *task_builtin_names(void);

/* Load a built-in task from data_dir (the folder laid out as ../shared/data/eval; a file may
 * also be given compressed as FILE.zst). num_fewshot > 0 is supported where the harness
 * takes few-shot examples from a dev split we have (MMLU); elsewhere it is a usage error. */
int task_load(lop_task *t, const char *name, const char *data_dir, int num_fewshot, lop_err *e);
/* Load a user's task from a JSONL file in one of the three shapes (see the man page):
 * {"query","choices","gold"} | {"context_options","continuation","gold"} | {"context","continuation"}.
 * The task's name is the file's stem. delim: the target delimiter put before every choice /
 * continuation (the harness's default is " "; "" when the continuations carry their own). */
int task_load_file(lop_task *t, const char *path, const char *delim, lop_err *e);
void task_free(lop_task *t);

/* Keep the first `limit` documents (limit < 1: the fraction ceil(n * limit), as the harness;
 * limit <= 0: all), then every shard_n-th document from the shard_i-th (shard_n <= 1: all). */
void task_select(lop_task *t, double limit, int shard_i, int shard_n);

/* The task groups (one table, task.c): "mmlu" and its four categories "mmlu_stem", ...
 * task_group_parent: the group a group belongs to (NULL at the top); task_subgroups: a group's
 * subgroups in the harness's report order (alphabetical), *out static. */
int task_n_groups(void);
const char *task_group_name(int i);
const char *task_group_parent(const char *group);
int task_subgroups(const char *group, const char *const **out);

/* MMLU: the 57 subjects in the harness's order, and their category ("stem", "humanities",
 * "social_sciences", "other"). */
int mmlu_n_subjects(void);
const char *mmlu_subject(int i);
const char *mmlu_category(const char *subject);

/* ---- prompt pieces (exposed for tests) ---- */

/* hellaswag's preprocess: strip, " [title]" -> ". ", remove "[...]" (no newline inside),
 * replace "  " with " ". malloc'd. */
char *hellaswag_preprocess(const char *text);
/* Python's str.strip() (Unicode whitespace as str.isspace). malloc'd. */
char *task_py_strip(const char *s);
/* bytes of trailing whitespace (Python's str.rstrip() definition) at the end of s[0..len) */
size_t task_py_trailing_space(const char *s, size_t len);
/* Number of code points in UTF-8 s (Python's len). */
int task_utf8_len(const char *s);
/* MMLU prompt for one question (no description, no few-shot): "{q.strip()}\nA. ..\nAnswer:" */
char *mmlu_doc_text(const char *question, char *const choices[4]);

/* ---- scoring ---- */

/* per-document metric values computed from its requests' log-likelihoods and greedy flags */
typedef struct task_score {
    double acc, acc_norm; /* 0/1 */
    double ll;            /* LOGLIK: the continuation's log-likelihood (perplexity's item) */
} task_score;
void task_score_doc(const lop_task *t, const task_doc *d, const double *ll, const uint8_t *greedy,
                    task_score *out);
/* numpy's argmax: first index of the maximum (NaN counts as the maximum, as numpy) */
int task_argmax_first(const double *x, int n);

/* Aggregates over n documents: mean and its standard error (sample std / sqrt(n), NaN when
 * n < 2, as the harness's "N/A"). Perplexity = exp(-mean ll), its stderr by the delta method
 * (ppl * std(ll) / sqrt(n); the harness bootstraps). */
void task_agg_mean(const double *x, int n, double *mean, double *stderr_);
void task_agg_perplexity(const double *ll, int n, double *ppl, double *stderr_);
/* the harness's group aggregation: size-weighted mean and pooled_sample_stderr */
void task_agg_group(const double *means, const double *stderrs, const int *sizes, int k, double *mean,
               double *stderr_);
#endif
