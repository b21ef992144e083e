/* model_forward.c — one forward pass over a packed batch: embedding, layers (attention block, MLP
 * block, Gemma's extra norms), final norm, then the head (model_head.c). Activations live in one
 * arena laid out per layer (model.h: lop_layer_acts). All parallel work is OpenMP; GEMMs run
 * single-threaded OpenBLAS inside OpenMP threads (nn_matmul.c says why). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"
#include "model_priv.h"
#include "nn.h"

static int g_allow_long;
void lop_allow_long_context(int on) { g_allow_long = on; }
int lop_long_context_allowed(void) { return g_allow_long; }

int engine_init(lop_model *m, lop_err *e) {
    engine_priv *p = m->priv;
    const lop_config *c = &m->cfg;
    int D = c->head_dim;
    p->inv_full = malloc(sizeof(float) * D / 2);
    p->inv_local = malloc(sizeof(float) * D / 2);
    if (!p->inv_full || !p->inv_local) return lop_fail(e, "out of memory");
    if (lop_backend_cpu_new(&p->be, c, e)) return -1;
    rope_inv_freq(p->inv_full, D, &c->rope_full);
    rope_inv_freq(p->inv_local, D, c->gemma ? &c->rope_local : &c->rope_full);
    return 0;
}

void engine_free(lop_model *m) {
    engine_priv *p = m->priv;
    if (!p) return;
    free(p->inv_full);
    free(p->inv_local);
    if (p->be) {
        if (p->arena) p->be->op->release(p->be, p->arena);
        p->be->op->destroy(p->be);
    }
    free(p->ibuf);
    free(p->att_off);
    free(p->stage);
    free(m->acts.layer);
}

/* every weight view of the model (for uploads) */
static int each_weight(lop_model *m, int (*fn)(lop_backend *, const lop_wref *, void *), void *u) {
    engine_priv *p = m->priv;
    if (fn(p->be, &m->embed, u) || fn(p->be, &m->final_norm, u)) return -1;
    if (fn(p->be, &m->head, u)) return -1; /* tied: the backend shares the embedding's copy */
    for (int l = 0; l < m->cfg.n_layers; l++) {
        for (int k = 0; k < PROJ_N; k++)
            if (m->layers[l].proj[k].data && fn(p->be, &m->layers[l].proj[k], u)) return -1;
        for (int k = 0; k < LVEC_N; k++)
            if (m->layers[l].vec[k].data && fn(p->be, &m->layers[l].vec[k], u)) return -1;
    }
    return 0;
}

static size_t wref_bytes(const lop_wref *w) {
    return w->data && !w->bemem ? (size_t)(w->rows * w->cols) * st_dtype_size(w->dtype) : 0;
}

static int load_one(lop_backend *be, const lop_wref *w, void *u) {
    return be->op->weight_load(be, w, (lop_err *)u);
}

int lop_model_set_device(lop_model *m, const char *device, lop_err *e) {
    return lop_model_use_device(m, device, e) || lop_model_load_weights(m, e) ? -1 : 0;
}

int lop_model_use_device(lop_model *m, const char *device, lop_err *e) {
    engine_priv *p = m->priv;
    int dev = lop_device_parse(device);
    if (dev == -2) return lop_failc(e, LOP_EUSAGE, "--device: expected cpu, cuda or cuda:N, not '%s'", device);
    lop_backend *nb;
    if (dev == -1 ? lop_backend_cpu_new(&nb, &m->cfg, e) : lop_backend_cuda_new(&nb, dev, &m->cfg, e))
        return -1;
    if (p->arena) p->be->op->release(p->be, p->arena);
    p->arena = NULL;
    p->arena_cap = 0;
    p->be->op->destroy(p->be);
    p->be = nb;
    p->gemm = nb->op->gemm_supported(nb, (lop_gemm)p->gemm_req);
    return 0;
}

int lop_model_load_weights(lop_model *m, lop_err *e) {
    engine_priv *p = m->priv;
    lop_backend *nb = p->be;
    /* weights once, in their stored dtype (a device backend checks they fit first) */
    size_t bytes = wref_bytes(&m->embed) + wref_bytes(&m->final_norm) +
                   (m->head.data != m->embed.data ? wref_bytes(&m->head) : 0);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        for (int k = 0; k < PROJ_N; k++) bytes += wref_bytes(&m->layers[l].proj[k]);
        for (int k = 0; k < LVEC_N; k++) bytes += wref_bytes(&m->layers[l].vec[k]);
    }
    if (nb->op->weights_fit(nb, bytes, e) || each_weight(m, load_one, e)) return -1;
    return 0;
}

const char *lop_model_device(const lop_model *m) {
    const engine_priv *p = m->priv;
    return p->be->name;
}

size_t lop_model_device_peak(const lop_model *m) {
    const engine_priv *p = m->priv;
    return p->be->op->mem_peak(p->be);
}

int lop_model_weights_changed(lop_model *m, lop_err *e) {
    engine_priv *p = m->priv;
    return p->be->op->weights_changed(p->be, e);
}

static float *take(float **a, size_t n) {
    float *r = *a;
    *a += n;
    return r;
}

/* rank of layer l's adapter on projection k (0: none) */
static int lora_r(const lop_fwd_opts *o, int l, int k) {
    const lop_adapter *a = o->adapters ? &o->adapters[(size_t)l * PROJ_N + k] : NULL;
    return a && a->A ? a->r : 0;
}

/* Lay the arena out for N rows (B sequences; att_total probabilities per kept set). */
static int arena_layout(lop_model *m, int N, const lop_fwd_opts *o, int64_t att_total, lop_err *e) {
    engine_priv *p = m->priv;
    const lop_config *c = &m->cfg;
    int keep = o->keep_acts, all = keep == LOP_KEEP_ALL;
    size_t C = c->hidden, FF = c->inter, L = c->n_layers, qd = (size_t)c->n_heads * c->head_dim,
           kd = (size_t)c->n_kv_heads * c->head_dim, n = N;
    /* 16-float alignment of every buffer */
#define A(x) (((size_t)(x) + 15) & ~(size_t)15)
    size_t per = A(n) * 5 + A(n * C) * 5 + A(n * qd) * 3 + A(n * kd) * 3 + A(n * c->n_heads) +
                 A(n * c->n_kv_heads) + A(n * FF) * 3 + (keep ? A(att_total) : 0);
    size_t sets = all ? (L ? L : 1) : 1;
    /* LoRA: each kept set holds xa [N, r] of its adapted projections (a shared set: the largest
     * rank any layer has there), and one dropout scratch [N, widest input] */
    int shared_r[PROJ_N] = {0};
    size_t lora = 0, maxin = C > FF ? C : FF;
    if (qd > maxin) maxin = qd;
    for (size_t l = 0; l < L; l++)
        for (int k = 0; k < PROJ_N; k++) {
            int r = lora_r(o, (int)l, k);
            if (all) lora += r ? A(n * r) : 0;
            if (r > shared_r[k]) shared_r[k] = r;
        }
    if (!all)
        for (int k = 0; k < PROJ_N; k++) lora += shared_r[k] ? A(n * shared_r[k]) : 0;
    if (o->adapters) lora += A(n * maxin);
    size_t D = c->head_dim;
    size_t total = A(n * C) * (L + 2) + A(n) + A(n * D) * 2 + per * sets + lora;
    if (!m->acts.layer) {
        m->acts.layer = calloc(L ? L : 1, sizeof *m->acts.layer);
        if (!m->acts.layer) return lop_fail(e, "out of memory");
    }
    if (total > p->arena_cap) {
        if (p->arena) p->be->op->release(p->be, p->arena);
        p->arena_cap = 0;
        p->arena = p->be->op->alloc(p->be, total * sizeof(float));
        if (!p->arena)
            return lop_fail(e, "out of %s memory for activations (%zu MB for %d rows)", p->be->name,
                            total * sizeof(float) >> 20, N);
        p->arena_cap = total;
        if (total > p->arena_peak) p->arena_peak = total;
    }
    float *a = p->arena;
#define TAKE(sz) take(&a, A(sz))
    for (size_t l = 0; l < L; l++) m->acts.layer[l].x_in = TAKE(n * C);
    m->acts.x_final = TAKE(n * C);
    m->acts.xn_final = TAKE(n * C);
    m->acts.rstd_final = TAKE(n);
    m->acts.rope_full = TAKE(n * D);
    m->acts.rope_local = TAKE(n * D);
    m->acts.lora_tmp = o->adapters ? TAKE(n * maxin) : NULL;
    for (size_t l = 0; l < (all ? L : (L ? 1 : 0)); l++) {
        lop_layer_acts *s = &m->acts.layer[l];
        s->rstd_attn = TAKE(n);
        s->xn_attn = TAKE(n * C);
        s->q_raw = TAKE(n * qd);
        s->k_raw = TAKE(n * kd);
        s->q_rstd = TAKE(n * c->n_heads);
        s->k_rstd = TAKE(n * c->n_kv_heads);
        s->q = TAKE(n * qd);
        s->k = TAKE(n * kd);
        s->v = TAKE(n * kd);
        s->att = keep && att_total ? TAKE(att_total) : NULL;
        s->att_out = TAKE(n * qd);
        s->o = TAKE(n * C);
        s->rstd_post_attn = TAKE(n);
        s->x_mid = TAKE(n * C);
        s->rstd_mlp = TAKE(n);
        s->xn_mlp = TAKE(n * C);
        s->gate = TAKE(n * FF);
        s->up = TAKE(n * FF);
        s->h = TAKE(n * FF);
        s->mlp_out = TAKE(n * C);
        s->rstd_post_mlp = TAKE(n);
        for (int k = 0; k < PROJ_N; k++) {
            int r = all ? lora_r(o, (int)l, k) : shared_r[k];
            s->xa[k] = r ? TAKE(n * r) : NULL;
        }
    }
    if (!all) /* every layer's scratch aliases layer 0's (x_in stays per layer) */
        for (size_t l = 1; l < L; l++) {
            float *x = m->acts.layer[l].x_in;
            m->acts.layer[l] = m->acts.layer[0];
            m->acts.layer[l].x_in = x;
        }
#undef TAKE
#undef A
    m->acts.N = N;
    m->acts.keep = keep;
    return 0;
}

/* off/pos/seq of the batch (positions continue a kv cache) */
static int batch_index(lop_model *m, lop_batch *b, const lop_kv *kv, lop_err *e) {
    engine_priv *p = m->priv;
    if (b->B < 1 || !b->len || !b->ids) return lop_failc(e, LOP_EUSAGE, "empty batch");
    int64_t N = 0;
    for (int i = 0; i < b->B; i++) {
        if (b->len[i] < 1) return lop_failc(e, LOP_EUSAGE, "sequence %d of the batch is empty", i);
        N += b->len[i];
    }
    if (N > (1 << 30)) return lop_failc(e, LOP_EUSAGE, "batch of %lld tokens is too large", (long long)N);
    if (kv) {
        if (kv->B != b->B) return lop_failc(e, LOP_EUSAGE, "kv cache holds %d sequences, batch has %d", kv->B, b->B);
        if (kv->n_layers != m->cfg.n_layers) return lop_failc(e, LOP_EUSAGE, "kv cache of another model");
        for (int i = 0; i < b->B; i++)
            if (kv->len[i] + b->len[i] > kv->max_t)
                return lop_fail(e, "kv cache full: sequence %d needs %d positions, holds %d", i,
                                kv->len[i] + b->len[i], kv->max_t);
    }
    size_t need = (size_t)b->B + 1 + 2 * (size_t)N;
    if (need > p->ibuf_cap) {
        free(p->ibuf);
        p->ibuf = malloc(sizeof(int) * need);
        p->ibuf_cap = p->ibuf ? need : 0;
        if (!p->ibuf) return lop_fail(e, "out of memory");
    }
    int *off = p->ibuf, *pos = off + b->B + 1, *seq = pos + N;
    off[0] = 0;
    for (int i = 0; i < b->B; i++) {
        off[i + 1] = off[i] + b->len[i];
        int p0 = kv ? kv->len[i] : 0;
        for (int t = 0; t < b->len[i]; t++) {
            pos[off[i] + t] = p0 + t;
            seq[off[i] + t] = i;
        }
    }
    if (m->cfg.max_pos > 0 && !lop_long_context_allowed())
        for (int i = 0; i < b->B; i++) {
            int last = (kv ? kv->len[i] : 0) + b->len[i];
            if (last > m->cfg.max_pos)
                return lop_fail(e, "%d positions: past the model's context (max_position_embeddings "
                                "%d; --allow-long-context runs them)", last, m->cfg.max_pos);
        }
    for (int64_t i = 0; i < N; i++)
        if (b->ids[i] < 0 || b->ids[i] >= m->cfg.vocab)
            return lop_failc(e, LOP_EUSAGE, "token id %d out of range (vocab %d)", b->ids[i], m->cfg.vocab);
    b->N = (int)N;
    b->off = off;
    b->pos = pos;
    b->seq = seq;
    return 0;
}

lop_gemm lop_model_set_gemm(lop_model *m, lop_gemm g) {
    engine_priv *p = m->priv;
    p->gemm_req = g;
    p->gemm = p->be->op->gemm_supported(p->be, g);
    return (lop_gemm)p->gemm;
}

lop_gemm lop_model_gemm(const lop_model *m) {
    const engine_priv *p = m->priv;
    return (lop_gemm)p->gemm;
}

int lop_gemm_parse(const char *s, lop_gemm *out) {
    if (!strcmp(s, "f32")) *out = LOP_GEMM_F32;
    else if (!strcmp(s, "bf16")) *out = LOP_GEMM_BF16;
    else return -1;
    return 0;
}

/* ---- hooks see host memory: device activations go through a staging copy ---- */

/* host view of n floats of backend memory x (slot 0 or 1 of the staging buffer) */
static float *host_view(lop_model *m, const float *x, size_t n, int slot, lop_err *e) {
    engine_priv *p = m->priv;
    if (p->be->host_mem) return (float *)x;
    if (2 * n > p->stage_cap) {
        free(p->stage);
        p->stage = malloc(sizeof(float) * 2 * n);
        p->stage_cap = p->stage ? 2 * n : 0;
        if (!p->stage) { lop_fail(e, "out of memory for a hook's copy of %zu floats", n); return NULL; }
    }
    float *h = p->stage + (size_t)slot * n;
    if (p->be->op->download(p->be, h, x, sizeof(float) * n, e)) return NULL;
    return h;
}

#define HOOK(call) do { if (call) return lop_fail(e, "a hook stopped the forward"); } while (0)

/* the error for non-finite values first seen at slot (0: the embedding, l + 1: layer l's output) */
static int nonfinite_fail(lop_model *m, int slot, lop_err *e) {
    if (slot == 0)
        return lop_fail(e, "non-finite values (NaN or Inf) in the embedding (%s)",
                        m->embed.name ? m->embed.name : m->cfg.family->embed);
    return lop_fail(e, "non-finite values (NaN or Inf) first appear in layer %d (%slayers.%d.*)",
                    slot - 1, m->cfg.prefix, slot - 1);
}

static int nonfinite_check(lop_model *m, const float *x, size_t n, int slot, lop_err *e) {
    engine_priv *p = m->priv;
    int r = p->be->op->nonfinite(p->be, x, n, slot, e);
    if (r < 0) return -1;
    return r ? nonfinite_fail(m, slot, e) : 0;
}

/* a device's deferred answer: the first slot flagged during the forward, if any */
static int nonfinite_done(lop_model *m, int nslots, lop_err *e) {
    engine_priv *p = m->priv;
    int first = p->be->op->nonfinite_first(p->be, nslots, e);
    if (first == -2) return -1;
    return first >= 0 ? nonfinite_fail(m, first, e) : 0;
}

static int hook_linear(lop_model *m, const lop_hooks *hk, int l, int pj, const float *X, int N,
                       int in, const lop_batch *b, lop_err *e) {
    const float *h = host_view(m, X, (size_t)N * in, 0, e);
    if (!h) return -1;
    HOOK(hk->linear_in(hk->user, l, pj, m->layers[l].proj[pj].name, h, N, in, b));
    return 0;
}

/* the residual hook may modify x: copied back to the device afterwards */
static int hook_resid(lop_model *m, const lop_hooks *hk, int l, lop_resid_where wh, float *x,
                      const lop_batch *b, lop_err *e) {
    engine_priv *p = m->priv;
    size_t n = (size_t)b->N * m->cfg.hidden;
    float *h = host_view(m, x, n, 0, e);
    if (!h) return -1;
    HOOK(hk->resid(hk->user, l, wh, h, b));
    if (!p->be->host_mem && p->be->op->upload(p->be, x, h, sizeof(float) * n, e)) return -1;
    return 0;
}

#define BE (p->be)
#define OP(call) do { if (BE->op->call) return -1; } while (0)

/* The one matmul path: out[N, out] = x @ W^T (+ bias) of projection pj of layer l, then its LoRA
 * adapter (if any) beside it, keeping xa for the backward. */
static int mm(lop_model *m, int l, int pj, lop_layer_acts *s, float *out, const float *x, int N,
              const lop_fwd_opts *o, lop_err *e) {
    engine_priv *p = m->priv;
    const lop_wref *w = &m->layers[l].proj[pj];
    const lop_wref *bias = &m->layers[l].vec[arch_proj_bias((lop_proj)pj)];
    const lop_adapter *ad = o->adapters ? &o->adapters[(size_t)l * PROJ_N + pj] : NULL;
    if (ad && ad->A && !bias->data && BE->op->lora_matmul) { /* one op: a device's fusion */
        int rc = BE->op->lora_matmul(BE, out, s->xa[pj], m->acts.lora_tmp, x, w, ad->A, ad->B, N,
                                     ad->r, ad->scale, o->dropout, o->dropout_seed,
                                     (uint64_t)l * PROJ_N + pj + 1, (lop_gemm)p->gemm, e);
        if (rc <= 0) return rc;
    }
    if (BE->op->matmul(BE, out, x, w, bias, N, (lop_gemm)p->gemm, e)) return -1;
    if (!ad || !ad->A) return 0;
    if (!BE->op->lora_forward)
        return lop_failc(e, LOP_EUSAGE, "LoRA is not implemented on %s", BE->name);
    return BE->op->lora_forward(BE, out, s->xa[pj], m->acts.lora_tmp, x, ad->A, ad->B, N,
                                (int)w->cols, (int)w->rows, ad->r, ad->scale, o->dropout,
                                o->dropout_seed, (uint64_t)l * PROJ_N + pj + 1, (lop_gemm)p->gemm, e);
}

/* out = x @ W^T (+ bias) + r for projection pj of layer l, through the backend's fused op where
 * it has one (no bias, no adapter); else mm into tmp, then the add. The product itself is never
 * kept: only gemma's post-norms read it in a backward, and they do not come here. */
static int mm_add(lop_model *m, int l, int pj, lop_layer_acts *s, float *out, float *tmp,
                  const float *x, const float *r, int N, int OC, const lop_fwd_opts *o, lop_err *e) {
    engine_priv *p = m->priv;
    const lop_wref *bias = &m->layers[l].vec[arch_proj_bias((lop_proj)pj)];
    const lop_adapter *ad = o->adapters ? &o->adapters[(size_t)l * PROJ_N + pj] : NULL;
    if (BE->op->matmul_add && !bias->data && !(ad && ad->A)) {
        int rc = BE->op->matmul_add(BE, out, x, &m->layers[l].proj[pj], r, N, (lop_gemm)p->gemm, e);
        if (rc <= 0) return rc;
    }
    if (mm(m, l, pj, s, tmp, x, N, o, e)) return -1;
    return BE->op->add(BE, out, tmp, r, (size_t)N * OC, e);
}

static int attention_block(lop_model *m, int l, lop_layer_acts *s, lop_batch *b,
                           const lop_fwd_opts *o, lop_err *e) {
    const lop_config *c = &m->cfg;
    engine_priv *p = m->priv;
    lop_layer_w *w = &m->layers[l];
    const lop_hooks *hk = o->hooks;
    int N = b->N, C = c->hidden, D = c->head_dim, Hq = c->n_heads, Hkv = c->n_kv_heads;
    int qd = Hq * D, kd = Hkv * D;
    /* without hooks (or a backward) the normed input and the attention output are read by the
     * next GEMMs only: a device may keep them in those GEMMs' form */
    int priv = !(hk && hk->linear_in) && !m->acts.keep && !o->adapters;
    if (priv && BE->op->rmsnorm_gemm_in)
        OP(rmsnorm_gemm_in(BE, s->xn_attn, s->rstd_attn, s->x_in, &w->vec[LVEC_ATTN_NORM], N, C,
                           (float)c->eps, c->gemma, (lop_gemm)p->gemm, e));
    else
        OP(rmsnorm(BE, s->xn_attn, s->rstd_attn, s->x_in, &w->vec[LVEC_ATTN_NORM], N, C, (float)c->eps,
                   c->gemma, e));
    if (hk && hk->linear_in)
        for (int pj = PROJ_Q; pj <= PROJ_V; pj++)
            if (hook_linear(m, hk, l, pj, s->xn_attn, N, C, b, e)) return -1;
    if (mm(m, l, PROJ_Q, s, s->q_raw, s->xn_attn, N, o, e) ||
        mm(m, l, PROJ_K, s, s->k_raw, s->xn_attn, N, o, e) ||
        mm(m, l, PROJ_V, s, s->v, s->xn_attn, N, o, e))
        return -1;
    int sliding = c->layer_sliding && c->layer_sliding[l] && c->sliding_window > 0;
    const float *cs = sliding && c->gemma ? m->acts.rope_local : m->acts.rope_full;
    int fused = 0;
    if (c->qk_norm && BE->op->qk_norm_rope) { /* one pass where the backend has it */
        int r = BE->op->qk_norm_rope(BE, s->q, s->q_rstd, s->q_raw, &w->vec[LVEC_Q_NORM], cs, N, Hq, D,
                                     (float)c->eps, c->gemma, e);
        if (r == 0)
            r = BE->op->qk_norm_rope(BE, s->k, s->k_rstd, s->k_raw, &w->vec[LVEC_K_NORM], cs, N, Hkv, D,
                                     (float)c->eps, c->gemma, e);
        if (r < 0) return -1;
        fused = r == 0;
    }
    if (!fused) {
        if (c->qk_norm) {
            OP(rmsnorm(BE, s->q, s->q_rstd, s->q_raw, &w->vec[LVEC_Q_NORM], N * Hq, D, (float)c->eps,
                       c->gemma, e));
            OP(rmsnorm(BE, s->k, s->k_rstd, s->k_raw, &w->vec[LVEC_K_NORM], N * Hkv, D, (float)c->eps,
                       c->gemma, e));
        } else {
            OP(copy(BE, s->q, s->q_raw, sizeof(float) * (size_t)N * qd, e));
            OP(copy(BE, s->k, s->k_raw, sizeof(float) * (size_t)N * kd, e));
        }
        OP(rope_apply(BE, s->q, cs, N, Hq, D, e));
        OP(rope_apply(BE, s->k, cs, N, Hkv, D, e));
    }
    lop_attn_args aa = {
        .out = s->att_out, .att = s->att, .att_off = m->acts.att_off, .q = s->q, .k = s->k,
        .v = s->v, .B = b->B, .len = b->len, .off = b->off, .kv = o->kv, .layer = l, .Hq = Hq,
        .Hkv = Hkv, .D = D, .window = sliding ? c->sliding_window : 0,
        .scale = (float)c->attn_scale, .softcap = (float)c->attn_softcap, .gemm = (lop_gemm)p->gemm,
        .out_gemm_only = priv};
    OP(attention(BE, &aa, e));
    if (hk && hk->linear_in && hook_linear(m, hk, l, PROJ_O, s->att_out, N, qd, b, e)) return -1;
    if (c->gemma) { /* post-attention norm, into x_mid, then the residual */
        if (mm(m, l, PROJ_O, s, s->o, s->att_out, N, o, e)) return -1;
        OP(rmsnorm(BE, s->x_mid, s->rstd_post_attn, s->o, &w->vec[LVEC_POST_ATTN_NORM], N, C,
                   (float)c->eps, 1, e));
        OP(add(BE, s->x_mid, s->x_mid, s->x_in, (size_t)N * C, e));
    } else if (mm_add(m, l, PROJ_O, s, s->x_mid, s->o, s->att_out, s->x_in, N, C, o, e)) {
        return -1;
    }
    return 0;
}

static int mlp_block(lop_model *m, int l, lop_layer_acts *s, float *x_out, lop_batch *b,
                     const lop_fwd_opts *o, lop_err *e) {
    const lop_config *c = &m->cfg;
    engine_priv *p = m->priv;
    lop_layer_w *w = &m->layers[l];
    const lop_hooks *hk = o->hooks;
    int N = b->N, C = c->hidden, FF = c->inter;
    if (!(hk && hk->linear_in) && !m->acts.keep && BE->op->rmsnorm_gemm_in)
        OP(rmsnorm_gemm_in(BE, s->xn_mlp, s->rstd_mlp, s->x_mid, &w->vec[LVEC_MLP_NORM], N, C,
                           (float)c->eps, c->gemma, (lop_gemm)p->gemm, e));
    else
        OP(rmsnorm(BE, s->xn_mlp, s->rstd_mlp, s->x_mid, &w->vec[LVEC_MLP_NORM], N, C, (float)c->eps,
                   c->gemma, e));
    if (hk && hk->linear_in)
        for (int pj = PROJ_GATE; pj <= PROJ_UP; pj++)
            if (hook_linear(m, hk, l, pj, s->xn_mlp, N, C, b, e)) return -1;
    int fused = 0;
    const lop_adapter *ad = o->adapters ? &o->adapters[(size_t)l * PROJ_N] : NULL;
    if (BE->op->mlp_glu && !m->acts.keep && !w->vec[LVEC_GATE_BIAS].data && !w->vec[LVEC_UP_BIAS].data &&
        !(ad && (ad[PROJ_GATE].A || ad[PROJ_UP].A))) {
        /* a device may keep gate/up (and h, when no hook reads it) in its GEMMs' own form */
        int r = BE->op->mlp_glu(BE, s->h, s->gate, s->up, s->xn_mlp, &w->proj[PROJ_GATE],
                                &w->proj[PROJ_UP], N, FF, c->act, hk && hk->linear_in,
                                (lop_gemm)p->gemm, e);
        if (r < 0) return -1;
        fused = r == 0;
    }
    if (!fused) {
        if (mm(m, l, PROJ_GATE, s, s->gate, s->xn_mlp, N, o, e) ||
            mm(m, l, PROJ_UP, s, s->up, s->xn_mlp, N, o, e))
            return -1;
        OP(glu(BE, s->h, s->gate, s->up, (size_t)N * FF, c->act, e));
    }
    if (hk && hk->linear_in && hook_linear(m, hk, l, PROJ_DOWN, s->h, N, FF, b, e)) return -1;
    if (c->gemma) {
        if (mm(m, l, PROJ_DOWN, s, s->mlp_out, s->h, N, o, e)) return -1;
        OP(rmsnorm(BE, x_out, s->rstd_post_mlp, s->mlp_out, &w->vec[LVEC_POST_MLP_NORM], N, C,
                   (float)c->eps, 1, e));
        OP(add(BE, x_out, x_out, s->x_mid, (size_t)N * C, e));
    } else if (mm_add(m, l, PROJ_DOWN, s, x_out, s->mlp_out, s->h, s->x_mid, N, C, o, e)) {
        return -1;
    }
    return 0;
}

int lop_forward(lop_model *m, lop_batch *b, const lop_fwd_opts *opts, lop_head_req *head,
                lop_err *e) {
    static const lop_fwd_opts none;
    const lop_fwd_opts *o = opts ? opts : &none;
    const lop_config *c = &m->cfg;
    engine_priv *p = m->priv;
    const lop_hooks *hk = o->hooks;
    int L = c->n_layers, C = c->hidden;
    int end = o->layer_end > 0 && o->layer_end < L ? o->layer_end : L;
    if (o->keep_acts && !BE->op->attention_backward)
        return lop_failc(e, LOP_EUSAGE, "the %s backend has no backward: activations are kept for none", BE->name);
    /* the probabilities are kept for a backward that reads them (the cpu's); a device's
     * recomputes them from q and k */
    int keep_att = o->keep_acts && !BE->att_recompute;
    if (o->kv && o->kv->be != BE)
        return lop_failc(e, LOP_EUSAGE, "the kv cache was made for another device than %s", BE->name);
    if (batch_index(m, b, o->kv, e)) return -1;
    int N = b->N;
    int64_t att_total = 0;
    if (keep_att) {
        if (b->B > p->att_off_cap) {
            free(p->att_off);
            p->att_off = malloc(sizeof(int64_t) * b->B);
            p->att_off_cap = p->att_off ? b->B : 0;
            if (!p->att_off) return lop_fail(e, "out of memory");
        }
        for (int i = 0; i < b->B; i++) {
            p->att_off[i] = att_total;
            int tk = b->len[i] + (o->kv ? o->kv->len[i] : 0);
            att_total += (int64_t)c->n_heads * b->len[i] * tk;
        }
    }
    if (arena_layout(m, N, o, att_total, e)) return -1;
    m->acts.att_off = keep_att ? p->att_off : NULL;
    if (BE->host_mem && openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    float *x = L ? m->acts.layer[0].x_in : m->acts.x_final;
    OP(embed(BE, x, b->ids, &m->embed, N, C, c->gemma ? (float)sqrt((double)c->hidden) : 1.0f, e));
    OP(rope_table(BE, m->acts.rope_full, b->pos, p->inv_full, N, c->head_dim, e));
    if (c->gemma) OP(rope_table(BE, m->acts.rope_local, b->pos, p->inv_local, N, c->head_dim, e));
    else OP(copy(BE, m->acts.rope_local, m->acts.rope_full, sizeof(float) * (size_t)N * c->head_dim, e));
    /* no number is silently wrong: the embedding and every layer's output are checked for NaN and
     * Inf (slot 0 and l + 1; a device answers at the end of the forward, naming the first) */
    if (nonfinite_check(m, x, (size_t)N * C, 0, e)) return -1;
    for (int l = 0; l < end; l++) {
        lop_layer_acts *s = &m->acts.layer[l];
        float *x_out = l + 1 < L ? m->acts.layer[l + 1].x_in : m->acts.x_final;
        if (hk && hk->resid && hook_resid(m, hk, l, LOP_RESID_IN, s->x_in, b, e)) return -1;
        if (o->skip && o->skip[l]) {
            OP(copy(BE, x_out, s->x_in, sizeof(float) * (size_t)N * C, e));
        } else if (attention_block(m, l, s, b, o, e) || mlp_block(m, l, s, x_out, b, o, e)) {
            return -1;
        }
        /* the first layer whose output is not finite is named (one pass over the residual, ~1e-4
         * of the layer's work) */
        if (nonfinite_check(m, x_out, (size_t)N * C, l + 1, e)) return -1;
        if (hk && hk->resid && hook_resid(m, hk, l, LOP_RESID_OUT, x_out, b, e)) return -1;
    }
    if (nonfinite_done(m, end + 1, e)) return -1;
    if (o->kv && end == L)
        for (int i = 0; i < b->B; i++) o->kv->len[i] += b->len[i];
    if (end < L) return 0;
    OP(rmsnorm(BE, m->acts.xn_final, m->acts.rstd_final, m->acts.x_final, &m->final_norm, N, C,
               (float)c->eps, c->gemma, e));
    if (hk && hk->final) {
        const float *h = host_view(m, m->acts.x_final, (size_t)N * C, 0, e);
        const float *hn = h ? host_view(m, m->acts.xn_final, (size_t)N * C, 1, e) : NULL;
        if (!hn) return -1;
        HOOK(hk->final(hk->user, h, hn, b));
    }
    if (!head) return 0;
    lop_head_args ha = {.xn = m->acts.xn_final, .N = N, .C = C, .V = c->vocab, .w = &m->head,
                        .softcap = (float)c->final_softcap, .gemm = (lop_gemm)p->gemm};
    return BE->op->head(BE, &ha, head, e);
}

int lop_forward_layer(lop_model *m, lop_batch *b, int l, const lop_fwd_opts *opts, lop_err *e) {
    static const lop_fwd_opts none;
    const lop_fwd_opts *o = opts ? opts : &none;
    const lop_config *c = &m->cfg;
    engine_priv *p = m->priv;
    if (l < 0 || l >= c->n_layers || !b->off || b->N != m->acts.N || o->kv)
        return lop_failc(e, LOP_EUSAGE, "internal: lop_forward_layer(%d) needs the last forward's batch", l);
    if (BE->host_mem && openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    float *x_out = l + 1 < c->n_layers ? m->acts.layer[l + 1].x_in : m->acts.x_final;
    lop_layer_acts *s = &m->acts.layer[l];
    return attention_block(m, l, s, b, o, e) || mlp_block(m, l, s, x_out, b, o, e) ? -1 : 0;
}

void lop_model_release_acts(lop_model *m) {
    engine_priv *p = m->priv;
    if (p->arena) p->be->op->release(p->be, p->arena);
    p->arena = NULL;
    p->arena_cap = 0;
}

struct lop_backend *lop_model_backend(const lop_model *m) {
    const engine_priv *p = m->priv;
    return p->be;
}

size_t lop_act_bytes(const lop_model *m) {
    const engine_priv *p = m ? m->priv : NULL;
    return p ? p->arena_peak * sizeof(float) : 0;
}
