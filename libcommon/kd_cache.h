/* kd_cache.h — lop's one on-disk format of per-token top-k log-probabilities: a teacher's
 * distributions computed once (kd-train --save-teacher) and trained from later without the
 * teacher (--teacher-cache), and a base model's run (ppl --save-logits) that another model is
 * compared with (ppl --kl-base, through kd.h's divergence).
 *
 * Per scored position (target >= 0) the cache keeps the teacher's k most probable ids (default
 * 128) with their log-probabilities at the distillation temperature T, log softmax(z/T), and the
 * log of the remaining ("tail") mass, log sum over the other ids of softmax(z/T). The training
 * loss compares the top-k ids one by one and the tail as one bucket (kd.h). With k = vocabulary
 * the tail is empty (-inf) and the loss equals the on-the-fly loss up to float32 rounding of the
 * stored log-probabilities.
 *
 * Training data is a series of blocks (train_data.h: block g of the endless series); the cache
 * holds blocks 0..n-1 of that series with their input ids and targets, so training can verify
 * that each block it draws is the one the teacher saw (same data, --seq-len, --seed, order).
 *
 * File layout (little-endian):
 *   "LOPKDC01"  u64 json_len  json            {"format": "lop-kd-cache", "version": 1,
 *                                              "vocab": V, "k": k, "temperature": T, ...caller's keys}
 *   u64 voc_len  zstd frame of the teacher tokenizer's vocabulary (u32 length + bytes per id), or 0
 *   block frames: one zstd frame per block:
 *       u32 T, u32 nscored, u32 k; i32 ids[T]; i32 targets[T];
 *       per scored position its k ids in ascending order, delta-coded (u32[nscored*k]),
 *       their log-probs (f32[nscored*k]) and the tail log-mass (f32[nscored]);
 *       the id deltas and the log-probs are stored as 4 byte planes (better compression)
 *   index: per block u64 offset, u64 size
 *   trailer: u64 index_offset, u64 blocks, "LOPKDEND"
 * Written to a temporary name and renamed on kdc_finish. */
#ifndef LOP_KD_CACHE_H
#define LOP_KD_CACHE_H
#include <stdint.h>
#include "err.h"

/* The top-k of one row of logits z[V] at temperature T: ids[k] (ascending), their log-probs lp[k]
 * and the tail's log-mass (-INFINITY when k >= V). mark: scratch of V bytes, all zero (left so). */
void kdc_topk(const float *z, int V, double T, int k, int32_t *ids, float *lp, float *tail,
              uint8_t *mark);

/* ---- writing ---- */
typedef struct kd_cache_w kd_cache_w;
/* meta_json: a JSON object of the caller's keys (teacher, data, seq_len, seed, ...) or NULL.
 * vocab: the teacher tokenizer's token strings [nvocab] (NULL: none). level: zstd level. */
int kdc_create(kd_cache_w **out, const char *path, int V, int k, double T, const char *meta_json,
               const char *const *vocab, int nvocab, int level, lop_err *e);
/* One block of T positions: ids[T], targets[T]; for each position with target >= 0 in order,
 * row r of topk_ids/topk_lp [nscored, k] and tail[nscored]. */
int kdc_put(kd_cache_w *w, int T, const int32_t *ids, const int32_t *targets,
            const int32_t *topk_ids, const float *topk_lp, const float *tail, lop_err *e);
/* The same with each scored position's target log-prob target_lp[nscored] (NULL: none). */
int kdc_put_target(kd_cache_w *w, int T, const int32_t *ids, const int32_t *targets,
                   const int32_t *topk_ids, const float *topk_lp, const float *tail,
                   const float *target_lp, lop_err *e);
int64_t kdc_written_bytes(const kd_cache_w *w);  /* so far, header included */
int64_t kdc_block_bytes(const kd_cache_w *w);    /* the blocks' frames only */
/* index, trailer, rename into place; frees w (also on failure) */
int kdc_finish(kd_cache_w *w, lop_err *e);
void kdc_abort(kd_cache_w *w); /* removes the temporary file, frees w */

/* ---- reading ---- */
typedef struct kd_cache kd_cache;
typedef struct kdc_block {
    int T, nscored, k;
    int32_t *ids, *targets;   /* [T] */
    int32_t *topk_ids;        /* [nscored, k] ascending per row */
    float *topk_lp;           /* [nscored, k] */
    float *tail;              /* [nscored] */
    float *target_lp;         /* [nscored] the targets' log-probs, or NULL (not stored) */
    void *buf; size_t cap;    /* owned storage, reused by kdc_read */
} kdc_block;
int kdc_open(kd_cache **out, const char *path, lop_err *e);
void kdc_close(kd_cache *c);
int kdc_vocab(const kd_cache *c);
int kdc_k(const kd_cache *c);
double kdc_temperature(const kd_cache *c);
int64_t kdc_blocks(const kd_cache *c);
int64_t kdc_file_bytes(const kd_cache *c);
const char *kdc_meta(const kd_cache *c);      /* the header's JSON text */
/* the stored tokenizer vocabulary (NULL, 0 when none was stored); valid until kdc_close */
const char *const *kdc_tokens(const kd_cache *c, int *n);
/* Decode block g into b (its buffers grow as needed; kdc_block_free releases them). Errors name
 * the file and block on any inconsistency (truncated, corrupt, out-of-range ids). */
int kdc_read(kd_cache *c, int64_t g, kdc_block *b, lop_err *e);
void kdc_block_free(kdc_block *b);
#endif
