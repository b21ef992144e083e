/* layer-drop — remove whole transformer layers, renumber the rest, fix the config; streaming. */
#include "layers.h"
#include "outpath.h"
#include "parse.h"
#include "tool.h"
#include "provenance.h"
#include <getopt.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: layer-drop -m MODEL (--drop LIST | --keep LIST | --scores FILE --n K | --percent P) -o OUT\n"
        "Remove whole layers of a transformer: the kept layers are renumbered in order, the config's\n"
        "num_hidden_layers and per-layer entries (Gemma's layer_types, written out explicitly) follow.\n"
        "Streams tensor by tensor: memory stays bounded by the largest tensor; works in a pipe.\n"
        "\n"
        "  -m, --model PATH        model folder, .safetensors file (maybe .zst), or - (stream on stdin)\n"
        "  -o, --output PATH       folder, .safetensors file, or - (stream on stdout)\n"
        "      --drop LIST         layers to remove, e.g. 2,5-7\n"
        "      --keep LIST         layers to keep, e.g. 0-7,25-33 (the others are removed)\n"
        "      --scores FILE       layer-score output: remove the lowest-scoring layers (needs --n or --percent)\n"
        "  -n, --n K               how many layers to remove with --scores\n"
        "      --percent P         remove round(P%% of the layers): the lowest-scoring with --scores,\n"
        "                          else the deepest ones before the last layer (Gromov et al.)\n"
        "      --max-shard-size S  folder output: bytes per shard (default 5G; K/M/G, GB/MB)\n"
        "      --zstd[=LEVEL]      compress a file or stream output with zstd (default level 3)\n"
        TOOL_COMMON_HELP
        "\nOutput: one JSON line per removed layer {\"action\":\"drop\",\"layer\",\"params\"}, then a summary\n"
        "{\"layers_before\",\"layers_after\",\"params_before\",\"params_after\",\"reduction\"} (on stderr\n"
        "when -o - puts the model on stdout).\n");
}

enum { OPT_DROP = 1, OPT_KEEP, OPT_SCORES, OPT_N, OPT_PERCENT, OPT_SHARD, OPT_ZSTD };

static void on_bytes(void *user, uint64_t bytes) { progress_update(user, bytes / 1e6); }

int main(int argc, char **argv) {
    tool_init("layer-drop", argc, argv);
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'}, {"output", required_argument, 0, 'o'},
        {"drop", required_argument, 0, OPT_DROP}, {"keep", required_argument, 0, OPT_KEEP},
        {"scores", required_argument, 0, OPT_SCORES}, {"n", required_argument, 0, OPT_N},
        {"percent", required_argument, 0, OPT_PERCENT},
        {"max-shard-size", required_argument, 0, OPT_SHARD},
        {"zstd", optional_argument, 0, OPT_ZSTD},
        TOOL_COMMON_LONGOPTS, {0, 0, 0, 0}};
    const char *model = NULL, *out = NULL, *drop = NULL, *keep = NULL, *scores = NULL;
    long long k = -1;
    double percent = -1;
    st_write_opts wo = {0, 0};
    int c;
    while ((c = getopt_long(argc, argv, "m:o:n:" TOOL_COMMON_SHORTOPTS, lo, NULL)) != -1) {
        if (tool_common_opt(c, optarg, usage)) continue;
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': out = optarg; break;
        case OPT_DROP: drop = optarg; break;
        case OPT_KEEP: keep = optarg; break;
        case OPT_SCORES: scores = optarg; break;
        case 'n': case OPT_N: k = opt_int("--n", optarg, 1, 1 << 20); break;
        case OPT_PERCENT: percent = opt_double("--percent", optarg, 0, 100); break;
        case OPT_SHARD: wo.max_shard_size = opt_size("--max-shard-size", optarg); break;
        case OPT_ZSTD: wo.zstd_level = optarg ? (int)opt_int("--zstd", optarg, 1, 22) : 3; break;
        default: tool_die_usage("unknown option");
        }
    }
    if (optind < argc) tool_die_usage("unexpected argument '%s'", argv[optind]);
    if (!model) tool_die_usage("-m/--model is required");
    if (!out) tool_die_usage("-o/--output is required");
    int forms = !!drop + !!keep + (scores || percent >= 0);
    if (forms != 1) tool_die_usage("give exactly one of --drop, --keep, --scores, --percent");
    if (k >= 0 && !scores) tool_die_usage("--n goes with --scores");
    if (scores && (k < 0) == (percent < 0)) tool_die_usage("--scores needs one of --n K or --percent P");
    out_input("model", model);
    out_input("scores", scores);
    out = out_output("-o", out, OUT_MODEL);
    out_check();
    if (out_is_folder(out)) out_source_usable(model);
    tool_apply_threads();
    setlocale(LC_NUMERIC, "C");
    tool_stdout_is_data(!strcmp(out, "-"));

    lop_err e;
    lop_surgery s;
    if (surgery_open(&s, model, &e)) tool_die_err(&e);
    int L = s.n_layers;
    if (!s.has_cfg) tool_warn("%s has no config.json: layers found by name (%s*), no config written", model, s.prefix);

    /* the set of dropped layers */
    uint8_t *gone = calloc(L ? L : 1, 1);
    if (!gone) tool_die(1, "out of memory");
    int *v = NULL, nv = 0;
    if (drop || keep) {
        int dup;
        if (parse_ranges_dup(drop ? drop : keep, L, &v, &nv, &dup, &e)) tool_die_usage("%s: %s", drop ? "--drop" : "--keep", e.msg);
        if (dup >= 0) tool_warn("%s %s: layer %d is listed more than once", drop ? "--drop" : "--keep", drop ? drop : keep, dup);
        for (int i = 0; i < L; i++) gone[i] = keep ? 1 : 0;
        for (int i = 0; i < nv; i++) gone[v[i]] = drop ? 1 : 0;
    } else {
        if (percent >= 0) {
            k = llround(percent / 100.0 * L);
            if (k < 1) tool_die_usage("--percent %g of %d layers is no layer", percent, L);
        }
        if (k >= L) tool_die_usage("cannot drop %lld of %d layers: at least one must stay", k, L);
        if (scores) {
            lop_scores sc;
            if (layer_scores_read(&sc, scores, L, &e)) tool_die_err(&e);
            if (layer_scores_pick(&sc, (int)k, &v, &e)) tool_die_err(&e);
            layer_scores_free(&sc);
            nv = (int)k;
        } else {   /* the deepest layers before the last one */
            v = malloc(k * sizeof *v);
            if (!v) tool_die(1, "out of memory");
            for (int i = 0; i < k; i++) v[i] = L - 1 - (int)k + i;
            nv = (int)k;
        }
        for (int i = 0; i < nv; i++) gone[v[i]] = 1;
    }
    free(v);
    int nkeep = 0, *kept = malloc((L ? L : 1) * sizeof *kept);
    if (!kept) tool_die(1, "out of memory");
    for (int i = 0; i < L; i++) if (!gone[i]) kept[nkeep++] = i;
    if (nkeep == 0) tool_die_usage("cannot drop all %d layers: at least one must stay", L);
    if (nkeep == L) tool_die_usage("nothing to drop");

    lop_layer_map map;
    if (layer_map_keep(&map, L, kept, nkeep, &e)) tool_die_err(&e);
    lop_plan plan;
    progress pg;
    uint64_t total = 0;
    for (int i = 0; i < s.n; i++) total += s.infos[i].nbytes;
    out_space(out, total);   /* at most the input's bytes */
    progress_start(&pg, "copying", total / 1e6, "MB");
    if (surgery_write(&s, &map, LMERGE_RDSC, out, &wo, &plan, on_bytes, &pg, &e)) tool_die_err(&e);
    progress_end(&pg);

    char list[4096] = "";
    size_t ll = 0;
    for (int l = 0; l < L; l++) {
        if (!gone[l]) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "action", "drop");
        cJSON_AddNumberToObject(o, "layer", l);
        cJSON_AddNumberToObject(o, "params", (double)plan.layer_params[l]);
        tool_emit(o);
        if (ll + 16 < sizeof list) ll += snprintf(list + ll, sizeof list - ll, "%s%d", ll ? "," : "", l);
    }
    double red = plan.params_in ? 1.0 - (double)plan.params_out / (double)plan.params_in : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "layers_before", L);
    cJSON_AddNumberToObject(o, "layers_after", nkeep);
    cJSON_AddNumberToObject(o, "params_before", (double)plan.params_in);
    cJSON_AddNumberToObject(o, "params_after", (double)plan.params_out);
    cJSON_AddNumberToObject(o, "reduction", red);
    cJSON_AddStringToObject(o, "output", out);
    tool_emit(o);
    char a[32], b[32];
    tool_note("dropped %d of %d layers (%s): %s \xe2\x86\x92 %s (%.2f%%)", L - nkeep, L, list,
         tool_commas(plan.params_in, a, sizeof a), tool_commas(plan.params_out, b, sizeof b), 100 * red);
    layer_plan_free(&plan);
    layer_map_free(&map);
    surgery_close(&s);
    free(kept); free(gone);
    return 0;
}
