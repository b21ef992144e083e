/* train_tree.c — the fixed summation tree of a step's micro-batch gradients (train_tree.h). */
#include "train_tree.h"
#include "tool.h"
#include <stdlib.h>
#include <string.h>

struct train_tree {
    int m;              /* odd part of accum: micro-batches per block, added left to right */
    size_t n;           /* trainable gradient floats */
    float **s;          /* stack of partial sums, s[0] the lowest micro-batch indices */
    int *lvl;           /* s[i] sums 2^lvl[i] blocks */
    int depth, cap;
    int direct;         /* K = 1 and one process: the gradient is the micro-batch's, as computed */
};

void tt_share(int accum, int ranks, int rank, int *k0, int *k1) {
    if (ranks > 1 && ((ranks & (ranks - 1)) || accum % ranks))
        tool_die_usage("%d ranks: the ranks share each step's --grad-accum %d micro-batches in one fixed "
                  "summation tree, so the rank count must be a power of two that divides "
                  "--grad-accum (e.g. mpirun -np 2 with --grad-accum 2, 4, 6, 8 ...)", ranks, accum);
    *k0 = (int)((int64_t)accum * rank / ranks);
    *k1 = (int)((int64_t)accum * (rank + 1) / ranks);
}

static int trains(const tr_param *p) { return p->trainable && p->g; }

train_tree *tt_new(const tr_model *m, int accum) {
    train_tree *t = calloc(1, sizeof *t);
    if (!t) tool_die(1, "out of memory");
    t->m = accum;
    while (!(t->m & 1)) t->m >>= 1;
    for (int i = 0; i < m->np; i++) if (trains(&m->p[i])) t->n += m->p[i].n;
    t->direct = accum == 1 && job_ranks == 1;
    return t;
}

static float *slot(train_tree *t, int d) {
    if (d >= t->cap) {
        int nc = d + 1;
        float **s = realloc(t->s, sizeof *s * nc);
        int *l = realloc(t->lvl, sizeof *l * nc);
        if (!s || !l) tool_die(1, "out of memory");
        t->s = s; t->lvl = l;
        for (int i = t->cap; i < nc; i++) t->s[i] = NULL;
        t->cap = nc;
    }
    if (!t->s[d] && !(t->s[d] = malloc(sizeof(float) * (t->n ? t->n : 1))))
        tool_die(1, "out of memory for the gradient tree (%zu floats)", t->n);
    return t->s[d];
}

/* dst = m's gradients (copy) or dst + m's gradients (add: dst holds the lower indices) */
static void take(float *dst, const tr_model *m, int add) {
    size_t o = 0;
    for (int i = 0; i < m->np; i++) {
        const tr_param *p = &m->p[i];
        if (!trains(p)) continue;
        float *d = dst + o;
        const float *g = p->g;
        int64_t n = (int64_t)p->n;
        /* elementwise: the same bits for any thread count; threads for the memory bandwidth */
        if (add) {
            #pragma omp parallel for schedule(static) if (n >= (1 << 16))
            for (int64_t j = 0; j < n; j++) d[j] = d[j] + g[j];
        } else {
            #pragma omp parallel for schedule(static) if (n >= (1 << 16))
            for (int64_t j = 0; j < n; j += 4096) memcpy(d + j, g + j, sizeof(float) * (size_t)(n - j < 4096 ? n - j : 4096));
        }
        o += p->n;
    }
}

void tt_leaf(train_tree *t, const tr_model *m, int k) {
    if (t->direct) return;
    if (k % t->m == 0) {                       /* a block's first micro-batch */
        float *d = slot(t, t->depth);
        take(d, m, 0);
        t->lvl[t->depth++] = 0;
    } else {
        take(t->s[t->depth - 1], m, 1);
    }
    if (k % t->m != t->m - 1) return;          /* the block is not complete yet */
    /* pairwise: two complete neighbours of the same size become their parent */
    while (t->depth >= 2 && t->lvl[t->depth - 1] == t->lvl[t->depth - 2]) {
        float *a = t->s[t->depth - 2], *b = t->s[t->depth - 1];
        int64_t n = (int64_t)t->n;
        #pragma omp parallel for schedule(static) if (n >= (1 << 16))
        for (int64_t j = 0; j < n; j++) a[j] = a[j] + b[j];
        t->lvl[t->depth - 2]++;
        t->depth--;
    }
}

int tt_finish(train_tree *t, tr_model *m, lop_par *p, lop_err *e) {
    if (t->direct) return 0;
    if (t->depth != 1) { t->depth = 0; return lop_fail(e, "internal: the gradient tree is incomplete"); }
    t->depth = 0;
    float *s = t->s[0];
    if (par_sum_f32(p, s, t->n, e)) return -1;
    size_t o = 0;
    for (int i = 0; i < m->np; i++) {
        tr_param *q = &m->p[i];
        if (!trains(q)) continue;
        int64_t n = (int64_t)q->n;
        float *g = q->g;
        const float *src = s + o;
        #pragma omp parallel for schedule(static) if (n >= (1 << 16))
        for (int64_t j = 0; j < n; j += 4096) memcpy(g + j, src + j, sizeof(float) * (size_t)(n - j < 4096 ? n - j : 4096));
        o += q->n;
    }
    return 0;
}

size_t tt_bytes(const train_tree *t) {
    size_t b = 0;
    for (int i = 0; i < t->cap; i++) if (t->s[i]) b += sizeof(float) * t->n;
    return b;
}

void tt_free(train_tree *t) {
    if (!t) return;
    for (int i = 0; i < t->cap; i++) free(t->s[i]);
    free(t->s); free(t->lvl); free(t);
}
