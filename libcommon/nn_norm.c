/* nn_norm.c — RMSNorm as transformers computes it in float32: x * rsqrt(mean(x^2) + eps) * w, or
 * Gemma's x * rsqrt(...) * (1 + w). The mean of squares is accumulated in double. */
#include "nn.h"
#include <math.h>

void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C,
                     float eps, int gemma) {
    #pragma omp parallel for schedule(static) if ((long)N * C > 32768)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double ss = 0;
        #pragma omp simd reduction(+: ss)
        for (int i = 0; i < C; i++) ss += (double)xr[i] * xr[i];
        float r = (float)(1.0 / sqrt((float)(ss / C) + (double)eps));
        if (rstd) rstd[n] = r;
        if (gemma)
            for (int i = 0; i < C; i++) o[i] = xr[i] * r * (1.0f + w[i]);
        else
            for (int i = 0; i < C; i++) o[i] = xr[i] * r * w[i];
    }
}
