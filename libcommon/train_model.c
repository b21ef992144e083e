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

/* floats a parameter takes in an arena (64-byte aligned) */
static size_t span(size_t n) { return (n + 15) & ~(size_t)15; }

/* the zero mask of a matrix's values x (host), in backend memory; none when nothing is zero */
static int sparsity_mask(lop_backend *be, tr_param *p, const float *x, lop_err *e) {
    size_t z = 0, nb = (p->n + 7) / 8;
    for (size_t i = 0; i < p->n; i++) z += x[i] == 0.0f;
    if (!z) return 0;
    if (!(p->zero_bits = be->op->alloc(be, nb))) return lop_fail(e, "out of %s memory", be->name);
    /* built on the host: in place on the cpu, else uploaded */
    uint8_t *bits = be->host_mem ? p->zero_bits : malloc(nb);
    if (!bits) return lop_fail(e, "out of memory");
    memset(bits, 0, nb);
    for (size_t i = 0; i < p->n; i++)
        if (x[i] == 0.0f) bits[i >> 3] |= (uint8_t)(1u << (i & 7));
    if (be->host_mem) return 0;
    int rc = be->op->upload(be, p->zero_bits, bits, nb, e);
    free(bits);
    return rc;
}

/* Every float32 array in backend memory: the values of what has a float32 copy (trained tensors;
 * with LoRA the vectors and the adapters), and gradients and AdamW moments of what trains. The
 * values are made on the host (converted from the stored dtype, or PEFT's initialization) and,
 * on a device, uploaded one tensor at a time. */
static int alloc_arrays(tr_model *m, const char *want_w, int sparsity, uint64_t seed, lop_err *e) {
    tr_priv *q = P(m);
    lop_backend *be = q->be;
    size_t wn = 0, gn = 0, big = 0;
    for (int i = 0; i < m->np; i++) {
        if (want_w[i]) wn += span(m->p[i].n);
        if (m->p[i].trainable) gn += span(m->p[i].n);
        if (m->p[i].n > big) big = m->p[i].n;
    }
    if (wn && !(q->wa = be->op->alloc(be, wn * sizeof(float))))
        return lop_fail(e, "out of %s memory for the float32 weights (%zu MB)", be->name, wn * 4 >> 20);
    if (gn && !(q->sa = be->op->alloc(be, 3 * gn * sizeof(float))))
        return lop_fail(e, "out of %s memory for the gradients and AdamW states (%zu MB)", be->name,
                        3 * gn * 4 >> 20);
    q->ga_n = gn;
    if (gn && be->op->zero(be, q->sa, 3 * gn * sizeof(float), e)) return -1;
    float *host = NULL;
    if (!be->host_mem && wn && !(host = malloc(big * sizeof(float))))
        return lop_fail(e, "out of memory");
    trng rng; trng_seed(&rng, seed ^ 0x4c6f5241ull);
    size_t wo = 0, go = 0;
    int rc = 0;
    for (int i = 0; i < m->np && !rc; i++) {
        tr_param *p = &m->p[i];
        if (p->trainable) {
            p->g = q->sa + go; p->m = q->sa + gn + go; p->v = q->sa + 2 * gn + go;
            go += span(p->n);
        }
        if (!want_w[i]) continue;
        p->w = q->wa + wo;
        wo += span(p->n);
        float *x = be->host_mem ? p->w : host;
        if (p->src) {
            to_f32(x, p->src, p->dtype, p->n);
            /* the float32 copy is the master now: the mapped file's pages need not stay
             * resident beside it (full fine-tuning would otherwise carry the model twice) */
            st_release(m->st, p->st_index);
        } else if (strstr(p->name, ".lora_A.")) {
            /* PEFT: A ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)); B = 0 */
            float bound = 1.0f / sqrtf((float)p->cols);
            for (size_t j = 0; j < p->n; j++) x[j] = (float)(trng_uniform(&rng) * 2 - 1) * bound;
        } else {
            memset(x, 0, p->n * sizeof(float));
        }
        if (sparsity && p->trainable && p->rows > 1 && i != q->embed && i != q->head)
            rc = sparsity_mask(be, p, x, e);
        if (!rc && !be->host_mem) rc = be->op->upload(be, p->w, x, p->n * sizeof(float), e);
    }
    free(host);
    return rc;
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
    lop_model *lm = q->lm;
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

    /* what trains, what has a float32 copy */
    int lora = o->lora_rank > 0;
    char *want_w = calloc((size_t)cap, 1);
    if (!want_w) { lop_fail(e, "out of memory"); goto fail; }
    for (int i = 0; i < m->np; i++) {
        tr_param *p = &m->p[i];
        p->trainable = !lora;
        p->decay = p->rows > 1 || o->decay_vectors;
        /* LoRA (and frozen teachers): every frozen matrix stays mmap'd in its stored dtype, the
         * vocabulary ones too (embedding rows and head blocks are converted as they are used);
         * only the vectors get float32 copies */
        want_w[i] = !lora || p->rows == 1;
        if (p->trainable) m->trainable_params += (int64_t)p->n;
    }
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
            if (a < 0 || b < 0) { free(want_w); goto fail; }
            m->p[a].trainable = m->p[b].trainable = 1;
            m->p[a].decay = m->p[b].decay = 1;
            want_w[a] = want_w[b] = 1;
            m->trainable_params += (int64_t)(m->p[a].n + m->p[b].n);
            q->lora[l][k] = a;
        }
    /* the engine's model over the same tensors, on its device; the float32 arrays in that
     * backend's memory; then the engine's weights bound to them, and (a device) the frozen ones
     * uploaded in their stored dtype */
    int rc = lop_model_from_st(&q->lm, m->st, NULL, 0, e);
    if (!rc && o->device && strcmp(o->device, "cpu")) rc = lop_model_use_device(q->lm, o->device, e);
    if (!rc) {
        q->be = lop_model_backend(q->lm);
        if (o->gemm != LOP_GEMM_F32 && lop_model_set_gemm(q->lm, o->gemm) != o->gemm)
            rc = lop_failc(e, LOP_EUSAGE, "--gemm bf16: %s cannot run bf16 products (the cpu needs AVX512-BF16)",
                           q->be->name);
    }
    if (!rc && q->be->host_mem == 0 && !q->be->op->adamw)
        rc = lop_failc(e, LOP_EUSAGE, "the %s backend cannot train", q->be->name);
    if (!rc) rc = alloc_arrays(m, want_w, !lora && o->keep_sparsity, seed, e);
    free(want_w);
    if (rc || bind_engine(m, e)) goto fail;
    if (!q->be->host_mem && lop_model_load_weights(q->lm, e)) goto fail;
    *out = m;
    return 0;
fail:
    tr_free(m);
    return -1;
}

void tr_free(tr_model *m) {
    if (!m) return;
    tr_priv *q = P(m);
    lop_backend *be = q ? q->be : NULL;
    for (int i = 0; i < m->np; i++) {
        tr_param *p = &m->p[i];
        free(p->name);
        if (p->zero_bits) be->op->release(be, p->zero_bits);
    }
    free(m->p);
    if (q) {
        if (q->wa) be->op->release(be, q->wa);
        if (q->sa) be->op->release(be, q->sa);
        tr_release_acts(m);
        lop_model_free(q->lm);
        free(q->proj); free(q->vec); free(q->lora); free(q->ad); free(q->len);
        free(q);
    }
    if (m->st) { config_free(&m->cfg); st_close(m->st); }
    free(m);
}

int tr_param_read(const tr_model *m, int i, int which, float *dst, lop_err *e) {
    const float *a = tr_param_array(m, i, which);
    if (!a) return lop_fail(e, "internal: parameter %d has no array %d", i, which);
    lop_backend *be = P(m)->be;
    return be->op->download(be, dst, a, m->p[i].n * sizeof(float), e);
}

int tr_param_write(tr_model *m, int i, int which, const float *src, lop_err *e) {
    float *a = tr_param_array(m, i, which);
    if (!a) return lop_fail(e, "internal: parameter %d has no array %d", i, which);
    lop_backend *be = P(m)->be;
    return be->op->upload(be, a, src, m->p[i].n * sizeof(float), e);
}

size_t tr_grad_floats(const tr_model *m) { return P(m)->ga_n; }
int tr_host_mem(const tr_model *m) { return P(m)->be->host_mem; }

float *tr_grad_alloc(tr_model *m) {
    lop_backend *be = P(m)->be;
    return be->op->alloc(be, (P(m)->ga_n ? P(m)->ga_n : 1) * sizeof(float));
}

void tr_grad_release(tr_model *m, float *buf) {
    if (buf) P(m)->be->op->release(P(m)->be, buf);
}

int tr_grad_get(tr_model *m, float *dst, int add, lop_err *e) {
    tr_priv *q = P(m);
    if (!q->ga_n) return 0;
    return add ? q->be->op->add(q->be, dst, dst, q->sa, q->ga_n, e)
               : q->be->op->copy(q->be, dst, q->sa, q->ga_n * sizeof(float), e);
}

int tr_grad_add(tr_model *m, float *a, const float *b, lop_err *e) {
    tr_priv *q = P(m);
    return q->ga_n ? q->be->op->add(q->be, a, a, b, q->ga_n, e) : 0;
}

int tr_grad_put(tr_model *m, const float *src, lop_err *e) {
    tr_priv *q = P(m);
    return q->ga_n ? q->be->op->copy(q->be, q->sa, src, q->ga_n * sizeof(float), e) : 0;
}

float *tr_grad_host(tr_model *m, float *buf, float *host, lop_err *e) {
    tr_priv *q = P(m);
    if (q->be->host_mem) return buf;
    return q->be->op->download(q->be, host, buf, q->ga_n * sizeof(float), e) ? NULL : host;
}

int tr_grad_from_host(tr_model *m, float *buf, const float *host, lop_err *e) {
    tr_priv *q = P(m);
    if (q->be->host_mem || buf == host) return 0;
    return q->be->op->upload(q->be, buf, host, q->ga_n * sizeof(float), e);
}

const char *tr_device(const tr_model *m) { return P(m)->be->name; }
lop_gemm tr_gemm(const tr_model *m) { return lop_model_gemm(P(m)->lm); }
size_t tr_device_peak(const tr_model *m) { return P(m)->be->op->mem_peak(P(m)->be); }

int tr_find(const tr_model *m, const char *name) {
    for (int i = 0; i < m->np; i++) if (!strcmp(m->p[i].name, name)) return i;
    return -1;
}

/* ---------------------------------------------------------------- optimizer */

/* The optimizer's ops cannot fail on the CPU; a device's error would surface at its next forward
 * (tr_* keep their signatures for the callers that sum and step). */
void tr_zero_grad(tr_model *m) {
    tr_priv *q = P(m);
    if (q->ga_n) q->be->op->zero(q->be, q->sa, q->ga_n * sizeof(float), NULL);
}

double tr_grad_sumsq(const tr_model *m) {
    const tr_priv *q = P(m);
    lop_backend *be = q->be;
    double s = 0;
    /* a device: one reduction over every gradient (one synchronization per step, not one per
     * tensor); the cpu sums tensor by tensor, as its numbers always have */
    if (!be->host_mem) {
        if (q->ga_n && be->op->grad_sumsq(be, &s, q->sa, q->ga_n, NULL)) return NAN;
        return s;
    }
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
    if (be->op->adamw_many) { /* one launch on a device (310 tensors for Qwen3-0.6B) */
        lop_adamw_item *it = malloc(sizeof *it * (size_t)(m->np ? m->np : 1));
        int k = 0;
        for (int i = 0; it && i < m->np; i++) {
            tr_param *p = &m->p[i];
            if (!p->trainable) continue;
            it[k++] = (lop_adamw_item){p->w, p->g, p->m, p->v,
                                       m->opt.keep_sparsity ? p->zero_bits : NULL, p->n, p->decay};
        }
        int rc = it ? be->op->adamw_many(be, it, k, (float)clip, lr, hp, t, NULL) : -1;
        free(it);
        if (!rc) return;
    }
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

