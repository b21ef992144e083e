/* job.c — the tool layer of an mpirun job (job.h): joining it, the same-input check, the exit. */
#include "job.h"
#include "cleanup.h"
#include "tool.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

lop_par *job_par;

static void job_atexit(void) {
    /* a failing rank leaves without MPI_Finalize (it would wait for the others): mpirun sees the
     * exit code and ends the job */
    if (job_par && !job_failing) par_close(job_par);
    job_par = NULL;
}

void tool_init_job(const char *name, int argc, char **argv) {
    job_tool_name = 1;
    tool_init(name, argc, argv);
    int r, n;
    if (!par_launched(&r, &n)) return;
    job_rank = r;   /* for the messages of a failure to join */
    lop_err e;
    if (par_open(&job_par, &e)) tool_die_err(&e);
    job_rank = par_rank(job_par);
    job_ranks = par_size(job_par);
    atexit(job_atexit);
    if (job_ranks == 1) return;
    if (job_rank == 0) {
        char line[400];
        snprintf(line, sizeof line, "%s: the job of %d ranks was stopped by a signal (another rank "
                 "failed, or mpirun was interrupted); no output was written\n", tool_name, job_ranks);
        cleanup_signal_note(line);
    }
}

uint64_t job_fp_mix(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) { h ^= c[i]; h *= 0x100000001b3ull; }
    return h;
}

uint64_t job_argv_fp(void) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 1; i < tool_argc; i++) h = job_fp_mix(h, tool_argv[i], strlen(tool_argv[i]) + 1);
    return h;
}

void job_ok(int rc, const lop_err *e) { if (rc) tool_die_err(e); }

void job_same(const char *what, uint64_t fp) {
    if (!job_par || job_ranks == 1) return;
    lop_err e;
    uint64_t root = fp;
    job_ok(par_bcast(job_par, &root, sizeof root, 0, &e), &e);
    int64_t *bad = calloc((size_t)job_ranks, sizeof *bad);
    if (!bad) tool_die(1, "out of memory");
    bad[job_rank] = root != fp;
    job_ok(par_sum_i64(job_par, bad, (size_t)job_ranks, &e), &e);
    char list[256] = "";
    size_t len = 0;
    int nbad = 0;
    for (int i = 0; i < job_ranks; i++)
        if (bad[i]) {
            if (len + 16 < sizeof list) len += snprintf(list + len, sizeof list - len, "%s%d", nbad ? ", " : "", i);
            nbad++;
        }
    free(bad);
    if (!nbad) return;
    /* rank 0 prints; the others wait a moment so that its line is the one shown */
    if (job_rank > 0) { job_failing = 1; cleanup_signal_note(NULL); sleep(1); exit(2); }
    tool_die(2, "rank%s %s of the job %s different %s from rank 0: every rank must run the same command "
           "on the same inputs", nbad > 1 ? "s" : "", list, nbad > 1 ? "have" : "has", what);
}

void job_sync(void) {
    if (!job_par || job_ranks == 1) return;
    lop_err e;
    job_ok(par_barrier(job_par, &e), &e);
}
