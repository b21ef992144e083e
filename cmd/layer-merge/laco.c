/* laco.c — LaCo (Yang et al. 2024, "LaCo: Large Language Model Pruning via Layer Collapse"):
 * from the top of the range downward, merge layers lay..lay+C-1 of the CURRENT model by RDSC,
 * keep the merge when the merged model's final hidden states stay close (mean cosine over the
 * calibration samples > T) to the ORIGINAL model's, then move down by I, otherwise by 1.
 *
 * The model stays memory-mapped; a merged layer's tensors live in buffers of the stored dtype
 * (exactly what is written at the end) and are swapped into the engine through lop_weight();
 * absorbed layers are skipped by the forward's skip mask, so a trial costs one forward over the
 * calibration set and no copy of the model. */
#include "laco.h"
#include "report.h"
#include "calib.h"
#include "model.h"
#include "tokenizer.h"
#include "tool.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NKIND (PROJ_N + LVEC_N) /* a layer's tensors: projections, then its vectors (the merged ones) */
#define BATCH_TOKENS 4096    /* calibration rows per forward */

laco_opts laco_default_opts(void) {
    laco_opts o = {4, 1, -1, 2, 0.65, 1.0, NULL, 5, 128, 0, LMERGE_RDSC, NULL};
    return o;
}

/* The tensors that merge: every projection, and the vectors the architecture table marks merged
 * (the projections' biases, q/k norms; never the layer norms). NULL: not merged. */
static lop_wref *kind_ref(lop_model *m, int layer, int k) {
    if (k < PROJ_N) return lop_weight(m, layer, (lop_proj)k);
    lop_lvec v = (lop_lvec)(k - PROJ_N);
    return m->cfg.family->vec[v].merged ? lop_layer_vec(m, layer, v) : NULL;
}

typedef struct {
    lop_model *m;
    lop_calib cal;
    int nb;                 /* forward batches */
    int *b_first, *b_count; /* [nb] samples of each batch */
    int64_t *s_off;         /* [cal.n] row offset of sample i in the hidden-state buffers */
    float *ref;             /* [tokens, C] original model's final-normed hidden states */
    float *cur;             /* [tokens, C] the trial model's */
    float *dst;             /* where the final hook copies (ref or cur) + batch offset */
    uint8_t *skip;          /* [n0] */
} laco_ctx;

static int hook_final(void *user, const float *h, const float *hn, const lop_batch *b) {
    (void)h;
    laco_ctx *c = user;
    memcpy(c->dst, hn, (size_t)b->N * c->m->cfg.hidden * sizeof(float));
    return 0;
}

/* final hidden states of every calibration sample into out [tokens, C] */
static int run_all(laco_ctx *c, float *out, lop_err *e) {
    lop_hooks hk = {.user = c, .final = hook_final};
    lop_fwd_opts fo = {.skip = c->skip, .hooks = &hk};
    for (int i = 0; i < c->nb; i++) {
        int f = c->b_first[i];
        int64_t off = c->s_off[f];
        lop_batch b = {.B = c->b_count[i], .len = c->cal.len + f, .ids = c->cal.ids[f]};
        c->dst = out + off * c->m->cfg.hidden;
        if (lop_forward(c->m, &b, &fo, NULL, e)) return -1;
    }
    return 0;
}

/* mean over samples of cos(flatten(ref_i), flatten(cur_i)) */
static double similarity(const laco_ctx *c) {
    int C = c->m->cfg.hidden;
    double sum = 0;
    for (int i = 0; i < c->cal.n; i++) {
        const float *a = c->ref + c->s_off[i] * C, *b = c->cur + c->s_off[i] * C;
        int64_t n = (int64_t)c->cal.len[i] * C;
        double ab = 0, aa = 0, bb = 0;
        for (int64_t k = 0; k < n; k++) { ab += (double)a[k] * b[k]; aa += (double)a[k] * a[k]; bb += (double)b[k] * b[k]; }
        sum += ab / fmax(sqrt(aa) * sqrt(bb), 1e-30);
    }
    return sum / c->cal.n;
}

static int setup_calib(laco_ctx *c, const char *model, const laco_opts *o, lop_err *e) {
    const char *tdir = c->m->st->source_dir ? c->m->st->source_dir : model;
    lop_tokenizer *tok;
    if (tok_load(&tok, tdir, e)) return lop_wrap(e, "tokenizer");
    lop_calib_opts co = calib_default_opts();
    co.ctx = o->ctx; co.samples = o->samples;
    if (o->lines) co.mode = CALIB_LINES;
    int rc = calib_load(&c->cal, o->data, tok, &co, e);
    tok_free(tok);
    if (rc) return -1;
    int n = c->cal.n;
    c->b_first = malloc(n * sizeof(int)); c->b_count = malloc(n * sizeof(int));
    c->s_off = malloc((n + 1) * sizeof(int64_t));
    size_t sz = (size_t)c->cal.tokens * c->m->cfg.hidden * sizeof(float);
    c->ref = malloc(sz); c->cur = malloc(sz);
    if (!c->b_first || !c->b_count || !c->s_off || !c->ref || !c->cur) return lop_fail(e, "out of memory");
    int64_t off = 0, in_batch = 0;
    for (int i = 0; i < n; i++) {
        c->s_off[i] = off;
        if (c->nb == 0 || in_batch + c->cal.len[i] > BATCH_TOKENS) {
            c->b_first[c->nb] = i; c->b_count[c->nb] = 0; c->nb++; in_batch = 0;
        }
        c->b_count[c->nb - 1]++;
        in_batch += c->cal.len[i];
        off += c->cal.len[i];
    }
    c->s_off[n] = off;
    return 0;
}

typedef struct { void *buf[NKIND]; } slot_bufs;   /* merged tensors a slot owns (NULL: original) */

/* Merge current layers cur[0..n) (original slots, cur[0] the base) into new buffers nb[]. */
static int merge_into(lop_model *m, const int *cur, int n, lop_merge_rule rule, void **nb, lop_err *e) {
    for (int k = 0; k < NKIND; k++) {
        nb[k] = NULL;
        lop_wref *base = kind_ref(m, cur[0], k);
        if (!base || !base->data) continue;
        const void *in[64];
        st_dtype dt[64];
        if (n > 64) return lop_fail(e, "cannot merge more than 64 layers at once");
        for (int j = 0; j < n; j++) {
            lop_wref *w = kind_ref(m, cur[j], k);
            if (!w || !w->data || w->rows != base->rows || w->cols != base->cols)
                return lop_fail(e, "cannot merge layers: %s has no counterpart of its shape in layer %d", base->name ? base->name : "a tensor", cur[j]);
            in[j] = w->data; dt[j] = w->dtype;
        }
        uint64_t numel = (uint64_t)base->rows * base->cols;
        nb[k] = malloc(numel * st_dtype_size(base->dtype) + 1);
        if (!nb[k]) return lop_fail(e, "out of memory");
        if (layer_merge_tensor(nb[k], base->dtype, in, dt, n, numel, rule, e)) return -1;
    }
    return 0;
}

static int write_model(lop_model *m, const uint8_t *alive, slot_bufs *own, slot_bufs *orig, const char *out,
                       const st_write_opts *wo, int64_t *pb, int64_t *pa, lop_err *e) {
    const st_model *st = m->st;
    int n0 = m->cfg.n_layers, *newidx = malloc(n0 * sizeof(int)), *keep = malloc(n0 * sizeof(int)), nk = 0;
    st_info *infos = calloc(st->n, sizeof *infos);
    const void **data = calloc(st->n, sizeof *data);
    if (!newidx || !keep || !infos || !data) return lop_fail(e, "out of memory");
    for (int l = 0; l < n0; l++) { newidx[l] = alive[l] ? nk : -1; if (alive[l]) keep[nk++] = l; }
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%slayers.", m->cfg.prefix);
    int n = 0, rc = 0, used = 0, owned = 0;
    *pb = *pa = 0;
    for (int l = 0; l < n0; l++) for (int k = 0; k < NKIND; k++) owned += alive[l] && own[l].buf[k];
    for (int i = 0; i < st->n && !rc; i++) {
        const st_info *t = &st->info[i];
        const char *rest;
        int l = layer_of_name(t->name, prefix, &rest);
        *pb += (int64_t)st_numel(t);
        if (l >= n0) { rc = lop_fail(e, "%s: layer %d, but the model has %d layers", t->name, l, n0); break; }
        if (l >= 0 && !alive[l]) continue;
        infos[n] = *t;
        data[n] = st->data[i];
        if (l >= 0) {
            size_t len = strlen(prefix) + strlen(rest) + 16;
            infos[n].name = malloc(len);
            if (!infos[n].name) { rc = lop_fail(e, "out of memory"); break; }
            snprintf(infos[n].name, len, "%s%d.%s", prefix, newidx[l], rest);
            for (int k = 0; k < NKIND; k++)   /* a merged tensor: its buffer replaces the mmap'd bytes */
                if (own[l].buf[k] && orig[l].buf[k] == st->data[i]) { data[n] = own[l].buf[k]; used++; }
        } else {
            infos[n].name = strdup(t->name);
            if (!infos[n].name) { rc = lop_fail(e, "out of memory"); break; }
        }
        *pa += (int64_t)st_numel(t);
        n++;
    }
    if (!rc && used != owned) rc = lop_fail(e, "internal error: %d of %d merged tensors not found in the model's tensors", owned - used, owned);
    char *cj = NULL;
    if (!rc && !(rc = config_keep_layers(&m->cfg, keep, nk, e))) {
        cj = config_to_json(&m->cfg);
        if (!cj) rc = lop_fail(e, "out of memory");
    }
    st_writer *w = NULL;
    if (!rc) rc = st_writer_open(&w, out, infos, n, cj, st->source_dir, wo, e);
    for (int i = 0; i < n && !rc; i++) rc = st_writer_put(w, i, data[i], e);
    if (w) { if (rc) st_writer_abort(w); else rc = st_writer_finish(w, e); }
    for (int i = 0; i < n; i++) free(infos[i].name);
    free(infos); free(data); free(newidx); free(keep); free(cj);
    return rc;
}

int laco_run(const char *model, const char *out, const laco_opts *o, const st_write_opts *wo,
             lop_err *e) {
    laco_ctx c;
    memset(&c, 0, sizeof c);
    if (lop_model_open(&c.m, model, e)) return -1;
    if (o->device && lop_model_set_device(c.m, o->device, e)) return -1;
    lop_model *m = c.m;
    int n0 = m->cfg.n_layers;
    int H = o->H < 0 ? n0 : o->H;
    if (H > n0) return lop_failc(e, LOP_EUSAGE, "-H %d: the model has %d layers", H, n0);
    if (o->C > n0) return lop_failc(e, LOP_EUSAGE, "-C %d: the model has %d layers", o->C, n0);
    if (setup_calib(&c, model, o, e)) return -1;
    c.skip = calloc(n0, 1);
    uint8_t *alive = malloc(n0);
    int *cur = malloc(n0 * sizeof(int));
    slot_bufs *own = calloc(n0, sizeof *own), *orig = calloc(n0, sizeof *orig);
    if (!c.skip || !alive || !cur || !own || !orig) return lop_fail(e, "out of memory");
    for (int l = 0; l < n0; l++)   /* where each mergeable tensor's bytes live in the mmap */
        for (int k = 0; k < NKIND; k++) {
            lop_wref *w = kind_ref(m, l, k);
            orig[l].buf[k] = w ? (void *)w->data : NULL;
        }
    memset(alive, 1, n0);
    tool_note("%d calibration samples, %lld tokens", c.cal.n, (long long)c.cal.tokens);
    if (run_all(&c, c.ref, e)) return -1;

    int ncur = n0, lay = H - o->C, iters = 0, acc = 0, rej = 0;
    int max_gone = (int)floor(o->max_compression * n0 + 1e-9);
    double smin = INFINITY, smax = -INFINITY, ssum = 0;
    progress pg;
    progress_start(&pg, "LaCo", lay - o->L + 1 > 0 ? lay - o->L + 1 : 1, "steps");
    while (lay >= o->L) {
        int mcount = o->C - 1;
        if (mcount > ncur - lay - 1) mcount = ncur - lay - 1;
        if (mcount > max_gone - (n0 - ncur)) mcount = max_gone - (n0 - ncur);
        if (n0 - ncur >= max_gone) break;
        if (mcount <= 0) { lay--; continue; }
        for (int l = 0, j = 0; l < n0; l++) if (alive[l]) cur[j++] = l;
        void *nb[NKIND];
        if (merge_into(m, cur + lay, mcount + 1, o->rule, nb, e)) return -1;
        /* swap the merged tensors in, skip the absorbed layers */
        lop_wref saved[NKIND];
        for (int k = 0; k < NKIND; k++) {
            lop_wref *w = kind_ref(m, cur[lay], k);
            if (!w) continue;
            saved[k] = *w;
            if (nb[k]) w->data = nb[k];
        }
        for (int j = 1; j <= mcount; j++) c.skip[cur[lay + j]] = 1;
        /* freed merge buffers can come back at the same address: a GPU re-reads them */
        if (lop_model_weights_changed(m, e) || run_all(&c, c.cur, e)) return -1;
        double sim = similarity(&c);
        int ok = sim > o->T;
        iters++;
        ssum += sim; smin = fmin(smin, sim); smax = fmax(smax, sim);
        /* the source layers the group covers: from the base to just before the next survivor */
        int last_src = lay + mcount + 1 < ncur ? cur[lay + mcount + 1] - 1 : n0 - 1;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "action", "try");
        cJSON_AddNumberToObject(j, "iteration", iters);
        int ab[2] = {lay, lay + mcount}, src[2] = {cur[lay], last_src};
        cJSON_AddItemToObject(j, "layers", cJSON_CreateIntArray(ab, 2));
        cJSON_AddItemToObject(j, "source_layers", cJSON_CreateIntArray(src, 2));
        cJSON_AddNumberToObject(j, "similarity", sim);
        cJSON_AddBoolToObject(j, "accepted", ok);
        cJSON_AddNumberToObject(j, "layers_now", ok ? ncur - mcount : ncur);
        tool_emit(j);
        if (ok) {
            acc++;
            for (int k = 0; k < NKIND; k++) if (nb[k]) { free(own[cur[lay]].buf[k]); own[cur[lay]].buf[k] = nb[k]; }
            for (int q = 1; q <= mcount; q++) {
                int s = cur[lay + q];
                alive[s] = 0;
                for (int k = 0; k < NKIND; k++) { free(own[s].buf[k]); own[s].buf[k] = NULL; }
            }
            ncur -= mcount;
            lay -= o->I;
            if (lay >= ncur) lay = ncur - 1 - o->C;
        } else {
            rej++;
            for (int k = 0; k < NKIND; k++) {
                lop_wref *w = kind_ref(m, cur[lay], k);
                if (w) *w = saved[k];
                free(nb[k]);
            }
            for (int q = 1; q <= mcount; q++) c.skip[cur[lay + q]] = 0;
            lay -= 1;
        }
        progress_update(&pg, H - o->C - lay);
    }
    progress_end(&pg);

    int64_t pb = 0, pa = 0;
    if (write_model(m, alive, own, orig, out, wo, &pb, &pa, e)) return -1;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "action", "laco");
    cJSON_AddStringToObject(j, "rule", lm_rule_name(o->rule));
    cJSON_AddNumberToObject(j, "iterations", iters);
    cJSON_AddNumberToObject(j, "merges_accepted", acc);
    cJSON_AddNumberToObject(j, "merges_rejected", rej);
    cJSON_AddNumberToObject(j, "layers_removed", n0 - ncur);
    cJSON_AddNumberToObject(j, "compression", (double)(n0 - ncur) / n0);
    if (iters) {
        cJSON_AddNumberToObject(j, "similarity_mean", ssum / iters);
        cJSON_AddNumberToObject(j, "similarity_min", smin);
        cJSON_AddNumberToObject(j, "similarity_max", smax);
    }
    cJSON_AddNumberToObject(j, "calibration_samples", c.cal.n);
    cJSON_AddNumberToObject(j, "calibration_tokens", (double)c.cal.tokens);
    tool_emit(j);
    lm_summary(n0, ncur, pb, pa, out);
    for (int l = 0; l < n0; l++) for (int k = 0; k < NKIND; k++) free(own[l].buf[k]);
    free(own); free(orig); free(cur); free(alive); free(c.skip);
    free(c.ref); free(c.cur); free(c.b_first); free(c.b_count); free(c.s_off);
    calib_free(&c.cal);
    lop_model_free(m);
    return 0;
}
