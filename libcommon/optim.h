/* optim.h — AdamW with PyTorch's semantics, gradient clipping, learning-rate schedules as
 * transformers' get_{constant,linear,cosine}_schedule_with_warmup, and a small seeded RNG whose
 * state a checkpoint can save. */
#ifndef LOP_OPTIM_H
#define LOP_OPTIM_H
#include <stddef.h>
#include <stdint.h>

/* torch.optim.AdamW defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01. */
typedef struct adamw_hp { double beta1, beta2, eps, wd; } adamw_hp;
#define ADAMW_DEFAULTS ((adamw_hp){0.9, 0.999, 1e-8, 0.01})

/* One step t (1-based) on p[n] with gradient g[n] and states m[n], v[n]:
 *   p -= lr*wd*p  (decoupled decay);  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
 * keep (may be NULL): bit i set = p[i] is held at exactly zero (sparse models stay sparse). */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n, double lr,
                  const adamw_hp *hp, int64_t t, const uint8_t *zero_bits);

/* sum of squares (double) of g[n] — the pieces of the global norm */
double grad_sumsq(const float *g, size_t n);
/* torch.nn.utils.clip_grad_norm_: the factor to multiply gradients by (1 when no clipping):
 * max_norm / (total_norm + 1e-6) if that is < 1. max_norm <= 0: no clipping. */
double clip_factor(double total_norm, double max_norm);
void grad_scale(float *g, size_t n, float s);

typedef enum { SCHED_CONSTANT, SCHED_LINEAR, SCHED_COSINE } sched_kind;
/* "constant" | "linear" | "cosine" -> kind; -1 if unknown */
int sched_parse(const char *s, sched_kind *k);
const char *sched_name(sched_kind k);
/* lr of optimizer step `step` (0-based, as transformers' LambdaLR: the first step with warmup
 * > 0 has lr 0): warmup linear from 0, then constant / linear to 0 at `total` / half-cosine to 0. */
double sched_lr(sched_kind k, double base_lr, int64_t step, int64_t warmup, int64_t total);

/* xoshiro256** seeded through splitmix64; the state is 4 words a checkpoint saves. */
typedef struct trng { uint64_t s[4]; } trng;
void trng_seed(trng *r, uint64_t seed);
uint64_t trng_next(trng *r);
double trng_uniform(trng *r);             /* [0, 1) */
uint64_t trng_below(trng *r, uint64_t n); /* [0, n), unbiased */
#endif
