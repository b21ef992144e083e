/* model.c — binding a model's weights: every tensor the config implies (through the
 * architecture table), its shape checked and its dtype a float type. Below the engine: it calls
 * nothing of the forward (model_open.c puts the two together). */
#include "model.h"
#include "model_priv.h"
#include "nn.h" /* NN_MAX_HEAD_DIM: the kernels' head_dim limit */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Every per-layer tensor the architecture table (arch.h) gives this config. */
static int bind_layer(lop_model *m, int l, lop_err *e) {
    const lop_config *c = &m->cfg;
    lop_layer_w *w = &m->layers[l];
    char n[256];
    for (int p = 0; p < PROJ_N; p++) {
        int64_t rows, cols;
        config_proj_shape(c, (lop_proj)p, &rows, &cols);
        if (bind(m, &w->proj[p], config_proj_name(c, l, (lop_proj)p, n, sizeof n), rows, cols, 1, e)) return -1;
    }
    for (int v = 0; v < LVEC_N; v++)
        if (config_has_vec(c, (lop_lvec)v) &&
            bind(m, &w->vec[v], config_vec_name(c, l, (lop_lvec)v, n, sizeof n), config_vec_len(c, (lop_lvec)v), 0, 1, e))
            return -1;
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

int model_bind(lop_model *m, lop_err *e) {
    const lop_config *c = &m->cfg;
    const st_model *st = m->st;
    char n[256];
    if (check_config(c, e)) return -1;
    {   /* the prefix the tensors use (the trainer's rule too); more layers in the tensors than
         * in the config: refused (fewer: bind names the missing) */
        const char **names = malloc(sizeof(char *) * (st->n ? st->n : 1));
        if (!names) return lop_fail(e, "out of memory");
        for (int i = 0; i < st->n; i++) names[i] = st->info[i].name;
        config_detect_prefix(&m->cfg, names, st->n);
        int bad = config_check_layer_count(c, names, st->n, e);
        free(names);
        if (bad) return -1;
    }
    m->layers = calloc(c->n_layers ? c->n_layers : 1, sizeof *m->layers);
    if (!m->layers) return lop_fail(e, "out of memory");
    if (bind(m, &m->embed, config_embed_name(c, n, sizeof n), c->vocab, c->hidden, 1, e)) return -1;
    if (bind(m, &m->final_norm, config_final_norm_name(c, n, sizeof n), c->hidden, 0, 1, e)) return -1;
    if (c->tied) {
        m->head = m->embed;
    } else if (bind(m, &m->head, c->head_name, c->vocab, c->hidden, 0, e)) {
        return -1;
    } else if (!m->head.data) { /* transformers ties a missing head to the embedding */
        m->head = m->embed;
    }
    for (int l = 0; l < c->n_layers; l++)
        if (bind_layer(m, l, e)) return -1;
    return 0;
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
