/* grad_xent.c — masked cross-entropy over a chunk of logits (the default pluggable loss). */
#include "grad.h"
#include "nn.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

double tr_xent_loss(const tr_loss_chunk *c, void *ctx, int64_t *scored) {
    (void)ctx;
    if (c->device) return NAN; /* device logits: the backend's xent runs those */
    int n = c->n, V = c->V;
    double stack[256], *row_loss = n <= 256 ? stack : malloc(sizeof(double) * n);
    if (!row_loss) return NAN;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
        float *l = c->logits + (size_t)r * V;
        int t = c->targets[r];
        row_loss[r] = 0;
        if (t < 0 || t >= V) { memset(l, 0, sizeof(float) * V); continue; }
        /* one vectorized exp per logit (engine's nn_exp); sums in double by blocks */
        float lt = l[t], mx = nn_max(l, V);
        for (int j = 0; j < V; j++) l[j] -= mx;
        nn_exp(l, l, V);
        double s = 0;
        for (int j0 = 0; j0 < V; j0 += 1024) {
            float part = 0;
            int j1 = j0 + 1024 < V ? j0 + 1024 : V;
            #pragma omp simd reduction(+: part)
            for (int j = j0; j < j1; j++) part += l[j];
            s += part;
        }
        double lse = mx + log(s);
        row_loss[r] = lse - lt;
        float k = (float)(1.0 / s) * c->gscale;
        for (int j = 0; j < V; j++) l[j] *= k;
        l[t] -= c->gscale;
    }
    /* rows summed in order: the same loss for any thread count */
    double sum = 0; int64_t k = 0;
    for (int r = 0; r < n; r++)
        if (c->targets[r] >= 0 && c->targets[r] < V) { sum += row_loss[r]; k++; }
    if (row_loss != stack) free(row_loss);
    if (scored) *scored = k;
    return sum;
}
