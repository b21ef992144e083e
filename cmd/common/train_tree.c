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

train_tree *tt_new(const tr_model *m, int accum) {
    train_tree *t = calloc(1, sizeof *t);
    if (!t) tool_die(1, "out of memory");
    t->m = accum;
    while (!(t->m & 1)) t->m >>= 1;
    t->n = tr_grad_floats(m);
    t->direct = accum == 1 && job_ranks == 1;
    return t;
}

/* the partial sums live where the gradients do (backend memory: the device's on a GPU) */
static float *slot(train_tree *t, tr_model *m, int d) {
    if (d >= t->cap) {
        int nc = d + 1;
        float **s = realloc(t->s, sizeof *s * nc);
        int *l = realloc(t->lvl, sizeof *l * nc);
        if (!s || !l) tool_die(1, "out of memory");
        t->s = s; t->lvl = l;
        for (int i = t->cap; i < nc; i++) t->s[i] = NULL;
        t->cap = nc;
    }
    if (!t->s[d] && !(t->s[d] = tr_grad_alloc(m)))
        tool_die(1, "out of %s memory for the gradient tree (%zu floats)", tr_device(m), t->n);
    return t->s[d];
}

void tt_leaf(train_tree *t, tr_model *m, int k) {
    if (t->direct) return;
    lop_err e;
    if (k % t->m == 0) {                       /* a block's first micro-batch */
        float *d = slot(t, m, t->depth);
        if (tr_grad_get(m, d, 0, &e)) tool_die_err(&e);
        t->lvl[t->depth++] = 0;
    } else if (tr_grad_get(m, t->s[t->depth - 1], 1, &e)) {
        tool_die_err(&e);
    }
    if (k % t->m != t->m - 1) return;          /* the block is not complete yet */
    /* pairwise: two complete neighbours of the same size become their parent */
    while (t->depth >= 2 && t->lvl[t->depth - 1] == t->lvl[t->depth - 2]) {
        if (tr_grad_add(m, t->s[t->depth - 2], t->s[t->depth - 1], &e)) tool_die_err(&e);
        t->lvl[t->depth - 2]++;
        t->depth--;
    }
}

int tt_finish(train_tree *t, tr_model *m, lop_par *p, lop_err *e) {
    if (t->direct) return 0;
    if (t->depth != 1) { t->depth = 0; return lop_fail(e, "internal: the gradient tree is incomplete"); }
    t->depth = 0;
    float *s = t->s[0];
    if (par_size(p) > 1) {
        /* the ranks' shares meet in host memory (a device's are downloaded and put back) */
        float *host = NULL;
        if (!tr_host_mem(m) && !(host = malloc(sizeof(float) * (t->n ? t->n : 1))))
            return lop_fail(e, "out of memory");
        float *h = tr_grad_host(m, s, host, e);
        int rc = !h || par_sum_f32(p, h, t->n, e) || tr_grad_from_host(m, s, h, e) ? -1 : 0;
        free(host);
        if (rc) return -1;
    }
    return tr_grad_put(m, s, e);
}

size_t tt_bytes(const train_tree *t) {
    size_t b = 0;
    for (int i = 0; i < t->cap; i++) if (t->s[i]) b += sizeof(float) * t->n;
    return b;
}

void tt_free(train_tree *t, tr_model *m) {
    if (!t) return;
    for (int i = 0; i < t->cap; i++) tr_grad_release(m, t->s[i]);
    free(t->s); free(t->lvl); free(t);
}
