/* ppl — perplexity of a model on a text: HF strided windows (default), llama.cpp's chunks
 * (--llama-cpp) or one sequence per line (--lines). Saves top-k log-probs (--save-logits) and
 * compares with a saved base run (--kl-base): KL divergence, top-1 agreement, ppl ratio. */
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "blas_tune.h"
#include "model.h"
#include "textio.h"
#include "plan.h"
#include "tokenizer.h"
#include "outpath.h"
#include "tool.h"
#include "kl.h"
#include "provenance.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: ppl -m MODEL [options] [FILE|-]\n"
        "Perplexity of MODEL on the text in FILE (default: stdin).\n\n"
        "  -m, --model PATH      HF model folder, .safetensors file, or - (stream)\n"
        "  -c, --ctx N           window length in tokens (default: the model's context, at most 4096);\n"
        "                        --seq-len and --max-length are the same option\n"
        "      --data FILE       the text (the same as the FILE argument)\n"
        "  -s, --stride N        window step (default: ctx); each window scores only tokens no\n"
        "                        earlier window scored (Hugging Face's strided perplexity)\n"
        "      --llama-cpp       llama.cpp's rule: chunks of ctx tokens, BOS at each chunk's start,\n"
        "                        only each chunk's second half scored\n"
        "      --lines           each line is its own sequence (BOS + line; windows if longer than ctx)\n"
        "      --per-token       also print {\"pos\",\"id\",\"nll\"} for every scored token\n"
        "      --save-logits FILE  store the top-k log-probs of every scored token (lop's top-k\n"
        "                        format, as kd-train --save-teacher; zstd blocks)\n"
        "      --kl-base FILE    compare with a base run saved by --save-logits on the same tokens\n"
        "      --topk K          k for --save-logits (default 64)\n"
        "      --batch-tokens N  tokens per forward pass (default: max(ctx, 2048))\n"
        "      --max-tokens N    stop after scoring about N tokens (0: all)\n"
        "      --gemm f32|bf16   precision of the matrix products (default f32). bf16 rounds the\n"
        "                        activations to bf16 (weights already are) with float32 sums, on\n"
        "                        AVX512-BF16 CPUs (else f32, with a warning). Measured: per-token NLL\n"
        "                        within 0.11 nats of f32 (mean 0.004-0.015) on the fixture models;\n"
        "                        stories260K ppl 3.8639 vs 3.8638. On a GPU: bf16 tensor-core GEMMs\n"
        TOOL_DEVICE_HELP
        TOOL_COMMON_HELP);
}

enum { O_LLAMA = 0x100, O_LINES, O_PER_TOKEN, O_SAVE, O_KL, O_TOPK, O_BATCH, O_MAXTOK, O_GEMM, O_DATA, O_DEVICE };

typedef struct stats { double sum, sum2; int64_t n; } stats;
static void stat_add(stats *s, double x) { s->sum += x; s->sum2 += x * x; s->n++; }
static double stat_mean(const stats *s) { return s->n ? s->sum / s->n : 0; }
static double stat_se(const stats *s) {
    if (s->n < 2) return 0;
    double m = stat_mean(s), v = (s->sum2 / s->n - m * m) * s->n / (s->n - 1);
    return v > 0 ? sqrt(v / s->n) : 0;
}

/* the KL comparison: the base rows of one forward, and the current model's logits at the
 * base's top-k ids (gathered by the head's block callback) */
typedef struct klctx {
    int k;
    int *rec_of_row;      /* [N] slot of a packed row, -1 */
    ppl_base_row *rec;    /* [slots] (ids/lp point into copies below) */
    int32_t *sid;         /* [slots, k] base ids, ascending */
    float *blp;           /* [slots, k] base log-probs */
    float *cur;           /* [slots, k] current logits at the base ids */
} klctx;

static int kl_block(void *u, int v0, int nv, const float *lg, int rows, const int *row) {
    klctx *c = u;
    for (int r = 0; r < rows; r++) {
        int s = c->rec_of_row[row[r]];
        if (s < 0) continue;
        const int32_t *ids = c->sid + (size_t)s * c->k;
        int lo = 0, hi = c->k; /* first id >= v0 */
        while (lo < hi) { int mid = (lo + hi) / 2; if (ids[mid] < v0) lo = mid + 1; else hi = mid; }
        for (int j = lo; j < c->k && ids[j] < v0 + nv; j++)
            c->cur[(size_t)s * c->k + j] = lg[(size_t)r * nv + ids[j] - v0];
    }
    return 0;
}

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    tool_blas_reexec(argv);
    tool_init("ppl", argc, argv);
    const char *model = NULL, *save = NULL, *klbase = NULL, *data = NULL, *device = NULL;
    int ctx = 0, stride = 0, llama = 0, lines = 0, per_token = 0, topk = 64;
    long long batch_tokens = 0, max_tokens = 0;
    lop_gemm gemm = LOP_GEMM_F32;
    static struct option lo[] = {
        {"model", required_argument, 0, 'm'}, {"ctx", required_argument, 0, 'c'},
        /* one vocabulary across the tools: --seq-len / --max-length mean --ctx, --data the text */
        {"seq-len", required_argument, 0, 'c'}, {"max-length", required_argument, 0, 'c'},
        {"data", required_argument, 0, O_DATA},
        {"stride", required_argument, 0, 's'}, {"llama-cpp", no_argument, 0, O_LLAMA},
        {"lines", no_argument, 0, O_LINES}, {"per-token", no_argument, 0, O_PER_TOKEN},
        {"save-logits", required_argument, 0, O_SAVE}, {"kl-base", required_argument, 0, O_KL},
        {"topk", required_argument, 0, O_TOPK}, {"batch-tokens", required_argument, 0, O_BATCH},
        {"max-tokens", required_argument, 0, O_MAXTOK}, {"gemm", required_argument, 0, O_GEMM},
        {"device", required_argument, 0, O_DEVICE}, TOOL_COMMON_LONGOPTS, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "m:c:s:" TOOL_COMMON_SHORTOPTS, lo, NULL)) != -1) {
        if (tool_common_opt(c, optarg, usage)) continue;
        switch (c) {
        case 'm': model = optarg; break;
        case 'c': ctx = (int)opt_int("--ctx", optarg, 2, 1 << 20); break;
        case 's': stride = (int)opt_int("--stride", optarg, 1, 1 << 20); break;
        case O_LLAMA: llama = 1; break;
        case O_LINES: lines = 1; break;
        case O_DATA: data = optarg; break;
        case O_PER_TOKEN: per_token = 1; break;
        case O_SAVE: save = optarg; break;
        case O_KL: klbase = optarg; break;
        case O_TOPK: topk = (int)opt_int("--topk", optarg, 1, 4096); break;
        case O_BATCH: batch_tokens = opt_int("--batch-tokens", optarg, 1, 1 << 24); break;
        case O_MAXTOK: max_tokens = opt_int("--max-tokens", optarg, 0, INT64_MAX); break;
        case O_GEMM:
            if (lop_gemm_parse(optarg, &gemm)) tool_die_usage("--gemm: expected f32 or bf16, not '%s'", optarg);
            break;
        case O_DEVICE: device = optarg; break;
        default: tool_die_usage("unknown option");
        }
    }
    if (!model) tool_die_usage("-m/--model is required");
    if (optind + 1 < argc || (data && optind < argc)) tool_die_usage("one input file at most");
    if (llama && lines) tool_die_usage("--llama-cpp and --lines exclude each other");
    if (llama && stride) tool_die_usage("--llama-cpp has no --stride");
    const char *input = data ? data : optind < argc ? argv[optind] : "-";
    out_input("model", model);
    out_input("text", input);
    out_input("kl-base", klbase);
    save = out_output("--save-logits", save, OUT_FILE);
    out_check();
    tool_apply_threads();

    lop_err e = {0};
    lop_model *m;
    if (lop_model_open(&m, model, &e)) tool_die_err(&e);
    tool_set_device(m, device);
    if (gemm != LOP_GEMM_F32 && lop_model_set_gemm(m, gemm) != gemm)
        tool_warn("--gemm bf16: this CPU has no AVX512-BF16; computing in float32");
    const char *tokdir = m->st->source_dir ? m->st->source_dir : model;
    lop_tokenizer *tk;
    if (tok_load(&tk, tokdir, &e)) tool_die_err(&e);
    if (ctx) {
        char what[48];
        snprintf(what, sizeof what, "--ctx %d", ctx);
        tool_check_context(what, ctx, m->cfg.max_pos);
    }
    else ctx = m->cfg.max_pos > 0 && m->cfg.max_pos < 4096 ? m->cfg.max_pos : 4096;
    if (!stride) stride = ctx;
    if (stride > ctx) tool_die_usage("--stride %d is larger than --ctx %d", stride, ctx);
    if (!batch_tokens) batch_tokens = ctx > 2048 ? ctx : 2048;
    if (batch_tokens < ctx) batch_tokens = ctx;
    prov_opt_num("ctx", ctx); prov_opt_num("stride", stride);
    prov_opt_str("mode", lines ? "lines" : llama ? "llama-cpp" : "windows");
    prov_opt_str("gemm", gemm == LOP_GEMM_BF16 ? "bf16" : "f32");
    prov_opt_str("text", input);

    /* tokens and the plan */
    size_t len;
    char *text;
    if (text_read(input, &text, &len, &e)) tool_die_err(&e);
    plan pl = {0};
    int32_t **line_ids = NULL;
    int32_t *ids = NULL;
    size_t nids = 0;
    int nlines = 0;
    if (lines) {
        char **ls = NULL;
        size_t *ll = NULL;
        int cap = 0;
        for (char *p = text, *end = text + len; p < end;) {
            char *nl = memchr(p, '\n', end - p);
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            size_t n2 = n;
            if (n2 && p[n2 - 1] == '\r') n2--;
            if (n2) {
                if (nlines == cap) {
                    cap = cap ? cap * 2 : 1024;
                    ls = realloc(ls, sizeof *ls * cap);
                    ll = realloc(ll, sizeof *ll * cap);
                    if (!ls || !ll) tool_die(1, "out of memory");
                }
                ls[nlines] = p;
                ll[nlines++] = n2;
            }
            p += n + 1;
        }
        line_ids = calloc(nlines ? nlines : 1, sizeof *line_ids);
        size_t *ln = calloc(nlines ? nlines : 1, sizeof *ln);
        int bad = -1;
        lop_err le = {0};
        #pragma omp parallel for schedule(dynamic, 16)
        for (int i = 0; i < nlines; i++) {
            lop_err e2;
            if (bad >= 0) continue;
            if (tok_encode(tk, ls[i], ll[i], 1, &line_ids[i], &ln[i], &e2)) {
                #pragma omp critical
                if (bad < 0) { bad = i; le = e2; }
            }
        }
        if (bad >= 0) tool_die(1, "line %d: %s", bad + 1, le.msg);
        for (int i = 0; i < nlines; i++)
            if (plan_windows(&pl, line_ids[i], (int64_t)ln[i], ctx, stride, i + 1)) tool_die(1, "out of memory");
        free(ls); free(ll); free(ln);
    } else {
        if (tok_encode(tk, text, len, 1, &ids, &nids, &e)) tool_die_err(&e);
        if (llama) {
            if ((int64_t)nids < 2 * (int64_t)ctx)
                tool_die(1, "%s: %zu tokens; --llama-cpp needs at least 2 * ctx = %d", input, nids, 2 * ctx);
            if (plan_llama_cpp(&pl, ids, (int64_t)nids, ctx, tok_adds_bos(tk) ? tok_bos(tk) : -1)) tool_die(1, "out of memory");
        } else if (plan_windows(&pl, ids, (int64_t)nids, ctx, stride, 0)) {
            tool_die(1, "out of memory");
        }
    }
    free(text);
    /* the tokenizer (a Gemma tokenizer.json parses into ~130 MB) is done: give its memory back
     * before the weights are paged in, so peak RSS is weights + activations */
    tok_free(tk);
    tk = NULL;
    malloc_trim(0);
    int64_t total = 0;
    for (int i = 0; i < pl.n; i++) total += pl.s[i].n - pl.s[i].first;
    if (total == 0) tool_die(1, "%s: no token to score (the text has fewer than 2 tokens)", input);
    if (max_tokens > 0 && total > max_tokens) {
        /* forward only what is scored: drop the segments past the cap and cut the last one
         * (a causal model's earlier positions do not depend on later ones) */
        total = max_tokens;
        int64_t need = total;
        for (int i = 0; i < pl.n; i++) {
            int64_t sc = pl.s[i].n - pl.s[i].first;
            if (sc >= need) {
                pl.s[i].n = pl.s[i].first + (int)need;
                pl.n = i + 1;
                break;
            }
            need -= sc;
        }
    }

    /* outputs */
    ppl_saver *tw = NULL;
    ppl_base *tr = NULL;
    int kb = 0, has_base_lp = 1;
    if (topk > m->cfg.vocab) topk = m->cfg.vocab;
    if (save && ppl_saver_open(&tw, save, m->cfg.vocab, topk, model, &e)) tool_die_err(&e);
    if (klbase && ppl_base_open(&tr, klbase, m->cfg.vocab, &kb, &e)) tool_die_err(&e);
    int K = tw ? topk : 0;
    stats st = {0}, kls = {0}, base = {0};
    int64_t top1_same = 0;
    float *klv = NULL;
    int64_t klv_n = 0, klv_cap = 0;

    int N = (int)batch_tokens;
    int32_t *bids = malloc(sizeof(int32_t) * N), *tg = malloc(sizeof(int32_t) * N), *am = malloc(sizeof(int32_t) * N);
    float *lp = malloc(sizeof(float) * N), *lse = malloc(sizeof(float) * N);
    uint8_t *sel = malloc(N);
    int *blen = malloc(sizeof(int) * N);
    int32_t *kid = K ? malloc(sizeof(int32_t) * (size_t)N * K) : NULL, *counted = malloc(sizeof(int32_t) * N);
    double *klw = tr ? malloc(sizeof(double) * 5 * ((size_t)kb + 1)) : NULL;
    float *klg = K ? malloc(sizeof(float) * (size_t)N * K) : NULL;
    klctx kc = {0};
    if (tr) {
        kc.k = kb;
        kc.rec_of_row = malloc(sizeof(int) * N);
        kc.rec = malloc(sizeof(ppl_base_row) * N);
        kc.sid = malloc(sizeof(int32_t) * (size_t)N * kb);
        kc.blp = malloc(sizeof(float) * (size_t)N * kb);
        kc.cur = malloc(sizeof(float) * (size_t)N * kb);
        if (!kc.rec_of_row || !kc.rec || !kc.sid || !kc.blp || !kc.cur || !klw) tool_die(1, "out of memory");
    }
    if (!bids || !tg || !am || !lp || !lse || !sel || !blen || !counted || (K && (!kid || !klg))) tool_die(1, "out of memory");

    progress pr;
    progress_start(&pr, "ppl", (double)total, "tok");
    double t0 = tool_now_seconds();
    int64_t done = 0;
    double flops = 0;
    for (int s0 = 0; s0 < pl.n && done < total;) {
        /* pack segments into one batch */
        int B = 0, rows = 0, s1 = s0;
        while (s1 < pl.n && (B == 0 || rows + pl.s[s1].n <= N)) {
            const seg *s = &pl.s[s1];
            for (int t = 0; t < s->n; t++) {
                int r = rows + t;
                bids[r] = t == 0 && s->bos >= 0 ? s->bos : s->ids[t];
                int scored = t + 1 < s->n && t + 1 >= s->first;
                tg[r] = scored ? s->ids[t + 1] : -1;
                sel[r] = (uint8_t)scored;
            }
            blen[B++] = s->n;
            rows += s->n;
            s1++;
        }
        int slots = 0;
        if (tr) { /* the base records for this batch's scored rows, in order */
            for (int r = 0; r < rows; r++) {
                kc.rec_of_row[r] = -1;
                if (!sel[r]) continue;
                if (done + slots >= total) continue;   /* past --max-tokens: not compared */
                ppl_base_row rec;
                int got = ppl_base_next(tr, &rec, &e);
                if (got < 0) tool_die_err(&e);
                if (got == 0) tool_die(1, "%s: fewer saved tokens than this run scores", klbase);
                if (rec.target != tg[r]) tool_die(1, "%s: saved token %lld is id %d, this run's is %d (not the same text/tokenizer/options?)",
                                             klbase, (long long)(done + slots), rec.target, tg[r]);
                int sl = slots++;
                kc.rec_of_row[r] = sl;
                /* copies: the next block read may replace the rows ppl_base_next points into */
                memcpy(kc.sid + (size_t)sl * kb, rec.id, sizeof(int32_t) * kb);
                memcpy(kc.blp + (size_t)sl * kb, rec.lp, sizeof(float) * kb);
                rec.id = kc.sid + (size_t)sl * kb;
                rec.lp = kc.blp + (size_t)sl * kb;
                kc.rec[sl] = rec;
                for (int j = 0; j < kb; j++) kc.cur[(size_t)sl * kb + j] = NAN;
            }
        }
        lop_batch b = {.B = B, .len = blen, .ids = bids};
        lop_head_req h = {.select = sel, .target = tg, .target_logprob = lp, .lse = lse,
                          .argmax = am, .topk = K, .topk_id = kid, .topk_logit = klg};
        if (tr) { h.block = kl_block; h.user = &kc; }
        if (lop_forward(m, &b, NULL, &h, &e)) tool_die_err(&e);
        for (int i = 0; i < B; i++) flops += lop_forward_flops(m, blen[i], (blen[i] + 1) / 2.0);
        /* collect, in order */
        int r = 0;
        for (int si = s0; si < s1; si++) {
            const seg *s = &pl.s[si];
            for (int t = 0; t < s->n; t++, r++) {
                counted[r] = -1;
                if (!sel[r] || done >= total) continue;
                counted[r] = tg[r];
                double nll = -lp[r];
                stat_add(&st, nll);
                done++;
                if (per_token) {
                    cJSON *o = cJSON_CreateObject();
                    if (s->line) cJSON_AddNumberToObject(o, "line", s->line);
                    cJSON_AddNumberToObject(o, "pos", (double)(s->pos0 + t + 1));
                    cJSON_AddNumberToObject(o, "id", tg[r]);
                    cJSON_AddNumberToObject(o, "nll", nll);
                    tool_emit(o);
                }
                if (tr) {
                    int sl = kc.rec_of_row[r];
                    const ppl_base_row *br = &kc.rec[sl];
                    double kl = ppl_row_kl(br, kb, kc.cur + (size_t)sl * kb, lse[r], klw);
                    stat_add(&kls, kl);
                    if (isnan(br->target_lp)) has_base_lp = 0;
                    else stat_add(&base, -br->target_lp);
                    top1_same += am[r] == br->top1;
                    if (klv_n == klv_cap) {
                        klv_cap = klv_cap ? klv_cap * 2 : 4096;
                        klv = realloc(klv, sizeof(float) * klv_cap);
                        if (!klv) tool_die(1, "out of memory");
                    }
                    klv[klv_n++] = (float)kl;
                }
            }
        }
        if (tw && ppl_saver_put(tw, rows, bids, counted, kid, klg, lse, lp, &e)) tool_die_err(&e);
        progress_update(&pr, (double)done);
        s0 = s1;
    }
    progress_end(&pr);
    double secs = tool_now_seconds() - t0;
    if (tr) {
        ppl_base_row rec;
        int more = done >= total && max_tokens == 0 ? ppl_base_next(tr, &rec, &e) : 0;
        if (more < 0) tool_die_err(&e);
        if (more > 0) tool_die(1, "%s: more saved tokens than this run scores", klbase);
    }
    if (tw && ppl_saver_finish(tw, &e)) tool_die_err(&e);
    double mean = stat_mean(&st), se = stat_se(&st);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "ppl", exp(mean));
    cJSON_AddNumberToObject(o, "nll", mean);
    cJSON_AddNumberToObject(o, "tokens", (double)st.n);
    cJSON_AddNumberToObject(o, "stderr", se);
    cJSON_AddNumberToObject(o, "ppl_stderr", exp(mean) * se);
    cJSON_AddStringToObject(o, "mode", lines ? "lines" : llama ? "llama-cpp" : "windows");
    cJSON_AddNumberToObject(o, "ctx", ctx);
    cJSON_AddStringToObject(o, "gemm", lop_model_gemm(m) == LOP_GEMM_BF16 ? "bf16" : "f32");
    cJSON_AddStringToObject(o, "device", lop_model_device(m));
    if (!llama) cJSON_AddNumberToObject(o, "stride", stride);
    if (lines) cJSON_AddNumberToObject(o, "lines", nlines);
    cJSON_AddNumberToObject(o, "seconds", secs);
    cJSON_AddNumberToObject(o, "tokens_per_s", secs > 0 ? st.n / secs : 0);
    cJSON_AddNumberToObject(o, "gflop", flops / 1e9);
    cJSON_AddNumberToObject(o, "gflop_per_s", secs > 0 ? flops / 1e9 / secs : 0);
    cJSON_AddNumberToObject(o, "peak_rss_mb", (double)(tool_peak_rss_bytes() >> 20));  /* kept for old scripts */
    cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)tool_peak_rss_bytes());
    cJSON_AddNumberToObject(o, "act_mb", (double)(lop_act_bytes(m) >> 20));
    if (strcmp(lop_model_device(m), "cpu"))
        cJSON_AddNumberToObject(o, "gpu_peak_mb", (double)(lop_model_device_peak(m) >> 20));
    if (tr && kls.n) {
        qsort(klv, klv_n, sizeof *klv, cmp_f);
        cJSON *k = cJSON_AddObjectToObject(o, "kl");
        cJSON_AddNumberToObject(k, "mean", stat_mean(&kls));
        cJSON_AddNumberToObject(k, "stderr", stat_se(&kls));
#define PCT(name, q) cJSON_AddNumberToObject(k, name, klv[(int64_t)((q) * (klv_n - 1) + 0.5)])
        PCT("median", 0.5); PCT("p90", 0.9); PCT("p95", 0.95); PCT("p99", 0.99); PCT("p999", 0.999);
        PCT("max", 1.0);
#undef PCT
        cJSON_AddNumberToObject(o, "top1_agree", (double)top1_same / kls.n);
        if (has_base_lp) {   /* a kd-train cache has no target log-probs */
            cJSON_AddNumberToObject(o, "base_ppl", exp(stat_mean(&base)));
            cJSON_AddNumberToObject(o, "ppl_ratio", exp(mean - stat_mean(&base)));
        }
        cJSON_AddNumberToObject(o, "base_topk", kb);
    }
    tool_emit(o);
    if (!tool_opt.quiet)
        fprintf(stderr, "ppl: %.4f ± %.4f over %lld tokens, %.1f tokens/s\n", exp(mean), exp(mean) * se,
                (long long)st.n, secs > 0 ? st.n / secs : 0);
    if (tr) ppl_base_close(tr);
    free(klv); free(bids); free(tg); free(am); free(lp); free(lse); free(sel); free(blen); free(kid); free(klg);
    free(counted); free(klw);
    free(kc.rec_of_row); free(kc.rec); free(kc.sid); free(kc.blp); free(kc.cur);
    if (line_ids) for (int i = 0; i < nlines; i++) free(line_ids[i]);
    free(line_ids);
    free(ids);
    plan_free(&pl);
    lop_model_free(m);
    return 0;
}
