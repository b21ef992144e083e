/* test_sample.c — HF generate()'s logits processors (sample.h) against direct computations. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sample.h"
#include "check.h"


static void penalty(void) {
    float z[6] = {2.0f, -1.0f, 0.5f, -3.0f, 0.0f, 4.0f};
    int32_t hist[] = {0, 1, 1, 4, 1}; /* 1 repeated: penalized once */
    lop_sampler s = {.temperature = 0, .top_p = 1, .rep_penalty = 1.25};
    lop_sample_process(&s, z, 6, hist, 5);
    float want[6] = {2.0f / 1.25f, -1.0f * 1.25f, 0.5f, -3.0f, 0.0f, 4.0f};
    for (int i = 0; i < 6; i++) CHECK(z[i] == want[i], "penalty z[%d] = %g, want %g", i, z[i], want[i]);
}

static void topk(void) {
    float z[8] = {1, 5, 3, 5, -2, 0, 4, 2};
    lop_sampler s = {.temperature = 1, .top_k = 3, .top_p = 1, .rep_penalty = 1};
    lop_sample_process(&s, z, 8, NULL, 0);
    /* the 3rd largest is 4: 5, 5, 4 stay */
    for (int i = 0; i < 8; i++) {
        int keep = i == 1 || i == 3 || i == 6;
        CHECK(keep ? !isinf(z[i]) : isinf(z[i]) && z[i] < 0, "top-k token %d", i);
    }
}

/* top-p: keep the most probable tokens until their mass reaches p (the crossing token kept) */
static void topp(void) {
    enum { V = 7 };
    float z0[V] = {0.1f, 2.0f, -1.0f, 1.5f, 0.7f, 3.0f, -0.5f};
    for (double p = 0.05; p < 1.0; p += 0.1) {
        float z[V];
        memcpy(z, z0, sizeof z);
        lop_sampler s = {.temperature = 0.7, .top_p = p, .rep_penalty = 1};
        lop_sample_process(&s, z, V, NULL, 0);
        /* reference in double: descending order by probability */
        double pr[V], sum = 0;
        for (int i = 0; i < V; i++) { pr[i] = exp(z0[i] / 0.7); sum += pr[i]; }
        int order[V];
        for (int i = 0; i < V; i++) order[i] = i;
        for (int i = 0; i < V; i++) for (int j = i + 1; j < V; j++)
            if (pr[order[j]] > pr[order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
        double mass = 0;
        int keep[V] = {0};
        for (int r = 0; r < V; r++) {
            keep[order[r]] = 1;
            mass += pr[order[r]] / sum;
            if (mass >= p) break;
        }
        for (int i = 0; i < V; i++) {
            CHECK(keep[i] == !isinf(z[i]), "top-p %.2f token %d kept %d", p, i, keep[i]);
            if (keep[i]) CHECK(fabsf(z[i] - (float)(z0[i] / 0.7)) < 1e-6f, "temperature on token %d", i);
        }
    }
}

static void greedy_and_draws(void) {
    float z0[5] = {0.0f, 1.0f, 2.0f, 0.5f, 2.0f};
    lop_sampler g = {.temperature = 0, .top_p = 1, .rep_penalty = 1};
    float z[5];
    memcpy(z, z0, sizeof z);
    CHECK(lop_sample_next(&g, z, 5, NULL, 0) == 2, "greedy takes the lowest id among equal maxima");
    /* draws follow softmax(z / T): frequencies within 4 standard errors over 200k draws */
    lop_sampler s = {.temperature = 1.5, .top_p = 1, .rep_penalty = 1};
    lop_sampler_seed(&s, 7);
    int N = 200000, cnt[5] = {0};
    for (int k = 0; k < N; k++) {
        memcpy(z, z0, sizeof z);
        cnt[lop_sample_next(&s, z, 5, NULL, 0)]++;
    }
    double sum = 0, p[5];
    for (int i = 0; i < 5; i++) sum += p[i] = exp(z0[i] / 1.5);
    for (int i = 0; i < 5; i++) {
        p[i] /= sum;
        double f = (double)cnt[i] / N, se = sqrt(p[i] * (1 - p[i]) / N);
        CHECK(fabs(f - p[i]) < 4 * se, "token %d drawn %.4f, softmax %.4f", i, f, p[i]);
    }
    /* same seed, same draws; another seed, other draws */
    lop_sampler a = s, b = s;
    lop_sampler_seed(&a, 42); lop_sampler_seed(&b, 42);
    int same = 1, diff = 0;
    lop_sampler c = s;
    lop_sampler_seed(&c, 43);
    for (int k = 0; k < 100; k++) {
        double x = lop_sampler_uniform(&a), y = lop_sampler_uniform(&b), w = lop_sampler_uniform(&c);
        same &= x == y;
        diff |= x != w;
        CHECK(x >= 0 && x < 1, "uniform in [0,1)");
    }
    CHECK(same && diff, "seeding");
}

int main(void) {
    penalty();
    topk();
    topp();
    greedy_and_draws();
    if (fails) printf("test_sample: %d failures\n", fails);
    return fails != 0;
}
