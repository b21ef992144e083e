/* grad_rope.c — rotary position embeddings as transformers applies them (rotate_half). */
#include "grad.h"
#include <math.h>

static void rope_rows(float *x, const int32_t *pos, const float *inv_freq, int N, int H, int D,
                      float sign) {
    int h2 = D / 2;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float p = (float)pos[n];
        for (int i = 0; i < h2; i++) {
            float a = p * inv_freq[i];
            float c = (float)cos((double)a), s = sign * (float)sin((double)a);
            for (int h = 0; h < H; h++) {
                float *v = x + ((size_t)n * H + h) * D;
                float x1 = v[i], x2 = v[i + h2];
                v[i] = x1 * c - x2 * s;
                v[i + h2] = x2 * c + x1 * s;
            }
        }
    }
}

/* the rotation is orthogonal: its transpose is the rotation by -angle */
void tr_rope_backward(float *dx, const int32_t *pos, const float *inv_freq, int N, int H, int D) {
    rope_rows(dx, pos, inv_freq, N, H, D, -1.0f);
}
