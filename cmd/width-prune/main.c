/* width-prune — remove MLP neurons, attention heads (GQA-aware) and hidden channels of a transformer,
 * scored by calibration activations (Minitron) or by weights alone (OptiPFair), and write a smaller
 * model whose config says so. Weight-only scores stream tensor by tensor. */
#include "blas_tune.h"
#include "tool.h"
#include "outpath.h"
#include "wprune.h"
#include <getopt.h>
#include <locale.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
"usage: width-prune -m MODEL -o OUT [--mlp-keep N | --mlp-percent P]\n"
"                   [--heads-keep H | --head-percent P] [--kv-keep G] [--hidden-keep D | --hidden-percent P]\n"
"                   [--importance activation|maw|vow|pon] [--data FILE --samples N --ctx N]\n"
"Structured width pruning: removes MLP neurons (rows of gate/up_proj, columns of down_proj),\n"
"attention heads (q/k/v/o_proj slices; head_dim and the q/k norms unchanged) and hidden channels\n"
"(embedding columns, every norm, every projection's input/output, the head), and writes a smaller\n"
"model with config.json updated (intermediate_size, num_attention_heads, num_key_value_heads,\n"
"hidden_size, head_dim written explicitly). transformers' Llama/Qwen/Gemma 3 configs hold one\n"
"intermediate_size and one head count, so every layer keeps the same COUNT; WHICH units each layer\n"
"keeps is chosen per layer by importance.\n"
"\n"
"  -m, --model PATH        model folder, .safetensors file (maybe .zst), or - (stream on stdin)\n"
"  -o, --output PATH       folder, .safetensors file, or - (stream on stdout)\n"
"      --mlp-keep N        MLP neurons to keep in every layer (of intermediate_size)\n"
"      --mlp-percent P     remove round(P%% of intermediate_size) neurons in every layer\n"
"      --heads-keep H      query heads to keep in every layer, the same number in each kept KV\n"
"                          group (H a multiple of the kept groups)\n"
"      --head-percent P    remove about P%% of the query heads (rounded to whole heads per group)\n"
"      --kv-keep G         KV groups (key/value heads) to keep, whole groups with their query\n"
"                          heads (default: all); chosen by the summed score of their heads\n"
"      --hidden-keep D     hidden channels to keep (of hidden_size), the same in every layer;\n"
"                          needs --importance activation\n"
"      --hidden-percent P  remove round(P%% of hidden_size) hidden channels (as --hidden-keep)\n"
"      --importance M      activation (default; needs --data): mean |activation| over the\n"
"                          calibration tokens (neurons: the input of down_proj; heads: the L2\n"
"                          norm of the head's contribution through o_proj; channels: every\n"
"                          norm's output, summed); maw, vow, pon: OptiPFair's weight-only scores\n"
"                          (no data; the tool then streams tensor by tensor)\n"
"      --data FILE         calibration text: plain text (packed windows) or .jsonl \"text\", maybe .zst\n"
"      --samples N         calibration sequences (default 128)\n"
"      --ctx N             tokens per sequence (default 512, at most the model's context)\n"
"      --batch N           sequences per forward pass (default 8)\n"
"      --max-shard-size S  folder output: bytes per shard (default 5G; K/M/G, GB/MB)\n"
"      --zstd[=LEVEL]      compress a file or stream output with zstd (default level 3)\n"
TOOL_COMMON_HELP
"\nOutput: one JSON line per layer and pruned part {\"layer\",\"part\":\"mlp\"|\"heads\",\"before\",\n"
"\"after\",\"kept\",\"scores\"} (heads add \"kv_kept\"), one {\"part\":\"hidden\",...} line, then a summary\n"
"{\"importance\",\"params_before\",\"params_after\",\"reduction\",...} (on stderr when -o - puts the\n"
"model on stdout). Gemma: keeping D of C channels multiplies the embedding by sqrt(C/D) (and, tied,\n"
"divides the final norm's 1+w by it) so that embeddings and logits keep their scale.\n");
}

enum { O_MLP_KEEP = 0x100, O_MLP_PCT, O_HEADS_KEEP, O_HEAD_PCT, O_KV_KEEP, O_HIDDEN, O_HIDDEN_PCT, O_IMP, O_DATA,
       O_SAMPLES, O_CTX, O_BATCH, O_SHARD, O_ZSTD };

int main(int argc, char **argv) {
    tool_blas_reexec(argv);
    tool_init("width-prune", argc, argv);
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'}, {"output", required_argument, 0, 'o'},
        {"mlp-keep", required_argument, 0, O_MLP_KEEP}, {"mlp-percent", required_argument, 0, O_MLP_PCT},
        {"heads-keep", required_argument, 0, O_HEADS_KEEP}, {"head-percent", required_argument, 0, O_HEAD_PCT},
        {"kv-keep", required_argument, 0, O_KV_KEEP}, {"hidden-keep", required_argument, 0, O_HIDDEN},
        {"hidden-percent", required_argument, 0, O_HIDDEN_PCT},
        {"importance", required_argument, 0, O_IMP}, {"data", required_argument, 0, O_DATA},
        {"samples", required_argument, 0, O_SAMPLES}, {"ctx", required_argument, 0, O_CTX},
        {"batch", required_argument, 0, O_BATCH},
        {"max-shard-size", required_argument, 0, O_SHARD}, {"zstd", optional_argument, 0, O_ZSTD},
        TOOL_COMMON_LONGOPTS, {0, 0, 0, 0}};
    wp_job j = {.samples = 128, .ctx = 512, .batch = 8, .mlp_pct = -1, .head_pct = -1, .hidden_pct = -1,
                .imp = WIDTH_ACTIVATION};
    int have_imp = 0, c;
    while ((c = getopt_long(argc, argv, "m:o:" TOOL_COMMON_SHORTOPTS, lo, NULL)) != -1) {
        if (tool_common_opt(c, optarg, usage)) continue;
        switch (c) {
        case 'm': j.model = optarg; break;
        case 'o': j.output = optarg; break;
        case O_MLP_KEEP: j.mlp_keep = (int)opt_int("--mlp-keep", optarg, 1, 1 << 30); break;
        case O_MLP_PCT: j.mlp_pct = opt_double("--mlp-percent", optarg, 0, 100); break;
        case O_HEADS_KEEP: j.heads_keep = (int)opt_int("--heads-keep", optarg, 1, 1 << 20); break;
        case O_HEAD_PCT: j.head_pct = opt_double("--head-percent", optarg, 0, 100); break;
        case O_KV_KEEP: j.kv_keep = (int)opt_int("--kv-keep", optarg, 1, 1 << 20); break;
        case O_HIDDEN: j.hidden_keep = (int)opt_int("--hidden-keep", optarg, 1, 1 << 30); break;
        case O_HIDDEN_PCT: j.hidden_pct = opt_double("--hidden-percent", optarg, 0, 100); break;
        case O_IMP:
            if (width_imp_parse(optarg, &j.imp))
                tool_die_usage("--importance: expected activation, maw, vow or pon, got '%s'", optarg);
            have_imp = 1;
            break;
        case O_DATA: j.data = optarg; break;
        case O_SAMPLES: j.samples = (int)opt_int("--samples", optarg, 1, 1 << 20); break;
        case O_CTX: j.ctx = (int)opt_int("--ctx", optarg, 2, 1 << 20); break;
        case O_BATCH: j.batch = (int)opt_int("--batch", optarg, 1, 1 << 16); break;
        case O_SHARD: j.wo.max_shard_size = opt_size("--max-shard-size", optarg); break;
        case O_ZSTD: j.wo.zstd_level = optarg ? (int)opt_int("--zstd", optarg, 1, 22) : 3; break;
        default: tool_die_usage("unknown option");
        }
    }
    if (optind < argc) tool_die_usage("unexpected argument '%s'", argv[optind]);
    if (!j.model) tool_die_usage("-m/--model is required");
    if (!j.output) tool_die_usage("-o/--output is required");
    if (j.mlp_keep && j.mlp_pct >= 0) tool_die_usage("give one of --mlp-keep and --mlp-percent");
    if (j.heads_keep && j.head_pct >= 0) tool_die_usage("give one of --heads-keep and --head-percent");
    if (j.hidden_keep && j.hidden_pct >= 0) tool_die_usage("give one of --hidden-keep and --hidden-percent");
    if (!j.mlp_keep && j.mlp_pct < 0 && !j.heads_keep && j.head_pct < 0 && !j.kv_keep && !j.hidden_keep && j.hidden_pct < 0)
        tool_die_usage("nothing to prune: give --mlp-keep/--mlp-percent, --heads-keep/--head-percent, "
                  "--kv-keep or --hidden-keep/--hidden-percent");
    if (j.imp == WIDTH_ACTIVATION) {
        if (!j.data)
            tool_die_usage("--importance activation%s needs calibration text (--data FILE); weight-only "
                      "scores need none: --importance maw, vow or pon", have_imp ? "" : " (the default)");
    } else {
        if (j.data) tool_die_usage("--data is for --importance activation (%s scores weights only)", width_imp_name(j.imp));
        if (j.hidden_keep || j.hidden_pct >= 0)
            tool_die_usage("--hidden-keep/--hidden-percent needs --importance activation: channels are scored on the "
                      "residual stream (OptiPFair's weight scores are defined for MLP neurons)");
    }
    /* the output guard: inputs and the output checked before any work */
    out_input("model", j.model);
    out_input("data", j.data);
    j.output = out_output("-o", j.output, OUT_MODEL);
    out_check();
    if (out_is_folder(j.output)) out_source_usable(j.model);
    out_space(j.output, out_model_bytes(j.model));
    tool_apply_threads();
    setlocale(LC_NUMERIC, "C");
    /* held tensors and slice buffers of every layer are the same sizes again and again: keep freed
     * blocks in the heap for reuse instead of unmapping them (page faults were half the time) */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    j.json = strcmp(j.output, "-") ? stdout : stderr;

    lop_err e = {0};
    double t0 = tool_now_seconds();
    int rc = j.imp == WIDTH_ACTIVATION ? wp_run_activation(&j, &e) : wp_run_stream(&j, &e);
    if (rc) tool_die_err(&e);
    j.seconds = tool_now_seconds() - t0;
    wp_report(&j);
    wp_job_free(&j);
    return 0;
}
