/* train_step.c — one training step on the one model core: the engine's forward (model_forward.c)
 * keeps every layer's activations (m->acts, llm.c's activations struct; with --recompute only
 * each layer's input, a layer refilled by lop_forward_layer when its backward comes), the head
 * computes the logits a chunk of rows at a time and hands them to the pluggable loss, and the
 * backward walks the layers down through the backend's ops (backend.h), reading what the forward
 * kept. Layer math follows transformers (LlamaDecoderLayer, Qwen3DecoderLayer,
 * Gemma3DecoderLayer) in float32. */
#include "train_priv.h"
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BE (q->be)
#define OP(call) do { if (BE->op->call) return -1; } while (0)

static float *take(float **a, size_t n) {
    float *r = *a;
    *a += (n + 15) & ~(size_t)15;
    return r;
}

/* the backward's scratch for N rows (backend memory; grows only) */
static int grads_layout(tr_model *m, int N, lop_err *e) {
    tr_priv *q = P(m);
    const lop_config *c = &m->cfg;
    size_t C = c->hidden, qd = (size_t)c->n_heads * c->head_dim,
           kd = (size_t)c->n_kv_heads * c->head_dim, FF = c->inter, V = c->vocab,
           r = m->opt.lora_rank, n = N;
    /* head rows per chunk: 32 M logits (128 MB) on the cpu, where a chunk's GEMM is long enough
     * at that size; a device wants wide GEMMs and few passes over a trainable head's gradient
     * ([V, C] float32 read and written once per chunk: 8 passes of 671 MB a step for
     * gemma-3-270m at 512 MB chunks), so up to 512 M logits (2 GB) there. Rows are spread evenly
     * over the chunks that takes (two of 2,048 rows, not 3,533 and 563). */
    size_t cap = (size_t)(BE->host_mem ? 32 : 512) << 20;
    size_t nch = ((size_t)N * V + cap - 1) / cap;
    if (nch < 1) nch = 1;
    q->chunk = (int)(((size_t)N + nch - 1) / nch);
    if (q->chunk < 1) q->chunk = 1;
    if (q->chunk > N) q->chunk = N;
#define A(x) (((size_t)(x) + 15) & ~(size_t)15)
    int capped = c->final_softcap > 0; /* the softcap's backward needs the capped logits */
    size_t total = A(n * C) * 3 + A(n * qd) * 3 + A(n * kd) * 3 + A(n * FF) * 3 + A(n * (r ? r : 1)) +
                   (1 + capped) * A((size_t)q->chunk * V);
#undef A
    if (total > q->gbuf_cap) {
        if (q->gbuf) BE->op->release(BE, q->gbuf);
        q->gbuf_cap = 0;
        q->gbuf = BE->op->alloc(BE, total * sizeof(float));
        if (!q->gbuf)
            return lop_fail(e, "out of memory for the backward's scratch (%zu MB)", total * 4 >> 20);
        q->gbuf_cap = total;
        if (total * sizeof(float) > q->gbuf_peak) q->gbuf_peak = total * sizeof(float);
    }
    float *a = q->gbuf;
    q->dres = take(&a, n * C); q->dA = take(&a, n * C); q->dxn = take(&a, n * C);
    q->dq = take(&a, n * qd); q->dq_raw = take(&a, n * qd); q->datt = take(&a, n * qd);
    q->dk = take(&a, n * kd); q->dk_raw = take(&a, n * kd); q->dv = take(&a, n * kd);
    q->dgate = take(&a, n * FF); q->dup = take(&a, n * FF); q->dh = take(&a, n * FF);
    q->dxa = take(&a, n * (r ? r : 1));
    q->logits = take(&a, (size_t)q->chunk * V);
    q->capped = capped ? take(&a, (size_t)q->chunk * V) : NULL;
    q->grad_N = N;
    return 0;
}

size_t tr_act_bytes(const tr_model *m) {
    if (!m || !m->priv) return 0;
    const tr_priv *q = P(m);
    return (q->lm ? lop_act_bytes(q->lm) : 0) + q->gbuf_peak;
}

void tr_release_acts(tr_model *m) {
    if (!m || !m->priv) return;
    tr_priv *q = P(m);
    if (q->gbuf) BE->op->release(BE, q->gbuf);
    q->gbuf = NULL;
    q->gbuf_cap = 0;
    q->grad_N = 0;
    if (q->lm) lop_model_release_acts(q->lm);
}

static int check_batch(const tr_model *m, const tr_batch *b, lop_err *e) {
    if (b->B < 1 || b->T < 1) return lop_fail(e, "empty batch");
    for (int i = 0; i < b->B * b->T; i++) {
        if (b->ids[i] < 0 || b->ids[i] >= m->cfg.vocab)
            return lop_fail(e, "token id %d out of range (vocab %d)", b->ids[i], m->cfg.vocab);
        if (b->targets[i] >= m->cfg.vocab)
            return lop_fail(e, "target id %d out of range (vocab %d)", b->targets[i], m->cfg.vocab);
    }
    return 0;
}

/* The engine's forward over the batch (B sequences of T tokens), keeping what `keep` says, with
 * the LoRA adapters (and their dropout when training). OpenBLAS's threads, which the forward
 * parks at one, are given back for the backward's large GEMMs. */
static int forward(tr_model *m, const tr_batch *b, int keep, int dropout, uint64_t seed,
                   lop_err *e) {
    tr_priv *q = P(m);
    if (check_batch(m, b, e)) return -1;
    if (b->B > q->len_cap) {
        free(q->len);
        q->len = malloc(sizeof(int) * b->B);
        q->len_cap = q->len ? b->B : 0;
        if (!q->len) return lop_fail(e, "out of memory");
    }
    for (int i = 0; i < b->B; i++) q->len[i] = b->T;
    q->B = b->B; q->T = b->T; q->N = b->B * b->T;
    q->lb = (lop_batch){.B = b->B, .len = q->len, .ids = b->ids};
    q->fo = (lop_fwd_opts){.keep_acts = keep, .adapters = q->ad,
                           .dropout = dropout ? (float)m->opt.lora_dropout : 0.0f,
                           .dropout_seed = seed};
    int nt = openblas_get_num_threads();
    int r = lop_forward(q->lm, &q->lb, &q->fo, NULL, e);
    if (openblas_get_num_threads() != nt) openblas_set_num_threads(nt);
    return r;
}

/* ---------------------------------------------------------------- the backward */

/* projection k of layer l: din += dout @ W (set: =) (+ its LoRA), gradients of W, bias, A, B */
static int lin_bwd(tr_model *m, int l, int k, float *din, const float *dout, const float *x,
                   const lop_layer_acts *a, int set, lop_err *e) {
    tr_priv *q = P(m);
    const lop_wref *w = lop_weight(q->lm, l, (lop_proj)k);
    lop_gemm g = lop_model_gemm(q->lm);
    float *dw = tr_grad_of(m, q->proj[l][k]), *db = tr_grad_of(m, q->vec[l][arch_proj_bias((lop_proj)k)]);
    int ai = q->lora[l][k];
    const lop_adapter *ad = ai < 0 ? NULL : &q->ad[l * PROJ_N + k];
    /* a device with lora_matmul: the adapter first (storing din where the projection would),
     * then the projection's GEMM adding into din in its epilogue; the cpu keeps its order */
    int lora_first = ad && BE->op->lora_matmul;
    if (!lora_first) OP(matmul_backward(BE, din, dw, db, dout, x, w, q->N, g, set, e));
    if (!ad) return 0;
    OP(lora_backward(BE, din, m->p[ai].g, m->p[ai + 1].g, q->dxa, q->lm->acts.lora_tmp, dout, x,
                     a->xa[k], ad->A, ad->B, q->N, (int)w->cols, (int)w->rows, ad->r, ad->scale,
                     q->fo.dropout, q->fo.dropout_seed, (uint64_t)l * PROJ_N + k + 1, g,
                     lora_first && set, e));
    if (lora_first) OP(matmul_backward(BE, din, dw, db, dout, x, w, q->N, g, 0, e));
    return 0;
}

/* set: dx = (else +=) */
static int norm_bwd(tr_model *m, float *dx, int vi, const lop_wref *w, const float *dout,
                    const float *x, const float *rstd, int N, int C, int gemma, int set,
                    lop_err *e) {
    tr_priv *q = P(m);
    OP(rmsnorm_backward(BE, dx, tr_grad_of(m, vi), dout, x, rstd, w, N, C, gemma, set, e));
    return 0;
}

#define ZERO(p, n) OP(zero(BE, p, sizeof(float) * (size_t)(n), e))

/* q->dres holds dL/d(layer output) on entry and dL/d(layer input) on return. The first op to
 * write each scratch gradient stores it (set = 1: no zeroing pass), the rest add; q->dres
 * itself only ever adds (it is the residual stream's gradient). */
static int layer_backward(tr_model *m, int l, lop_err *e) {
    tr_priv *q = P(m);
    const lop_config *c = &m->cfg;
    lop_model *lm = q->lm;
    const lop_layer_acts *a = &lm->acts.layer[l];
    int N = q->N, C = c->hidden, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, FF = c->inter;
    int gm = c->gemma, *vec = q->vec[l];
#define VW(k) lop_layer_vec(lm, l, k)
    /* MLP branch */
    const float *dm = q->dres;
    if (gm) {
        if (norm_bwd(m, q->dA, vec[LVEC_POST_MLP_NORM], VW(LVEC_POST_MLP_NORM), q->dres, a->mlp_out,
                     a->rstd_post_mlp, N, C, 1, 1, e)) return -1;
        dm = q->dA;
    }
    if (lin_bwd(m, l, PROJ_DOWN, q->dh, dm, a->h, a, 1, e)) return -1;
    OP(glu_backward(BE, q->dgate, q->dup, q->dh, a->gate, a->up, (size_t)N * FF, c->act, 1,
                    lop_model_gemm(lm), e));
    if (lin_bwd(m, l, PROJ_GATE, q->dxn, q->dgate, a->xn_mlp, a, 1, e) ||
        lin_bwd(m, l, PROJ_UP, q->dxn, q->dup, a->xn_mlp, a, 0, e) ||
        norm_bwd(m, q->dres, vec[LVEC_MLP_NORM], VW(LVEC_MLP_NORM), q->dxn, a->x_mid, a->rstd_mlp, N,
                 C, gm, 0, e))
        return -1;
    /* attention branch */
    const float *dob = q->dres;
    if (gm) {
        if (norm_bwd(m, q->dA, vec[LVEC_POST_ATTN_NORM], VW(LVEC_POST_ATTN_NORM), q->dres, a->o,
                     a->rstd_post_attn, N, C, 1, 1, e)) return -1;
        dob = q->dA;
    }
    if (lin_bwd(m, l, PROJ_O, q->datt, dob, a->att_out, a, 1, e)) return -1;
    /* the forward's choices (model_forward.c): sliding window, and its rope table */
    int sliding = c->layer_sliding && c->layer_sliding[l] && c->sliding_window > 0;
    lop_attn_bwd_args ab = {
        .dq = q->dq, .dk = q->dk, .dv = q->dv, .dout = q->datt, .att = a->att,
        .att_off = lm->acts.att_off, .q = a->q, .k = a->k, .v = a->v, .out = a->att_out, .B = q->B,
        .len = q->lb.len, .off = q->lb.off, .Hq = H, .Hkv = KV, .D = D, .window = sliding ? c->sliding_window : 0,
        .scale = (float)c->attn_scale, .softcap = (float)c->attn_softcap,
        .gemm = lop_model_gemm(lm), /* the forward's precision: bf16 runs on tensor cores */
        .overwrite = 1};
    OP(attention_backward(BE, &ab, e));
    const float *cs = sliding && gm ? lm->acts.rope_local : lm->acts.rope_full;
    OP(rope_backward(BE, q->dq, cs, N, H, D, e));
    OP(rope_backward(BE, q->dk, cs, N, KV, D, e));
    const float *dqr = q->dq, *dkr = q->dk;
    if (c->qk_norm) {
        if (norm_bwd(m, q->dq_raw, vec[LVEC_Q_NORM], VW(LVEC_Q_NORM), q->dq, a->q_raw, a->q_rstd,
                     N * H, D, gm, 1, e) ||
            norm_bwd(m, q->dk_raw, vec[LVEC_K_NORM], VW(LVEC_K_NORM), q->dk, a->k_raw, a->k_rstd,
                     N * KV, D, gm, 1, e))
            return -1;
        dqr = q->dq_raw; dkr = q->dk_raw;
    }
    if (lin_bwd(m, l, PROJ_Q, q->dxn, dqr, a->xn_attn, a, 1, e) ||
        lin_bwd(m, l, PROJ_K, q->dxn, dkr, a->xn_attn, a, 0, e) ||
        lin_bwd(m, l, PROJ_V, q->dxn, q->dv, a->xn_attn, a, 0, e) ||
        norm_bwd(m, q->dres, vec[LVEC_ATTN_NORM], VW(LVEC_ATTN_NORM), q->dxn, a->x_in, a->rstd_attn,
                 N, C, gm, 0, e))
        return -1;
#undef VW
    return 0;
}

/* the head's logits reached the loss non-finite: every layer's output was checked finite by the
 * forward, so the head (or the loss) is where it happened */
static int logits_fail(const char *what, lop_err *e) {
    return lop_fail(e, "%s: the hidden states are finite, the logits (lm_head) or the loss are not", what);
}

/* final norm (the forward's), chunked head, loss; backward: dres = dL/d x_final */
static int head_pass(tr_model *m, const tr_batch *b, float gscale, tr_loss_fn loss, void *ctx,
                     int backward, tr_stats *st, lop_err *e) {
    tr_priv *q = P(m);
    const lop_config *c = &m->cfg;
    lop_model *lm = q->lm;
    int N = q->N, C = c->hidden, V = c->vocab;
    float fsc = (float)c->final_softcap;
    lop_gemm g = lop_model_gemm(lm);
    float *gh = tr_grad_of(m, q->head);
    if (backward) ZERO(q->dA, (size_t)N * C);
    int xent = !loss || loss == tr_xent_loss;
    for (int r0 = 0; r0 < N; r0 += q->chunk) {
        int n = N - r0 < q->chunk ? N - r0 : q->chunk;
        if (xent) {
            int any = 0;
            for (int i = 0; i < n; i++) any |= b->targets[r0 + i] >= 0;
            if (!any) continue;
        }
        const float *xn = lm->acts.xn_final + (size_t)r0 * C;
        OP(head_logits(BE, q->logits, q->capped, xn, n, &lm->head, fsc, g, e));
        /* a NaN reaching the loss is named here, before any loss can misreport it (a device's
         * check is deferred: there the loss's own sum, below, names it) */
        if (BE->host_mem) {
            int bad = BE->op->nonfinite(BE, q->logits, (size_t)n * V, 0, e);
            if (bad < 0) return -1;
            if (bad) return logits_fail("logits are not finite", e);
        }
        double ls;
        int64_t k = 0;
        if (xent) {
            OP(xent(BE, q->logits, b->targets + r0, n, V, gscale, &ls, &k, e));
        } else {
            tr_loss_chunk lc = {q->logits, b->targets + r0, r0, n, V, gscale, BE, !BE->host_mem};
            ls = loss(&lc, ctx, &k);
        }
        if (!isfinite(ls)) {
            char what[64];
            snprintf(what, sizeof what, "loss is not finite (%g)", ls);
            return logits_fail(what, e);
        }
        st->loss_sum += ls; st->scored += k;
        if (!backward) continue;
        OP(head_backward(BE, q->dA + (size_t)r0 * C, gh, q->logits, q->capped, xn, n, &lm->head, fsc,
                         g, e));
    }
    if (backward) {
        if (norm_bwd(m, q->dres, q->fnorm, &lm->final_norm, q->dA, lm->acts.x_final,
                     lm->acts.rstd_final, N, C, c->gemma, 1, e))
            return -1;
    }
    return 0;
}

static int backward(tr_model *m, const tr_batch *b, float gscale, tr_loss_fn loss, void *ctx,
                    tr_stats *st, lop_err *e) {
    tr_priv *q = P(m);
    if (grads_layout(m, q->N, e) || head_pass(m, b, gscale, loss, ctx, 1, st, e)) return -1;
    for (int l = q->L - 1; l >= 0; l--) {
        /* --recompute: the shared set holds the last layer's activations; refill it for the
         * others (their inputs were kept) */
        if (q->fo.keep_acts == LOP_KEEP_INPUTS && l < q->L - 1) {
            int nt = openblas_get_num_threads();
            int r = lop_forward_layer(q->lm, &q->lb, l, &q->fo, e);
            if (openblas_get_num_threads() != nt) openblas_set_num_threads(nt);
            if (r) return -1;
        }
        if (layer_backward(m, l, e)) return -1;
    }
    float *ge = tr_grad_of(m, q->embed);
    if (ge)
        OP(embed_backward(BE, ge, q->dres, b->ids, q->N, m->cfg.hidden,
                          m->cfg.gemma ? (float)sqrt((double)m->cfg.hidden) : 1.0f, e));
    return 0;
}

int tr_forward_backward(tr_model *m, const tr_batch *b, float gscale, tr_loss_fn loss, void *ctx,
                        uint64_t dropout_seed, tr_stats *st, lop_err *e) {
    int keep = m->opt.recompute ? LOP_KEEP_INPUTS : LOP_KEEP_ALL;
    if (forward(m, b, keep, 1, dropout_seed, e)) return -1;
    return backward(m, b, gscale, loss, ctx, st, e);
}

int tr_eval_batch(tr_model *m, const tr_batch *b, tr_loss_fn loss, void *ctx, tr_stats *st,
                  lop_err *e) {
    tr_priv *q = P(m);
    if (forward(m, b, LOP_KEEP_NONE, 0, 0, e)) return -1;
    if (q->grad_N < q->N && grads_layout(m, q->N, e)) return -1;
    return head_pass(m, b, 1.0f, loss, ctx, 0, st, e);
}

/* ---------------------------------------------------------------- teachers (kd-train, additive) */

int tr_forward_hidden(tr_model *m, const tr_batch *b, lop_err *e) {
    if (forward(m, b, LOP_KEEP_NONE, 0, 0, e)) return lop_wrap(e, "teacher");
    return 0;
}

int tr_head_rows(tr_model *m, int64_t row0, int n, float *out, lop_err *e) {
    tr_priv *q = P(m);
    int C = m->cfg.hidden;
    if (row0 < 0 || n < 0 || row0 + n > q->N)
        return lop_fail(e, "internal: head rows %lld..%lld outside the last forward's %d rows",
                        (long long)row0, (long long)row0 + n - 1, q->N);
    if (!n) return 0;
    OP(head_logits(BE, out, NULL, q->lm->acts.xn_final + (size_t)row0 * C, n, &q->lm->head,
                   (float)m->cfg.final_softcap, lop_model_gemm(q->lm), e));
    /* a device: wait for the rows (a one-float download is ordered after them on this stream) */
    float one;
    if (!BE->host_mem) OP(download(BE, &one, out, sizeof one, e));
    return 0;
}

void *tr_mem_alloc(tr_model *m, size_t bytes) {
    tr_priv *q = P(m);
    return BE->op->alloc(BE, bytes ? bytes : 1);
}

int tr_mem_download(tr_model *m, void *dst, const void *src, size_t bytes, lop_err *e) {
    tr_priv *q = P(m);
    return BE->op->download(BE, dst, src, bytes, e);
}

void tr_mem_release(tr_model *m, void *p) {
    tr_priv *q = P(m);
    if (p) BE->op->release(BE, p);
}
