/* model_priv.h — the engine's private state and the model files' internal calls (model*.c only). */
#ifndef LOP_MODEL_PRIV_H
#define LOP_MODEL_PRIV_H
#include "model.h"
#include "backend.h"

typedef struct engine_priv {
    int cfg_ok;              /* cfg was parsed (free it) */
    float *inv_full;         /* [D/2] rope inverse frequencies, full-attention layers */
    float *inv_local;        /* [D/2] sliding layers (Gemma 3's local base) */
    lop_backend *be;         /* where the forward runs (backend.h); the CPU's unless set_device */
    float *arena;            /* activations, in the backend's memory */
    size_t arena_cap;        /* floats */
    size_t arena_peak;       /* floats: the largest arena laid out so far (kept across releases) */
    int *ibuf;               /* off[B+1], pos[N], seq[N] */
    size_t ibuf_cap;         /* ints */
    int64_t *att_off;        /* [B] */
    int att_off_cap;
    float *stage;            /* host copies of device activations for hooks */
    size_t stage_cap;        /* floats */
    int gemm;                /* lop_gemm in effect (lop_model_set_gemm) */
    int gemm_req;            /* lop_gemm asked for (re-checked when the device changes) */
} engine_priv;

/* model.c: bind every weight the config implies (m->st, m->cfg set) */
int model_bind(lop_model *m, lop_err *e);
/* model_forward.c: the engine's state (rope tables, the CPU backend) and its release */
int engine_init(lop_model *m, lop_err *e);
void engine_free(lop_model *m);
#endif
