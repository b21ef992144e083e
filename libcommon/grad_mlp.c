/* grad_mlp.c — gated activations (SwiGLU, GELU-tanh gated), logit softcapping. */
#include "grad.h"
#include <math.h>

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

void tr_glu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                     size_t n, int act) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = g[i], a, da;
        if (act == 0) {
            float s = 1.0f / (1.0f + expf(-x));
            a = x * s;
            da = s * (1.0f + x * (1.0f - s));
        } else {
            float t = tanhf(GELU_K * (x + 0.044715f * x * x * x));
            a = 0.5f * x * (1.0f + t);
            da = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3 * 0.044715f * x * x);
        }
        if (dg) dg[i] += dh[i] * u[i] * da;
        if (du) du[i] += dh[i] * a;
    }
}

void tr_softcap_forward(float *x, size_t n, float cap) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

/* in place: dx holds dL/dy on entry, dL/dx on return */
void tr_softcap_backward(float *dx, const float *y, size_t n, float cap) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float t = y[i] / cap;
        dx[i] *= 1.0f - t * t;
    }
}
