/* train_tree.h — a step's gradient as ONE fixed sum over its micro-batches, so that the weights
 * a run writes do not depend on how many ranks (mpirun -np N) computed them.
 *
 * The tree over the K = --grad-accum micro-batches of a step: write K = 2^J * m (m odd); the top J
 * levels halve [0, K) into 2^J blocks of m micro-batches, pairwise ((b0 + b1) + (b2 + b3)) ...;
 * each block adds its m micro-batches left to right. N ranks (N a power of two dividing K, so
 * N <= 2^J) take N contiguous shares of 2^J/N blocks: each share is a node of the tree, each rank
 * sums its own subtree, and par_sum_f32's butterfly (par.h) adds the shares by the same tree's
 * top log2(N) levels. The single process (N = 1) sums the same tree.
 *
 * The partial sums live where the gradients do (tr_grad_alloc: a GPU's memory when training
 * there); ranks meet in host memory.
 *
 * Cost: a micro-batch's gradient is computed alone (tr_zero_grad before each), then copied or
 * added: one float per trainable parameter for each open level of the tree, at most
 * 1 + log2(2^J / N) of them (none when K = N = 1, the default). */
#ifndef LOP_TRAIN_TREE_H
#define LOP_TRAIN_TREE_H
#include "par.h"
#include "train.h"

typedef struct train_tree train_tree;

/* The share [*k0, *k1) of micro-batches rank `rank` of `ranks` computes; dies (exit 2) with the
 * rule when `ranks` does not fit `accum`. */
void tt_share(int accum, int ranks, int rank, int *k0, int *k1);
train_tree *tt_new(const tr_model *m, int accum);
/* micro-batch k (global index) has just been computed into m's gradients, zeroed before it */
void tt_leaf(train_tree *t, tr_model *m, int k);
/* this rank's subtree summed, the ranks' shares added (p; NULL: one process), and the step's
 * gradient put back into m. Returns par's error. */
int tt_finish(train_tree *t, tr_model *m, lop_par *p, lop_err *e);
/* bytes of the tree's buffers (for the memory note) */
size_t tt_bytes(const train_tree *t);
void tt_free(train_tree *t, tr_model *m);
#endif
