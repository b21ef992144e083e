/* kd.c — distillation divergences and their gradients (see kd.h for the definitions). */
#include "kd.h"
#include "backend.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const kd_term_names[KD_NTERMS] = {"ce", "fkl", "rkl", "skl", "srkl", "jsd", "tvd"};

/* ---------------------------------------------------------------- the loss spec */

int kd_parse_loss(const char *s, kd_spec *k, lop_err *e) {
    double w[KD_NTERMS] = {0};
    int seen[KD_NTERMS] = {0};
    char buf[512];
    if (!s || !*s) return lop_failc(e, LOP_EUSAGE, "--loss: empty");
    if (strlen(s) >= sizeof buf) return lop_failc(e, LOP_EUSAGE, "--loss: too long");
    strcpy(buf, s);
    char *save = NULL;
    for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(p, ':');
        double v = 1.0;
        if (colon) {
            *colon = 0;
            char *end;
            v = strtod(colon + 1, &end);
            if (end == colon + 1 || *end || !isfinite(v) || v < 0)
                return lop_failc(e, LOP_EUSAGE, "--loss: '%s' is not a weight >= 0 (term %s)",
                                 colon + 1, p);
        }
        int t = -1;
        for (int i = 0; i < KD_NTERMS; i++) if (!strcmp(p, kd_term_names[i])) t = i;
        if (t < 0)
            return lop_failc(e, LOP_EUSAGE,
                             "--loss: unknown term '%s' (ce, fkl, rkl, skl, srkl, jsd, tvd)", p);
        if (seen[t]) return lop_failc(e, LOP_EUSAGE, "--loss: term '%s' given twice", p);
        seen[t] = 1;
        w[t] = v;
    }
    double tot = 0;
    for (int i = 0; i < KD_NTERMS; i++) tot += w[i];
    if (tot <= 0) return lop_failc(e, LOP_EUSAGE, "--loss: every weight is zero ('%s')", s);
    memcpy(k->w, w, sizeof w);
    return 0;
}

int kd_needs_teacher(const kd_spec *k) {
    for (int i = 1; i < KD_NTERMS; i++) if (k->w[i] > 0) return 1;
    return 0;
}

void kd_spec_str(const kd_spec *k, char *buf, int n) {
    int o = 0;
    buf[0] = 0;
    for (int i = 0; i < KD_NTERMS && o < n; i++)
        if (k->w[i] > 0) o += snprintf(buf + o, n - o, "%s%s:%g", o ? "," : "", kd_term_names[i], k->w[i]);
}

/* ---------------------------------------------------------------- divergences */

static inline double lae(double a, double b) { /* log(exp a + exp b) */
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    double m = a > b ? a : b;
    return m + log1p(exp(-fabs(a - b)));
}
/* x * (la - lb) with 0 * anything = 0 */
static inline double xlog(double x, double la, double lb) { return x > 0 ? x * (la - lb) : 0.0; }

/* log(wa A + wb B) from the masses (fast path: one log) or, when the mixture underflows, from the
 * log masses (la_w = log wa + log A, lb_w = log wb + log B) */
static inline double mixlog(double m, double la_w, double lb_w) {
    return m > 1e-300 ? log(m) : lae(la_w, lb_w);
}

double kd_div(int term, const double *lp, const double *lq, const double *P, const double *Q,
              int nb, double a, double *h) {
    double D = 0;
    double la = a > 0 ? log(a) : -INFINITY, l1a = log1p(-a);
    switch (term) {
    case KD_FKL:
        for (int b = 0; b < nb; b++) { D += xlog(P[b], lp[b], lq[b]); h[b] = -P[b]; }
        break;
    case KD_RKL:
        for (int b = 0; b < nb; b++) { double d = xlog(Q[b], lq[b], lp[b]); D += d; h[b] = d; }
        break;
    case KD_SKL: /* M = a P + (1-a) Q;  dD/dQ = -(1-a) P/M */
        for (int b = 0; b < nb; b++) {
            double m = a * P[b] + (1 - a) * Q[b], lm = mixlog(m, la + lp[b], l1a + lq[b]);
            D += xlog(P[b], lp[b], lm);
            h[b] = P[b] > 0 && Q[b] > 0 ? -(1 - a) * (m > 1e-300 ? P[b] * Q[b] / m : exp(lp[b] + lq[b] - lm)) : 0.0;
        }
        break;
    case KD_SRKL: /* M = a Q + (1-a) P;  dD/dQ = log(Q/M) + 1 - a Q/M */
        for (int b = 0; b < nb; b++) {
            double m = a * Q[b] + (1 - a) * P[b], lm = mixlog(m, la + lq[b], l1a + lp[b]);
            double d = xlog(Q[b], lq[b], lm);
            D += d;
            h[b] = Q[b] > 0 ? d - a * (m > 1e-300 ? Q[b] * Q[b] / m : exp(2 * lq[b] - lm)) : 0.0;
        }
        break;
    case KD_JSD: /* M = b P + (1-b) Q;  dD/dQ = (1-b) log(Q/M) */
        for (int b = 0; b < nb; b++) {
            double m = a * P[b] + (1 - a) * Q[b], lm = mixlog(m, la + lp[b], l1a + lq[b]);
            double dq = xlog(Q[b], lq[b], lm);
            D += a * xlog(P[b], lp[b], lm) + (1 - a) * dq;
            h[b] = (1 - a) * dq;
        }
        break;
    case KD_TVD:
        for (int b = 0; b < nb; b++) {
            double d = Q[b] - P[b];
            D += 0.5 * fabs(d);
            h[b] = d > 0 ? 0.5 * Q[b] : d < 0 ? -0.5 * Q[b] : 0.0;
        }
        break;
    default:
        return NAN;
    }
    return D;
}

/* ---------------------------------------------------------------- one row */

void kd_work_free(kd_work *w) {
    free(w->buf); free(w->mark); free(w->ids);
    w->buf = NULL; w->mark = NULL; w->ids = NULL; w->cap = 0;
}

static int work_ensure(kd_work *w, int Vs) {
    if (w->cap >= Vs) return 0;
    kd_work_free(w);
    size_t n = (size_t)Vs + 1;
    w->buf = malloc(sizeof(double) * n * 8);
    w->mark = calloc(n, 1);
    w->ids = malloc(sizeof(int32_t) * n);
    if (!w->buf || !w->mark || !w->ids) { kd_work_free(w); return -1; }
    w->cap = Vs;
    return 0;
}

/* log-softmax of x[0..n) / T in double, and the probabilities (one exp per element) */
static void log_softmax(double *out, double *prob, const float *x, int n, double invT) {
    double mx = -INFINITY;
    for (int i = 0; i < n; i++) { double v = x[i] * invT; if (v > mx) mx = v; }
    double s = 0;
    for (int i = 0; i < n; i++) { out[i] = x[i] * invT - mx; prob[i] = exp(out[i]); s += prob[i]; }
    double l = log(s), inv = 1.0 / s;
    for (int i = 0; i < n; i++) { out[i] -= l; prob[i] *= inv; }
}

double kd_row(const kd_spec *s, float *zs, int Vs, int V, const kd_trow *t, int target,
              float gscale, double *terms, kd_work *w) {
    if (work_ensure(w, Vs)) return NAN;
    size_t n1 = (size_t)Vs + 1;
    double *g = w->buf, *sq = g + n1, *sQ = sq + n1, *lp = sQ + n1, *P = lp + n1, *lqb = P + n1,
           *Qb = lqb + n1, *h = Qb + n1;
    memset(g, 0, sizeof(double) * Vs);
    for (int k = 0; k < KD_NTERMS; k++) terms[k] = 0;
    double loss = 0;
    if (s->w[KD_CE] > 0) {
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < Vs; i++) if (zs[i] > mx) mx = zs[i];
        for (int i = 0; i < Vs; i++) { g[i] = exp(zs[i] - mx); sum += g[i]; }
        double lse = mx + log(sum), wc = s->w[KD_CE];
        for (int i = 0; i < Vs; i++) g[i] *= wc / sum;
        g[target] -= wc;
        terms[KD_CE] = lse - zs[target];
        loss += wc * terms[KD_CE];
    }
    if (kd_needs_teacher(s) && t) {
        double T = s->temperature, invT = 1.0 / T;
        log_softmax(sq, sQ, zs, V, invT);
        const double *lq = sq, *Q = sQ;
        int nb = V, kept = 0, tail = 0;
        int32_t *kid = w->ids; /* sparse: the id of bucket b < kept */
        if (t->logits) {
            log_softmax(lp, P, t->logits, V, invT);
        } else {
            /* buckets: the cached ids below V, then the tail (every other shared id) */
            for (int j = 0; j < t->k; j++) {
                int id = t->ids[j];
                if (id < 0 || id >= V || w->mark[id]) continue;
                w->mark[id] = 1;
                lp[kept] = t->logp[j];
                lqb[kept] = sq[id]; Qb[kept] = sQ[id];
                kid[kept++] = id;
            }
            nb = kept;
            if (kept < V) { /* the student's tail mass: a plain sum (a tail below 1e-300 is 0) */
                double sum = 0;
                for (int i = 0; i < V; i++) if (!w->mark[i]) sum += sQ[i];
                tail = 1;
                lp[nb] = t->logp_tail;
                Qb[nb] = sum; lqb[nb] = sum > 0 ? log(sum) : -INFINITY;
                nb++;
            }
            /* renormalize the teacher over the buckets kept (ids >= V were dropped) */
            double m2 = -INFINITY, s2 = 0;
            for (int b = 0; b < nb; b++) if (lp[b] > m2) m2 = lp[b];
            for (int b = 0; b < nb; b++) s2 += exp(lp[b] - m2);
            double ls = m2 + log(s2);
            for (int b = 0; b < nb; b++) { lp[b] -= ls; P[b] = exp(lp[b]); }
            lq = lqb; Q = Qb;
        }
        for (int k = 1; k < KD_NTERMS; k++) {
            double wk = s->w[k];
            if (wk <= 0) continue;
            double a = k == KD_JSD ? s->jsd_beta : s->skew;
            double D = kd_div(k, lp, lq, P, Q, nb, a, h);
            terms[k] = T * T * D;
            loss += wk * terms[k];
            double hs = 0;
            for (int b = 0; b < nb; b++) hs += h[b];
            double c = wk * T; /* d(T^2 D)/dz = T dD/du */
            for (int i = 0; i < V; i++) g[i] -= c * sQ[i] * hs;
            if (t->logits) {
                for (int i = 0; i < V; i++) g[i] += c * h[i];
            } else {
                for (int b = 0; b < kept; b++) g[kid[b]] += c * h[b];
                if (tail && Qb[kept] > 0) {
                    double ht = c * h[kept] / Qb[kept];
                    for (int i = 0; i < V; i++) if (!w->mark[i]) g[i] += ht * sQ[i];
                }
            }
        }
        if (!t->logits) for (int b = 0; b < kept; b++) w->mark[kid[b]] = 0;
    }
    for (int i = 0; i < Vs; i++) zs[i] = (float)(gscale * g[i]);
    return loss;
}

/* ---------------------------------------------------------------- the engine's loss */

void kd_ctx_free(kd_ctx *k) {
    if (k->dev) k->dbe->op->release(k->dbe, k->dev);
    free(k->pack);
    k->dev = k->pack = NULL; k->dev_cap = k->pack_cap = 0;
    for (int i = 0; i < k->nwork; i++) kd_work_free(&k->work[i]);
    free(k->work); free(k->rows); free(k->rterm);
    k->work = NULL; k->rows = NULL; k->rterm = NULL; k->nwork = k->nrows = k->nrterm = 0;
}

typedef int (*kd_cuda_fn)(lop_backend *be, float *zs, int Vs, int V, const float *zt, int ldt,
                          const int32_t *ids, const float *logp, const float *tail, int tk,
                          const int32_t *targets, int n, const kd_spec *spec, float gscale,
                          double *terms, lop_err *e);

/* the loss on the device that holds the student's logits: the teacher's dense rows are there
 * already; a cache's top-k rows are packed into [n, tk] arrays and uploaded */
static int kd_device(const tr_loss_chunk *c, kd_ctx *k, int need_t) {
    static kd_cuda_fn fn;
    lop_backend *be = c->be;
    if (!fn) fn = (kd_cuda_fn)lop_backend_cuda_sym("lop_cuda_kd_loss");
    if (!fn) return lop_fail(&k->err, "the distillation loss on %s needs liblop_cuda.so's lop_cuda_kd_loss", be->name);
    int n = c->n, tk = 0;
    const float *zt = NULL;
    const int32_t *ids = NULL;
    const float *logp = NULL, *tail = NULL;
    if (need_t && k->rows[0].logits) {
        zt = k->rows[0].logits;
    } else if (need_t) {
        for (int i = 0; i < n; i++)
            if (c->targets[i] >= 0 && k->rows[i].k > tk) tk = k->rows[i].k;
        if (tk < 1) tk = 1;
        size_t bytes = (size_t)n * tk * 8 + (size_t)n * 4;
        if (bytes > k->pack_cap) {
            free(k->pack);
            if (!(k->pack = malloc(bytes))) { k->pack_cap = 0; return lop_fail(&k->err, "out of memory"); }
            k->pack_cap = bytes;
        }
        if (bytes > k->dev_cap || k->dbe != be) {
            if (k->dev) k->dbe->op->release(k->dbe, k->dev);
            k->dbe = be;
            if (!(k->dev = be->op->alloc(be, bytes))) {
                k->dev_cap = 0;
                return lop_fail(&k->err, "out of %s memory for the teacher's rows", be->name);
            }
            k->dev_cap = bytes;
        }
        int32_t *pi = k->pack;
        float *pl = (float *)(pi + (size_t)n * tk), *pt = pl + (size_t)n * tk;
        for (int i = 0; i < n; i++) {
            const kd_trow *r = &k->rows[i];
            int m = c->targets[i] >= 0 ? r->k : 0;
            for (int j = 0; j < tk; j++) {
                pi[(size_t)i * tk + j] = j < m ? r->ids[j] : -1;   /* -1: dropped */
                pl[(size_t)i * tk + j] = j < m ? r->logp[j] : 0.0f;
            }
            pt[i] = m ? r->logp_tail : 0.0f;
        }
        if (be->op->upload(be, k->dev, k->pack, bytes, &k->err)) return -1;
        ids = k->dev;
        logp = (const float *)(ids + (size_t)n * tk);
        tail = logp + (size_t)n * tk;
    }
    return fn(be, c->logits, c->V, k->V, zt, k->ldt, ids, logp, tail, tk, c->targets, n, &k->spec,
              c->gscale, k->rterm, &k->err);
}

double kd_loss(const tr_loss_chunk *c, void *ctx, int64_t *scored) {
    kd_ctx *k = ctx;
    int n = c->n, nt = omp_get_max_threads();
    if (k->nwork < nt) {
        kd_work *w = realloc(k->work, sizeof *w * nt);
        if (!w) goto oom;
        memset(w + k->nwork, 0, sizeof *w * (nt - k->nwork));
        k->work = w; k->nwork = nt;
    }
    if (k->nrows < n) {
        kd_trow *r = realloc(k->rows, sizeof *r * n);
        double *rt = realloc(k->rterm, sizeof *rt * n * (KD_NTERMS + 1));
        if (r) k->rows = r;
        if (rt) k->rterm = rt;
        if (!r || !rt) goto oom;
        k->nrows = n;
    }
    int need_t = kd_needs_teacher(&k->spec);
    if (need_t) {
        memset(k->rows, 0, sizeof *k->rows * n);
        if (k->teacher(k->user, c->row0, n, c->targets, k->rows, &k->err)) {
            k->failed = 1;
            return NAN;
        }
    }
    int bad = 0;
    if (c->device) {
        if (kd_device(c, k, need_t)) { k->failed = 1; return NAN; }
        n = 0; /* the rows are done: to the sums */
    }
    #pragma omp parallel for schedule(dynamic, 1) reduction(|:bad)
    for (int i = 0; i < n; i++) {
        float *z = c->logits + (size_t)i * c->V;
        double *rt = k->rterm + (size_t)i * (KD_NTERMS + 1);
        if (c->targets[i] < 0) {
            memset(z, 0, sizeof(float) * c->V);
            rt[KD_NTERMS] = -1;
            continue;
        }
        double l = kd_row(&k->spec, z, c->V, k->V, need_t ? &k->rows[i] : NULL, c->targets[i],
                          c->gscale, rt, &k->work[omp_get_thread_num()]);
        if (isnan(l)) bad = 1;
        rt[KD_NTERMS] = l;
    }
    if (bad) goto oom;
    double tot = 0;
    int64_t sc = 0;
    n = c->n;
    for (int i = 0; i < n; i++) { /* serial: sums independent of the thread count */
        double *rt = k->rterm + (size_t)i * (KD_NTERMS + 1);
        if (c->targets[i] < 0) continue;
        for (int t = 0; t < KD_NTERMS; t++) k->sum[t] += rt[t];
        tot += rt[KD_NTERMS];
        sc++;
    }
    k->scored += sc;
    *scored = sc;
    return tot;
oom:
    lop_fail(&k->err, "out of memory in the distillation loss");
    k->failed = 1;
    return NAN;
}
