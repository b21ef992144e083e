/* test_optim.c — AdamW against a float64 transcription of torch.optim.AdamW's update, clipping,
 * and the schedules at points transformers' formulas give by hand. */
#include "optim.h"
#include <math.h>
#include <stdio.h>
#include "check.h"

static void expect(const char *what, double got, double want, double tol) {
    int ok = fabs(got - want) <= tol * fmax(1.0, fabs(want));
    if (!ok) fails++;
    printf("%-40s %.9g vs %.9g %s\n", what, got, want, ok ? "ok" : "FAIL");
}

int main(void) {
    /* AdamW: 3 steps, varying gradients, lr changes between steps */
    float p[3] = {0.5f, -1.0f, 0.0f}, m[3] = {0}, v[3] = {0};
    double P[3] = {0.5, -1.0, 0.0}, M[3] = {0}, Vv[3] = {0};
    adamw_hp hp = ADAMW_DEFAULTS;
    uint8_t zero = 1 << 2; /* element 2 is pruned */
    for (int t = 1; t <= 3; t++) {
        float g[3] = {0.1f * t, -0.3f, 0.7f};
        double lr = 1e-3 * t;
        adamw_update(p, g, m, v, 3, lr, &hp, t, &zero);
        for (int i = 0; i < 2; i++) {
            P[i] *= 1 - lr * 0.01;
            M[i] = 0.9 * M[i] + 0.1 * g[i];
            Vv[i] = 0.999 * Vv[i] + 0.001 * (double)g[i] * g[i];
            double bc1 = 1 - pow(0.9, t), bc2 = 1 - pow(0.999, t);
            P[i] -= lr / bc1 * M[i] / (sqrt(Vv[i]) / sqrt(bc2) + 1e-8);
        }
    }
    expect("adamw p[0] after 3 steps", p[0], P[0], 1e-6);
    expect("adamw p[1] after 3 steps", p[1], P[1], 1e-6);
    expect("adamw pruned p[2] stays 0", p[2], 0.0, 0);
    /* clipping */
    expect("clip factor 10 -> 1", clip_factor(10.0, 1.0), 1.0 / (10.0 + 1e-6), 1e-12);
    expect("no clip when under", clip_factor(0.5, 1.0), 1.0, 0);
    float g[5] = {3, 4, 0, 0, 0};
    expect("grad_sumsq", grad_sumsq(g, 5), 25.0, 0);
    /* schedules: warmup 10, total 110 */
    expect("warmup step 0", sched_lr(SCHED_COSINE, 1.0, 0, 10, 110), 0.0, 0);
    expect("warmup step 5", sched_lr(SCHED_LINEAR, 1.0, 5, 10, 110), 0.5, 1e-12);
    expect("constant after warmup", sched_lr(SCHED_CONSTANT, 2.0, 50, 10, 110), 2.0, 0);
    expect("linear at 60", sched_lr(SCHED_LINEAR, 1.0, 60, 10, 110), 0.5, 1e-12);
    expect("cosine at 60 (half way)", sched_lr(SCHED_COSINE, 1.0, 60, 10, 110), 0.5, 1e-12);
    expect("cosine at 35", sched_lr(SCHED_COSINE, 1.0, 35, 10, 110), 0.5 * (1 + cos(M_PI * 0.25)), 1e-12);
    expect("cosine at end", sched_lr(SCHED_COSINE, 1.0, 110, 10, 110), 0.0, 1e-12);
    /* rng: reproducible, in range */
    trng a, b; trng_seed(&a, 7); trng_seed(&b, 7);
    int same = 1;
    for (int i = 0; i < 100; i++) if (trng_next(&a) != trng_next(&b)) same = 0;
    expect("rng reproducible", same, 1, 0);
    int inr = 1;
    for (int i = 0; i < 1000; i++) if (trng_below(&a, 7) >= 7) inr = 0;
    expect("rng below in range", inr, 1, 0);
    return fails != 0;
}
