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
    int mv = c->hidden;
    if (c->inter > mv) mv = c->inter;
    if (c->n_heads * D > mv) mv = c->n_heads * D;
    p->maxvec = mv;
    p->vec = malloc(sizeof(float) * (size_t)LVEC_N * mv);
    if (!p->inv_full || !p->inv_local || !p->vec) return lop_fail(e, "out of memory");
    rope_inv_freq(p->inv_full, D, &c->rope_full);
    rope_inv_freq(p->inv_local, D, c->gemma ? &c->rope_local : &c->rope_full);
    return 0;
}

void engine_free(lop_model *m) {
    engine_priv *p = m->priv;
    if (!p) return;
    free(p->inv_full);
    free(p->inv_local);
    free(p->vec);
    free(p->arena);
    free(p->ibuf);
    free(p->att_off);
    free(p->aseq);
    free(m->acts.layer);
}

/* float32 copy of a vector weight (norm weight or bias) into slot `slot` of p->vec; NULL if absent */
static const float *vecf(lop_model *m, const lop_wref *r, int slot) {
    engine_priv *p = m->priv;
    if (!r->data) return NULL;
    if (r->dtype == ST_F32) return r->data;
    float *d = p->vec + (size_t)slot * p->maxvec;
    nn_to_f32_serial(d, r->data, r->dtype, (size_t)(r->rows * r->cols));
    return d;
}

static float *take(float **a, size_t n) {
    float *r = *a;
    *a += n;
    return r;
}

/* Lay the arena out for N rows (B sequences; att_total probabilities per layer when keeping). */
static int arena_layout(lop_model *m, int N, int keep, int64_t att_total, lop_err *e) {
    engine_priv *p = m->priv;
    const lop_config *c = &m->cfg;
    size_t C = c->hidden, FF = c->inter, L = c->n_layers, qd = (size_t)c->n_heads * c->head_dim,
           kd = (size_t)c->n_kv_heads * c->head_dim, n = N;
    /* 16-float alignment of every buffer */
#define A(x) (((size_t)(x) + 15) & ~(size_t)15)
    size_t per = A(n) * 5 + A(n * C) * 6 + A(n * qd) * 3 + A(n * kd) * 3 + A(n * c->n_heads) +
                 A(n * c->n_kv_heads) + A(n * FF) * 3 + (keep ? A(att_total) : 0);
    size_t D = c->head_dim;
    size_t total = A(n * C) * (L + 2) + A(n) + A(n * D) * 2 + per * (keep ? (L ? L : 1) : 1);
    if (!m->acts.layer) {
        m->acts.layer = calloc(L ? L : 1, sizeof *m->acts.layer);
        if (!m->acts.layer) return lop_fail(e, "out of memory");
    }
    if (total > p->arena_cap) {
        free(p->arena);
        p->arena = NULL;
        p->arena_cap = 0;
        if (posix_memalign((void **)&p->arena, 64, total * sizeof(float)))
            return lop_fail(e, "out of memory for activations (%zu MB for %d rows)",
                            total * sizeof(float) >> 20, N);
        p->arena_cap = total;
    }
    float *a = p->arena;
#define TAKE(sz) take(&a, A(sz))
    for (size_t l = 0; l < L; l++) m->acts.layer[l].x_in = TAKE(n * C);
    m->acts.x_final = TAKE(n * C);
    m->acts.xn_final = TAKE(n * C);
    m->acts.rstd_final = TAKE(n);
    m->acts.rope_full = TAKE(n * D);
    m->acts.rope_local = TAKE(n * D);
    for (size_t l = 0; l < (keep ? L : (L ? 1 : 0)); l++) {
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
        s->att = keep ? TAKE(att_total) : NULL;
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
    }
    if (!keep) /* every layer's scratch aliases layer 0's (x_in stays per layer) */
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
    if (b->B > p->aseq_cap) {
        free(p->aseq);
        p->aseq = malloc(sizeof(attn_seq) * b->B);
        p->aseq_cap = p->aseq ? b->B : 0;
        if (!p->aseq) return lop_fail(e, "out of memory");
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

static int all_finite(const float *x, size_t n) {
    int bad = 0;
    #pragma omp parallel for reduction(|:bad) schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++) bad |= !isfinite(x[i]);
    return !bad;
}

static void embed_forward(lop_model *m, float *x, const lop_batch *b) {
    const lop_config *c = &m->cfg;
    embedding_forward(x, b->ids, m->embed.data, m->embed.dtype, b->N, c->hidden,
                      c->gemma ? (float)sqrt((double)c->hidden) : 1.0f);
}

/* out = a + b over n floats */
static void add_forward(float *out, const float *a, const float *b, size_t n) {
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

lop_gemm lop_model_set_gemm(lop_model *m, lop_gemm g) {
    engine_priv *p = m->priv;
    p->gemm = g == LOP_GEMM_BF16 && gemm_bf16_available() ? LOP_GEMM_BF16 : LOP_GEMM_F32;
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

static int mm(lop_model *m, float *out, const float *x, const lop_wref *w, const float *bias,
              int N, lop_err *e) {
    engine_priv *p = m->priv;
    int r = p->gemm == LOP_GEMM_BF16
        ? matmul_forward_bf16(out, x, w->data, w->dtype, bias, N, (int)w->cols, (int)w->rows, 0)
        : matmul_forward(out, x, w->data, w->dtype, bias, N, (int)w->cols, (int)w->rows, 0);
    if (r) return lop_fail(e, "out of memory in a matmul");
    return 0;
}

#define HOOK(call) do { if (call) return lop_fail(e, "a hook stopped the forward"); } while (0)

static int attention_block(lop_model *m, int l, lop_layer_acts *s, lop_batch *b,
                           const lop_fwd_opts *o, lop_err *e) {
    const lop_config *c = &m->cfg;
    engine_priv *p = m->priv;
    lop_layer_w *w = &m->layers[l];
    const lop_hooks *hk = o->hooks;
    int N = b->N, C = c->hidden, D = c->head_dim, Hq = c->n_heads, Hkv = c->n_kv_heads;
    int qd = Hq * D, kd = Hkv * D;
    rmsnorm_forward(s->xn_attn, s->rstd_attn, s->x_in, vecf(m, &w->vec[LVEC_ATTN_NORM], 0), N, C,
                    (float)c->eps, c->gemma);
    if (hk && hk->linear_in)
        for (int pj = PROJ_Q; pj <= PROJ_V; pj++)
            HOOK(hk->linear_in(hk->user, l, pj, w->proj[pj].name, s->xn_attn, N, C, b));
    if (mm(m, s->q_raw, s->xn_attn, &w->proj[PROJ_Q], vecf(m, &w->vec[LVEC_Q_BIAS], 1), N, e) ||
        mm(m, s->k_raw, s->xn_attn, &w->proj[PROJ_K], vecf(m, &w->vec[LVEC_K_BIAS], 2), N, e) ||
        mm(m, s->v, s->xn_attn, &w->proj[PROJ_V], vecf(m, &w->vec[LVEC_V_BIAS], 3), N, e))
        return -1;
    if (c->qk_norm) {
        rmsnorm_forward(s->q, s->q_rstd, s->q_raw, vecf(m, &w->vec[LVEC_Q_NORM], 4), N * Hq, D,
                        (float)c->eps, c->gemma);
        rmsnorm_forward(s->k, s->k_rstd, s->k_raw, vecf(m, &w->vec[LVEC_K_NORM], 5), N * Hkv, D,
                        (float)c->eps, c->gemma);
    } else {
        memcpy(s->q, s->q_raw, sizeof(float) * (size_t)N * qd);
        memcpy(s->k, s->k_raw, sizeof(float) * (size_t)N * kd);
    }
    int sliding = c->layer_sliding && c->layer_sliding[l] && c->sliding_window > 0;
    const float *cs = sliding && c->gemma ? m->acts.rope_local : m->acts.rope_full;
    rope_apply(s->q, cs, N, Hq, D);
    rope_apply(s->k, cs, N, Hkv, D);
    float scale = (float)c->attn_scale;
    attn_seq *as = p->aseq;
    for (int i = 0; i < b->B; i++) {
        int T = b->len[i], r0 = b->off[i];
        const float *K = s->k + (size_t)r0 * kd, *V = s->v + (size_t)r0 * kd;
        int q0 = 0;
        if (o->kv) {
            lop_kv *kv = o->kv;
            q0 = kv->len[i];
            float *kc = kv->k[l] + (size_t)i * kv->max_t * kd, *vc = kv->v[l] + (size_t)i * kv->max_t * kd;
            memcpy(kc + (size_t)q0 * kd, K, sizeof(float) * (size_t)T * kd);
            memcpy(vc + (size_t)q0 * kd, V, sizeof(float) * (size_t)T * kd);
            K = kc;
            V = vc;
        }
        as[i] = (attn_seq){s->att_out + (size_t)r0 * qd, s->att ? s->att + m->acts.att_off[i] : NULL,
                           s->q + (size_t)r0 * qd, K, V, T, q0 + T, q0};
    }
    attention_forward_batch(as, b->B, Hq, Hkv, D, scale, sliding ? c->sliding_window : 0,
                            (float)c->attn_softcap);
    if (hk && hk->linear_in)
        HOOK(hk->linear_in(hk->user, l, PROJ_O, w->proj[PROJ_O].name, s->att_out, N, qd, b));
    if (mm(m, s->o, s->att_out, &w->proj[PROJ_O], vecf(m, &w->vec[LVEC_O_BIAS], 6), N, e)) return -1;
    if (c->gemma) { /* post-attention norm, into x_mid, then the residual */
        rmsnorm_forward(s->x_mid, s->rstd_post_attn, s->o, vecf(m, &w->vec[LVEC_POST_ATTN_NORM], 7),
                        N, C, (float)c->eps, 1);
        add_forward(s->x_mid, s->x_mid, s->x_in, (size_t)N * C);
    } else {
        add_forward(s->x_mid, s->o, s->x_in, (size_t)N * C);
    }
    return 0;
}

static int mlp_block(lop_model *m, int l, lop_layer_acts *s, float *x_out, lop_batch *b,
                     const lop_fwd_opts *o, lop_err *e) {
    const lop_config *c = &m->cfg;
    lop_layer_w *w = &m->layers[l];
    const lop_hooks *hk = o->hooks;
    int N = b->N, C = c->hidden, FF = c->inter;
    rmsnorm_forward(s->xn_mlp, s->rstd_mlp, s->x_mid, vecf(m, &w->vec[LVEC_MLP_NORM], 0), N, C,
                    (float)c->eps, c->gemma);
    if (hk && hk->linear_in)
        for (int pj = PROJ_GATE; pj <= PROJ_UP; pj++)
            HOOK(hk->linear_in(hk->user, l, pj, w->proj[pj].name, s->xn_mlp, N, C, b));
    if (mm(m, s->gate, s->xn_mlp, &w->proj[PROJ_GATE], vecf(m, &w->vec[LVEC_GATE_BIAS], 1), N, e) ||
        mm(m, s->up, s->xn_mlp, &w->proj[PROJ_UP], vecf(m, &w->vec[LVEC_UP_BIAS], 2), N, e))
        return -1;
    glu_forward(s->h, s->gate, s->up, (size_t)N * FF, c->act);
    if (hk && hk->linear_in)
        HOOK(hk->linear_in(hk->user, l, PROJ_DOWN, w->proj[PROJ_DOWN].name, s->h, N, FF, b));
    if (mm(m, s->mlp_out, s->h, &w->proj[PROJ_DOWN], vecf(m, &w->vec[LVEC_DOWN_BIAS], 3), N, e))
        return -1;
    if (c->gemma) {
        rmsnorm_forward(x_out, s->rstd_post_mlp, s->mlp_out, vecf(m, &w->vec[LVEC_POST_MLP_NORM], 4),
                        N, C, (float)c->eps, 1);
        add_forward(x_out, x_out, s->x_mid, (size_t)N * C);
    } else {
        add_forward(x_out, s->mlp_out, s->x_mid, (size_t)N * C);
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
    if (batch_index(m, b, o->kv, e)) return -1;
    int N = b->N;
    int64_t att_total = 0;
    if (o->keep_acts) {
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
    if (arena_layout(m, N, o->keep_acts, att_total, e)) return -1;
    m->acts.att_off = o->keep_acts ? p->att_off : NULL;
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    float *x = L ? m->acts.layer[0].x_in : m->acts.x_final;
    embed_forward(m, x, b);
    rope_table(m->acts.rope_full, b->pos, p->inv_full, N, c->head_dim);
    if (c->gemma) rope_table(m->acts.rope_local, b->pos, p->inv_local, N, c->head_dim);
    else memcpy(m->acts.rope_local, m->acts.rope_full, sizeof(float) * (size_t)N * c->head_dim);
    if (!all_finite(x, (size_t)N * C))
        return lop_fail(e, "non-finite values (NaN or Inf) in the embedding (%s)",
                        m->embed.name ? m->embed.name : "embed_tokens.weight");
    for (int l = 0; l < end; l++) {
        lop_layer_acts *s = &m->acts.layer[l];
        float *x_out = l + 1 < L ? m->acts.layer[l + 1].x_in : m->acts.x_final;
        if (hk && hk->resid) HOOK(hk->resid(hk->user, l, LOP_RESID_IN, s->x_in, b));
        if (o->skip && o->skip[l]) {
            memcpy(x_out, s->x_in, sizeof(float) * (size_t)N * C);
        } else if (attention_block(m, l, s, b, o, e) || mlp_block(m, l, s, x_out, b, o, e)) {
            return -1;
        }
        /* no number is silently wrong: the first layer whose output is not finite is named (one
         * pass over the residual, ~1e-4 of the layer's work) */
        if (!all_finite(x_out, (size_t)N * C))
            return lop_fail(e, "non-finite values (NaN or Inf) first appear in layer %d (%slayers.%d.*)",
                            l, m->cfg.prefix, l);
        if (hk && hk->resid) HOOK(hk->resid(hk->user, l, LOP_RESID_OUT, x_out, b));
    }
    if (o->kv && end == L)
        for (int i = 0; i < b->B; i++) o->kv->len[i] += b->len[i];
    if (end < L) return 0;
    rmsnorm_forward(m->acts.xn_final, m->acts.rstd_final, m->acts.x_final, vecf(m, &m->final_norm, 0),
                    N, C, (float)c->eps, c->gemma);
    if (hk && hk->final) HOOK(hk->final(hk->user, m->acts.x_final, m->acts.xn_final, b));
    if (!head) return 0;
    return head_forward(m, m->acts.xn_final, N, head, e);
}
