/* arch.c — the architecture table (arch.h): one row per family, as transformers defines it
 * (modeling_llama.py, modeling_qwen2.py, modeling_qwen3.py, modeling_gemma3.py and their
 * configuration_*.py defaults). */
#include "arch.h"
#include <stdio.h>
#include <string.h>

#define ATTN_PROJ "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"
#define MLP_PROJ "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"
#define PROJ_BIASES(qkv, o, mlp)                                                                   \
    [LVEC_Q_BIAS] = {"self_attn.q_proj.bias", qkv, 1}, [LVEC_K_BIAS] = {"self_attn.k_proj.bias", qkv, 1}, \
    [LVEC_V_BIAS] = {"self_attn.v_proj.bias", qkv, 1}, [LVEC_O_BIAS] = {"self_attn.o_proj.bias", o, 1},   \
    [LVEC_GATE_BIAS] = {"mlp.gate_proj.bias", mlp, 1}, [LVEC_UP_BIAS] = {"mlp.up_proj.bias", mlp, 1},     \
    [LVEC_DOWN_BIAS] = {"mlp.down_proj.bias", mlp, 1}
#define MODEL_TENSORS .prefix = "model.", .embed = "embed_tokens.weight", .final_norm = "norm.weight", .head = "lm_head.weight"

static const lop_family FAMILIES[ARCH_N] = {
    [ARCH_LLAMA] = {
        .arch = ARCH_LLAMA, .model_type = "llama", .hf_class = "LlamaForCausalLM",
        .vocab = 32000, .inter = 11008, .layers = 32, .heads = 32, .max_pos = 2048, .rope_theta = 10000.0,
        .act_key = "hidden_act", .act_default = "silu",
        .attention_bias_key = 1, .mlp_bias_key = 1, .sliding = ARCH_SLIDING_NONE,
        .proj = {ATTN_PROJ, MLP_PROJ},
        .vec = {[LVEC_ATTN_NORM] = {"input_layernorm.weight", ARCH_ALWAYS, 0},
                [LVEC_MLP_NORM] = {"post_attention_layernorm.weight", ARCH_ALWAYS, 0},
                PROJ_BIASES(ARCH_IF_ATTN_BIAS, ARCH_IF_O_BIAS, ARCH_IF_MLP_BIAS)},
        MODEL_TENSORS,
    },
    [ARCH_QWEN2] = {
        .arch = ARCH_QWEN2, .model_type = "qwen2", .hf_class = "Qwen2ForCausalLM",
        .vocab = 151936, .inter = 22016, .layers = 32, .heads = 32, .max_pos = 32768, .rope_theta = 10000.0,
        .act_key = "hidden_act", .act_default = "silu",
        .qkv_bias = 1, .sliding = ARCH_SLIDING_MAX_WINDOW,
        .proj = {ATTN_PROJ, MLP_PROJ},
        .vec = {[LVEC_ATTN_NORM] = {"input_layernorm.weight", ARCH_ALWAYS, 0},
                [LVEC_MLP_NORM] = {"post_attention_layernorm.weight", ARCH_ALWAYS, 0},
                PROJ_BIASES(ARCH_IF_ATTN_BIAS, ARCH_NEVER, ARCH_NEVER)},
        MODEL_TENSORS,
    },
    [ARCH_QWEN3] = {
        .arch = ARCH_QWEN3, .model_type = "qwen3", .hf_class = "Qwen3ForCausalLM",
        .vocab = 151936, .inter = 22016, .layers = 32, .heads = 32, .max_pos = 32768, .rope_theta = 10000.0,
        .act_key = "hidden_act", .act_default = "silu",
        .qk_norm = 1, .attention_bias_key = 1, .sliding = ARCH_SLIDING_MAX_WINDOW,
        .proj = {ATTN_PROJ, MLP_PROJ},
        .vec = {[LVEC_ATTN_NORM] = {"input_layernorm.weight", ARCH_ALWAYS, 0},
                [LVEC_MLP_NORM] = {"post_attention_layernorm.weight", ARCH_ALWAYS, 0},
                [LVEC_Q_NORM] = {"self_attn.q_norm.weight", ARCH_ALWAYS, 1},
                [LVEC_K_NORM] = {"self_attn.k_norm.weight", ARCH_ALWAYS, 1},
                PROJ_BIASES(ARCH_IF_ATTN_BIAS, ARCH_IF_O_BIAS, ARCH_NEVER)},
        MODEL_TENSORS,
    },
    [ARCH_GEMMA3] = {
        .arch = ARCH_GEMMA3, .model_type = "gemma3_text", .hf_class = "Gemma3ForCausalLM",
        .vocab = 262208, .inter = 9216, .layers = 26, .heads = 8, .kv_heads = 4, .head_dim = 256,
        .max_pos = 131072, .tied = 1, .rope_theta = 1000000.0, .sizes_optional = 1,
        .act_key = "hidden_activation", .act_default = "gelu_pytorch_tanh",
        .norm_one_plus_w = 1, .embed_scale = 1, .qk_norm = 1, .attention_bias_key = 1,
        .query_pre_attn_scalar = 1, .softcaps = 1, .local_rope = 1, .sliding = ARCH_SLIDING_PATTERN,
        .wrapper_type = "gemma3", .wrapper_prefix = "language_model.", .harness_bos = 1,
        .proj = {ATTN_PROJ, MLP_PROJ},
        .vec = {[LVEC_ATTN_NORM] = {"input_layernorm.weight", ARCH_ALWAYS, 0},
                [LVEC_POST_ATTN_NORM] = {"post_attention_layernorm.weight", ARCH_ALWAYS, 0},
                [LVEC_MLP_NORM] = {"pre_feedforward_layernorm.weight", ARCH_ALWAYS, 0},
                [LVEC_POST_MLP_NORM] = {"post_feedforward_layernorm.weight", ARCH_ALWAYS, 0},
                [LVEC_Q_NORM] = {"self_attn.q_norm.weight", ARCH_ALWAYS, 1},
                [LVEC_K_NORM] = {"self_attn.k_norm.weight", ARCH_ALWAYS, 1},
                PROJ_BIASES(ARCH_IF_ATTN_BIAS, ARCH_IF_O_BIAS, ARCH_NEVER)},
        MODEL_TENSORS,
    },
};

const lop_family *arch_family_find(const char *model_type) {
    for (int i = 0; i < ARCH_N; i++)
        if (model_type && !strcmp(model_type, FAMILIES[i].model_type)) return &FAMILIES[i];
    return NULL;
}

const lop_family *arch_family_wrapping(const char *model_type) {
    for (int i = 0; i < ARCH_N; i++)
        if (model_type && FAMILIES[i].wrapper_type && !strcmp(model_type, FAMILIES[i].wrapper_type))
            return &FAMILIES[i];
    return NULL;
}

const lop_family *arch_family(lop_arch a) { return (unsigned)a < ARCH_N ? &FAMILIES[a] : NULL; }

const char *arch_family_list(void) {
    static char buf[256];
    if (!buf[0]) {
        int n = 0;
        for (int i = 0; i < ARCH_N && n < (int)sizeof buf; i++)
            n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%s", i ? ", " : "", FAMILIES[i].model_type);
        for (int i = 0; i < ARCH_N && n < (int)sizeof buf; i++)
            if (FAMILIES[i].wrapper_type)
                n += snprintf(buf + n, sizeof buf - (size_t)n, ", %s", FAMILIES[i].wrapper_type);
    }
    return buf;
}

const char *arch_proj_suffix(const lop_family *f, lop_proj p, char *buf, int len) {
    snprintf(buf, (size_t)len, "%s.weight", (unsigned)p < PROJ_N ? f->proj[p] : "?");
    return buf;
}

/* PEFT's module names: the last component of the module path, the same in every family */
const char *arch_proj_module(lop_proj p) {
    if ((unsigned)p >= PROJ_N) return "?";
    const char *s = FAMILIES[0].proj[p], *dot = strrchr(s, '.');
    return dot ? dot + 1 : s;
}

const char *arch_proj_short(lop_proj p) {
    static const char *const shortn[PROJ_N] = {"q", "k", "v", "o", "gate", "up", "down"};
    return (unsigned)p < PROJ_N ? shortn[p] : "?";
}

int arch_suffix_merged(const char *suffix) {
    for (int i = 0; i < ARCH_N; i++) {
        const lop_family *f = &FAMILIES[i];
        for (int p = 0; p < PROJ_N; p++) {
            size_t n = strlen(f->proj[p]);
            if (!strncmp(suffix, f->proj[p], n) && suffix[n] == '.') return 1;
        }
        for (int v = 0; v < LVEC_N; v++) {
            const arch_vec *x = &f->vec[v];
            if (!x->suffix || !x->merged) continue;
            /* the module path: "self_attn.q_norm" of "self_attn.q_norm.weight" */
            const char *dot = strrchr(x->suffix, '.');
            size_t n = dot ? (size_t)(dot - x->suffix) : strlen(x->suffix);
            if (!strncmp(suffix, x->suffix, n) && suffix[n] == '.') return 1;
        }
    }
    return 0;
}

int arch_suffix_proj(const lop_family *f, const char *suffix) {
    for (int p = 0; f && p < PROJ_N; p++) {
        size_t n = strlen(f->proj[p]);
        if (!strncmp(suffix, f->proj[p], n) && !strcmp(suffix + n, ".weight")) return p;
    }
    return -1;
}

/* ---- width slicing: the axes of each role ---- */

/* a projection's weight [out_features, in_features] */
static const arch_axis PROJ_AXES[PROJ_N][2] = {
    [PROJ_Q] = {ARCH_AXIS_QHEADS, ARCH_AXIS_HIDDEN},  [PROJ_K] = {ARCH_AXIS_KVHEADS, ARCH_AXIS_HIDDEN},
    [PROJ_V] = {ARCH_AXIS_KVHEADS, ARCH_AXIS_HIDDEN}, [PROJ_O] = {ARCH_AXIS_HIDDEN, ARCH_AXIS_QHEADS},
    [PROJ_GATE] = {ARCH_AXIS_FFN, ARCH_AXIS_HIDDEN},  [PROJ_UP] = {ARCH_AXIS_FFN, ARCH_AXIS_HIDDEN},
    [PROJ_DOWN] = {ARCH_AXIS_HIDDEN, ARCH_AXIS_FFN},
};
/* a per-layer vector: norms over the residual stream, per-head q/k norms, a projection's bias
 * along its output */
static const arch_axis LVEC_AXIS[LVEC_N] = {
    [LVEC_ATTN_NORM] = ARCH_AXIS_HIDDEN, [LVEC_POST_ATTN_NORM] = ARCH_AXIS_HIDDEN,
    [LVEC_MLP_NORM] = ARCH_AXIS_HIDDEN,  [LVEC_POST_MLP_NORM] = ARCH_AXIS_HIDDEN,
    [LVEC_Q_NORM] = ARCH_AXIS_HEAD_DIM,  [LVEC_K_NORM] = ARCH_AXIS_HEAD_DIM,
    [LVEC_Q_BIAS] = ARCH_AXIS_QHEADS,    [LVEC_K_BIAS] = ARCH_AXIS_KVHEADS,
    [LVEC_V_BIAS] = ARCH_AXIS_KVHEADS,   [LVEC_O_BIAS] = ARCH_AXIS_HIDDEN,
    [LVEC_GATE_BIAS] = ARCH_AXIS_FFN,    [LVEC_UP_BIAS] = ARCH_AXIS_FFN,
    [LVEC_DOWN_BIAS] = ARCH_AXIS_HIDDEN,
};

int arch_layer_axes(const lop_family *f, const char *suffix, arch_axis axes[2]) {
    if (!f) return 0;
    int p = arch_suffix_proj(f, suffix);
    if (p >= 0) {
        axes[0] = PROJ_AXES[p][0];
        axes[1] = PROJ_AXES[p][1];
        return 2;
    }
    for (int v = 0; v < LVEC_N; v++)
        if (f->vec[v].suffix && !strcmp(suffix, f->vec[v].suffix)) {
            axes[0] = LVEC_AXIS[v];
            axes[1] = ARCH_AXIS_WHOLE;
            return 1;
        }
    return 0;
}

int arch_model_axes(arch_model_tensor t, arch_axis axes[2]) {
    axes[1] = ARCH_AXIS_WHOLE;
    switch (t) {
    case ARCH_EMBED:
    case ARCH_HEAD: axes[0] = ARCH_AXIS_WHOLE; axes[1] = ARCH_AXIS_HIDDEN; return 2;
    case ARCH_FINAL_NORM: axes[0] = ARCH_AXIS_HIDDEN; return 1;
    }
    return 0;
}
