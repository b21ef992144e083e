/* layers.h — depth surgery on a tensor stream: which source layers become which output layers
 * (dropped, kept, or several merged into one), the plan that says how every output tensor is made
 * from input tensors, and a streaming executor over st_reader -> st_writer.
 *
 * Names: a layer tensor is "<prefix>N.<rest>", prefix e.g. "model.layers." (config prefix +
 * "layers."); output layer j is renamed "<prefix>j.<rest>". Other tensors are copied unchanged.
 *
 * Merging (LaCo): output layer j made from source layers A..B. The "merged" tensors (the weights
 * and biases of q/k/v/o/gate/up/down_proj and the q/k norms) are combined in float32 and rounded
 * back to A's dtype (round to nearest even):
 *   LMERGE_RDSC     acc = θ_A; for k = A+1..B: acc = acc + (θ_k − θ_A)      (the paper's equation)
 *   LMERGE_AVERAGE  acc = θ_A; for k = A+1..B: acc = acc + θ_k; acc = acc / (B−A+1)
 *   LMERGE_REPLACE  acc = θ_A; for k = A+1..B: acc = acc + (θ_k − acc)       (official LaCo code's
 *                   in-place update: ends as θ_B up to rounding)
 * Every other tensor of the group (the layer norms) is layer A's.
 *
 * Streaming: an output tensor is written when the last of its inputs arrives, so outputs are
 * ordered by that arrival; inputs needed later are held in memory until then. Memory: a copy, a
 * drop or a rename holds nothing; a merge holds its group's merged tensors. */
#ifndef LOP_LAYERS_H
#define LOP_LAYERS_H
#include <stdint.h>
#include "err.h"
#include "config.h"
#include "safetensors.h"

typedef enum { LMERGE_RDSC, LMERGE_AVERAGE, LMERGE_REPLACE } lop_merge_rule;

/* Output layer j is made of source layers first[j]..last[j] (first == last: a plain copy).
 * Groups are in increasing order and do not overlap; source layers in no group are dropped. */
typedef struct lop_layer_map {
    int n_src;             /* layers of the source */
    int n_out;             /* layers written */
    int *first, *last;     /* [n_out] */
} lop_layer_map;

/* keep[0..n) sorted distinct -> a map of copies. */
int layer_map_keep(lop_layer_map *m, int n_src, const int *keep, int n, lop_err *e);
/* Merge groups (first[i]..last[i], i < ng, sorted, disjoint, inside [0, n_src)) and keep every
 * other layer. */
int layer_map_merge(lop_layer_map *m, int n_src, const int *first, const int *last, int ng,
                    lop_err *e);
void layer_map_free(lop_layer_map *m);
/* The source layer index each output layer takes its type from (first[j]): [n_out], malloc'd. */
int *layer_map_bases(const lop_layer_map *m);

/* "<prefix>N.rest" -> N (and *rest), else -1. */
int layer_of_name(const char *name, const char *prefix, const char **rest);
/* Find the layer prefix of a model without a config: the "...layers." followed by "N." used by
 * the most tensors; *n_layers = largest N + 1. Fails if no tensor has one. */
int layer_find_prefix(const st_info *infos, int n, char *prefix, int len, int *n_layers,
                      lop_err *e);
/* 1 if a layer tensor's rest ("self_attn.q_proj.weight") is combined when layers merge. */
int layer_rest_merged(const char *rest);

typedef enum { PLAN_COPY, PLAN_MERGE } lop_plan_op;

typedef struct lop_plan_item {
    st_info info;          /* output name (owned), dtype, shape, nbytes */
    lop_plan_op op;
    int nsrc;              /* 1 for a copy */
    int *src;              /* [nsrc] input tensor indices, src[0] the base (layer A) */
    int ready;             /* the largest src: written as soon as it arrives */
    int layer_out;         /* output layer, or -1 for a non-layer tensor */
} lop_plan_item;

typedef struct lop_plan {
    int n;                 /* output tensors, in write order */
    lop_plan_item *item;
    st_info *out_infos;    /* [n] the items' infos side by side (for st_writer_open) */
    int n_in;
    int *last_use;         /* [n_in] the last item reading input i, or -1 (input not used) */
    lop_merge_rule rule;
    int64_t params_in, params_out;  /* elements of every input / output tensor */
    int n_src_layers;
    int64_t *layer_params; /* [n_src_layers] elements of each source layer's tensors */
} lop_plan;

/* Build the plan for infos[0..n_in) (in stream order). Fails, naming the tensor, on a layer index
 * >= map->n_src, a merged tensor missing from a member layer or of another shape/dtype, a
 * non-float merged tensor. */
int layer_plan_build(lop_plan *p, const st_info *infos, int n_in, const char *prefix,
                     const lop_layer_map *map, lop_merge_rule rule, lop_err *e);
void layer_plan_free(lop_plan *p);
/* Read every tensor from r (which must yield inputs 0..n_in-1 in order), write the plan's outputs
 * to w (opened with p->out_infos). progress (may be NULL) is called after each input with the
 * bytes read so far. */
int layer_plan_run(const lop_plan *p, st_reader *r, st_writer *w,
                   void (*progress)(void *user, uint64_t bytes), void *user, lop_err *e);

/* Merge n float tensors of numel elements (in[k] of dtype dt[k], in[0] the base) by rule into out
 * (dtype odt), in float32, blockwise (no scratch). Exposed for tools that merge in memory
 * (layer-merge --laco). odt may be ST_F32 to keep the float32 result. */
int layer_merge_tensor(void *out, st_dtype odt, const void *const *in, const st_dtype *dt, int n,
                       uint64_t numel, lop_merge_rule rule, lop_err *e);

/* ---- a whole rewrite: model in, plan, config, model out (layer-drop, layer-merge) ---- */
typedef struct lop_surgery {
    st_reader *r;
    const st_info *infos;  /* the input's tensors, in stream order */
    int n;
    int has_cfg;           /* the input carries a config.json (folder file or stream metadata) */
    lop_config cfg;        /* parsed config (has_cfg) */
    char prefix[256];      /* layer tensor prefix ("model.layers.") */
    int n_layers;          /* from the config, else from the tensor names */
} lop_surgery;
/* Open path (folder, file, "-") for streaming and find its layers. */
int surgery_open(lop_surgery *s, const char *path, lop_err *e);
/* Build the plan for map, update the config (config_keep_layers with each output layer's base,
 * so a Gemma layer keeps its own attention type), and stream everything to out. *plan stays
 * filled for reporting (free with layer_plan_free). */
int surgery_write(lop_surgery *s, const lop_layer_map *map, lop_merge_rule rule, const char *out,
                  const st_write_opts *wo, lop_plan *plan,
                  void (*progress)(void *user, uint64_t bytes), void *user, lop_err *e);
void surgery_close(lop_surgery *s);

/* ---- choosing layers by score (layer-score's JSON lines) ---- */
typedef struct lop_scores {
    int n_layers;          /* size of score[] */
    double *score;         /* [n_layers] per-layer score, NaN when the file has none */
    int n_blocks;
    int *block_start, *block_n;  /* [n_blocks] */
    double *block_score;
    char metric[32];
} lop_scores;
/* Read {"layer","metric","score"} and {"start","n","metric","score"} lines (other lines, e.g. a
 * summary without those keys, are skipped). Errors: unreadable or malformed lines, a layer out of
 * [0, n_layers), a layer twice, mixed metrics, no score at all. */
int layer_scores_read(lop_scores *s, const char *path, int n_layers, lop_err *e);
void layer_scores_free(lop_scores *s);
/* The k layers to drop: the k lowest per-layer scores (ties: the later layer), or, for a file
 * of block scores only, the block of n == k with the lowest score. *out sorted, malloc'd. */
int layer_scores_pick(const lop_scores *s, int k, int **out, lop_err *e);
#endif
