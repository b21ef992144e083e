/* tool.h — the tool layer shared by every cmd/<tool>: the only code that prints or exits.
 *
 * A tool's main():
 *     tool_init("ppl", argc, argv);           // name for messages; handles nothing yet
 *     ... getopt_long loop; for the common options call tool_common_opt(c, optarg) ...
 *     if (fail) tool_die_err(&e);                   // "ppl: message", exit e.code
 *     tool_emit(obj);                               // one JSON line on stdout, frees obj
 */
#ifndef LOP_TOOL_H
#define LOP_TOOL_H
#include <stdint.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "err.h"

#define LOP_VERSION "0.1.0"

typedef struct tool_opts {
    int threads;      /* -t/--threads N (0: all cores) */
    uint64_t seed;    /* --seed N */
    int quiet;        /* -q/--quiet */
    int progress;     /* --progress: draw a bar even when stderr is not a terminal */
    int force;        /* -f/--force: an existing output may be replaced (never an input) */
    int allow_long;   /* --allow-long-context: positions past max_position_embeddings allowed */
} tool_opts;
extern tool_opts tool_opt;
extern const char *tool_name;
extern int tool_argc;    /* the command line as given (for provenance and "resume with: ...") */
extern char **tool_argv;

/* Long options every tool accepts; splice into your option table with TOOL_COMMON_LONGOPTS
 * and handle codes >= TOOL_OPT_BASE (and 'h','t','q') through tool_common_opt(). */
enum { TOOL_OPT_BASE = 0x1000, TOOL_OPT_VERSION, TOOL_OPT_SEED, TOOL_OPT_PROGRESS, TOOL_OPT_LONG,
       TOOL_OPT_ADAPTER_BASE, TOOL_OPT_LOG };
#define TOOL_COMMON_LONGOPTS                                   \
    {"help", no_argument, 0, 'h'},                             \
    {"version", no_argument, 0, TOOL_OPT_VERSION},             \
    {"threads", required_argument, 0, 't'},                    \
    {"seed", required_argument, 0, TOOL_OPT_SEED},             \
    {"quiet", no_argument, 0, 'q'},                            \
    {"progress", no_argument, 0, TOOL_OPT_PROGRESS},           \
    {"force", no_argument, 0, 'f'},                            \
    {"allow-long-context", no_argument, 0, TOOL_OPT_LONG},     \
    {"base", required_argument, 0, TOOL_OPT_ADAPTER_BASE},     \
    {"log", required_argument, 0, TOOL_OPT_LOG}
#define TOOL_COMMON_SHORTOPTS "ht:qf"
/* Help text lines for the common options, to print at the end of --help. */
#define TOOL_COMMON_HELP                                                             \
    "  -t, --threads N     threads (default: all cores)\n"                            \
    "      --seed N        random seed (default 0)\n"                                \
    "  -q, --quiet         no messages on stderr but errors\n"                       \
    "      --progress      draw the progress bar even when stderr is not a terminal\n" \
    "  -f, --force         replace an existing output file or folder (atomically; never an\n" \
    "                      input of the run, never a folder holding files lop does not write)\n" \
    "      --allow-long-context  run positions past the config's max_position_embeddings\n" \
    "                      (an error otherwise: see lop(7) CONTEXT)\n"                     \
    "      --log FILE      write the JSON lines to FILE (appended) instead of stdout; the way\n" \
    "                      to keep them when -o - puts tensors on stdout\n"                \
    "      --base PATH     the base model of a LoRA adapter folder given as a model\n"  \
    "                      (default: its adapter_config.json's base_model_name_or_path)\n" \
    "  -h, --help          this help, on stdout\n"                                   \
    "      --version       print the version\n"

/* mpirun (docs/mpi.md, job.h): this process's rank and the job's size (0 and 1 outside a job).
 * Only rank 0 prints notes, warnings, JSON lines and progress; an error of another rank is
 * printed "tool: rank K: ...". job_failing: the process is exiting on an error (no MPI_Finalize). */
extern int job_rank, job_ranks, job_failing, job_tool_name;

/* Name for messages; keeps argv; installs the temporary-file cleanup and signal handlers
 * (cleanup.h). */
void tool_init(const char *name, int argc, char **argv);
/* The context check of a tool that runs a model: n positions (what names them: "--ctx 4096") of
 * a model whose config says max_pos (<= 0: unknown). Dies (exit 1) unless --allow-long-context;
 * with it, warns once. */
void tool_check_context(const char *opt, long long n, int max_pos);
/* Handles -h (prints usage via the given function, exit 0), --version, -t, --seed, -q,
 * --progress, -f/--force, --allow-long-context. Returns 1 if c was a common option, 0 if not. '?' (getopt error) -> exit 2. */
int tool_common_opt(int c, const char *arg, void (*usage)(FILE *));
/* Apply -t to OpenMP and OpenBLAS (call after option parsing). */
void tool_apply_threads(void);

/* --device: where a model's forward runs ("cpu", "cuda", "cuda:N"). Call right after opening the
 * model (before --gemm and before any kv cache); dies with the library's message (a build without
 * CUDA, no GPU, a model too large for it). NULL or "cpu": nothing to do. */
struct lop_model;
void tool_set_device(struct lop_model *m, const char *device);
#define TOOL_DEVICE_HELP \
    "      --device D        where the forward runs: cpu (default), cuda or cuda:N (a GPU; needs a\n" \
    "                        build made where nvcc is, which has build/liblop_cuda.so). Weights are\n" \
    "                        uploaded once in their dtype; with --gemm f32 the numbers are the cpu's\n" \
    "                        to ~1e-5; --gemm bf16 uses the tensor cores\n"

_Noreturn void tool_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void tool_die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void tool_die_err(const lop_err *e);
/* Informational message on stderr ("tool: ...") unless -q. */
void tool_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Warning on stderr ("tool: warning: ..."), even with -q. */
void tool_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print one JSON object as a line on stdout (or the --log FILE), flush, free it; the provenance
 * line goes first (provenance.h). Exits 1 on a write error. */
void tool_emit(cJSON *obj);
/* Where JSON lines go: the --log FILE when given, else stdout, or stderr when stdout carries a
 * tensor stream (stdout_is_data). One rule for every tool (documented in lop(7)). */
FILE *tool_json_stream(int stdout_is_data);
/* The provenance line (provenance.h) for this run to f, once; tool_emit() does it before its first line. */
void tool_provenance(FILE *f);
/* tool_emit() to tool_json_stream(stdout_is_data) */
void tool_emit_json(cJSON *obj, int stdout_is_data);
/* A tool whose stdout carries its data (-o -) may say so once: tool_emit() then follows tool_json_stream(1)
 * (layer-merge's two paths share its lines this way). */
void tool_stdout_is_data(int on);
/* 4022468096 -> "4,022,468,096" in buf[n] (parameter counts to the unit, readable) */
const char *tool_commas(int64_t v, char *buf, size_t n);
/* Parse helpers that die with exit 2 on bad values, naming the option. */
long long opt_int(const char *opt, const char *arg, long long lo, long long hi);
double opt_double(const char *opt, const char *arg, double lo, double hi);
uint64_t opt_size(const char *opt, const char *arg);

/* Progress bar on stderr (done/total, rate, ETA): drawn only when stderr is a terminal or
 * --progress, never with -q; redrawn at most 10 times a second. */
typedef struct progress {
    const char *what, *unit;
    double total, done, t0, last;
    int on;
} progress;
void progress_start(progress *p, const char *what, double total, const char *unit);
void progress_update(progress *p, double done);
void progress_end(progress *p);
double tool_now_seconds(void);
/* peak resident set size in bytes (getrusage) */
uint64_t tool_peak_rss_bytes(void);
#endif
