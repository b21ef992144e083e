/* wanda.c — score |W_ij| * ||X_j||_2 (Sun et al. 2023, "A Simple and Effective Pruning Approach
 * for LLMs"): X_j is the j-th input feature of the linear layer over every calibration token.
 *
 * Sequential (default, as the reference prune_wanda): for each layer l in order
 *   1. run layer l alone on the stored residual entering it (computed through the already-pruned
 *      layers 0..l-1) and accumulate sum_t X_tj^2 for each of its projections (dense layer l:
 *      o_proj's and down_proj's inputs come from l's own dense attention / MLP, as in the
 *      reference, which prunes a layer's projections after one pass over it);
 *   2. prune layer l's projections;
 *   3. run the pruned layer l on the same input: its output is the residual entering l+1.
 * Layers are run "alone" with the engine's skip mask (layers < l skipped, layer_end = l+1) and
 * a residual hook that replaces layer l's input by the stored one, chunk by chunk (--batch).
 * --one-shot: one forward over the dense model collects every layer's norms, then all prune.
 * Memory: the stored residual [tokens, C] float32, the pruned copies of the target tensors (in
 * their stored dtype, kept until the output is written), one float32 matrix at a time.
 *
 * --method sparsegpt runs the same three passes: pass 1 accumulates, instead of the norms, the
 * Hessian H = Σ_t x_t x_tᵀ (float64) of each distinct input of layer l — 4 of them: q/k/v share
 * the attention input, gate/up the MLP input, then o's and down's — and step 2 prunes and updates
 * with SparseGPT (sparsegpt.c), one H turned into its inverse's Cholesky factor for all the
 * projections that read that input. Memory: the layer's H's, Σ in² · 8 bytes (e.g. Qwen3-0.6B:
 * 1024² · 2 + 2048² + 3072² doubles = 136 MB), freed before the next layer.
 * --owl: first one pass of the dense model for OWL's layer sparsities (owl.c), then as above with
 * each tensor's budget from the plan. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
/* Until the calibration reader and the tokenizer are both on main, wanda is a clear error. */
#if !(__has_include("calib.h") && __has_include("tok_internal.h"))
#include "wmask.h"
int wm_run_wanda(const wm_job *j, const wm_targets *tg, wm_totals *tot, lop_err *e) {
    (void)tg; (void)tot;
    return lop_fail(e, "%s: --method wanda is not implemented yet (needs calib.h and the tokenizer)", j->model);
}
#else
#include "calib.h"
#include "model.h"
#include "tokenizer.h"
#include "tool.h"
#include "wmask.h"
#include "job.h"

typedef struct wanda {
    const wm_job *j;
    lop_model *m;
    int L, C;
    int cur;                 /* sequential: the layer being run; -1: one-shot (all layers) */
    int collect;             /* accumulate input norms (pass 1) */
    int in_mode;             /* sequential, at layer cur's input: 0 store x, 1 replace x */
    int capture_out;         /* store layer cur's output as the next residual (pass 3) */
    float *resid;            /* [tokens, C] residual entering layer cur */
    int64_t row0;            /* first row of the current chunk among all tokens */
    int64_t tokens;
    double **ss;             /* [L*PROJ_N] -> [in] sum over tokens of X_tj^2 */
    uint8_t *target;         /* [L*PROJ_N] projection selected */
    void **masked;           /* [L*PROJ_N] pruned copy (stored dtype), for the output */
    float **dump;            /* [L*PROJ_N] --dump-acts: X [tokens, in] */
    int *dump_in;            /* [L*PROJ_N] in_features of the dumped X */
    wm_totals *tot;
    /* sparsegpt: layer cur's Hessians, one per distinct input (slot), and which projection feeds
     * each slot (the first target reading it) */
    double *H[4];
    int64_t hin[4];
    int hown[4];
    wm_owl owl;
    int have_owl;
    /* mpirun: this rank's chunks [c0, c1) of --batch sequences; each chunk's sums of squares go to
     * its own slot (ssc[k][chunk * in + j]), summed over ranks (a copy: zeros elsewhere) and added
     * in chunk order, the one process's order */
    int c0, c1, nchunk, chunk;
    double **ssc;
} wanda;

/* q, k, v read the attention input; o its own; gate, up the MLP input; down its own. */
static const int SLOT[PROJ_N] = {0, 0, 0, 1, 2, 2, 3};

static int proj_in(const lop_model *m, int layer, lop_proj p) {
    return (int)m->layers[layer].proj[p].cols;
}

static int hook_resid(void *user, int layer, lop_resid_where where, float *x, const lop_batch *b) {
    wanda *wd = user;
    if (wd->cur < 0 || layer != wd->cur) return 0;
    float *dst = wd->resid + wd->row0 * wd->C;
    size_t bytes = (size_t)b->N * wd->C * sizeof(float);
    if (where == LOP_RESID_IN) {
        if (wd->in_mode == 0) memcpy(dst, x, bytes);
        else memcpy(x, dst, bytes);
    } else if (wd->capture_out) {
        memcpy(dst, x, bytes);
    }
    return 0;
}

static int hook_linear(void *user, int layer, lop_proj p, const char *name, const float *X,
                       int rows, int in, const lop_batch *b) {
    wanda *wd = user;
    (void)name; (void)b;
    if (!wd->collect || (wd->cur >= 0 && layer != wd->cur)) return 0;
    int k = layer * PROJ_N + (int)p;
    if (!wd->target[k]) return 0;
    if (wd->j->method == METHOD_SPARSEGPT) {
        int sl = SLOT[p];
        if (wd->hown[sl] == (int)p && wd->H[sl]) {
            double t0 = tool_now_seconds();
            if (wm_hess_add(wd->H[sl], X, rows, in)) return 1;
            wd->tot->t_hessian += tool_now_seconds() - t0;
        }
    } else {
    double *ss = wd->ss[k];
    if (wd->ssc) {   /* a job: this chunk's slot */
        if (!wd->ssc[k] && !(wd->ssc[k] = calloc((size_t)wd->nchunk * in, sizeof(double)))) return 1;
        ss = wd->ssc[k] + (size_t)wd->chunk * in;
    }
    /* columns split among threads: each thread owns its ss[j], rows run in order (deterministic) */
#pragma omp parallel for schedule(static) if ((int64_t)rows * in >= (1 << 16))
    for (int jc = 0; jc < in; jc++) {
        double acc = 0;
        for (int i = 0; i < rows; i++) { double v = X[(int64_t)i * in + jc]; acc += v * v; }
        ss[jc] += acc;
    }
    }
    if (wd->dump) {
        if (!wd->dump[k]) {
            wd->dump[k] = calloc((size_t)wd->tokens * in, sizeof(float));
            if (!wd->dump[k]) return 1;
            wd->dump_in[k] = in;
        }
        memcpy(wd->dump[k] + wd->row0 * in, X, (size_t)rows * in * sizeof(float));
    }
    return 0;
}

/* One pass over every calibration chunk (the flags in wd say what the hooks do). */
static int run_pass(wanda *wd, const lop_calib *cal, int layer_end, const uint8_t *skip,
                    lop_err *e) {
    lop_hooks hk = {.user = wd, .resid = hook_resid, .linear_in = hook_linear};
    lop_fwd_opts fo = {.skip = skip, .layer_end = layer_end, .hooks = &hk};
    double t0 = tool_now_seconds();
    wd->row0 = 0;
    int bs = wd->j->batch;
    for (int s = 0, c = 0; s < cal->n; s += bs, c++) {
        int nb = cal->n - s < bs ? cal->n - s : bs;
        lop_batch b = {.B = nb, .len = cal->len + s, .ids = cal->ids[s]};
        if (c < wd->c0 || c >= wd->c1) {   /* another rank's chunk */
            for (int q = 0; q < nb; q++) wd->row0 += cal->len[s + q];
            continue;
        }
        wd->chunk = c;
        if (lop_forward(wd->m, &b, &fo, NULL, e)) return -1;
        wd->row0 += b.N;
    }
    wd->tot->t_forward += tool_now_seconds() - t0;
    return 0;
}

/* a job, after a collecting pass: the chunks' sums of squares of the targets of layer l (-1:
 * every layer) from every rank, added in chunk order into ss */
static int reduce_ss(wanda *wd, int l, lop_err *e) {
    if (!wd->ssc) return 0;
    for (int k = 0; k < wd->L * PROJ_N; k++) {
        if (!wd->target[k] || (l >= 0 && k / PROJ_N != l)) continue;
        int in = proj_in(wd->m, k / PROJ_N, k % PROJ_N);
        size_t n = (size_t)wd->nchunk * in;
        if (!wd->ssc[k] && !(wd->ssc[k] = calloc(n, sizeof(double)))) return lop_fail(e, "out of memory");
        if (par_sum_f64(job_par, wd->ssc[k], n, e)) return -1;
        for (int c = 0; c < wd->nchunk; c++)
            for (int j = 0; j < in; j++) wd->ss[k][j] += wd->ssc[k][(size_t)c * in + j];
        free(wd->ssc[k]);
        wd->ssc[k] = NULL;
    }
    return 0;
}

/* Prune projection p of layer l with the collected norms; keep the pruned copy and point the
 * model at it (later passes see the pruned layer). global: only compute the norms. */
static int prune_proj(wanda *wd, int l, lop_proj p, const double *U, const uint8_t *dead,
                      lop_err *e) {
    int k = l * PROJ_N + (int)p;
    lop_wref *w = lop_weight(wd->m, l, p);
    int64_t rows = w->rows, cols = w->cols;
    uint64_t n = (uint64_t)rows * cols;
    double t0 = tool_now_seconds(), loss = -1;
    float *norm = malloc((size_t)cols * sizeof *norm), *wf = malloc(n * sizeof *wf);
    void *raw = malloc(n * st_dtype_size(w->dtype));
    if (!norm || !wf || !raw) { free(norm); free(wf); free(raw); return lop_fail(e, "out of memory"); }
    st_to_f32(wf, w->data, w->dtype, n);
    wm_quota dq = wm_quota_default(wd->j, rows, cols);
    const wm_quota *q = wd->have_owl ? &wd->owl.quota[k] : &dq;
    prune_stat st;
    int rc;
    if (U) {
        rc = wm_sgpt_prune(wd->j, w->name, wf, rows, cols, U, dead, q, &st, &loss, e);
        if (!rc) wm_raw_store(raw, wf, w->dtype, n);
    } else {
        for (int64_t c = 0; c < cols; c++) norm[c] = (float)sqrt(wd->ss[k][c]);
        rc = wm_prune_matrix(wd->j, w->name, wf, rows, cols, norm, q, &st, e);
        if (!rc) {
            memcpy(raw, w->data, n * st_dtype_size(w->dtype));
            wm_raw_apply(raw, wf, w->dtype, n);
        }
    }
    if (!rc) {
        wd->masked[k] = raw;
        w->data = raw;
    } else free(raw);
    free(norm);
    free(wf);
    wd->tot->t_select += tool_now_seconds() - t0;
    if (rc) return -1;
    int ti = st_find(wd->m->st, w->name);
    wm_report_tensor_q(wd->j, &wd->m->st->info[ti], &st, q, loss, wd->tot);
    return 0;
}

/* sparsegpt, layer l after pass 1: each slot's H -> U, then its projections. */
static int prune_layer_sgpt(wanda *wd, int l, lop_err *e) {
    for (int sl = 0; sl < 4; sl++) {
        if (!wd->H[sl]) continue;
        int64_t n = wd->hin[sl];
        uint8_t *dead = malloc((size_t)n);
        if (!dead) return lop_fail(e, "out of memory");
        double t0 = tool_now_seconds();
        int rc = wm_hess_prepare(wd->H[sl], n, wd->tokens, wd->j->damp, dead, e);
        wd->tot->t_select += tool_now_seconds() - t0;
        if (rc) {
            free(dead);
            return lop_wrap(e, "%s", wd->m->layers[l].proj[wd->hown[sl]].name);
        }
        for (int p = 0; p < PROJ_N && !rc; p++)
            if (SLOT[p] == sl && wd->target[l * PROJ_N + p]) rc = prune_proj(wd, l, p, wd->H[sl], dead, e);
        free(dead);
        free(wd->H[sl]);
        wd->H[sl] = NULL;
        if (rc) return -1;
    }
    return 0;
}

/* sparsegpt, before pass 1 of layer l: zeroed H's for the slots that have targets. */
static int alloc_hess(wanda *wd, int l, lop_err *e) {
    for (int sl = 0; sl < 4; sl++) { wd->hown[sl] = -1; wd->H[sl] = NULL; }
    for (int p = 0; p < PROJ_N; p++) {
        int sl = SLOT[p];
        if (!wd->target[l * PROJ_N + p] || wd->hown[sl] >= 0) continue;
        wd->hown[sl] = p;
        wd->hin[sl] = proj_in(wd->m, l, p);
        wd->H[sl] = calloc((size_t)(wd->hin[sl] * wd->hin[sl]), sizeof(double));
        if (!wd->H[sl])
            return lop_fail(e, "out of memory: the Hessian of %s's input (%lld² doubles)",
                            wd->m->layers[l].proj[p].name, (long long)wd->hin[sl]);
    }
    return 0;
}

/* --scope global (one-shot): one threshold over every target's |W|*||X||. */
static int prune_global(wanda *wd, lop_err *e) {
    int K = wd->L * PROJ_N;
    int64_t total = 0;
    for (int k = 0; k < K; k++)
        if (wd->target[k]) total += wd->m->layers[k / PROJ_N].proj[k % PROJ_N].rows *
                                    wd->m->layers[k / PROJ_N].proj[k % PROJ_N].cols;
    double t0 = tool_now_seconds();
    prune_sel s;
    if (prune_sel_init(&s, prune_count(wd->j->sparsity, total))) return lop_fail(e, "out of memory");
    int rc = 0;
    for (int pass = 0; pass < 3 && !rc; pass++) {
        if (pass < 2 && prune_sel_done(&s)) continue;
        int64_t ties = s.rem;
        for (int k = 0; k < K && !rc; k++) {
            if (!wd->target[k]) continue;
            lop_wref *w = lop_weight(wd->m, k / PROJ_N, k % PROJ_N);
            uint64_t n = (uint64_t)w->rows * w->cols;
            float *norm = malloc((size_t)w->cols * sizeof *norm), *wf = malloc(n * sizeof *wf);
            if (!norm || !wf) { free(norm); free(wf); rc = lop_fail(e, "out of memory"); break; }
            for (int64_t c = 0; c < w->cols; c++) norm[c] = (float)sqrt(wd->ss[k][c]);
            st_to_f32(wf, w->data, w->dtype, n);
            if (pass < 2) prune_sel_add(&s, wf, w->rows, w->cols, norm);
            else {
                prune_stat st;
                prune_sel_apply(&s, &ties, wf, w->rows, w->cols, norm, &st);
                void *raw = malloc(n * st_dtype_size(w->dtype));
                if (!raw) rc = lop_fail(e, "out of memory");
                else {
                    memcpy(raw, w->data, n * st_dtype_size(w->dtype));
                    wm_raw_apply(raw, wf, w->dtype, n);
                    wd->masked[k] = raw;
                    w->data = raw;
                    wm_report_tensor(wd->j->output, &wd->m->st->info[st_find(wd->m->st, w->name)], &st, wd->tot);
                }
            }
            free(norm);
            free(wf);
        }
        if (!rc && pass < 2 && prune_sel_next(&s)) rc = lop_fail(e, "global selection failed");
    }
    prune_sel_free(&s);
    wd->tot->t_select += tool_now_seconds() - t0;
    return rc;
}

/* Which tensors are targets: every selected name must be a layer's linear projection. */
int wm_find_targets(lop_model *m, const wm_targets *tg, uint8_t *target, lop_err *e) {
    st_model *st = m->st;
    int L = m->cfg.n_layers;
    int count = 0;
    for (int i = 0; i < st->n; i++) {
        if (!wm_targets_match(tg, st->info[i].name)) continue;
        int found = 0;
        for (int l = 0; l < L && !found; l++)
            for (int p = 0; p < PROJ_N && !found; p++) {
                const lop_wref *w = &m->layers[l].proj[p];
                if (w->name && !strcmp(w->name, st->info[i].name)) {
                    target[l * PROJ_N + p] = 1;
                    found = 1;
                }
            }
        if (!found)
            return lop_failc(e, LOP_EUSAGE, "%s: not a linear projection of a layer; wanda, sparsegpt "
                             "and --owl need its input activations (use --method magnitude, or --exclude it)",
                             st->info[i].name);
        count++;
    }
    if (!count) return lop_fail(e, "no tensor matches the target set (see --include/--exclude)");
    return 0;
}

static int write_dump(const wanda *wd, lop_err *e) {
    int K = wd->L * PROJ_N, n = 0;
    st_info *inf = calloc((size_t)K, sizeof *inf);
    char (*names)[64] = calloc((size_t)K, sizeof *names);
    const float **data = calloc((size_t)K, sizeof *data);
    int rc = -1;
    if (!inf || !names || !data) { lop_fail(e, "out of memory"); goto out; }
    for (int k = 0; k < K; k++) {
        if (!wd->dump[k]) continue;
        snprintf(names[n], sizeof names[n], "layers.%d.%s", k / PROJ_N, arch_proj_module((lop_proj)(k % PROJ_N)));
        inf[n] = (st_info){.name = names[n], .dtype = ST_F32, .ndim = 2,
                           .shape = {wd->tokens, wd->dump_in[k]},
                           .nbytes = (uint64_t)wd->tokens * wd->dump_in[k] * 4};
        data[n++] = wd->dump[k];
    }
    st_writer *w;
    if (st_writer_open(&w, wd->j->dump_acts, inf, n, NULL, NULL, NULL, e)) goto out;
    for (int i = 0; i < n; i++)
        if (st_writer_put(w, i, data[i], e)) { st_writer_abort(w); goto out; }
    rc = st_writer_finish(w, e);
out:
    free(inf); free(names); free(data);
    return rc;
}

static int write_model(const wanda *wd, lop_err *e) {
    st_model *st = wd->m->st;
    st_write_opts wo = {.max_shard_size = wd->j->max_shard, .zstd_level = wd->j->zstd_level};
    const void **out = calloc((size_t)st->n ? (size_t)st->n : 1, sizeof *out);
    if (!out) return lop_fail(e, "out of memory");
    for (int i = 0; i < st->n; i++) out[i] = st->data[i];
    for (int k = 0; k < wd->L * PROJ_N; k++) {
        if (!wd->masked[k]) continue;
        int i = st_find(st, wd->m->layers[k / PROJ_N].proj[k % PROJ_N].name);
        if (i >= 0) out[i] = wd->masked[k];
    }
    st_writer *w;
    int rc = -1;
    if (st_writer_open(&w, wd->j->output, st->info, st->n, st->config_json, st->source_dir, &wo, e))
        goto out;
    for (int i = 0; i < st->n; i++) {
        uint64_t numel = st_numel(&st->info[i]);
        wd->tot->model_params += (int64_t)numel;
        wd->tot->model_zeros += wm_raw_zeros(out[i], st->info[i].dtype, numel);
        if (st_writer_put(w, i, out[i], e)) { st_writer_abort(w); goto out; }
    }
    rc = st_writer_finish(w, e);
out:
    free(out);
    return rc;
}

int wm_load_calib(const wm_job *j, lop_model *m, lop_calib *cal, lop_err *e) {
    return calib_load_for_model(cal, m, j->data, j->ctx, j->samples, tool_opt.seed, e);
}

int wm_run_wanda(const wm_job *j, const wm_targets *tg, wm_totals *tot, lop_err *e) {
    wanda wd = {.j = j, .tot = tot, .cur = -1};
    lop_calib cal = {0};
    uint8_t *skip = NULL;
    int rc = -1, K = 0;
    if (lop_model_open(&wd.m, j->model, e)) return -1;
    if (j->device && lop_model_set_device(wd.m, j->device, e)) { lop_model_free(wd.m); return -1; }
    wd.L = wd.m->cfg.n_layers;
    wd.C = wd.m->cfg.hidden;
    K = wd.L * PROJ_N;
    wd.target = calloc((size_t)K, 1);
    wd.ss = calloc((size_t)K, sizeof *wd.ss);
    wd.masked = calloc((size_t)K, sizeof *wd.masked);
    skip = calloc((size_t)wd.L, 1);
    if (!wd.target || !wd.ss || !wd.masked || !skip) { lop_fail(e, "out of memory"); goto out; }
    if (wm_find_targets(wd.m, tg, wd.target, e)) goto out;
    for (int k = 0; k < K; k++)
        if (wd.target[k] && j->method == METHOD_WANDA && !(wd.ss[k] = calloc((size_t)proj_in(wd.m, k / PROJ_N, k % PROJ_N), sizeof(double)))) {
            lop_fail(e, "out of memory");
            goto out;
        }
    if (wm_load_calib(j, wd.m, &cal, e)) goto out;
    wd.tokens = cal.tokens;
    wd.nchunk = (cal.n + j->batch - 1) / j->batch;
    wd.c0 = (int)((int64_t)wd.nchunk * job_rank / job_ranks);
    wd.c1 = (int)((int64_t)wd.nchunk * (job_rank + 1) / job_ranks);
    if (job_ranks > 1) {
        uint64_t fp = job_argv_fp();   /* hostile jobs: the same command and tokens everywhere */
        for (int i = 0; i < cal.n; i++) fp = job_fp_mix(fp, cal.ids[i], sizeof(int32_t) * cal.len[i]);
        job_same("options or calibration data", fp);
        if (!(wd.ssc = calloc((size_t)K, sizeof *wd.ssc))) { lop_fail(e, "out of memory"); goto out; }
    }
    tool_note("%s: %d calibration sequences, %lld tokens, %s",
         j->method == METHOD_WANDA ? "wanda" : "sparsegpt", cal.n, (long long)cal.tokens,
         j->one_shot ? "one shot" : "layer by layer");
    if (j->owl) {
        if (wm_owl_plan(&wd.owl, j, wd.m, &cal, j->batch, wd.target, tot, e)) goto out;
        wd.have_owl = 1;
        wm_owl_report(j, &wd.owl);
    }
    if (j->dump_acts) {
        wd.dump = calloc((size_t)K, sizeof *wd.dump);
        wd.dump_in = calloc((size_t)K, sizeof *wd.dump_in);
        if (!wd.dump || !wd.dump_in) { lop_fail(e, "out of memory"); goto out; }
    }
    progress pg;
    progress_start(&pg, j->method == METHOD_WANDA ? "wanda" : "sparsegpt", wd.L, "layers");
    if (j->one_shot) {
        wd.collect = 1;
        if (run_pass(&wd, &cal, 0, NULL, e)) goto out;
        if (reduce_ss(&wd, -1, e)) goto out;
        wd.collect = 0;
        if (j->scope == SCOPE_GLOBAL && !j->nm_m) {
            if (prune_global(&wd, e)) goto out;
        } else {
            for (int k = 0; k < K; k++)
                if (wd.target[k] && prune_proj(&wd, k / PROJ_N, k % PROJ_N, NULL, NULL, e)) goto out;
        }
    } else {
        wd.resid = malloc((size_t)cal.tokens * wd.C * sizeof(float));
        if (!wd.resid) { lop_fail(e, "out of memory: %lld calibration tokens", (long long)cal.tokens); goto out; }
        for (int l = 0; l < wd.L; l++) {
            wd.cur = l;
            /* pass 1: dense layer l on the stored input (layer 0: store the embeddings) */
            wd.collect = 1; wd.in_mode = l == 0 ? 0 : 1; wd.capture_out = 0;
            if (j->method == METHOD_SPARSEGPT && alloc_hess(&wd, l, e)) goto out;
            if (run_pass(&wd, &cal, l + 1, skip, e)) goto out;
            if (reduce_ss(&wd, l, e)) goto out;
            if (j->method == METHOD_SPARSEGPT) {
                if (prune_layer_sgpt(&wd, l, e)) goto out;
            } else {
                for (int p = 0; p < PROJ_N; p++)
                    if (wd.target[l * PROJ_N + p] && prune_proj(&wd, l, p, NULL, NULL, e)) goto out;
            }
            /* pass 3: the pruned layer l gives the input of layer l+1 */
            if (l + 1 < wd.L) {
                wd.collect = 0; wd.in_mode = 1; wd.capture_out = 1;
                if (run_pass(&wd, &cal, l + 1, skip, e)) goto out;
            }
            skip[l] = 1;
            progress_update(&pg, l + 1);
        }
    }
    progress_end(&pg);
    if (j->dump_acts && write_dump(&wd, e)) goto out;
    double t0 = tool_now_seconds();
    rc = job_rank ? 0 : write_model(&wd, e);   /* a job: rank 0 writes */
    tot->t_io += tool_now_seconds() - t0;
out:
    for (int k = 0; k < K; k++) {
        if (wd.ss) free(wd.ss[k]);
        if (wd.masked) free(wd.masked[k]);
        if (wd.ssc) free(wd.ssc[k]);
        if (wd.dump) free(wd.dump[k]);
    }
    free(wd.ss); free(wd.ssc); free(wd.masked); free(wd.dump); free(wd.dump_in); free(wd.target);
    free(wd.resid); free(skip);
    for (int sl = 0; sl < 4; sl++) free(wd.H[sl]);
    if (wd.have_owl) wm_owl_free(&wd.owl);
    calib_free(&cal);
    lop_model_free(wd.m); /* its wrefs may point at the freed copies: it never reads them here */
    return rc;
}
#endif
