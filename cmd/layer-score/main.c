/* layer-score — how much each layer (or block of layers) matters, measured on calibration text.
 *   bi       ShortGPT's Block Influence: 1 − mean over every calibration token of
 *            cos(h_in, h_out), the residual stream entering and leaving the layer (never the
 *            final-normed state, also for the last layer). One forward pass.
 *   angular  Gromov et al.: arccos(cos(h_l, h_{l+n})) / π of each sequence's last token, averaged
 *            over sequences, for every block of n = --block consecutive layers. One forward pass.
 *   ppl      perplexity with the layer (block) skipped minus the full model's. L+1 passes.
 *   kl       mean KL(p_full ‖ p_skipped) of the next-token distributions. L+1 passes; the full
 *            model's logits are recomputed block by block from its final hidden states, so memory
 *            stays O(tokens × hidden), never tokens × vocabulary.
 * Higher score = more important. */
#include "calib.h"
#include "model.h"
#include "nn.h"
#include "parse.h"
#include "tokenizer.h"
#include "tool.h"
#include "provenance.h"
#include "job.h"
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_TOKENS 2048   /* rows per forward */

static void usage(FILE *f) {
    fprintf(f,
        "usage: layer-score -m MODEL --data FILE [--metric bi|angular|ppl|kl] [--block N]\n"
        "                   [--samples N] [--ctx N] [--lines]\n"
        "Score every layer (or block of --block consecutive layers) on calibration text; higher =\n"
        "more important. The output feeds layer-drop --scores.\n"
        "\n"
        "  -m, --model PATH     model folder or .safetensors file\n"
        "      --data FILE      calibration text: plain text (packed windows, or --lines), JSONL\n"
        "                       {\"text\": ...} (one sample per line), either maybe .zst\n"
        "      --metric M       bi (default): 1 - mean cos(h_in, h_out) of each layer's residual\n"
        "                       stream over all tokens (ShortGPT's Block Influence);\n"
        "                       angular: arccos(cos(h_l, h_l+n))/pi on each sequence's last token;\n"
        "                       ppl: perplexity increase when the layer/block is skipped;\n"
        "                       kl: KL divergence from the full model when it is skipped\n"
        "      --block N        layers per block (angular, ppl, kl; default 1)\n"
        "      --samples N      calibration samples (default 128; 0: all)\n"
        "      --ctx N          tokens per sample (default 512)\n"
        "      --lines          each line of a text file is a sample (default: packed windows)\n"
        "      --layers LIST    score only these layers / block starts, e.g. 2,4-6 (ppl and kl\n"
        "                       then run only those passes)\n"
        "      --gemm f32|bf16  precision of the matrix products (default f32). bf16: activations\n"
        "                       rounded to bf16, float32 sums (AVX512-BF16 CPUs, else f32 with a\n"
        "                       warning); per-token NLL moves by up to ~0.1 (mean ~0.01)\n"
        TOOL_DEVICE_HELP
        TOOL_COMMON_HELP
        "\nOutput: one JSON line per layer {\"layer\",\"metric\",\"score\"} (blocks: {\"start\",\"n\",\n"
        "\"metric\",\"score\"}; ppl and kl add \"ppl\"), then {\"metric\",\"samples\",\"tokens\",...}.\n");
}

enum { M_BI, M_ANGULAR, M_PPL, M_KL };
static const char *metric_names[] = {"bi", "angular", "ppl", "kl"};

typedef struct {
    lop_model *m;
    lop_calib cal;
    int nb, *b_first, *b_count;   /* batches of samples */
    int L, C;
    /* bi */
    double *cos_sum;      /* [L] */
    float *prev;          /* [rows, C] residual entering the current layer */
    /* angular */
    double *last;         /* [L+1, B_all, C] residual entering layer l (l = L: leaving the last) at each sequence's last token */
    int batch_first;      /* sample index of the current batch's first sequence */
    /* kl */
    const float *hn_full; /* [rows, C] the full model's final-normed states of the batch */
    const float *lse_full;/* [rows] */
    double *kl_s;         /* [rows] accumulated sum_v p_v (z_v - y_v) */
    float *zbuf, *abuf;
    size_t zcap, acap;
    /* mpirun: this rank's batches [b0, b1); per-batch / per-token numbers in slots that only
     * their rank fills, summed over ranks (exact: zeros elsewhere) and added in the one-process
     * order */
    int b0, b1;
    double *cos_b;        /* bi: [nb, L] */
    double *tok_nll, *tok_kl;   /* ppl/kl: [tokens] */
} score_ctx;

/* sum a slot array over the ranks (each slot filled by one rank: the sum is a copy) */
static void slots_sum(double *x, size_t n) {
    lop_err e;
    job_ok(par_sum_f64(job_par, x, n, &e), &e);
}

static int make_batches(score_ctx *c, lop_err *e) {
    int n = c->cal.n;
    c->b_first = malloc(n * sizeof(int)); c->b_count = malloc(n * sizeof(int));
    if (!c->b_first || !c->b_count) return lop_fail(e, "out of memory");
    int64_t in_batch = 0;
    for (int i = 0; i < n; i++) {
        if (c->nb == 0 || in_batch + c->cal.len[i] > BATCH_TOKENS) {
            c->b_first[c->nb] = i; c->b_count[c->nb] = 0; c->nb++; in_batch = 0;
        }
        c->b_count[c->nb - 1]++;
        in_batch += c->cal.len[i];
    }
    return 0;
}

static int batch_rows(const score_ctx *c, int i) {
    int r = 0;
    for (int s = 0; s < c->b_count[i]; s++) r += c->cal.len[c->b_first[i] + s];
    return r;
}

/* ---- bi and angular: one pass with residual hooks ---- */

static int hook_resid(void *user, int layer, lop_resid_where where, float *x, const lop_batch *b) {
    score_ctx *c = user;
    int C = c->C, N = b->N;
    if (c->cos_sum) {
        if (where == LOP_RESID_IN) {
            memcpy(c->prev, x, (size_t)N * C * sizeof *x);
        } else {
            double s = 0;
            #pragma omp parallel for reduction(+:s) schedule(static)
            for (int i = 0; i < N; i++) {
                const float *a = c->prev + (size_t)i * C, *o = x + (size_t)i * C;
                double ab = 0, aa = 0, oo = 0;
                for (int k = 0; k < C; k++) { ab += (double)a[k] * o[k]; aa += (double)a[k] * a[k]; oo += (double)o[k] * o[k]; }
                s += ab / fmax(sqrt(aa) * sqrt(oo), 1e-30);
            }
            c->cos_sum[layer] += s;
        }
    }
    if (c->last && (where == LOP_RESID_IN || layer == c->L - 1)) {
        int l = where == LOP_RESID_IN ? layer : c->L;
        for (int s = 0; s < b->B; s++) {
            const float *row = x + (size_t)(b->off[s + 1] - 1) * C;
            double *dst = c->last + ((size_t)l * c->cal.n + c->batch_first + s) * C;
            for (int k = 0; k < C; k++) dst[k] = row[k];
        }
    }
    return 0;
}

static int pass_hooks(score_ctx *c, progress *pg, lop_err *e) {
    lop_hooks hk = {.user = c, .resid = hook_resid};
    lop_fwd_opts fo = {.hooks = &hk};
    double done = 0;
    for (int i = c->b0; i < c->b1; i++) {
        int f = c->b_first[i];
        lop_batch b = {.B = c->b_count[i], .len = c->cal.len + f, .ids = c->cal.ids[f]};
        c->batch_first = f;
        if (c->cos_b) c->cos_sum = c->cos_b + (size_t)i * c->L;
        if (lop_forward(c->m, &b, &fo, NULL, e)) return -1;
        done += batch_rows(c, i);
        progress_update(pg, done);
    }
    return 0;
}

/* ---- ppl and kl: a pass per skipped layer/block ---- */

/* head block callback for kl: S_r += sum_v p_v (z_v - y_v), p = softmax of the full model's logits
 * z (recomputed here from its final hidden states), y = this run's logits */
static int kl_block(void *user, int v0, int nv, const float *logits, int rows, const int *row) {
    score_ctx *c = user;
    lop_model *m = c->m;
    int C = c->C;
    size_t need_z = (size_t)rows * nv, need_a = (size_t)rows * C;
    if (need_z > c->zcap) { free(c->zbuf); c->zbuf = malloc(need_z * sizeof(float)); c->zcap = need_z; }
    if (need_a > c->acap) { free(c->abuf); c->abuf = malloc(need_a * sizeof(float)); c->acap = need_a; }
    if (!c->zbuf || !c->abuf) return -1;
    for (int i = 0; i < rows; i++) memcpy(c->abuf + (size_t)i * C, c->hn_full + (size_t)row[i] * C, C * sizeof(float));
    const char *w = (const char *)m->head.data + (size_t)v0 * C * st_dtype_size(m->head.dtype);
    int r = lop_model_gemm(m) == LOP_GEMM_BF16 /* the same precision as this run's own logits */
        ? matmul_forward_bf16(c->zbuf, c->abuf, w, m->head.dtype, NULL, rows, C, nv, 0)
        : matmul_forward(c->zbuf, c->abuf, w, m->head.dtype, NULL, rows, C, nv, 0);
    if (r) return -1;
    if (m->cfg.final_softcap > 0) softcap_forward(c->zbuf, need_z, (float)m->cfg.final_softcap);
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
        const float *z = c->zbuf + (size_t)i * nv, *y = logits + (size_t)i * nv;
        double lse = c->lse_full[row[i]], s = 0;
        for (int v = 0; v < nv; v++) s += exp((double)z[v] - lse) * ((double)z[v] - y[v]);
        c->kl_s[row[i]] += s;
    }
    return 0;
}

typedef struct { double nll, kl; int64_t n; } run_sum;

typedef struct { float *dst; size_t bytes; } capture;
static int hook_capture(void *u, const float *h, const float *hn, const lop_batch *b) {
    (void)h; (void)b;
    capture *cap = u;
    memcpy(cap->dst, hn, cap->bytes);
    return 0;
}

/* one pass over the calibration set with layers skip[] skipped (NULL: the full model) */
static int pass_head(score_ctx *c, const uint8_t *skip, int metric, int full, float *hn_store,
                     float *lse_store, run_sum *out, progress *pg, double *done, lop_err *e) {
    memset(out, 0, sizeof *out);
    int64_t base = 0;
    memset(c->tok_nll, 0, sizeof *c->tok_nll * (size_t)c->cal.tokens);
    if (c->tok_kl) memset(c->tok_kl, 0, sizeof *c->tok_kl * (size_t)c->cal.tokens);
    for (int i = 0; i < c->nb; i++) {
        int f = c->b_first[i], N = batch_rows(c, i);
        if (i < c->b0 || i >= c->b1) { base += N; continue; }   /* another rank's batch */
        lop_batch b = {.B = c->b_count[i], .len = c->cal.len + f, .ids = c->cal.ids[f]};
        int32_t *tgt = malloc(N * sizeof *tgt);
        float *lp = calloc(N, sizeof *lp), *lse = calloc(N, sizeof *lse);
        uint8_t *sel = malloc(N);
        if (!tgt || !lp || !lse || !sel) { free(tgt); free(lp); free(lse); free(sel); return lop_fail(e, "out of memory"); }
        int r = 0;
        for (int s = 0; s < b.B; s++)
            for (int t = 0; t < b.len[s]; t++, r++) {
                tgt[r] = t + 1 < b.len[s] ? c->cal.ids[f + s][t + 1] : -1;
                sel[r] = tgt[r] >= 0;
            }
        lop_head_req h = {.select = sel, .target = tgt, .target_logprob = lp, .lse = lse};
        lop_hooks hk = {0};
        lop_fwd_opts fo = {.skip = skip};
        capture cap = {hn_store ? hn_store + base * c->C : NULL, (size_t)N * c->C * sizeof(float)};
        if (metric == M_KL && !full) {
            c->hn_full = hn_store + base * c->C;
            c->lse_full = lse_store + base;
            c->kl_s = calloc(N, sizeof *c->kl_s);
            if (!c->kl_s) { free(tgt); free(lp); free(lse); free(sel); return lop_fail(e, "out of memory"); }
            h.block = kl_block; h.user = c;
        }
        int rc = 0;
        if (metric == M_KL && full) {
            /* keep the full model's final-normed states for the kl passes */
            hk.user = &cap;
            hk.final = hook_capture;
            fo.hooks = &hk;
        }
        rc = lop_forward(c->m, &b, &fo, &h, e);
        for (int k = 0; k < N && !rc; k++) {
            if (!sel[k]) continue;
            c->tok_nll[base + k] = lp[k];
            if (metric == M_KL && full) lse_store[base + k] = lse[k];
            if (metric == M_KL && !full) c->tok_kl[base + k] = c->kl_s[k] - lse_store[base + k] + lse[k];
        }
        if (metric == M_KL && !full) { free(c->kl_s); c->kl_s = NULL; }
        free(tgt); free(lp); free(lse); free(sel);
        if (rc) return -1;
        base += N;
        *done += N;
        progress_update(pg, *done);
    }
    /* every rank's tokens, then the sums in token order (the one-process order) */
    if (job_ranks > 1) {
        slots_sum(c->tok_nll, (size_t)c->cal.tokens);
        if (metric == M_KL && !full) slots_sum(c->tok_kl, (size_t)c->cal.tokens);
    }
    base = 0;
    for (int q = 0; q < c->cal.n; q++)
        for (int t = 0; t < c->cal.len[q]; t++, base++) {
            if (t + 1 >= c->cal.len[q]) continue;   /* the last token has no target */
            out->nll -= (float)c->tok_nll[base];
            out->n++;
            if (metric == M_KL && !full) out->kl += c->tok_kl[base];
        }
    return 0;
}

static void emit_score(int start, int n, int metric, double score, double ppl) {
    cJSON *o = cJSON_CreateObject();
    if (n == 1 && metric != M_ANGULAR) {
        cJSON_AddNumberToObject(o, "layer", start);
    } else {
        cJSON_AddNumberToObject(o, "start", start);
        cJSON_AddNumberToObject(o, "n", n);
    }
    cJSON_AddStringToObject(o, "metric", metric_names[metric]);
    cJSON_AddNumberToObject(o, "score", score);
    if (!isnan(ppl)) cJSON_AddNumberToObject(o, "ppl", ppl);
    tool_emit(o);
}

int main(int argc, char **argv) {
    tool_init_job("layer-score", argc, argv);
    enum { OPT_DATA = 1, OPT_METRIC, OPT_BLOCK, OPT_SAMPLES, OPT_CTX, OPT_LINES, OPT_LAYERS, OPT_GEMM, OPT_DEVICE };
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, OPT_DATA},
        {"metric", required_argument, 0, OPT_METRIC}, {"block", required_argument, 0, OPT_BLOCK},
        {"samples", required_argument, 0, OPT_SAMPLES}, {"ctx", required_argument, 0, OPT_CTX},
        {"seq-len", required_argument, 0, OPT_CTX}, {"max-length", required_argument, 0, OPT_CTX},
        {"lines", no_argument, 0, OPT_LINES}, {"layers", required_argument, 0, OPT_LAYERS},
        {"gemm", required_argument, 0, OPT_GEMM}, {"device", required_argument, 0, OPT_DEVICE},
        TOOL_COMMON_LONGOPTS, {0, 0, 0, 0}};
    const char *model = NULL, *data = NULL, *only = NULL, *device = NULL;
    int metric = M_BI, block = 1, lines = 0, block_set = 0;
    lop_gemm gemm = LOP_GEMM_F32;
    lop_calib_opts co = calib_default_opts();
    co.samples = 128; co.ctx = 512;
    int c, ctx_set = 0;
    while ((c = getopt_long(argc, argv, "m:" TOOL_COMMON_SHORTOPTS, lo, NULL)) != -1) {
        if (tool_common_opt(c, optarg, usage)) continue;
        switch (c) {
        case 'm': model = optarg; break;
        case OPT_DATA: data = optarg; break;
        case OPT_METRIC:
            for (metric = 0; metric < 4 && strcmp(optarg, metric_names[metric]); metric++) {}
            if (metric == 4) tool_die_usage("--metric: '%s' is not bi, angular, ppl or kl", optarg);
            break;
        case OPT_BLOCK: block = (int)opt_int("--block", optarg, 1, 1 << 20); block_set = 1; break;
        case OPT_SAMPLES: co.samples = (int)opt_int("--samples", optarg, 0, 1 << 24); break;
        case OPT_CTX: co.ctx = (int)opt_int("--ctx", optarg, 2, 1 << 22); ctx_set = 1; break;
        case OPT_LINES: lines = 1; break;
        case OPT_LAYERS: only = optarg; break;
        case OPT_GEMM:
            if (lop_gemm_parse(optarg, &gemm)) tool_die_usage("--gemm: expected f32 or bf16, not '%s'", optarg);
            break;
        case OPT_DEVICE: device = optarg; break;
        default: tool_die_usage("unknown option");
        }
    }
    if (optind < argc) tool_die_usage("unexpected argument '%s'", argv[optind]);
    if (!model) tool_die_usage("-m/--model is required");
    if (!data) tool_die_usage("--data FILE is required (calibration text)");
    if (metric == M_BI && block_set && block != 1) tool_die_usage("--block goes with angular, ppl or kl (bi scores single layers)");
    if (lines) co.mode = CALIB_LINES;
    tool_apply_threads();

    lop_err e;
    score_ctx s;
    memset(&s, 0, sizeof s);
    prov_input("model", model);
    prov_input("data", data);
    if (lop_model_open(&s.m, model, &e)) tool_die_err(&e);
    tool_set_device(s.m, device);
    if (gemm != LOP_GEMM_F32 && lop_model_set_gemm(s.m, gemm) != gemm)
        tool_warn("--gemm bf16: this CPU has no AVX512-BF16; computing in float32");
    if (!ctx_set && s.m->cfg.max_pos > 0 && co.ctx > s.m->cfg.max_pos) co.ctx = s.m->cfg.max_pos;
    {   /* an explicit --ctx past the model's context is refused (tool_check_context) */
        char what[48];
        snprintf(what, sizeof what, "--ctx %d", co.ctx);
        tool_check_context(what, co.ctx, s.m->cfg.max_pos);
    }
    s.L = s.m->cfg.n_layers; s.C = s.m->cfg.hidden;
    if (block > s.L) tool_die_usage("--block %d: the model has %d layers", block, s.L);
    int L = s.L, C = s.C, nblk = L - block + 1;
    uint8_t *want = malloc(nblk);   /* the layers / block starts to report */
    if (!want) tool_die(1, "out of memory");
    memset(want, only ? 0 : 1, nblk);
    if (only) {
        int *v, nv;
        if (parse_ranges(only, nblk, &v, &nv, &e)) tool_die_usage("--layers: %s", e.msg);
        for (int i = 0; i < nv; i++) want[v[i]] = 1;
        free(v);
    }
    lop_tokenizer *tok;
    if (tok_load(&tok, s.m->st->source_dir ? s.m->st->source_dir : model, &e)) tool_die_err(&e);
    if (calib_load(&s.cal, data, tok, &co, &e)) tool_die_err(&e);
    tok_free(tok);
    if (make_batches(&s, &e)) tool_die_err(&e);
    /* a job: contiguous shares of the batches (any rank count) */
    s.b0 = (int)((int64_t)s.nb * job_rank / job_ranks);
    s.b1 = (int)((int64_t)s.nb * (job_rank + 1) / job_ranks);
    {   /* hostile jobs: the same command and calibration tokens on every rank */
        uint64_t fp = job_argv_fp();
        for (int i = 0; i < s.cal.n; i++) fp = job_fp_mix(fp, s.cal.ids[i], sizeof(int32_t) * s.cal.len[i]);
        job_same("options or calibration data", fp);
    }
    double t0 = tool_now_seconds();
    progress pg;
    cJSON *sum = cJSON_CreateObject();
    cJSON_AddStringToObject(sum, "metric", metric_names[metric]);

    if (metric == M_BI || metric == M_ANGULAR) {
        int maxrows = 0;
        for (int i = 0; i < s.nb; i++) if (batch_rows(&s, i) > maxrows) maxrows = batch_rows(&s, i);
        if (metric == M_BI) {
            s.cos_b = calloc((size_t)s.nb * L, sizeof *s.cos_b);
            s.prev = malloc((size_t)maxrows * C * sizeof *s.prev);
            if (!s.cos_b || !s.prev) tool_die(1, "out of memory");
        } else {
            s.last = calloc((size_t)(L + 1) * s.cal.n * C, sizeof *s.last);
            if (!s.last) tool_die(1, "out of memory");
        }
        progress_start(&pg, "scoring", (double)s.cal.tokens, "tok");
        if (pass_hooks(&s, &pg, &e)) tool_die_err(&e);
        progress_end(&pg);
        if (s.cos_b) {   /* the per-batch sums, added in batch order */
            if (job_ranks > 1) slots_sum(s.cos_b, (size_t)s.nb * L);
            s.cos_sum = calloc(L, sizeof *s.cos_sum);
            if (!s.cos_sum) tool_die(1, "out of memory");
            for (int i = 0; i < s.nb; i++)
                for (int l = 0; l < L; l++) s.cos_sum[l] += s.cos_b[(size_t)i * L + l];
        }
        if (s.last && job_ranks > 1) slots_sum(s.last, (size_t)(L + 1) * s.cal.n * C);
        if (metric == M_BI) {
            for (int l = 0; l < L; l++) if (want[l]) emit_score(l, 1, M_BI, 1.0 - s.cos_sum[l] / (double)s.cal.tokens, NAN);
        } else {
            for (int l = 0; l < nblk; l++) {
                if (!want[l]) continue;
                double d = 0;
                for (int q = 0; q < s.cal.n; q++) {
                    const double *a = s.last + ((size_t)l * s.cal.n + q) * C, *b = s.last + ((size_t)(l + block) * s.cal.n + q) * C;
                    double ab = 0, aa = 0, bb = 0;
                    for (int k = 0; k < C; k++) { ab += a[k] * b[k]; aa += a[k] * a[k]; bb += b[k] * b[k]; }
                    double cs = ab / fmax(sqrt(aa) * sqrt(bb), 1e-300);
                    d += acos(fmax(-1.0, fmin(1.0, cs))) / M_PI;
                }
                emit_score(l, block, M_ANGULAR, d / s.cal.n, NAN);
            }
        }
        free(s.cos_sum); free(s.cos_b); free(s.prev); free(s.last);
    } else {
        uint8_t *skip = calloc(L, 1);
        float *hn_store = NULL, *lse_store = NULL;
        if (metric == M_KL) {
            hn_store = malloc((size_t)s.cal.tokens * C * sizeof *hn_store);
            lse_store = malloc((size_t)s.cal.tokens * sizeof *lse_store);
            if (!hn_store || !lse_store) tool_die(1, "out of memory");
        }
        s.tok_nll = calloc((size_t)s.cal.tokens, sizeof *s.tok_nll);
        if (metric == M_KL) s.tok_kl = calloc((size_t)s.cal.tokens, sizeof *s.tok_kl);
        if (!skip || !s.tok_nll || (metric == M_KL && !s.tok_kl)) tool_die(1, "out of memory");
        double done = 0;
        int passes = 1;
        for (int l = 0; l < nblk; l++) passes += want[l];
        progress_start(&pg, "scoring", (double)s.cal.tokens * passes, "tok");
        run_sum full, r;
        if (pass_head(&s, NULL, metric, 1, hn_store, lse_store, &full, &pg, &done, &e)) tool_die_err(&e);
        if (full.n == 0) tool_die(1, "%s: no token to score (every sample is one token long)", data);
        double ppl0 = exp(full.nll / full.n);
        for (int l = 0; l < nblk; l++) {
            if (!want[l]) continue;
            memset(skip, 0, L);
            memset(skip + l, 1, block);
            if (pass_head(&s, skip, metric, 0, hn_store, lse_store, &r, &pg, &done, &e)) tool_die_err(&e);
            double ppl = exp(r.nll / r.n);
            emit_score(l, block, metric, metric == M_PPL ? ppl - ppl0 : r.kl / r.n, ppl);
        }
        progress_end(&pg);
        cJSON_AddNumberToObject(sum, "base_ppl", ppl0);
        cJSON_AddNumberToObject(sum, "scored_tokens", (double)full.n);
        free(skip); free(hn_store); free(lse_store); free(s.tok_nll); free(s.tok_kl);
        free(s.zbuf); free(s.abuf);
    }
    cJSON_AddNumberToObject(sum, "layers", L);
    cJSON_AddNumberToObject(sum, "block", block);
    cJSON_AddNumberToObject(sum, "samples", s.cal.n);
    cJSON_AddNumberToObject(sum, "tokens", (double)s.cal.tokens);
    cJSON_AddNumberToObject(sum, "seconds", tool_now_seconds() - t0);
    tool_emit(sum);
    free(s.b_first); free(s.b_count); free(want);
    calib_free(&s.cal);
    lop_model_free(s.m);
    return 0;
}
