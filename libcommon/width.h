/* width.h — width pruning (Minitron / OptiPFair style): which MLP neurons, attention heads and
 * hidden channels a model keeps, how every tensor is sliced to match, and the config that says so.
 *
 * A selection (lop_width) holds, per layer, the kept MLP neurons, query heads and KV heads, and
 * once for the model the kept hidden channels; every list is sorted ascending (the kept units keep
 * their order). A tensor's slicing follows from its name through the architecture table's axes
 * (arch.h: arch_layer_axes, arch_model_axes; width_tensor_spec): e.g. q_proj.weight [Hq*D, C]
 * keeps the rows of the kept query heads and the columns of the kept channels.
 * Slicing copies bytes in the stored dtype (exact); the only arithmetic is Gemma's embedding
 * rescale when hidden_size changes (width_gemma_scale below).
 *
 * Counts are uniform over layers (transformers' Llama / Qwen / Gemma 3 configs have one
 * intermediate_size, num_attention_heads and num_key_value_heads); the choice is per layer.
 * libcommon rules: errors as values, no printing. */
#ifndef LOP_WIDTH_H
#define LOP_WIDTH_H
#include <stdint.h>
#include "config.h"
#include "dtype.h"
#include "err.h"
#include "safetensors.h"

/* Weight-only neuron scores (OptiPFair, pruning/mlp_glu.py), per row of gate_proj and up_proj,
 * summed over the two:  MAW (PPM): max(w) + |min(w)|;  VOW: variance (n-1 denominator, as
 * torch.var);  PON: L1 norm. Heads (lop's extension): the same statistic of each of the head's
 * q_proj rows and o_proj columns, summed. */
typedef enum { WIDTH_ACTIVATION, WIDTH_MAW, WIDTH_VOW, WIDTH_PON } lop_width_imp;
const char *width_imp_name(lop_width_imp m);
int width_imp_parse(const char *s, lop_width_imp *out);   /* -1 if unknown */

typedef struct lop_width {
    int L, C, F, Hq, Hkv, D;   /* the source's sizes (F: intermediate_size) */
    int nc, ni, nq, nkv;       /* kept counts: channels, neurons, query heads, KV heads */
    int *hid;                  /* [nc] kept channels (NULL until chosen; nc == C: all) */
    int **mlp;                 /* [L] -> [ni] kept neurons of layer l (NULL: not chosen yet) */
    int **qh;                  /* [L] -> [nq] kept query heads */
    int **kvh;                 /* [L] -> [nkv] kept KV heads */
} lop_width;

/* Sizes from the config, kept counts as asked (0: keep all). Checks: 1 <= counts <= sizes,
 * nq a multiple of nkv, nq/nkv <= Hq/Hkv (errors LOP_EUSAGE, one line). */
int width_init(lop_width *w, const lop_config *c, int nc, int ni, int nq, int nkv, lop_err *e);
void width_free(lop_width *w);

/* The k highest of score[0..n) (ties: the lower index), written sorted ascending to keep[k]. */
int width_topk(const double *score, int n, int k, int *keep, lop_err *e);
/* Heads: choose nkv of Hkv KV groups by the sum of their query heads' scores, then nq/nkv query
 * heads in each kept group by their own score. qscore[Hq]. */
int width_pick_heads(const lop_width *w, const double *qscore, int *qkeep, int *kvkeep, lop_err *e);

/* Per-row (by_col 0) or per-column (by_col 1) statistic of a [rows, cols] matrix in its stored
 * dtype, ADDED to out[rows or cols] (double). */
int width_stat(lop_width_imp m, const void *w, st_dtype dt, int64_t rows, int64_t cols, int by_col,
               double *out, lop_err *e);

/* How one tensor is sliced. */
typedef enum { WSEL_ALL, WSEL_HIDDEN, WSEL_MLP, WSEL_QHEADS, WSEL_KVHEADS } lop_wsel;
typedef enum { WOP_NONE, WOP_EMBED_SCALE, WOP_GEMMA_FINAL_NORM } lop_wop;
typedef struct lop_wspec {
    int layer;          /* -1: not a layer tensor */
    lop_wsel sel[2];    /* dim 0, dim 1 (1-D tensors use sel[0]) */
    lop_wop op;
    int needs_mlp, needs_heads;   /* needs layer's MLP / head choice before it can be written */
} lop_wspec;
/* The slicing of a tensor by name and shape; fails naming the tensor when a known tensor has an
 * unexpected shape, or when hidden channels are pruned and an unknown tensor has a dimension of
 * hidden_size (it could not be sliced consistently). */
int width_tensor_spec(const lop_width *w, const lop_config *c, const st_info *t, lop_wspec *s,
                      lop_err *e);
/* The output shape of t under s (fills o->shape, o->nbytes; name and dtype copied). */
void width_out_info(const lop_width *w, const st_info *t, const lop_wspec *s, st_info *o);
/* Slice t's bytes `in` into `out` (o->nbytes) as s says; applies s->op (scale = the factor). */
int width_slice(const lop_width *w, const st_info *t, const lop_wspec *s, const void *in, void *out,
                double scale, lop_err *e);

/* Gemma multiplies embeddings by sqrt(hidden_size): keeping nc of C channels the embedding table
 * is multiplied by sqrt(C/nc) so that the scaled embeddings stay the same; with tied embeddings
 * the final norm's (1 + w) is divided by the same factor so the logits stay the same too. */
double width_gemma_scale(const lop_width *w);

/* The config for the selection: intermediate_size, num_attention_heads, num_key_value_heads,
 * hidden_size; head_dim written explicitly whenever heads or channels change (families that
 * derive it from hidden_size / num_attention_heads would otherwise change it). */
int width_config_apply(lop_config *c, const lop_width *w, lop_err *e);
#endif
