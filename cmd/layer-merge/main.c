/* layer-merge — collapse runs of layers into one (LaCo's RDSC rule, or their mean), either where
 * the user says (--merge A-B, streaming) or where LaCo's iterative search finds it harmless
 * (--laco, on the forward engine). */
#include "laco.h"
#include "layers.h"
#include "report.h"
#include "parse.h"
#include "outpath.h"
#include "tool.h"
#include "provenance.h"
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: layer-merge -m MODEL (--merge A-B [--merge C-D ...] | --laco --data FILE [LaCo options])\n"
        "                   [--average | --replace] -o OUT\n"
        "Collapse layers A..B into one layer (it takes A's place; later layers are renumbered):\n"
        "  RDSC (LaCo, default): θ = θ_A + Σ_{k=A+1..B} (θ_k − θ_A) for the q/k/v/o/gate/up/down\n"
        "  projections (weights and biases) and the q/k norms; the layer's other norms are A's.\n"
        "  Computed in float32, written in the stored dtype (round to nearest even).\n"
        "\n"
        "  -m, --model PATH         model folder, .safetensors file, or - (stream; --merge only)\n"
        "  -o, --output PATH        folder, .safetensors file, or - (stream on stdout)\n"
        "      --merge A-B          merge layers A..B (repeatable, disjoint)\n"
        "      --average            merge by the mean of the layers instead of RDSC\n"
        "      --replace            the official LaCo code's in-place update (θ ends as θ_B, up to\n"
        "                           rounding): for comparison with published LaCo numbers\n"
        "      --laco               LaCo's iterative search (needs --data):\n"
        "  -C N                     layers per merge (the base and N-1 after it; default 4)\n"
        "  -L N                     lowest base layer tried (default 1)\n"
        "  -H N                     highest layer: the first base is H-C (default: the layer count)\n"
        "  -I N                     after an accepted merge move down by N (default 2), else by 1\n"
        "  -T X                     accept when the mean cosine similarity of the final hidden\n"
        "                           states with the original model's is above X (default 0.65)\n"
        "      --max-compression R  stop when this fraction of the layers is gone (default 1)\n"
        "      --data FILE          calibration text (text, JSONL {\"text\"}, .zst)\n"
        "      --samples N          calibration samples (default 5, as the official code's sentences)\n"
        "      --ctx N              tokens per sample (default 128)\n"
        "      --lines              one sample per line of a text file (default: packed windows)\n"
        "      --device D           where LaCo's forwards run: cpu (default), cuda, cuda:N (a build\n"
        "                           made where nvcc is; the merging itself stays on the cpu)\n"
        "      --max-shard-size S   folder output: bytes per shard (default 5G)\n"
        "      --zstd[=LEVEL]       compress a file or stream output with zstd\n"
        TOOL_COMMON_HELP
        "\nOutput: JSON lines: per merge {\"action\":\"merge\",\"layers\":[A,B],\"into\",\"rule\",\"params\"}\n"
        "(--laco: per attempt {\"action\":\"try\",\"base\",\"layers\",\"similarity\",\"accepted\"}, then\n"
        "the statistics), and a summary {\"layers_before\",\"layers_after\",\"params_before\",\n"
        "\"params_after\",\"reduction\"}. On stderr when -o - puts the model on stdout.\n");
}

enum { OPT_MERGE = 1, OPT_AVERAGE, OPT_REPLACE, OPT_LACO, OPT_MAXC, OPT_DATA, OPT_SAMPLES,
       OPT_CTX, OPT_LINES, OPT_SHARD, OPT_ZSTD, OPT_DEVICE };

static void on_bytes(void *user, uint64_t bytes) { progress_update(user, bytes / 1e6); }

static int cmp_pair(const void *a, const void *b) {
    const int *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

/* --merge A-B ...: one streaming pass */
static void merge_fixed(const char *model, const char *out, int (*pairs)[2], int np,
                        lop_merge_rule rule, const st_write_opts *wo) {
    lop_err e;
    lop_surgery s;
    if (surgery_open(&s, model, &e)) tool_die_err(&e);
    if (!s.has_cfg) tool_warn("%s has no config.json: layers found by name (%s*), no config written", model, s.prefix);
    qsort(pairs, np, sizeof *pairs, cmp_pair);
    int *first = malloc(np * sizeof *first), *last = malloc(np * sizeof *last);
    if (!first || !last) tool_die(1, "out of memory");
    for (int i = 0; i < np; i++) { first[i] = pairs[i][0]; last[i] = pairs[i][1]; }
    lop_layer_map map;
    if (layer_map_merge(&map, s.n_layers, first, last, np, &e)) tool_die_err(&e);
    lop_plan plan;
    progress pg;
    uint64_t total = 0;
    for (int i = 0; i < s.n; i++) total += s.infos[i].nbytes;
    out_space(out, total);
    progress_start(&pg, "merging", total / 1e6, "MB");
    if (surgery_write(&s, &map, rule, out, wo, &plan, on_bytes, &pg, &e)) tool_die_err(&e);
    progress_end(&pg);
    for (int j = 0; j < map.n_out; j++) {
        if (map.first[j] == map.last[j]) continue;
        int64_t p = 0;
        for (int l = map.first[j]; l <= map.last[j]; l++) p += plan.layer_params[l];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "action", "merge");
        int ab[2] = {map.first[j], map.last[j]};
        cJSON_AddItemToObject(o, "layers", cJSON_CreateIntArray(ab, 2));
        cJSON_AddNumberToObject(o, "into", j);
        cJSON_AddStringToObject(o, "rule", lm_rule_name(rule));
        cJSON_AddNumberToObject(o, "params", (double)p);
        tool_emit(o);
    }
    lm_summary(s.n_layers, map.n_out, plan.params_in, plan.params_out, out);
    layer_plan_free(&plan);
    layer_map_free(&map);
    surgery_close(&s);
    free(first); free(last);
}

int main(int argc, char **argv) {
    tool_init("layer-merge", argc, argv);
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'}, {"output", required_argument, 0, 'o'},
        {"merge", required_argument, 0, OPT_MERGE}, {"average", no_argument, 0, OPT_AVERAGE},
        {"replace", no_argument, 0, OPT_REPLACE}, {"laco", no_argument, 0, OPT_LACO},
        {"max-compression", required_argument, 0, OPT_MAXC}, {"data", required_argument, 0, OPT_DATA},
        {"samples", required_argument, 0, OPT_SAMPLES}, {"ctx", required_argument, 0, OPT_CTX},
        {"seq-len", required_argument, 0, OPT_CTX}, {"max-length", required_argument, 0, OPT_CTX},
        {"lines", no_argument, 0, OPT_LINES}, {"device", required_argument, 0, OPT_DEVICE},
        {"max-shard-size", required_argument, 0, OPT_SHARD}, {"zstd", optional_argument, 0, OPT_ZSTD},
        TOOL_COMMON_LONGOPTS, {0, 0, 0, 0}};
    const char *model = NULL, *out = NULL;
    int (*pairs)[2] = NULL, np = 0, laco = 0;
    lop_merge_rule rule = LMERGE_RDSC;
    int nrule = 0;
    laco_opts lc = laco_default_opts();
    st_write_opts wo = {0, 0};
    int c;
    while ((c = getopt_long(argc, argv, "m:o:C:L:H:I:T:" TOOL_COMMON_SHORTOPTS, lo, NULL)) != -1) {
        if (tool_common_opt(c, optarg, usage)) continue;
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': out = optarg; break;
        case OPT_MERGE: {
            char *dash = strchr(optarg, '-');
            lop_err e;
            long long a, b;
            if (!dash) tool_die_usage("--merge: '%s' is not A-B", optarg);
            *dash = 0;
            if (parse_int(optarg, 0, 1 << 20, &a, &e) || parse_int(dash + 1, 0, 1 << 20, &b, &e))
                { *dash = '-'; tool_die_usage("--merge: '%s' is not A-B", optarg); }
            *dash = '-';
            if (b <= a) tool_die_usage("--merge %s: needs A < B", optarg);
            pairs = realloc(pairs, (np + 1) * sizeof *pairs);
            if (!pairs) tool_die(1, "out of memory");
            pairs[np][0] = (int)a; pairs[np][1] = (int)b; np++;
            break;
        }
        case OPT_AVERAGE: rule = LMERGE_AVERAGE; nrule++; break;
        case OPT_REPLACE: rule = LMERGE_REPLACE; nrule++; break;
        case OPT_LACO: laco = 1; break;
        case 'C': lc.C = (int)opt_int("-C", optarg, 2, 1 << 20); break;
        case 'L': lc.L = (int)opt_int("-L", optarg, 0, 1 << 20); break;
        case 'H': lc.H = (int)opt_int("-H", optarg, 1, 1 << 20); break;
        case 'I': lc.I = (int)opt_int("-I", optarg, 1, 1 << 20); break;
        case 'T': lc.T = opt_double("-T", optarg, -1, 1); break;
        case OPT_MAXC: lc.max_compression = opt_double("--max-compression", optarg, 0, 1); break;
        case OPT_DATA: lc.data = optarg; break;
        case OPT_SAMPLES: lc.samples = (int)opt_int("--samples", optarg, 1, 1 << 24); break;
        case OPT_CTX: lc.ctx = (int)opt_int("--ctx", optarg, 2, 1 << 20); break;
        case OPT_LINES: lc.lines = 1; break;
        case OPT_DEVICE: lc.device = optarg; break;
        case OPT_SHARD: wo.max_shard_size = opt_size("--max-shard-size", optarg); break;
        case OPT_ZSTD: wo.zstd_level = optarg ? (int)opt_int("--zstd", optarg, 1, 22) : 3; break;
        default: tool_die_usage("unknown option");
        }
    }
    if (optind < argc) tool_die_usage("unexpected argument '%s'", argv[optind]);
    if (!model) tool_die_usage("-m/--model is required");
    if (!out) tool_die_usage("-o/--output is required");
    if (nrule > 1) tool_die_usage("--average and --replace exclude each other");
    if (!!np + laco != 1) tool_die_usage("give --merge A-B (repeatable) or --laco");
    if (laco && !lc.data) tool_die_usage("--laco needs --data FILE (calibration text)");
    if (!laco && lc.data) tool_die_usage("--data goes with --laco");
    if (!laco && lc.device) tool_die_usage("--device goes with --laco (--merge runs no forward)");
    out_input("model", model);
    out_input("data", lc.data);
    out = out_output("-o", out, OUT_MODEL);
    out_check();
    if (out_is_folder(out)) out_source_usable(model);
    tool_apply_threads();
    tool_stdout_is_data(!strcmp(out, "-"));
    if (laco) {
        lc.rule = rule;
        lop_err e;
        if (laco_run(model, out, &lc, &wo, &e)) tool_die_err(&e);
    } else {
        merge_fixed(model, out, pairs, np, rule, &wo);
    }
    free(pairs);
    return 0;
}
