/* st-cat — concatenate safetensors inputs (files, HF folders, streams, .zst) into one output, or
 * describe them: -l (one JSON line per tensor), --summary (counts), --stats (per-tensor values).
 * Tensors move one at a time: memory stays bounded by the largest tensor. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <getopt.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "config.h"
#include "fsutil.h"
#include "parse.h"
#include "safetensors.h"
#include "stats.h"
#include "outpath.h"
#include "tool.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: st-cat [OPTIONS] [INPUT...]\n"
        "Concatenate safetensors inputs into one output (a stream on stdout by default), or describe them.\n"
        "INPUT: an HF model folder, a .safetensors file (maybe .zst), or - for a stream on stdin\n"
        "(the default when no INPUT is given).\n\n"
        "  -l, --list            one JSON line per tensor: name, dtype, shape, params, bytes\n"
        "      --summary         one JSON line: tensors, params, bytes, layers (with a config also\n"
        "                        the per-layer parameter counts and the embedding/head share)\n"
        "      --stats           one JSON line per tensor: min, max, mean, std, zeros (count),\n"
        "                        sparsity (fraction of zeros), nan, inf\n"
        "      --dtype T         convert floating-point tensors to T: f32, bf16 or f16\n"
        "      --select REGEX    keep only tensors whose name matches (PCRE2, unanchored)\n"
        "      --exclude REGEX   drop tensors whose name matches\n"
        "      --zstd[=LEVEL]    compress the output file or stream with zstd (level 1-19, default 3)\n"
        "      --max-shard-size SIZE  folder output: bytes per shard (default 5GB; K/M/G/T, GB, GiB)\n"
        "      --config FILE     use this config.json (else the first input's)\n"
        "  -m, --model PATH      an input (same as a positional INPUT)\n"
        "  -o, --output PATH     - (stdout stream, the default), a FILE (.safetensors or .zst) or a\n"
        "                        folder (a complete HF model folder); written atomically\n"
        TOOL_COMMON_HELP);
}

enum { O_SUMMARY = 0x2000, O_STATS, O_DTYPE, O_SELECT, O_EXCLUDE, O_ZSTD, O_SHARD, O_CONFIG };

typedef struct input {
    const char *path;
    st_reader *r;
    const st_info *infos;
    int n;
    uint8_t *keep;                 /* [n] selected */
    int first_out;                 /* output index of its first kept tensor */
} input;

static pcre2_code *compile_re(const char *opt, const char *re) {
    int err; PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &off, NULL);
    if (!c) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        tool_die_usage("%s: bad regular expression '%s' at offset %zu: %s", opt, re, (size_t)off, (char *)msg);
    }
    return c;
}

static int re_match(pcre2_code *c, pcre2_match_data *md, const char *s) {
    int r = pcre2_match(c, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
    if (r < -1) tool_die(1, "regular expression failed on '%s' (error %d)", s, r);
    return r >= 0;
}

static cJSON *shape_json(const st_info *t) {
    cJSON *a = cJSON_CreateArray();
    for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)t->shape[d]));
    return a;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const st_info *const *)a)->name, (*(const st_info *const *)b)->name);
}

/* Convert n elements between float dtypes (through float32, in chunks). */
static void convert(void *dst, st_dtype to, const void *src, st_dtype from, uint64_t n) {
    if (from == ST_F32) { st_from_f32(dst, src, to, n); return; }
    if (to == ST_F32) { st_to_f32(dst, src, from, n); return; }
    float tmp[4096];
    size_t sf = st_dtype_size(from), st = st_dtype_size(to);
    for (uint64_t i = 0; i < n; i += 4096) {
        size_t k = n - i < 4096 ? (size_t)(n - i) : 4096;
        st_to_f32(tmp, (const char *)src + i * sf, from, k);
        st_from_f32((char *)dst + i * st, tmp, to, k);
    }
}

static void print_summary(const st_info *const *v, int n, const char *config_json) {
    uint64_t params = 0, bytes = 0;
    int max_layer = -1;
    lop_config c;
    lop_err e;
    int have_cfg = config_json && config_parse(&c, config_json, &e) == 0;
    if (config_json && !have_cfg) tool_warn("config ignored: %s", e.msg);
    for (int i = 0; i < n; i++) {
        params += st_numel(v[i]); bytes += v[i]->nbytes;
        int l = config_tensor_layer(have_cfg ? &c : NULL, v[i]->name, NULL);
        if (l > max_layer) max_layer = l;
    }
    int layers = have_cfg ? c.n_layers : max_layer + 1;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "tensors", n);
    cJSON_AddNumberToObject(o, "params", (double)params);
    cJSON_AddNumberToObject(o, "bytes", (double)bytes);
    cJSON_AddNumberToObject(o, "layers", layers);
    cJSON *dt = cJSON_CreateObject();
    for (int t = 0; t < ST_NDTYPES; t++) {
        uint64_t p = 0; int any = 0;
        for (int i = 0; i < n; i++) if (v[i]->dtype == (st_dtype)t) { p += st_numel(v[i]); any = 1; }
        if (any) cJSON_AddNumberToObject(dt, st_dtype_name((st_dtype)t), (double)p);
    }
    cJSON_AddItemToObject(o, "dtypes", dt);
    if (have_cfg) {
        const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
        for (int i = 0; names && i < n; i++) names[i] = v[i]->name;
        if (names) config_detect_prefix(&c, names, n);
        free(names);
        int nl = layers > max_layer + 1 ? layers : max_layer + 1;
        uint64_t *per = calloc((size_t)(nl ? nl : 1), sizeof *per);
        uint64_t emb = 0, head = 0;
        char ename[160];
        config_embed_name(&c, ename, sizeof ename);
        for (int i = 0; i < n; i++) {
            int l = config_tensor_layer(&c, v[i]->name, NULL);
            if (l >= 0 && per) per[l] += st_numel(v[i]);
            if (!strcmp(v[i]->name, ename)) emb += st_numel(v[i]);
            if (!strcmp(v[i]->name, c.head_name)) head += st_numel(v[i]);
        }
        cJSON_AddStringToObject(o, "model_type", c.model_type);
        cJSON_AddNumberToObject(o, "config_params", (double)config_param_count(&c));
        cJSON_AddNumberToObject(o, "layer_params", (double)config_layer_param_count(&c));
        cJSON *pl = cJSON_CreateArray();
        for (int l = 0; per && l < nl; l++) cJSON_AddItemToArray(pl, cJSON_CreateNumber((double)per[l]));
        cJSON_AddItemToObject(o, "per_layer", pl);
        cJSON_AddNumberToObject(o, "embed_params", (double)emb);
        cJSON_AddNumberToObject(o, "head_params", (double)head);
        cJSON_AddBoolToObject(o, "tied", c.tied);
        cJSON_AddNumberToObject(o, "embed_head_share", params ? (double)(emb + head) / (double)params : 0);
        free(per);
        config_free(&c);
    }
    tool_emit(o);
}

static void print_stats(const st_info *t, const void *data) {
    tensor_stats s;
    tensor_stats_compute(&s, data, t->dtype, st_numel(t));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "dtype", st_dtype_name(t->dtype));
    cJSON_AddItemToObject(o, "shape", shape_json(t));
    if (s.finite) {
        cJSON_AddNumberToObject(o, "min", s.min);
        cJSON_AddNumberToObject(o, "max", s.max);
        cJSON_AddNumberToObject(o, "mean", s.mean);
        cJSON_AddNumberToObject(o, "std", s.std);
    } else {
        cJSON_AddNullToObject(o, "min"); cJSON_AddNullToObject(o, "max");
        cJSON_AddNullToObject(o, "mean"); cJSON_AddNullToObject(o, "std");
    }
    /* the suite's one meaning: "zeros" is a count, "sparsity" the fraction (as wmask reports) */
    cJSON_AddNumberToObject(o, "zeros", (double)s.zeros);
    cJSON_AddNumberToObject(o, "sparsity", s.n ? (double)s.zeros / (double)s.n : 0);
    cJSON_AddNumberToObject(o, "nan", (double)s.nan);
    cJSON_AddNumberToObject(o, "inf", (double)s.inf);
    tool_emit(o);
}

int main(int argc, char **argv) {
    tool_init("st-cat", argc, argv);
    static const struct option lo[] = {
        {"list", no_argument, 0, 'l'}, {"summary", no_argument, 0, O_SUMMARY},
        {"stats", no_argument, 0, O_STATS}, {"dtype", required_argument, 0, O_DTYPE},
        {"select", required_argument, 0, O_SELECT}, {"exclude", required_argument, 0, O_EXCLUDE},
        {"zstd", optional_argument, 0, O_ZSTD}, {"max-shard-size", required_argument, 0, O_SHARD},
        {"config", required_argument, 0, O_CONFIG}, {"model", required_argument, 0, 'm'},
        {"output", required_argument, 0, 'o'}, TOOL_COMMON_LONGOPTS, {0, 0, 0, 0}};
    int list = 0, summary = 0, stats = 0, have_dtype = 0, zlevel = 0;
    st_dtype to = ST_F32;
    const char *out = NULL, *sel = NULL, *exc = NULL, *cfg_path = NULL;
    uint64_t shard = 0;
    const char **paths = calloc((size_t)argc + 1, sizeof *paths);
    int np = 0, c;
    if (!paths) tool_die(1, "out of memory");
    while ((c = getopt_long(argc, argv, "lm:o:" TOOL_COMMON_SHORTOPTS, lo, NULL)) != -1) {
        if (tool_common_opt(c, optarg, usage)) continue;
        switch (c) {
        case 'l': list = 1; break;
        case O_SUMMARY: summary = 1; break;
        case O_STATS: stats = 1; break;
        case O_DTYPE:
            if (!strcasecmp(optarg, "f32") || !strcasecmp(optarg, "float32")) to = ST_F32;
            else if (!strcasecmp(optarg, "bf16") || !strcasecmp(optarg, "bfloat16")) to = ST_BF16;
            else if (!strcasecmp(optarg, "f16") || !strcasecmp(optarg, "float16")) to = ST_F16;
            else tool_die_usage("--dtype: '%s' is not f32, bf16 or f16", optarg);
            have_dtype = 1;
            break;
        case O_SELECT: sel = optarg; break;
        case O_EXCLUDE: exc = optarg; break;
        case O_ZSTD: zlevel = optarg ? (int)opt_int("--zstd", optarg, 1, 22) : 3; break;
        case O_SHARD: shard = opt_size("--max-shard-size", optarg); if (!shard) tool_die_usage("--max-shard-size: must be positive"); break;
        case O_CONFIG: cfg_path = optarg; break;
        case 'm': paths[np++] = optarg; break;
        case 'o': out = optarg; break;
        default: usage(stderr); return 2;
        }
    }
    for (int i = optind; i < argc; i++) paths[np++] = argv[i];
    if (!np) paths[np++] = "-";
    if (list + summary > 1) tool_die_usage("-l and --summary are separate reports; choose one");
    int stdin_uses = 0;
    for (int i = 0; i < np; i++) stdin_uses += !strcmp(paths[i], "-");
    if (stdin_uses > 1) tool_die_usage("stdin (-) can be read only once");
    int writing = out || (!list && !summary && !stats);
    if (!out) out = "-";
    if (writing && !strcmp(out, "-") && isatty(1))
        tool_die_usage("refusing to write binary safetensors to a terminal (use -o FILE, or -l/--summary/--stats)");
    if (writing) {
        for (int i = 0; i < np; i++) out_input("input", paths[i]);
        out_input("config", cfg_path);
        out = out_output("-o", out, OUT_MODEL);
        out_check();
        for (int i = 0; i < np && out_is_folder(out); i++) out_source_usable(paths[i]);
    }
    tool_apply_threads();

    pcre2_code *rs = sel ? compile_re("--select", sel) : NULL, *rx = exc ? compile_re("--exclude", exc) : NULL;
    pcre2_match_data *md = (rs || rx) ? pcre2_match_data_create(4, NULL) : NULL;
    lop_err e;
    input *in = calloc((size_t)np, sizeof *in);
    int total = 0;
    for (int i = 0; i < np; i++) {
        in[i].path = paths[i];
        if (st_reader_open(&in[i].r, paths[i], &e)) tool_die_err(&e);
        in[i].infos = st_reader_infos(in[i].r, &in[i].n);
        in[i].keep = calloc((size_t)in[i].n + 1, 1);
        in[i].first_out = total;
        for (int t = 0; t < in[i].n; t++) {
            const char *nm = in[i].infos[t].name;
            in[i].keep[t] = (!rs || re_match(rs, md, nm)) && (!rx || !re_match(rx, md, nm));
            total += in[i].keep[t];
        }
    }
    /* the selected tensors, in input order; names must be distinct across inputs */
    const st_info **sv = malloc((size_t)(total ? total : 1) * sizeof *sv);
    st_info *oinfo = calloc((size_t)(total ? total : 1), sizeof *oinfo);
    uint64_t total_bytes = 0;
    for (int i = 0, k = 0; i < np; i++)
        for (int t = 0; t < in[i].n; t++) {
            if (!in[i].keep[t]) continue;
            sv[k] = &in[i].infos[t];
            oinfo[k] = in[i].infos[t];
            if (have_dtype && st_dtype_is_float(oinfo[k].dtype)) {
                oinfo[k].dtype = to;
                oinfo[k].nbytes = st_numel(&oinfo[k]) * st_dtype_size(to);
            }
            total_bytes += in[i].infos[t].nbytes;
            k++;
        }
    if (np > 1) {
        const st_info **sorted = malloc((size_t)(total ? total : 1) * sizeof *sorted);
        memcpy(sorted, sv, (size_t)total * sizeof *sorted);
        qsort(sorted, (size_t)total, sizeof *sorted, cmp_name);
        for (int i = 1; i < total; i++)
            if (!strcmp(sorted[i]->name, sorted[i - 1]->name)) tool_die(1, "tensor '%s' is in two inputs", sorted[i]->name);
        free(sorted);
    }
    char *cfg_text = NULL;
    const char *config = NULL, *source = NULL;
    if (cfg_path) {
        size_t len;
        if (fs_read_all(cfg_path, &cfg_text, &len, &e)) tool_die_err(&e);
        config = cfg_text;
        char *d = fs_dirname(cfg_path);
        source = d;  /* tokenizer files next to the given config.json */
    }
    for (int i = 0; i < np && !config; i++) {
        config = st_reader_config(in[i].r);
        source = st_reader_source(in[i].r);
    }
    if (!source) for (int i = 0; i < np && !source; i++) source = st_reader_source(in[i].r);

    if (list) {
        for (int i = 0; i < total; i++) {
            const st_info *t = &oinfo[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", t->name);
            cJSON_AddStringToObject(o, "dtype", st_dtype_name(t->dtype));
            cJSON_AddItemToObject(o, "shape", shape_json(t));
            cJSON_AddNumberToObject(o, "params", (double)st_numel(t));
            cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
            tool_emit(o);
        }
    }
    if (summary) {
        const st_info **ov = malloc((size_t)(total ? total : 1) * sizeof *ov);
        for (int i = 0; i < total; i++) ov[i] = &oinfo[i];
        print_summary(ov, total, config);
        free(ov);
    }
    if (!writing && !stats) return 0;

    st_writer *w = NULL;
    if (writing) {
        uint64_t out_bytes = 0;
        for (int i = 0; i < total; i++) out_bytes += oinfo[i].nbytes;
        out_space(out, out_bytes);
        st_write_opts wo = {.max_shard_size = shard, .zstd_level = zlevel};
        if (st_writer_open(&w, out, oinfo, total, config, source, &wo, &e)) tool_die_err(&e);
    }
    progress pg;
    progress_start(&pg, writing ? "writing" : "reading", (double)total_bytes, "B");
    void *conv = NULL;
    size_t conv_cap = 0;
    uint64_t done = 0;
    for (int i = 0, k = 0; i < np; i++) {
        int idx, r;
        const void *data;
        while ((r = st_reader_next(in[i].r, &idx, &data, &e)) == 1) {
            if (!in[i].keep[idx]) continue;
            const st_info *src = &in[i].infos[idx];
            if (stats) print_stats(src, data);
            if (w) {
                const void *put = data;
                if (oinfo[k].dtype != src->dtype) {
                    if (oinfo[k].nbytes > conv_cap) {
                        free(conv);
                        conv_cap = oinfo[k].nbytes;
                        if (!(conv = malloc(conv_cap))) tool_die(1, "out of memory converting '%s'", src->name);
                    }
                    convert(conv, oinfo[k].dtype, data, src->dtype, st_numel(src));
                    put = conv;
                }
                if (st_writer_put(w, k, put, &e)) { st_writer_abort(w); tool_die_err(&e); }
            }
            k++;
            done += src->nbytes;
            progress_update(&pg, (double)done);
        }
        if (r < 0) { st_writer_abort(w); tool_die_err(&e); }
    }
    progress_end(&pg);
    if (w && st_writer_finish(w, &e)) tool_die_err(&e);
    for (int i = 0; i < np; i++) { st_reader_close(in[i].r); free(in[i].keep); }
    free(in); free(sv); free(oinfo); free(conv); free(cfg_text); free(paths);
    if (cfg_path) free((void *)source);
    pcre2_code_free(rs); pcre2_code_free(rx); pcre2_match_data_free(md);
    return 0;
}
