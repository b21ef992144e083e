/* owl.c — OWL, outlier-weighted layerwise sparsity (Yin et al. 2024, "Outlier Weighed Layerwise
 * Sparsity (OWL): A Missing Secret Sauce for Pruning LLMs to High Sparsity").
 *
 * As the authors' code (luuyin/OWL, prune_wanda_outlier) does:
 *   1. one pass of the DENSE model over the calibration text gives every target's ‖X_j‖₂;
 *   2. a layer's outlier ratio r_l = the share (in %) of its Wanda scores |W_ij|·‖X_j‖ (all its
 *      target tensors together) above M × their mean (--owl-m, default 5);
 *   3. D_l = (r_l - min r) / (max r - min r) · 2λ (--owl-lambda, default 0.08): density offsets
 *      spanning exactly 2λ, ordered by outlier ratio; s_l = S - (D_l - mean D): more outliers,
 *      lower sparsity. (All r equal: every layer gets S.)
 * The one change: the mean of D is weighted by each layer's target weights, so the weighted mean
 * of s_l is S even when layers differ in size (OWL's plain mean assumes equal layers). s_l is
 * clamped to [0, 1].
 * Whole weights: the selection gets exactly Z = floor(S · P) zeros (P: all its weights). Z is split
 * over the layers by largest remainders of s_l · P_l (ties: the lower layer), a layer's share over
 * its tensors by size the same way, and a tensor's share over its rows (--scope row: zeros/rows
 * each, one more for the first zeros % rows rows) or taken over the whole tensor (--scope tensor).
 * So the achieved mean is Z / P: the target to one weight.
 * N:M: the layer's N_l comes from s_l · M by largest remainders of the layers' total N·L when the
 * layers have equal target sizes (the mean is then exact), else by rounding; with M·λ < 0.5 (2:4
 * at the default λ) every layer rounds back to N. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "calib.h"
#include "model.h"
#include "tool.h"
#include "wmask.h"

typedef struct { double **ss; const uint8_t *target; } owl_acc;

static int hook_linear(void *user, int layer, lop_proj p, const char *name, const float *X,
                       int rows, int in, const lop_batch *b) {
    owl_acc *a = user;
    (void)name; (void)b;
    int k = layer * PROJ_N + (int)p;
    if (!a->target[k]) return 0;
    double *ss = a->ss[k];
#pragma omp parallel for schedule(static) if ((int64_t)rows * in >= (1 << 16))
    for (int jc = 0; jc < in; jc++) {
        double acc = 0;
        for (int i = 0; i < rows; i++) { double v = X[(int64_t)i * in + jc]; acc += v * v; }
        ss[jc] += acc;
    }
    return 0;
}

/* out[i] in [0, cap[i]] with sum total, near want[i]: floors, then +-1 by largest remainder. */
static void apportion(int64_t total, const double *want, const int64_t *cap, int n, int64_t *out) {
    int64_t sum = 0;
    double *fr = malloc((size_t)(n ? n : 1) * sizeof *fr);
    int *ord = malloc((size_t)(n ? n : 1) * sizeof *ord);
    for (int i = 0; i < n; i++) {
        double w = want[i] < 0 ? 0 : want[i] > (double)cap[i] ? (double)cap[i] : want[i];
        out[i] = (int64_t)floor(w);
        if (out[i] > cap[i]) out[i] = cap[i];
        fr[i] = w - (double)out[i];
        sum += out[i];
        ord[i] = i;
    }
    if (!fr || !ord) { free(fr); free(ord); return; }
    /* order by remainder, largest first (insertion sort: n is layers or tensors of a layer) */
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && fr[ord[b]] > fr[ord[b - 1]]; b--) { int t = ord[b]; ord[b] = ord[b - 1]; ord[b - 1] = t; }
    for (int guard = 0; sum != total && guard < 1 << 20; guard++) {
        int moved = 0;
        if (sum < total) {
            for (int a = 0; a < n && sum < total; a++)
                if (out[ord[a]] < cap[ord[a]]) { out[ord[a]]++; sum++; moved = 1; }
        } else {
            for (int a = n - 1; a >= 0 && sum > total; a--)
                if (out[ord[a]] > 0) { out[ord[a]]--; sum--; moved = 1; }
        }
        if (!moved) break;
    }
    free(fr);
    free(ord);
}

int wm_owl_plan(wm_owl *o, const wm_job *j, lop_model *m, const lop_calib *cal, int batch,
                const uint8_t *target, wm_totals *tot, lop_err *e) {
    int L = m->cfg.n_layers, K = L * PROJ_N, rc = -1, last = -1;
    double t0 = tool_now_seconds();
    memset(o, 0, sizeof *o);
    o->L = L;
    o->K = K;
    o->ratio = calloc((size_t)L, sizeof *o->ratio);
    o->sparsity = calloc((size_t)L, sizeof *o->sparsity);
    o->params = calloc((size_t)L, sizeof *o->params);
    o->zeros = calloc((size_t)L, sizeof *o->zeros);
    o->nm_n = calloc((size_t)L, sizeof *o->nm_n);
    o->quota = calloc((size_t)K, sizeof *o->quota);
    o->name = calloc((size_t)K, sizeof *o->name);
    owl_acc acc = {.ss = calloc((size_t)K, sizeof(double *)), .target = target};
    float *wf = NULL;
    size_t na = (size_t)(L > PROJ_N ? L : PROJ_N);
    double *want = calloc(na, sizeof *want);
    int64_t *cap = calloc(na, sizeof *cap), *got = calloc(na, sizeof *got);
    if (!o->ratio || !o->sparsity || !o->params || !o->zeros || !o->nm_n || !o->quota || !o->name ||
        !acc.ss || !want || !cap || !got)
        goto oom;
    for (int k = 0; k < K; k++) {
        if (!target[k]) continue;
        const lop_wref *w = &m->layers[k / PROJ_N].proj[k % PROJ_N];
        if (!(acc.ss[k] = calloc((size_t)w->cols, sizeof(double)))) goto oom;
        if (!(o->name[k] = strdup(w->name))) goto oom;
        o->params[k / PROJ_N] += w->rows * w->cols;
        last = k / PROJ_N;
    }
    /* 1. the dense model's input norms (layers after the last target are not run) */
    lop_hooks hk = {.user = &acc, .linear_in = hook_linear};
    lop_fwd_opts fo = {.layer_end = last + 1 < L ? last + 1 : 0, .hooks = &hk};
    double tf = tool_now_seconds();
    for (int s = 0; s < cal->n; s += batch) {
        int nb = cal->n - s < batch ? cal->n - s : batch;
        lop_batch b = {.B = nb, .len = cal->len + s, .ids = cal->ids[s]};
        if (lop_forward(m, &b, &fo, NULL, e)) goto out;
    }
    tot->t_forward += tool_now_seconds() - tf;
    /* 2. outlier ratios */
    int64_t maxn = 0;
    for (int k = 0; k < K; k++)
        if (target[k]) {
            const lop_wref *w = &m->layers[k / PROJ_N].proj[k % PROJ_N];
            if (w->rows * w->cols > maxn) maxn = w->rows * w->cols;
        }
    if (!(wf = malloc((size_t)(maxn ? maxn : 1) * sizeof *wf))) goto oom;
    double rmin = INFINITY, rmax = -INFINITY;
    for (int l = 0; l < L; l++) {
        o->ratio[l] = -1;
        if (!o->params[l]) continue;
        double sum = 0;
        int64_t cnt = 0;
        for (int pass = 0; pass < 2; pass++) {
            double thr = j->owl_m * sum / (double)o->params[l];
            for (int p = 0; p < PROJ_N; p++) {
                int k = l * PROJ_N + p;
                if (!target[k]) continue;
                const lop_wref *w = &m->layers[l].proj[p];
                st_to_f32(wf, w->data, w->dtype, (size_t)(w->rows * w->cols));
                float *nrm = malloc((size_t)w->cols * sizeof *nrm);
                if (!nrm) goto oom;
                for (int64_t c = 0; c < w->cols; c++) nrm[c] = (float)sqrt(acc.ss[k][c]);
                double s = 0;
                int64_t ct = 0;
#pragma omp parallel for schedule(static) reduction(+ : s, ct) if (w->rows * w->cols >= (1 << 16))
                for (int64_t r = 0; r < w->rows; r++)
                    for (int64_t c = 0; c < w->cols; c++) {
                        double v = fabsf(wf[r * w->cols + c] * nrm[c]); /* Wanda's float32 score */
                        if (pass == 0) s += v;
                        else ct += v > thr;
                    }
                free(nrm);
                sum += s;
                cnt += ct;
            }
        }
        o->ratio[l] = 100.0 * (double)cnt / (double)o->params[l];
        if (o->ratio[l] < rmin) rmin = o->ratio[l];
        if (o->ratio[l] > rmax) rmax = o->ratio[l];
    }
    /* 3. sparsities: offsets spanning 2λ, weighted mean 0 */
    double dmean = 0;
    int64_t P = 0;
    for (int l = 0; l < L; l++) {
        if (!o->params[l]) continue;
        double d = rmax > rmin ? (o->ratio[l] - rmin) / (rmax - rmin) * 2 * j->owl_lambda : 0;
        o->sparsity[l] = d; /* D_l for now */
        dmean += d * (double)o->params[l];
        P += o->params[l];
    }
    dmean /= (double)(P ? P : 1);
    for (int l = 0; l < L; l++) {
        if (!o->params[l]) continue;
        double s = j->sparsity - (o->sparsity[l] - dmean);
        o->sparsity[l] = s < 0 ? 0 : s > 1 ? 1 : s;
    }
    /* 4. whole weights */
    if (j->nm_m) {
        int equal = 1, nl = 0;
        int64_t p0 = 0;
        for (int l = 0; l < L; l++) {
            if (!o->params[l]) { want[l] = 0; cap[l] = 0; continue; }
            if (p0 && o->params[l] != p0) equal = 0;
            p0 = o->params[l];
            want[l] = o->sparsity[l] * j->nm_m;
            cap[l] = j->nm_m;
            nl++;
        }
        if (equal) apportion((int64_t)j->nm_n * nl, want, cap, L, got);
        else for (int l = 0; l < L; l++) got[l] = (int64_t)floor(want[l] + 0.5);
        for (int l = 0; l < L; l++) {
            if (!o->params[l]) continue;
            o->nm_n[l] = (int)got[l];
            o->zeros[l] = o->params[l] / j->nm_m * got[l];
            for (int p = 0; p < PROJ_N; p++) o->quota[l * PROJ_N + p].nm_n = (int)got[l];
        }
    } else {
        for (int l = 0; l < L; l++) { want[l] = o->sparsity[l] * (double)o->params[l]; cap[l] = o->params[l]; }
        apportion(prune_count(j->sparsity, P), want, cap, L, o->zeros);
        for (int l = 0; l < L; l++) {
            if (!o->params[l]) continue;
            for (int p = 0; p < PROJ_N; p++) {
                int k = l * PROJ_N + p;
                const lop_wref *w = &m->layers[l].proj[p];
                int64_t n = target[k] ? w->rows * w->cols : 0;
                want[p] = (double)o->zeros[l] * (double)n / (double)o->params[l];
                cap[p] = n;
            }
            apportion(o->zeros[l], want, cap, PROJ_N, got);
            for (int p = 0; p < PROJ_N; p++) o->quota[l * PROJ_N + p].zeros = got[p];
        }
    }
    rc = 0;
    goto out;
oom:
    lop_fail(e, "out of memory");
out:
    if (acc.ss) for (int k = 0; k < K; k++) free(acc.ss[k]);
    free(acc.ss);
    free(wf); free(want); free(cap); free(got);
    tot->t_owl += tool_now_seconds() - t0;
    return rc;
}

const wm_quota *wm_owl_quota(const wm_owl *o, const char *name) {
    for (int k = 0; k < o->K; k++)
        if (o->name[k] && !strcmp(o->name[k], name)) return &o->quota[k];
    return NULL;
}

void wm_owl_free(wm_owl *o) {
    if (o->name) for (int k = 0; k < o->K; k++) free(o->name[k]);
    free(o->name); free(o->ratio); free(o->sparsity); free(o->params); free(o->zeros);
    free(o->nm_n); free(o->quota);
    memset(o, 0, sizeof *o);
}
