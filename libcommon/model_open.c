/* model_open.c — a model's life: open the tensors, parse the config, bind the weights (model.c),
 * start the engine (model_forward.c: rope tables, the CPU backend), and free it all. The one file
 * that calls both, so the binding below never reaches up into the forward. */
#include <stdlib.h>
#include "model.h"
#include "model_priv.h"

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
    if (model_bind(m, e) || engine_init(m, e)) {
        lop_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
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
