/* lm-tok — encode and decode text with a model's Hugging Face tokenizer, exactly as
 * transformers does. JSON lines out. See man/lm-tok.1. */
#include "tool.h"
#include "sbuf.h"
#include "provenance.h"
#include "tokenizer.h"
#include "utf8.h"
#include "tok_json.h"
#include "textio.h"
#include <getopt.h>
#include <time.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: lm-tok -m MODEL [options] [FILE|-]\n"
        "Encode text with MODEL's tokenizer (tokenizer.json + tokenizer_config.json, as\n"
        "transformers loads them) and print JSON lines.\n"
        "\n"
        "  -m, --model PATH    model folder or tokenizer.json\n"
        "      --data FILE     the input (the same as the FILE argument)\n"
        "      --no-special    do not add BOS/EOS (HF add_special_tokens=False)\n"
        "      --jsonl         input is JSON lines {\"text\": ...}: one result line per input line\n"
        "      --decode        input is JSON lines {\"ids\": [...]}: print {\"text\": ...}\n"
        "      --skip-special  with --decode: drop special tokens (HF skip_special_tokens)\n"
        "      --count         print only {\"count\": N} per text\n"
        "      --ids-only      print only {\"ids\": [...]}\n"
        "      --lossy         replace invalid UTF-8 with U+FFFD instead of failing\n"
        "      --json-only     use tokenizer.json alone (HF tokenizers' Tokenizer.from_file),\n"
        "                      ignoring tokenizer_config.json\n"
        "      --info          print the tokenizer's kind, vocab size, BOS/EOS and load time\n"
        "      --stats         after the results, print {\"stats\":{load and encode seconds,\n"
        "                      bytes, tokens, MB/s, peak RSS}} on stderr\n"
        TOOL_COMMON_HELP
        "\n"
        "Without --jsonl/--decode the whole input is one text: {\"ids\":[...],\"tokens\":[...]}.\n");
}

enum { O_DATA = 0x300, O_NOSPECIAL = 1, O_JSONL, O_DECODE, O_SKIP, O_COUNT, O_LOSSY, O_JSONONLY, O_IDSONLY, O_INFO, O_STATS };

static struct {
    int no_special, jsonl, decode, skip, count, lossy, json_only, ids_only, info, stats;
} o;
static size_t g_tokens;   /* for --stats */

/* The input through the one text reader (textio.h): a path or "-", zstd by its magic number. NUL
 * bytes are kept (text_read_bytes): a tokenizer encodes them like any other character. */
static void read_input(const char *path, char **buf, size_t *len) {
    lop_err e;
    if (text_read_bytes(path ? path : "-", buf, len, &e)) tool_die_err(&e);
}

/* ---- JSON output into libcommon's growable string (sbuf.h) ---- */
static void ob_int(sbuf *b, long long v) {
    char t[24];
    int k = snprintf(t, sizeof t, "%lld", v);
    sb_put(b, t, (size_t)k);
}

static void encode_result(const lop_tokenizer *t, const int32_t *ids, size_t n, sbuf *b) {
    #pragma omp atomic
    g_tokens += n;
    if (o.count) { sb_put(b, "{\"count\":", 9); ob_int(b, (long long)n); sb_put(b, "}\n", 2); return; }
    sb_put(b, "{\"ids\":[", 8);
    for (size_t i = 0; i < n; i++) { if (i) sb_put(b, ",", 1); ob_int(b, ids[i]); }
    sb_put(b, "]", 1);
    if (!o.ids_only) {
        sb_put(b, ",\"tokens\":[", 11);
        for (size_t i = 0; i < n; i++) {
            if (i) sb_put(b, ",", 1);
            const char *s = tok_token(t, ids[i]);
            if (s) sb_json_string_n(b, s, strlen(s)); else sb_put(b, "null", 4);
        }
        sb_put(b, "]", 1);
    }
    sb_put(b, "}\n", 2);
}

static void flush_out(sbuf *b) {
    if (b->oom) tool_die(1, "out of memory");
    if (b->len && fwrite(b->s, 1, b->len, stdout) != b->len) tool_die(1, "writing to stdout failed");
    b->len = 0;
}

/* one JSON line of input -> one output line in res (or an error message in err) */
static void do_line(const lop_tokenizer *t, char *line, size_t len, long lineno, size_t file_off,
                    sbuf *res, char *err, size_t errsz) {
    err[0] = 0;
    char *fixed = NULL;
    size_t bad = utf8_valid_prefix(line, len);
    if (bad != len) {
        if (!o.lossy) { snprintf(err, errsz, "line %ld: invalid UTF-8 at byte offset %zu", lineno, file_off + bad); return; }
        fixed = utf8_lossy(line, len, &len);
        if (!fixed) { snprintf(err, errsz, "out of memory"); return; }
        line = fixed;
    }
    tj_doc doc; lop_err e;
    if (tj_parse(&doc, line, len, &e)) { snprintf(err, errsz, "line %ld: %s", lineno, e.msg); free(fixed); return; }
    if (tj_get(doc.root, "provenance")) goto out;   /* another lop tool's first line: no output */
    if (o.decode) {
        const tj *a = tj_get(doc.root, "ids");
        if (!a || a->type != TJ_ARR) { snprintf(err, errsz, "line %ld: expected {\"ids\": [...]}", lineno); goto out; }
        int32_t *ids = malloc((a->n + 1) * sizeof *ids);
        if (!ids) { snprintf(err, errsz, "out of memory"); goto out; }
        for (uint32_t i = 0; i < a->n; i++) {
            const tj *v = &a->kids[i];
            if (v->type != TJ_NUM || v->num != (double)(long long)v->num || v->num < 0 || v->num >= tok_vocab_size(t)) {
                snprintf(err, errsz, "line %ld: ids[%u] is not a token id of this tokenizer (0..%d)", lineno, i, tok_vocab_size(t) - 1);
                free(ids); goto out;
            }
            ids[i] = (int32_t)v->num;
        }
        char *text; size_t tl;
        if (tok_decode(t, ids, a->n, o.skip, &text, &tl, &e)) { snprintf(err, errsz, "line %ld: %s", lineno, e.msg); free(ids); goto out; }
        sb_put(res, "{\"text\":", 8); sb_json_string_n(res, text, tl); sb_put(res, "}\n", 2);
        free(text); free(ids);
    } else {
        const tj *s = tj_get(doc.root, "text");
        if (!s || s->type != TJ_STR) { snprintf(err, errsz, "line %ld: expected {\"text\": \"...\"}", lineno); goto out; }
        int32_t *ids; size_t n;
        if (tok_encode(t, s->s, s->n, !o.no_special, &ids, &n, &e)) { snprintf(err, errsz, "line %ld: %s", lineno, e.msg); goto out; }
        encode_result(t, ids, n, res);
        free(ids);
    }
out:
    tj_free(&doc);
    free(fixed);
}

static void run_lines(const lop_tokenizer *t, char *in, size_t len) {
    /* split into lines (blank lines are skipped), then work in ordered batches */
    size_t cap = 1024, nl = 0;
    size_t *st = malloc(cap * sizeof *st), *ln = malloc(cap * sizeof *ln);
    long *no = malloc(cap * sizeof *no);
    if (!st || !ln || !no) tool_die(1, "out of memory");
    long lineno = 0;
    for (size_t i = 0; i < len;) {
        char *nlp = memchr(in + i, '\n', len - i);
        size_t e = nlp ? (size_t)(nlp - in) : len;
        lineno++;
        size_t a = i, b = e;
        if (b > a && in[b - 1] == '\r') b--;
        int blank = 1;
        for (size_t k = a; k < b; k++) if (in[k] != ' ' && in[k] != '\t') { blank = 0; break; }
        if (!blank) {
            if (nl == cap) {
                cap *= 2;
                st = realloc(st, cap * sizeof *st); ln = realloc(ln, cap * sizeof *ln); no = realloc(no, cap * sizeof *no);
                if (!st || !ln || !no) tool_die(1, "out of memory");
            }
            st[nl] = a; ln[nl] = b - a; no[nl] = lineno; nl++;
        }
        i = e + 1;
    }
    const size_t batch = 4096;
    sbuf *res = calloc(batch, sizeof *res);
    char (*err)[1200] = malloc(batch * sizeof *err);
    if (!res || !err) tool_die(1, "out of memory");
    progress pg;
    progress_start(&pg, o.decode ? "decoding" : "encoding", (double)nl, "lines");
    for (size_t b0 = 0; b0 < nl; b0 += batch) {
        size_t b1 = b0 + batch < nl ? b0 + batch : nl;
        #pragma omp parallel for schedule(dynamic, 8)
        for (size_t i = b0; i < b1; i++)
            do_line(t, in + st[i], ln[i], no[i], st[i], &res[i - b0], err[i - b0], sizeof err[0]);
        for (size_t i = b0; i < b1; i++) {
            if (err[i - b0][0]) { fflush(stdout); tool_die(1, "%s", err[i - b0]); }
            if (res[i - b0].oom) tool_die(1, "out of memory");
            if (res[i - b0].len && fwrite(res[i - b0].s, 1, res[i - b0].len, stdout) != res[i - b0].len)
                tool_die(1, "writing to stdout failed");
            res[i - b0].len = 0;
        }
        progress_update(&pg, (double)b1);
    }
    progress_end(&pg);
    for (size_t i = 0; i < batch; i++) free(res[i].s);
    free(res); free(err); free(st); free(ln); free(no);
}

int main(int argc, char **argv) {
    tool_init("lm-tok", argc, argv);
    const char *data = NULL;
    static struct option lo[] = {
        {"model", required_argument, 0, 'm'},
        {"data", required_argument, 0, O_DATA},
        {"no-special", no_argument, 0, O_NOSPECIAL},
        {"jsonl", no_argument, 0, O_JSONL},
        {"decode", no_argument, 0, O_DECODE},
        {"skip-special", no_argument, 0, O_SKIP},
        {"count", no_argument, 0, O_COUNT},
        {"ids-only", no_argument, 0, O_IDSONLY},
        {"lossy", no_argument, 0, O_LOSSY},
        {"json-only", no_argument, 0, O_JSONONLY},
        {"info", no_argument, 0, O_INFO},
        {"stats", no_argument, 0, O_STATS},
        TOOL_COMMON_LONGOPTS,
        {0, 0, 0, 0}};
    const char *model = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "m:" TOOL_COMMON_SHORTOPTS, lo, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case O_DATA: data = optarg; break;
        case O_NOSPECIAL: o.no_special = 1; break;
        case O_JSONL: o.jsonl = 1; break;
        case O_DECODE: o.decode = 1; break;
        case O_SKIP: o.skip = 1; break;
        case O_COUNT: o.count = 1; break;
        case O_IDSONLY: o.ids_only = 1; break;
        case O_LOSSY: o.lossy = 1; break;
        case O_JSONONLY: o.json_only = 1; break;
        case O_INFO: o.info = 1; break;
        case O_STATS: o.stats = 1; break;
        default: if (!tool_common_opt(c, optarg, usage)) tool_die_usage("unknown option");
        }
    }
    if (!model) tool_die_usage("-m MODEL is required");
    if (optind + 1 < argc) tool_die_usage("at most one input file");
    if (o.jsonl && o.decode) tool_die_usage("--jsonl and --decode are exclusive (--decode reads JSON lines already)");
    if (o.skip && !o.decode) tool_die_usage("--skip-special goes with --decode");
    if (o.decode && (o.count || o.ids_only || o.no_special)) tool_die_usage("--count, --ids-only and --no-special are for encoding");
    tool_apply_threads();
    if (data && optind < argc) tool_die_usage("both --data and a FILE argument");
    const char *path = data ? data : optind < argc ? argv[optind] : "-";

    lop_tokenizer *t;
    lop_err e;
    double t0 = tool_now_seconds();
    struct timespec l0, l1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &l0);
    if (tok_load_ex(&t, model, o.json_only ? TOK_LOAD_JSON_ONLY : 0, &e)) tool_die_err(&e);
    prov_input("tokenizer", model);
    prov_input("text", path);
    if (!o.count) tool_provenance(stdout);   /* before the first line, whichever writer prints it */
    double t_load = tool_now_seconds() - t0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &l1);
    double t_load_cpu = (l1.tv_sec - l0.tv_sec) + (l1.tv_nsec - l0.tv_nsec) * 1e-9;
    if (o.info) {
        sbuf b = {0};
        const char *bs = tok_bos(t) >= 0 ? tok_token(t, tok_bos(t)) : NULL;
        const char *es = tok_eos(t) >= 0 ? tok_token(t, tok_eos(t)) : NULL;
        char head[256];
        int k = snprintf(head, sizeof head, "{\"kind\":\"%s\",\"vocab_size\":%d,\"bos\":%d,\"eos\":%d,\"adds_bos\":%s,\"load_seconds\":%.4f,\"load_cpu_seconds\":%.4f",
                         tok_kind(t), tok_vocab_size(t), tok_bos(t), tok_eos(t), tok_adds_bos(t) ? "true" : "false", t_load, t_load_cpu);
        sb_put(&b, head, (size_t)k);
        sb_put(&b, ",\"bos_token\":", 13); if (bs) sb_json_string_n(&b, bs, strlen(bs)); else sb_put(&b, "null", 4);
        sb_put(&b, ",\"eos_token\":", 13); if (es) sb_json_string_n(&b, es, strlen(es)); else sb_put(&b, "null", 4);
        sb_put(&b, "}\n", 2);
        flush_out(&b);
        free(b.s);
        tok_free(t);
        return 0;
    }
    size_t len;
    char *in;
    read_input(path, &in, &len);
    double t1 = tool_now_seconds();
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    if (o.jsonl || o.decode) run_lines(t, in, len);
    else {
        char *text = in;
        size_t bad = utf8_valid_prefix(in, len);
        if (bad != len) {
            if (!o.lossy) tool_die(1, "%s: invalid UTF-8 at byte offset %zu (use --lossy to replace it)", strcmp(path, "-") ? path : "stdin", bad);
            text = utf8_lossy(in, len, &len);
            if (!text) tool_die(1, "out of memory");
        }
        int32_t *ids; size_t n;
        if (tok_encode(t, text, len, !o.no_special, &ids, &n, &e)) tool_die_err(&e);
        sbuf b = {0};
        encode_result(t, ids, n, &b);
        flush_out(&b);
        free(b.s); free(ids);
        if (text != in) free(text);
    }
    if (fflush(stdout)) tool_die(1, "writing to stdout failed");
    if (o.stats) {
        double te = tool_now_seconds() - t1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        double cpu = (c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) * 1e-9;
        /* MB/s per core: from CPU time, so a busy machine does not understate it */
        fprintf(stderr, "{\"stats\":{\"load_seconds\":%.4f,\"load_cpu_seconds\":%.4f,\"encode_seconds\":%.4f,\"cpu_seconds\":%.4f,\"bytes\":%zu,"
                "\"tokens\":%zu,\"mb_per_s\":%.3f,\"mb_per_s_per_core\":%.3f,\"threads\":%d,\"peak_rss_mb\":%.1f}}\n",
                t_load, t_load_cpu, te, cpu, len, g_tokens, te > 0 ? len / te / 1e6 : 0.0, cpu > 0 ? len / cpu / 1e6 : 0.0,
                tool_opt.threads, tool_peak_rss_bytes() / 1048576.0);
    }
    free(in);
    tok_free(t);
    return 0;
}
