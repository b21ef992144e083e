/* sparsegpt.c — SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be
 * Accurately Pruned in One-Shot"): prune a linear layer W [rows, cols] and repair the weights that
 * stay with the Optimal Brain Surgeon update, from the layer's input Hessian H = 2/n Σ_t x_t x_tᵀ.
 *
 * As the reference (IST-DASLab/sparsegpt, fasterprune):
 *   - dead inputs (H_jj = 0: feature j was zero on every calibration token): H_jj = 1, W[:, j] = 0;
 *   - dampening: H += λ · mean(diag H) · I  (--damp λ, default 0.01);
 *   - U = the upper Cholesky factor of H⁻¹ (H⁻¹ = Uᵀ U), all in float64 (LAPACK dpotrf/dpotri);
 *   - columns in blocks of B (--blocksize, 128); at the start of a block the mask of the block is
 *     chosen by the score w² / U_jj² (lowest first: the OBS saliency of removing w alone); for
 *     N:M, at the first column of each group of M, the N lowest of the group's current scores;
 *   - column by column in the block: q = w or 0, err = (w - q) / U_ii, the rest of the block's row
 *     -= err · U[i, i+1..]; after the block, the columns to its right -= Err · U[block, right]
 *     (one dgemm).
 * Counts (where wmask differs from the reference, on purpose): the reference picks, per block,
 * the int(S·n_block)+1 lowest scores of the whole block (all rows together) by a threshold, so rows
 * and tensors end up near S. wmask keeps its exact counts: with --scope row (default) each row
 * gets its quota (k of cols), spread over the blocks in proportion to their columns (row r has
 * floor(k·c/cols) zeros among its first c columns at every block edge); --scope tensor chooses
 * over every row of a block together, as the reference does, with the tensor's quota spread over
 * the blocks the same way. Weights that are zero in the input (or in a dead column) count toward
 * the quota and stay zero (score -1: selected first), as for the other methods.
 * Everything here is per row except the block choice of --scope tensor, so rows run in parallel
 * (OpenMP) and the trailing update is one BLAS call. No I/O, no printing. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "wmask.h"

/* LAPACK through OpenBLAS (libopenblas exports the Fortran symbols; Debian ships no LAPACKE
 * header with it). Column-major: our row-major upper triangle is its lower triangle. */
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
extern void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);

#define HESS_ROWS 512 /* tokens converted to float64 at a time (bounds the scratch) */

int wm_hess_add(double *H, const float *X, int64_t rows, int64_t in) {
    double *x = malloc((size_t)HESS_ROWS * (size_t)in * sizeof *x);
    if (!x) return -1;
    for (int64_t r0 = 0; r0 < rows; r0 += HESS_ROWS) {
        int64_t nr = rows - r0 < HESS_ROWS ? rows - r0 : HESS_ROWS;
        const float *src = X + r0 * in;
        for (int64_t i = 0; i < nr * in; i++) x[i] = src[i];
        /* H (upper, row-major) += xᵀ x */
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)in, (int)nr, 1.0, x, (int)in, 1.0,
                    H, (int)in);
    }
    free(x);
    return 0;
}

int wm_hess_prepare(double *H, int64_t n, int64_t tokens, double damp, uint8_t *dead,
                    lop_err *e) {
    if (n > 0x7fffffff) return lop_fail(e, "input width %lld too large", (long long)n);
    double scale = tokens > 0 ? 2.0 / (double)tokens : 1.0, mean = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i; j < n; j++) H[i * n + j] *= scale;
    for (int64_t i = 0; i < n; i++) {
        dead[i] = H[i * n + i] == 0.0;
        if (dead[i]) H[i * n + i] = 1.0;
        mean += H[i * n + i];
    }
    mean /= (double)(n ? n : 1);
    for (int64_t i = 0; i < n; i++) H[i * n + i] += damp * mean;
    int ni = (int)n, info = 0;
    dpotrf_("L", &ni, H, &ni, &info);
    if (info) return lop_fail(e, "the Hessian is not positive definite (pivot %d); raise --damp", info);
    dpotri_("L", &ni, H, &ni, &info);
    if (info) return lop_fail(e, "the Hessian is singular (pivot %d); raise --damp", info);
    dpotrf_("L", &ni, H, &ni, &info);
    if (info) return lop_fail(e, "the inverse Hessian is not positive definite (pivot %d); raise --damp", info);
    /* column-major lower L with H⁻¹ = L Lᵀ, read row-major, is U = Lᵀ (upper): H⁻¹ = Uᵀ U */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < i; j++) H[i * n + j] = 0.0;
    return 0;
}

/* ---- the mask of a block ---- */
typedef struct { double s; int64_t pos; } cand; /* score (-1: already zero), position */

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    int xn = isnan(x->s), yn = isnan(y->s); /* NaN scores last, as in prune.h */
    if (xn != yn) return xn - yn;
    if (!xn && x->s != y->s) return x->s < y->s ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* How many to choose in a block: `cum` is the cumulative target at the block's right edge; the
 * result keeps the forced zeros (z_here) and leaves the quota reachable (see the file comment). */
static int64_t allot(int64_t k, int64_t done, int64_t cum, int64_t z_here, int64_t z_after,
                     int64_t n_here, int64_t n_after, int64_t z_total) {
    if (z_total >= k) return z_here;
    int64_t lo = k - done - n_after, hi = k - done - z_after, t = cum - done;
    if (lo < z_here) lo = z_here;
    if (hi > n_here) hi = n_here;
    if (t < lo) t = lo;
    if (t > hi) t = hi;
    return t;
}

/* OBS within a block for one row: columns i1..i2 of row w (U rows of the block), mask m[0..bw).
 * N:M (n > 0): the mask of each group is chosen when the sweep reaches it. */
static void row_block(double *w, const float *w0, const uint8_t *dead, const double *U,
                      int64_t cols, int64_t i1, int64_t i2, uint8_t *m, double *err, int nmn,
                      int nmm, double *loss, double *maxs) {
    for (int64_t i = i1; i < i2; i++) {
        if (nmn > 0 && (i - i1) % nmm == 0) {
            cand g[256];
            int gm = (int)(i2 - i < nmm ? i2 - i : nmm);
            for (int t = 0; t < gm; t++) {
                int64_t c = i + t;
                double d = U[c * cols + c];
                g[t].s = (w0[c] == 0.0f || dead[c]) ? -1.0 : w[c] * w[c] / (d * d);
                g[t].pos = t;
                m[c - i1] = 0;
            }
            qsort(g, (size_t)gm, sizeof *g, cand_cmp);
            int nz = 0;
            for (int t = 0; t < gm; t++) nz += g[t].s == -1.0;
            int take = nz > nmn ? nz : nmn;
            if (take > gm) take = gm;
            for (int t = 0; t < take; t++) {
                m[i + g[t].pos - i1] = 1;
                if (g[t].s > *maxs) *maxs = g[t].s;
            }
        }
        double d = U[i * cols + i], wi = w[i];
        double q = m[i - i1] ? 0.0 : wi;
        double er = (wi - q) / d;
        *loss += er * er;
        err[i - i1] = er;
        w[i] = q;
        if (er != 0.0) {
            const double *u = U + i * cols;
            for (int64_t c = i + 1; c < i2; c++) w[c] -= er * u[c];
        }
    }
}

int wm_sgpt_prune(const wm_job *j, const char *name, float *wf, int64_t rows, int64_t cols,
                  const double *U, const uint8_t *dead, const wm_quota *q, prune_stat *st,
                  double *loss_out, lop_err *e) {
    int nmm = j->nm_m, nmn = nmm ? q->nm_n : 0;
    int64_t B = j->blocksize > 0 ? j->blocksize : 128;
    if (nmm) {
        if (cols % nmm)
            return lop_fail(e, "%s: rows of %lld weights do not split into groups of %d (--nm %d:%d)",
                            name, (long long)cols, nmm, j->nm_n, nmm);
        B = (B + nmm - 1) / nmm * nmm; /* groups never straddle blocks */
    }
    int tensor = !nmm && j->scope == SCOPE_TENSOR;
    int64_t n = rows * cols, before = 0;
    for (int64_t i = 0; i < n; i++) before += wf[i] == 0.0f;
    double *W = malloc((size_t)n * sizeof *W), *Err = malloc((size_t)rows * B * sizeof *Err);
    uint8_t *M = malloc((size_t)rows * B);
    int64_t *done = calloc((size_t)rows, sizeof *done), *ztot = calloc((size_t)rows, sizeof *ztot);
    cand *tc = tensor ? malloc((size_t)rows * B * sizeof *tc) : NULL;
    int rc = 0;
    if (!W || !Err || !M || !done || !ztot || (tensor && !tc)) { rc = lop_fail(e, "out of memory"); goto out; }
    /* forced zeros: input zeros and dead columns (the reference zeroes W[:, dead] first) */
    int64_t zt_all = 0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) {
            int z = wf[r * cols + c] == 0.0f || dead[c];
            W[r * cols + c] = z ? 0.0 : wf[r * cols + c];
            ztot[r] += z;
        }
        zt_all += ztot[r];
    }
    double loss = 0, maxs = 0;
    int64_t tdone = 0, zleft_all = zt_all;
    int64_t *zleft = malloc((size_t)rows * sizeof *zleft);
    if (!zleft) { rc = lop_fail(e, "out of memory"); goto out; }
    memcpy(zleft, ztot, (size_t)rows * sizeof *zleft);
    for (int64_t i1 = 0; i1 < cols; i1 += B) {
        int64_t i2 = i1 + B < cols ? i1 + B : cols, bw = i2 - i1;
        if (tensor) {
            /* one choice over every row of the block (the reference's), exact count */
            int64_t zb = 0, m = 0;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = i1; c < i2; c++) {
                    double d = U[c * cols + c], v = W[r * cols + c];
                    int z = wf[r * cols + c] == 0.0f || dead[c];
                    zb += z;
                    tc[m].s = z ? -1.0 : v * v / (d * d);
                    tc[m].pos = r * bw + (c - i1);
                    m++;
                }
            int64_t cum = (int64_t)((__int128)q->zeros * i2 / cols);
            int64_t take = allot(q->zeros, tdone, cum, zb, zleft_all - zb, m, rows * (cols - i2), zt_all);
            zleft_all -= zb;
            memset(M, 0, (size_t)rows * B);
            qsort(tc, (size_t)m, sizeof *tc, cand_cmp);
            for (int64_t t = 0; t < take; t++) {
                int64_t r = tc[t].pos / bw, c = tc[t].pos % bw;
                M[r * B + c] = 1;
                if (tc[t].s > maxs) maxs = tc[t].s;
            }
            tdone += take;
        }
#pragma omp parallel for schedule(static) reduction(+ : loss) reduction(max : maxs) if (rows * bw * bw >= (1 << 18))
        for (int64_t r = 0; r < rows; r++) {
            double *w = W + r * cols;
            const float *w0 = wf + r * cols;
            uint8_t *mk = M + r * B;
            if (!tensor && !nmm) {
                int64_t k = q->zeros / rows + (r < q->zeros % rows), zb = 0;
                cand g[bw > 0 ? bw : 1]; /* bounded by --blocksize */
                for (int64_t c = i1; c < i2; c++) {
                    double d = U[c * cols + c];
                    int z = w0[c] == 0.0f || dead[c];
                    zb += z;
                    g[c - i1].s = z ? -1.0 : w[c] * w[c] / (d * d);
                    g[c - i1].pos = c - i1;
                    mk[c - i1] = 0;
                }
                int64_t cum = (int64_t)((__int128)k * i2 / cols);
                int64_t take = allot(k, done[r], cum, zb, zleft[r] - zb, bw, cols - i2, ztot[r]);
                zleft[r] -= zb;
                qsort(g, (size_t)bw, sizeof *g, cand_cmp);
                for (int64_t t = 0; t < take; t++) {
                    mk[g[t].pos] = 1;
                    if (g[t].s > maxs) maxs = g[t].s;
                }
                done[r] += take;
            }
            double l = 0, mx = maxs;
            row_block(w, w0, dead, U, cols, i1, i2, mk, Err + r * B, nmn, nmm, &l, &mx);
            loss += l;
            if (mx > maxs) maxs = mx;
        }
        if (i2 < cols)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)(cols - i2),
                        (int)bw, -1.0, Err, (int)B, U + i1 * cols + i2, (int)cols, 1.0, W + i2,
                        (int)cols);
    }
    free(zleft);
    /* back to float32; a kept weight never becomes zero by rounding (the mask stays exact) */
    int64_t zeros = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double v = W[r * cols + c];
            float f = (float)v;
            int pruned = v == 0.0;
            if (!pruned && f == 0.0f) f = copysignf(FLT_TRUE_MIN, (float)(v < 0 ? -1 : 1));
            wf[r * cols + c] = pruned ? 0.0f : f;
            zeros += pruned;
        }
    st->zeros = zeros;
    st->pruned = zeros - before;
    st->threshold = (float)maxs;
    if (loss_out) *loss_out = loss;
out:
    free(W); free(Err); free(M); free(done); free(ztot); free(tc);
    return rc;
}
