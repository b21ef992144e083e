/* lm-eval — zero- and few-shot evaluation with lm-evaluation-harness's prompts and scoring.
 *
 *   lm-eval -m MODEL --tasks LIST [--data-dir DIR] [--task-file FILE] [--limit N|FRACTION]
 *           [--num-fewshot K] [--output FILE] [--log-samples FILE] [--shard I/N] [--compare BASE]
 *   lm-eval --merge A.json B.json ... [--output FILE] [--compare BASE]
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "loglik.h"
#include "model.h"
#include "results.h"
#include "task.h"
#include "task_text.h"
#include "tokenizer.h"
#include "cleanup.h"
#include "outpath.h"
#include "tool.h"
#include "provenance.h"
#include "job.h"

static void usage(FILE *f) {
    /* the groups from libcommon's one table (task.h), wrapped under --tasks */
    char groups[512] = "";
    int n = 0, col = 26;
    for (int i = 0; i < task_n_groups() && n < (int)sizeof groups - 128; i++) {
        const char *g = task_group_name(i);
        char item[96];
        if (task_group_parent(g)) snprintf(item, sizeof item, "%s,", g);
        else snprintf(item, sizeof item, "%s (%d %s_<subject> tasks),", g, mmlu_n_subjects(), g);
        int wrap = i && col + 1 + (int)strlen(item) > 96;
        n += snprintf(groups + n, sizeof groups - (size_t)n, wrap ? "\n%26s%s" : i ? "%s %s" : "%s%s", "", item);
        col = wrap ? 26 + (int)strlen(item) : col + 1 + (int)strlen(item);
    }
    if (n > 0) groups[n - 1] = 0;   /* the last ',' */
    fprintf(f,
        "usage: lm-eval -m MODEL --tasks LIST [options]\n"
        "       lm-eval --merge A.json B.json ... [--output FILE] [--compare BASE.json]\n"
        "Zero- and few-shot evaluation with lm-evaluation-harness's prompts, log-likelihoods and\n"
        "metrics. JSON lines {\"task\",\"metric\",\"value\",\"stderr\",\"n\"} on stdout, the harness's\n"
        "table on stderr.\n\n"
        "  -m, --model PATH        model folder, .safetensors file or - (stream)\n"
        "      --tokenizer PATH    tokenizer.json or its folder (default: the model's folder)\n"
        "      --tasks LIST        comma-separated tasks and groups: hellaswag, piqa, arc_easy,\n"
        "                          arc_challenge, openbookqa, copa, boolq, winogrande, lambada_openai,\n"
        "                          %s, mmlu_<subject>\n"
        "      --list-tasks        print every built-in task and group name, then exit (also:\n"
        "                          --tasks list)\n"
        "      --data-dir DIR      the eval data folder (default: $LOP_EVAL_DATA, else\n"
        "                          ~/.local/share/lop/eval); lop-get-eval-data builds it\n"
        "      --task-file FILE    also evaluate a JSONL task (repeatable): {\"query\",\"choices\",\"gold\"},\n"
        "                          {\"context_options\",\"continuation\",\"gold\"} or {\"context\",\"continuation\"}\n"
        "      --target-delimiter S  text put before each choice of a --task-file (default \" \")\n"
        "      --limit N|FRACTION  the first N documents of each task (0 < FRACTION < 1: that share)\n"
        "      --num-fewshot K     few-shot examples (mmlu: the first K of the dev split)\n"
        "      --add-bos           encode with the tokenizer's special tokens (BOS); always on for Gemma\n"
        "      --max-length N      context length (default: the model's max_position_embeddings)\n"
        "      --batch-tokens N    rows per forward pass (default 2048)\n"
        "      --no-reuse          run every choice whole (no shared-prefix reuse)\n"
        "      --shard I/N         evaluate documents I, I+N, I+2N, ... (0 <= I < N) of each task\n"
        "  -o, --output FILE       results in the harness's layout (+ per-document values for --merge)\n"
        "      --log-samples FILE  every document's requests, token ids and log-likelihoods (JSONL)\n"
        "      --merge             the arguments are --output files of shards: combine them\n"
        "      --compare BASE      print each value next to BASE's (a results file) and the retention\n"
        "      --timing            one more JSON line: items/s, forward time share, rows\n"
        "      --gemm f32|bf16     precision of the matrix products (default f32). bf16: activations\n"
        "                          rounded to bf16, float32 sums (AVX512-BF16 CPUs, else f32 with a\n"
        "                          warning); per-token log-probs move by up to ~0.1 (mean ~0.01)\n"
        TOOL_DEVICE_HELP
        "lm-evaluation-harness's spellings work too: --model_args pretrained=PATH[,tokenizer=P]\n"
        "[,max_length=N][,add_bos_token=True][,dtype=D] (with it, --model hf is the backend's name),\n"
        "--num_fewshot, --output_path FILE, --log_samples (a switch: the samples go to FILE_samples.jsonl,\n"
        "FILE less a .json suffix), --batch_size N|auto (accepted; results never depend on batching),\n"
        "--tasks list. --ctx and --seq-len mean --max-length. The table\n"
        "goes to stdout when stdout is a terminal, else to stderr.\n\n"
        TOOL_COMMON_HELP, groups);
}

enum { O_TASKS = 0x100, O_DATA, O_TASKFILE, O_LIMIT, O_FEWSHOT, O_LOGS, O_SHARD, O_COMPARE,
       O_MERGE, O_ADDBOS, O_MAXLEN, O_BATCH, O_NOREUSE, O_DELIM, O_LIST, O_TOK, O_TIMING, O_GEMM,
       O_MODEL_ARGS, O_BATCH_SIZE, O_DEVICE, O_LOGS_FLAG };

typedef struct args {
    const char *model, *tokenizer, *tasks, *data_dir, *output, *log_samples, *compare, *delim, *device;
    const char *pretrained;  /* --model_args pretrained=PATH (wins over the harness's --model hf) */
    const char **task_files;
    int n_task_files;
    double limit;
    int fewshot, shard_i, shard_n, merge, add_bos, max_len, batch_tokens, no_reuse, timing;
    lop_gemm gemm;
} args;

/* ---- files ---- */

static void write_atomic(const char *path, const char *text) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) tool_die(1, "%s: cannot write (%s)", path, strerror(errno));
    tmp_add(tmp);
    size_t n = strlen(text);
    int bad = fwrite(text, 1, n, f) != n;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) { unlink(tmp); tmp_del(tmp); tool_die(1, "%s: write failed", path); }
    tmp_del(tmp);
}

static cJSON *read_json(const char *path) {
    char *buf;
    size_t len;
    lop_err e;
    if (task_read_file(path, &buf, &len, &e)) tool_die_err(&e);
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!cJSON_IsObject(j)) tool_die(1, "%s: not a JSON object", path);
    return j;
}

/* --data-dir, else $LOP_EVAL_DATA, else ${XDG_DATA_HOME:-~/.local/share}/lop/eval: where
 * tools/lop-get-eval-data writes by default (never the test fixtures' folder). */
static const char *find_data_dir(const char *given) {
    if (given) return given;
    const char *env = getenv("LOP_EVAL_DATA");
    if (env && *env) return env;
    static char dflt[4096];
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) snprintf(dflt, sizeof dflt, "%s/lop/eval", xdg);
    else snprintf(dflt, sizeof dflt, "%s/.local/share/lop/eval", home && *home ? home : ".");
    return dflt;
}

/* ---- the evaluation ---- */

typedef struct prog_ctx { progress p; } prog_ctx;
static void on_progress(void *u, int done) { progress_update(&((prog_ctx *)u)->p, done); }

static void parse_shard(const char *s, int *i, int *n) {
    char *end;
    long a = strtol(s, &end, 10), b;
    if (end == s || *end != '/') tool_die_usage("--shard %s: expected I/N", s);
    const char *q = end + 1;
    b = strtol(q, &end, 10);
    if (end == q || *end || b < 1 || a < 0 || a >= b) tool_die_usage("--shard %s: expected I/N with 0 <= I < N", s);
    *i = (int)a;
    *n = (int)b;
}

static int model_is_gemma(const lop_model *m) {
    return m->cfg.family->harness_bos || strstr(m->cfg.model_type, "gemma") != NULL;
}

static char *tokenizer_path(const args *a) {
    if (a->tokenizer) return strdup(a->tokenizer);
    struct stat st;
    if (!stat(a->model, &st) && S_ISDIR(st.st_mode)) return strdup(a->model);
    char *p = strdup(a->model), *s = strrchr(p, '/');
    if (s) *s = 0;
    else { free(p); p = strdup("."); }
    return p;
}

/* --log_samples's file: results.json -> results_samples.jsonl, in the same folder (the harness
 * writes samples_<task>_<time>.jsonl beside its results; one file for all tasks keeps lop's format) */
static char *samples_beside(const char *output) {
    size_t n = strlen(output);
    if (n > 5 && !strcmp(output + n - 5, ".json")) n -= 5;
    else if (n > 6 && !strcmp(output + n - 6, ".jsonl")) n -= 6;
    char *p = malloc(n + 16);
    if (!p) tool_die(1, "out of memory");
    memcpy(p, output, n);
    strcpy(p + n, "_samples.jsonl");
    return p;
}

static void log_samples(const char *path, lop_task *tasks, int nt, ll_doc **docs, task_score **scores) {
    sbuf b = {0};
    for (int t = 0; t < nt; t++)
        for (int d = 0; d < tasks[t].n_docs; d++) {
            const task_doc *doc = &tasks[t].docs[d];
            const ll_doc *ld = &docs[t][d];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "task", tasks[t].name);
            cJSON_AddNumberToObject(o, "doc_id", doc->doc_id);
            cJSON_AddNumberToObject(o, "target", doc->gold);
            cJSON *args_ = cJSON_AddArrayToObject(o, "arguments");
            cJSON *resps = cJSON_AddArrayToObject(o, "resps");
            cJSON *ci = cJSON_AddArrayToObject(o, "ctx_ids");
            cJSON *ki = cJSON_AddArrayToObject(o, "cont_ids");
            for (int r = 0; r < ld->n; r++) {
                cJSON *pair = cJSON_CreateArray();
                cJSON_AddItemToArray(pair, cJSON_CreateString(task_req_ctx(doc, r)));
                cJSON_AddItemToArray(pair, cJSON_CreateString(task_req_cont(doc, r)));
                cJSON_AddItemToArray(args_, pair);
                cJSON *rr = cJSON_CreateArray();
                cJSON_AddItemToArray(rr, cJSON_CreateNumber(ld->req[r].ll));
                cJSON_AddItemToArray(rr, cJSON_CreateBool(ld->req[r].greedy));
                cJSON_AddItemToArray(resps, rr);
                cJSON_AddItemToArray(ci, cJSON_CreateIntArray(ld->req[r].ctx, ld->req[r].nctx));
                cJSON_AddItemToArray(ki, cJSON_CreateIntArray(ld->req[r].cont, ld->req[r].ncont));
            }
            const task_score *s = &scores[t][d];
            if (tasks[t].metrics & MET_ACC) cJSON_AddNumberToObject(o, "acc", s->acc);
            if (tasks[t].metrics & MET_ACC_NORM) cJSON_AddNumberToObject(o, "acc_norm", s->acc_norm);
            if (tasks[t].metrics & MET_PPL) cJSON_AddNumberToObject(o, "perplexity", s->ll);
            char *line = cJSON_PrintUnformatted(o);
            sb_puts(&b, line);
            sb_puts(&b, "\n");
            free(line);
            cJSON_Delete(o);
        }
    char *text = task_text_take(&b);
    write_atomic(path, text);
    free(text);
}

static void finish(res_set *rs, const args *a) {
    res_emit_lines(rs);
    /* the table is for people: on stdout when that is a terminal (as the harness prints it),
     * else on stderr so that stdout stays JSON lines */
    if (!tool_opt.quiet) res_print_table(rs, isatty(1) ? stdout : stderr);
    if (a->output) {
        cJSON *j = res_to_json(rs);
        char *s = cJSON_Print(j);
        sbuf b = {0};
        sb_puts(&b, s);
        sb_puts(&b, "\n");
        free(s);
        char *text = task_text_take(&b);
        write_atomic(a->output, text);
        free(text);
        cJSON_Delete(j);
    }
    if (a->compare) {
        cJSON *base = read_json(a->compare);
        lop_err e;
        if (res_compare(rs, base, a->compare, tool_opt.quiet ? NULL : stderr, &e)) tool_die_err(&e);
        cJSON_Delete(base);
    }
}

static void run_merge(const args *a, char **files, int n) {
    if (n < 1) tool_die_usage("--merge needs result files");
    if (n == 1 && !a->compare) tool_die_usage("--merge of one file (%s): merging needs the --output files of two or more shards", files[0]);
    res_set *in = calloc((size_t)n, sizeof(res_set)), out;
    lop_err e;
    for (int i = 0; i < n; i++) {
        cJSON *j = read_json(files[i]);
        if (res_from_json(&in[i], j, files[i], &e)) tool_die_err(&e);
        cJSON_Delete(j);
    }
    if (res_merge(&out, in, n, &e)) tool_die_err(&e);
    finish(&out, a);
    for (int i = 0; i < n; i++) res_free(&in[i]);
    free(in);
    res_free(&out);
}

/* A job (mpirun): rank r ran batches r, r+N, ... of the one-process plan (ll_opts part_i/n);
 * each request's numbers sit on one rank and zeros elsewhere, so a sum over ranks copies them
 * exactly: every rank then holds the one-process numbers, whatever --batch-tokens. */
static void gather_scores(ll_doc *all, int nd) {
    size_t n = 0, k = 0;
    for (int i = 0; i < nd; i++) n += (size_t)all[i].n;
    double *v = calloc(2 * (n ? n : 1), sizeof *v);
    if (!v) tool_die(1, "out of memory");
    for (int i = 0; i < nd; i++)
        for (int r = 0; r < all[i].n; r++, k += 2) { v[k] = all[i].req[r].ll; v[k + 1] = all[i].req[r].greedy; }
    lop_err e;
    job_ok(par_sum_f64(job_par, v, 2 * n, &e), &e);
    k = 0;
    for (int i = 0; i < nd; i++)
        for (int r = 0; r < all[i].n; r++, k += 2) { all[i].req[r].ll = v[k]; all[i].req[r].greedy = v[k + 1] != 0; }
    free(v);
}

static void run_eval(const args *a) {
    lop_err e;
    double t_start = tool_now_seconds();
    /* tasks first: a bad task name or data folder fails before the model loads */
    char **names = NULL;
    int nn = 0;
    if (a->tasks && task_expand(a->tasks, &names, &nn, &e)) tool_die_err(&e);
    int nt = nn + a->n_task_files;
    if (nt == 0) tool_die_usage("no tasks: give --tasks and/or --task-file");
    lop_task *tasks = calloc((size_t)nt, sizeof(lop_task));
    const char *dir = find_data_dir(a->data_dir);
    for (int i = 0; i < nn; i++)
        if (task_load(&tasks[i], names[i], dir, a->fewshot, &e)) {
            struct stat sd;
            if (stat(dir, &sd) || !S_ISDIR(sd.st_mode))
                tool_die(1, "%s: no eval data folder here (build it with: lop-get-eval-data%s%s; or pass --data-dir)",
                    dir, a->data_dir ? " " : "", a->data_dir ? dir : "");
            tool_die_err(&e);
        }
    prov_opt_str("tasks", a->tasks);
    prov_opt_str("data_dir", nn ? dir : NULL);
    prov_opt_num("limit", a->limit);
    prov_opt_num("num_fewshot", a->fewshot);
    prov_opt_bool("add_bos", a->add_bos);
    prov_opt_str("target_delimiter", a->delim);
    for (int i = 0; i < nn; i++) prov_input("eval data", tasks[i].source);
    for (int i = 0; i < a->n_task_files; i++) {
        if (task_load_file(&tasks[nn + i], a->task_files[i], a->delim, &e)) tool_die_err(&e);
        if (a->fewshot > 0) tool_die_usage("--num-fewshot: task files have no dev split (%s)", a->task_files[i]);
    }
    {   /* hostile jobs: the same command and the same documents on every rank */
        uint64_t fp = job_argv_fp();
        for (int i = 0; i < nt; i++) {
            fp = job_fp_mix(fp, tasks[i].name, strlen(tasks[i].name));
            fp = job_fp_mix(fp, &tasks[i].n_docs, sizeof tasks[i].n_docs);
        }
        job_same("options or eval data", fp);
    }
    for (int i = 0; i < nt; i++) {
        for (int j = 0; j < i; j++)
            if (!strcmp(tasks[i].name, tasks[j].name)) tool_die_usage("task %s given twice", tasks[i].name);
        task_select(&tasks[i], a->limit, a->shard_i, a->shard_n);
    }
    lop_model *m;
    if (lop_model_open(&m, a->model, &e)) tool_die_err(&e);
    tool_set_device(m, a->device);
    if (a->gemm != LOP_GEMM_F32 && lop_model_set_gemm(m, a->gemm) != a->gemm)
        tool_warn("--gemm bf16: this CPU has no AVX512-BF16; computing in float32");
    lop_tokenizer *tok;
    char *tp = tokenizer_path(a);
    if (tok_load(&tok, tp, &e)) tool_die_err(&e);
    free(tp);
    int gemma = model_is_gemma(m), add_bos = a->add_bos || gemma;
    int max_len = a->max_len > 0 ? a->max_len : m->cfg.max_pos > 0 ? m->cfg.max_pos : 2048;
    if (gemma && !a->add_bos) tool_note("model type %s: a BOS token is added (as the harness does for Gemma)", m->cfg.model_type);
    /* encode every request (the tokenizer is thread-safe) */
    int total_docs = 0;
    for (int t = 0; t < nt; t++) total_docs += tasks[t].n_docs;
    ll_doc *all = calloc((size_t)(total_docs ? total_docs : 1), sizeof(ll_doc));
    ll_doc **docs = calloc((size_t)nt, sizeof(ll_doc *));
    struct { int t, d; } *where = calloc((size_t)(total_docs ? total_docs : 1), sizeof *where);
    int k = 0;
    for (int t = 0; t < nt; t++) {
        docs[t] = all + k;
        for (int d = 0; d < tasks[t].n_docs; d++, k++) {
            where[k].t = t;
            where[k].d = d;
            all[k].n = task_doc_nreq(&tasks[t].docs[d]);
            all[k].req = calloc((size_t)all[k].n, sizeof(ll_req));
        }
    }
    int failed = -1;
    lop_err fe = {0};
    double t_tok = tool_now_seconds();
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < total_docs; i++) {
        const task_doc *doc = &tasks[where[i].t].docs[where[i].d];
        for (int r = 0; r < all[i].n; r++) {
            lop_err le;
            if (ll_encode(tok, task_req_ctx(doc, r), task_req_cont(doc, r), add_bos, &all[i].req[r], &le)) {
#pragma omp critical
                if (failed < 0 || i < failed) {
                    failed = i;
                    fe = le;
                    lop_wrap(&fe, "%s document %d", tasks[where[i].t].name, doc->doc_id);
                }
                break;
            }
        }
    }
    if (failed >= 0) tool_die_err(&fe);
    t_tok = tool_now_seconds() - t_tok;
    /* score */
    prog_ctx pc;
    progress_start(&pc.p, "scoring", total_docs, "items");
    ll_opts lo = {.max_len = max_len, .batch_tokens = a->batch_tokens, .no_reuse = a->no_reuse,
                  .part_i = job_rank, .part_n = job_ranks, .progress = on_progress, .user = &pc};
    ll_stats st = {0};
    double t_score = tool_now_seconds();
    if (ll_score(m, all, total_docs, &lo, &st, &e)) tool_die_err(&e);
    if (job_ranks > 1) gather_scores(all, total_docs);
    t_score = tool_now_seconds() - t_score;
    progress_end(&pc.p);
    /* per-document metrics */
    res_set rs = {0};
    rs.t = calloc((size_t)nt, sizeof(res_task));
    rs.nt = nt;
    task_score **scores = calloc((size_t)nt, sizeof(task_score *));
    for (int t = 0; t < nt; t++) {
        res_task *r = &rs.t[t];
        lop_task *tk = &tasks[t];
        snprintf(r->name, sizeof r->name, "%s", tk->name);
        snprintf(r->group, sizeof r->group, "%s", tk->group);
        snprintf(r->source, sizeof r->source, "%s", tk->source);
        snprintf(r->delim, sizeof r->delim, "%s", t >= nn && a->delim ? a->delim : " ");
        r->kind = tk->kind;
        r->metrics = tk->metrics;
        r->version = tk->version;
        r->num_fewshot = tk->num_fewshot;
        r->n_original = tk->n_original;
        res_task_alloc(r, tk->n_docs);
        scores[t] = calloc((size_t)(tk->n_docs ? tk->n_docs : 1), sizeof(task_score));
        for (int d = 0; d < tk->n_docs; d++) {
            const ll_doc *ld = &docs[t][d];
            double *ll = malloc(sizeof(double) * (size_t)(ld->n ? ld->n : 1));
            uint8_t *g = malloc((size_t)(ld->n ? ld->n : 1));
            if (!ll || !g) tool_die(1, "out of memory");
            for (int q = 0; q < ld->n; q++) { ll[q] = ld->req[q].ll; g[q] = ld->req[q].greedy; }
            task_score_doc(tk, &tk->docs[d], ll, g, &scores[t][d]);
            free(ll);
            free(g);
            r->doc_id[d] = tk->docs[d].doc_id;
            r->acc[d] = scores[t][d].acc;
            r->acc_norm[d] = scores[t][d].acc_norm;
            r->ll[d] = scores[t][d].ll;
        }
    }
    /* groups asked for by name */
    if (a->tasks) {
        char *copy = strdup(a->tasks), *save = NULL;
        for (char *g = strtok_r(copy, ", ", &save); g; g = strtok_r(NULL, ", ", &save))
            for (int i = 0; i < task_n_groups(); i++)   /* the one table of groups (task.c) */
                if (!strcmp(g, task_group_name(i))) {
                    rs.groups = realloc(rs.groups, sizeof(char *) * (size_t)(rs.ng + 1));
                    rs.groups[rs.ng++] = strdup(g);
                    break;
                }
        free(copy);
    }
    rs.seconds = tool_now_seconds() - t_start;
    rs.config = cJSON_CreateObject();
    cJSON_AddStringToObject(rs.config, "model", "lop");
    char margs[PATH_MAX + 32];
    snprintf(margs, sizeof margs, "pretrained=%s", a->model);
    cJSON_AddStringToObject(rs.config, "model_args", margs);
    cJSON_AddNumberToObject(rs.config, "batch_tokens", a->batch_tokens > 0 ? a->batch_tokens : 2048);
    if (a->limit > 0) cJSON_AddNumberToObject(rs.config, "limit", a->limit);
    else cJSON_AddNullToObject(rs.config, "limit");
    cJSON_AddNumberToObject(rs.config, "bootstrap_iters", 0);
    cJSON_AddBoolToObject(rs.config, "add_bos_token", add_bos);
    cJSON_AddNumberToObject(rs.config, "max_length", max_len);
    if (a->shard_n > 1) {
        char sh[64];
        snprintf(sh, sizeof sh, "%d/%d", a->shard_i, a->shard_n);
        cJSON_AddStringToObject(rs.config, "shard", sh);
    } else cJSON_AddNullToObject(rs.config, "shard");
    cJSON_AddStringToObject(rs.config, "data_dir", dir);
    if (job_rank > 0) goto done;   /* a job: rank 0 writes */
    finish(&rs, a);
    if (a->log_samples) log_samples(a->log_samples, tasks, nt, docs, scores);
    double items_s = t_score > 0 ? total_docs / t_score : 0;
    tool_note("%d items in %.2f s (%.2f items/s; tokenizing %.2f s; %.0f%% of the scoring time in the forward; "
         "%lld rows run of %lld without prefix reuse)", total_docs, t_score, items_s, t_tok,
         t_score > 0 ? 100 * st.forward_s / t_score : 0, (long long)st.rows, (long long)st.rows_plain);
    if (a->timing) {
        cJSON *o = cJSON_CreateObject();
        cJSON *tm = cJSON_AddObjectToObject(o, "timing");
        cJSON_AddNumberToObject(tm, "items", total_docs);
        cJSON_AddNumberToObject(tm, "seconds", t_score);
        cJSON_AddNumberToObject(tm, "items_per_s", items_s);
        cJSON_AddNumberToObject(tm, "tokenize_s", t_tok);
        cJSON_AddNumberToObject(tm, "forward_s", st.forward_s);
        cJSON_AddNumberToObject(tm, "forward_share", t_score > 0 ? st.forward_s / t_score : 0);
        cJSON_AddNumberToObject(tm, "rows", (double)st.rows);
        cJSON_AddNumberToObject(tm, "rows_without_reuse", (double)st.rows_plain);
        cJSON_AddNumberToObject(tm, "scored_tokens", (double)st.scored);
        cJSON_AddNumberToObject(tm, "forwards", st.forwards);
        cJSON_AddNumberToObject(tm, "peak_rss_bytes", (double)tool_peak_rss_bytes());
        tool_emit(o);
    }
done:
    for (int i = 0; i < total_docs; i++) {
        for (int r = 0; r < all[i].n; r++) ll_req_free(&all[i].req[r]);
        free(all[i].req);
    }
    for (int t = 0; t < nt; t++) { task_free(&tasks[t]); free(scores[t]); }
    free(scores); free(all); free(docs); free(where); free(tasks);
    task_names_free(names, nn);
    res_free(&rs);
    tok_free(tok);
    lop_model_free(m);
}

/* --model_args pretrained=PATH[,tokenizer=PATH][,max_length=N][,add_bos_token=True][,dtype=..]:
 * the harness's HF backend arguments. dtype is accepted for scripts' sake: lop computes in
 * float32 (or --gemm bf16), whatever the weights' dtype; other keys are noted and ignored. */
static void model_args(args *a, const char *spec) {
    char *s = strdup(spec), *save = NULL;
    if (!s) tool_die(1, "out of memory");
    for (char *kv = strtok_r(s, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv) tool_die_usage("--model_args: expected key=value, not '%s'", kv);
        *eq = 0;
        const char *k = kv, *v = eq + 1;
        if (!strcmp(k, "pretrained")) a->pretrained = strdup(v);
        else if (!strcmp(k, "tokenizer")) a->tokenizer = strdup(v);
        else if (!strcmp(k, "max_length")) a->max_len = (int)opt_int("--model_args max_length", v, 2, 1 << 24);
        else if (!strcmp(k, "add_bos_token")) a->add_bos = !strcasecmp(v, "true") || !strcmp(v, "1");
        else if (!strcmp(k, "dtype") || !strcmp(k, "torch_dtype")) {
            if (strcmp(v, "auto") && strcmp(v, "float32") && strcmp(v, "bfloat16") && strcmp(v, "float16"))
                tool_die_usage("--model_args dtype=%s: expected auto, float32, bfloat16 or float16", v);
        } else tool_note("--model_args %s=%s does not apply to lop (ignored)", k, v);
    }
    free(s);
}

int main(int argc, char **argv) {
    tool_init_job("lm-eval", argc, argv);
    args a = {0};
    a.delim = " ";
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'}, {"output", required_argument, 0, 'o'},
        {"tasks", required_argument, 0, O_TASKS}, {"data-dir", required_argument, 0, O_DATA},
        {"task-file", required_argument, 0, O_TASKFILE}, {"limit", required_argument, 0, O_LIMIT},
        {"num-fewshot", required_argument, 0, O_FEWSHOT}, {"log-samples", required_argument, 0, O_LOGS},
        {"shard", required_argument, 0, O_SHARD}, {"compare", required_argument, 0, O_COMPARE},
        {"merge", no_argument, 0, O_MERGE}, {"add-bos", no_argument, 0, O_ADDBOS},
        {"max-length", required_argument, 0, O_MAXLEN}, {"batch-tokens", required_argument, 0, O_BATCH},
        {"no-reuse", no_argument, 0, O_NOREUSE}, {"target-delimiter", required_argument, 0, O_DELIM},
        {"list-tasks", no_argument, 0, O_LIST}, {"tokenizer", required_argument, 0, O_TOK},
        {"timing", no_argument, 0, O_TIMING}, {"gemm", required_argument, 0, O_GEMM},
        {"device", required_argument, 0, O_DEVICE},
        /* lm-evaluation-harness's spellings, so its command lines run as they are */
        {"model_args", required_argument, 0, O_MODEL_ARGS}, {"num_fewshot", required_argument, 0, O_FEWSHOT},
        {"output_path", required_argument, 0, 'o'}, {"batch_size", required_argument, 0, O_BATCH_SIZE},
        {"ctx", required_argument, 0, O_MAXLEN}, {"seq-len", required_argument, 0, O_MAXLEN},
        {"log_samples", no_argument, 0, O_LOGS_FLAG},
        TOOL_COMMON_LONGOPTS, {0, 0, 0, 0}};
    int c, logs_flag = 0;
    while ((c = getopt_long(argc, argv, "m:o:" TOOL_COMMON_SHORTOPTS, lo, NULL)) != -1) {
        if (tool_common_opt(c, optarg, usage)) continue;
        switch (c) {
        case 'm': a.model = optarg; break;
        case 'o': a.output = optarg; break;
        case O_TASKS:
            if (!strcmp(optarg, "list")) { /* the harness's `--tasks list` */
                for (const char *const *n = task_builtin_names(); *n; n++) printf("%s\n", *n);
                return 0;
            }
            a.tasks = optarg;
            break;
        case O_MODEL_ARGS: model_args(&a, optarg); break;
        case O_BATCH_SIZE: /* results never depend on batching; --batch-tokens sizes the forward */
            if (strncmp(optarg, "auto", 4)) opt_int("--batch_size", optarg, 1, 1 << 20);
            break;
        case O_DATA: a.data_dir = optarg; break;
        case O_TASKFILE:
            a.task_files = realloc(a.task_files, sizeof(char *) * (size_t)(a.n_task_files + 1));
            a.task_files[a.n_task_files++] = optarg;
            break;
        case O_LIMIT: a.limit = opt_double("--limit", optarg, 1e-12, 1e12);
            if (a.limit >= 1 && a.limit != floor(a.limit)) tool_die_usage("--limit %s: a count must be an integer", optarg);
            break;
        case O_FEWSHOT: a.fewshot = (int)opt_int("--num-fewshot", optarg, 0, 1000); break;
        case O_LOGS: a.log_samples = optarg; break;
        case O_LOGS_FLAG: logs_flag = 1; break;
        case O_SHARD: parse_shard(optarg, &a.shard_i, &a.shard_n); break;
        case O_COMPARE: a.compare = optarg; break;
        case O_MERGE: a.merge = 1; break;
        case O_ADDBOS: a.add_bos = 1; break;
        case O_MAXLEN: a.max_len = (int)opt_int("--max-length", optarg, 2, 1 << 24); break;
        case O_BATCH: a.batch_tokens = (int)opt_int("--batch-tokens", optarg, 1, 1 << 24); break;
        case O_NOREUSE: a.no_reuse = 1; break;
        case O_DELIM: a.delim = optarg; break;
        case O_TOK: a.tokenizer = optarg; break;
        case O_TIMING: a.timing = 1; break;
        case O_GEMM:
            if (lop_gemm_parse(optarg, &a.gemm)) tool_die_usage("--gemm: expected f32 or bf16, not '%s'", optarg);
            break;
        case O_DEVICE: a.device = optarg; break;
        case O_LIST: {
            for (const char *const *n = task_builtin_names(); *n; n++) printf("%s\n", *n);
            return 0;
        }
        default: tool_die_usage("unknown option (see --help)");
        }
    }
    /* the harness's --model names a backend (hf, vllm, ...) and --model_args the weights */
    if (a.pretrained) a.model = a.pretrained;
    /* every output checked before the model loads or a task runs */
    out_input("model", a.model);
    out_input("tokenizer", a.tokenizer);
    out_input("compare", a.compare);
    if (!a.merge) out_input("eval data", find_data_dir(a.data_dir));
    for (int i = 0; i < a.n_task_files; i++) out_input("task file", a.task_files[i]);
    if (a.merge) for (int i = optind; i < argc; i++) out_input("results", argv[i]);
    if (logs_flag) {
        /* the harness's --log_samples is a switch: the samples go beside --output_path */
        if (a.log_samples) tool_die_usage("--log_samples (beside --output_path) and --log-samples FILE: give one");
        if (!a.output || !strcmp(a.output, "-")) tool_die_usage("--log_samples needs --output_path FILE (the samples go beside it)");
        a.log_samples = samples_beside(a.output);
    }
    a.output = out_output("-o", a.output, OUT_FILE);
    a.log_samples = out_output("--log-samples", a.log_samples, OUT_FILE);
    if (job_ranks > 1) {   /* a job: the ranks are the shards */
        if (a.shard_n > 1) tool_die_usage("--shard: under mpirun the ranks are the shards (rank r of N evaluates shard r/N)");
        if (a.merge) tool_die_usage("--merge runs as one process, not under mpirun");
        if (a.device && strcmp(a.device, "cpu")) tool_die_usage("--device %s: GPU jobs under mpirun come later (docs/mpi.md)", a.device);
    }
    if (!job_rank) out_check();   /* rank 0 writes; the others wait for its decision */
    job_sync();
    tool_apply_threads();
    if (a.merge) {
        if (a.model || a.tasks || a.n_task_files) tool_die_usage("--merge combines result files: no -m, --tasks or --task-file");
        run_merge(&a, argv + optind, argc - optind);
        return 0;
    }
    if (optind < argc) tool_die_usage("unexpected argument '%s'", argv[optind]);
    if (!a.model) tool_die_usage("no model: give -m MODEL (or --model_args pretrained=PATH)");
    if (!a.tasks && !a.n_task_files) tool_die_usage("no tasks: give --tasks LIST and/or --task-file FILE");
    run_eval(&a);
    free(a.task_files);
    return 0;
}
