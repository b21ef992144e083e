/* train_priv.h — the trainer's private state (train_model.c: parameters and the optimizer;
 * train_step.c: a step's forward through the engine and its backward). */
#ifndef LOP_TRAIN_PRIV_H
#define LOP_TRAIN_PRIV_H
#include "backend.h"
#include "model.h"
#include "train.h"

typedef struct tr_priv {
    lop_model *lm;            /* the engine's model over the same tensors: its forward, backend */
    lop_backend *be;
    int L, embed, head, fnorm;
    int (*proj)[PROJ_N];      /* [L][7] param index */
    int (*vec)[LVEC_N];       /* [L][LVEC_N] param index or -1 */
    int (*lora)[PROJ_N];      /* [L][7] index of lora_A (lora_B = +1), or -1 */
    lop_adapter *ad;          /* [L * PROJ_N] the adapters the forward applies, or NULL */
    /* every float32 array in two backend allocations: wa the values (64-byte aligned per
     * parameter), sa the gradients, then the first and second moments, ga_n floats each (the
     * padding stays 0: one zeroing and one norm reduction cover them all) */
    float *wa, *sa;
    size_t ga_n;
    /* the batch of the last forward (packed: B sequences of T tokens) */
    int B, T, N;
    int *len;                 /* [len_cap] = T */
    int len_cap;
    lop_batch lb;
    lop_fwd_opts fo;          /* the options of the last forward (a recompute repeats them) */
    /* the backward's scratch (backend memory), laid out for grad_N rows */
    float *gbuf;
    size_t gbuf_cap;          /* floats */
    size_t gbuf_peak;         /* bytes, largest so far */
    int grad_N;
    float *dres, *dA, *dxn, *dq, *dk, *dv, *dq_raw, *dk_raw, *datt, *dgate, *dup, *dh, *dxa;
    float *logits, *capped;   /* [chunk, V] */
    int chunk;                /* head rows per chunk */
} tr_priv;

#define P(m) ((tr_priv *)(m)->priv)

/* array `which` (TR_W, TR_G, TR_M, TR_V) of parameter i (backend memory), or NULL */
static inline float *tr_param_array(const tr_model *m, int i, int which) {
    if (i < 0 || i >= m->np) return NULL;
    const tr_param *p = &m->p[i];
    return which == TR_W ? p->w : which == TR_G ? p->g : which == TR_M ? p->m : which == TR_V ? p->v : NULL;
}

/* gradient of parameter i, NULL when frozen (or i < 0) */
static inline float *tr_grad_of(tr_model *m, int i) {
    return i >= 0 && m->p[i].trainable ? m->p[i].g : NULL;
}
#endif
