/* nn_mlp.c — the gated MLP's activation: h = act(gate) * up, SiLU (Llama, Qwen) or GELU with the
 * tanh approximation (Gemma's gelu_pytorch_tanh). */
#include "nn.h"
#include <math.h>

void glu_forward(float *h, const float *gate, const float *up, size_t count, lop_act act) {
    if (act == ACT_GELU_TANH) {
        const float k = 0.7978845608028654f; /* sqrt(2/pi) */
        #pragma omp parallel for simd schedule(static) if (count > 65536)
        for (size_t i = 0; i < count; i++) {
            float x = gate[i];
            h[i] = 0.5f * x * (1.0f + nn_tanhf(k * (x + 0.044715f * x * x * x))) * up[i];
        }
    } else {
        #pragma omp parallel for simd schedule(static) if (count > 65536)
        for (size_t i = 0; i < count; i++) {
            float x = gate[i];
            h[i] = x / (1.0f + nn_expf(-x)) * up[i];
        }
    }
}
