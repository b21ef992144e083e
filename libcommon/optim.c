/* optim.c — AdamW (PyTorch semantics), clipping, and the RNG. */
#include "optim.h"
#include <math.h>

void adamw_update(float *p, const float *g, float *m, float *v, size_t n, double lr,
                  const adamw_hp *hp, int64_t t, const uint8_t *zero_bits) {
    double bc1 = 1.0 - pow(hp->beta1, (double)t), bc2 = 1.0 - pow(hp->beta2, (double)t);
    float decay = (float)(1.0 - lr * hp->wd);
    float step = (float)(lr / bc1), bc2s = (float)sqrt(bc2);
    float b1 = (float)hp->beta1, b2 = (float)hp->beta2, eps = (float)hp->eps;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        if (zero_bits && (zero_bits[i >> 3] >> (i & 7) & 1)) { p[i] = 0; continue; }
        float gi = g[i];
        p[i] *= decay;
        m[i] += (gi - m[i]) * (1.0f - b1);   /* torch: exp_avg.lerp_(grad, 1 - beta1) */
        v[i] = v[i] * b2 + (1.0f - b2) * gi * gi;
        float denom = sqrtf(v[i]) / bc2s + eps;
        p[i] -= step * (m[i] / denom);
    }
}

double grad_sumsq(const float *g, size_t n) {
    /* fixed blocks summed in order: the same norm for any thread count */
    enum { BLK = 1 << 16 };
    size_t nb = (n + BLK - 1) / BLK;
    double total = 0;
    for (size_t b0 = 0; b0 < nb; b0 += 64) {
        double part[64] = {0};
        size_t bend = b0 + 64 < nb ? b0 + 64 : nb;
        #pragma omp parallel for schedule(static)
        for (size_t b = b0; b < bend; b++) {
            size_t i0 = b * BLK, i1 = i0 + BLK < n ? i0 + BLK : n;
            double s = 0;
            for (size_t i = i0; i < i1; i++) s += (double)g[i] * g[i];
            part[b - b0] = s;
        }
        for (size_t b = b0; b < bend; b++) total += part[b - b0];
    }
    return total;
}

double clip_factor(double total_norm, double max_norm) {
    if (max_norm <= 0) return 1.0;
    double c = max_norm / (total_norm + 1e-6);
    return c < 1.0 ? c : 1.0;
}

void grad_scale(float *g, size_t n, float s) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) g[i] *= s;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
void trng_seed(trng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
uint64_t trng_next(trng *r) {
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return res;
}
double trng_uniform(trng *r) { return (trng_next(r) >> 11) * (1.0 / 9007199254740992.0); }
uint64_t trng_below(trng *r, uint64_t n) {
    if (n <= 1) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do x = trng_next(r); while (x >= lim);
    return x % n;
}
