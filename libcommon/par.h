/* par.h — a job of several processes (ranks) started by mpirun: sums, broadcast, send/receive,
 * barrier, abort. The data-parallel tools (heal-sft, kd-train, lm-eval, layer-score, wmask) use
 * it; see docs/mpi.md.
 *
 *     int rank, size;
 *     if (par_launched(&rank, &size)) {          // from the launcher's environment, no MPI yet
 *         lop_par *p;
 *         if (par_open(&p, &e)) ...              // loads Open MPI (dlopen), MPI_Init
 *         par_sum_f32(p, grad, n, &e);           // every rank gets the same sum, same bits
 *         par_close(p);                          // MPI_Finalize (successful end only)
 *     }
 * A NULL lop_par is the single process: every operation is a no-op that succeeds, so callers
 * write one code path.
 *
 * Determinism: floating sums are combined in ONE fixed order that depends only on the rank
 * count: for a power-of-two count, the pairwise tree ((r0 + r1) + (r2 + r3)) + ... computed by a
 * butterfly (at level i, rank r exchanges with r ^ 2^i and both add lower + upper), so every rank
 * holds the same bits and the tree is the top of the trainer's tree over micro-batches
 * (train_cli.c). Other counts: rank 0 adds the ranks left to right and broadcasts. int64 sums
 * are exact in any order.
 *
 * Transports: par_mpi.c (Open MPI, loaded with dlopen only under a launcher, so a build or a
 * machine without MPI runs every tool unchanged and mpirun gets one clear message). The
 * operations go through a table (par_ops) so that a device transport (NCCL, bootstrapped by
 * broadcasting its unique id over MPI, as llm.c does) can provide sendrecv/bcast on GPU buffers
 * later while the tree above stays the same. */
#ifndef LOP_PAR_H
#define LOP_PAR_H
#include <stddef.h>
#include <stdint.h>
#include "err.h"

typedef struct lop_par lop_par;

/* 1 when the environment says this process is one rank of a job of more than one (Open MPI's
 * OMPI_COMM_WORLD_SIZE/RANK, PMI_SIZE/PMI_RANK of MPICH and Slurm; PMIX_RANK alone: size -1,
 * known after par_open). *rank, *size get the values (0 and 1 when not launched). */
int par_launched(int *rank, int *size);

/* Load the MPI library and initialize (errors come back as values, not aborts). */
int par_open(lop_par **out, lop_err *e);
/* Finalize and free (call only on a successful end: a rank that failed just exits, and the
 * launcher ends the others). NULL: nothing. */
void par_close(lop_par *p);
/* Ask the transport to end every rank of the job with exit code `code` (MPI_Abort); returns
 * only when it could not (NULL: nothing to do) and the caller exits as it would anyway. */
void par_abort(lop_par *p, int code);

int par_rank(const lop_par *p);   /* 0 for NULL */
int par_size(const lop_par *p);   /* 1 for NULL */

/* In place, on every rank: x = the sum over ranks (the fixed order above). */
int par_sum_f32(lop_par *p, float *x, size_t n, lop_err *e);
int par_sum_f64(lop_par *p, double *x, size_t n, lop_err *e);
int par_sum_i64(lop_par *p, int64_t *x, size_t n, lop_err *e);
/* root's bytes to every rank */
int par_bcast(lop_par *p, void *buf, size_t n, int root, lop_err *e);
/* point to point (rank 0 gathering variable-sized pieces: send the size first) */
int par_send(lop_par *p, int to, const void *buf, size_t n, lop_err *e);
int par_recv(lop_par *p, int from, void *buf, size_t n, lop_err *e);
int par_barrier(lop_par *p, lop_err *e);

/* Bytes this rank has sent so far (payloads; the bench's bytes per step). */
uint64_t par_bytes_sent(const lop_par *p);

/* ---- the transport table (par_mpi.c; a device transport later) */
typedef struct par_ops {
    const char *name;
    int (*sendrecv)(lop_par *p, const void *sb, size_t sn, int to, void *rb, size_t rn, int from,
                    lop_err *e);
    int (*send)(lop_par *p, const void *b, size_t n, int to, lop_err *e);
    int (*recv)(lop_par *p, void *b, size_t n, int from, lop_err *e);
    int (*bcast)(lop_par *p, void *b, size_t n, int root, lop_err *e);
    int (*sum_i64)(lop_par *p, int64_t *x, size_t n, lop_err *e);
    int (*barrier)(lop_par *p, lop_err *e);
    void (*abort)(lop_par *p, int code);
    void (*close)(lop_par *p);
} par_ops;

struct lop_par {
    const par_ops *ops;
    int rank, size;
    uint64_t sent;
    void *impl;
};

int par_mpi_open(lop_par **out, lop_err *e);
#endif
