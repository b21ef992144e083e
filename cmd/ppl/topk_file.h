/* topk_file.h — ppl's --save-logits file: per scored token, the target id and log-prob and the
 * model's top-k ids and log-probs, zstd-compressed:
 *   "LOPTOPK1" | u32 k | u32 vocab | records { i32 target, f32 target_logprob, i32 id[k], f32 lp[k] }
 * (little endian). --kl-base reads it back record by record. */
#ifndef PPL_TOPK_FILE_H
#define PPL_TOPK_FILE_H
#include <stdint.h>
#include <stdio.h>
#include "err.h"

typedef struct topk_rec {
    int32_t target;
    float target_lp;
    int32_t *id;   /* [k] */
    float *lp;     /* [k] */
} topk_rec;

typedef struct topk_writer topk_writer;
/* Writes to a temporary name beside path; topk_writer_finish renames it into place. */
int topk_writer_open(topk_writer **w, const char *path, int k, int vocab, lop_err *e);
int topk_writer_put(topk_writer *w, const topk_rec *r, lop_err *e);
int topk_writer_finish(topk_writer *w, lop_err *e);
void topk_writer_abort(topk_writer *w);

typedef struct topk_reader topk_reader;
int topk_reader_open(topk_reader **r, const char *path, int *k, int *vocab, lop_err *e);
/* 1: a record (valid until the next call), 0: end of file, -1: error (truncated, corrupt). */
int topk_reader_next(topk_reader *r, topk_rec *out, lop_err *e);
void topk_reader_close(topk_reader *r);
#endif
