/* loglik.h — log-likelihood requests scored the way lm-evaluation-harness's HFLM scores them,
 * with the work a document's choices have in common done once.
 *
 * Encoding (HFLM._encode_pair): the context's trailing whitespace (Python's str.rstrip) moves to
 * the front of the continuation; context ids = encode(context), continuation ids = the ids of
 * encode(context + continuation) past the context's count. Both encodings use
 * add_special_tokens = add_bos (the harness's add_bos_token: on for Gemma, else --add-bos). An
 * empty context becomes [BOS] (or [EOS] when there is no BOS), as the harness does.
 *
 * Scoring (HFLM._loglikelihood_tokens): the model reads (ctx + cont)[-(max_len+1):][:-1] (left
 * truncation to the model's context); loglik = sum of log p(cont[j]) at the last |cont| rows;
 * is_greedy = every one of those tokens is the argmax.
 *
 * Prefix reuse: the requests of one ll_doc (a question's choices) usually share their first
 * tokens. Their longest common prefix (up to the first scored row of any of them) is computed once
 * per batch into a KV cache, copied to each request's cache slot, and only the rest of each
 * request is run. The numbers are those of running every request alone (up to float rounding). */
#ifndef LOP_LOGLIK_H
#define LOP_LOGLIK_H
#include <stdint.h>
#include "err.h"
#include "model.h"
#include "tokenizer.h"

typedef struct ll_req {
    int32_t *ctx, *cont;   /* token ids (malloc'd by ll_encode) */
    int nctx, ncont;
    double ll;             /* out: sum of the continuation's log-probs */
    uint8_t greedy;        /* out: every continuation token is the argmax */
} ll_req;

typedef struct ll_doc {    /* requests that may share a prefix (one document) */
    ll_req *req;
    int n;
} ll_doc;

/* Encode one (context, continuation) pair the harness's way into r->ctx / r->cont. */
int ll_encode(const lop_tokenizer *t, const char *ctx, const char *cont, int add_bos, ll_req *r,
              lop_err *e);
void ll_req_free(ll_req *r);

typedef struct ll_opts {
    int max_len;           /* the model's context: the harness's max_length (> 0) */
    int batch_tokens;      /* rows per forward, about (0: 2048) */
    int64_t kv_bytes;      /* memory for the KV caches of a batch (0: 512 MiB) */
    int no_reuse;          /* 1: run every request whole (for comparisons) */
    /* a share of the work (mpirun jobs): run only batches k (in the plan's order, the same for
     * every share) with k % part_n == part_i; the other requests keep ll 0, greedy 0. The plan
     * does not depend on the share, so every request's numbers are the whole run's. 0/0: all. */
    int part_i, part_n;
    /* called after each batch with the number of documents finished so far */
    void (*progress)(void *user, int docs_done);
    void *user;
} ll_opts;

typedef struct ll_stats {
    double forward_s;      /* wall time inside lop_forward */
    int64_t rows;          /* rows the model ran (after reuse) */
    int64_t rows_plain;    /* rows without reuse: sum of every request's input length */
    int64_t scored;        /* continuation tokens scored */
    int forwards;          /* lop_forward calls */
} ll_stats;

/* Score every request of docs[0..nd) (fills ll and greedy). A continuation longer than max_len,
 * or empty, is an error naming the document index. stats may be NULL. */
int ll_score(lop_model *m, ll_doc *docs, int nd, const ll_opts *o, ll_stats *stats, lop_err *e);
#endif
