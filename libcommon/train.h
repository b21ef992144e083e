/* train.h — the training engine: a trainable Llama / Qwen2 / Qwen3 / Gemma 3 model on the one
 * model core (its forward is the engine's, model_forward.c, keeping the activations the backward
 * reads; LoRA and dropout are options of that forward), the backward pass and AdamW through the
 * backend seam (backend.h), output and checkpoints.
 *
 * Usage (heal-sft, kd-train):
 *     tr_model *m;  tr_opts o = TR_OPTS_DEFAULT;            // full fine-tune
 *     if (tr_open(&m, "model_dir", &o, seed, &e)) ...
 *     for each optimizer step s (1-based):
 *         tr_zero_grad(m);
 *         for each micro-batch: tr_forward_backward(m, &batch, 1.0f/step_tokens, loss, ctx, &st, &e);
 *         double norm = sqrt(tr_grad_sumsq(m));             // before clipping
 *         tr_adamw_step(m, lr, &hp, s, clip_factor(norm, clip));
 *     tr_save(m, "out_dir", merge_lora, &e);
 *
 * The loss is pluggable (grad.h, tr_loss_fn): the head computes the final logits a chunk of rows
 * at a time (never B*T*V floats), hands them to the loss with the rows' targets, and the loss
 * returns its sum and writes d(loss)/d(logits) in place; the engine backpropagates from there.
 * tr_xent_loss is the default; kd-train passes its own (teacher logits via ctx, rows via row0).
 *
 * Memory: full fine-tuning keeps float32 master weights, gradients and the two AdamW states of
 * every parameter (16 bytes/parameter) plus activations (per layer; with recompute only each
 * layer's input). LoRA keeps the base matrices memory-mapped in their stored dtype (converted to
 * float32 one matrix at a time; the embedding row by row, the head in blocks of vocabulary rows)
 * and float32 copies of the small tensors only.
 */
#ifndef LOP_TRAIN_H
#define LOP_TRAIN_H
#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "err.h"
#include "model.h"
#include "grad.h"
#include "optim.h"
#include "safetensors.h"

/* Projections a LoRA may target: bit p (lop_proj, arch.h) of tr_opts.lora_targets; PEFT's module
 * names are arch_proj_module(p).
 * "q,k,v,o,gate,up,down" (or "all", or full names "q_proj,...") -> bit mask; -1 if unknown */
int tr_parse_targets(const char *s, unsigned *mask, lop_err *e);

typedef struct tr_opts {
    int lora_rank;          /* 0: full fine-tuning */
    double lora_alpha;      /* scale = alpha / rank */
    double lora_dropout;    /* on the LoRA branch's input */
    unsigned lora_targets;  /* bit mask of PROJ_Q.. */
    int keep_sparsity;      /* weights exactly zero in the input stay zero (full fine-tuning) */
    int recompute;          /* keep only each layer's input; recompute the layer in the backward */
    int decay_vectors;      /* weight decay on norm weights and biases too (plain torch AdamW over
                               model.parameters()); 0: matrices only, as transformers' Trainer */
    const char *device;     /* where it trains: NULL or "cpu", "cuda", "cuda:N" (backend.h) */
    lop_gemm gemm;          /* precision of the matrix products (LOP_GEMM_F32: float32
                               throughout; BF16: bf16 operands, float32 accumulation, masters
                               and optimizer states stay float32) */
} tr_opts;
#define TR_OPTS_DEFAULT ((tr_opts){.lora_alpha = 16.0, .lora_targets = 0x7f, .keep_sparsity = 1})

/* One parameter tensor (model weight or LoRA matrix). */
typedef struct tr_param {
    char *name;             /* tensor name as saved ("model.layers.0.mlp.up_proj.weight" or PEFT's) */
    int64_t rows, cols;     /* vectors: rows = 1 */
    size_t n;
    int st_index;           /* index in the source st_model, -1 for LoRA matrices */
    st_dtype dtype;         /* stored dtype */
    const void *src;        /* stored bytes (mmap'd), NULL for LoRA */
    /* backend memory (host memory on the cpu; device memory on a GPU: read and write them there
     * through tr_param_read / tr_param_write): */
    float *w;               /* float32 values (NULL: frozen matrix read from src on demand) */
    float *g, *m, *v;       /* gradient and AdamW states (trainable only) */
    uint8_t *zero_bits;     /* sparsity mask (bit set: held at zero) or NULL */
    int trainable;
    int decay;              /* weight decay applies */
} tr_param;

typedef struct tr_batch {
    int B, T;                 /* B sequences of T tokens */
    const int32_t *ids;       /* [B*T] */
    const int32_t *targets;   /* [B*T] next token of each position, -1: not scored */
} tr_batch;

typedef struct tr_stats { double loss_sum; int64_t scored; } tr_stats;

typedef struct tr_model tr_model;
struct tr_model {
    lop_config cfg;
    st_model *st;
    tr_opts opt;
    int np;                 /* parameters */
    tr_param *p;            /* [np]: model tensors, then LoRA A/B pairs */
    int64_t trainable_params;
    void *priv;
};

/* path: an HF folder or .safetensors file. Validates every tensor the config implies. */
int tr_open(tr_model **out, const char *path, const tr_opts *o, uint64_t seed, lop_err *e);
void tr_free(tr_model *m);
int tr_find(const tr_model *m, const char *name); /* parameter index or -1 */
/* Host copies of parameter i's arrays (which: TR_W values, TR_G gradient, TR_M, TR_V the AdamW
 * moments; p->n floats): read downloads from a device, write uploads (and a device drops what it
 * derived from the old values). On the cpu they are plain copies. */
enum { TR_W, TR_G, TR_M, TR_V };
int tr_param_read(const tr_model *m, int i, int which, float *dst, lop_err *e);
int tr_param_write(tr_model *m, int i, int which, const float *src, lop_err *e);
/* where it trains ("cpu", "cuda:0"), the precision its products run in, and the most device
 * memory in use so far (bytes; 0 on the cpu) */
const char *tr_device(const tr_model *m);
lop_gemm tr_gemm(const tr_model *m);
size_t tr_device_peak(const tr_model *m);

void tr_zero_grad(tr_model *m);
/* Forward and backward of one micro-batch; gradients ACCUMULATE (call tr_zero_grad per step).
 * gscale multiplies every gradient (1/tokens of the optimizer step: a mean over the step).
 * loss NULL: tr_xent_loss. dropout_seed: reproducible LoRA dropout masks. */
int tr_forward_backward(tr_model *m, const tr_batch *b, float gscale, tr_loss_fn loss, void *ctx,
                        uint64_t dropout_seed, tr_stats *st, lop_err *e);
/* Forward only (evaluation): the loss sum and scored rows (no dropout). */
int tr_eval_batch(tr_model *m, const tr_batch *b, tr_loss_fn loss, void *ctx, tr_stats *st,
                  lop_err *e);
/* Teachers (kd-train; additive): a forward without the head that keeps the final normed hidden
 * states, then the final logits out[n, V] (softcapped) of rows row0..row0+n-1 of that forward.
 * A frozen teacher: tr_open with lora_rank 1 and lora_targets 0 (no adapter, nothing trainable,
 * matrices stay memory-mapped) and recompute 1 (one layer's activations at a time). */
int tr_forward_hidden(tr_model *m, const tr_batch *b, lop_err *e);
/* out is m's backend memory (tr_mem_alloc; host memory on the cpu); on a device the rows are
 * complete when it returns (another model's stream may read them) */
int tr_head_rows(tr_model *m, int64_t row0, int n, float *out, lop_err *e);
/* bytes of m's backend memory (NULL: out of memory), and its release */
void *tr_mem_alloc(tr_model *m, size_t bytes);
void tr_mem_release(tr_model *m, void *p);
int tr_mem_download(tr_model *m, void *dst, const void *src, size_t bytes, lop_err *e);
/* Every trainable gradient is one array of tr_grad_floats(m) floats in backend memory (padding
 * between tensors stays 0). Buffers of that size, for summing micro-batches (train_tree.h):
 * tr_grad_get: dst = the gradients (add: dst += them); tr_grad_add: a += b; tr_grad_put: the
 * gradients = src; tr_grad_host: a host view of buf (itself on the cpu, else downloaded into
 * host) and tr_grad_from_host its way back. Elementwise float adds: the same bits anywhere. */
size_t tr_grad_floats(const tr_model *m);
float *tr_grad_alloc(tr_model *m);
void tr_grad_release(tr_model *m, float *buf);
int tr_grad_get(tr_model *m, float *dst, int add, lop_err *e);
int tr_grad_add(tr_model *m, float *a, const float *b, lop_err *e);
int tr_grad_put(tr_model *m, const float *src, lop_err *e);
float *tr_grad_host(tr_model *m, float *buf, float *host, lop_err *e);
int tr_grad_from_host(tr_model *m, float *buf, const float *host, lop_err *e);
int tr_host_mem(const tr_model *m);   /* 1: parameters and gradients are host memory (the cpu) */
/* Sum of squares of every trainable gradient (global norm = sqrt). */
double tr_grad_sumsq(const tr_model *m);
/* Scale gradients by clip (1: none), then AdamW step t (1-based) with learning rate lr. */
void tr_adamw_step(tr_model *m, double lr, const adamw_hp *hp, int64_t t, double clip);
/* FLOPs of one forward+backward of n tokens at context T (6*params*n + attention). */
double tr_step_flops(const tr_model *m, int64_t n, int T);

/* Give back the activation buffers (they are laid out again by the next forward): before saving,
 * so writing the model never adds its conversion buffers on top of the training peak. */
void tr_release_acts(tr_model *m);
/* Bytes of the largest activation arena laid out so far (the "+ activations" of the memory
 * budget: 16 bytes/parameter for full fine-tuning plus this). */
size_t tr_act_bytes(const tr_model *m);

/* Output. Full: an HF folder in the source dtype. LoRA: merge ? the merged HF folder : a PEFT
 * adapter folder (adapter_model.safetensors with base_model.model.<module>.lora_{A,B}.weight,
 * adapter_config.json). Atomic (temp folder renamed). */
int tr_save(tr_model *m, const char *out_dir, int merge_lora, const char *base_path, lop_err *e);

/* Checkpoint: dir/state.safetensors (float32 trainable values and AdamW states) + dir/state.json
 * (caller's JSON: step, RNG, data position). Atomic. */
int tr_ckpt_save(const tr_model *m, const char *dir, const char *state_json, lop_err *e);
/* Loads values and states into m; *state_json malloc'd. */
int tr_ckpt_load(tr_model *m, const char *dir, char **state_json, lop_err *e);
#endif
