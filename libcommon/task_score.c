/* task_score.c — the harness's per-document metrics and their aggregation
 * (lm_eval/api/task.py process_results, lm_eval/api/metrics.py). */
#include "task.h"
#include <math.h>

int task_argmax_first(const double *x, int n) {
    int best = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(x[i])) return i; /* numpy: the first NaN is the maximum */
        if (x[i] > x[best]) best = i;
    }
    return best;
}

void task_score_doc(const lop_task *t, const task_doc *d, const double *ll, const uint8_t *greedy,
                    task_score *out) {
    int n = task_doc_nreq(d);
    out->acc = out->acc_norm = 0;
    out->ll = 0;
    if (t->kind == TASK_LOGLIK) {
        out->ll = ll[0];
        out->acc = greedy[0] ? 1 : 0;
        return;
    }
    out->acc = task_argmax_first(ll, n) == d->gold;
    if (t->kind == TASK_MC) {
        double norm[n > 0 ? n : 1];
        for (int i = 0; i < n; i++) norm[i] = ll[i] / (double)d->chars[i];
        out->acc_norm = task_argmax_first(norm, n) == d->gold;
    }
}

void task_agg_mean(const double *x, int n, double *mean, double *se) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    double mu = n ? s / n : NAN;
    *mean = mu;
    if (n < 2) { *se = NAN; return; }
    double v = 0;
    for (int i = 0; i < n; i++) v += (x[i] - mu) * (x[i] - mu);
    *se = sqrt(v / (n - 1)) / sqrt((double)n);
}

void task_agg_perplexity(const double *ll, int n, double *ppl, double *se) {
    double mu, mse;
    task_agg_mean(ll, n, &mu, &mse);
    *ppl = exp(-mu);
    *se = isnan(mse) ? NAN : *ppl * mse; /* delta method: d exp(-m) = exp(-m) dm */
}

void task_agg_group(const double *means, const double *ses, const int *sizes, int k, double *mean,
               double *se) {
    double s = 0, var = 0;
    long long N = 0;
    int nan_se = 0;
    for (int i = 0; i < k; i++) {
        s += means[i] * sizes[i];
        N += sizes[i];
        if (isnan(ses[i])) nan_se = 1;
        else var += (sizes[i] - 1) * ses[i] * ses[i] * sizes[i];
    }
    *mean = N ? s / (double)N : NAN;
    /* pooled_sample_stderr: sqrt(sum((n_i-1) se_i^2 n_i) / (N - k) / N) */
    *se = (nan_se || N - k <= 0) ? NAN : sqrt(var / (double)(N - k) / (double)N);
}
