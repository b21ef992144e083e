/* config.h — config.json -> the architecture every tool uses (Llama, Qwen2, Qwen3, Gemma 3 text).
 * Keeps the parsed JSON so that writing a config back keeps every key a tool did not change, in
 * order. */
#ifndef LOP_CONFIG_H
#define LOP_CONFIG_H
#include <stdint.h>
#include <cjson/cJSON.h>
#include "arch.h"
#include "err.h"

typedef enum { ROPE_DEFAULT, ROPE_LINEAR, ROPE_LLAMA3 } lop_rope_type;

typedef struct lop_rope {
    double theta;            /* base */
    lop_rope_type type;
    double factor;           /* linear / llama3 */
    double low_freq_factor, high_freq_factor; /* llama3 */
    int original_max_pos;    /* llama3: original_max_position_embeddings */
} lop_rope;

typedef struct lop_config {
    lop_arch arch;
    const lop_family *family; /* the architecture table's row (arch.h) */
    char model_type[64];     /* as written: "llama", "qwen2", "qwen3", "gemma3_text", "gemma3" */
    int vocab, hidden, inter, n_layers, n_heads, n_kv_heads, head_dim, max_pos;
    double eps;              /* rms_norm_eps */
    int tied;                /* tie_word_embeddings: lm_head is embed_tokens */
    int attn_bias;           /* q/k/v (and for llama's attention_bias also o) biases */
    int o_bias;              /* o_proj bias (llama attention_bias only) */
    int mlp_bias;            /* llama mlp_bias */
    int qk_norm;             /* per-head RMSNorm of q and k (Qwen3, Gemma 3) */
    int gemma;               /* Gemma norms x*(1+w), sqrt(hidden) embedding scale, 4 norms/layer */
    lop_act act;
    double attn_scale;       /* softmax scale: query_pre_attn_scalar^-0.5 (Gemma) or head_dim^-0.5 */
    double attn_softcap;     /* 0: none */
    double final_softcap;    /* 0: none */
    int sliding_window;      /* tokens a sliding layer sees (incl. itself); 0: none */
    uint8_t *layer_sliding;  /* [n_layers] 1 = sliding-window attention layer */
    lop_rope rope_full;      /* full-attention layers (and all layers of non-Gemma models) */
    lop_rope rope_local;     /* sliding layers (Gemma 3: rope_local_base_freq, no scaling) */
    int bos_id, eos_id, pad_id; /* -1 when absent (eos: the first of a list) */
    char prefix[64];         /* tensor name prefix, e.g. "model." or "language_model.model." */
    char head_name[96];      /* lm_head tensor name, e.g. "lm_head.weight" */
    cJSON *json;             /* the whole config.json (text config for "gemma3": see text_json) */
    cJSON *text_json;        /* the object the text fields came from (json or json.text_config) */
} lop_config;

/* Parse; fails with a message naming a missing key or an unknown model_type. Keys a config may
 * omit take the family's transformers default (a gemma3 text_config often has only a few).
 * Number literals are kept, so config_to_json writes 1000000.0 back as 1000000.0. */
int config_parse(lop_config *c, const char *json_text, lop_err *e);
void config_free(lop_config *c);
/* "model.layers.3.self_attn.q_proj.weight" for (3, "self_attn.q_proj.weight"); layer < 0: the
 * prefix alone ("model.embed_tokens.weight" for (-1, "embed_tokens.weight")). */
void config_tensor_name(const lop_config *c, int layer, const char *suffix, char *buf, int len);
/* The full names of a model's tensors, from the architecture table (arch.h):
 * projection p of a layer, per-layer vector v ("" and 0 when this model has none), the embedding,
 * the final norm. The head's name is c->head_name. */
const char *config_proj_name(const lop_config *c, int layer, lop_proj p, char *buf, int len);
const char *config_vec_name(const lop_config *c, int layer, lop_lvec v, char *buf, int len);
const char *config_embed_name(const lop_config *c, char *buf, int len);
const char *config_final_norm_name(const lop_config *c, char *buf, int len);
/* Whether this model has per-layer vector v (its family's row and the config's bias keys). */
int config_has_vec(const lop_config *c, lop_lvec v);
/* Shapes: projection p is [rows, cols] (PyTorch's [out_features, in_features]); vector v has
 * config_vec_len elements. */
void config_proj_shape(const lop_config *c, lop_proj p, int64_t *rows, int64_t *cols);
int64_t config_vec_len(const lop_config *c, lop_lvec v);
/* Layer index of a tensor name ("...layers.N...."), or -1. *rest points after "layers.N.". */
int config_tensor_layer(const lop_config *c, const char *name, const char **rest);
/* Set prefix and head_name from the checkpoint's own names (the one ending in
 * "embed_tokens.weight"): multimodal Gemma 3 checkpoints differ ("language_model.model." in hub
 * files, "model.language_model." in newer ones). 0 if found, -1 if not (prefix unchanged). */
/* The tensors (names[n]) hold no layer past the config's num_hidden_layers (missing layers are
 * found when the tensors are bound): a config and weights that disagree are an error. */
int config_check_layer_count(const lop_config *c, const char *const *names, int n, lop_err *e);
int config_detect_prefix(lop_config *c, const char *const *names, int n);
/* Keep only layers keep[0..n) (sorted, distinct): num_hidden_layers, an explicit layer_types with
 * each kept layer's own type, and every other per-layer list in the JSON updated.
 * - layer_types is written whenever types were implied (Gemma's sliding_window_pattern, Qwen's
 *   use_sliding_window + max_window_layers) so that each kept layer keeps its attention type.
 * - Qwen2/3: max_window_layers becomes the number of kept layers below it (the kept layers that
 *   used full attention are still the first ones), unless it was past the last layer already.
 * - Any other list of num_hidden_layers entries (except architectures and the token ids) is subset too. */
int config_keep_layers(lop_config *c, const int *keep, int n, lop_err *e);
/* Serialize the JSON back (2-space indent as transformers writes, keys in their order, numbers
 * as written unless changed), ending with a newline; malloc'd. */
char *config_to_json(const lop_config *c);
/* Exact parameter count implied by the config (embedding, head if untied, layers, norms). */
int64_t config_param_count(const lop_config *c);
int64_t config_layer_param_count(const lop_config *c);
#endif
