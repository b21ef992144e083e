/* job.h — a tool run as a data-parallel job under mpirun (docs/mpi.md).
 *
 *     tool_init_job("heal-sft", argc, argv);   // instead of tool_init: under mpirun, loads MPI
 *     ... options ...
 *     job_same("options and data", fp);        // every rank: refused unless all ranks agree
 *     if (!job_rank) out_check();  job_sync();   // rank 0 decides about the outputs, the rest wait
 * job_par (par.h) is NULL outside a job; every par_* call then is a no-op. Only rank 0 writes
 * outputs, checkpoints, logs and progress (tool.c silences the others). */
#ifndef LOP_JOB_H
#define LOP_JOB_H
#include <stdint.h>
#include "par.h"

extern lop_par *job_par;

/* tool_init for a tool that can run as a job: under mpirun (more than one process), loads Open
 * MPI and joins the job (dies with one message when it cannot); MPI_Finalize at a successful exit. */
void tool_init_job(const char *name, int argc, char **argv);
/* FNV-1a of the command line (every argument after the program name): the hostile-case check's
 * start (add the data's fingerprint to it) */
uint64_t job_argv_fp(void);
uint64_t job_fp_mix(uint64_t h, const void *p, size_t n);
/* Every rank gives its fingerprint; unless all equal rank 0's, the job stops at once (exit 2) with
 * one line from rank 0 naming the ranks that differ and what (what: "options and data"). */
void job_same(const char *what, uint64_t fp);
/* A point every rank reaches: rank 0 has passed its checks (the output guard) when the others
 * go on; a rank that died before makes the others stop (mpirun ends them). */
void job_sync(void);
/* die_err when a job operation failed */
void job_ok(int rc, const lop_err *e);
#endif
