/* train_cli.c — the training tools' shared options and step loop (see train_cli.h). The options,
 * defaults and JSON lines are heal-sft's, so every training tool reads and reports alike. */
#include "train_cli.h"
#include "provenance.h"
#include "cleanup.h"
#include "fsutil.h"
#include "outpath.h"
#include "job.h"
#include "train_tree.h"
#include "backend.h"
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv(uint64_t h, const void *p, size_t n);

void train_args_init(train_args *a) {
    memset(a, 0, sizeof *a);
    a->seq = 512; a->batch = 1; a->accum = 1; a->shuffle = 1; a->keep_sparse = 1;
    a->epochs = 1; a->lr = -1; a->wd = 0.01; a->b1 = 0.9; a->b2 = 0.999; a->eps = 1e-8; a->clip = 1.0;
    a->lalpha = -1; a->sched = SCHED_COSINE; a->targets = 0x7f;
}

static char *read_template(const char *s) {
    if (s[0] != '@') return strdup(s);
    char *b; size_t n; lop_err e;
    if (fs_read_all(s + 1, &b, &n, &e)) tool_die_err(&e);
    return b;
}

int train_cli_opt(train_args *a, int c, const char *arg) {
    lop_err e;
    switch (c) {
    case 'm': a->model = arg; break;
    case 'o': a->out = arg; break;
    case TO_DATA: a->data = arg; break;
    case TO_EVAL: a->eval = arg; break;
    case TO_TMPL: free(a->tmpl); a->tmpl = read_template(arg); break;
    case TO_SEQ: a->seq = (int)opt_int("--seq-len", arg, 1, 1 << 20); break;
    case TO_NOSHUF: a->shuffle = 0; break;
    case TO_BATCH: a->batch = (int)opt_int("--batch", arg, 1, 1 << 16); break;
    case TO_ACC: a->accum = (int)opt_int("--grad-accum", arg, 1, 1 << 16); break;
    case TO_EPOCHS: a->epochs = opt_double("--epochs", arg, 1e-9, 1e6); break;
    case TO_STEPS: a->steps = opt_int("--steps", arg, 1, 1ll << 40); break;
    case TO_LR: a->lr = opt_double("--lr", arg, 0, 10); break;
    case TO_SCHED:
        if (sched_parse(arg, &a->sched)) tool_die_usage("--schedule: '%s' is not constant, linear or cosine", arg);
        break;
    case TO_WARM: a->warmup = opt_int("--warmup", arg, 0, 1ll << 40); break;
    case TO_WD: a->wd = opt_double("--weight-decay", arg, 0, 10); break;
    case TO_B1: a->b1 = opt_double("--beta1", arg, 0, 0.999999999); break;
    case TO_B2: a->b2 = opt_double("--beta2", arg, 0, 0.999999999); break;
    case TO_EPS: a->eps = opt_double("--adam-eps", arg, 0, 1); break;
    case TO_CLIP: a->clip = opt_double("--clip", arg, 0, 1e9); break;
    case TO_RECOMP: a->recompute = 1; break;
    case TO_NOSPARSE: a->keep_sparse = 0; break;
    case TO_LRANK: a->lrank = (int)opt_int("--lora-rank", arg, 1, 65536); break;
    case TO_LALPHA: a->lalpha = opt_double("--lora-alpha", arg, 1e-9, 1e9); break;
    case TO_LTGT: if (tr_parse_targets(arg, &a->targets, &e)) tool_die_usage("--lora-targets: %s", e.msg); break;
    case TO_LDROP: a->ldrop = opt_double("--lora-dropout", arg, 0, 0.99); break;
    case TO_MERGE: a->merge = 1; break;
    case TO_SAVE: a->save_every = opt_int("--save-every", arg, 1, 1ll << 40); break;
    case TO_CKPT: a->ckpt_dir = arg; break;
    case TO_RESUME: a->resume = arg; break;
    case TO_EVERY: a->eval_every = opt_int("--eval-every", arg, 1, 1ll << 40); break;
    case TO_LIMIT: a->save_limit = opt_int("--save-total-limit", arg, 1, 1ll << 40); break;
    case TO_DEVICE:
        if (lop_device_parse(arg) == -2) tool_die_usage("--device: expected cpu, cuda or cuda:N, not '%s'", arg);
        a->device = arg;
        break;
    case TO_GEMM:
        if (lop_gemm_parse(arg, &a->gemm)) tool_die_usage("--gemm: expected f32 or bf16, not '%s'", arg);
        a->gemm_set = 1;
        break;
    default: return 0;
    }
    return 1;
}

lop_gemm train_cli_gemm(const train_args *a) {
    if (a->gemm_set) return a->gemm;
    /* a GPU trains in bf16 products over float32 masters unless asked for float32 */
    return a->device && strcmp(a->device, "cpu") ? LOP_GEMM_BF16 : LOP_GEMM_F32;
}

void train_cli_check(train_args *a, int need_out) {
    if (!a->model) tool_die_usage("-m/--model is required");
    if (!a->data) tool_die_usage("--data is required");
    if (need_out) {
        if (!a->out) tool_die_usage("-o/--output is required");
        if (!strcmp(a->out, "-")) tool_die_usage("-o: a folder is required (not stdout)");
    }
    if (a->merge && !a->lrank) tool_die_usage("--merge-lora needs --lora-rank");
    a->gemm = train_cli_gemm(a);
    if (a->lr < 0) a->lr = a->lrank ? 2e-4 : 2e-5;
    if (a->lalpha < 0) a->lalpha = 2.0 * a->lrank;
    /* the output guard: every input and output, before anything loads */
    out_input("model", a->model);
    out_input("data", a->data);
    out_input("eval data", a->eval);
    out_input("checkpoint", a->resume);
    int adapter = a->lrank && !a->merge;
    if (a->out) a->out = out_output("-o", a->out, adapter ? OUT_FOLDER : OUT_MODEL);
    if (!a->ckpt_dir && a->out) {
        snprintf(a->ckpt_buf, sizeof a->ckpt_buf, "%s.ckpt", a->out);
        a->ckpt_dir = a->ckpt_buf;
    }
    if (a->ckpt_dir) a->ckpt_dir = out_output("--ckpt-dir", a->ckpt_dir, OUT_CKPTS);
    /* a job: the rank count must fit the step's micro-batches (refused before anything loads),
     * and rank 0, the only writer, decides about the outputs while the others wait */
    int k0, k1;
    tt_share(a->accum, job_ranks, job_rank, &k0, &k1);
    if (!job_rank) {
        out_check();
        if (a->out && !adapter && out_is_folder(a->out)) out_source_usable(a->model);
        if (a->out && !adapter) out_space(a->out, out_model_bytes(a->model));
    }
    job_sync();
}

tr_data *train_cli_data(const train_args *a, const char *path, const lop_tokenizer *tok,
                        const lop_config *cfg, int shuffle) {
    tr_data_opts o = {a->seq, a->tmpl, shuffle, tool_opt.seed, cfg->bos_id, cfg->eos_id, cfg->pad_id};
    tr_data *d;
    lop_err e;
    if (tr_data_load(&d, path, tok, &o, &e)) tool_die_err(&e);
    if (tr_data_blocks(d) < 1) tool_die(1, "%s: no training sequences in the data", path);
    return d;
}

int64_t train_cli_total_steps(const train_args *a, const tr_data *d) {
    int64_t per_step = (int64_t)a->batch * a->accum;
    int64_t total = a->steps ? a->steps
                  : (int64_t)ceil(a->epochs * (double)tr_data_blocks(d) / (double)per_step);
    return total < 1 ? 1 : total;
}

void train_cli_open(const train_args *a, train_run *r) {
    memset(r, 0, sizeof *r);
    lop_err e, te;
    tr_opts to = TR_OPTS_DEFAULT;
    to.lora_rank = a->lrank; to.lora_alpha = a->lalpha; to.lora_dropout = a->ldrop;
    to.lora_targets = a->targets; to.keep_sparsity = a->keep_sparse; to.recompute = a->recompute;
    to.device = a->device; to.gemm = a->gemm;
    double t0 = tool_now_seconds();
    if (tr_open(&r->m, a->model, &to, tool_opt.seed, &e)) tool_die_err(&e);
    if (!tr_host_mem(r->m))
        tool_note("training on %s, %s products (model uploaded in %.1f s)", tr_device(r->m),
                  a->gemm == LOP_GEMM_BF16 ? "bf16" : "float32", tool_now_seconds() - t0);
    const char *tokdir = r->m->st->source_dir ? r->m->st->source_dir : a->model;
    if (tok_load(&r->tok, tokdir, &te)) r->tok = NULL;
    tr_data_opts dopt = {a->seq, a->tmpl, a->shuffle, tool_opt.seed, r->m->cfg.bos_id,
                         r->m->cfg.eos_id, r->m->cfg.pad_id};
    if (tr_data_load(&r->data, a->data, r->tok, &dopt, &e)) {
        if (!r->tok && strstr(e.msg, "tokenizer")) tool_die(1, "%s (%s)", e.msg, te.msg);
        tool_die_err(&e);
    }
    if (tr_data_blocks(r->data) < 1) tool_die(1, "%s: no training sequences in the data", a->data);
    if (a->eval) {
        tr_data_opts eo = dopt; eo.shuffle = 0;
        if (tr_data_load(&r->eval, a->eval, r->tok, &eo, &e)) tool_die_err(&e);
    }
    r->per_step = (int64_t)a->batch * a->accum;
    r->total = train_cli_total_steps(a, r->data);
    train_cli_scan(r->data, &r->max_T, &r->data_fp);
    train_cli_check_context(a, r->max_T, r->m->cfg.max_pos);
    /* hostile jobs: every rank must run the same command on the same model and data */
    uint64_t fp = job_argv_fp(), mfp = train_cli_model_fingerprint(r->m->st);
    fp = job_fp_mix(fp, &r->data_fp, sizeof r->data_fp);
    job_same("options, model or data", job_fp_mix(fp, &mfp, sizeof mfp));
    /* the recipe, resolved, for the provenance line (model-card renders it) */
    prov_opt_num("seq_len", a->seq);
    prov_opt_num("batch", a->batch);
    prov_opt_num("grad_accum", a->accum);
    prov_opt_num("global_batch_sequences", (double)r->per_step);
    prov_opt_num("steps", (double)r->total);
    prov_opt_num("epochs", a->steps ? (double)r->total * (double)r->per_step / (double)tr_data_blocks(r->data) : a->epochs);
    prov_opt_num("lr", a->lr);
    prov_opt_str("schedule", sched_name(a->sched));
    prov_opt_num("warmup", (double)a->warmup);
    prov_opt_num("weight_decay", a->wd);
    prov_opt_num("beta1", a->b1); prov_opt_num("beta2", a->b2); prov_opt_num("adam_eps", a->eps);
    prov_opt_num("clip", a->clip);
    prov_opt_bool("shuffle", a->shuffle);
    prov_opt_str("device", tr_device(r->m));
    prov_opt_str("gemm", a->gemm == LOP_GEMM_BF16 ? "bf16" : "f32");
    prov_opt_bool("recompute", a->recompute);
    prov_opt_bool("keep_sparsity", a->keep_sparse);
    prov_opt_str("data", a->data);
    prov_opt_str("eval_data", a->eval);
    prov_opt_num("data_sequences", (double)tr_data_blocks(r->data));
    if (a->lrank) {
        prov_opt_num("lora_rank", a->lrank); prov_opt_num("lora_alpha", a->lalpha);
        prov_opt_num("lora_dropout", a->ldrop); prov_opt_bool("merge_lora", a->merge);
    }
    prov_opt_str("resume", a->resume);
}

void train_cli_check_context(const train_args *a, int max_T, int max_pos) {
    char what[80];
    snprintf(what, sizeof what, "--seq-len %d (the longest training sequence)", a->seq);
    tool_check_context(what, max_T, max_pos);
}

void train_cli_close(train_run *r) {
    tr_data_free(r->data); tr_data_free(r->eval);
    if (r->tok) tok_free(r->tok);
    tr_free(r->m);
    memset(r, 0, sizeof *r);
}

static void eval_run(tr_model *m, tr_data *d, int B, int64_t step) {
    int32_t *ids = NULL, *tg = NULL; size_t cap = 0;
    tr_stats st = {0, 0};
    lop_err e;
    int64_t nb = tr_data_blocks(d);
    for (int64_t g = 0; g < nb; g += B) {
        int T, bb = (int)(nb - g < B ? nb - g : B);
        if (tr_data_batch(d, g, bb, &ids, &tg, &cap, &T, &e) < 0) tool_die_err(&e);
        tr_batch b = {bb, T, ids, tg};
        if (tr_eval_batch(m, &b, NULL, NULL, &st, &e)) tool_die_err(&e);
    }
    free(ids); free(tg);
    double l = st.scored ? st.loss_sum / st.scored : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)step);
    cJSON_AddNumberToObject(o, "eval_loss", l);
    cJSON_AddNumberToObject(o, "eval_ppl", exp(l));
    cJSON_AddNumberToObject(o, "eval_tokens", (double)st.scored);
    tool_emit(o);
}

/* the newest DIR/step-N, or DIR itself when it holds state.json */
static char *find_ckpt(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s/state.json", dir);
    if (fs_is_file(p)) return strdup(dir);
    DIR *d = opendir(dir);
    if (!d) tool_die(1, "%s: no checkpoint here", dir);
    long best = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        long s; char tail;
        if (sscanf(de->d_name, "step-%ld%c", &s, &tail) == 1 && s > best) best = s;
    }
    closedir(d);
    if (best < 0) tool_die(1, "%s: no checkpoint here (no state.json, no step-N folder)", dir);
    snprintf(p, sizeof p, "%s/step-%ld", dir, best);
    return strdup(p);
}

/* ---------------------------------------------------------------- checkpoints and resume */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) { h ^= c[i]; h *= 0x100000001b3ull; }
    return h;
}

uint64_t train_cli_model_fingerprint(const st_model *st) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < st->n; i++) {
        const st_info *t = &st->info[i];
        h = fnv(h, t->name, strlen(t->name) + 1);
        h = fnv(h, &t->dtype, sizeof t->dtype);
        h = fnv(h, t->shape, sizeof t->shape[0] * (size_t)t->ndim);
        const unsigned char *d = st->data[i];
        size_t nb = (size_t)t->nbytes, k = nb < 64 ? nb : 64;
        if (d && nb) {   /* first, middle and last bytes: a changed weight file shows */
            h = fnv(h, d, k);
            h = fnv(h, d + nb / 2 - (nb / 2 < k / 2 ? nb / 2 : k / 2), k / 2);
            h = fnv(h, d + nb - k, k);
        }
    }
    return h;
}

void train_cli_scan(tr_data *d, int *max_T, uint64_t *fp) {
    uint64_t h = 0xcbf29ce484222325ull;
    int32_t *ids = NULL, *tg = NULL; size_t cap = 0; int T, mx = 0; lop_err e;
    for (int64_t g = 0; g < tr_data_blocks(d); g++) {
        if (tr_data_batch(d, g, 1, &ids, &tg, &cap, &T, &e) < 0) tool_die_err(&e);
        if (T > mx) mx = T;
        h = fnv(h, &T, sizeof T);
        h = fnv(h, ids, sizeof *ids * (size_t)T);
        h = fnv(h, tg, sizeof *tg * (size_t)T);
    }
    free(ids); free(tg);
    *max_T = mx; *fp = h;
}

static void add_hex(cJSON *o, const char *k, uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "%016llx", (unsigned long long)v);
    cJSON_AddStringToObject(o, k, b);
}

/* The options a run's numbers depend on, as recorded in every checkpoint and compared on
 * --resume. Not here: threads (the kernels are deterministic for a thread count... and lop's are
 * for any), --recompute (the same arithmetic), evaluation and checkpoint options. */
static cJSON *run_options(const train_args *a, const train_run *r, const train_hooks *h) {
    static const char *sched[] = {"constant", "linear", "cosine"};
    cJSON *o = cJSON_CreateObject();
    add_hex(o, "model", train_cli_model_fingerprint(r->m->st));
    add_hex(o, "data", r->data_fp);
    cJSON_AddNumberToObject(o, "steps", (double)r->total);
    cJSON_AddNumberToObject(o, "seq_len", a->seq);
    cJSON_AddNumberToObject(o, "batch", a->batch);
    cJSON_AddNumberToObject(o, "grad_accum", a->accum);
    cJSON_AddBoolToObject(o, "shuffle", a->shuffle);
    cJSON_AddNumberToObject(o, "seed", (double)tool_opt.seed);
    cJSON_AddNumberToObject(o, "lr", a->lr);
    cJSON_AddStringToObject(o, "schedule", (unsigned)a->sched < 3 ? sched[a->sched] : "?");
    cJSON_AddNumberToObject(o, "warmup", (double)a->warmup);
    cJSON_AddNumberToObject(o, "weight_decay", a->wd);
    cJSON_AddNumberToObject(o, "beta1", a->b1);
    cJSON_AddNumberToObject(o, "beta2", a->b2);
    cJSON_AddNumberToObject(o, "adam_eps", a->eps);
    cJSON_AddNumberToObject(o, "clip", a->clip);
    cJSON_AddBoolToObject(o, "keep_sparsity", a->keep_sparse);
    /* where and in what precision: the numbers differ between them (resume bit for bit on the
     * same device kind and build) */
    cJSON_AddStringToObject(o, "device", tr_host_mem(r->m) ? "cpu" : "cuda");
    cJSON_AddStringToObject(o, "gemm", a->gemm == LOP_GEMM_BF16 ? "bf16" : "f32");
    cJSON_AddNumberToObject(o, "lora_rank", a->lrank);
    if (a->lrank) {
        cJSON_AddNumberToObject(o, "lora_alpha", a->lalpha);
        cJSON_AddNumberToObject(o, "lora_targets", a->targets);
        cJSON_AddNumberToObject(o, "lora_dropout", a->ldrop);
    }
    if (h->options) h->options(h->user, o);
    return o;
}

/* the differences between a checkpoint's recorded options and this run's, as "key X (checkpoint
 * Y)"; only_model: nothing is left to train, so only the model matters */
static int diff_options(const cJSON *saved, const cJSON *now, int only_model, char *buf, size_t n) {
    int k = 0;
    size_t len = 0;
    buf[0] = 0;
    for (const cJSON *x = now->child; x; x = x->next) {
        if (only_model && strcmp(x->string, "model")) continue;
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(saved, x->string);
        char *a = cJSON_PrintUnformatted(x), *b = y ? cJSON_PrintUnformatted(y) : NULL;
        if (a && (!b || strcmp(a, b))) {
            if (len + 80 < n)
                len += snprintf(buf + len, n - len, "%s%s %s (checkpoint: %s)", k ? ", " : "",
                                x->string, a, b ? b : "none");
            k++;
        }
        free(a); free(b);
    }
    return k;
}

static int cmp_long(const void *x, const void *y) {
    long a = *(const long *)x, b = *(const long *)y;
    return (a > b) - (a < b);
}

/* keep the newest `keep` step-N folders of dir (keep 0: remove them all) */
static void prune_ckpts(const char *dir, long long keep) {
    DIR *d = opendir(dir);
    if (!d) return;
    long *steps = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long s; char tail;
        if (sscanf(de->d_name, "step-%ld%c", &s, &tail) != 1) continue;
        if (n == cap && !(steps = realloc(steps, sizeof *steps * (cap = cap ? 2 * cap : 16)))) tool_die(1, "out of memory");
        steps[n++] = s;
    }
    closedir(d);
    qsort(steps, n, sizeof *steps, cmp_long);
    for (int i = 0; i + keep < n; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/step-%ld", dir, steps[i]);
        fs_rm_rf(p);
    }
    free(steps);
}

static void save_ckpt(const train_args *a, train_run *r, const cJSON *opts, int64_t step) {
    static int cleared;
    lop_err e;
    if (!cleared++ && tool_opt.force && !a->resume) prune_ckpts(a->ckpt_dir, 0); /* -f: a new run */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/step-%lld", a->ckpt_dir, (long long)step);
    cJSON *st = cJSON_CreateObject();
    cJSON_AddNumberToObject(st, "step", (double)step);
    cJSON_AddNumberToObject(st, "total_steps", (double)r->total);
    cJSON_AddNumberToObject(st, "data_block", (double)(step * r->per_step));
    cJSON_AddNumberToObject(st, "seed", (double)tool_opt.seed);
    cJSON_AddStringToObject(st, "tool", tool_name);
    cJSON_AddItemToObject(st, "options", cJSON_Duplicate(opts, 1));
    char *js = cJSON_Print(st);
    cJSON_Delete(st);
    if (!js) tool_die(1, "out of memory");
    size_t n = strlen(js);
    char *jn = realloc(js, n + 2);
    if (!jn) tool_die(1, "out of memory");
    jn[n] = '\n'; jn[n + 1] = 0;
    if (tr_ckpt_save(r->m, dir, jn, &e)) tool_die_err(&e);
    free(jn);
    if (a->save_limit) prune_ckpts(a->ckpt_dir, a->save_limit);
}

/* append s to b, single-quoted for a POSIX shell when it needs quoting */
static void shell_word(char *b, size_t n, const char *s) {
    size_t len = strlen(b);
    int plain = *s != 0;
    for (const char *p = s; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%", *p) != NULL;
    if (len + 2 < n && len) b[len++] = ' ';
    if (plain) { snprintf(b + len, n - len, "%s", s); return; }
    if (len + 1 < n) b[len++] = '\'';
    for (const char *p = s; *p && len + 5 < n; p++) {
        if (*p == '\'') { memcpy(b + len, "'\\''", 4); len += 4; }
        else b[len++] = *p;
    }
    if (len + 1 < n) b[len++] = '\'';
    b[len < n ? len : n - 1] = 0;
}

/* SIGINT/SIGTERM: the step in progress has finished; write a checkpoint of the last finished step
 * (unless there is none, or it was just written), say how to resume, and end as the signal asks */
_Noreturn static void stop_run(const train_args *a, train_run *r, const cJSON *opts, int sig,
                               int64_t done, int64_t start, int64_t saved) {
    const char *sn = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
    if (done <= start || !a->ckpt_dir) {
        fprintf(stderr, "%s: interrupted (%s) before a step finished: nothing to save\n", tool_name, sn);
        cleanup_exit_signal(sig);
    }
    if (saved != done) save_ckpt(a, r, opts, done);
    char dir[4200], cmd[16384] = "";
    snprintf(dir, sizeof dir, "%s/step-%lld", a->ckpt_dir, (long long)done);
    for (int i = 0; i < tool_argc; i++) {
        if (!strcmp(tool_argv[i], "--resume")) { i++; continue; }
        if (!strncmp(tool_argv[i], "--resume=", 9)) continue;
        shell_word(cmd, sizeof cmd, i ? tool_argv[i] : tool_name);
    }
    shell_word(cmd, sizeof cmd, "--resume");
    shell_word(cmd, sizeof cmd, dir);
    fprintf(stderr, "%s: interrupted (%s) after step %lld of %lld; checkpoint %s; resume with: %s\n",
            tool_name, sn, (long long)done, (long long)r->total, dir, cmd);
    cleanup_exit_signal(sig);
}

void train_cli_loop(const train_args *a, train_run *r, const train_hooks *h) {
    tr_model *m = r->m;
    lop_err e;
    int64_t total = r->total, per_step = r->per_step, start = 0, saved = -1;
    cJSON *opts = NULL;
    if (a->resume) {
        char *dir = find_ckpt(a->resume), *js = NULL;
        if (tr_ckpt_load(m, dir, &js, &e)) tool_die_err(&e);
        cJSON *st = cJSON_Parse(js);
        cJSON *s = cJSON_GetObjectItem(st, "step"), *tt = cJSON_GetObjectItem(st, "total_steps");
        if (!cJSON_IsNumber(s)) tool_die(1, "%s/state.json: no step", dir);
        start = saved = (int64_t)s->valuedouble;
        if (cJSON_IsNumber(tt) && !a->steps) total = r->total = (int64_t)tt->valuedouble;
        opts = run_options(a, r, h);
        cJSON *was = cJSON_GetObjectItem(st, "options");
        if (!cJSON_IsObject(was)) {
            tool_warn("%s records no options (an older checkpoint): the run cannot be checked to match it", dir);
        } else {
            char diff[2048];
            int nd = diff_options(was, opts, start >= total, diff, sizeof diff);
            if (nd && !tool_opt.force)
                tool_die(2, "--resume %s: %d option%s from the checkpoint's run, so the result would "
                       "not be the one it started: %s (-f/--force continues anyway)",
                    dir, nd, nd > 1 ? "s differ" : " differs", diff);
            if (nd) tool_warn("--resume %s with different options (--force): %s", dir, diff);
        }
        tool_note("resuming from %s at step %lld", dir, (long long)start);
        cJSON_Delete(st); free(js); free(dir);
    }
    if (!opts) opts = run_options(a, r, h);
    /* from here a signal stops the run after the step in progress, with a checkpoint; in a job
     * of several ranks a signal ends it at once (the ranks would have to agree on the step) */
    if (job_ranks == 1) cleanup_defer_signals();
    adamw_hp hp = {a->b1, a->b2, a->eps, a->wd};
    int32_t **ids = calloc(a->accum, sizeof *ids), **tg = calloc(a->accum, sizeof *tg);
    size_t *cap = calloc(a->accum, sizeof *cap);
    int *Ts = calloc(a->accum, sizeof *Ts);
    /* per micro-batch: loss sum, scored rows, the tool's sums (added in micro-batch order, so
     * the step's line is the same for any rank count) */
    int ns = h->nstat, nrow = 3 + ns;
    double *mb = malloc(sizeof *mb * (size_t)a->accum * nrow);
    if (!ids || !tg || !cap || !Ts || !mb) tool_die(1, "out of memory");
    int k0, k1;
    tt_share(a->accum, job_ranks, job_rank, &k0, &k1);
    train_tree *tree = tt_new(m, a->accum);
    tool_note("%s: %lld trainable parameters (%s), %lld documents, %lld tokens, %lld blocks of %d; %lld steps",
         a->model, (long long)m->trainable_params, a->lrank ? "LoRA" : "full fine-tuning",
         (long long)tr_data_docs(r->data), (long long)tr_data_tokens(r->data),
         (long long)tr_data_blocks(r->data), a->seq, (long long)total);
    if (job_ranks > 1)
        tool_note("a job of %d ranks: each computes %d of every step's %d micro-batches (%d sequences); "
             "the gradients are summed in one fixed tree (the weights do not depend on the rank count)",
             job_ranks, k1 - k0, a->accum, a->accum * a->batch);
    progress pr;
    progress_start(&pr, h->what, (double)total, "steps");
    double t_start = tool_now_seconds();
    int64_t tokens_done = 0;
    for (int64_t step = start + 1; step <= total; step++) {
        int sig = cleanup_stop_signal();
        if (sig) stop_run(a, r, opts, sig, step - 1, start, saved);
        double t0 = tool_now_seconds();
        uint64_t sent0 = par_bytes_sent(job_par);
        int64_t g0 = (step - 1) * per_step, scored = 0, toks = 0;
        /* every rank reads every micro-batch's targets: the step's token count (the gradient's
         * 1/tokens) is an exact integer, the same on every rank without a message */
        for (int k = 0; k < a->accum; k++) {
            int64_t s = tr_data_batch(r->data, g0 + (int64_t)k * a->batch, a->batch, &ids[k], &tg[k],
                                      &cap[k], &Ts[k], &e);
            if (s < 0) tool_die_err(&e);
            scored += s;
            toks += (int64_t)a->batch * Ts[k];
        }
        tr_stats st = {0, 0};
        float gscale = scored ? 1.0f / (float)scored : 0.0f;
        memset(mb, 0, sizeof *mb * (size_t)a->accum * nrow);
        for (int k = k0; k < k1; k++) {
            tr_batch b = {a->batch, Ts[k], ids[k], tg[k]};
            if (h->before_batch && h->before_batch(h->batch_user, &b, g0 + (int64_t)k * a->batch, &e))
                tool_die_err(&e);
            uint64_t dseed = tool_opt.seed * 0x9e3779b97f4a7c15ull + (uint64_t)step * 131 + k;
            tr_stats sk = {0, 0};
            if (ns) { memset(h->stat, 0, sizeof *h->stat * ns); *h->stat_n = 0; }
            tr_zero_grad(m);
            if (tr_forward_backward(m, &b, gscale, h->loss, h->loss_ctx, dseed, &sk, &e)) {
                if (h->loss_failed && *h->loss_failed) tool_die_err(h->loss_err);
                tool_die_err(&e);
            }
            tt_leaf(tree, m, k);
            double *row = mb + (size_t)k * nrow;
            row[0] = sk.loss_sum; row[1] = (double)sk.scored;
            row[2] = ns ? (double)*h->stat_n : 0;
            for (int t = 0; t < ns; t++) row[3 + t] = h->stat[t];
        }
        if (tt_finish(tree, m, job_par, &e)) tool_die_err(&e);
        /* each micro-batch's numbers sit in one rank's rows, zeros elsewhere: the sum over ranks
         * copies them exactly, and they are added in micro-batch order below */
        if (par_sum_f64(job_par, mb, (size_t)a->accum * nrow, &e)) tool_die_err(&e);
        if (ns) { memset(h->stat, 0, sizeof *h->stat * ns); *h->stat_n = 0; }
        for (int k = 0; k < a->accum; k++) {
            const double *row = mb + (size_t)k * nrow;
            st.loss_sum += row[0];
            st.scored += (int64_t)row[1];
            if (ns) *h->stat_n += (int64_t)row[2];
            for (int t = 0; t < ns; t++) h->stat[t] += row[3 + t];
        }
        double norm = sqrt(tr_grad_sumsq(m));
        if (!isfinite(norm)) tool_die(1, "step %lld: gradient norm is not finite", (long long)step);
        double lr = sched_lr(a->sched, a->lr, step - 1, a->warmup, total);
        tr_adamw_step(m, lr, &hp, step, clip_factor(norm, a->clip));
        double dt = tool_now_seconds() - t0;
        tokens_done += toks;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", (double)step);
        cJSON_AddNumberToObject(o, "loss", st.scored ? st.loss_sum / st.scored : 0);
        if (h->step_fields) h->step_fields(h->user, o, &st);
        cJSON_AddNumberToObject(o, "lr", lr);
        cJSON_AddNumberToObject(o, "grad_norm", norm);
        cJSON_AddNumberToObject(o, "tokens", (double)toks);
        cJSON_AddNumberToObject(o, "scored", (double)scored);
        cJSON_AddNumberToObject(o, "tokens_per_s", dt > 0 ? toks / dt : 0);
        if (!tr_host_mem(m)) cJSON_AddNumberToObject(o, "gpu_peak_mb", (double)(tr_device_peak(m) >> 20));
        if (job_ranks > 1) cJSON_AddNumberToObject(o, "sent_bytes", (double)(par_bytes_sent(job_par) - sent0));
        tool_emit(o);
        progress_update(&pr, (double)(step - start));
        if (r->eval && a->eval_every && step % a->eval_every == 0 && step != total)
            eval_run(m, r->eval, a->batch, step);
        if (a->save_every && (step % a->save_every == 0 || step == total)) {
            if (!job_rank) save_ckpt(a, r, opts, step);   /* only rank 0 writes */
            saved = step;
        }
    }
    progress_end(&pr);
    int sig = cleanup_stop_signal();
    if (sig) stop_run(a, r, opts, sig, total > start ? total : start, start, saved);
    if (r->eval) eval_run(m, r->eval, a->batch, total);
    if (!job_rank && tr_save(m, a->out, a->merge, a->model, &e)) tool_die_err(&e);
    cJSON_Delete(opts);
    tt_free(tree, m);
    double secs = tool_now_seconds() - t_start;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "output", a->out);
    cJSON_AddNumberToObject(o, "steps", (double)total);
    cJSON_AddNumberToObject(o, "trainable_params", (double)m->trainable_params);
    cJSON_AddNumberToObject(o, "train_tokens", (double)tokens_done);
    cJSON_AddNumberToObject(o, "seconds", secs);
    cJSON_AddNumberToObject(o, "tokens_per_s", secs > 0 ? tokens_done / secs : 0);
    cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)tool_peak_rss_bytes());
    cJSON_AddNumberToObject(o, "act_bytes", (double)tr_act_bytes(m));
    if (!tr_host_mem(m)) {
        cJSON_AddStringToObject(o, "device", tr_device(m));
        cJSON_AddNumberToObject(o, "gpu_peak_mb", (double)(tr_device_peak(m) >> 20));
    }
    tool_emit(o);
    for (int k = 0; k < a->accum; k++) { free(ids[k]); free(tg[k]); }
    free(ids); free(tg); free(cap); free(Ts); free(mb);
}
