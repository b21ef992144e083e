/* backend_cuda_train.cuh — between backend_cuda.cu (the forward ops, the weights, the handle) and
 * backend_cuda_train.cu (the training ops of backend.h's seam). Private to liblop_cuda.so. */
#ifndef LOP_BACKEND_CUDA_TRAIN_CUH
#define LOP_BACKEND_CUDA_TRAIN_CUH
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
extern "C" {
#include "backend.h"
}

/* backend_cuda.cu gives the training ops: */
cublasHandle_t cu_blas_of(lop_backend *be);
cudaStream_t cu_stream_of(lop_backend *be);
/* the device copy of a weight (vec: a float32 vector); a bemem weight is its own data */
const void *cu_weight_of(lop_backend *be, const lop_wref *w, int vec, lop_err *e);
/* an op is about to write device memory (the bf16 input cache of the GEMMs keys on this) */
void cu_touch(lop_backend *be);
unsigned long cu_gen(lop_backend *be); /* the count cu_touch bumps */
/* called by an op (after its cu_touch) that reads x and writes neither x nor the forward's bf16
 * scratch (LoRA beside a matmul): the bf16 copy of x the matmul before it made stays valid for the
 * next matmul of the same input (q, k, v share one conversion) */
void cu_xbf_pass(lop_backend *be, const float *x);
/* the training ops' own state (NULL until they make it) */
void **cu_train_state(lop_backend *be);
/* LOP_CUDA_PROFILE: time a training op of kind TP_* */
enum { TP_MATMUL, TP_LORA, TP_NORM, TP_ROPE, TP_ATTN, TP_GLU, TP_EMBED, TP_HEAD, TP_XENT, TP_SUMSQ,
       TP_ADAMW, TP_ZERO, TP_N };
void cu_prof_begin(lop_backend *be);
void cu_prof_end(lop_backend *be, int kind);

/* backend_cuda_train.cu gives backend_cuda.cu: */
void cu_train_destroy(lop_backend *be);
/* a bf16 copy of a trainable (bemem, float32) weight, made once and rewritten by each AdamW step
 * (so a bf16 GEMM does not convert the matrix at every use); NULL with e set on failure */
const __nv_bfloat16 *cu_train_bf16_of(lop_backend *be, const lop_wref *w, lop_err *e);
/* device memory [p, p + n bytes) was written by other means: bf16 copies of it are stale */
void cu_train_written(lop_backend *be, const void *p, size_t n);

int cu_zero(lop_backend *be, void *p, size_t n, lop_err *e);
int cu_lora_forward(lop_backend *be, float *out, float *xa, float *tmp, const float *x,
                    const float *A, const float *B, int N, int IC, int OC, int r, float scale,
                    float dropout, uint64_t seed, uint64_t key, lop_gemm g, lop_err *e);
int cu_matmul_backward(lop_backend *be, float *din, float *dw, float *dbias, const float *dout,
                       const float *x, const lop_wref *w, int N, lop_gemm g, int overwrite, lop_err *e);
int cu_lora_backward(lop_backend *be, float *din, float *dA, float *dB, float *dxa, float *tmp,
                     const float *dout, const float *x, const float *xa, const float *A,
                     const float *B, int N, int IC, int OC, int r, float scale, float dropout,
                     uint64_t seed, uint64_t key, lop_gemm g, int overwrite, lop_err *e);
/* lora_matmul's adapter half: out = scale drop(x) A^T B^T (stored), xa kept; xb: the bf16 copy of
 * x the projection's GEMM reads (NULL: float32 x) */
int cu_lora_first(lop_backend *be, float *out, float *xa, float *tmp, const float *x,
                  const __nv_bfloat16 *xb, const float *A, const float *B, int N, int IC, int OC,
                  int r, float scale, float dropout, uint64_t seed, uint64_t key, lop_err *e);
int cu_rmsnorm_backward(lop_backend *be, float *dx, float *dw, const float *dout, const float *x,
                        const float *rstd, const lop_wref *w, int N, int C, int gemma, int overwrite,
                        lop_err *e);
int cu_rope_backward(lop_backend *be, float *dx, const float *cs, int N, int H, int D, lop_err *e);
int cu_attention_backward(lop_backend *be, const lop_attn_bwd_args *a, lop_err *e);
int cu_glu_backward(lop_backend *be, float *dgate, float *dup, const float *dh, const float *gate,
                    const float *up, size_t n, lop_act act, int overwrite, lop_gemm g, lop_err *e);
int cu_embed_backward(lop_backend *be, float *dtable, const float *dout, const int32_t *ids, int N,
                      int C, float scale, lop_err *e);
int cu_head_logits(lop_backend *be, float *logits, float *capped, const float *xn, int n,
                   const lop_wref *w, float softcap, lop_gemm g, lop_err *e);
int cu_head_backward(lop_backend *be, float *dxn, float *dw, float *dlogits, const float *capped,
                     const float *xn, int n, const lop_wref *w, float softcap, lop_gemm g,
                     lop_err *e);
int cu_xent(lop_backend *be, float *logits, const int32_t *targets, int n, int V, float gscale,
            double *loss_sum, int64_t *scored, lop_err *e);
int cu_grad_sumsq(lop_backend *be, double *out, const float *g, size_t n, lop_err *e);
int cu_adamw(lop_backend *be, float *p, float *g, float *m, float *v, const uint8_t *zero_bits,
             size_t n, float clip, double lr, const adamw_hp *hp, int64_t t, lop_err *e);
int cu_adamw_many(lop_backend *be, const lop_adamw_item *items, int n, float clip, double lr,
                  const adamw_hp *hp, int64_t t, lop_err *e);
#endif
