/* grad_rope.c — rotary position embeddings as transformers applies them (rotate_half). */
#include "grad.h"
#include <math.h>

void tr_rope_inv_freq(float *inv_freq, int D, double theta, int type, double factor,
                      double low_ff, double high_ff, int orig_max_pos) {
    for (int i = 0; i < D / 2; i++) {
        /* transformers: 1 / base ** (arange(0, D, 2).float() / D), in float32 */
        float e = (float)(2 * i) / (float)D;
        float f = (float)(1.0 / pow(theta, (double)e));
        if (type == 1 && factor > 0) f = (float)(f / factor);           /* linear */
        if (type == 2 && factor > 0) {                                   /* llama3 */
            double lw = orig_max_pos / low_ff, hw = orig_max_pos / high_ff;
            double wl = 2 * M_PI / f, v = f;
            if (wl > lw) v = f / factor;
            if (!(wl < hw) && !(wl > lw)) {
                double s = (orig_max_pos / wl - low_ff) / (high_ff - low_ff);
                v = (1 - s) * v / factor + s * v;
            }
            f = (float)v;
        }
        inv_freq[i] = f;
    }
}

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

void tr_rope_forward(float *x, const int32_t *pos, const float *inv_freq, int N, int H, int D) {
    rope_rows(x, pos, inv_freq, N, H, D, 1.0f);
}

/* the rotation is orthogonal: its transpose is the rotation by -angle */
void tr_rope_backward(float *dx, const int32_t *pos, const float *inv_freq, int N, int H, int D) {
    rope_rows(dx, pos, inv_freq, N, H, D, -1.0f);
}
