/* kd-train — distill a teacher's next-token distributions into a (pruned) student, on the CPU or
 * a GPU (--device): heal-sft's training loop (full or LoRA) with a distillation loss
 * (libcommon/kd.h), the teacher run on the fly or read from a top-k cache written once
 * (libcommon/kd_cache.h). On a GPU teacher and student share it: the teacher's logits stay in
 * device memory and the loss runs there (lop_cuda_kd_loss, chunked over the vocabulary). */
#include "outpath.h"
#include "tool.h"
#include "blas_tune.h"
#include "train_cli.h"
#include "job.h"
#include "kd.h"
#include "kd_cache.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
"usage: kd-train -m STUDENT --teacher TEACHER --data FILE -o OUT [options]\n"
"       kd-train -m STUDENT --teacher-cache CACHE --data FILE -o OUT [options]\n"
"       kd-train --teacher TEACHER --data FILE --save-teacher CACHE [-m STUDENT] [options]\n"
"Train STUDENT to match TEACHER's next-token distributions on FILE (knowledge distillation) and\n"
"write OUT (an HF folder, or with --lora-rank a PEFT adapter unless --merge-lora). One JSON line\n"
"per step with the total loss and each term.\n"
"\n"
"Distillation:\n"
"      --teacher PATH     the teacher (HF folder or .safetensors): run on the same tokens each step\n"
"      --teacher-cache F  train from a cache written by --save-teacher (the teacher is not loaded)\n"
"      --save-teacher F   run the teacher once over the blocks a training run with the same data\n"
"                         options (--data --seq-len --seed --no-shuffle --batch --grad-accum\n"
"                         --epochs/--steps) will draw, write their top-k log-probabilities to F\n"
"                         (zstd), and exit; -m STUDENT (optional) checks the tokenizer and vocab\n"
"      --top-k K          ids kept per position in the cache (default 128); the rest of the mass\n"
"                         is kept as one tail bucket (see kd-train(1))\n"
"      --cache-level N    zstd level of the cache (default 3)\n"
"      --loss SPEC        weighted terms (default ce:0.5,skl:0.5): ce (cross-entropy on the data),\n"
"                         fkl KL(p||q), rkl KL(q||p), skl KL(p||a p+(1-a) q),\n"
"                         srkl KL(q||a q+(1-a) p), jsd (generalized JSD with --jsd-beta), tvd;\n"
"                         p = softmax(teacher/T), q = softmax(student/T), divergences times T^2\n"
"      --temperature T    distillation temperature (default 1; a cache keeps its own)\n"
"      --skew A           a of skl and srkl (default 0.1; 0: plain KL)\n"
"      --jsd-beta B       beta of jsd (default 0.5)\n"
"Teacher and student must share the tokenizer; vocabularies of different sizes (padding) are\n"
"aligned to the shared ids with a warning.\n"
"\n" TRAIN_CLI_HELP "\n" TOOL_COMMON_HELP);
}

enum { O_TEACHER = TRAIN_OPT_END + 1, O_TCACHE, O_SAVE_T, O_TOPK, O_LEVEL, O_LOSS, O_TEMP, O_SKEW,
       O_BETA };

typedef struct kd_args {
    const char *teacher, *cache, *save;
    int topk, level, temp_given;
    kd_spec spec;
} kd_args;

/* ---------------------------------------------------------------- tokenizers and vocabularies */

static const char **tok_strings(const lop_tokenizer *t, int *n) {
    *n = tok_vocab_size(t);
    const char **s = malloc(sizeof(char *) * (*n > 0 ? *n : 1));
    if (!s) tool_die(1, "out of memory");
    for (int i = 0; i < *n; i++) s[i] = tok_token(t, i);
    return s;
}

/* refuse different tokenizers; warn when one only extends the other */
static void same_tokenizer(const char *const *a, int na, const char *an, const char *const *b,
                           int nb, const char *bn) {
    int n = na < nb ? na : nb;
    for (int i = 0; i < n; i++) {
        const char *x = a[i] ? a[i] : "", *y = b[i] ? b[i] : "";
        if (strcmp(x, y))
            tool_die(1, "the student and the teacher have different tokenizers (id %d is '%s' in %s and "
                   "'%s' in %s); distillation needs a shared tokenizer", i, x, an, y, bn);
    }
    if (na != nb)
        tool_warn("tokenizer sizes differ (%d in %s, %d in %s); the first %d tokens agree", na, an, nb,
             bn, n);
}

static lop_tokenizer *load_tok(const st_model *st, const char *path) {
    lop_tokenizer *t = NULL;
    lop_err e;
    if (tok_load(&t, st->source_dir ? st->source_dir : path, &e)) return NULL;
    return t;
}

static int shared_vocab(int vs, int vt, const char *what) {
    if (vs == vt) return vs;
    int v = vs < vt ? vs : vt;
    tool_warn("vocabulary sizes differ (student %d, %s %d): distilling over the %d shared ids", vs, what,
         vt, v);
    return v;
}

/* The student's tokenizer against the teacher's token strings ts[nts] (NULL: none), and the
 * shared vocabulary with the teacher's vt logits. Reads only the student's config and tokenizer,
 * so a refused pair fails before the student's training memory is spent. */
static int check_pair(const char *student, const char *const *ts, int nts, const char *tname,
                      int vt, const char *what) {
    lop_err e;
    st_model *st;
    lop_config sc;
    if (st_open(&st, student, &e)) tool_die_err(&e);
    if (!st->config_json) tool_die(1, "%s: no config.json", student);
    if (config_parse(&sc, st->config_json, &e)) { lop_wrap(&e, "%s", student); tool_die_err(&e); }
    lop_tokenizer *stok = load_tok(st, student);
    if (stok && ts && nts) {
        int ns;
        const char **ss = tok_strings(stok, &ns);
        same_tokenizer(ss, ns, student, ts, nts, tname);
        free(ss);
    } else {
        tool_warn("cannot compare tokenizers (%s has none)", stok ? tname : student);
    }
    if (stok) tok_free(stok);
    int V = shared_vocab(sc.vocab, vt, what);
    config_free(&sc);
    st_close(st);
    return V;
}

/* ---------------------------------------------------------------- teacher on the fly */

typedef struct live {
    tr_model *t;
    float *buf; int cap;   /* the teacher's logits: its backend's memory (a GPU's, there) */
} live;

static int live_before(void *u, const tr_batch *b, int64_t g0, lop_err *e) {
    (void)g0;
    return tr_forward_hidden(((live *)u)->t, b, e);
}

static int live_rows(void *u, int64_t row0, int n, const int32_t *tg, kd_trow *t, lop_err *e) {
    (void)tg;
    live *L = u;
    int V = L->t->cfg.vocab;
    if (n > L->cap) {
        tr_mem_release(L->t, L->buf);
        L->buf = tr_mem_alloc(L->t, sizeof(float) * (size_t)n * V);
        L->cap = L->buf ? n : 0;
        if (!L->buf) return lop_fail(e, "out of memory for the teacher's logits");
    }
    if (tr_head_rows(L->t, row0, n, L->buf, e)) return -1;
    for (int i = 0; i < n; i++) t[i].logits = L->buf + (size_t)i * V;
    return 0;
}

/* ---------------------------------------------------------------- teacher from the cache */

typedef struct cached {
    kd_cache *c;
    const char *path;
    kdc_block *blk; int nblk;
    int32_t *sidx; size_t ncap;   /* batch row -> scored index in its block, -1 */
    int T;
} cached;

static int cache_before(void *u, const tr_batch *b, int64_t g0, lop_err *e) {
    cached *C = u;
    if (C->nblk < b->B) {
        kdc_block *nb = realloc(C->blk, sizeof *nb * b->B);
        if (!nb) return lop_fail(e, "out of memory");
        memset(nb + C->nblk, 0, sizeof *nb * (b->B - C->nblk));
        C->blk = nb; C->nblk = b->B;
    }
    size_t N = (size_t)b->B * b->T;
    if (C->ncap < N) {
        int32_t *s = realloc(C->sidx, sizeof *s * N);
        if (!s) return lop_fail(e, "out of memory");
        C->sidx = s; C->ncap = N;
    }
    C->T = b->T;
    int64_t n = kdc_blocks(C->c);
    for (int j = 0; j < b->B; j++) {
        int64_t g = g0 + j, ci = g < n ? g : g % n;
        kdc_block *k = &C->blk[j];
        if (kdc_read(C->c, ci, k, e)) return -1;
        const int32_t *ids = b->ids + (size_t)j * b->T, *tg = b->targets + (size_t)j * b->T;
        int ok = k->T <= b->T;
        for (int t = 0; ok && t < b->T; t++)
            ok = t < k->T ? ids[t] == k->ids[t] && tg[t] == k->targets[t] : tg[t] < 0;
        if (!ok)
            return lop_fail(e, "%s: training block %lld differs from cached block %lld (tokens or "
                            "targets): write the cache with the same --data, --seq-len, --seed, "
                            "--no-shuffle, --batch, --grad-accum and --epochs/--steps",
                            C->path, (long long)g, (long long)ci);
        int s = 0;
        for (int t = 0; t < b->T; t++)
            C->sidx[(size_t)j * b->T + t] = t < k->T && tg[t] >= 0 ? s++ : -1;
    }
    return 0;
}

static int cache_rows(void *u, int64_t row0, int n, const int32_t *tg, kd_trow *t, lop_err *e) {
    cached *C = u;
    for (int i = 0; i < n; i++) {
        if (tg[i] < 0) continue;
        int64_t r = row0 + i;
        int j = (int)(r / C->T), s = C->sidx[r];
        if (s < 0) return lop_fail(e, "internal: row %lld has no cached teacher", (long long)r);
        const kdc_block *k = &C->blk[j];
        t[i] = (kd_trow){NULL, k->k, k->topk_ids + (size_t)s * k->k, k->topk_lp + (size_t)s * k->k,
                         k->tail[s]};
    }
    return 0;
}

/* ---------------------------------------------------------------- per-step terms */

static tr_model *g_teacher;     /* the live teacher, for its device memory in the step lines */

static void step_terms(void *u, cJSON *o, const tr_stats *st) {
    (void)st;
    kd_ctx *k = u;
    if (g_teacher && !tr_host_mem(g_teacher))
        cJSON_AddNumberToObject(o, "teacher_gpu_peak_mb", (double)(tr_device_peak(g_teacher) >> 20));
    for (int t = 0; t < KD_NTERMS; t++)
        if (k->spec.w[t] > 0)
            cJSON_AddNumberToObject(o, kd_term_names[t], k->scored ? k->sum[t] / k->scored : 0);
    memset(k->sum, 0, sizeof k->sum);
    k->scored = 0;
}

/* ---------------------------------------------------------------- --save-teacher */

/* one block's cache entry travelling from a rank to rank 0 (mpirun) */
typedef struct kd_piece {
    int T, ns, k;
    int32_t *ids, *tg, *top;
    float *lp, *tail;
} kd_piece;

static void piece_send(const kd_piece *p) {
    lop_err e;
    int32_t hd[2] = {p->T, p->ns};
    job_ok(par_send(job_par, 0, hd, sizeof hd, &e), &e);
    job_ok(par_send(job_par, 0, p->ids, sizeof *p->ids * p->T, &e), &e);
    job_ok(par_send(job_par, 0, p->tg, sizeof *p->tg * p->T, &e), &e);
    job_ok(par_send(job_par, 0, p->top, sizeof *p->top * (size_t)p->ns * p->k, &e), &e);
    job_ok(par_send(job_par, 0, p->lp, sizeof *p->lp * (size_t)p->ns * p->k, &e), &e);
    job_ok(par_send(job_par, 0, p->tail, sizeof *p->tail * p->ns, &e), &e);
}

static void piece_recv(kd_piece *p, int from, int k) {
    lop_err e;
    int32_t hd[2];
    job_ok(par_recv(job_par, from, hd, sizeof hd, &e), &e);
    p->T = hd[0]; p->ns = hd[1]; p->k = k;
    size_t nk = (size_t)(p->ns ? p->ns : 1) * k;
    p->ids = realloc(p->ids, sizeof *p->ids * (p->T ? p->T : 1));
    p->tg = realloc(p->tg, sizeof *p->tg * (p->T ? p->T : 1));
    p->top = realloc(p->top, sizeof *p->top * nk);
    p->lp = realloc(p->lp, sizeof *p->lp * nk);
    p->tail = realloc(p->tail, sizeof *p->tail * (p->ns ? p->ns : 1));
    if (!p->ids || !p->tg || !p->top || !p->lp || !p->tail) tool_die(1, "out of memory");
    job_ok(par_recv(job_par, from, p->ids, sizeof *p->ids * p->T, &e), &e);
    job_ok(par_recv(job_par, from, p->tg, sizeof *p->tg * p->T, &e), &e);
    job_ok(par_recv(job_par, from, p->top, sizeof *p->top * (size_t)p->ns * k, &e), &e);
    job_ok(par_recv(job_par, from, p->lp, sizeof *p->lp * (size_t)p->ns * k, &e), &e);
    job_ok(par_recv(job_par, from, p->tail, sizeof *p->tail * p->ns, &e), &e);
}

static void piece_free(kd_piece *p) { free(p->ids); free(p->tg); free(p->top); free(p->lp); free(p->tail); }

/* the teacher frozen (nothing trains, one layer's activations at a time), where the student runs */
static tr_opts teacher_opts(const train_args *a) {
    tr_opts fo = TR_OPTS_DEFAULT;
    fo.lora_rank = 1; fo.lora_targets = 0; fo.recompute = 1;
    fo.device = a->device;
    fo.gemm = train_cli_gemm(a);
    return fo;
}

static void save_teacher(train_args *a, kd_args *ka) {
    lop_err e;
    tr_opts fo = teacher_opts(a);
    tr_model *t;
    if (tr_open(&t, ka->teacher, &fo, 0, &e)) tool_die_err(&e);
    lop_tokenizer *tt = load_tok(t->st, ka->teacher);
    if (!tt) tool_die(1, "%s: cannot load the teacher's tokenizer", ka->teacher);
    int V = t->cfg.vocab, ntt;
    const char **ts = tok_strings(tt, &ntt);
    if (a->model) V = check_pair(a->model, ts, ntt, ka->teacher, V, "teacher");
    tr_data *d = train_cli_data(a, a->data, tt, &t->cfg, a->shuffle);
    {
        int mT; uint64_t fp;
        train_cli_scan(d, &mT, &fp);
        train_cli_check_context(a, mT, t->cfg.max_pos);
        uint64_t mfp = train_cli_model_fingerprint(t->st), h = job_argv_fp();
        h = job_fp_mix(h, &fp, sizeof fp);
        job_same("options, teacher or data", job_fp_mix(h, &mfp, sizeof mfp));
    }
    int64_t nb = tr_data_blocks(d), G = train_cli_total_steps(a, d) * a->batch * a->accum;
    if (!a->shuffle && G > nb) G = nb; /* epochs repeat the same blocks */
    double T = ka->spec.temperature;
    int k = ka->topk < V ? ka->topk : V;
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "teacher", ka->teacher);
    cJSON_AddStringToObject(meta, "data", a->data);
    cJSON_AddNumberToObject(meta, "seq_len", a->seq);
    cJSON_AddNumberToObject(meta, "seed", (double)tool_opt.seed);
    cJSON_AddBoolToObject(meta, "shuffle", a->shuffle);
    cJSON_AddNumberToObject(meta, "blocks_per_epoch", (double)nb);
    cJSON_AddNumberToObject(meta, "teacher_vocab", t->cfg.vocab);
    char *mj = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    kd_cache_w *w = NULL;
    if (!job_rank && kdc_create(&w, ka->save, V, k, T, mj, ts, ntt, ka->level, &e)) tool_die_err(&e);
    free(mj);
    tool_note("%s: caching the top-%d of %lld blocks (%lld per epoch) at temperature %g", ka->teacher, k,
         (long long)G, (long long)nb, T);
    int32_t *ids = NULL, *tg = NULL; size_t cap = 0;
    int nt = omp_get_max_threads(), Vt = t->cfg.vocab;
    int chunk = (int)(((size_t)64 << 20) / ((size_t)Vt * 4));
    if (chunk < 1) chunk = 1;
    float *lg = malloc(sizeof(float) * (size_t)chunk * Vt);
    uint8_t *marks = calloc((size_t)nt * V, 1);
    int32_t *top = NULL; float *lp = NULL, *tail = NULL; size_t tcap = 0;
    if (!lg || !marks) tool_die(1, "out of memory");
    /* a GPU computes the logits; the top-k is taken from a host copy of each chunk */
    int dev = !tr_host_mem(t);
    float *dlg = dev ? tr_mem_alloc(t, sizeof(float) * (size_t)chunk * Vt) : lg;
    if (!dlg) tool_die(1, "out of %s memory for the teacher's logits", tr_device(t));
    progress pr;
    progress_start(&pr, "kd-train teacher", (double)G, "blocks");
    double t0 = tool_now_seconds();
    int64_t positions = 0, tokens = 0;
    /* a job: rank r computes blocks r, r + N, ...; rank 0 writes them in order as they come */
    kd_piece rp = {0};
    for (int64_t g0 = 0; g0 < G; g0 += job_ranks) {
        int64_t g = g0 + job_rank;
        int Tb = 0, ns = 0;
        if (g < G) {
        if (tr_data_batch(d, g, 1, &ids, &tg, &cap, &Tb, &e) < 0) tool_die_err(&e);
        tr_batch b = {1, Tb, ids, tg};
        if (tr_forward_hidden(t, &b, &e)) tool_die_err(&e);
        for (int i = 0; i < Tb; i++) ns += tg[i] >= 0;
        if ((size_t)ns * k > tcap || !top) {
            tcap = (size_t)(ns ? ns : 1) * k;
            top = realloc(top, sizeof *top * tcap); lp = realloc(lp, sizeof *lp * tcap);
            tail = realloc(tail, sizeof *tail * (ns ? ns : 1));
            if (!top || !lp || !tail) tool_die(1, "out of memory");
        }
        int s = 0;
        for (int r0 = 0; r0 < Tb; r0 += chunk) {
            int n = Tb - r0 < chunk ? Tb - r0 : chunk;
            if (tr_head_rows(t, r0, n, dlg, &e) ||
                (dev && tr_mem_download(t, lg, dlg, sizeof(float) * (size_t)n * Vt, &e)))
                tool_die_err(&e);
            int si[n];
            for (int i = 0; i < n; i++) si[i] = tg[r0 + i] >= 0 ? s++ : -1;
            #pragma omp parallel for schedule(dynamic, 1)
            for (int i = 0; i < n; i++) {
                if (si[i] < 0) continue;
                kdc_topk(lg + (size_t)i * Vt, V, T, k, top + (size_t)si[i] * k, lp + (size_t)si[i] * k,
                         &tail[si[i]], marks + (size_t)omp_get_thread_num() * V);
            }
        }
        }
        if (job_rank > 0) {
            if (g < G) piece_send(&(kd_piece){Tb, ns, k, ids, tg, top, lp, tail});
            continue;
        }
        if (kdc_put(w, Tb, ids, tg, top, lp, tail, &e)) { kdc_abort(w); tool_die_err(&e); }
        positions += ns; tokens += Tb;
        for (int q = 1; q < job_ranks && g0 + q < G; q++) {
            piece_recv(&rp, q, k);
            if (kdc_put(w, rp.T, rp.ids, rp.tg, rp.top, rp.lp, rp.tail, &e)) { kdc_abort(w); tool_die_err(&e); }
            positions += rp.ns; tokens += rp.T;
        }
        progress_update(&pr, (double)(g0 + job_ranks < G ? g0 + job_ranks : G));
    }
    piece_free(&rp);
    if (dev) tr_mem_release(t, dlg);
    if (job_rank > 0) {   /* rank 0 writes the cache and the line */
        free(ids); free(tg); free(lg); free(marks); free(top); free(lp); free(tail); free(ts);
        tr_data_free(d); tok_free(tt); tr_free(t);
        return;
    }
    progress_end(&pr);
    int64_t bytes = kdc_written_bytes(w), bbytes = kdc_block_bytes(w);
    if (kdc_finish(w, &e)) tool_die_err(&e);
    double secs = tool_now_seconds() - t0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "cache", ka->save);
    cJSON_AddNumberToObject(o, "blocks", (double)G);
    cJSON_AddNumberToObject(o, "positions", (double)positions);
    cJSON_AddNumberToObject(o, "k", k);
    cJSON_AddNumberToObject(o, "vocab", V);
    cJSON_AddNumberToObject(o, "temperature", T);
    cJSON_AddNumberToObject(o, "bytes", (double)bytes);
    cJSON_AddNumberToObject(o, "bytes_per_token", positions ? (double)bbytes / positions : 0);
    cJSON_AddNumberToObject(o, "seconds", secs);
    cJSON_AddNumberToObject(o, "tokens_per_s", secs > 0 ? tokens / secs : 0);
    cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)tool_peak_rss_bytes());
    tool_emit(o);
    free(ids); free(tg); free(lg); free(marks); free(top); free(lp); free(tail); free(ts);
    tr_data_free(d); tok_free(tt); tr_free(t);
}

/* ---------------------------------------------------------------- resume checks */

static char g_teacher_fp[40];   /* the teacher's (or cache's) fingerprint, for the checkpoint */

/* a cache's identity: its size and its first and last 64 KiB (its index and trailer) */
static void cache_fingerprint(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint64_t h = 0xcbf29ce484222325ull;
    if (fd >= 0 && fstat(fd, &st) == 0) {
        static unsigned char b[1 << 16];
        off_t at[2] = {0, st.st_size > (off_t)sizeof b ? st.st_size - (off_t)sizeof b : 0};
        for (int i = 0; i < 2; i++) {
            ssize_t r = pread(fd, b, sizeof b, at[i]);
            for (ssize_t j = 0; j < r; j++) { h ^= b[j]; h *= 0x100000001b3ull; }
        }
        h ^= (uint64_t)st.st_size;
    }
    if (fd >= 0) close(fd);
    snprintf(g_teacher_fp, sizeof g_teacher_fp, "cache:%016llx", (unsigned long long)h);
}

static void kd_options(void *user, cJSON *o) {
    const kd_ctx *k = user;
    char spec[256];
    kd_spec_str(&k->spec, spec, sizeof spec);
    cJSON_AddStringToObject(o, "loss", spec);
    cJSON_AddNumberToObject(o, "temperature", k->spec.temperature);
    cJSON_AddNumberToObject(o, "skew", k->spec.skew);
    cJSON_AddNumberToObject(o, "jsd_beta", k->spec.jsd_beta);
    if (g_teacher_fp[0]) cJSON_AddStringToObject(o, "teacher", g_teacher_fp);
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    /* as heal-sft: spinning OpenMP workers starve the OpenBLAS threads of the next GEMM; libgomp
     * reads its policy at load time, so re-execute once with the passive policy */
    int policy = !getenv("OMP_WAIT_POLICY");
    if (policy) setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    tool_blas_reexec(argv); /* AVX-512 GEMM kernels when the CPU has them (re-executes) */
    if (policy) execv("/proc/self/exe", argv);
    tool_init_job("kd-train", argc, argv);
    train_args a;
    train_args_init(&a);
    kd_args ka = {0};
    ka.topk = 128; ka.level = 3;
    ka.spec = KD_SPEC_DEFAULT;
    lop_err e;
    static struct option lo[] = {
        {"teacher", required_argument, 0, O_TEACHER}, {"teacher-cache", required_argument, 0, O_TCACHE},
        {"save-teacher", required_argument, 0, O_SAVE_T}, {"top-k", required_argument, 0, O_TOPK},
        {"cache-level", required_argument, 0, O_LEVEL}, {"loss", required_argument, 0, O_LOSS},
        {"temperature", required_argument, 0, O_TEMP}, {"skew", required_argument, 0, O_SKEW},
        {"jsd-beta", required_argument, 0, O_BETA},
        TRAIN_CLI_LONGOPTS, TOOL_COMMON_LONGOPTS, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, TRAIN_CLI_SHORTOPTS TOOL_COMMON_SHORTOPTS, lo, NULL)) != -1) {
        if (tool_common_opt(c, optarg, usage) || train_cli_opt(&a, c, optarg)) continue;
        switch (c) {
        case O_TEACHER: ka.teacher = optarg; break;
        case O_TCACHE: ka.cache = optarg; break;
        case O_SAVE_T: ka.save = optarg; break;
        case O_TOPK: ka.topk = (int)opt_int("--top-k", optarg, 1, 1 << 26); break;
        case O_LEVEL: ka.level = (int)opt_int("--cache-level", optarg, 1, 19); break;
        case O_LOSS: if (kd_parse_loss(optarg, &ka.spec, &e)) tool_die_err(&e); break;
        case O_TEMP: ka.spec.temperature = opt_double("--temperature", optarg, 1e-3, 1e3); ka.temp_given = 1; break;
        case O_SKEW: ka.spec.skew = opt_double("--skew", optarg, 0, 0.999); break;
        case O_BETA: ka.spec.jsd_beta = opt_double("--jsd-beta", optarg, 1e-6, 1 - 1e-6); break;
        default: tool_die_usage("unknown option");
        }
    }
    if (optind < argc) tool_die_usage("unexpected argument '%s'", argv[optind]);
    if (ka.teacher && ka.cache) tool_die_usage("--teacher and --teacher-cache exclude each other");
    out_input("teacher", ka.teacher);
    out_input("teacher cache", ka.cache);
    if (ka.save) {
        if (!ka.teacher) tool_die_usage("--save-teacher needs --teacher");
        if (!a.data) tool_die_usage("--data is required");
        if (a.out) tool_die_usage("--save-teacher only writes the cache; train from it with --teacher-cache");
        out_input("model", a.model);
        out_input("data", a.data);
        ka.save = out_output("--save-teacher", ka.save, OUT_FILE);
        if (!job_rank) out_check();   /* rank 0 writes the cache; the others wait for its decision */
        job_sync();
        tool_apply_threads();
        save_teacher(&a, &ka);
        free(a.tmpl);
        return 0;
    }
    train_cli_check(&a, 1);
    int need_t = kd_needs_teacher(&ka.spec);
    if (need_t && !ka.teacher && !ka.cache)
        tool_die_usage("--loss has distillation terms: give --teacher or --teacher-cache");
    tool_apply_threads();

    train_run r;
    kd_ctx k = {0};
    live L = {0};
    cached C = {0};
    /* the teacher and the pair's checks first: a refused pair fails before the student's
     * memory is spent */
    if (ka.cache) {
        if (kdc_open(&C.c, ka.cache, &e)) tool_die_err(&e);
        C.path = ka.cache;
        cache_fingerprint(ka.cache);
        double ct = kdc_temperature(C.c);
        if (ka.temp_given && fabs(ct - ka.spec.temperature) > 1e-9 * ct)
            tool_die_usage("--temperature %g: the cache %s holds log-probabilities at temperature %g",
                      ka.spec.temperature, ka.cache, ct);
        ka.spec.temperature = ct;
        int nts;
        const char *const *ts = kdc_tokens(C.c, &nts);
        k.V = check_pair(a.model, ts, nts, ka.cache, kdc_vocab(C.c), "cache");
    } else if (ka.teacher && need_t) {
        tr_opts fo = teacher_opts(&a);
        if (tr_open(&L.t, ka.teacher, &fo, 0, &e)) tool_die_err(&e);
        k.ldt = L.t->cfg.vocab;
        g_teacher = L.t;
        snprintf(g_teacher_fp, sizeof g_teacher_fp, "model:%016llx",
                 (unsigned long long)train_cli_model_fingerprint(L.t->st));
        lop_tokenizer *tt = load_tok(L.t->st, ka.teacher);
        int nts = 0;
        const char **ts = tt ? tok_strings(tt, &nts) : NULL;
        k.V = check_pair(a.model, ts, nts, ka.teacher, L.t->cfg.vocab, "teacher");
        free(ts);
        if (tt) tok_free(tt);
    }
    train_cli_open(&a, &r);
    if (L.t) train_cli_check_context(&a, r.max_T, L.t->cfg.max_pos);
    k.spec = ka.spec;
    if (!k.V) k.V = r.m->cfg.vocab;
    train_hooks h = {0};
    h.what = "kd-train";
    h.loss = kd_loss; h.loss_ctx = &k;
    h.user = &k; h.step_fields = step_terms;
    h.loss_failed = &k.failed; h.loss_err = &k.err;
    h.options = kd_options;
    h.stat = k.sum; h.nstat = KD_NTERMS; h.stat_n = &k.scored;
    if (ka.cache) {
        k.teacher = cache_rows; k.user = &C;
        h.before_batch = cache_before; h.batch_user = &C;
    } else if (L.t) {
        k.teacher = live_rows; k.user = &L;
        h.before_batch = live_before; h.batch_user = &L;
    }
    char spec[256];
    kd_spec_str(&k.spec, spec, sizeof spec);
    tool_note("%s: %lld trainable parameters (%s), %lld documents, %lld tokens, %lld blocks of %d; %lld "
         "steps; loss %s, T %g, teacher %s", a.model, (long long)r.m->trainable_params,
         a.lrank ? "LoRA" : "full fine-tuning", (long long)tr_data_docs(r.data),
         (long long)tr_data_tokens(r.data), (long long)tr_data_blocks(r.data), a.seq,
         (long long)r.total, spec, k.spec.temperature,
         ka.cache ? ka.cache : ka.teacher ? ka.teacher : "none");
    train_cli_loop(&a, &r, &h);
    if (k.failed) tool_die_err(&k.err);
    kd_ctx_free(&k);
    if (L.t) { tr_mem_release(L.t, L.buf); tr_free(L.t); }
    for (int j = 0; j < C.nblk; j++) kdc_block_free(&C.blk[j]);
    free(C.blk); free(C.sidx);
    if (C.c) kdc_close(C.c);
    train_cli_close(&r);
    free(a.tmpl);
    return 0;
}
