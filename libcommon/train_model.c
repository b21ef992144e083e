/* train_model.c — the trainable model: its parameters (float32 masters, or the frozen base in
 * its stored dtype plus LoRA adapters), bound into the engine's model (model.h) so that the one
 * forward (model_forward.c) runs them, and the optimizer through the backend (backend.h).
 * The step itself (forward, head, backward) is train_step.c. */
#include "train_priv.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---------------------------------------------------------------- parameters */

int tr_parse_targets(const char *s, unsigned *mask, lop_err *e) {
    *mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (!strcmp(tok, "all")) { *mask = 0x7f; continue; }
        int found = -1;
        for (int i = 0; i < PROJ_N; i++)
            if (!strcmp(tok, arch_proj_short((lop_proj)i)) || !strcmp(tok, arch_proj_module((lop_proj)i))) found = i;
        if (found < 0)
            return lop_failc(e, LOP_EUSAGE, "unknown LoRA target '%s' (q,k,v,o,gate,up,down)", tok);
        *mask |= 1u << found;
    }
    if (!*mask) return lop_failc(e, LOP_EUSAGE, "empty LoRA target list");
    return 0;
}

static int add_param(tr_model *m, int cap, const char *name, int64_t rows, int64_t cols, lop_err *e) {
    if (m->np >= cap) return lop_fail(e, "internal: too many parameters");
    tr_param *p = &m->p[m->np];
    memset(p, 0, sizeof *p);
    p->name = strdup(name);
    p->rows = rows; p->cols = cols; p->n = (size_t)(rows * cols);
    p->st_index = -1;
    return m->np++;
}

/* bind a model tensor: shape check, stored bytes */
static int model_param(tr_model *m, int cap, const char *name, int64_t rows, int64_t cols,
                       int optional, lop_err *e) {
    int si = st_find(m->st, name);
    if (si < 0) {
        if (optional) return -1;
        return lop_fail(e, "tensor %s missing from the model", name), -2;
    }
    const st_info *t = &m->st->info[si];
    int64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
    int shape_ok = (cols == 1 && rows > 0) ? (t->ndim == 1 && numel == rows)
                 : (t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols);
    if (!shape_ok) return lop_fail(e, "tensor %s: shape does not match config.json", name), -2;
    if (!st_dtype_is_float(t->dtype))
        return lop_fail(e, "tensor %s: dtype %s is not a float type", name, st_dtype_name(t->dtype)), -2;
    int i = add_param(m, cap, name, cols == 1 ? 1 : rows, cols == 1 ? rows : cols, e);
    if (i < 0) return -2;
    m->p[i].st_index = si;
    m->p[i].dtype = t->dtype;
    m->p[i].src = m->st->data[si];
    return i;
}

static void to_f32(float *dst, const void *src, st_dtype t, size_t n) {
    if (t == ST_BF16) {
        const uint16_t *s = src;
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)s[i] << 16;
            memcpy(&dst[i], &u, 4);
        }
    } else if (t == ST_F32) {
        memcpy(dst, src, n * 4);
    } else {
        st_to_f32(dst, src, t, n);
    }
}

static int alloc_train(const st_model *st, tr_param *p, int want_w, lop_err *e) {
    if (want_w && !p->w) {
        p->w = malloc(p->n * sizeof(float));
        if (!p->w) return lop_fail(e, "out of memory for %s (%zu floats)", p->name, p->n);
        if (p->src) {
            to_f32(p->w, p->src, p->dtype, p->n);
            /* the float32 copy is the master now: the mapped file's pages need not stay
             * resident beside it (full fine-tuning would otherwise carry the model twice) */
            st_release(st, p->st_index);
        }
    }
    if (p->trainable) {
        p->g = calloc(p->n, sizeof(float));
        p->m = calloc(p->n, sizeof(float));
        p->v = calloc(p->n, sizeof(float));
        if (!p->g || !p->m || !p->v)
            return lop_fail(e, "out of memory for the optimizer state of %s", p->name);
    }
    return 0;
}

static void sparsity_mask(tr_param *p) {
    size_t z = 0;
    for (size_t i = 0; i < p->n; i++) z += p->w[i] == 0.0f;
    if (!z) return;
    p->zero_bits = calloc((p->n + 7) / 8, 1);
    if (!p->zero_bits) return;
    for (size_t i = 0; i < p->n; i++)
        if (p->w[i] == 0.0f) p->zero_bits[i >> 3] |= (uint8_t)(1u << (i & 7));
}

/* point a weight of the engine's model at a parameter's float32 copy (when it has one: trained
 * tensors, and the vectors of a LoRA run); frozen matrices stay the mapped stored bytes */
static void bind_param(lop_wref *r, const tr_param *p) {
    if (!p->w) return;
    r->data = p->w;
    r->dtype = ST_F32;
    r->bemem = 1;
}

/* the engine's model over the same tensors, its weights bound to the parameters, and the LoRA
 * adapters its matmul path applies */
static int bind_engine(tr_model *m, lop_err *e) {
    tr_priv *q = P(m);
    if (lop_model_from_st(&q->lm, m->st, NULL, 0, e)) return -1;
    lop_model *lm = q->lm;
    q->be = lop_model_backend(lm);
    bind_param(&lm->embed, &m->p[q->embed]);
    bind_param(&lm->final_norm, &m->p[q->fnorm]);
    if (q->head == q->embed) lm->head = lm->embed;
    else bind_param(&lm->head, &m->p[q->head]);
    for (int l = 0; l < q->L; l++) {
        for (int k = 0; k < PROJ_N; k++) bind_param(lop_weight(lm, l, (lop_proj)k), &m->p[q->proj[l][k]]);
        for (int k = 0; k < LVEC_N; k++)
            if (q->vec[l][k] >= 0) bind_param(lop_layer_vec(lm, l, (lop_lvec)k), &m->p[q->vec[l][k]]);
    }
    int any = 0;
    for (int l = 0; l < q->L; l++)
        for (int k = 0; k < PROJ_N; k++) any |= q->lora[l][k] >= 0;
    if (!any) return 0;
    q->ad = calloc((size_t)q->L * PROJ_N, sizeof *q->ad);
    if (!q->ad) return lop_fail(e, "out of memory");
    for (int l = 0; l < q->L; l++)
        for (int k = 0; k < PROJ_N; k++) {
            int a = q->lora[l][k];
            if (a < 0) continue;
            q->ad[l * PROJ_N + k] = (lop_adapter){m->p[a].w, m->p[a + 1].w, m->opt.lora_rank,
                                                  (float)(m->opt.lora_alpha / m->opt.lora_rank)};
        }
    return 0;
}

int tr_open(tr_model **out, const char *path, const tr_opts *o, uint64_t seed, lop_err *e) {
    tr_model *m = calloc(1, sizeof *m);
    tr_priv *q = calloc(1, sizeof *q);
    if (!m || !q) { free(m); free(q); return lop_fail(e, "out of memory"); }
    m->priv = q;
    m->opt = *o;
    *out = NULL;
    if (st_open(&m->st, path, e)) goto fail;
    if (!m->st->config_json) { lop_fail(e, "%s: no config.json", path); goto fail; }
    if (config_parse(&m->cfg, m->st->config_json, e)) { lop_wrap(e, "%s", path); goto fail; }
    {
        const char **names = malloc(sizeof(char *) * (m->st->n ? m->st->n : 1));
        if (!names) { lop_fail(e, "out of memory"); goto fail; }
        for (int i = 0; i < m->st->n; i++) names[i] = m->st->info[i].name;
        config_detect_prefix(&m->cfg, names, m->st->n);
        int bad = config_check_layer_count(&m->cfg, names, m->st->n, e);
        free(names);
        if (bad) { lop_wrap(e, "%s", path); goto fail; }
    }
    const lop_config *c = &m->cfg;
    int L = c->n_layers, C = c->hidden, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim,
        FF = c->inter, V = c->vocab;
    if (L < 1 || C < 1 || H < 1 || KV < 1 || D < 2 || (D & 1) || H % KV || FF < 1 || V < 2) {
        lop_fail(e, "%s: unsupported dimensions in config.json", path); goto fail;
    }
    q->L = L;
    q->proj = malloc(sizeof(*q->proj) * L);
    q->vec = malloc(sizeof(*q->vec) * L);
    q->lora = malloc(sizeof(*q->lora) * L);
    int cap = 3 + L * (PROJ_N * 3 + LVEC_N);
    m->p = calloc(cap, sizeof(tr_param));
    if (!q->proj || !q->vec || !q->lora || !m->p) { lop_fail(e, "out of memory"); goto fail; }
    char nm[512];
    if ((q->embed = model_param(m, cap, config_embed_name(c, nm, sizeof nm), V, C, 0, e)) < 0) goto fail;
    /* every per-layer tensor the architecture table (arch.h) gives this config, in its order */
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < PROJ_N; k++) {
            int64_t rows, cols;
            config_proj_shape(c, (lop_proj)k, &rows, &cols);
            config_proj_name(c, l, (lop_proj)k, nm, sizeof nm);
            if ((q->proj[l][k] = model_param(m, cap, nm, rows, cols, 0, e)) < 0) goto fail;
        }
        for (int k = 0; k < LVEC_N; k++) {
            q->vec[l][k] = -1;
            if (!config_has_vec(c, (lop_lvec)k)) continue;
            config_vec_name(c, l, (lop_lvec)k, nm, sizeof nm);
            if ((q->vec[l][k] = model_param(m, cap, nm, config_vec_len(c, (lop_lvec)k), 1, 0, e)) < 0) goto fail;
        }
    }
    if ((q->fnorm = model_param(m, cap, config_final_norm_name(c, nm, sizeof nm), C, 1, 0, e)) < 0) goto fail;
    q->head = q->embed;
    if (!c->tied && (q->head = model_param(m, cap, c->head_name, V, C, 0, e)) < 0) goto fail;

    /* what trains, what is float32 */
    int lora = o->lora_rank > 0;
    for (int i = 0; i < m->np; i++) {
        tr_param *p = &m->p[i];
        int is_mat = p->rows > 1;
        p->trainable = !lora;
        p->decay = is_mat || o->decay_vectors;
        int is_vocab = i == q->embed || i == q->head;
        /* LoRA (and frozen teachers): every frozen matrix stays mmap'd in its stored dtype, the
         * vocabulary ones too (embedding rows and head blocks are converted as they are used);
         * only the vectors get float32 copies */
        if (alloc_train(m->st, p, !lora || !is_mat, e)) goto fail;
        if (!lora && o->keep_sparsity && is_mat && !is_vocab) sparsity_mask(p);
        if (p->trainable) m->trainable_params += (int64_t)p->n;
    }
    trng rng; trng_seed(&rng, seed ^ 0x4c6f5241ull);
    for (int l = 0; l < L; l++)
        for (int k = 0; k < PROJ_N; k++) {
            q->lora[l][k] = -1;
            if (!lora || !(o->lora_targets >> k & 1)) continue;
            tr_param *base = &m->p[q->proj[l][k]];
            char mod[256];
            snprintf(mod, sizeof mod, "%.*s", (int)(strlen(base->name) - 7) & 255, base->name); /* - ".weight" */
            snprintf(nm, sizeof nm, "base_model.model.%s.lora_A.weight", mod);
            int a = add_param(m, cap, nm, o->lora_rank, base->cols, e);
            snprintf(nm, sizeof nm, "base_model.model.%s.lora_B.weight", mod);
            int b = add_param(m, cap, nm, base->rows, o->lora_rank, e);
            if (a < 0 || b < 0) goto fail;
            m->p[a].trainable = m->p[b].trainable = 1;
            m->p[a].decay = m->p[b].decay = 1;
            if (alloc_train(m->st, &m->p[a], 1, e) || alloc_train(m->st, &m->p[b], 1, e)) goto fail;
            memset(m->p[b].w, 0, m->p[b].n * sizeof(float));
            /* PEFT: A ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)); B = 0 */
            float bound = 1.0f / sqrtf((float)base->cols);
            for (size_t j = 0; j < m->p[a].n; j++)
                m->p[a].w[j] = (float)(trng_uniform(&rng) * 2 - 1) * bound;
            m->trainable_params += (int64_t)(m->p[a].n + m->p[b].n);
            q->lora[l][k] = a;
        }
    if (bind_engine(m, e)) goto fail;
    *out = m;
    return 0;
fail:
    tr_free(m);
    return -1;
}

void tr_free(tr_model *m) {
    if (!m) return;
    tr_priv *q = P(m);
    for (int i = 0; i < m->np; i++) {
        tr_param *p = &m->p[i];
        free(p->name); free(p->w); free(p->g); free(p->m); free(p->v); free(p->zero_bits);
    }
    free(m->p);
    if (q) {
        tr_release_acts(m);
        lop_model_free(q->lm);
        free(q->proj); free(q->vec); free(q->lora); free(q->ad); free(q->len);
        free(q);
    }
    if (m->st) { config_free(&m->cfg); st_close(m->st); }
    free(m);
}

int tr_find(const tr_model *m, const char *name) {
    for (int i = 0; i < m->np; i++) if (!strcmp(m->p[i].name, name)) return i;
    return -1;
}

/* ---------------------------------------------------------------- optimizer */

/* The optimizer's ops cannot fail on the CPU; a device's error would surface at its next forward
 * (tr_* keep their signatures for the callers that sum and step). */
void tr_zero_grad(tr_model *m) {
    lop_backend *be = P(m)->be;
    for (int i = 0; i < m->np; i++)
        if (m->p[i].g) be->op->zero(be, m->p[i].g, m->p[i].n * sizeof(float), NULL);
}

double tr_grad_sumsq(const tr_model *m) {
    lop_backend *be = P(m)->be;
    double s = 0;
    for (int i = 0; i < m->np; i++)
        if (m->p[i].trainable) {
            double x = 0;
            if (be->op->grad_sumsq(be, &x, m->p[i].g, m->p[i].n, NULL)) return NAN;
            s += x;
        }
    return s;
}

void tr_adamw_step(tr_model *m, double lr, const adamw_hp *hp, int64_t t, double clip) {
    lop_backend *be = P(m)->be;
    for (int i = 0; i < m->np; i++) {
        tr_param *p = &m->p[i];
        if (!p->trainable) continue;
        adamw_hp h = *hp;
        if (!p->decay) h.wd = 0;
        be->op->adamw(be, p->w, p->g, p->m, p->v, m->opt.keep_sparsity ? p->zero_bits : NULL, p->n,
                      (float)clip, lr, &h, t, NULL);
    }
}

double tr_step_flops(const tr_model *m, int64_t n, int T) {
    const lop_config *c = &m->cfg;
    double mat = 0;
    for (int i = 0; i < m->np; i++)
        if (m->p[i].rows > 1 && m->p[i].st_index >= 0 && (i != P(m)->embed || c->tied)) mat += (double)m->p[i].n;
    /* 6 per weight per token (forward 2, backward 4) + attention (QK^T, PV: 4*T*D*H per token fwd) */
    double att = 3.0 * 4.0 * T * c->head_dim * c->n_heads * c->n_layers;
    return (6.0 * mat + att) * (double)n;
}

