/* sample.c — HF generate()'s logits processors and the draw. */
#include "sample.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void lop_sampler_seed(lop_sampler *s, uint64_t seed) { s->rng = seed; }

double lop_sampler_uniform(lop_sampler *s) {
    return (double)(splitmix64(&s->rng) >> 11) * (1.0 / 9007199254740992.0); /* 53 bits */
}

static void repetition_penalty(float *z, int V, const int32_t *hist, int n, double r) {
    if (r == 1.0 || n <= 0) return;
    /* each distinct token once, as HF's gather/scatter over the sequence does */
    uint8_t *seen = calloc((size_t)V, 1);
    for (int i = 0; i < n; i++) {
        int32_t t = hist[i];
        if (t < 0 || t >= V) continue;
        if (seen) { if (seen[t]) continue; seen[t] = 1; }
        z[t] = z[t] > 0 ? (float)(z[t] / r) : (float)(z[t] * r);
        if (!seen) break; /* out of memory: penalize what we can without double counting */
    }
    free(seen);
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static void top_k(float *z, int V, int k) {
    if (k <= 0 || k >= V) return;
    float *tmp = malloc(sizeof(float) * (size_t)V);
    if (!tmp) return;
    memcpy(tmp, z, sizeof(float) * (size_t)V);
    qsort(tmp, (size_t)V, sizeof(float), cmp_desc);
    float kth = tmp[k - 1];
    free(tmp);
    for (int i = 0; i < V; i++) if (z[i] < kth) z[i] = -INFINITY;
}

typedef struct { float z; int id; } zi;
static int cmp_zi_asc(const void *a, const void *b) {
    const zi *x = a, *y = b;
    if (x->z != y->z) return x->z < y->z ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id); /* stable, as torch.sort on distinct positions */
}

/* HF: sort ascending, cumulative softmax, remove where cumsum <= 1 - p; the last (largest) stays */
static void top_p(float *z, int V, double p) {
    if (p >= 1.0) return;
    zi *s = malloc(sizeof(zi) * (size_t)V);
    double *pr = malloc(sizeof(double) * (size_t)V);
    if (!s || !pr) { free(s); free(pr); return; }
    for (int i = 0; i < V; i++) { s[i].z = z[i]; s[i].id = i; }
    qsort(s, (size_t)V, sizeof(zi), cmp_zi_asc);
    double mx = s[V - 1].z, sum = 0;
    for (int i = 0; i < V; i++) { pr[i] = isinf(s[i].z) ? 0 : exp((double)s[i].z - mx); sum += pr[i]; }
    double cum = 0;
    for (int i = 0; i < V - 1; i++) {
        cum += pr[i] / sum;
        if (cum <= 1.0 - p) z[s[i].id] = -INFINITY;
    }
    free(s);
    free(pr);
}

void lop_sample_process(const lop_sampler *s, float *z, int V, const int32_t *hist, int n) {
    repetition_penalty(z, V, hist, n, s->rep_penalty);
    if (s->temperature <= 0) return;
    if (s->temperature != 1.0)
        for (int i = 0; i < V; i++) z[i] = (float)(z[i] / s->temperature);
    top_k(z, V, s->top_k);
    top_p(z, V, s->top_p);
}

int32_t lop_sample_next(lop_sampler *s, float *z, int V, const int32_t *hist, int n) {
    lop_sample_process(s, z, V, hist, n);
    int32_t best = 0;
    for (int i = 1; i < V; i++) if (z[i] > z[best]) best = i;
    if (s->temperature <= 0) return best;
    double mx = z[best], sum = 0;
    for (int i = 0; i < V; i++) sum += isinf(z[i]) ? 0 : exp((double)z[i] - mx);
    double u = lop_sampler_uniform(s) * sum, acc = 0;
    for (int i = 0; i < V; i++) {
        if (isinf(z[i])) continue;
        acc += exp((double)z[i] - mx);
        if (u < acc) return i;
    }
    return best; /* rounding at the top end */
}
