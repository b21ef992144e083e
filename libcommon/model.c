/* model.c — model loading and the forward pass (stubs until the engine lands; the API in model.h
 * is stable). */
#include "model.h"
#include <stdlib.h>

static const char *proj_names[PROJ_N] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                         "gate_proj", "up_proj", "down_proj"};
const char *lop_proj_name(lop_proj p) { return (unsigned)p < PROJ_N ? proj_names[p] : "?"; }

int lop_model_open(lop_model **out, const char *path, lop_err *e) {
    *out = NULL;
    return lop_fail(e, "%s: the forward engine is not implemented yet", path);
}

int lop_model_from_st(lop_model **out, st_model *st, const char *config_json, int take_st,
                      lop_err *e) {
    (void)st; (void)config_json; (void)take_st;
    *out = NULL;
    return lop_fail(e, "the forward engine is not implemented yet");
}

void lop_model_free(lop_model *m) { free(m); }

lop_wref *lop_weight(lop_model *m, int layer, lop_proj p) {
    if (!m || layer < 0 || layer >= m->cfg.n_layers || (unsigned)p >= PROJ_N) return NULL;
    return &m->layers[layer].proj[p];
}

lop_wref *lop_layer_vec(lop_model *m, int layer, lop_lvec v) {
    if (!m || layer < 0 || layer >= m->cfg.n_layers || (unsigned)v >= LVEC_N) return NULL;
    return &m->layers[layer].vec[v];
}

int lop_kv_new(lop_kv **out, const lop_model *m, int B, int max_t, lop_err *e) {
    (void)m; (void)B; (void)max_t;
    *out = NULL;
    return lop_fail(e, "kv cache not implemented yet");
}
void lop_kv_reset(lop_kv *kv) { (void)kv; }
void lop_kv_free(lop_kv *kv) { (void)kv; }

int lop_forward(lop_model *m, lop_batch *b, const lop_fwd_opts *o, lop_head_req *head,
                lop_err *e) {
    (void)m; (void)b; (void)o; (void)head;
    return lop_fail(e, "the forward engine is not implemented yet");
}

double lop_forward_flops(const lop_model *m, int64_t n, double ctx) {
    (void)m; (void)n; (void)ctx;
    return 0;
}
