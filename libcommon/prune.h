/* prune.h — choosing which weights to zero: scores, exact-count selection per row, per tensor or
 * across many tensors (global), and N:M groups. Pure compute on float32 matrices; no I/O.
 *
 * One total order decides everything, so every scope gives the same answer on the same data:
 *   weight (i,j) of a [rows, cols] matrix W, optional input norms x[cols] (Wanda), has
 *     score  = |W_ij| * x_j          (x_j = 1 without norms: magnitude)      computed in float32
 *     key    = (bits(score) << 1) | (W_ij != 0)                             a uint32
 *   and weights are ordered by (key, position), position = row-major index (the column within a
 *   row or an N:M group). "The k lowest" means the first k in that order. So:
 *   - ties in score go to the earlier position (deterministic, independent of threads);
 *   - among equal scores, weights that are ALREADY ZERO come first: they count toward the target
 *     and are "pruned" before any nonzero weight of the same score. (For magnitude every zero has
 *     score 0, the lowest, so already-zero weights are always counted first.) If a row already has
 *     more zeros than k, they all stay zero and the achieved sparsity exceeds the target.
 *   - bits(score) of a non-negative float is monotonic; NaN scores (NaN weights or norms) sort
 *     above +Inf, i.e. they are pruned last.
 * Count: k = floor(sparsity * n) (as Wanda's int(n * ratio)), with a 1e-9 relative guard so that
 * decimal sparsities like 0.57 of 100 give 57, not 56. A row of 640 at 0.5 gets exactly 320 zeros.
 */
#ifndef LOP_PRUNE_H
#define LOP_PRUNE_H
#include <stdint.h>
#include <string.h>

/* The ordering key of one weight (see above). */
static inline uint32_t prune_key(float w, float norm) {
    float s = w * norm; /* |w|*x: the sign is dropped below */
    uint32_t b;
    memcpy(&b, &s, 4);
    b &= 0x7fffffffu;
    return (b << 1) | (w != 0.0f);
}
/* The score a key stands for (for reporting thresholds). */
static inline float prune_key_score(uint32_t key) {
    uint32_t b = key >> 1;
    float s;
    memcpy(&s, &b, 4);
    return s;
}

/* k = floor(sparsity * n), robust to decimal rounding; 0 <= k <= n. */
int64_t prune_count(double sparsity, int64_t n);

/* Result of a selection on one matrix. */
typedef struct prune_stat {
    int64_t zeros;      /* zeros in the matrix afterwards (pruned + those already zero) */
    int64_t pruned;     /* weights that were nonzero and are now zero */
    float threshold;    /* largest score among the weights selected (0 if none) */
} prune_stat;

/* Per row: in each row of w[rows, cols] the prune_count(sparsity, cols) lowest are set to 0.
 * norm[cols] or NULL. Quickselect per row (OpenMP over rows). Returns -1 on allocation failure. */
int prune_rows(float *w, int64_t rows, int64_t cols, const float *norm, double sparsity,
               prune_stat *st);

/* Per row with a count: rows r < extra zero k+1 of their weights, the others k (0 <= k <= cols,
 * 0 <= extra <= rows; k < cols when extra > 0). A tensor's total zero budget z spread over its
 * rows is k = z / rows, extra = z % rows (wmask --owl). Returns -1 on bad counts or allocation
 * failure. prune_rows is prune_rows_k(k = prune_count(sparsity, cols), extra = 0). */
int prune_rows_k(float *w, int64_t rows, int64_t cols, const float *norm, int64_t k,
                 int64_t extra, prune_stat *st);

/* N:M: in every group of m consecutive weights of a row (cols % m == 0), the n lowest are set
 * to 0. Returns -1 if cols % m != 0, n > m or m > 256. */
int prune_nm(float *w, int64_t rows, int64_t cols, const float *norm, int n, int m,
             prune_stat *st);

/* Exact k-th smallest key over any number of matrices (per tensor: one; global: all selected
 * tensors, streamed), by a two-pass radix select on the 32-bit key (65536-bin histograms), then
 * an apply pass. Usage:
 *     prune_sel s; prune_sel_init(&s, k);
 *     while (!prune_sel_done(&s)) { for each matrix: prune_sel_add(&s, w, rows, cols, norm);
 *                                   prune_sel_next(&s); }
 *     int64_t ties = s.rem;  for each matrix in the same order: prune_sel_apply(&s, &ties, ...);
 * Weights with key < T are zeroed, and of those with key == T the first rem in stream order. */
typedef struct prune_sel {
    int64_t k;          /* weights to select in total */
    int pass;           /* 0: high 16 bits of the key, 1: low 16 bits, 2: done */
    uint32_t hi;        /* high half chosen in pass 0 */
    int64_t below;      /* weights with a key below the current bin range */
    int64_t seen;       /* weights added in the current pass */
    uint32_t T;         /* the k-th smallest key (valid when done and k > 0) */
    int64_t rem;        /* how many of the weights with key == T are selected */
    uint64_t *hist;     /* [65536] */
} prune_sel;
int prune_sel_init(prune_sel *s, int64_t k);   /* -1 on allocation failure */
int prune_sel_done(const prune_sel *s);
void prune_sel_add(prune_sel *s, const float *w, int64_t rows, int64_t cols, const float *norm);
/* Ends a pass. Returns -1 if fewer than k weights were added (inconsistent passes). */
int prune_sel_next(prune_sel *s);
/* Zero the selected weights of one matrix; *ties is the tie budget left (start with s->rem). */
void prune_sel_apply(const prune_sel *s, int64_t *ties, float *w, int64_t rows, int64_t cols,
                     const float *norm, prune_stat *st);
void prune_sel_free(prune_sel *s);

/* The k-th smallest (1-based, 1 <= k <= n) of n distinct values, partially ordering a[]:
 * afterwards a[k-1] is it, a[0..k-1) are smaller. Iterative quickselect, median of three, with a
 * heap fallback when partitions go badly (never quadratic). */
uint64_t prune_select_u64(uint64_t *a, int64_t n, int64_t k);
#endif
