/* tool.h — the tool layer shared by every cmd/<tool>: the only code that prints or exits.
 *
 * A tool's main():
 *     tool_init("ppl", argc, argv);           // name for messages; handles nothing yet
 *     ... getopt_long loop; for the common options call tool_common_opt(c, optarg) ...
 *     if (fail) die_err(&e);                   // "ppl: message", exit e.code
 *     emit(obj);                               // one JSON line on stdout, frees obj
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
} tool_opts;
extern tool_opts g_opt;
extern const char *g_tool;

/* Long options every tool accepts; splice into your option table with TOOL_COMMON_LONGOPTS
 * and handle codes >= TOOL_OPT_BASE (and 'h','t','q') through tool_common_opt(). */
enum { TOOL_OPT_BASE = 0x1000, TOOL_OPT_VERSION, TOOL_OPT_SEED, TOOL_OPT_PROGRESS };
#define TOOL_COMMON_LONGOPTS                                   \
    {"help", no_argument, 0, 'h'},                             \
    {"version", no_argument, 0, TOOL_OPT_VERSION},             \
    {"threads", required_argument, 0, 't'},                    \
    {"seed", required_argument, 0, TOOL_OPT_SEED},             \
    {"quiet", no_argument, 0, 'q'},                            \
    {"progress", no_argument, 0, TOOL_OPT_PROGRESS}
#define TOOL_COMMON_SHORTOPTS "ht:q"
/* Help text lines for the common options, to print at the end of --help. */
#define TOOL_COMMON_HELP                                                             \
    "  -t, --threads N     threads (default: all cores)\n"                            \
    "      --seed N        random seed (default 0)\n"                                \
    "  -q, --quiet         no messages on stderr but errors\n"                       \
    "      --progress      draw the progress bar even when stderr is not a terminal\n" \
    "  -h, --help          this help, on stdout\n"                                   \
    "      --version       print the version\n"

void tool_init(const char *name, int argc, char **argv);
/* Handles -h (prints usage via the given function, exit 0), --version, -t, --seed, -q,
 * --progress. Returns 1 if c was a common option, 0 if not. '?' (getopt error) -> exit 2. */
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

_Noreturn void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void die_err(const lop_err *e);
/* Informational message on stderr ("tool: ...") unless -q. */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Warning on stderr ("tool: warning: ..."), even with -q. */
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print one JSON object as a line on stdout, flush, free it. Exits 1 on a write error. */
void emit(cJSON *obj);
/* 4022468096 -> "4,022,468,096" in buf[n] (parameter counts to the unit, readable) */
const char *commas(int64_t v, char *buf, size_t n);
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
double now_seconds(void);
/* peak resident set size in bytes (getrusage) */
uint64_t peak_rss_bytes(void);
#endif
