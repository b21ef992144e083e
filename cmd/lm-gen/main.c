/* lm-gen — text generation with a KV cache: the prompt in one forward, then one token per step.
 *
 *   lm-gen -m MODEL [--prompt TEXT | FILE] [--max-tokens N] [--temperature T] [--top-k K]
 *          [--top-p P] [--repetition-penalty R] [--seed S] [--jsonl]
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"
#include "textio.h"
#include "sample.h"
#include "tokenizer.h"
#include "tool.h"
#include "provenance.h"
#include "blas_tune.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: lm-gen -m MODEL [--prompt TEXT | FILE] [OPTIONS]\n"
        "Generate text with a KV cache; the continuation streams to stdout as it is produced.\n"
        "Without a prompt, generation starts from BOS alone. FILE ('-': stdin) holds the prompt;\n"
        "with --jsonl, a FILE of JSON lines {\"prompt\": ...} (or {\"text\": ...}) is one prompt a line.\n"
        "\n"
        "  -m, --model PATH          HF model folder (config.json, safetensors, tokenizer.json)\n"
        "  -p, --prompt TEXT         the prompt\n"
        "  -n, --max-tokens N        tokens to generate at most (default 128; stops at EOS)\n"
        "      --temperature T       0: greedy (default); > 0: sample from softmax(logits / T)\n"
        "      --top-k K             sample among the K most likely tokens (0: off)\n"
        "      --top-p P             sample among the most likely tokens whose mass reaches P (1: off)\n"
        "      --repetition-penalty R  Hugging Face's: divide positive logits, multiply negative\n"
        "                            ones, of tokens already in the sequence (1: off)\n"
        "      --ignore-eos          keep going past EOS\n"
        "      --no-special          do not add BOS (or other special tokens) to the prompt\n"
        "      --echo                print the prompt before the continuation\n"
        "      --jsonl               one JSON line per prompt (text, ids, counts, tokens/s) instead\n"
        "                            of streamed text\n"
        TOOL_DEVICE_HELP
        TOOL_COMMON_HELP);
}

typedef struct gen_opts {
    int max_tokens, ignore_eos, add_special, echo, jsonl;
    lop_sampler s;
} gen_opts;

/* One sequence's state: the tokens so far, the text already printed. */
typedef struct gen_state {
    int32_t *ids;
    int n, cap, n_prompt;
    char *prompt_text;   /* decode(prompt ids), to print only what the new tokens add */
    size_t printed;      /* bytes of the continuation already written */
} gen_state;

/* Decode everything and write what is new, holding back a trailing U+FFFD: the first bytes of a
 * character whose remaining byte-fallback tokens have not come yet. */
static void stream_new(const lop_tokenizer *tok, gen_state *g, int final) {
    char *txt; size_t len; lop_err e;
    if (tok_decode(tok, g->ids, (size_t)g->n, 1, &txt, &len, &e)) tool_die_err(&e);
    size_t pl = strlen(g->prompt_text);
    /* the continuation is what follows the prompt's own decoding */
    size_t start = (len >= pl && !memcmp(txt, g->prompt_text, pl)) ? pl : 0;
    size_t end = len;
    if (!final && end >= start + 3 && !memcmp(txt + end - 3, "\xEF\xBF\xBD", 3)) end -= 3;
    if (end > start + g->printed) {
        fwrite(txt + start + g->printed, 1, end - start - g->printed, stdout);
        fflush(stdout);
        g->printed = end - start;
    }
    free(txt);
}

static void push(gen_state *g, int32_t id) {
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 256;
        g->ids = realloc(g->ids, sizeof(int32_t) * (size_t)g->cap);
        if (!g->ids) tool_die(1, "out of memory");
    }
    g->ids[g->n++] = id;
}

/* Run the model over ids[from..to) with the cache; logits of the last row into logits[V]. */
static void forward_last(lop_model *m, lop_kv *kv, const int32_t *ids, int count, float *logits) {
    int len = count;
    uint8_t *want = calloc((size_t)count, 1);
    if (!want) tool_die(1, "out of memory");
    want[count - 1] = 1;
    lop_batch b = {.B = 1, .len = &len, .ids = ids};
    lop_head_req h = {.select = want, .want_logits = want, .logits = logits};
    lop_fwd_opts o = {.kv = kv};
    lop_err e;
    if (lop_forward(m, &b, &o, &h, &e)) tool_die_err(&e);
    free(want);
}

static void generate(lop_model *m, const lop_tokenizer *tok, const char *prompt, size_t plen,
                     gen_opts *go) {
    lop_err e;
    gen_state g = {0};
    int32_t *pids; size_t np;
    if (tok_encode(tok, prompt, plen, go->add_special, &pids, &np, &e)) tool_die_err(&e);
    int bos = tok_bos(tok) >= 0 ? tok_bos(tok) : m->cfg.bos_id;
    for (size_t i = 0; i < np; i++) push(&g, pids[i]);
    free(pids);
    if (g.n == 0) {
        if (bos < 0) tool_die(1, "empty prompt and the model has no BOS token to start from");
        push(&g, bos);
    }
    g.n_prompt = g.n;
    size_t ptl;
    if (tok_decode(tok, g.ids, (size_t)g.n, 1, &g.prompt_text, &ptl, &e)) tool_die_err(&e);
    int V = m->cfg.vocab, max_pos = m->cfg.max_pos > 0 && !tool_opt.allow_long ? m->cfg.max_pos : 1 << 30;
    if (g.n >= max_pos)
        tool_die(1, "prompt of %d tokens does not fit the model's context (max_position_embeddings %d; "
               "--allow-long-context runs it)", g.n, max_pos);
    int max_t = g.n + go->max_tokens;
    if (max_t > max_pos) {
        if (!go->jsonl) tool_note("stopping at the model's context of %d tokens", max_pos);
        max_t = max_pos;
    }
    lop_kv *kv;
    if (lop_kv_new(&kv, m, 1, max_t, &e)) tool_die_err(&e);
    float *logits = malloc(sizeof(float) * (size_t)V);
    if (!logits) tool_die(1, "out of memory");
    int eos = tok_eos(tok) >= 0 ? tok_eos(tok) : m->cfg.eos_id;
    if (go->echo && !go->jsonl) { fputs(g.prompt_text, stdout); fflush(stdout); }

    double t0 = tool_now_seconds();
    forward_last(m, kv, g.ids, g.n, logits);
    double t_prompt = tool_now_seconds() - t0, t1 = tool_now_seconds();
    const char *stop = "length";
    int produced = 0;
    while (g.n < max_t) {
        int32_t next = lop_sample_next(&go->s, logits, V, g.ids, g.n);
        push(&g, next);
        produced++;
        if (next == eos && !go->ignore_eos) { stop = "eos"; break; }
        if (!go->jsonl) stream_new(tok, &g, 0);
        if (g.n >= max_t) break;
        forward_last(m, kv, &g.ids[g.n - 1], 1, logits);
    }
    double t_gen = tool_now_seconds() - t1;
    if (g.n >= max_pos && strcmp(stop, "eos")) stop = "context";
    if (!go->jsonl) {
        stream_new(tok, &g, 1);
        fputc('\n', stdout);
        fflush(stdout);
        tool_note("%d prompt tokens (%.1f tokens/s), %d generated (%.1f tokens/s), stop: %s", g.n_prompt,
             t_prompt > 0 ? g.n_prompt / t_prompt : 0.0, produced, t_gen > 0 ? produced / t_gen : 0.0, stop);
    } else {
        char *txt; size_t len;
        int gen_n = g.n - g.n_prompt - (strcmp(stop, "eos") ? 0 : 1);
        if (tok_decode(tok, g.ids + g.n_prompt, (size_t)gen_n, 1, &txt, &len, &e)) tool_die_err(&e);
        /* the continuation as text: full decode minus the prompt's, so leading spaces are right */
        char *all; size_t al;
        if (tok_decode(tok, g.ids, (size_t)(g.n_prompt + gen_n), 1, &all, &al, &e)) tool_die_err(&e);
        size_t pl = strlen(g.prompt_text);
        const char *cont = (al >= pl && !memcmp(all, g.prompt_text, pl)) ? all + pl : txt;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "prompt", g.prompt_text);
        cJSON_AddStringToObject(o, "text", cont);
        cJSON *ids = cJSON_AddArrayToObject(o, "ids");
        for (int i = g.n_prompt; i < g.n; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(g.ids[i]));
        cJSON_AddNumberToObject(o, "prompt_tokens", g.n_prompt);
        cJSON_AddNumberToObject(o, "generated_tokens", produced);
        cJSON_AddStringToObject(o, "stop", stop);
        cJSON_AddNumberToObject(o, "prompt_tokens_per_s", t_prompt > 0 ? g.n_prompt / t_prompt : 0.0);
        cJSON_AddNumberToObject(o, "tokens_per_s", t_gen > 0 ? produced / t_gen : 0.0);
        tool_emit(o);
        free(txt);
        free(all);
    }
    lop_kv_free(kv);
    free(logits);
    free(g.ids);
    free(g.prompt_text);
}

enum { OPT_TEMP = 0x2000, OPT_TOPK, OPT_TOPP, OPT_REP, OPT_JSONL, OPT_IGNORE_EOS, OPT_NO_SPECIAL, OPT_ECHO, OPT_DEVICE };

int main(int argc, char **argv) {
    tool_blas_reexec(argv); /* OpenBLAS kernels and passive OpenMP waits (blas_tune.h) */
    tool_init("lm-gen", argc, argv);
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},
        {"prompt", required_argument, 0, 'p'},
        {"max-tokens", required_argument, 0, 'n'},
        {"temperature", required_argument, 0, OPT_TEMP},
        {"top-k", required_argument, 0, OPT_TOPK},
        {"top-p", required_argument, 0, OPT_TOPP},
        {"repetition-penalty", required_argument, 0, OPT_REP},
        {"jsonl", no_argument, 0, OPT_JSONL},
        {"ignore-eos", no_argument, 0, OPT_IGNORE_EOS},
        {"no-special", no_argument, 0, OPT_NO_SPECIAL},
        {"echo", no_argument, 0, OPT_ECHO},
        {"device", required_argument, 0, OPT_DEVICE},
        TOOL_COMMON_LONGOPTS,
        {0, 0, 0, 0}};
    const char *model = NULL, *prompt = NULL, *device = NULL;
    gen_opts go = {.max_tokens = 128, .add_special = 1,
                   .s = {.temperature = 0, .top_k = 0, .top_p = 1, .rep_penalty = 1}};
    int c;
    while ((c = getopt_long(argc, argv, "m:p:n:" TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (tool_common_opt(c, optarg, usage)) continue;
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': go.max_tokens = (int)opt_int("--max-tokens", optarg, 0, 1 << 24); break;
        case OPT_TEMP: go.s.temperature = opt_double("--temperature", optarg, 0, 1e6); break;
        case OPT_TOPK: go.s.top_k = (int)opt_int("--top-k", optarg, 0, 1 << 30); break;
        case OPT_TOPP: go.s.top_p = opt_double("--top-p", optarg, 0, 1); break;
        case OPT_REP: go.s.rep_penalty = opt_double("--repetition-penalty", optarg, 1e-6, 1e6); break;
        case OPT_JSONL: go.jsonl = 1; break;
        case OPT_IGNORE_EOS: go.ignore_eos = 1; break;
        case OPT_NO_SPECIAL: go.add_special = 0; break;
        case OPT_ECHO: go.echo = 1; break;
        case OPT_DEVICE: device = optarg; break;
        default: tool_die_usage("unknown option");
        }
    }
    if (!model) tool_die_usage("-m MODEL is required");
    if (optind < argc - 1) tool_die_usage("more than one prompt FILE");
    const char *file = optind < argc ? argv[optind] : NULL;
    if (file && prompt) tool_die_usage("both --prompt and a prompt FILE");
    if (go.s.top_p <= 0) tool_die_usage("--top-p must be > 0");
    lop_sampler_seed(&go.s, tool_opt.seed);
    tool_apply_threads();

    lop_err e;
    lop_model *m;
    prov_input("model", model);
    prov_input("prompts", file);
    if (lop_model_open(&m, model, &e)) tool_die_err(&e);
    tool_set_device(m, device);
    lop_tokenizer *tok;
    if (tok_load(&tok, m->st && m->st->source_dir ? m->st->source_dir : model, &e)) tool_die_err(&e);

    if (!file) {
        const char *p = prompt ? prompt : "";
        generate(m, tok, p, strlen(p), &go);
    } else {
        size_t len;
        char *txt;
        if (text_read(file, &txt, &len, &e)) tool_die_err(&e);
        if (!go.jsonl) generate(m, tok, txt, len, &go);
        else {
            int lineno = 0;
            for (char *p = txt, *nl; p < txt + len; p = nl + 1) {
                nl = memchr(p, '\n', (size_t)(txt + len - p));
                if (!nl) nl = txt + len;
                *nl = 0;
                lineno++;
                if (!*p) continue;
                cJSON *o = cJSON_Parse(p);
                const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "prompt");
                if (!f) f = cJSON_GetObjectItemCaseSensitive(o, "text");
                if (!cJSON_IsString(f)) tool_die(1, "%s:%d: not a JSON object with a \"prompt\" string", file, lineno);
                generate(m, tok, f->valuestring, strlen(f->valuestring), &go);
                cJSON_Delete(o);
            }
        }
        free(txt);
    }
    tok_free(tok);
    lop_model_free(m);
    return 0;
}
