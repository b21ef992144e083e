/* par_mpi.c — par.h over Open MPI, loaded with dlopen when a tool runs under mpirun.
 *
 * Why dlopen and not -lmpi: every lop tool would otherwise map libmpi and its plugins (hwloc,
 * PMIx, the fabric drivers: tens of milliseconds of loading at each launch, and a run-time
 * dependency of the whole suite) for a feature only the data-parallel tools use, under mpirun.
 * Loaded on demand, a build or a machine without Open MPI runs every tool unchanged and a tool
 * started by mpirun there stops with one message saying what to install.
 *
 * The ABI is Open MPI's (Debian's libmpi.so.40): handles are the addresses of its predefined
 * objects (ompi_mpi_comm_world, ompi_mpi_byte, ...), MPI_STATUS_IGNORE is NULL. MPICH's integer
 * handles differ: its library is refused by name (libmpi.so.40 is Open MPI's soname). */
#include "par.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *mpi_h;   /* MPI_Comm, MPI_Datatype, MPI_Op, MPI_Errhandler: pointers in Open MPI */

typedef struct mpi_lib {
    void *dl;
    mpi_h comm, byte, i64, sum, errors_return;
    int (*init)(int *, char ***);
    int (*initialized)(int *);
    int (*comm_rank)(mpi_h, int *);
    int (*comm_size)(mpi_h, int *);
    int (*set_errhandler)(mpi_h, mpi_h);
    int (*error_string)(int, char *, int *);
    int (*sendrecv)(const void *, int, mpi_h, int, int, void *, int, mpi_h, int, int, mpi_h, void *);
    int (*send)(const void *, int, mpi_h, int, int, mpi_h);
    int (*recv)(void *, int, mpi_h, int, int, mpi_h, void *);
    int (*bcast)(void *, int, mpi_h, int, mpi_h);
    int (*allreduce)(const void *, void *, int, mpi_h, mpi_h, mpi_h);
    int (*barrier)(mpi_h);
    int (*abort)(mpi_h, int);
    int (*finalize)(void);
} mpi_lib;

static mpi_lib g_mpi;

/* MPI counts are int: pieces of at most 1 GiB */
#define MPI_PIECE ((size_t)1 << 30)

static int mpi_fail(lop_err *e, int rc, const char *what) {
    char s[512] = "";
    int len = 0;
    if (g_mpi.error_string) g_mpi.error_string(rc, s, &len);
    return lop_fail(e, "MPI %s failed: %s (a rank of the job has probably ended)", what,
                    s[0] ? s : "unknown error");
}

static int o_sendrecv(lop_par *p, const void *sb, size_t sn, int to, void *rb, size_t rn, int from,
                      lop_err *e) {
    (void)p;
    for (size_t o = 0; o < sn || o < rn; o += MPI_PIECE) {
        int a = sn > o ? (int)(sn - o < MPI_PIECE ? sn - o : MPI_PIECE) : 0;
        int b = rn > o ? (int)(rn - o < MPI_PIECE ? rn - o : MPI_PIECE) : 0;
        int rc = g_mpi.sendrecv((const char *)sb + (a ? o : 0), a, g_mpi.byte, to, 7,
                                (char *)rb + (b ? o : 0), b, g_mpi.byte, from, 7, g_mpi.comm, NULL);
        if (rc) return mpi_fail(e, rc, "sendrecv");
    }
    return 0;
}

static int o_send(lop_par *p, const void *b, size_t n, int to, lop_err *e) {
    (void)p;
    for (size_t o = 0; o < n; o += MPI_PIECE) {
        int k = (int)(n - o < MPI_PIECE ? n - o : MPI_PIECE);
        int rc = g_mpi.send((const char *)b + o, k, g_mpi.byte, to, 8, g_mpi.comm);
        if (rc) return mpi_fail(e, rc, "send");
    }
    return 0;
}

static int o_recv(lop_par *p, void *b, size_t n, int from, lop_err *e) {
    (void)p;
    for (size_t o = 0; o < n; o += MPI_PIECE) {
        int k = (int)(n - o < MPI_PIECE ? n - o : MPI_PIECE);
        int rc = g_mpi.recv((char *)b + o, k, g_mpi.byte, from, 8, g_mpi.comm, NULL);
        if (rc) return mpi_fail(e, rc, "recv");
    }
    return 0;
}

static int o_bcast(lop_par *p, void *b, size_t n, int root, lop_err *e) {
    (void)p;
    for (size_t o = 0; o < n; o += MPI_PIECE) {
        int k = (int)(n - o < MPI_PIECE ? n - o : MPI_PIECE);
        int rc = g_mpi.bcast((char *)b + o, k, g_mpi.byte, root, g_mpi.comm);
        if (rc) return mpi_fail(e, rc, "broadcast");
    }
    return 0;
}

static int o_sum_i64(lop_par *p, int64_t *x, size_t n, lop_err *e) {
    (void)p;
    size_t piece = MPI_PIECE / sizeof *x;
    for (size_t o = 0; o < n; o += piece) {
        int k = (int)(n - o < piece ? n - o : piece);
        /* MPI_IN_PLACE is ((void *) 1) in Open MPI */
        int rc = g_mpi.allreduce((void *)1, x + o, k, g_mpi.i64, g_mpi.sum, g_mpi.comm);
        if (rc) return mpi_fail(e, rc, "allreduce");
    }
    return 0;
}

static int o_barrier(lop_par *p, lop_err *e) {
    (void)p;
    int rc = g_mpi.barrier(g_mpi.comm);
    return rc ? mpi_fail(e, rc, "barrier") : 0;
}

static void o_abort(lop_par *p, int code) { (void)p; g_mpi.abort(g_mpi.comm, code); }

static void o_close(lop_par *p) {
    g_mpi.finalize();
    free(p);
}

static const par_ops mpi_ops = {"mpi", o_sendrecv, o_send, o_recv, o_bcast, o_sum_i64, o_barrier,
                                o_abort, o_close};

#define SYM(field, name)                                                                         \
    do {                                                                                         \
        *(void **)&g_mpi.field = dlsym(g_mpi.dl, name);                                          \
        if (!g_mpi.field) return lop_fail(e, "%s: no symbol %s (not Open MPI's library?)", lib, name); \
    } while (0)

int par_mpi_open(lop_par **out, lop_err *e) {
    *out = NULL;
    const char *lib = getenv("LOP_MPI_LIB");
    if (!lib || !*lib) lib = "libmpi.so.40";
    if (!g_mpi.dl) {
        /* RTLD_GLOBAL: Open MPI's plugins resolve libmpi's symbols from the global scope */
        g_mpi.dl = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
        if (!g_mpi.dl) {
            const char *d = dlerror();
            return lop_failc(e, LOP_EUSAGE, "started by mpirun, but Open MPI's library cannot be "
                             "loaded (%s): install openmpi-bin (make deps), or run without mpirun",
                             d ? d : lib);
        }
    }
    SYM(comm, "ompi_mpi_comm_world");
    SYM(byte, "ompi_mpi_byte");
    SYM(i64, "ompi_mpi_int64_t");
    SYM(sum, "ompi_mpi_op_sum");
    SYM(errors_return, "ompi_mpi_errors_return");
    SYM(init, "MPI_Init");
    SYM(initialized, "MPI_Initialized");
    SYM(comm_rank, "MPI_Comm_rank");
    SYM(comm_size, "MPI_Comm_size");
    SYM(set_errhandler, "MPI_Comm_set_errhandler");
    SYM(error_string, "MPI_Error_string");
    SYM(sendrecv, "MPI_Sendrecv");
    SYM(send, "MPI_Send");
    SYM(recv, "MPI_Recv");
    SYM(bcast, "MPI_Bcast");
    SYM(allreduce, "MPI_Allreduce");
    SYM(barrier, "MPI_Barrier");
    SYM(abort, "MPI_Abort");
    SYM(finalize, "MPI_Finalize");
    int done = 0;
    g_mpi.initialized(&done);
    if (!done && g_mpi.init(NULL, NULL)) return lop_fail(e, "MPI_Init failed");
    /* errors come back as values (the tool prints one line), not MPI's default abort banner */
    g_mpi.set_errhandler(g_mpi.comm, g_mpi.errors_return);
    lop_par *p = calloc(1, sizeof *p);
    if (!p) return lop_fail(e, "out of memory");
    p->ops = &mpi_ops;
    g_mpi.comm_rank(g_mpi.comm, &p->rank);
    g_mpi.comm_size(g_mpi.comm, &p->size);
    *out = p;
    return 0;
}
