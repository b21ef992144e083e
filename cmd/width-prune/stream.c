/* stream.c — weight-only width pruning as a stream: tensors are read in file order, each layer's
 * choice is made as soon as the tensors it scores have arrived (gate_proj and up_proj for the
 * neurons, q_proj and o_proj for the heads), and every tensor is written, sliced, as soon as the
 * choices it depends on are made. Output order = input order, so a tensor that arrives before its
 * layer's choice (down_proj sorts before gate/up) is held until then: memory stays bounded by about
 * one layer's tensors. */
#include "tool.h"
#include "wprune.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    wp_job *j;
    const st_info *in;
    lop_wspec *spec;
    st_info *out;
    st_writer *wr;
    void *obuf;
    uint64_t ocap;
    int *mlp_seen, *head_seen;   /* [L] scored tensors seen (2 = choice made) */
    double *tmp;                 /* [max(Hq*D, C)] per-row/column statistics of a head matrix */
} stream;

static int ready(const stream *s, int i) {
    const lop_wspec *sp = &s->spec[i];
    const lop_width *w = &s->j->w;
    if (sp->needs_mlp && !w->mlp[sp->layer]) return 0;
    if (sp->needs_heads && !w->qh[sp->layer]) return 0;
    return 1;
}

static int put(stream *s, int i, const void *data, lop_err *e) {
    /* nothing cut from this tensor (equal sizes: the kept lists are the full ranges): as it is */
    if (s->out[i].nbytes == s->in[i].nbytes && s->spec[i].op == WOP_NONE) return st_writer_put(s->wr, i, data, e);
    if (s->out[i].nbytes > s->ocap) {
        free(s->obuf);
        s->ocap = s->out[i].nbytes;
        if (!(s->obuf = malloc(s->ocap))) { s->ocap = 0; return lop_fail(e, "out of memory"); }
    }
    if (width_slice(&s->j->w, &s->in[i], &s->spec[i], data, s->obuf, 1.0, e)) return -1;
    return st_writer_put(s->wr, i, s->obuf, e);
}

/* Score a tensor that a layer's choice reads; make the choice when both have arrived. */
static int score(stream *s, int i, const void *data, lop_err *e) {
    wp_job *j = s->j;
    const lop_width *w = &j->w;
    const st_info *t = &s->in[i];
    int l = s->spec[i].layer;
    if (l < 0) return 0;
    const char *rest = NULL;
    config_tensor_layer(&j->cfg, t->name, &rest);
    int p = arch_suffix_proj(j->cfg.family, rest);   /* which projection's weight, by the table */
    if (j->cut_mlp && (p == PROJ_GATE || p == PROJ_UP)) {
        if (width_stat(j->imp, data, t->dtype, t->shape[0], t->shape[1], 0, j->mlp_score[l], e)) return lop_wrap(e, "%s", t->name);
        if (++s->mlp_seen[l] == 2 && wp_decide_mlp(j, l, e)) return -1;
    }
    int q = p == PROJ_Q, o = p == PROJ_O;
    if (j->cut_heads && (q || o)) {
        int n = w->Hq * w->D;
        memset(s->tmp, 0, (size_t)n * sizeof *s->tmp);
        if (width_stat(j->imp, data, t->dtype, t->shape[0], t->shape[1], o, s->tmp, e)) return lop_wrap(e, "%s", t->name);
        for (int k = 0; k < n; k++) j->head_score[l][k / w->D] += s->tmp[k];
        if (++s->head_seen[l] == 2 && wp_decide_heads(j, l, e)) return -1;
    }
    return 0;
}

static void on_bytes(progress *pg, uint64_t bytes) { progress_update(pg, bytes / 1e6); }

int wp_run_stream(wp_job *j, lop_err *e) {
    st_reader *r;
    if (st_reader_open(&r, j->model, e)) return -1;
    int n, rc = -1;
    const st_info *in = st_reader_infos(r, &n);
    stream s = {.j = j, .in = in};
    void **held = NULL;
    char *cfg_out = NULL;
    const char *cj = st_reader_config(r);
    if (!cj) { lop_fail(e, "%s: no config.json (width-prune needs the model's sizes)", j->model); goto out; }
    if (config_parse(&j->cfg, cj, e)) goto out;
    j->has_cfg = 1;
    {
        const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
        if (!names) { lop_fail(e, "out of memory"); goto out; }
        for (int i = 0; i < n; i++) names[i] = in[i].name;
        config_detect_prefix(&j->cfg, names, n);
        free(names);
    }
    if (wp_setup(j, e)) goto out;
    if (wp_plan(j, in, n, &s.spec, &s.out, e)) goto out;
    const lop_width *w = &j->w;
    s.mlp_seen = calloc((size_t)w->L + 1, sizeof *s.mlp_seen);
    s.head_seen = calloc((size_t)w->L + 1, sizeof *s.head_seen);
    s.tmp = malloc(((size_t)w->Hq * w->D + w->C) * sizeof *s.tmp);
    held = calloc((size_t)(n ? n : 1), sizeof *held);
    if (!s.mlp_seen || !s.head_seen || !s.tmp || !held) { lop_fail(e, "out of memory"); goto out; }
    if (!(cfg_out = wp_out_config(j, e))) goto out;
    if (st_writer_open(&s.wr, j->output, s.out, n, cfg_out, st_reader_source(r), &j->wo, e)) goto out;
    progress pg;
    uint64_t total = 0, bytes = 0;
    for (int i = 0; i < n; i++) total += in[i].nbytes;
    progress_start(&pg, "pruning", total / 1e6, "MB");
    int next = 0, idx, expect = 0;
    const void *data;
    for (;;) {
        int got = st_reader_next(r, &idx, &data, e);
        if (got < 0) goto fail;
        if (got == 0) break;
        if (idx != expect) { lop_fail(e, "tensor stream out of order (got %d, expected %d)", idx, expect); goto fail; }
        expect++;
        bytes += in[idx].nbytes;
        if (score(&s, idx, data, e)) goto fail;
        if (idx == next && ready(&s, idx)) {
            if (put(&s, idx, data, e)) goto fail;
            next++;
        } else {
            if (!(held[idx] = malloc(in[idx].nbytes ? in[idx].nbytes : 1))) {
                lop_fail(e, "out of memory holding %s", in[idx].name);
                goto fail;
            }
            memcpy(held[idx], data, in[idx].nbytes);
        }
        while (next < n && held[next] && ready(&s, next)) {
            if (put(&s, next, held[next], e)) goto fail;
            free(held[next]); held[next] = NULL;
            next++;
        }
        on_bytes(&pg, bytes);
    }
    progress_end(&pg);
    if (next < n) {
        const lop_wspec *sp = &s.spec[next];
        int mlp = sp->needs_mlp && !w->mlp[sp->layer];
        /* the tensors the choice scores, as the table names them: "mlp.gate_proj/up_proj.weight" */
        char scored[160];
        snprintf(scored, sizeof scored, "%s/%s.weight", j->cfg.family->proj[mlp ? PROJ_GATE : PROJ_Q],
                 arch_proj_module(mlp ? PROJ_UP : PROJ_O));
        if (expect < n) lop_fail(e, "tensor stream ended early (%d of %d tensors)", expect, n);
        else lop_fail(e, "%s: layer %d's %s could not be scored (%s missing)", in[next].name, sp->layer,
                      mlp ? "MLP neurons" : "heads", scored);
        goto fail;
    }
    if (st_writer_finish(s.wr, e)) { s.wr = NULL; goto out; }
    s.wr = NULL;
    rc = 0;
    goto out;
fail:
    st_writer_abort(s.wr);
    s.wr = NULL;
out:
    if (held) for (int i = 0; i < n; i++) free(held[i]);
    free(held); free(s.obuf); free(s.mlp_seen); free(s.head_seen); free(s.tmp);
    free(s.spec); free(s.out); free(cfg_out);
    st_reader_close(r);
    return rc;
}
