/* nn_rope.c — rotary position embeddings as transformers computes them: inv_freq in float32
 * (default, linear, llama3), angle = float(pos) * inv_freq in float32, cos/sin of that angle, and
 * rotate_half (pairs i and i + D/2 of each head). */
#include "nn.h"
#include <math.h>

void rope_inv_freq(float *inv_freq, int D, const lop_rope *r) {
    int h = D / 2;
    for (int i = 0; i < h; i++) {
        float ex = (float)(2 * i) / (float)D;
        float p = powf((float)r->theta, ex);
        inv_freq[i] = 1.0f / p;
    }
    if (r->type == ROPE_LINEAR && r->factor > 0) {
        for (int i = 0; i < h; i++) inv_freq[i] = inv_freq[i] / (float)r->factor;
    } else if (r->type == ROPE_LLAMA3) {
        double old = r->original_max_pos, f = r->factor, lo = r->low_freq_factor,
               hi = r->high_freq_factor;
        double lo_wl = old / lo, hi_wl = old / hi;
        for (int i = 0; i < h; i++) {
            float inv = inv_freq[i];
            float wl = 2.0f * (float)M_PI / inv;
            float scaled = wl > (float)lo_wl ? inv / (float)f : inv;
            if (!(wl < (float)hi_wl) && !(wl > (float)lo_wl)) {
                float s = ((float)old / wl - (float)lo) / (float)(hi - lo);
                scaled = (1 - s) * scaled / (float)f + s * scaled;
            }
            inv_freq[i] = scaled;
        }
    }
}

/* rotate every head of each row by sign * pos[n] * inv_freq[i] */
static void rope_rows(float *x, const int *pos, const float *inv_freq, int N, int H, int D,
                      float sign) {
    int h = D / 2;
    #pragma omp parallel for schedule(static) if ((long)N * H * D > 32768)
    for (int n = 0; n < N; n++) {
            float c[NN_MAX_HEAD_DIM / 2], s[NN_MAX_HEAD_DIM / 2];
            for (int i = 0; i < h; i++) {
                float a = (float)pos[n] * inv_freq[i];
                c[i] = (float)cos((double)a);
                s[i] = sign * (float)sin((double)a);
            }
            for (int hd = 0; hd < H; hd++) {
                float *v = x + ((size_t)n * H + hd) * D;
                for (int i = 0; i < h; i++) {
                    float x1 = v[i], x2 = v[i + h];
                    v[i] = x1 * c[i] - x2 * s[i];
                    v[i + h] = x2 * c[i] + x1 * s[i];
                }
            }
        }
}

void rope_forward(float *x, const int *pos, const float *inv_freq, int N, int H, int D) {
    rope_rows(x, pos, inv_freq, N, H, D, 1.0f);
}

/* the rotation is orthogonal: its transpose (the backward) is the rotation by -angle */
void rope_inverse(float *x, const int *pos, const float *inv_freq, int N, int H, int D) {
    rope_rows(x, pos, inv_freq, N, H, D, -1.0f);
}

void rope_table(float *cs, const int *pos, const float *inv_freq, int N, int D) {
    int h = D / 2;
    #pragma omp parallel for schedule(static) if ((long)N * D > 65536)
    for (int n = 0; n < N; n++)
        for (int i = 0; i < h; i++) {
            float a = (float)pos[n] * inv_freq[i];
            cs[(size_t)n * D + i] = (float)cos((double)a);
            cs[(size_t)n * D + h + i] = (float)sin((double)a);
        }
}

static void rope_rotate(float *x, const float *cs, int N, int H, int D, float sign) {
    int h = D / 2;
    #pragma omp parallel for schedule(static) if ((long)N * H * D > 65536)
    for (int n = 0; n < N; n++) {
        const float *c = cs + (size_t)n * D, *s = c + h;
        for (int hd = 0; hd < H; hd++) {
            float *v = x + ((size_t)n * H + hd) * D;
            #pragma omp simd
            for (int i = 0; i < h; i++) {
                float x1 = v[i], x2 = v[i + h], si = sign * s[i];
                v[i] = x1 * c[i] - x2 * si;
                v[i + h] = x2 * c[i] + x1 * si;
            }
        }
    }
}

void rope_apply(float *x, const float *cs, int N, int H, int D) { rope_rotate(x, cs, N, H, D, 1.0f); }
void rope_apply_inverse(float *x, const float *cs, int N, int H, int D) { rope_rotate(x, cs, N, H, D, -1.0f); }
