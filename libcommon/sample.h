/* sample.h — choosing the next token from logits as Hugging Face transformers' generate() does:
 * repetition penalty, then temperature, top-k, top-p (its logits processors, in that order), then
 * greedy argmax (temperature 0) or a draw from the softmax with a seeded generator.
 *
 *   repetition penalty r (HF RepetitionPenaltyLogitsProcessor): for every distinct token already in
 *       the sequence (prompt included), a logit z becomes z / r if z > 0, else z * r;
 *   temperature T: z / T;
 *   top-k (HF TopKLogitsWarper): logits below the k-th largest become -inf (ties with it stay);
 *   top-p (HF TopPLogitsWarper): with tokens sorted by probability, the smallest set of the most
 *       probable ones whose mass reaches p stays (the token that crosses p included), at least one.
 */
#ifndef LOP_SAMPLE_H
#define LOP_SAMPLE_H
#include <stdint.h>

typedef struct lop_sampler {
    double temperature;   /* <= 0: greedy */
    int top_k;            /* <= 0: off */
    double top_p;         /* >= 1: off */
    double rep_penalty;   /* 1: off */
    uint64_t rng;         /* splitmix64 state (lop_sampler_seed) */
} lop_sampler;

void lop_sampler_seed(lop_sampler *s, uint64_t seed);
/* uniform double in [0, 1) from the sampler's generator */
double lop_sampler_uniform(lop_sampler *s);
/* The processors alone, in place over logits[V]; hist[n] = the sequence so far. After the call,
 * filtered-out tokens are -INFINITY. Greedy settings (temperature <= 0) apply only the penalty. */
void lop_sample_process(const lop_sampler *s, float *logits, int V, const int32_t *hist, int n);
/* Process, then choose: argmax (lowest id among equal maxima) when greedy, else a draw. */
int32_t lop_sample_next(lop_sampler *s, float *logits, int V, const int32_t *hist, int n);
#endif
