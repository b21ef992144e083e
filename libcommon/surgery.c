/* surgery.c — a whole depth rewrite over a stream (layer-drop, layer-merge): open a model, find its
 * layers, build the plan for a layer map, write the new config and stream every tensor (layers.h). */
#include "layers.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int surgery_open(lop_surgery *s, const char *path, lop_err *e) {
    memset(s, 0, sizeof *s);
    if (st_reader_open(&s->r, path, e)) return -1;
    s->infos = st_reader_infos(s->r, &s->n);
    const char *cj = st_reader_config(s->r);
    if (cj) {
        if (config_parse(&s->cfg, cj, e)) {
            lop_wrap(e, "%s: config", path);
            st_reader_close(s->r);
            return -1;
        }
        s->has_cfg = 1;
        s->n_layers = s->cfg.n_layers;
        snprintf(s->prefix, sizeof s->prefix, "%slayers.", s->cfg.prefix);
        return 0;
    }
    if (layer_find_prefix(s->infos, s->n, s->prefix, sizeof s->prefix, &s->n_layers, e)) {
        lop_wrap(e, "%s", path);
        st_reader_close(s->r);
        return -1;
    }
    return 0;
}

int surgery_write(lop_surgery *s, const lop_layer_map *map, lop_merge_rule rule, const char *out,
                  const st_write_opts *wo, lop_plan *plan,
                  void (*progress)(void *user, uint64_t bytes), void *user, lop_err *e) {
    if (layer_plan_build(plan, s->infos, s->n, s->prefix, map, rule, e)) return -1;
    char *cj = NULL;
    if (s->has_cfg) {
        int *bases = layer_map_bases(map);
        int rc = bases ? config_keep_layers(&s->cfg, bases, map->n_out, e) : lop_fail(e, "out of memory");
        free(bases);
        if (rc) return -1;
        cj = config_to_json(&s->cfg);
        if (!cj) return lop_fail(e, "out of memory");
    }
    st_writer *w;
    int rc = st_writer_open(&w, out, plan->out_infos, plan->n, cj, st_reader_source(s->r), wo, e);
    free(cj);
    if (rc) return -1;
    if (layer_plan_run(plan, s->r, w, progress, user, e)) { st_writer_abort(w); return -1; }
    return st_writer_finish(w, e);
}

void surgery_close(lop_surgery *s) {
    if (s->r) st_reader_close(s->r);
    if (s->has_cfg) config_free(&s->cfg);
    memset(s, 0, sizeof *s);
}
