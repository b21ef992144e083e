/* model.h — the forward engine: Llama, Qwen2, Qwen3 and Gemma 3 text models, float32 compute over
 * weights that stay memory-mapped in their stored dtype (each matrix converted to float32 as a
 * GEMM needs it, the lm_head in blocks of vocabulary rows).
 *
 * Batches are PACKED: B sequences of T_b tokens each are laid out one after the other, N = sum T_b
 * rows. Every activation is a row-major [N, width] float32 matrix whose row i is packed position i;
 * sequence b owns rows off[b] .. off[b]+T_b-1 (lop_batch.off). Attention never crosses sequences.
 *
 * Usage (ppl-like):
 *     lop_model *m;  if (lop_model_open(&m, path, &e)) die_err(&e);
 *     lop_batch b = {.B = 2, .len = lens, .ids = packed_ids};      // N = lens[0]+lens[1]
 *     lop_head_req h = {.target = tgt, .target_logprob = lp};      // tgt[i] = next token or -1
 *     if (lop_forward(m, &b, NULL, &h, &e)) die_err(&e);
 *     lop_model_free(m);
 *
 * Memory: never a float32 copy of the model, never B*T*V logits. The head is computed in blocks of
 * vocabulary rows (converted into a small f32 scratch, GEMM'd against all selected positions and
 * reduced on the fly to logsumexp / target log-prob / argmax / top-k).
 *
 * Threads: the engine uses OpenBLAS threads for GEMMs and OpenMP for everything else, one after the
 * other (never both at once); a tool sets both counts with tool_apply_threads().
 *
 * Backward (grad_*.c, heal-sft, kd-train): with lop_fwd_opts.keep_acts every layer's activations
 * stay addressable after lop_forward in m->acts (lop_acts below, shapes beside each buffer), and the
 * weights are reachable (and replaceable, e.g. by float32 trainable copies) through lop_weight().
 */
#ifndef LOP_MODEL_H
#define LOP_MODEL_H
#include <stdint.h>
#include "config.h"
#include "dtype.h"
#include "err.h"
#include "safetensors.h"

/* ---- weights ---- */

/* A view of one weight tensor in its stored dtype: a matrix [rows, cols] (row-major, PyTorch's
 * Linear layout: [out_features, in_features]) or a vector (rows = 1). data == NULL: absent. */
typedef struct lop_wref {
    const void *data;
    st_dtype dtype;
    int64_t rows, cols;
    const char *name;        /* full tensor name ("model.layers.3.mlp.up_proj.weight"), or NULL */
    int bemem;               /* data is backend memory the caller allocated with the backend's
                                alloc (the trainer's float32 trainable weights): used in place,
                                never copied to a device (backend.h) */
} lop_wref;

/* lop_proj (PROJ_Q..PROJ_DOWN) and lop_lvec (LVEC_*): arch.h, whose table names them. */
typedef struct lop_layer_w {
    lop_wref proj[PROJ_N]; /* q [Hq*D, C], k [Hkv*D, C], v [Hkv*D, C], o [C, Hq*D],
                              gate [I, C], up [I, C], down [C, I] */
    lop_wref vec[LVEC_N];
} lop_layer_w;

/* ---- activations (one arena per model, sized for the last forward) ---- */

/* Shapes: N packed rows, C hidden, Hq/Hkv heads, D head_dim, I intermediate.
 * Without keep_acts, only x_in of every layer (and the final buffers) are per layer; the other
 * pointers of all layers alias one shared scratch (valid only inside hooks of that layer; on a
 * device, a layer run without a linear_in hook may leave the GEMMs' inputs and the projections
 * feeding the residual unwritten: backend.h's optional fusions). */
typedef struct lop_layer_acts {
    float *x_in;      /* [N, C]     residual entering the layer (hidden state l) */
    float *rstd_attn; /* [N]        1/rms of x_in (input_layernorm) */
    float *xn_attn;   /* [N, C]     input_layernorm(x_in): the input of q/k/v_proj */
    float *q_raw;     /* [N, Hq*D]  q_proj output (+bias), before q_norm and rope */
    float *k_raw;     /* [N, Hkv*D] k_proj output (+bias), before k_norm and rope */
    float *q_rstd;    /* [N, Hq]    1/rms of each q head (qk_norm models), else unused */
    float *k_rstd;    /* [N, Hkv]   1/rms of each k head */
    float *q;         /* [N, Hq*D]  q after q_norm and rope (the attention's queries) */
    float *k;         /* [N, Hkv*D] k after k_norm and rope */
    float *v;         /* [N, Hkv*D] v_proj output (+bias) */
    float *att;       /* keep_acts only: softmax probabilities, per sequence b at att + att_off[b]:
                         [Hq, T_b, Tk_b] (Tk_b = keys seen: cached + T_b), masked entries 0 */
    float *att_out;   /* [N, Hq*D]  attention output (heads concatenated): the input of o_proj */
    float *o;         /* [N, C]     o_proj output (+bias), before Gemma's post-attention norm */
    float *rstd_post_attn; /* [N]   Gemma: 1/rms of o */
    float *x_mid;     /* [N, C]     residual after the attention block */
    float *rstd_mlp;  /* [N]        1/rms of x_mid (the MLP's input norm) */
    float *xn_mlp;    /* [N, C]     the MLP's normed input: the input of gate/up_proj */
    float *gate;      /* [N, I]     gate_proj output (+bias) */
    float *up;        /* [N, I]     up_proj output (+bias) */
    float *h;         /* [N, I]     act(gate) * up: the input of down_proj */
    float *mlp_out;   /* [N, C]     down_proj output (+bias), before Gemma's post-feedforward norm */
    float *rstd_post_mlp; /* [N]    Gemma: 1/rms of mlp_out */
    float *xa[PROJ_N];/* [N, r]     LoRA (lop_fwd_opts.adapters): drop(input) @ A^T of projection p,
                         kept for the backward; NULL where p has no adapter */
    /* the layer's output residual is the next layer's x_in, or lop_acts.x_final */
} lop_layer_acts;

typedef struct lop_acts {
    int N;               /* rows of the last forward */
    int keep;            /* the last forward kept every layer's activations */
    lop_layer_acts *layer; /* [n_layers] */
    int64_t *att_off;    /* [B] offsets of sequence b's probabilities in layer[l].att (keep only) */
    float *x_final;      /* [N, C] residual after the last layer (before the final norm) */
    float *rstd_final;   /* [N]    1/rms of x_final */
    float *xn_final;     /* [N, C] final norm output: the head's input (hidden state L) */
    float *rope_full;    /* [N, D] rope table of full-attention layers: per row cos[D/2], sin[D/2] */
    float *rope_local;   /* [N, D] the same for sliding layers (== rope_full unless Gemma 3) */
    float *lora_tmp;     /* [N, max input width] LoRA dropout scratch (adapters only), free for
                            the backward's use between forwards */
} lop_acts;

/* ---- the model ---- */

typedef struct lop_model {
    lop_config cfg;
    st_model *st;        /* the tensors (mmap'd) */
    int owns_st;         /* lop_model_free closes st */
    lop_wref embed;      /* embed_tokens [V, C] */
    lop_wref head;       /* lm_head [V, C] (== embed when tied) */
    lop_wref final_norm; /* norm [C] */
    lop_layer_w *layers; /* [n_layers] */
    lop_acts acts;       /* activations of the last forward */
    void *priv;          /* engine scratch, rope tables */
} lop_model;

/* Positions past the config's max_position_embeddings are an error of lop_forward (and of the
 * trainer's forward) unless allowed: a process-wide choice the tool layer makes from
 * --allow-long-context. Rope runs as the config describes (its rope_scaling included), unchanged
 * past the limit. */
void lop_allow_long_context(int on);
int lop_long_context_allowed(void);

/* Open path (HF folder, .safetensors file, "-") and parse its config. */
int lop_model_open(lop_model **out, const char *path, lop_err *e);
/* Bind an already-open st_model. config_json NULL: st->config_json. take_st: the model closes st
 * when freed. Checks every tensor the config implies exists with the right shape (error names it). */
int lop_model_from_st(lop_model **out, st_model *st, const char *config_json, int take_st,
                      lop_err *e);
void lop_model_free(lop_model *m);

/* Mutable access to a weight (layer < 0: the model-level tensors are m->embed / head / final_norm).
 * A caller may point a lop_wref at its own buffer (any float dtype, same shape) — e.g. masked
 * (Wanda), merged (LaCo) or trainable float32 weights; the caller keeps that buffer alive. */
lop_wref *lop_weight(lop_model *m, int layer, lop_proj p);
lop_wref *lop_layer_vec(lop_model *m, int layer, lop_lvec v);

/* ---- GEMM precision: an explicit per-model choice (default exact float32) ----
 * LOP_GEMM_BF16 runs every linear layer and the lm_head through the bf16 kernel (nn.h,
 * gemm_bf16.c): activations rounded to bf16, bf16 weights used as stored (f32/f16 ones rounded),
 * float32 accumulation. About 1.9x the GEMM rate on AVX512-BF16 CPUs; per-token log-probs move
 * by ~1e-2 nats (see docs/readme/04-bf16.md). Attention, norms and reductions stay float32. */
typedef enum lop_gemm { LOP_GEMM_F32 = 0, LOP_GEMM_BF16 = 1 } lop_gemm;
/* Set the mode; returns the mode in effect (LOP_GEMM_F32 when BF16 is asked of a CPU without
 * avx512_bf16: the float32 path is the fallback). */
lop_gemm lop_model_set_gemm(lop_model *m, lop_gemm g);
lop_gemm lop_model_gemm(const lop_model *m);
/* Parse "f32" / "bf16" (the tools' --gemm); -1 if neither. */
int lop_gemm_parse(const char *s, lop_gemm *out);

/* ---- a batch ---- */
typedef struct lop_batch {
    int B;                 /* sequences */
    const int *len;        /* [B] tokens of each sequence (T_b >= 1) */
    const int32_t *ids;    /* [N] packed token ids, N = sum len */
    /* filled by lop_forward (callers may leave them NULL / 0): */
    int N;
    const int *off;        /* [B+1] row offset of each sequence (off[B] = N) */
    const int *pos;        /* [N] position of each row (0-based; + kv cache length) */
    const int *seq;        /* [N] sequence of each row */
} lop_batch;

/* ---- hooks (all optional; return nonzero to abort the forward with an error) ---- */
typedef enum { LOP_RESID_IN = 0, LOP_RESID_OUT = 1 } lop_resid_where;

typedef struct lop_hooks {
    void *user;
    /* Residual stream x [N, C] entering (LOP_RESID_IN, = hidden state l) or leaving
     * (LOP_RESID_OUT, = hidden state l+1 before any final norm) layer l. The hook may modify x
     * (steering, ablations). Called for skipped layers too (then OUT == IN). */
    int (*resid)(void *user, int layer, lop_resid_where where, float *x, const lop_batch *b);
    /* Input X [rows, in] of linear projection p of layer l (tensor name = the weight's name), e.g.
     * for Wanda's per-column ||X_j||. q, k and v share one X (and gate/up): it is passed once per
     * projection. rows == N. */
    int (*linear_in)(void *user, int layer, lop_proj p, const char *name, const float *X,
                     int rows, int in, const lop_batch *b);
    /* The last residual h [N, C] (before the final norm) and hn [N, C] (after it). */
    int (*final)(void *user, const float *h, const float *hn, const lop_batch *b);
} lop_hooks;

/* ---- a KV cache for incremental decoding ----
 * The buffers live where the model runs (lop_model_set_device): host memory on the cpu, device
 * memory on a GPU (then read them only through lop_kv_copy). Make the cache after set_device. */
typedef struct lop_kv {
    int B, max_t;        /* sequences, positions each can hold */
    int n_layers;
    int *len;            /* [B] positions cached so far (host) */
    float **k, **v;      /* [n_layers] -> [B, max_t, Hkv*D] (post-norm, post-rope keys) */
    int64_t row;         /* Hkv*D */
    struct lop_backend *be; /* the backend that owns k/v */
} lop_kv;
int lop_kv_new(lop_kv **out, const lop_model *m, int B, int max_t, lop_err *e);
void lop_kv_reset(lop_kv *kv); /* len = 0 */
void lop_kv_free(lop_kv *kv);
/* Copy positions 0..n-1 of sequence si of src into sequence di of dst (every layer), e.g. a
 * shared prompt prefix; dst->len[di] is set to n. Both caches of one model. */
int lop_kv_copy(lop_kv *dst, int di, const lop_kv *src, int si, int n, lop_err *e);

/* ---- where the forward runs ----
 * "cpu" (default), "cuda" or "cuda:N" (a build with the CUDA backend: lop_backend_has_cuda()).
 * On a GPU the weights are uploaded once in their stored dtype (an error if they do not fit);
 * the GEMM mode asked of lop_model_set_gemm is kept. Activations (m->acts) then live in device
 * memory: read them through hooks, which always receive host copies. keep_acts (the trainer's
 * backward) needs a backend with the training ops (backend.h); one whose attention backward
 * recomputes the probabilities (lop_backend.att_recompute) keeps no att.
 * set_device = use_device (the backend only) + load_weights (every weight not already in backend
 * memory, lop_wref.bemem, uploaded in its stored dtype after a check that they fit): the trainer
 * binds its float32 parameters between the two. */
int lop_model_set_device(lop_model *m, const char *device, lop_err *e);
int lop_model_use_device(lop_model *m, const char *device, lop_err *e);
int lop_model_load_weights(lop_model *m, lop_err *e);
const char *lop_model_device(const lop_model *m); /* "cpu", "cuda:0" */
/* Device memory the model has used at most (weights, activations, scratch; cuBLAS's and the CUDA
 * context's own excepted), bytes; 0 on the cpu. */
size_t lop_model_device_peak(const lop_model *m);
/* A caller that changed weights in place, or pointed a lop_wref at new data that may reuse an
 * address it had before, tells the device backend to re-read every replaced weight. */
int lop_model_weights_changed(lop_model *m, lop_err *e);

/* ---- training: LoRA adapters in the one matmul path ----
 * Projection p of layer l with an adapter computes out = x @ W^T (+ bias) + scale * (drop(x) @
 * A^T) @ B^T, W frozen in its stored dtype (PEFT's LoRA; drop: lop_fwd_opts.dropout). */
typedef struct lop_adapter {
    const float *A;      /* [r, in] backend memory (float32); NULL: no adapter */
    const float *B;      /* [out, r] */
    int r;
    float scale;         /* alpha / r */
} lop_adapter;

/* What a forward keeps for a backward (lop_fwd_opts.keep_acts). */
enum {
    LOP_KEEP_NONE = 0,   /* only every layer's input (x_in); the rest is one shared scratch */
    LOP_KEEP_ALL = 1,    /* every layer's activations and attention probabilities */
    LOP_KEEP_INPUTS = 2  /* recompute: every layer's input and one shared set (probabilities
                            included) that lop_forward_layer refills for any layer */
};

/* ---- forward options ---- */
typedef struct lop_fwd_opts {
    const uint8_t *skip;  /* [n_layers] 1 = skip layer l (identity), or NULL */
    int layer_end;        /* run layers [0, layer_end) only, then stop (0: all; no final norm or
                             head unless layer_end == n_layers) */
    int keep_acts;        /* LOP_KEEP_*: what m->acts keeps for a backward pass */
    lop_kv *kv;           /* with a cache: sequence b's rows continue at position kv->len[b]
                             and attend to the cached keys; kv->len[b] += T_b after the call.
                             kv->B must equal batch B. */
    const lop_hooks *hooks;
    const lop_adapter *adapters; /* [n_layers * PROJ_N] LoRA adapters (A NULL: none), or NULL */
    float dropout;        /* LoRA dropout probability on the adapters' input (0: none) */
    uint64_t dropout_seed;/* its masks: backend.h's lop_dropout_keep(seed, l * PROJ_N + p + 1, i) */
} lop_fwd_opts;

/* ---- head outputs (per packed row; rows not selected are left untouched) ---- */
typedef struct lop_head_req {
    const uint8_t *select;  /* [N] 1 = compute the head at this row; NULL: every row */
    const int32_t *target;  /* [N] target id of each row (-1: none), or NULL */
    float *target_logprob;  /* [N] out: log softmax(logits)[target] (0 when target < 0) */
    float *lse;             /* [N] out: logsumexp(logits) */
    int32_t *argmax;        /* [N] out: greedy token */
    int topk;               /* k of the top-k outputs (0: none) */
    int32_t *topk_id;       /* [N, topk] out, by decreasing logit (ties: lower id first) */
    float *topk_logit;      /* [N, topk] out: their logits (log-prob = logit - lse) */
    const uint8_t *want_logits; /* [N] rows whose full logits are wanted (implies select), or NULL */
    float *logits;          /* [count of want_logits, V] out, in row order */
    /* Streaming: called once per vocabulary block with the logits [rows, nv] of vocab ids
     * v0..v0+nv-1 for the selected rows row[0..rows) (after final softcapping). Everything above
     * is computed from the same blocks; this is for anything else (KL against a teacher, ...). */
    int (*block)(void *user, int v0, int nv, const float *logits, int rows, const int *row);
    void *user;
} lop_head_req;

/* One forward over a batch. head NULL: no lm_head at all (hidden states / hooks only).
 * Errors: token id out of range, kv cache full, a hook's nonzero return, out of memory. */
int lop_forward(lop_model *m, lop_batch *b, const lop_fwd_opts *o, lop_head_req *head,
                lop_err *e);

/* Run layer l again over the batch of the last lop_forward (same b, same opts), refilling the
 * shared activations of a LOP_KEEP_INPUTS forward for the backward (--recompute). The layer's
 * output is written again (the same values). */
int lop_forward_layer(lop_model *m, lop_batch *b, int l, const lop_fwd_opts *o, lop_err *e);

/* Give back the activation arena (laid out again by the next lop_forward). */
void lop_model_release_acts(lop_model *m);

/* The backend the model runs on (backend.h), for a backward that runs beside the forward. */
struct lop_backend *lop_model_backend(const lop_model *m);

/* Floating-point operations of one forward of n rows attending to `ctx` keys on average
 * (matmuls + attention + head), for tokens/s -> GFLOP/s reports. */
double lop_forward_flops(const lop_model *m, int64_t n, double ctx);

/* Bytes of the activation arena the last lop_forward laid out (its peak so far): with the
 * weight files' size, the budget a forward pass's peak RSS is judged against. */
size_t lop_act_bytes(const lop_model *m);
#endif
