/* model_priv.h — the engine's private state (model*.c only). */
#ifndef LOP_MODEL_PRIV_H
#define LOP_MODEL_PRIV_H
#include "model.h"

typedef struct engine_priv {
    int cfg_ok;              /* cfg was parsed (free it) */
    float *inv_full;         /* [D/2] rope inverse frequencies, full-attention layers */
    float *inv_local;        /* [D/2] sliding layers (Gemma 3's local base) */
    float *vec;              /* [LVEC_N * maxvec] float32 copies of one layer's vectors */
    int maxvec;
    float *arena;            /* activations */
    size_t arena_cap;        /* floats */
    int *ibuf;               /* off[B+1], pos[N], seq[N] */
    size_t ibuf_cap;         /* ints */
    int64_t *att_off;        /* [B] */
    int att_off_cap;
    struct attn_seq *aseq;   /* [B] attention work of one layer */
    int aseq_cap;
    int gemm;                /* lop_gemm in effect (lop_model_set_gemm) */
} engine_priv;

int engine_init(lop_model *m, lop_err *e);
void engine_free(lop_model *m);
/* The head over rows of xn [N, C]; see lop_head_req. */
int head_forward(lop_model *m, const float *xn, int N, lop_head_req *h, lop_err *e);
#endif
