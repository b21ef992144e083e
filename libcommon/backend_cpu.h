/* backend_cpu.h — the CPU backend's private state, shared by its two files: backend_cpu.c (the
 * forward's ops) and backend_cpu_train.c (LoRA, the backwards and the optimizer). */
#ifndef LOP_BACKEND_CPU_H
#define LOP_BACKEND_CPU_H
#include "backend.h"
#include "nn.h"

typedef struct cpu_be {
    lop_backend be;
    float *vec;          /* [maxvec] float32 copy of one vector weight */
    int maxvec;
    attn_seq *aseq;      /* [aseq_cap] */
    int aseq_cap;
    /* training: a float32 copy of one frozen matrix (or a block of head rows) in its stored
     * dtype, and the attention backward's scratch; grown on first use */
    float *wscr;
    size_t wscr_cap;     /* floats */
    size_t wscr_want;    /* floats: the largest layer matrix, or 256 head rows */
    float *ascr;
    size_t ascr_cap;
} cpu_be;

/* float32 view of a vector weight (norm weight or bias); NULL if absent */
static inline const float *cpu_vecf(cpu_be *c, const lop_wref *r) {
    if (!r || !r->data) return NULL;
    if (r->dtype == ST_F32) return r->data;
    nn_to_f32_serial(c->vec, r->data, r->dtype, (size_t)(r->rows * r->cols));
    return c->vec;
}

int cpu_zero(lop_backend *be, void *p, size_t n, lop_err *e);
int cpu_lora_forward(lop_backend *be, float *out, float *xa, float *tmp, const float *x,
                     const float *A, const float *B, int N, int IC, int OC, int r, float scale,
                     float dropout, uint64_t seed, uint64_t key, lop_gemm g, lop_err *e);
int cpu_matmul_backward(lop_backend *be, float *din, float *dw, float *dbias, const float *dout,
                        const float *x, const lop_wref *w, int N, lop_gemm g, int overwrite,
                        lop_err *e);
int cpu_lora_backward(lop_backend *be, float *din, float *dA, float *dB, float *dxa, float *tmp,
                      const float *dout, const float *x, const float *xa, const float *A,
                      const float *B, int N, int IC, int OC, int r, float scale, float dropout,
                      uint64_t seed, uint64_t key, lop_gemm g, int overwrite, lop_err *e);
int cpu_rmsnorm_backward(lop_backend *be, float *dx, float *dw, const float *dout, const float *x,
                         const float *rstd, const lop_wref *w, int N, int C, int gemma,
                         int overwrite, lop_err *e);
int cpu_rope_backward(lop_backend *be, float *dx, const float *cs, int N, int H, int D, lop_err *e);
int cpu_attention_backward(lop_backend *be, const lop_attn_bwd_args *a, lop_err *e);
int cpu_glu_backward(lop_backend *be, float *dgate, float *dup, const float *dh, const float *gate,
                     const float *up, size_t n, lop_act act, int overwrite, lop_gemm g,
                     lop_err *e);
int cpu_embed_backward(lop_backend *be, float *dtable, const float *dout, const int32_t *ids, int N,
                       int C, float scale, lop_err *e);
int cpu_head_logits(lop_backend *be, float *logits, float *capped, const float *xn, int n,
                    const lop_wref *w, float softcap, lop_gemm g, lop_err *e);
int cpu_head_backward(lop_backend *be, float *dxn, float *dw, float *dlogits, const float *capped,
                      const float *xn, int n, const lop_wref *w, float softcap, lop_gemm g,
                      lop_err *e);
int cpu_xent(lop_backend *be, float *logits, const int32_t *targets, int n, int V, float gscale,
             double *loss_sum, int64_t *scored, lop_err *e);
int cpu_grad_sumsq(lop_backend *be, double *out, const float *g, size_t n, lop_err *e);
int cpu_adamw(lop_backend *be, float *p, float *g, float *m, float *v, const uint8_t *zero_bits,
              size_t n, float clip, double lr, const adamw_hp *hp, int64_t t, lop_err *e);
#endif
