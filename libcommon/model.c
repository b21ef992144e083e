/* model.c — loading a model: open the tensors, parse the config, bind every weight the config
 * implies (checking its shape and that its dtype is a float type), free. */
#include "model.h"
#include "model_priv.h"
#include "nn.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *proj_names[PROJ_N] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                         "gate_proj", "up_proj", "down_proj"};
const char *lop_proj_name(lop_proj p) { return (unsigned)p < PROJ_N ? proj_names[p] : "?"; }

/* Bind name to r with the expected shape (cols == 0: a vector of rows elements). */
static int bind(lop_model *m, lop_wref *r, const char *name, int64_t rows, int64_t cols,
                int required, lop_err *e) {
    memset(r, 0, sizeof *r);
    int i = st_find(m->st, name);
    if (i < 0) return required ? lop_fail(e, "tensor %s is missing", name) : 0;
    const st_info *t = &m->st->info[i];
    if (!st_dtype_is_float(t->dtype))
        return lop_fail(e, "tensor %s has dtype %s, not a float type", name, st_dtype_name(t->dtype));
    int ok = cols ? (t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols)
                  : (t->ndim == 1 && t->shape[0] == rows);
    if (!ok) {
        char got[128] = "";
        int len = 0;
        for (int d = 0; d < t->ndim && len < 100; d++)
            len += snprintf(got + len, sizeof got - len, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        if (cols)
            return lop_fail(e, "tensor %s has shape [%s], expected [%lld, %lld]", name, got,
                            (long long)rows, (long long)cols);
        return lop_fail(e, "tensor %s has shape [%s], expected [%lld]", name, got, (long long)rows);
    }
    r->data = m->st->data[i];
    r->dtype = t->dtype;
    r->rows = cols ? rows : 1;
    r->cols = cols ? cols : rows;
    r->name = t->name;
    return 0;
}

static int bind_layer(lop_model *m, int l, lop_err *e) {
    const lop_config *c = &m->cfg;
    lop_layer_w *w = &m->layers[l];
    int C = c->hidden, FF = c->inter, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    char n[256];
#define NAME(s) (config_tensor_name(c, l, s, n, sizeof n), n)
    int64_t shape[PROJ_N][2] = {{qd, C}, {kd, C}, {kd, C}, {C, qd}, {FF, C}, {FF, C}, {C, FF}};
    static const char *pn[PROJ_N] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight", "self_attn.o_proj.weight", "mlp.gate_proj.weight",
        "mlp.up_proj.weight", "mlp.down_proj.weight"};
    for (int p = 0; p < PROJ_N; p++)
        if (bind(m, &w->proj[p], NAME(pn[p]), shape[p][0], shape[p][1], 1, e)) return -1;
    if (bind(m, &w->vec[LVEC_ATTN_NORM], NAME("input_layernorm.weight"), C, 0, 1, e)) return -1;
    if (c->gemma) {
        if (bind(m, &w->vec[LVEC_POST_ATTN_NORM], NAME("post_attention_layernorm.weight"), C, 0, 1, e) ||
            bind(m, &w->vec[LVEC_MLP_NORM], NAME("pre_feedforward_layernorm.weight"), C, 0, 1, e) ||
            bind(m, &w->vec[LVEC_POST_MLP_NORM], NAME("post_feedforward_layernorm.weight"), C, 0, 1, e))
            return -1;
    } else if (bind(m, &w->vec[LVEC_MLP_NORM], NAME("post_attention_layernorm.weight"), C, 0, 1, e)) {
        return -1;
    }
    if (c->qk_norm &&
        (bind(m, &w->vec[LVEC_Q_NORM], NAME("self_attn.q_norm.weight"), c->head_dim, 0, 1, e) ||
         bind(m, &w->vec[LVEC_K_NORM], NAME("self_attn.k_norm.weight"), c->head_dim, 0, 1, e)))
        return -1;
    if (c->attn_bias &&
        (bind(m, &w->vec[LVEC_Q_BIAS], NAME("self_attn.q_proj.bias"), qd, 0, 1, e) ||
         bind(m, &w->vec[LVEC_K_BIAS], NAME("self_attn.k_proj.bias"), kd, 0, 1, e) ||
         bind(m, &w->vec[LVEC_V_BIAS], NAME("self_attn.v_proj.bias"), kd, 0, 1, e)))
        return -1;
    if (c->o_bias && bind(m, &w->vec[LVEC_O_BIAS], NAME("self_attn.o_proj.bias"), C, 0, 1, e))
        return -1;
    if (c->mlp_bias &&
        (bind(m, &w->vec[LVEC_GATE_BIAS], NAME("mlp.gate_proj.bias"), FF, 0, 1, e) ||
         bind(m, &w->vec[LVEC_UP_BIAS], NAME("mlp.up_proj.bias"), FF, 0, 1, e) ||
         bind(m, &w->vec[LVEC_DOWN_BIAS], NAME("mlp.down_proj.bias"), C, 0, 1, e)))
        return -1;
#undef NAME
    return 0;
}

static int check_config(const lop_config *c, lop_err *e) {
    if (c->hidden <= 0 || c->inter <= 0 || c->n_layers < 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->head_dim <= 0 || c->vocab <= 0)
        return lop_fail(e, "config: sizes must be positive");
    if (c->n_heads % c->n_kv_heads)
        return lop_fail(e, "config: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                        c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 || c->head_dim > NN_MAX_HEAD_DIM)
        return lop_fail(e, "config: head_dim %d must be even and at most %d", c->head_dim, NN_MAX_HEAD_DIM);
    return 0;
}

int lop_model_from_st(lop_model **out, st_model *st, const char *config_json, int take_st,
                      lop_err *e) {
    *out = NULL;
    if (!config_json) config_json = st->config_json;
    if (!config_json) {
        if (take_st) st_close(st);
        return lop_fail(e, "no config.json (neither in the folder nor in the stream's metadata)");
    }
    lop_model *m = calloc(1, sizeof *m);
    engine_priv *p = calloc(1, sizeof *p);
    if (!m || !p) {
        free(m); free(p);
        if (take_st) st_close(st);
        return lop_fail(e, "out of memory");
    }
    m->st = st;
    m->owns_st = take_st;
    m->priv = p;
    if (config_parse(&m->cfg, config_json, e)) { free(p); free(m); if (take_st) st_close(st); return -1; }
    p->cfg_ok = 1;
    const lop_config *c = &m->cfg;
    char n[256];
    if (check_config(c, e)) goto fail;
    {   /* more layers in the tensors than in the config: refused (fewer: bind names the missing) */
        const char **names = malloc(sizeof(char *) * (st->n ? st->n : 1));
        if (!names) { lop_fail(e, "out of memory"); goto fail; }
        for (int i = 0; i < st->n; i++) names[i] = st->info[i].name;
        int bad = config_check_layer_count(c, names, st->n, e);
        free(names);
        if (bad) goto fail;
    }
    m->layers = calloc(c->n_layers ? c->n_layers : 1, sizeof *m->layers);
    if (!m->layers) { lop_fail(e, "out of memory"); goto fail; }
    config_tensor_name(c, -1, "embed_tokens.weight", n, sizeof n);
    if (bind(m, &m->embed, n, c->vocab, c->hidden, 1, e)) goto fail;
    config_tensor_name(c, -1, "norm.weight", n, sizeof n);
    if (bind(m, &m->final_norm, n, c->hidden, 0, 1, e)) goto fail;
    if (c->tied) {
        m->head = m->embed;
    } else if (bind(m, &m->head, c->head_name, c->vocab, c->hidden, 0, e)) {
        goto fail;
    } else if (!m->head.data) { /* transformers ties a missing head to the embedding */
        m->head = m->embed;
    }
    for (int l = 0; l < c->n_layers; l++)
        if (bind_layer(m, l, e)) goto fail;
    if (engine_init(m, e)) goto fail;
    *out = m;
    return 0;
fail:
    lop_model_free(m);
    return -1;
}

int lop_model_open(lop_model **out, const char *path, lop_err *e) {
    st_model *st;
    *out = NULL;
    if (st_open(&st, path, e)) return -1;
    if (lop_model_from_st(out, st, NULL, 1, e)) return lop_wrap(e, "%s", path);
    return 0;
}

void lop_model_free(lop_model *m) {
    if (!m) return;
    engine_priv *p = m->priv;
    engine_free(m);
    if (p && p->cfg_ok) config_free(&m->cfg);
    free(p);
    free(m->layers);
    if (m->owns_st) st_close(m->st);
    free(m);
}

lop_wref *lop_weight(lop_model *m, int layer, lop_proj p) {
    if (!m || layer < 0 || layer >= m->cfg.n_layers || (unsigned)p >= PROJ_N) return NULL;
    return &m->layers[layer].proj[p];
}

lop_wref *lop_layer_vec(lop_model *m, int layer, lop_lvec v) {
    if (!m || layer < 0 || layer >= m->cfg.n_layers || (unsigned)v >= LVEC_N) return NULL;
    return &m->layers[layer].vec[v];
}

double lop_forward_flops(const lop_model *m, int64_t n, double ctx) {
    const lop_config *c = &m->cfg;
    double C = c->hidden, FF = c->inter, qd = (double)c->n_heads * c->head_dim,
           kd = (double)c->n_kv_heads * c->head_dim;
    double per_layer = 2.0 * (C * qd * 2 + C * kd * 2 + 3 * C * FF) /* matmuls */
                       + 4.0 * ctx * qd;                             /* q.k and p.v */
    return (double)n * (per_layer * c->n_layers + 2.0 * C * c->vocab);
}

size_t lop_act_bytes(const lop_model *m) {
    const engine_priv *p = m ? m->priv : NULL;
    return p ? p->arena_cap * sizeof(float) : 0;
}
