/* kd.h — knowledge-distillation losses: divergences between a teacher's and a student's
 * next-token distributions and their gradients w.r.t. the student's logits, as a pluggable loss of
 * the training engine (grad.h, tr_loss_fn).
 *
 * Per scored row, with u = z_student / T and t = z_teacher / T:
 *     q = softmax(u) (student), p = softmax(t) (teacher), both over the SHARED vocabulary [0, V)
 *     (a student or teacher with more logits than V is truncated: the extra logits are ignored
 *     and the softmax renormalizes over the shared ids);
 *     fkl  KL(p||q)                      rkl  KL(q||p)
 *     skl  KL(p || a p + (1-a) q)        srkl KL(q || a q + (1-a) p)     (DistiLLM, a = skew)
 *     jsd  b KL(p||m) + (1-b) KL(q||m), m = b p + (1-b) q                (GKD's generalized JSD)
 *     tvd  1/2 sum |p - q|
 * each multiplied by T^2 (Hinton: keeps gradient magnitudes comparable across temperatures);
 *     ce   -log softmax(z_student)[target] at temperature 1 over the student's whole vocabulary.
 * The loss of a row is sum_k w_k term_k; the engine averages over scored rows (targets >= 0).
 *
 * A teacher row is either dense (its logits) or sparse (a top-k cache: k ids with their
 * log-probabilities at temperature T, plus the log of the remaining "tail" mass). Sparse rows are
 * scored over k+1 buckets: the k ids, and one tail bucket holding every other shared id; the
 * student's tail mass is the sum of its probabilities outside the k ids. The divergence is then
 * exact on the top-k ids and compares the remaining mass as a whole (a lower bound of the full
 * divergence by the data-processing inequality; equal to it when k = V). Each student id in the
 * tail receives the tail bucket's gradient in proportion to its probability.
 *
 * Numerics: log-softmax in double with the max subtracted; mixtures in log space (logaddexp);
 * every 0*log(0) is 0; gradients are formed from bounded quantities (P, Q*P/M, Q^2/M), so logits
 * of any magnitude give finite losses and gradients. */
#ifndef LOP_KD_H
#define LOP_KD_H
#include <stdint.h>
#include "err.h"
#include "grad.h"

typedef enum { KD_CE, KD_FKL, KD_RKL, KD_SKL, KD_SRKL, KD_JSD, KD_TVD, KD_NTERMS } kd_term;
extern const char *const kd_term_names[KD_NTERMS]; /* "ce", "fkl", "rkl", "skl", "srkl", "jsd", "tvd" */

typedef struct kd_spec {
    double w[KD_NTERMS];   /* weight of each term (0: off) */
    double temperature;    /* T > 0 */
    double skew;           /* a of skl / srkl, in [0, 1) */
    double jsd_beta;       /* b of jsd, in (0, 1) */
} kd_spec;
#define KD_SPEC_DEFAULT ((kd_spec){{0.5, 0, 0, 0.5, 0, 0, 0}, 1.0, 0.1, 0.5})

/* "ce:0.5,skl:0.5" (a name alone means weight 1) -> weights (every other term 0). Usage error
 * naming the piece on a bad name, a repeated term, a weight that is negative or not a number, or
 * all weights zero. */
int kd_parse_loss(const char *s, kd_spec *k, lop_err *e);
/* 1 if any term other than ce has a weight: a teacher is needed */
int kd_needs_teacher(const kd_spec *k);
/* the spec as "ce:0.5,skl:0.5" into buf */
void kd_spec_str(const kd_spec *k, char *buf, int n);

/* One divergence over nb buckets with log masses lp (teacher) and lq (student) and the masses
 * P = exp(lp), Q = exp(lq): returns the divergence (not multiplied by T^2) and writes
 * h[b] = dD/dlog(Q_b) up to a multiple of Q_b (constants c*Q_b cancel after the softmax). a: skew
 * (skl/srkl) or beta (jsd). term must not be KD_CE. */
double kd_div(int term, const double *lp, const double *lq, const double *P, const double *Q,
              int nb, double a, double *h);

/* A teacher's row. */
typedef struct kd_trow {
    const float *logits;   /* dense: raw teacher logits [>= V] (temperature applied here); or NULL */
    int k;                 /* sparse: entries */
    const int32_t *ids;    /* [k] distinct ids (any order; ids >= V are dropped) */
    const float *logp;     /* [k] log-probabilities at temperature T */
    float logp_tail;       /* log of the mass outside ids (-INFINITY: none) */
} kd_trow;

/* Per-thread scratch of a row computation (grows as needed). */
typedef struct kd_work { double *buf; uint8_t *mark; int32_t *ids; int cap; } kd_work;
void kd_work_free(kd_work *w);

/* One student row: zs[Vs] (Vs >= V) raw student logits, overwritten with gscale * d(loss)/d(zs);
 * t the teacher's row (may be NULL when only ce has a weight); target the next token (>= 0).
 * terms[KD_NTERMS] receives each term's value (divergences already * T^2, unweighted).
 * Returns the weighted loss, or NaN when out of memory. */
double kd_row(const kd_spec *s, float *zs, int Vs, int V, const kd_trow *t, int target,
              float gscale, double *terms, kd_work *w);

/* ---- the engine's loss ----
 * ctx for kd_loss: the teacher callback fills t[0..n) for batch rows row0..row0+n-1 (rows with
 * target -1 are not read). kd_loss adds each term's sum over scored rows into sum[] and returns
 * the weighted sum; a callback failure (nonzero return, message in err) makes it return NaN. */
typedef struct kd_ctx {
    kd_spec spec;
    int V;                  /* shared vocabulary */
    int (*teacher)(void *user, int64_t row0, int n, const int32_t *targets, kd_trow *t,
                   lop_err *e);
    void *user;
    /* On a device (tr_loss_chunk.be not host memory) the loss runs there (lop_cuda_kd_loss):
     * a dense teacher's rows are then device memory, row i at t[0].logits + i * ldt (the
     * callback fills every row); a sparse one's stay host memory and are uploaded here. */
    int ldt;
    double sum[KD_NTERMS];  /* running sums of each term over scored rows (caller resets) */
    int64_t scored;
    lop_err err;
    int failed;
    /* private */
    kd_work *work; int nwork;
    kd_trow *rows; int nrows;
    double *rterm;          /* [n * KD_NTERMS] */
    int nrterm;
    struct lop_backend *dbe; /* the device scratch's backend, and the scratch: sparse rows packed */
    void *dev; size_t dev_cap;
    void *pack; size_t pack_cap;
} kd_ctx;
double kd_loss(const tr_loss_chunk *c, void *ctx, int64_t *scored);
void kd_ctx_free(kd_ctx *k);
#endif
