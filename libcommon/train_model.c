/* train_model.c — the trainable model: parameters, forward with saved activations, backward.
 * Layer math follows transformers (LlamaDecoderLayer, Qwen3DecoderLayer, Gemma3DecoderLayer) in
 * float32. */
#include "train.h"
#include "nn.h"
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct acts {
    float *x_in;           /* [N,C] layer input (own buffer per layer even with recompute) */
    float *rstd_attn;      /* [N] */
    float *xn_attn;        /* [N,C] */
    float *q_raw, *k_raw;  /* [N,H*D], [N,KV*D] projections before q/k norm and rope */
    float *q_rstd, *k_rstd;/* [N*H], [N*KV] */
    float *q, *k, *v;      /* after norm + rope; v [N,KV*D] */
    float *att;            /* [B,H,T,T] */
    float *att_out;        /* [N,H*D] */
    float *o;              /* [N,C] o_proj output */
    float *rstd_post_attn; /* [N] */
    float *x_mid;          /* [N,C] */
    float *rstd_mlp;       /* [N] */
    float *xn_mlp;         /* [N,C] */
    float *gate, *up, *h;  /* [N,FF] */
    float *mlp_out;        /* [N,C] */
    float *rstd_post_mlp;  /* [N] */
    float *xa[PROJ_N];   /* LoRA: [N,r] dropout(x) @ A^T */
} acts;

typedef struct tr_priv {
    int L, embed, head, fnorm;
    int (*proj)[PROJ_N];    /* [L][7] param index */
    int (*vec)[LVEC_N];          /* [L][LVEC_N] param index or -1 */
    int (*lora)[PROJ_N];    /* [L][7] index of lora_A (lora_B = +1), or -1 */
    float *inv_full, *inv_local; /* [D/2] */
    float *wscratch;          /* largest matrix, float32 */
    size_t wscratch_n;
    /* activations for the current shape */
    int N, B, T, keep;        /* keep: layers with full activations stored */
    int capB, capT;           /* the arena's capacity */
    acts *a;                  /* [L] (recompute: all but x_in alias a shared set) */
    float *x_final, *rstd_final, *xn_final;
    void *arena;
    size_t arena_peak;        /* bytes of the largest arena laid out so far */
    /* gradient scratch */
    float *dres, *dA, *dxn, *dq, *dk, *dv, *dq_raw, *dk_raw, *datt, *dgate, *dup, *dh, *ascr;
    float *dxa, *tmp_in, *logits, *capped;
    int32_t *pos;
    attn_seq *aseq;           /* [capB] the attention kernel's per-sequence views */
    int chunk;                /* head rows per chunk */
    uint64_t drop_seed;
    int dropout_on;
} tr_priv;

#define P(m) ((tr_priv *)(m)->priv)

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

/* float32 view of a parameter's values (converted into the scratch for frozen mmap'd matrices) */
static const float *pw(tr_model *m, int i) {
    tr_param *p = &m->p[i];
    if (p->w) return p->w;
    tr_priv *q = P(m);
    to_f32(q->wscratch, p->src, p->dtype, p->n);
    return q->wscratch;
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
    size_t maxmat = 0;
    for (int i = 0; i < m->np; i++) {
        tr_param *p = &m->p[i];
        int is_mat = p->rows > 1;
        p->trainable = !lora;
        p->decay = is_mat || o->decay_vectors;
        int is_vocab = i == q->embed || i == q->head;
        if (is_mat && !is_vocab && p->n > maxmat) maxmat = p->n;
        if (is_mat && is_vocab && (size_t)p->cols * 256 > maxmat) maxmat = (size_t)p->cols * 256;
        /* LoRA (and frozen teachers): every frozen matrix stays mmap'd in its stored dtype, the
         * vocabulary ones too (embedding rows and head blocks are converted as they are used);
         * only the vectors get float32 copies */
        if (alloc_train(m->st, p, !lora || !is_mat, e)) goto fail;
        if (!lora && o->keep_sparsity && is_mat && !is_vocab) sparsity_mask(p);
        if (p->trainable) m->trainable_params += (int64_t)p->n;
    }
    q->wscratch_n = maxmat;
    q->wscratch = malloc(maxmat * sizeof(float));
    if (!q->wscratch) { lop_fail(e, "out of memory"); goto fail; }
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
    q->inv_full = malloc(sizeof(float) * D / 2);
    q->inv_local = malloc(sizeof(float) * D / 2);
    if (!q->inv_full || !q->inv_local) { lop_fail(e, "out of memory"); goto fail; }
    /* the forward engine's rope tables (nn_rope.c): one definition of every rope type */
    rope_inv_freq(q->inv_full, D, &c->rope_full);
    rope_inv_freq(q->inv_local, D, c->gemma ? &c->rope_local : &c->rope_full);
    *out = m;
    return 0;
fail:
    tr_free(m);
    return -1;
}

static void free_acts(tr_priv *q) {
    free(q->arena); q->arena = NULL;
    free(q->a); q->a = NULL;
    free(q->aseq); q->aseq = NULL;
    q->N = 0;
}

size_t tr_act_bytes(const tr_model *m) { return m && m->priv ? P(m)->arena_peak : 0; }

void tr_release_acts(tr_model *m) {
    if (m && m->priv) free_acts(P(m));
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
        free_acts(q);
        free(q->proj); free(q->vec); free(q->lora); free(q->inv_full); free(q->inv_local);
        free(q->wscratch);
        free(q);
    }
    if (m->st) { config_free(&m->cfg); st_close(m->st); }
    free(m);
}

int tr_find(const tr_model *m, const char *name) {
    for (int i = 0; i < m->np; i++) if (!strcmp(m->p[i].name, name)) return i;
    return -1;
}

/* ---------------------------------------------------------------- activations */

static int ensure_acts(tr_model *m, int B, int T, lop_err *e) {
    tr_priv *q = P(m);
    int B0 = B, T0 = T;
    const lop_config *c = &m->cfg;
    if (q->arena && B <= q->capB && T <= q->capT) { /* reuse: buffers only grow */
        q->N = B * T; q->B = B; q->T = T;
        for (int n = 0; n < q->N; n++) q->pos[n] = n % T;
        return 0;
    }
    if (B < q->capB) B = q->capB;
    if (T < q->capT) T = q->capT;
    int N = B * T;
    free_acts(q);
    size_t C = c->hidden, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, FF = c->inter,
           V = c->vocab, r = m->opt.lora_rank;
    int L = q->L, keep = m->opt.recompute ? 1 : L;
    int nl = 0;
    for (int k = 0; k < PROJ_N; k++) nl += (m->opt.lora_targets >> k & 1) && r;
    size_t per = N * (5 * C + 3 * H * D + 3 * KV * D + 3 * FF + 5 + H + KV + nl * r) +
                 (size_t)B * H * T * T;
    size_t maxw = FF > C ? FF : C;
    if (H * D > maxw) maxw = H * D;
    q->chunk = (int)(((size_t)32 << 20) / V);
    if (q->chunk < 1) q->chunk = 1;
    if (q->chunk > N) q->chunk = N;
    size_t grads = N * (4 * C + 3 * H * D + 4 * KV * D + 3 * FF + (r ? r : 1) + maxw) + 2 * (size_t)T * T +
                   2 * (size_t)q->chunk * V;
    size_t total = per * keep + (size_t)N * C * (L + 2) + N + grads + 64 * 64;
    q->arena = malloc(total * sizeof(float) + N * sizeof(int32_t));
    if (total * sizeof(float) + N * sizeof(int32_t) > q->arena_peak)
        q->arena_peak = total * sizeof(float) + N * sizeof(int32_t);
    q->a = calloc(L, sizeof(acts));
    q->aseq = malloc(sizeof(attn_seq) * (size_t)B);
    if (!q->arena || !q->a || !q->aseq) { free_acts(q); return lop_fail(e, "out of memory for activations (%zu MB)", total * 4 >> 20); }
    float *f = q->arena;
#define TAKE(n) (f += (n), f - (n))
    for (int l = 0; l < L; l++) {
        acts *a = &q->a[l];
        a->x_in = TAKE(N * C);
        if (l >= keep) { acts s = q->a[0]; s.x_in = a->x_in; *a = s; continue; }
        a->rstd_attn = TAKE(N); a->xn_attn = TAKE(N * C);
        a->q_raw = TAKE(N * H * D); a->k_raw = TAKE(N * KV * D);
        a->q_rstd = TAKE(N * H); a->k_rstd = TAKE(N * KV);
        a->q = TAKE(N * H * D); a->k = TAKE(N * KV * D); a->v = TAKE(N * KV * D);
        a->att = TAKE((size_t)B * H * T * T);
        a->att_out = TAKE(N * H * D);
        a->o = TAKE(N * C); a->rstd_post_attn = TAKE(N); a->x_mid = TAKE(N * C);
        a->rstd_mlp = TAKE(N); a->xn_mlp = TAKE(N * C);
        a->gate = TAKE(N * FF); a->up = TAKE(N * FF); a->h = TAKE(N * FF);
        a->mlp_out = TAKE(N * C);
        a->rstd_post_mlp = TAKE(N);
        for (int k = 0; k < PROJ_N; k++)
            a->xa[k] = (r && (m->opt.lora_targets >> k & 1)) ? TAKE(N * r) : NULL;
    }
    (void)per;
    q->x_final = TAKE(N * C); q->rstd_final = TAKE(N); q->xn_final = TAKE(N * C);
    q->dres = TAKE(N * C); q->dA = TAKE(N * C); q->dxn = TAKE(N * C);
    q->dq = TAKE(N * H * D); q->dq_raw = TAKE(N * H * D); q->datt = TAKE(N * H * D);
    q->dk = TAKE(N * KV * D); q->dk_raw = TAKE(N * KV * D); q->dv = TAKE(N * KV * D);
    q->dgate = TAKE(N * FF); q->dup = TAKE(N * FF); q->dh = TAKE(N * FF);
    q->ascr = TAKE(2 * (size_t)T * T);
    q->dxa = TAKE(N * (r ? r : 1)); q->tmp_in = TAKE(N * maxw);
    q->logits = TAKE((size_t)q->chunk * V); q->capped = TAKE((size_t)q->chunk * V);
    q->pos = (int32_t *)TAKE(N);
#undef TAKE
    q->capB = B; q->capT = T; q->keep = keep;
    q->N = B0 * T0; q->B = B0; q->T = T0;
    for (int n = 0; n < q->N; n++) q->pos[n] = n % T0;
    return 0;
}

/* ---------------------------------------------------------------- layers */

static const int proj_bias[PROJ_N] = {LVEC_Q_BIAS, LVEC_K_BIAS, LVEC_V_BIAS, LVEC_O_BIAS, LVEC_GATE_BIAS, LVEC_UP_BIAS, LVEC_DOWN_BIAS};

static inline float *G(tr_model *m, int i) { return i >= 0 && m->p[i].trainable ? m->p[i].g : NULL; }
static inline const float *Wv(tr_model *m, int i) { return i >= 0 ? m->p[i].w : NULL; }

/* LoRA dropout: a counter-based hash decides each element, so the backward (and a recomputed
 * forward, and a resumed run) sees the same mask without storing it */
static inline int drop_keep(uint64_t seed, int l, int k, size_t i, double p) {
    uint64_t z = seed ^ ((uint64_t)(l * PROJ_N + k + 1) * 0x9e3779b97f4a7c15ull) ^ (i * 0xd1b54a32d192ed03ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (z >> 11) * (1.0 / 9007199254740992.0) >= p;
}

/* the LoRA branch's input: x, or dropout(x) written into tmp_in */
static const float *lora_input(tr_model *m, int l, int k, const float *x, size_t n) {
    tr_priv *q = P(m);
    double p = m->opt.lora_dropout;
    if (!q->dropout_on || p <= 0) return x;
    float s = (float)(1.0 / (1.0 - p));
    float *t = q->tmp_in;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) t[i] = drop_keep(q->drop_seed, l, k, i, p) ? x[i] * s : 0.0f;
    return t;
}

static void lin_fwd(tr_model *m, int l, int k, const float *x, float *y, acts *a) {
    tr_priv *q = P(m);
    tr_param *w = &m->p[q->proj[l][k]];
    int N = q->N, in = (int)w->cols, out = (int)w->rows, bi = q->vec[l][proj_bias[k]];
    tr_matmul_forward(y, x, pw(m, q->proj[l][k]), Wv(m, bi), N, in, out);
    int ai = q->lora[l][k];
    if (ai < 0) return;
    int r = m->opt.lora_rank;
    float s = (float)(m->opt.lora_alpha / r);
    const float *xd = lora_input(m, l, k, x, (size_t)N * in);
    tr_matmul_forward(a->xa[k], xd, m->p[ai].w, NULL, N, in, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, r, s, a->xa[k], r,
                m->p[ai + 1].w, r, 1.0f, y, out);
}

static void lin_bwd(tr_model *m, int l, int k, float *din, const float *dout, const float *x,
                    acts *a) {
    tr_priv *q = P(m);
    int wi = q->proj[l][k];
    tr_param *w = &m->p[wi];
    int N = q->N, in = (int)w->cols, out = (int)w->rows, bi = q->vec[l][proj_bias[k]];
    tr_matmul_backward(din, G(m, wi), G(m, bi), dout, x, pw(m, wi), N, in, out);
    int ai = q->lora[l][k];
    if (ai < 0) return;
    int r = m->opt.lora_rank;
    float s = (float)(m->opt.lora_alpha / r);
    tr_param *A = &m->p[ai], *Bm = &m->p[ai + 1];
    /* dxa = s dout B;  dB += s dout^T xa;  dA += dxa^T xd;  din += mask(dxa A) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, out, s, dout, out, Bm->w, r,
                0.0f, q->dxa, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, r, N, s, dout, out, a->xa[k], r,
                1.0f, Bm->g, r);
    const float *xd = lora_input(m, l, k, x, (size_t)N * in);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, N, 1.0f, q->dxa, r, xd, in,
                1.0f, A->g, in);
    if (!din) return;
    double p = m->opt.lora_dropout;
    if (!q->dropout_on || p <= 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, 1.0f, q->dxa, r, A->w, in,
                    1.0f, din, in);
        return;
    }
    float *t = q->tmp_in, sc = (float)(1.0 / (1.0 - p));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, 1.0f, q->dxa, r, A->w, in,
                0.0f, t, in);
    size_t n = (size_t)N * in;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        if (drop_keep(q->drop_seed, l, k, i, p)) din[i] += t[i] * sc;
}

static void add_into(float *y, const float *x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}
static void zero(float *x, size_t n) { memset(x, 0, n * sizeof(float)); }

/* The engine's attention kernel (nn_attention.c) over the B sequences of the batch, keeping the
 * probabilities a->att [B, H, T, T] for the backward. Its tasks call single-threaded OpenBLAS from
 * OpenMP threads, so OpenBLAS's own threads are parked around it. */
static void attn_forward(tr_model *m, acts *a, int window) {
    tr_priv *q = P(m);
    const lop_config *c = &m->cfg;
    int T = q->T, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim;
    for (int b = 0; b < q->B; b++)
        q->aseq[b] = (attn_seq){a->att_out + (size_t)b * T * H * D, a->att + (size_t)b * H * T * T,
                                a->q + (size_t)b * T * H * D, a->k + (size_t)b * T * KV * D,
                                a->v + (size_t)b * T * KV * D, T, T, 0};
    int nt = openblas_get_num_threads();
    if (nt != 1) openblas_set_num_threads(1);
    attention_forward_batch(q->aseq, q->B, H, KV, D, (float)c->attn_scale, window,
                            (float)c->attn_softcap);
    if (nt != 1) openblas_set_num_threads(nt);
}

/* x_out NULL: recomputation for the backward (the layer's output already exists) */
static void layer_forward(tr_model *m, int l, acts *a, float *x_out) {
    tr_priv *q = P(m);
    const lop_config *c = &m->cfg;
    int N = q->N, C = c->hidden, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, FF = c->inter;
    float eps = (float)c->eps;
    int gm = c->gemma, *vec = q->vec[l];
    rmsnorm_forward(a->xn_attn, a->rstd_attn, a->x_in, Wv(m, vec[LVEC_ATTN_NORM]), N, C, eps, gm);
    lin_fwd(m, l, PROJ_Q, a->xn_attn, a->q_raw, a);
    lin_fwd(m, l, PROJ_K, a->xn_attn, a->k_raw, a);
    lin_fwd(m, l, PROJ_V, a->xn_attn, a->v, a);
    if (c->qk_norm) {
        rmsnorm_forward(a->q, a->q_rstd, a->q_raw, Wv(m, vec[LVEC_Q_NORM]), N * H, D, eps, gm);
        rmsnorm_forward(a->k, a->k_rstd, a->k_raw, Wv(m, vec[LVEC_K_NORM]), N * KV, D, eps, gm);
    } else {
        memcpy(a->q, a->q_raw, sizeof(float) * N * H * D);
        memcpy(a->k, a->k_raw, sizeof(float) * N * KV * D);
    }
    int sliding = c->layer_sliding && c->layer_sliding[l];
    const float *inv = sliding && c->gemma ? q->inv_local : q->inv_full;
    rope_forward(a->q, q->pos, inv, N, H, D);
    rope_forward(a->k, q->pos, inv, N, KV, D);
    attn_forward(m, a, sliding ? c->sliding_window : 0);
    lin_fwd(m, l, PROJ_O, a->att_out, a->o, a);
    size_t nc = (size_t)N * C;
    if (gm) rmsnorm_forward(a->x_mid, a->rstd_post_attn, a->o, Wv(m, vec[LVEC_POST_ATTN_NORM]), N, C, eps, 1);
    else memcpy(a->x_mid, a->o, nc * sizeof(float));
    add_into(a->x_mid, a->x_in, nc);
    rmsnorm_forward(a->xn_mlp, a->rstd_mlp, a->x_mid, Wv(m, vec[LVEC_MLP_NORM]), N, C, eps, gm);
    lin_fwd(m, l, PROJ_GATE, a->xn_mlp, a->gate, a);
    lin_fwd(m, l, PROJ_UP, a->xn_mlp, a->up, a);
    glu_forward(a->h, a->gate, a->up, (size_t)N * FF, c->act);
    lin_fwd(m, l, PROJ_DOWN, a->h, a->mlp_out, a);
    if (!x_out) {
        if (gm) { /* only rstd_post_mlp is needed; the output goes to scratch */
            rmsnorm_forward(q->dA, a->rstd_post_mlp, a->mlp_out, Wv(m, vec[LVEC_POST_MLP_NORM]), N, C, eps, 1);
        }
        return;
    }
    if (gm) rmsnorm_forward(x_out, a->rstd_post_mlp, a->mlp_out, Wv(m, vec[LVEC_POST_MLP_NORM]), N, C, eps, 1);
    else memcpy(x_out, a->mlp_out, nc * sizeof(float));
    add_into(x_out, a->x_mid, nc);
}

/* q->dres holds dL/d(layer output) on entry and dL/d(layer input) on return */
static void layer_backward(tr_model *m, int l, acts *a) {
    tr_priv *q = P(m);
    const lop_config *c = &m->cfg;
    int N = q->N, C = c->hidden, H = c->n_heads, KV = c->n_kv_heads, D = c->head_dim, FF = c->inter;
    int gm = c->gemma, *vec = q->vec[l];
    size_t nc = (size_t)N * C;
    /* MLP branch */
    const float *dm = q->dres;
    if (gm) {
        zero(q->dA, nc);
        tr_rmsnorm_backward(q->dA, G(m, vec[LVEC_POST_MLP_NORM]), q->dres, a->mlp_out, a->rstd_post_mlp,
                            Wv(m, vec[LVEC_POST_MLP_NORM]), N, C, 1);
        dm = q->dA;
    }
    zero(q->dh, (size_t)N * FF);
    lin_bwd(m, l, PROJ_DOWN, q->dh, dm, a->h, a);
    zero(q->dgate, (size_t)N * FF); zero(q->dup, (size_t)N * FF);
    tr_glu_backward(q->dgate, q->dup, q->dh, a->gate, a->up, (size_t)N * FF, c->act == ACT_GELU_TANH);
    zero(q->dxn, nc);
    lin_bwd(m, l, PROJ_GATE, q->dxn, q->dgate, a->xn_mlp, a);
    lin_bwd(m, l, PROJ_UP, q->dxn, q->dup, a->xn_mlp, a);
    tr_rmsnorm_backward(q->dres, G(m, vec[LVEC_MLP_NORM]), q->dxn, a->x_mid, a->rstd_mlp,
                        Wv(m, vec[LVEC_MLP_NORM]), N, C, gm);
    /* attention branch */
    const float *dob = q->dres;
    if (gm) {
        zero(q->dA, nc);
        tr_rmsnorm_backward(q->dA, G(m, vec[LVEC_POST_ATTN_NORM]), q->dres, a->o, a->rstd_post_attn,
                            Wv(m, vec[LVEC_POST_ATTN_NORM]), N, C, 1);
        dob = q->dA;
    }
    size_t nq = (size_t)N * H * D, nk = (size_t)N * KV * D;
    zero(q->datt, nq);
    lin_bwd(m, l, PROJ_O, q->datt, dob, a->att_out, a);
    zero(q->dq, nq); zero(q->dk, nk); zero(q->dv, nk);
    int sliding = c->layer_sliding && c->layer_sliding[l];
    tr_attention_backward(q->dq, q->dk, q->dv, q->ascr, q->datt, a->att, a->q, a->k, a->v, q->B,
                          q->T, H, KV, D, (float)c->attn_scale, (float)c->attn_softcap,
                          sliding ? c->sliding_window : 0);
    const float *inv = sliding && c->gemma ? q->inv_local : q->inv_full;
    rope_inverse(q->dq, q->pos, inv, N, H, D);
    rope_inverse(q->dk, q->pos, inv, N, KV, D);
    const float *dqr = q->dq, *dkr = q->dk;
    if (c->qk_norm) {
        zero(q->dq_raw, nq); zero(q->dk_raw, nk);
        tr_rmsnorm_backward(q->dq_raw, G(m, vec[LVEC_Q_NORM]), q->dq, a->q_raw, a->q_rstd,
                            Wv(m, vec[LVEC_Q_NORM]), N * H, D, gm);
        tr_rmsnorm_backward(q->dk_raw, G(m, vec[LVEC_K_NORM]), q->dk, a->k_raw, a->k_rstd,
                            Wv(m, vec[LVEC_K_NORM]), N * KV, D, gm);
        dqr = q->dq_raw; dkr = q->dk_raw;
    }
    zero(q->dxn, nc);
    lin_bwd(m, l, PROJ_Q, q->dxn, dqr, a->xn_attn, a);
    lin_bwd(m, l, PROJ_K, q->dxn, dkr, a->xn_attn, a);
    lin_bwd(m, l, PROJ_V, q->dxn, q->dv, a->xn_attn, a);
    tr_rmsnorm_backward(q->dres, G(m, vec[LVEC_ATTN_NORM]), q->dxn, a->x_in, a->rstd_attn,
                        Wv(m, vec[LVEC_ATTN_NORM]), N, C, gm);
}

/* The head's two products over n rows: forward out[n, V] = x[n, C] @ Wh^T, backward
 * dx[n, C] += dlogits[n, V] @ Wh. A float32 head (full fine-tuning) is one GEMM; a frozen head
 * kept in its stored dtype is converted block by block of vocabulary rows into the matrix
 * scratch (the backward's sum over the vocabulary then runs block by block). */
static void head_gemm(tr_model *m, const float *in, int n, float *out, int backward) {
    tr_priv *q = P(m);
    const tr_param *h = &m->p[q->head];
    int C = m->cfg.hidden, V = m->cfg.vocab;
    int vb = h->w ? V : (int)(q->wscratch_n / (size_t)C);
    size_t es = st_dtype_size(h->dtype);
    for (int v0 = 0; v0 < V; v0 += vb) {
        int nv = V - v0 < vb ? V - v0 : vb;
        const float *w = h->w;
        if (!w) {
            nn_to_f32(q->wscratch, (const char *)h->src + (size_t)v0 * C * es, h->dtype, (size_t)nv * C);
            w = q->wscratch;
        }
        if (!backward) /* out[:, v0:v0+nv] = x @ W[v0:v0+nv]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nv, C, 1.0f, in, C, w, C,
                        0.0f, out + v0, V);
        else /* dx += dlogits[:, v0:v0+nv] @ W[v0:v0+nv] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, C, nv, 1.0f, in + v0, V, w, C,
                        1.0f, out, C);
    }
}

static int finite_all(const float *x, size_t n) {
    int bad = 0;
    #pragma omp parallel for reduction(|:bad) schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++) bad |= !isfinite(x[i]);
    return !bad;
}

/* a non-finite loss: name the first layer whose output is not finite (every layer's input is kept,
 * with --recompute too), else the head */
static int nonfinite_fail(tr_model *m, double ls, lop_err *e) {
    tr_priv *q = P(m);
    size_t nc = (size_t)q->N * m->cfg.hidden;
    for (int l = 0; l <= q->L; l++) {
        const float *x = l < q->L ? q->a[l].x_in : q->x_final;
        if (finite_all(x, nc)) continue;
        if (l == 0) return lop_fail(e, "loss is not finite (%g): the embedding holds NaN or Inf", ls);
        return lop_fail(e, "loss is not finite (%g): non-finite values first appear in layer %d "
                           "(%slayers.%d.*)", ls, l - 1, m->cfg.prefix, l - 1);
    }
    return lop_fail(e, "loss is not finite (%g): the hidden states are finite, the logits (lm_head) "
                       "or the loss are not", ls);
}

/* final norm, chunked head, loss; backward: dres = dL/d x_final */
static int head_pass(tr_model *m, const tr_batch *b, float gscale, tr_loss_fn loss, void *ctx,
                     int backward, tr_stats *st, lop_err *e) {
    tr_priv *q = P(m);
    const lop_config *c = &m->cfg;
    int N = q->N, C = c->hidden, V = c->vocab;
    float fsc = (float)c->final_softcap;
    rmsnorm_forward(q->xn_final, q->rstd_final, q->x_final, Wv(m, q->fnorm), N, C,
                       (float)c->eps, c->gemma);
    float *gh = G(m, q->head);
    if (backward) zero(q->dA, (size_t)N * C);
    if (!loss) loss = tr_xent_loss;
    for (int r0 = 0; r0 < N; r0 += q->chunk) {
        int n = N - r0 < q->chunk ? N - r0 : q->chunk;
        if (loss == tr_xent_loss) {
            int any = 0;
            for (int i = 0; i < n; i++) any |= b->targets[r0 + i] >= 0;
            if (!any) continue;
        }
        head_gemm(m, q->xn_final + (size_t)r0 * C, n, q->logits, 0);
        if (fsc > 0) {
            tr_softcap_forward(q->logits, (size_t)n * V, fsc);
            memcpy(q->capped, q->logits, sizeof(float) * n * V);
        }
        tr_loss_chunk lc = {q->logits, b->targets + r0, r0, n, V, gscale};
        int64_t k = 0;
        double ls = loss(&lc, ctx, &k);
        if (!isfinite(ls)) return nonfinite_fail(m, ls, e);
        st->loss_sum += ls; st->scored += k;
        if (!backward) continue;
        if (fsc > 0) tr_softcap_backward(q->logits, q->capped, (size_t)n * V, fsc);
        head_gemm(m, q->logits, n, q->dA + (size_t)r0 * C, 1);
        if (gh)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, n, 1.0f, q->logits, V,
                        q->xn_final + (size_t)r0 * C, C, 1.0f, gh, C);
    }
    if (backward) {
        zero(q->dres, (size_t)N * C);
        tr_rmsnorm_backward(q->dres, G(m, q->fnorm), q->dA, q->x_final, q->rstd_final,
                            Wv(m, q->fnorm), N, C, c->gemma);
    }
    return 0;
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

static int forward(tr_model *m, const tr_batch *b, lop_err *e) {
    if (check_batch(m, b, e) || ensure_acts(m, b->B, b->T, e)) return -1;
    tr_priv *q = P(m);
    const lop_config *c = &m->cfg;
    float scale = c->gemma ? (float)sqrt((double)c->hidden) : 1.0f;
    const tr_param *t = &m->p[q->embed]; /* float32 (trained) or mapped (frozen) */
    embedding_forward(q->a[0].x_in, b->ids, t->w ? (const void *)t->w : t->src,
                      t->w ? ST_F32 : t->dtype, q->N, c->hidden, scale);
    for (int l = 0; l < q->L; l++)
        layer_forward(m, l, &q->a[l], l + 1 < q->L ? q->a[l + 1].x_in : q->x_final);
    return 0;
}

int tr_forward_backward(tr_model *m, const tr_batch *b, float gscale, tr_loss_fn loss, void *ctx,
                        uint64_t dropout_seed, tr_stats *st, lop_err *e) {
    tr_priv *q = P(m);
    q->dropout_on = 1;
    q->drop_seed = dropout_seed;
    if (forward(m, b, e) || head_pass(m, b, gscale, loss, ctx, 1, st, e)) return -1;
    for (int l = q->L - 1; l >= 0; l--) {
        if (l >= q->keep || (q->keep < q->L && l < q->L - 1)) /* recompute into the shared set */
            layer_forward(m, l, &q->a[l], NULL);
        layer_backward(m, l, &q->a[l]);
    }
    float *ge = G(m, q->embed);
    if (ge)
        tr_embedding_backward(ge, q->dres, b->ids, q->N, m->cfg.hidden,
                              m->cfg.gemma ? (float)sqrt((double)m->cfg.hidden) : 1.0f);
    return 0;
}

int tr_eval_batch(tr_model *m, const tr_batch *b, tr_loss_fn loss, void *ctx, tr_stats *st,
                  lop_err *e) {
    P(m)->dropout_on = 0;
    return forward(m, b, e) || head_pass(m, b, 1.0f, loss, ctx, 0, st, e) ? -1 : 0;
}

/* ---------------------------------------------------------------- optimizer */

void tr_zero_grad(tr_model *m) {
    for (int i = 0; i < m->np; i++)
        if (m->p[i].g) memset(m->p[i].g, 0, m->p[i].n * sizeof(float));
}

double tr_grad_sumsq(const tr_model *m) {
    double s = 0;
    for (int i = 0; i < m->np; i++)
        if (m->p[i].trainable) s += grad_sumsq(m->p[i].g, m->p[i].n);
    return s;
}

void tr_adamw_step(tr_model *m, double lr, const adamw_hp *hp, int64_t t, double clip) {
    for (int i = 0; i < m->np; i++) {
        tr_param *p = &m->p[i];
        if (!p->trainable) continue;
        if (clip != 1.0) grad_scale(p->g, p->n, (float)clip);
        adamw_hp h = *hp;
        if (!p->decay) h.wd = 0;
        adamw_update(p->w, p->g, p->m, p->v, p->n, lr, &h, t, m->opt.keep_sparsity ? p->zero_bits : NULL);
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

/* ---------------------------------------------------------------- teachers (kd-train, additive) */

int tr_forward_hidden(tr_model *m, const tr_batch *b, lop_err *e) {
    tr_priv *q = P(m);
    q->dropout_on = 0;
    if (forward(m, b, e)) return -1;
    rmsnorm_forward(q->xn_final, q->rstd_final, q->x_final, Wv(m, q->fnorm), q->N,
                       m->cfg.hidden, (float)m->cfg.eps, m->cfg.gemma);
    return 0;
}

int tr_head_rows(tr_model *m, int64_t row0, int n, float *out, lop_err *e) {
    tr_priv *q = P(m);
    int C = m->cfg.hidden, V = m->cfg.vocab;
    if (row0 < 0 || n < 0 || row0 + n > q->N)
        return lop_fail(e, "internal: head rows %lld..%lld outside the last forward's %d rows",
                        (long long)row0, (long long)row0 + n - 1, q->N);
    if (!n) return 0;
    head_gemm(m, q->xn_final + (size_t)row0 * C, n, out, 0);
    if (m->cfg.final_softcap > 0) tr_softcap_forward(out, (size_t)n * V, (float)m->cfg.final_softcap);
    return 0;
}
