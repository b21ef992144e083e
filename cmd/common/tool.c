/* tool.c — the tool layer: messages, exits, common options, threads, progress, JSON lines. */
#include "tool.h"
#include "safetensors.h"
#include "cleanup.h"
#include "provenance.h"
#include "model.h"
#include "parse.h"
#include "par.h"
#include "model.h"
#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

tool_opts tool_opt;
int job_rank, job_ranks = 1;
int job_failing;
int job_tool_name;
static FILE *g_log;   /* --log FILE */
const char *tool_name = "lop";
int tool_argc;
char **tool_argv;

void tool_init(const char *name, int argc, char **argv) {
    tool_argc = argc; tool_argv = argv;
    tool_name = name;
    memset(&tool_opt, 0, sizeof tool_opt);
    cleanup_install();
    /* A closed stdout pipe (| head) must end us quietly, like cat, not with a signal trace. */
    /* Started by mpirun: only the data-parallel tools (tool_init_job) run as a job; N copies of
     * any other tool would write the same output N times at once. */
    int r, n;
    /* (a size the environment does not give, PMIx alone: not refused; it may be one task) */
    if (!job_tool_name && par_launched(&r, &n) && n > 1) {
        if (r > 0) exit(2);
        tool_die(2, "started by mpirun (%d processes): %s runs as one process; heal-sft, kd-train, "
               "lm-eval, layer-score and wmask --method wanda run as a job (see docs/mpi.md)",
            n, name);
    }
}

/* A rank other than 0 waits before its message: when every rank fails alike (a missing file),
 * rank 0's line is the one shown and mpirun ends the others meanwhile; when only this rank fails,
 * its line comes, named, and then rank 0 says the job was stopped. */
static void job_die_wait(void) {
    job_failing = 1;
    cleanup_signal_note(NULL);
    if (job_rank > 0) sleep(2);
}

_Noreturn static void vdie(int code, const char *fmt, va_list ap) {
    job_die_wait();
    fflush(stdout);
    fprintf(stderr, "%s: ", tool_name);
    if (job_rank > 0) fprintf(stderr, "rank %d: ", job_rank);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    exit(code);
}

_Noreturn void tool_die(int code, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt); vdie(code, fmt, ap);
}

_Noreturn void tool_die_usage(const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    job_die_wait();
    /* a usage error follows from the command line, the same on every rank (job_same checks it
     * later): rank 0 says it */
    if (job_rank > 0) exit(2);
    fflush(stdout);
    fprintf(stderr, "%s: ", tool_name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see %s --help)\n", tool_name);
    va_end(ap);
    exit(2);
}

_Noreturn void tool_die_err(const lop_err *e) {
    tool_die(e->code == LOP_EUSAGE ? 2 : 1, "%s", e->msg[0] ? e->msg : "unknown error");
}

void tool_note(const char *fmt, ...) {
    if (tool_opt.quiet || job_rank > 0) return;
    va_list ap; va_start(ap, fmt);
    fprintf(stderr, "%s: ", tool_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void tool_warn(const char *fmt, ...) {
    if (job_rank > 0) return;   /* every rank would say the same */
    va_list ap; va_start(ap, fmt);
    fprintf(stderr, "%s: warning: ", tool_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

long long opt_int(const char *opt, const char *arg, long long lo, long long hi) {
    lop_err e; long long v;
    if (parse_int(arg, lo, hi, &v, &e)) tool_die_usage("%s: %s", opt, e.msg);
    return v;
}

double opt_double(const char *opt, const char *arg, double lo, double hi) {
    lop_err e; double v;
    if (parse_double(arg, &v, &e)) tool_die_usage("%s: %s", opt, e.msg);
    if (v < lo || v > hi) tool_die_usage("%s: %g out of range [%g, %g]", opt, v, lo, hi);
    return v;
}

uint64_t opt_size(const char *opt, const char *arg) {
    lop_err e; uint64_t v;
    if (parse_size(arg, &v, &e)) tool_die_usage("%s: %s", opt, e.msg);
    return v;
}

int tool_common_opt(int c, const char *arg, void (*usage)(FILE *)) {
    switch (c) {
    case 'h': if (!job_rank) usage(stdout); exit(0);
    case TOOL_OPT_VERSION: if (!job_rank) printf("%s (lop) %s\n", tool_name, LOP_VERSION); exit(0);
    case 't': tool_opt.threads = (int)opt_int("--threads", arg, 0, 4096); return 1;
    case TOOL_OPT_SEED: tool_opt.seed = (uint64_t)opt_int("--seed", arg, 0, INT64_MAX); return 1;
    case 'q': tool_opt.quiet = 1; return 1;
    case TOOL_OPT_PROGRESS: tool_opt.progress = 1; return 1;
    case TOOL_OPT_ADAPTER_BASE: st_adapter_set_base(arg); return 1;
    case TOOL_OPT_LOG:
        if (job_rank > 0) return 1;   /* only rank 0 writes the log */
        if (g_log) fclose(g_log);
        if (!(g_log = fopen(arg, "a"))) tool_die(1, "--log %s: %s", arg, strerror(errno));
        return 1;
    case 'f': tool_opt.force = 1; return 1;
    case TOOL_OPT_LONG: tool_opt.allow_long = 1; lop_allow_long_context(1); return 1;
    case '?':
        job_die_wait();
        if (!job_rank) fprintf(stderr, "%s: see %s --help\n", tool_name, tool_name);
        exit(2);
    default: return 0;
    }
}

void tool_set_device(struct lop_model *m, const char *device) {
    if (!device || !strcmp(device, "cpu")) return;
    lop_err e = {0};
    double t0 = tool_now_seconds();
    if (lop_model_set_device(m, device, &e)) tool_die_err(&e);
    tool_note("running on %s (weights uploaded in %.1f s)", lop_model_device(m), tool_now_seconds() - t0);
}

void tool_check_context(const char *what, long long n, int max_pos) {
    if (max_pos <= 0 || n <= max_pos) return;
    if (!tool_opt.allow_long)
        tool_die(1, "%s: %lld positions, past the model's context (max_position_embeddings %d): numbers "
               "the model was never trained for (--allow-long-context runs them anyway)",
            what, n, max_pos);
    static int warned;
    if (!warned++)
        tool_warn("%s: %lld positions, past max_position_embeddings %d (--allow-long-context): rope runs "
             "as the config says, unchanged beyond it; expect degraded numbers", what, n, max_pos);
}

void tool_apply_threads(void) {
    int n = tool_opt.threads > 0 ? tool_opt.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    tool_opt.threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

FILE *tool_json_stream(int stdout_is_data) {
    return g_log ? g_log : stdout_is_data ? stderr : stdout;
}

void tool_provenance(FILE *f) {
    prov_run run = {.tool = tool_name, .argc = tool_argc, .argv = tool_argv, .threads = tool_opt.threads, .seed = tool_opt.seed};
    prov_write(f, &run);
}

void tool_emit_json(cJSON *obj, int stdout_is_data) {
    if (job_rank > 0) { cJSON_Delete(obj); return; }   /* only rank 0 writes JSON lines */
    FILE *f = tool_json_stream(stdout_is_data);
    if (f == stderr && tool_opt.quiet) { cJSON_Delete(obj); return; }  /* -q: nothing on stderr */
    tool_provenance(f);   /* the first JSON line of every tool (provenance.h) */
    char *s = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!s) tool_die(1, "out of memory");
    int bad = fputs(s, f) < 0 || fputc('\n', f) < 0 || fflush(f) != 0;
    free(s);
    if (bad) tool_die(1, "writing the JSON lines failed");
}

static int g_stdout_data;   /* the tool said stdout carries its data (tool_stdout_is_data) */

void tool_stdout_is_data(int on) { g_stdout_data = on; }

void tool_emit(cJSON *obj) { tool_emit_json(obj, g_stdout_data); }

double tool_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

uint64_t tool_peak_rss_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_maxrss * 1024;
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) { snprintf(buf, n, "--:--"); return; }
    int h = (int)(s / 3600), m = (int)(s / 60) % 60, sec = (int)s % 60;
    if (h) snprintf(buf, n, "%d:%02d:%02d", h, m, sec);
    else snprintf(buf, n, "%02d:%02d", m, sec);
}

static void draw(progress *p, int final) {
    double t = tool_now_seconds(), el = t - p->t0;
    double rate = el > 0 ? p->done / el : 0;
    char eta[32];
    fmt_eta(eta, sizeof eta, rate > 0 ? (p->total - p->done) / rate : -1);
    int w = 24, fill = p->total > 0 ? (int)(w * p->done / p->total) : 0;
    if (fill > w) fill = w;
    char bar[32];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "\r%s: %s [%s] %.0f/%.0f %s  %.1f %s/s  ETA %s%s", tool_name, p->what, bar,
            p->done, p->total, p->unit, rate, p->unit, eta, final ? "\n" : "\033[K");
    fflush(stderr);
    p->last = t;
}

void progress_start(progress *p, const char *what, double total, const char *unit) {
    memset(p, 0, sizeof *p);
    p->what = what; p->unit = unit; p->total = total;
    p->t0 = p->last = tool_now_seconds();
    p->on = !tool_opt.quiet && !job_rank && (tool_opt.progress || isatty(2));
}

void progress_update(progress *p, double done) {
    p->done = done;
    if (p->on && tool_now_seconds() - p->last >= 0.1) draw(p, 0);
}

void progress_end(progress *p) {
    if (p->on) draw(p, 1);
    p->on = 0;
}

const char *tool_commas(int64_t v, char *buf, size_t n) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    size_t len = strlen(tmp), j = 0;
    for (size_t i = 0; i < len && j + 2 < n; i++) {
        if (i && (len - i) % 3 == 0 && tmp[0] != '-') buf[j++] = ',';
        buf[j++] = tmp[i];
    }
    buf[j] = 0;
    return buf;
}
