/* nn_softmax.c — exp, logsumexp, log-softmax, cross-entropy, softcapping. nn_exp is a polynomial
 * exp the compiler vectorizes (glibc's expf only vectorizes under -ffast-math), used where the
 * vocabulary-sized reductions spend their time. */
#include "nn.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

void nn_exp(float *y, const float *x, size_t n) {
    #pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] = nn_expf(x[i]);
}

/* sum of exp(x[i] - m), vectorized */
float nn_sumexp(const float *x, int n, float m) {
    float s = 0;
    #pragma omp simd reduction(+: s)
    for (int i = 0; i < n; i++) s += nn_expf(x[i] - m);
    return s;
}

float nn_max(const float *x, int n) {
    float m = -INFINITY;
    #pragma omp simd reduction(max: m)
    for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

float nn_logsumexp(const float *x, int n) {
    float m = nn_max(x, n);
    if (m == -INFINITY) return m;
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - m);
    return m + (float)log(s);
}

void log_softmax_forward(float *out, const float *x, int N, int V) {
    #pragma omp parallel for schedule(static) if ((long)N * V > 65536)
    for (int n = 0; n < N; n++) {
        const float *r = x + (size_t)n * V;
        float l = nn_logsumexp(r, V);
        for (int i = 0; i < V; i++) out[(size_t)n * V + i] = r[i] - l;
    }
}

double crossentropy_forward(float *nll, const float *logits, const int32_t *target, int N, int V) {
    double sum = 0;
    long cnt = 0;
    #pragma omp parallel for schedule(static) reduction(+: sum, cnt) if ((long)N * V > 65536)
    for (int n = 0; n < N; n++) {
        if (target[n] < 0 || target[n] >= V) { if (nll) nll[n] = 0; continue; }
        const float *r = logits + (size_t)n * V;
        float l = nn_logsumexp(r, V) - r[target[n]];
        if (nll) nll[n] = l;
        sum += l;
        cnt++;
    }
    return cnt ? sum / cnt : 0;
}

void softcap_forward(float *x, size_t n, float cap) {
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}
