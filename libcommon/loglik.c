/* loglik.c — the harness's request encoding and scoring, batched, with per-document prefix
 * reuse through the engine's KV cache (see loglik.h). */
#include "loglik.h"
#include "task.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void ll_req_free(ll_req *r) {
    free(r->ctx);
    free(r->cont);
    r->ctx = r->cont = NULL;
    r->nctx = r->ncont = 0;
}

int ll_encode(const lop_tokenizer *t, const char *ctx, const char *cont, int add_bos, ll_req *r,
              lop_err *e) {
    memset(r, 0, sizeof *r);
    size_t cl = strlen(ctx), kl = strlen(cont);
    size_t keep = cl - task_py_trailing_space(ctx, cl);
    int32_t *w = NULL, *c = NULL;
    size_t nw = 0, nc = 0;
    if (keep > 0 && tok_encode(t, ctx, keep, add_bos, &c, &nc, e)) return -1;
    if (nc == 0) {
        /* an empty context: the harness's prefix token (BOS, else EOS) stands for it */
        free(c);
        int p = tok_bos(t) >= 0 ? tok_bos(t) : tok_eos(t);
        if (p < 0) return lop_fail(e, "empty context and the tokenizer has neither BOS nor EOS");
        /* the continuation is then encoded alone (trailing spaces of ctx included) */
        char *s = malloc(cl - keep + kl + 1);
        if (!s) return lop_fail(e, "out of memory");
        memcpy(s, ctx + keep, cl - keep);
        memcpy(s + cl - keep, cont, kl + 1);
        int rc = tok_encode(t, s, cl - keep + kl, add_bos, &w, &nw, e);
        free(s);
        if (rc) return -1;
        r->ctx = malloc(sizeof(int32_t));
        if (!r->ctx) { free(w); return lop_fail(e, "out of memory"); }
        r->ctx[0] = p;
        r->nctx = 1;
        r->cont = w;
        r->ncont = (int)nw;
    } else {
        /* whole = context + continuation: moving the spaces does not change the joined text */
        char *s = malloc(cl + kl + 1);
        if (!s) { free(c); return lop_fail(e, "out of memory"); }
        memcpy(s, ctx, cl);
        memcpy(s + cl, cont, kl + 1);
        int rc = tok_encode(t, s, cl + kl, add_bos, &w, &nw, e);
        free(s);
        if (rc) { free(c); return -1; }
        size_t n = nw > nc ? nw - nc : 0;
        r->ctx = c;
        r->nctx = (int)nc;
        r->cont = malloc(sizeof(int32_t) * (n ? n : 1));
        if (!r->cont) { free(w); ll_req_free(r); return lop_fail(e, "out of memory"); }
        if (n) memcpy(r->cont, w + nc, sizeof(int32_t) * n);
        r->ncont = (int)n;
        free(w);
    }
    if (r->ncont == 0) { ll_req_free(r); return lop_fail(e, "the continuation has no tokens of its own"); }
    return 0;
}

/* ---- the plan of a document: inputs, shared prefix ---- */

/* request r's model input is (ctx + cont)[s : s + I] with s = max(0, len - (L+1)), I = rows */
typedef struct rplan { int s, I, first; } rplan;

static inline int32_t full_at(const ll_req *r, int i) {
    return i < r->nctx ? r->ctx[i] : r->cont[i - r->nctx];
}

/* fills p[0..d->n) and returns the shared prefix length P (0: nothing shared) */
static int doc_plan(const ll_doc *d, int L, int reuse, rplan *p) {
    int P = 1 << 30;
    for (int r = 0; r < d->n; r++) {
        int len = d->req[r].nctx + d->req[r].ncont;
        p[r].s = len - 1 > L ? len - 1 - L : 0;
        p[r].I = len - 1 - p[r].s;
        p[r].first = p[r].I - d->req[r].ncont;
        if (p[r].first < P) P = p[r].first;
    }
    if (!reuse || d->n < 2) return 0;
    for (int k = 0; k < P; k++) {
        int32_t v = full_at(&d->req[0], p[0].s + k);
        for (int r = 1; r < d->n; r++)
            if (full_at(&d->req[r], p[r].s + k) != v) return k;
    }
    return P;
}

typedef struct dinfo { int idx, P, rows, maxI; } dinfo;

static int by_len_desc(const void *a, const void *b) {
    const dinfo *x = a, *y = b;
    if (x->maxI != y->maxI) return y->maxI - x->maxI;
    return x->idx - y->idx;
}

/* ---- one batch ---- */

static int run_batch(lop_model *m, ll_doc *docs, const dinfo *di, int nb, int L, ll_stats *st,
                     lop_err *e) {
    int B1 = 0, maxP = 0, B2 = 0, maxI = 0, N1 = 0, N2 = 0, rmax = 0;
    for (int i = 0; i < nb; i++) {
        const ll_doc *d = &docs[di[i].idx];
        if (di[i].P > 0) { B1++; N1 += di[i].P; if (di[i].P > maxP) maxP = di[i].P; }
        B2 += d->n;
        if (d->n > rmax) rmax = d->n;
        if (di[i].maxI > maxI) maxI = di[i].maxI;
        N2 += di[i].rows - di[i].P;
    }
    if (N2 == 0) return 0; /* documents without requests */
    int rc = -1;
    rplan *pl = malloc(sizeof(rplan) * (size_t)rmax);
    int32_t *ids1 = malloc(sizeof(int32_t) * (size_t)(N1 ? N1 : 1));
    int *len1 = malloc(sizeof(int) * (size_t)(B1 ? B1 : 1));
    int32_t *ids2 = malloc(sizeof(int32_t) * (size_t)N2), *tgt = malloc(sizeof(int32_t) * (size_t)N2);
    int *len2 = malloc(sizeof(int) * (size_t)B2);
    uint8_t *sel = calloc((size_t)N2, 1);
    float *lp = malloc(sizeof(float) * (size_t)N2);
    int32_t *am = malloc(sizeof(int32_t) * (size_t)N2);
    lop_kv *kv1 = NULL, *kv2 = NULL;
    if (!pl || !ids1 || !len1 || !ids2 || !tgt || !len2 || !sel || !lp || !am) {
        lop_fail(e, "out of memory for a batch of %d rows", N2);
        goto out;
    }
    /* pack: pass 1 = shared prefixes, pass 2 = each request's rest */
    int n1 = 0, b1 = 0, n2 = 0, b2 = 0;
    for (int i = 0; i < nb; i++) {
        const ll_doc *d = &docs[di[i].idx];
        int P = di[i].P;
        doc_plan(d, L, P > 0, pl);
        if (P > 0) {
            for (int k = 0; k < P; k++) ids1[n1++] = full_at(&d->req[0], pl[0].s + k);
            len1[b1++] = P;
        }
        for (int r = 0; r < d->n; r++) {
            const ll_req *q = &d->req[r];
            for (int k = P; k < pl[r].I; k++) {
                ids2[n2] = full_at(q, pl[r].s + k);
                /* row k predicts full[s + k + 1]; scored rows are k >= first */
                tgt[n2] = k >= pl[r].first ? full_at(q, pl[r].s + k + 1) : -1;
                sel[n2] = k >= pl[r].first;
                n2++;
            }
            len2[b2++] = pl[r].I - P;
        }
    }
    lop_fwd_opts fo = {0};
    if (B1 > 0) {
        if (lop_kv_new(&kv1, m, B1, maxP, e) || lop_kv_new(&kv2, m, B2, maxI, e)) goto out;
        lop_batch b = {.B = B1, .len = len1, .ids = ids1};
        fo.kv = kv1;
        double t0 = wall();
        if (lop_forward(m, &b, &fo, NULL, e)) goto out;
        st->forward_s += wall() - t0;
        st->forwards++;
        st->rows += N1;
        /* every request of a document starts from a copy of its prefix */
        int s1 = 0, s2 = 0;
        for (int i = 0; i < nb; i++) {
            const ll_doc *d = &docs[di[i].idx];
            int P = di[i].P;
            for (int r = 0; r < d->n; r++, s2++) {
                kv2->len[s2] = P;
                if (P > 0 && lop_kv_copy(kv2, s2, kv1, s1, P, e)) goto out;
            }
            if (P > 0) s1++;
        }
        fo.kv = kv2;
    }
    lop_batch b = {.B = B2, .len = len2, .ids = ids2};
    lop_head_req h = {.select = sel, .target = tgt, .target_logprob = lp, .argmax = am};
    double t0 = wall();
    if (lop_forward(m, &b, B1 > 0 ? &fo : NULL, &h, e)) goto out;
    st->forward_s += wall() - t0;
    st->forwards++;
    st->rows += N2;
    /* gather each request's sum and greedy flag */
    n2 = 0;
    for (int i = 0; i < nb; i++) {
        ll_doc *d = &docs[di[i].idx];
        for (int r = 0; r < d->n; r++) {
            ll_req *q = &d->req[r];
            double s = 0;
            int greedy = 1;
            doc_plan(d, L, di[i].P > 0, pl);
            for (int k = di[i].P; k < pl[r].I; k++, n2++) {
                if (!sel[n2]) continue;
                s += lp[n2];
                if (am[n2] != tgt[n2]) greedy = 0;
                st->scored++;
            }
            q->ll = s;
            q->greedy = (uint8_t)greedy;
        }
    }
    rc = 0;
out:
    lop_kv_free(kv1);
    lop_kv_free(kv2);
    free(pl); free(ids1); free(len1); free(ids2); free(tgt); free(len2); free(sel); free(lp); free(am);
    return rc;
}

int ll_score(lop_model *m, ll_doc *docs, int nd, const ll_opts *o, ll_stats *stats, lop_err *e) {
    ll_stats local = {0};
    ll_stats *st = stats ? stats : &local;
    int L = o->max_len;
    int budget = o->batch_tokens > 0 ? o->batch_tokens : 2048;
    int64_t kvb = o->kv_bytes > 0 ? o->kv_bytes : (int64_t)512 << 20;
    if (L < 1) return lop_fail(e, "bad model context length %d", L);
    int64_t kv_row = (int64_t)2 * m->cfg.n_layers * m->cfg.n_kv_heads * m->cfg.head_dim * (int64_t)sizeof(float);
    dinfo *di = malloc(sizeof(dinfo) * (size_t)(nd ? nd : 1));
    int rmax = 1;
    for (int i = 0; i < nd; i++) if (docs[i].n > rmax) rmax = docs[i].n;
    rplan *pl = malloc(sizeof(rplan) * (size_t)rmax);
    if (!di || !pl) { free(di); free(pl); return lop_fail(e, "out of memory"); }
    for (int i = 0; i < nd; i++) {
        ll_doc *d = &docs[i];
        for (int r = 0; r < d->n; r++) {
            if (d->req[r].ncont < 1 || d->req[r].nctx < 1) { free(di); free(pl); return lop_fail(e, "document %d: empty request", i); }
            if (d->req[r].ncont > L) {
                free(di); free(pl);
                return lop_fail(e, "document %d: a continuation of %d tokens does not fit the model's context of %d",
                                i, d->req[r].ncont, L);
            }
        }
        di[i].idx = i;
        di[i].P = d->n > 0 ? doc_plan(d, L, !o->no_reuse, pl) : 0;
        /* sharing fewer than a few rows costs more in copies than it saves */
        if (di[i].P < 4) di[i].P = 0;
        di[i].rows = di[i].P;
        di[i].maxI = 0;
        for (int r = 0; r < d->n; r++) {
            di[i].rows += pl[r].I - di[i].P;
            st->rows_plain += pl[r].I;
            if (pl[r].I > di[i].maxI) di[i].maxI = pl[r].I;
        }
    }
    free(pl);
    qsort(di, (size_t)nd, sizeof *di, by_len_desc);
    int done = 0, rc = 0, k = 0;
    for (int i = 0; i < nd && !rc; k++) {
        /* grow the batch while rows and the KV caches fit */
        int j = i, rows = 0, B1 = 0, B2 = 0, maxP = 0, maxI = 0;
        while (j < nd) {
            const dinfo *x = &di[j];
            int nB1 = B1 + (x->P > 0), nB2 = B2 + docs[x->idx].n;
            int nP = x->P > maxP ? x->P : maxP, nI = x->maxI > maxI ? x->maxI : maxI;
            int64_t kv = nB1 ? ((int64_t)nB1 * nP + (int64_t)nB2 * nI) * kv_row : 0;
            if (j > i && (rows + x->rows > budget || kv > kvb)) break;
            rows += x->rows; B1 = nB1; B2 = nB2; maxP = nP; maxI = nI;
            j++;
        }
        if (o->part_n <= 1 || k % o->part_n == o->part_i) rc = run_batch(m, docs, di + i, j - i, L, st, e);
        done += j - i;
        i = j;
        if (!rc && o->progress) o->progress(o->user, done);
    }
    free(di);
    return rc;
}
