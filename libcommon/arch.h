/* arch.h — the architecture table: one row per model family (Llama, Qwen2, Qwen3, Gemma 3) with
 * its Hugging Face tensor names, the per-layer vectors it has, its norm conventions, its attention
 * types and the transformers defaults of the config keys it may omit.
 *
 * The only place a family is described. config.c reads a row to parse config.json; model loading
 * (model.c), training (train_model.c), layer surgery (layers.c: drop, merge) and model-card read the
 * names from here. Adding a family (Mistral, Gemma 2) means a row in arch.c and whatever kernel its
 * layer needs; nothing else spells a tensor name (tests/structure.bats checks it).
 *
 * Names: a layer tensor is <prefix>layers.<N>.<suffix> ("model.layers.3.self_attn.q_proj.weight"),
 * a model-level tensor <prefix><suffix> ("model.embed_tokens.weight"); the prefix is the config's
 * (config.h: "model.", or "language_model.model." for multimodal Gemma 3 checkpoints). */
#ifndef LOP_ARCH_H
#define LOP_ARCH_H
#include <stdint.h>

typedef enum { ARCH_LLAMA, ARCH_QWEN2, ARCH_QWEN3, ARCH_GEMMA3, ARCH_N } lop_arch;
typedef enum { ACT_SILU, ACT_GELU_TANH } lop_act;
/* RoPE as configured (config.c fills it; nn_rope.c builds its tables) */
typedef enum { ROPE_DEFAULT, ROPE_LINEAR, ROPE_LLAMA3 } lop_rope_type;

typedef struct lop_rope {
    double theta;            /* base */
    lop_rope_type type;
    double factor;           /* linear / llama3 */
    double low_freq_factor, high_freq_factor; /* llama3 */
    int original_max_pos;    /* llama3: original_max_position_embeddings */
} lop_rope;


/* The linear projections of a layer, in the order a layer uses them. */
typedef enum lop_proj {
    PROJ_Q, PROJ_K, PROJ_V, PROJ_O, PROJ_GATE, PROJ_UP, PROJ_DOWN, PROJ_N
} lop_proj;

/* Every other per-layer tensor (norm weights and biases), in the order they are loaded (and
 * trained: the trainer's parameter order, hence its gradient-norm sums, follow it). */
typedef enum lop_lvec {
    LVEC_ATTN_NORM,      /* the attention's input norm [C] */
    LVEC_POST_ATTN_NORM, /* Gemma: norm of the attention output [C] (before the residual add) */
    LVEC_MLP_NORM,       /* the MLP's input norm [C] */
    LVEC_POST_MLP_NORM,  /* Gemma: norm of the MLP output [C] */
    LVEC_Q_NORM,         /* per-head q norm [D] (Qwen3, Gemma 3) */
    LVEC_K_NORM,         /* per-head k norm [D] */
    LVEC_Q_BIAS, LVEC_K_BIAS, LVEC_V_BIAS, /* [Hq*D], [Hkv*D], [Hkv*D] */
    LVEC_O_BIAS,         /* [C] */
    LVEC_GATE_BIAS, LVEC_UP_BIAS, LVEC_DOWN_BIAS, /* [I], [I], [C] */
    LVEC_N
} lop_lvec;

/* The bias vector of projection p (LVEC_Q_BIAS .. LVEC_DOWN_BIAS, in lop_proj's order). */
static inline lop_lvec arch_proj_bias(lop_proj p) { return (lop_lvec)(LVEC_Q_BIAS + (int)p); }

/* When a per-layer vector exists: always, or when the config turns the biases on. */
typedef enum { ARCH_NEVER = 0, ARCH_ALWAYS, ARCH_IF_ATTN_BIAS, ARCH_IF_O_BIAS, ARCH_IF_MLP_BIAS } arch_when;

typedef struct arch_vec {
    const char *suffix;  /* "input_layernorm.weight" */
    arch_when when;
    int merged;          /* combined when layers merge (LaCo): projections' biases, q/k norms */
} arch_vec;

/* How a family assigns sliding-window attention to layers when config.json has no layer_types. */
typedef enum {
    ARCH_SLIDING_NONE,          /* every layer full attention (Llama) */
    ARCH_SLIDING_PATTERN,       /* Gemma 3: sliding unless (i+1) % sliding_window_pattern == 0;
                                   sliding_window defaults to 4096 */
    ARCH_SLIDING_MAX_WINDOW,    /* Qwen: with use_sliding_window, sliding from max_window_layers on */
} arch_sliding;

typedef struct lop_family {
    lop_arch arch;
    const char *model_type;  /* config.json "model_type" ("gemma3_text"; "gemma3" wraps it) */
    const char *hf_class;    /* transformers' causal-LM class */
    /* transformers' defaults for keys a config may omit */
    long vocab, inter, layers, heads;
    long kv_heads;           /* 0: num_attention_heads */
    long head_dim;           /* 0: hidden_size / num_attention_heads */
    long max_pos;
    int tied;
    double rope_theta;
    int sizes_optional;      /* vocab/intermediate/heads may be omitted (Gemma 3's text_config) */
    const char *act_key;     /* "hidden_act" or "hidden_activation" (falls back to hidden_act) */
    const char *act_default;
    /* conventions */
    int norm_one_plus_w;     /* RMSNorm scales by (1 + w) (Gemma), else by w */
    int embed_scale;         /* embeddings scaled by sqrt(hidden) (Gemma) */
    int qk_norm;             /* per-head RMSNorm of q and k */
    int qkv_bias;            /* q/k/v always biased (Qwen2), whatever attention_bias says */
    int attention_bias_key;  /* honours "attention_bias" (q/k/v/o biases) */
    int mlp_bias_key;        /* honours "mlp_bias" */
    int query_pre_attn_scalar; /* softmax scale from query_pre_attn_scalar (Gemma), else head_dim */
    int softcaps;            /* attn_logit_softcapping / final_logit_softcapping keys */
    int local_rope;          /* sliding layers have their own rope (rope_local_base_freq, unscaled) */
    arch_sliding sliding;
    int harness_bos;         /* lm-evaluation-harness adds a BOS token for this family (Gemma) */
    /* a multimodal config that holds this family's config as "text_config" */
    const char *wrapper_type;  /* its model_type ("gemma3"), or NULL */
    const char *wrapper_prefix;/* what its checkpoints put before the text model's names */
    /* tensor names */
    const char *prefix;        /* the text model's prefix ("model.") */
    const char *proj[PROJ_N];  /* module path of each projection, without ".weight" */
    arch_vec vec[LVEC_N];      /* per-layer vectors ({NULL, ARCH_NEVER}: the family has none) */
    const char *embed;         /* model-level suffixes */
    const char *final_norm;
    const char *head;          /* beside the prefix, not under it ("lm_head.weight") */
} lop_family;

/* The row for a model_type ("llama", "qwen2", "qwen3", "gemma3_text"), or NULL. */
const lop_family *arch_family_find(const char *model_type);
const lop_family *arch_family(lop_arch a);
/* The row whose wrapper_type is model_type ("gemma3" -> Gemma 3's), or NULL. */
const lop_family *arch_family_wrapping(const char *model_type);
/* "llama, qwen2, qwen3, gemma3_text, gemma3" for messages (static). */
const char *arch_family_list(void);

/* Projection names: "self_attn.q_proj.weight" (layer suffix), "q_proj" (PEFT's module name). */
const char *arch_proj_suffix(const lop_family *f, lop_proj p, char *buf, int len);
const char *arch_proj_module(lop_proj p);
/* "q" .. "down": the short names tools accept in lists (--lora-targets q,k,v). */
const char *arch_proj_short(lop_proj p);

/* 1 if the per-layer tensor named by its layer suffix ("self_attn.q_proj.weight",
 * "mlp.down_proj.bias") is combined when layers merge, in any family. */
int arch_suffix_merged(const char *suffix);
/* The projection whose weight a layer suffix names in family f ("mlp.gate_proj.weight" ->
 * PROJ_GATE), or -1. */
int arch_suffix_proj(const lop_family *f, const char *suffix);

/* ---- width slicing (width.c, width-prune): what each dimension of a tensor indexes ----
 * A projection [out, in] or a vector [n] is sliced along an axis by the kept units of that axis:
 * hidden channels (hidden_size), MLP neurons (intermediate_size), query heads (Hq*head_dim rows or
 * columns, a head's head_dim at a time) or KV heads (Hkv*head_dim); ARCH_AXIS_HEAD_DIM (the q/k
 * norms' [head_dim]) and ARCH_AXIS_WHOLE (the vocabulary) are never sliced. The axes follow a
 * tensor's role (lop_proj, lop_lvec, the model-level tensors), which a family's row names. */
typedef enum {
    ARCH_AXIS_WHOLE, ARCH_AXIS_HIDDEN, ARCH_AXIS_FFN, ARCH_AXIS_QHEADS, ARCH_AXIS_KVHEADS,
    ARCH_AXIS_HEAD_DIM
} arch_axis;
/* The axes of family f's layer tensor named by its suffix ("self_attn.o_proj.weight" ->
 * {HIDDEN, QHEADS}): returns its number of dimensions (2 for a projection's weight, 1 for a
 * vector), 0 if f has no such layer tensor. */
int arch_layer_axes(const lop_family *f, const char *suffix, arch_axis axes[2]);
/* The model-level tensors: the embedding and the head [vocab, hidden], the final norm [hidden]. */
typedef enum { ARCH_EMBED, ARCH_FINAL_NORM, ARCH_HEAD } arch_model_tensor;
int arch_model_axes(arch_model_tensor t, arch_axis axes[2]);
#endif
