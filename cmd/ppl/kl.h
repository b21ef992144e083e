/* kl.h — ppl's --save-logits and --kl-base on libcommon's one top-k log-prob format (kd_cache.h)
 * and its one divergence routine (kd.h's kd_div).
 *
 * --save-logits: one block per forward pass: the input ids, the targets of the counted positions
 * (-1 elsewhere), per counted position its k most probable ids (ascending) with their log-probs,
 * the log of the remaining mass and the target's log-prob (the base perplexity).
 * --kl-base: the saved positions are read back in order, whatever the blocks (so --batch-tokens
 * may differ between the runs); each must have the same target as this run's. */
#ifndef PPL_KL_H
#define PPL_KL_H
#include <stdint.h>
#include "err.h"

typedef struct ppl_saver ppl_saver;
int ppl_saver_open(ppl_saver **s, const char *path, int vocab, int k, const char *model, lop_err *e);
/* One forward's rows: ids[T]; target[r] >= 0 for a counted row, with its top-k ids/logits
 * (topk_id, topk_logit [T, k] as the head returned them, any order), lse[r] and target_lp[r]. */
int ppl_saver_put(ppl_saver *s, int T, const int32_t *ids, const int32_t *target,
                  const int32_t *topk_id, const float *topk_logit, const float *lse,
                  const float *target_lp, lop_err *e);
int ppl_saver_finish(ppl_saver *s, lop_err *e);   /* renames into place, frees s */

/* One saved position. */
typedef struct ppl_base_row {
    int32_t target;
    const int32_t *id;   /* [k] ascending */
    const float *lp;     /* [k] log-probs */
    float tail;          /* log of the mass outside id[] */
    float target_lp;     /* NaN when the file has none (a kd-train cache) */
    int32_t top1;        /* the id of the largest lp */
} ppl_base_row;

typedef struct ppl_base ppl_base;
int ppl_base_open(ppl_base **b, const char *path, int vocab, int *k, lop_err *e);
/* 1: the next saved position (valid until the next call), 0: none left, -1: error */
int ppl_base_next(ppl_base *b, ppl_base_row *r, lop_err *e);
void ppl_base_close(ppl_base *b);

/* KL(base || current) over the k ids and the tail, with the current model's logits at the base's
 * ids (cur_logit[k]) and its log-sum-exp: kd_div's forward KL at temperature 1. */
double ppl_row_kl(const ppl_base_row *r, int k, const float *cur_logit, float lse, double *scratch);
#endif
