/* act.c — activation-scored width pruning (Minitron, Muralidharan et al. 2024): one forward pass
 * of the dense model over the calibration tokens collects, per layer,
 *   neurons:  mean over tokens of |h_j|, h = act(gate) * up (the input of down_proj);
 *   heads:    mean over tokens of || o_proj[:, head] · attn_out[head] ||_2, the head's own
 *             contribution to the residual (before Gemma's post-attention norm);
 *   channels: mean over tokens of |x_j| of every normed residual (each layer's input_layernorm and
 *             MLP norm outputs and the final norm's), summed over those norms.
 * Every choice is then the top-k of its scores; the model is written from its memory map, tensor by
 * tensor (each mapped tensor's pages are given back once written). */
#include "blas_tune.h"
#include "calib.h"
#include "model.h"
#include "tokenizer.h"
#include "tool.h"
#include "wprune.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    wp_job *j;
    lop_model *m;
    float *wo;          /* [C, Hq*D] o_proj of the current layer in float32 */
    float *y;           /* [rows, C] one head's contribution */
    size_t ycap;
} actx;

/* out[j] += sum_i |X_ij| over rows (columns split among threads: deterministic sums) */
static void abs_colsum(const float *X, int rows, int cols, double *out) {
#pragma omp parallel for schedule(static) if ((int64_t)rows * cols >= (1 << 16))
    for (int c = 0; c < cols; c++) {
        double acc = 0;
        for (int i = 0; i < rows; i++) acc += fabsf(X[(int64_t)i * cols + c]);
        out[c] += acc;
    }
}

static int head_norms(actx *a, int layer, const float *X, int rows, lop_err *e) {
    const lop_width *w = &a->j->w;
    int C = w->C, D = w->D, Hq = w->Hq, qd = Hq * D;
    const lop_wref *wo = &a->m->layers[layer].proj[PROJ_O];
    if (st_to_f32(a->wo, wo->data, wo->dtype, (size_t)C * qd)) return lop_fail(e, "%s: not a float tensor", arch_proj_module(PROJ_O));
    if ((size_t)rows * C > a->ycap) {
        free(a->y);
        a->ycap = (size_t)rows * C;
        if (!(a->y = malloc(a->ycap * sizeof *a->y))) { a->ycap = 0; return lop_fail(e, "out of memory"); }
    }
    double *hs = a->j->head_score[layer];
    for (int h = 0; h < Hq; h++) {
        /* y[rows, C] = X[:, hD:(h+1)D] · Wo[:, hD:(h+1)D]^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, C, D, 1.0f, X + (size_t)h * D, qd,
                    a->wo + (size_t)h * D, qd, 0.0f, a->y, C);
        double acc = 0;
#pragma omp parallel for reduction(+ : acc) schedule(static) if ((int64_t)rows * C >= (1 << 16))
        for (int i = 0; i < rows; i++) {
            double s = 0;
            for (int c = 0; c < C; c++) { double v = a->y[(size_t)i * C + c]; s += v * v; }
            acc += sqrt(s);
        }
        hs[h] += acc;
    }
    return 0;
}

static int hook_linear(void *user, int layer, lop_proj p, const char *name, const float *X, int rows,
                       int in, const lop_batch *b) {
    actx *a = user;
    wp_job *j = a->j;
    (void)name; (void)b;
    if (p == PROJ_DOWN && j->cut_mlp) abs_colsum(X, rows, in, j->mlp_score[layer]);
    /* q/k/v (and gate/up) share one input: counted once, at q (gate) */
    if ((p == PROJ_Q || p == PROJ_GATE) && j->cut_hidden) abs_colsum(X, rows, in, j->hid_score);
    if (p == PROJ_O && j->cut_heads) {
        lop_err e;
        if (head_norms(a, layer, X, rows, &e)) return 1;
    }
    return 0;
}

static int hook_final(void *user, const float *h, const float *hn, const lop_batch *b) {
    actx *a = user;
    (void)h;
    if (a->j->cut_hidden) abs_colsum(hn, b->N, a->j->w.C, a->j->hid_score);
    return 0;
}

static int load_calib(wp_job *j, lop_model *m, lop_calib *cal, lop_err *e) {
    return calib_load_for_model(cal, m, j->data, j->ctx, j->samples, tool_opt.seed, e);
}

static int write_model(wp_job *j, st_model *st, lop_err *e) {
    lop_wspec *spec = NULL;
    st_info *out = NULL;
    char *cfg = NULL;
    void *buf = NULL;
    uint64_t cap = 0;
    st_writer *w = NULL;
    int rc = -1;
    if (wp_plan(j, st->info, st->n, &spec, &out, e)) goto done;
    if (!(cfg = wp_out_config(j, e))) goto done;
    if (st_writer_open(&w, j->output, out, st->n, cfg, st->source_dir, &j->wo, e)) goto done;
    double scale = width_gemma_scale(&j->w);
    progress pg;
    progress_start(&pg, "writing", st->n, "tensors");
    for (int i = 0; i < st->n; i++) {
        if (out[i].nbytes == st->info[i].nbytes && spec[i].op == WOP_NONE) {   /* nothing cut */
            if (st_writer_put(w, i, st->data[i], e)) { st_writer_abort(w); goto done; }
            st_release(st, i);
            progress_update(&pg, i + 1);
            continue;
        }
        if (out[i].nbytes > cap) {
            free(buf);
            cap = out[i].nbytes;
            if (!(buf = malloc(cap))) { lop_fail(e, "out of memory"); st_writer_abort(w); goto done; }
        }
        if (width_slice(&j->w, &st->info[i], &spec[i], st->data[i], buf, scale, e) ||
            st_writer_put(w, i, buf, e)) { st_writer_abort(w); goto done; }
        st_release(st, i);
        progress_update(&pg, i + 1);
    }
    progress_end(&pg);
    rc = st_writer_finish(w, e);
done:
    free(spec); free(out); free(cfg); free(buf);
    return rc;
}

int wp_run_activation(wp_job *j, lop_err *e) {
    lop_model *m = NULL;
    lop_calib cal = {0};
    actx a = {.j = j};
    int rc = -1;
    if (lop_model_open(&m, j->model, e)) return -1;
    a.m = m;
    st_model *st = m->st;
    if (!st->config_json) { lop_fail(e, "%s: no config.json", j->model); goto out; }
    if (config_parse(&j->cfg, st->config_json, e)) goto out;
    j->has_cfg = 1;
    {
        const char **names = malloc((size_t)(st->n ? st->n : 1) * sizeof *names);
        if (!names) { lop_fail(e, "out of memory"); goto out; }
        for (int i = 0; i < st->n; i++) names[i] = st->info[i].name;
        config_detect_prefix(&j->cfg, names, st->n);
        free(names);
    }
    if (wp_setup(j, e)) goto out;
    const lop_width *w = &j->w;
    if (j->cut_heads && !(a.wo = malloc((size_t)w->C * w->Hq * w->D * sizeof *a.wo))) { lop_fail(e, "out of memory"); goto out; }
    if (j->cut_mlp || j->cut_heads || j->cut_hidden) {
        if (load_calib(j, m, &cal, e)) goto out;
        j->calib_tokens = cal.tokens;
        j->calib_samples = cal.n;
        tool_note("activation scores: %d calibration sequences, %lld tokens", cal.n, (long long)cal.tokens);
        lop_hooks hk = {.user = &a, .linear_in = hook_linear, .final = hook_final};
        lop_fwd_opts fo = {.hooks = &hk};
        progress pg;
        progress_start(&pg, "scoring", cal.n, "sequences");
        for (int s = 0; s < cal.n; s += j->batch) {
            int nb = cal.n - s < j->batch ? cal.n - s : j->batch;
            lop_batch b = {.B = nb, .len = cal.len + s, .ids = cal.ids[s]};
            if (lop_forward(m, &b, &fo, NULL, e)) goto out;
            progress_update(&pg, s + nb);
        }
        progress_end(&pg);
        double inv = cal.tokens ? 1.0 / (double)cal.tokens : 0;   /* sums -> means over tokens */
        /* no number silently wrong: a non-finite activation would make every choice arbitrary */
        for (int l = 0; l < w->L; l++)
            for (int k = 0; k < (j->cut_mlp ? w->F : 0) + (j->cut_heads ? w->Hq : 0); k++) {
                double v = k < (j->cut_mlp ? w->F : 0) ? j->mlp_score[l][k] : j->head_score[l][k - (j->cut_mlp ? w->F : 0)];
                if (!isfinite(v)) { lop_fail(e, "layer %d: non-finite activations on the calibration text", l); goto out; }
            }
        for (int k = 0; j->cut_hidden && k < w->C; k++)
            if (!isfinite(j->hid_score[k])) { lop_fail(e, "non-finite activations on the calibration text"); goto out; }
        for (int l = 0; l < w->L; l++) {
            if (j->cut_mlp) { for (int k = 0; k < w->F; k++) j->mlp_score[l][k] *= inv; if (wp_decide_mlp(j, l, e)) goto out; }
            if (j->cut_heads) { for (int k = 0; k < w->Hq; k++) j->head_score[l][k] *= inv; if (wp_decide_heads(j, l, e)) goto out; }
        }
        if (j->cut_hidden) { for (int k = 0; k < w->C; k++) j->hid_score[k] *= inv; if (wp_decide_hidden(j, e)) goto out; }
    }
    /* the forward touched every weight: give the pages back, the rewrite reads one at a time */
    for (int i = 0; i < st->n; i++) st_release(st, i);
    rc = write_model(j, st, e);
out:
    calib_free(&cal);
    free(a.wo); free(a.y);
    lop_model_free(m);
    return rc;
}
