/* grad_norm.c — RMSNorm (plain and Gemma's 1+w) forward and backward. */
#include "grad.h"
#include <math.h>
#include <omp.h>

void tr_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x,
                         const float *rstd, const float *w, int N, int C, int gemma) {
    if (dx) {
        /* dx = r*w'*dy - x * r^3/C * sum(dy*w'*x) */
        #pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * C, *g = dout + (size_t)n * C;
            float *d = dx + (size_t)n * C;
            float r = rstd[n], dot = 0;
            for (int c = 0; c < C; c++) dot += g[c] * (gemma ? 1.0f + w[c] : w[c]) * xr[c];
            float k = dot * r * r * r / C;
            for (int c = 0; c < C; c++)
                d[c] += r * (gemma ? 1.0f + w[c] : w[c]) * g[c] - xr[c] * k;
        }
    }
    if (dw) {
        /* each thread owns a range of columns and sums its rows in order: deterministic */
        #pragma omp parallel
        {
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
            int c0 = (int)((long)C * id / nt), c1 = (int)((long)C * (id + 1) / nt);
            for (int n = 0; n < N; n++) {
                const float *xr = x + (size_t)n * C, *g = dout + (size_t)n * C;
                float r = rstd[n];
                for (int c = c0; c < c1; c++) dw[c] += g[c] * xr[c] * r;
            }
        }
    }
}
