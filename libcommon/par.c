/* par.c — the transport-independent part of par.h: environment detection, the NULL (single
 * process) case, and the fixed-order floating sums built on a transport's sendrecv. */
#include "par.h"
#include <stdlib.h>
#include <string.h>

static int env_int(const char *name, int *v) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end;
    long x = strtol(s, &end, 10);
    if (*end || x < 0 || x > 1 << 24) return 0;
    *v = (int)x;
    return 1;
}

int par_launched(int *rank, int *size) {
    int r = 0, n = 1;
    if (env_int("OMPI_COMM_WORLD_SIZE", &n)) env_int("OMPI_COMM_WORLD_RANK", &r);
    else if (env_int("PMI_SIZE", &n)) env_int("PMI_RANK", &r);
    else if (env_int("PMIX_RANK", &r)) n = -1;
    else n = 1;
    if (rank) *rank = r;
    if (size) *size = n;
    return n != 1;
}

int par_open(lop_par **out, lop_err *e) { return par_mpi_open(out, e); }

void par_close(lop_par *p) { if (p) p->ops->close(p); }

void par_abort(lop_par *p, int code) {
    if (p) p->ops->abort(p, code);
}

int par_rank(const lop_par *p) { return p ? p->rank : 0; }
int par_size(const lop_par *p) { return p ? p->size : 1; }
uint64_t par_bytes_sent(const lop_par *p) { return p ? p->sent : 0; }

int par_bcast(lop_par *p, void *buf, size_t n, int root, lop_err *e) {
    if (!p || p->size == 1 || !n) return 0;
    if (p->rank == root) p->sent += n;
    return p->ops->bcast(p, buf, n, root, e);
}

int par_send(lop_par *p, int to, const void *buf, size_t n, lop_err *e) {
    if (!p) return lop_fail(e, "internal: par_send without a job");
    p->sent += n;
    return p->ops->send(p, buf, n, to, e);
}

int par_recv(lop_par *p, int from, void *buf, size_t n, lop_err *e) {
    if (!p) return lop_fail(e, "internal: par_recv without a job");
    return p->ops->recv(p, buf, n, from, e);
}

int par_barrier(lop_par *p, lop_err *e) { return !p || p->size == 1 ? 0 : p->ops->barrier(p, e); }

int par_sum_i64(lop_par *p, int64_t *x, size_t n, lop_err *e) {
    if (!p || p->size == 1 || !n) return 0;
    p->sent += n * sizeof *x;
    return p->ops->sum_i64(p, x, n, e);   /* exact: any order */
}

/* Pieces of at most 4 MiB: the receive buffer stays small whatever the gradient's size. */
#define PAR_CHUNK ((size_t)4 << 20)

#define DEFINE_SUM(NAME, T)                                                                      \
int NAME(lop_par *p, T *x, size_t n, lop_err *e) {                                               \
    if (!p || p->size == 1 || !n) return 0;                                                      \
    size_t ch = PAR_CHUNK / sizeof(T);                                                           \
    T *tmp = malloc(sizeof(T) * (n < ch ? n : ch));                                              \
    if (!tmp) return lop_fail(e, "out of memory for a reduction buffer");                        \
    int rc = 0, P = p->size, r = p->rank;                                                        \
    if ((P & (P - 1)) == 0) {                                                                    \
        /* butterfly: after level i every rank holds the sum of its aligned group of 2^(i+1) */  \
        for (int bit = 1; bit < P && !rc; bit <<= 1) {                                           \
            int peer = r ^ bit;                                                                  \
            for (size_t o = 0; o < n && !rc; o += ch) {                                          \
                size_t k = n - o < ch ? n - o : ch;                                              \
                p->sent += k * sizeof(T);                                                        \
                rc = p->ops->sendrecv(p, x + o, k * sizeof(T), peer, tmp, k * sizeof(T), peer, e); \
                if (rc) break;                                                                   \
                T *a = x + o;                                                                    \
                if (r < peer) for (size_t i = 0; i < k; i++) a[i] = a[i] + tmp[i];               \
                else for (size_t i = 0; i < k; i++) a[i] = tmp[i] + a[i];                        \
            }                                                                                    \
        }                                                                                        \
    } else {                                                                                     \
        /* rank 0 adds the ranks left to right, then broadcasts */                               \
        for (size_t o = 0; o < n && !rc; o += ch) {                                              \
            size_t k = n - o < ch ? n - o : ch;                                                  \
            if (r == 0) {                                                                        \
                for (int q = 1; q < P && !rc; q++) {                                             \
                    rc = p->ops->recv(p, tmp, k * sizeof(T), q, e);                              \
                    for (size_t i = 0; !rc && i < k; i++) x[o + i] = x[o + i] + tmp[i];          \
                }                                                                                \
            } else {                                                                             \
                p->sent += k * sizeof(T);                                                        \
                rc = p->ops->send(p, x + o, k * sizeof(T), 0, e);                                \
            }                                                                                    \
        }                                                                                        \
        if (!rc) rc = par_bcast(p, x, n * sizeof(T), 0, e);                                      \
    }                                                                                            \
    free(tmp);                                                                                   \
    return rc;                                                                                   \
}

DEFINE_SUM(par_sum_f32, float)
DEFINE_SUM(par_sum_f64, double)
