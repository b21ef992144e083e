/* test_par.c — libcommon/par.c without MPI: the launcher's environment read right, the single
 * process (NULL) as a no-op, the butterfly's order (lower + upper on both ranks of a pair, through
 * a loopback transport), and a missing MPI library reported as a value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "par.h"

static void env_clear(void) {
    const char *v[] = {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK", "PMIX_RANK"};
    for (int i = 0; i < 5; i++) unsetenv(v[i]);
}

/* loopback: the "partner" buffer a sendrecv receives; records what was sent */
static float g_peer[8];
static float g_sent[8];
static int g_calls;
static int lb_sendrecv(lop_par *p, const void *sb, size_t sn, int to, void *rb, size_t rn, int from,
                       lop_err *e) {
    (void)p; (void)to; (void)from; (void)e;
    memcpy(g_sent, sb, sn);
    memcpy(rb, g_peer, rn);
    g_calls++;
    return 0;
}
static const par_ops lb_ops = {"loopback", lb_sendrecv, NULL, NULL, NULL, NULL, NULL, NULL, NULL};

int main(void) {
    int r, n;
    env_clear();
    CHECK(par_launched(&r, &n) == 0 && r == 0 && n == 1, "r %d n %d", r, n);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1); setenv("OMPI_COMM_WORLD_RANK", "2", 1);
    CHECK(par_launched(&r, &n) == 1 && r == 2 && n == 4, "r %d n %d", r, n);
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1); setenv("OMPI_COMM_WORLD_RANK", "0", 1);
    CHECK(par_launched(&r, &n) == 0 && n == 1, "mpirun -np 1 is a plain run (n %d)", n);
    env_clear();
    setenv("PMI_SIZE", "3", 1); setenv("PMI_RANK", "1", 1);
    CHECK(par_launched(&r, &n) == 1 && r == 1 && n == 3, "r %d n %d", r, n);
    env_clear();
    setenv("PMIX_RANK", "5", 1);
    CHECK(par_launched(&r, &n) == 1 && r == 5 && n == -1, "r %d n %d", r, n);
    env_clear();

    /* NULL: one process, every operation a no-op that succeeds */
    lop_err e = {0};
    float x[3] = {1, 2, 3};
    double d[2] = {4, 5};
    int64_t k[2] = {6, 7};
    CHECK(par_rank(NULL) == 0 && par_size(NULL) == 1 && par_bytes_sent(NULL) == 0);
    CHECK(par_sum_f32(NULL, x, 3, &e) == 0 && x[0] == 1 && x[2] == 3);
    CHECK(par_sum_f64(NULL, d, 2, &e) == 0 && d[1] == 5);
    CHECK(par_sum_i64(NULL, k, 2, &e) == 0 && k[1] == 7);
    CHECK(par_bcast(NULL, x, sizeof x, 0, &e) == 0 && par_barrier(NULL, &e) == 0);
    par_abort(NULL, 1);   /* nothing to end: returns */

    /* the butterfly of 2 ranks: both add lower + upper and send their own values */
    float a = 1.0f, b = 1e-8f, lo = a + b;
    for (int rank = 0; rank < 2; rank++) {
        lop_par p = {&lb_ops, rank, 2, 0, NULL};
        float mine[2] = {rank ? b : a, 3};
        g_peer[0] = rank ? a : b; g_peer[1] = 4;
        g_calls = 0;
        CHECK(par_sum_f32(&p, mine, 2, &e) == 0 && g_calls == 1, "%s", e.msg);
        CHECK(mine[0] == lo && mine[1] == 7, "rank %d: %.9g", rank, mine[0]);
        CHECK(g_sent[0] == (rank ? b : a), "rank %d sent its own value", rank);
        CHECK(par_bytes_sent(&p) == 2 * sizeof(float), "sent %llu", (unsigned long long)par_bytes_sent(&p));
    }

    /* Open MPI absent: an error value naming what to install */
    setenv("LOP_MPI_LIB", "/nonexistent/libmpi.so.40", 1);
    lop_par *p = NULL;
    CHECK(par_open(&p, &e) == -1 && p == NULL && e.code == LOP_EUSAGE && strstr(e.msg, "openmpi-bin"), "%s", e.msg);
    unsetenv("LOP_MPI_LIB");

    if (fails) { printf("%d failures\n", fails); return 1; }
    printf("test_par: %d checks ok\n", checks);
    return 0;
}
