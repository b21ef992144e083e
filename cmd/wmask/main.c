/* wmask — unstructured and N:M weight pruning (magnitude, Wanda, SparseGPT; OWL layer sparsities):
 * options and dispatch. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "blas_tune.h"
#include "outpath.h"
#include "tool.h"
#include "wmask.h"
#include "job.h"

static void usage(FILE *f) {
    fprintf(f,
"usage: wmask -m MODEL -o OUT [--sparsity S] [--method magnitude|wanda|sparsegpt]\n"
"             [--scope row|tensor|global] [--nm N:M] [--data FILE --samples N --ctx N] [--owl]\n"
"             [--include RE] [--exclude RE]\n"
"Zeroes the lowest-scored weights of the attention and MLP projections of every layer, keeping\n"
"shapes, dtypes and config (zeros alone make a model neither smaller nor faster: see wmask(1)).\n"
"  -m, --model PATH      HF folder, .safetensors file (maybe .zst), or - (a tensor stream)\n"
"  -o, --output PATH     folder, .safetensors file, or - (stream on stdout)\n"
"      --sparsity S      fraction of each selection to zero, 0..1 (default 0.5); exact:\n"
"                        floor(S*n) weights of each row/tensor/all, already-zero ones count\n"
"      --method M        magnitude (score |W|, default), wanda (score |W|*||X_j||, needs --data)\n"
"                        or sparsegpt (OBS: prune by w^2/[H^-1]_jj^2 and update the other weights\n"
"                        from the inputs' Hessian H = 2/n X^T X, layer by layer; needs --data)\n"
"      --scope S         row (default: each output row to the same sparsity), tensor, or global\n"
"                        (one threshold over every selected tensor)\n"
"      --nm N:M          in every M consecutive weights of a row zero the N lowest (2:4);\n"
"                        sets the sparsity to N/M\n"
"      --include RE      select tensors whose name matches RE (PCRE2; repeatable; replaces the\n"
"                        default set of attention/MLP projection weights)\n"
"      --exclude RE      drop tensors whose name matches RE from the selection (repeatable)\n"
"  calibration (wanda, sparsegpt, --owl):\n"
"      --data FILE       calibration text: one example per line, .jsonl with \"text\", maybe .zst\n"
"      --samples N       calibration sequences (default 128)\n"
"      --ctx N           tokens per sequence (default 512, at most the model's context)\n"
"      --batch N         sequences per forward pass (default 8)\n"
"      --one-shot        norms from one pass over the dense model (default: layer by layer, each\n"
"                        layer's inputs from the already-pruned layers before it, as Wanda does)\n"
"      --dump-acts FILE  debug: write every linear layer's input X (float32) to FILE\n"
"  sparsegpt:\n"
"      --damp L          dampening: H += L * mean(diag H) * I (default 0.01)\n"
"      --blocksize N     columns per OBS block (default 128)\n"
"  OWL (outlier-weighted layerwise sparsity; any method; needs --data):\n"
"      --owl             each layer's sparsity from its share of outlier scores |W|*||X||\n"
"                        above M x the layer's mean: target +- lambda, weighted mean exact\n"
"      --owl-lambda L    the spread: sparsities span 2L (default 0.08)\n"
"      --owl-m M         the outlier threshold multiple (default 5)\n"
"      --device D        where the calibration forwards run: cpu (default), cuda, cuda:N (the\n"
"                        pruning itself stays on the cpu; a build made where nvcc is)\n"
"  output:\n"
"      --max-shard-size SIZE  shard size of a folder output (default 5GB)\n"
"      --zstd[=LEVEL]    compress a file/stream output with zstd (default level 3)\n"
TOOL_COMMON_HELP);
}

enum { O_SPARSITY = 0x100, O_METHOD, O_SCOPE, O_NM, O_INCLUDE, O_EXCLUDE, O_DATA, O_SAMPLES,
       O_CTX, O_BATCH, O_ONESHOT, O_DUMP, O_SHARD, O_ZSTD, O_DAMP, O_BLOCK, O_OWL, O_OWL_L,
       O_OWL_M, O_DEVICE };

static const struct option longopts[] = {
    {"model", required_argument, 0, 'm'},
    {"output", required_argument, 0, 'o'},
    {"sparsity", required_argument, 0, O_SPARSITY},
    {"method", required_argument, 0, O_METHOD},
    {"scope", required_argument, 0, O_SCOPE},
    {"nm", required_argument, 0, O_NM},
    {"include", required_argument, 0, O_INCLUDE},
    {"exclude", required_argument, 0, O_EXCLUDE},
    {"data", required_argument, 0, O_DATA},
    {"samples", required_argument, 0, O_SAMPLES},
    {"ctx", required_argument, 0, O_CTX},
    {"seq-len", required_argument, 0, O_CTX}, {"max-length", required_argument, 0, O_CTX},
    {"batch", required_argument, 0, O_BATCH},
    {"one-shot", no_argument, 0, O_ONESHOT},
    {"dump-acts", required_argument, 0, O_DUMP},
    {"max-shard-size", required_argument, 0, O_SHARD},
    {"zstd", optional_argument, 0, O_ZSTD},
    {"damp", required_argument, 0, O_DAMP},
    {"blocksize", required_argument, 0, O_BLOCK},
    {"owl", no_argument, 0, O_OWL},
    {"owl-lambda", required_argument, 0, O_OWL_L},
    {"owl-m", required_argument, 0, O_OWL_M},
    {"device", required_argument, 0, O_DEVICE},
    TOOL_COMMON_LONGOPTS,
    {0, 0, 0, 0}};

static void parse_nm(wm_job *j, const char *arg) {
    char *end;
    long n = strtol(arg, &end, 10);
    if (end == arg || *end != ':') tool_die_usage("--nm: expected N:M, got '%s'", arg);
    const char *p = end + 1;
    long m = strtol(p, &end, 10);
    if (end == p || *end) tool_die_usage("--nm: expected N:M, got '%s'", arg);
    if (m < 1 || m > 256 || n < 1 || n > m)
        tool_die_usage("--nm: need 1 <= N <= M <= 256, got '%s'", arg);
    j->nm_n = (int)n;
    j->nm_m = (int)m;
}

int main(int argc, char **argv) {
    tool_blas_reexec(argv); /* OpenBLAS kernels and a passive OpenMP wait policy: see blas_tune.h */
    tool_init_job("wmask", argc, argv);
    wm_job j = {.sparsity = 0.5, .samples = 128, .ctx = 512, .batch = 8, .damp = 0.01,
                .blocksize = 128, .owl_lambda = 0.08, .owl_m = 5};
    int have_sparsity = 0, have_scope = 0, c;
    while ((c = getopt_long(argc, argv, "m:o:" TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (tool_common_opt(c, optarg, usage)) continue;
        switch (c) {
        case 'm': j.model = optarg; break;
        case 'o': j.output = optarg; break;
        case O_SPARSITY: j.sparsity = opt_double("--sparsity", optarg, 0, 1); have_sparsity = 1; break;
        case O_METHOD:
            if (!strcmp(optarg, "magnitude")) j.method = METHOD_MAGNITUDE;
            else if (!strcmp(optarg, "wanda")) j.method = METHOD_WANDA;
            else if (!strcmp(optarg, "sparsegpt")) j.method = METHOD_SPARSEGPT;
            else tool_die_usage("--method: expected magnitude, wanda or sparsegpt, got '%s'", optarg);
            break;
        case O_SCOPE:
            if (!strcmp(optarg, "row")) j.scope = SCOPE_ROW;
            else if (!strcmp(optarg, "tensor")) j.scope = SCOPE_TENSOR;
            else if (!strcmp(optarg, "global")) j.scope = SCOPE_GLOBAL;
            else tool_die_usage("--scope: expected row, tensor or global, got '%s'", optarg);
            have_scope = 1;
            break;
        case O_NM: parse_nm(&j, optarg); break;
        case O_INCLUDE:
            if (j.n_include == WM_MAX_RE) tool_die_usage("--include: at most %d", WM_MAX_RE);
            j.include[j.n_include++] = optarg;
            break;
        case O_EXCLUDE:
            if (j.n_exclude == WM_MAX_RE) tool_die_usage("--exclude: at most %d", WM_MAX_RE);
            j.exclude[j.n_exclude++] = optarg;
            break;
        case O_DATA: j.data = optarg; break;
        case O_SAMPLES: j.samples = (int)opt_int("--samples", optarg, 1, 1 << 20); break;
        case O_CTX: j.ctx = (int)opt_int("--ctx", optarg, 2, 1 << 20); break;
        case O_BATCH: j.batch = (int)opt_int("--batch", optarg, 1, 1 << 16); break;
        case O_ONESHOT: j.one_shot = 1; break;
        case O_DUMP: j.dump_acts = optarg; break;
        case O_SHARD: j.max_shard = opt_size("--max-shard-size", optarg); break;
        case O_ZSTD: j.zstd_level = optarg ? (int)opt_int("--zstd", optarg, 1, 22) : 3; break;  /* --zstd[=L], as the other tools */
        case O_DAMP: j.damp = opt_double("--damp", optarg, 0, 100); break;
        case O_BLOCK: j.blocksize = (int)opt_int("--blocksize", optarg, 1, 4096); break;
        case O_OWL: j.owl = 1; break;
        case O_OWL_L: j.owl_lambda = opt_double("--owl-lambda", optarg, 0, 0.5); break;
        case O_OWL_M: j.owl_m = opt_double("--owl-m", optarg, 0, 1e6); break;
        case O_DEVICE: j.device = optarg; break;
        default: tool_die_usage("unexpected option");
        }
    }
    if (optind < argc) tool_die_usage("unexpected argument '%s'", argv[optind]);
    if (!j.model) tool_die_usage("-m/--model is required");
    if (!j.output) tool_die_usage("-o/--output is required");
    if (j.device && j.method != METHOD_WANDA && strcmp(j.device, "cpu"))
        tool_die_usage("--device goes with --method wanda (magnitude runs no forward)");
    if (j.nm_m) {
        double s = (double)j.nm_n / j.nm_m;
        if (have_sparsity && j.sparsity != s)
            tool_die_usage("--nm %d:%d zeroes %g of each row; it does not combine with --sparsity %g",
                      j.nm_n, j.nm_m, s, j.sparsity);
        if (have_scope && j.scope != SCOPE_ROW)
            tool_die_usage("--nm selects within groups of a row; it does not combine with --scope");
        j.sparsity = s;
    }
    if (j.method == METHOD_WANDA) {
        if (!j.data) tool_die_usage("--method wanda needs calibration text (--data FILE)");
        if (j.scope == SCOPE_GLOBAL && !j.one_shot)
            tool_die_usage("--method wanda --scope global needs --one-shot (one threshold over all "
                      "layers needs every layer's scores before any layer is pruned)");
    } else if (j.method == METHOD_SPARSEGPT) {
        if (!j.data) tool_die_usage("--method sparsegpt needs calibration text (--data FILE)");
        if (j.scope == SCOPE_GLOBAL)
            tool_die_usage("--method sparsegpt updates the weights as it prunes: no --scope global");
        if (j.one_shot) tool_die_usage("--one-shot is for --method wanda (sparsegpt runs layer by layer)");
    } else if ((j.data && !j.owl) || j.one_shot || j.dump_acts) {
        tool_die_usage("--data, --one-shot and --dump-acts are for --method wanda or sparsegpt (or --owl)");
    }
    if (j.owl) {
        if (!j.data) tool_die_usage("--owl needs calibration text (--data FILE)");
        if (j.scope == SCOPE_GLOBAL) tool_die_usage("--owl sets each layer's sparsity: no --scope global");
        if (j.one_shot) tool_die_usage("--owl does not combine with --one-shot");
    }
    if (j.sparsity >= 0.99)
        tool_warn("--sparsity %g zeroes (nearly) every selected weight: the model will not work", j.sparsity);
    out_input("model", j.model);
    out_input("data", j.data);
    j.output = out_output("-o", j.output, OUT_MODEL);
    j.dump_acts = out_output("--dump-acts", j.dump_acts, OUT_MODEL);
    if (job_ranks > 1) {   /* a job (mpirun): the ranks share wanda's calibration sequences */
        if (j.method != METHOD_WANDA)
            tool_die_usage("--method %s runs as one process; under mpirun only --method wanda shares its "
                      "calibration across ranks", j.method == METHOD_MAGNITUDE ? "magnitude" : "sparsegpt");
        if (j.dump_acts) tool_die_usage("--dump-acts runs as one process, not under mpirun");
        if (j.device && strcmp(j.device, "cpu")) tool_die_usage("--device %s: GPU jobs under mpirun come later (docs/mpi.md)", j.device);
    }
    if (!job_rank) {   /* rank 0 writes; the others wait for its decision */
        out_check();
        out_source_usable(j.model);   /* a file output carries the config too (its metadata) */
        out_space(j.output, out_model_bytes(j.model));
    }
    job_sync();
    tool_apply_threads();

    lop_err e = {0};
    wm_targets *tg;
    if (wm_targets_new(&tg, &j, &e)) tool_die_err(&e);
    wm_totals tot = {0};
    double t0 = tool_now_seconds();
    int rc = j.method != METHOD_MAGNITUDE ? wm_run_wanda(&j, tg, &tot, &e)
                                          : wm_run_magnitude(&j, tg, &tot, &e);
    wm_targets_free(tg);
    if (rc) tool_die_err(&e);
    tot.t_total = tool_now_seconds() - t0;
    wm_report_summary(&j, &tot);
    return 0;
}
