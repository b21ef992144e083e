/* kernels.cuh — the CUDA backend's own kernels (kernels.cu, attention.cu, head.cu): launchers
 * over device pointers on a stream, shapes beside every pointer, llm.c style. Each launcher
 * returns cudaSuccess or the launch error. Everything the GEMMs do not do is here. */
#ifndef LOP_CUDA_KERNELS_CUH
#define LOP_CUDA_KERNELS_CUH
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <stdint.h>

/* element types of device weights (st_dtype's float types as stored) */
enum { KDT_F32 = 0, KDT_BF16 = 1, KDT_F16 = 2 };

/* dst[n] (float32) = src[n] of type dt */
cudaError_t k_to_f32(float *dst, const void *src, int dt, size_t n, cudaStream_t s);
/* dst[n] (bf16, round to nearest even) = src[n] of type dt (KDT_F32 / KDT_F16 / KDT_BF16) */
cudaError_t k_to_bf16(__nv_bfloat16 *dst, const void *src, int dt, size_t n, cudaStream_t s);
/* out[N, C] = table[ids[n]] * scale; table [V, C] of type dt */
cudaError_t k_embed(float *out, const int32_t *ids, const void *table, int dt, int N, int C,
                    float scale, cudaStream_t s);
/* out[N, C] = x * rstd * w (gemma: * (1 + w)); rstd[N] (may be NULL) = 1/sqrt(mean x^2 + eps),
 * the mean of squares in double as the CPU kernel; out_bf16 (or NULL): the same rounded to bf16
 * (the next bf16 GEMM's input, written in the same pass); out NULL: the bf16 copy only */
cudaError_t k_rmsnorm(float *out, float *rstd, const float *x, const float *w, int N, int C,
                      float eps, int gemma, __nv_bfloat16 *out_bf16, cudaStream_t s);
/* qk-norm then RoPE in one pass: out[N, H*D] = rope(rmsnorm of each head of x), the float ops of
 * k_rmsnorm then k_rope_apply in the same order; D in {64, 128, 256} (k_qk_norm_rope_supports) */
int k_qk_norm_rope_supports(int D);
cudaError_t k_qk_norm_rope(float *out, float *rstd, const float *x, const float *w, const float *cs,
                           int N, int H, int D, float eps, int gemma, cudaStream_t s);
/* cs[N, D]: cos(pos[n] * inv[i]) for i < D/2, then sin (angles in double) */
cudaError_t k_rope_table(float *cs, const int *pos, const float *inv, int N, int D, cudaStream_t s);
/* x[N, H*D] rotated in place by cs[N, D] (rotate_half pairs i, i + D/2) */
cudaError_t k_rope_apply(float *x, const float *cs, int N, int H, int D, cudaStream_t s);
/* h[n] = act(gate[n]) * up[n]; act 0 SiLU, 1 GELU (tanh); h_bf16 (or NULL): h rounded to bf16 */
cudaError_t k_glu(float *h, const float *gate, const float *up, size_t n, int act,
                  __nv_bfloat16 *h_bf16, cudaStream_t s);
/* the same from bf16 gate/up: h (float32, may be NULL) and h_bf16 (required) */
cudaError_t k_glu_bf16(float *h, const __nv_bfloat16 *gate, const __nv_bfloat16 *up, size_t n,
                       int act, __nv_bfloat16 *h_bf16, cudaStream_t s);
/* out[n] = a[n] + b[n] */
cudaError_t k_add(float *out, const float *a, const float *b, size_t n, cudaStream_t s);
/* flag[0] = 1 if any of x[n] is NaN or Inf (flag left alone otherwise) */
cudaError_t k_nonfinite(const float *x, size_t n, int *flag, cudaStream_t s);
/* out[N, OC] += bias[OC] */
cudaError_t k_add_bias(float *out, const float *bias, int N, int OC, cudaStream_t s);
/* dst[r, C] = src[row[r], C] for r < R */
cudaError_t k_gather_rows(float *dst, const float *src, const int *row, int R, int C, cudaStream_t s);
/* kv cache write: for packed row n of sequence seq[n] at position pos[n]:
 * cache[(seq[n] * max_t + pos[n]) * kd ..] = src[n * kd ..] */
cudaError_t k_kv_store(float *cache, const float *src, const int *seq, const int *pos, int N,
                       int kd, int max_t, cudaStream_t s);

/* ---- attention (attention.cu) ---- */
typedef struct attn_seq_d {
    long long kbase;  /* element offset of key position 0 of this sequence in k/v */
    int qoff;         /* first packed row of its queries */
    int T;            /* queries */
    int q0;           /* position of its first query (cached keys before it) */
    int pad;
} attn_seq_d;
typedef struct attn_tile_d { int b, t0; } attn_tile_d; /* a block of up to 64 queries */
#define ATTN_BQ 64
/* Flash-style causal attention, float32, online softmax, no [T, Tk] matrix anywhere: one block
 * per (query tile, head); keys of rows k/v at stride ldk = Hkv*D from seqs[b].kbase.
 * window > 0: last `window` keys; softcap > 0: scores = softcap * tanh(s / softcap).
 * out [N, Hq*D]. D <= 256. */
cudaError_t k_attention(float *out, const float *q, const float *k, const float *v,
                        const attn_seq_d *seqs, const attn_tile_d *tiles, int ntiles, int Hq,
                        int Hkv, int D, float scale, int window, float softcap, cudaStream_t s);

/* The same on tensor cores (attention_mma.cu), for --gemm bf16: q, k, v rounded to bf16, scores,
 * softmax and output accumulation in float32. D in {64, 128, 256} (k_attention_bf16_supports).
 * out_bf16 (or NULL): out rounded to bf16; out NULL: that copy only. */
int k_attention_bf16_supports(int D);
cudaError_t k_attention_bf16(float *out, const float *q, const float *k, const float *v,
                             const attn_seq_d *seqs, const attn_tile_d *tiles, int ntiles, int Hq,
                             int Hkv, int D, float scale, int window, float softcap,
                             __nv_bfloat16 *out_bf16, cudaStream_t s);

/* ---- head (head.cu) ---- */
/* per selected row running reductions over vocabulary chunks */
typedef struct head_state_d {
    double sum;       /* sum of exp(logit - mx) */
    float mx;         /* running max */
    float tlogit;     /* the target's logit (NaN until seen) */
    float amax;       /* best logit */
    int amax_id;      /* its id (lowest on ties) */
} head_state_d;
cudaError_t k_head_init(head_state_d *st, int R, cudaStream_t s);
/* logits lg[R, nv] of vocab ids v0..: softcap in place (cap > 0), then fold into st[r];
 * target[r] (-1: none). discard: nothing reads the chunk afterwards, so its L2 lines are dropped
 * without a write-back (a chunk small enough to stay in L2 then never reaches memory) */
cudaError_t k_head_reduce(float *lg, head_state_d *st, const int32_t *target, int R, int nv,
                          int v0, float cap, int discard, cudaStream_t s);
#endif
