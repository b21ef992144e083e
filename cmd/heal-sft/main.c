/* heal-sft — heal a pruned model by supervised fine-tuning (full, or LoRA), on the CPU. */
#include "tool.h"
#include "blas_tune.h"
#include "train.h"
#include "train_data.h"
#include "fsutil.h"
#include "tokenizer.h"
#include <dirent.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
"usage: heal-sft -m MODEL --data FILE -o OUT [options]\n"
"Fine-tune MODEL on FILE to heal it after pruning; write OUT (an HF folder in the source dtype,\n"
"or with --lora-rank a PEFT adapter folder unless --merge-lora). One JSON line per step.\n"
"\n"
"Data:\n"
"  -m, --model PATH       HF model folder or .safetensors file\n"
"      --data FILE        training data: text (one document per line, or blank-line separated),\n"
"                         JSONL {\"text\"}, instruction JSONL (instruction/context/response or\n"
"                         prompt/response, loss on the response only), or {\"ids\":[...]} lines\n"
"                         (pre-tokenized, one sequence each); .zst read transparently\n"
"      --eval-data FILE   held-out data: loss and ppl every --eval-every steps and at the end\n"
"      --template T       instruction template ({prompt} {instruction} {context} {context_block}\n"
"                         {response}); @FILE reads it from a file (default: Alpaca-style)\n"
"      --seq-len N        tokens per packed sequence (default 512)\n"
"      --no-shuffle       keep the documents in file order (default: shuffled with --seed)\n"
"  -o, --output PATH      output folder (written atomically)\n"
"\n"
"Optimization (AdamW with PyTorch semantics):\n"
"      --batch B          sequences per micro-batch (default 1)\n"
"      --grad-accum K     micro-batches per optimizer step (default 1)\n"
"      --epochs E         passes over the data (default 1), or\n"
"      --steps S          optimizer steps (overrides --epochs)\n"
"      --lr X             peak learning rate (default 2e-5 full, 2e-4 LoRA)\n"
"      --schedule S       constant | linear | cosine (default cosine), after --warmup\n"
"      --warmup N         warmup steps from lr 0 (default 0)\n"
"      --weight-decay W   decoupled weight decay of matrices (default 0.01)\n"
"      --beta1 X, --beta2 X, --adam-eps X   (defaults 0.9, 0.999, 1e-8)\n"
"      --clip C           clip gradients to global norm C (default 1.0; 0: off)\n"
"      --recompute        keep only each layer's input; recompute it in the backward (less memory)\n"
"      --no-keep-sparsity let weights that are exactly zero in the input regrow (default: they\n"
"                         stay zero, so a wmask-pruned model stays sparse)\n"
"\n"
"Memory: full fine-tuning keeps float32 weights, gradients and two AdamW states: 16 bytes per\n"
"parameter, plus activations. LoRA keeps the base weights memory-mapped in their dtype.\n"
"\n"
"LoRA:\n"
"      --lora-rank r      train rank-r adapters instead of the weights\n"
"      --lora-alpha a     scale a/r (default 2r)\n"
"      --lora-targets L   q,k,v,o,gate,up,down (default all seven)\n"
"      --lora-dropout p   dropout on the adapters' input (default 0)\n"
"      --merge-lora       write the merged model instead of the adapter\n"
"\n"
"Checkpoints and evaluation:\n"
"      --save-every N     checkpoint every N steps (weights, AdamW state, data position)\n"
"      --ckpt-dir DIR     checkpoints go to DIR/step-N (default OUT.ckpt)\n"
"      --resume DIR       continue from a checkpoint (DIR/step-N, or the latest in DIR),\n"
"                         bit-for-bit as if never stopped (same options and data)\n"
"      --eval-every N     evaluate every N steps (default: only at the end)\n"
"\n" TOOL_COMMON_HELP);
}

enum { O_DATA = 0x100, O_EVAL, O_TMPL, O_SEQ, O_NOSHUF, O_BATCH, O_ACC, O_EPOCHS, O_STEPS, O_LR,
       O_SCHED, O_WARM, O_WD, O_B1, O_B2, O_EPS, O_CLIP, O_RECOMP, O_NOSPARSE, O_LRANK, O_LALPHA,
       O_LTGT, O_LDROP, O_MERGE, O_SAVE, O_CKPT, O_RESUME, O_EVERY };

typedef struct args {
    const char *model, *data, *eval, *out, *tmpl, *ckpt_dir, *resume;
    int seq, batch, accum, shuffle, recompute, keep_sparse, merge, lrank;
    double epochs, lr, wd, b1, b2, eps, clip, lalpha, ldrop;
    long long steps, warmup, save_every, eval_every;
    sched_kind sched;
    unsigned targets;
} args;

static char *read_template(const char *s) {
    if (s[0] != '@') return strdup(s);
    char *b; size_t n; lop_err e;
    if (fs_read_all(s + 1, &b, &n, &e)) die_err(&e);
    return b;
}

static void eval_run(tr_model *m, tr_data *d, int B, int64_t step, int quiet_step) {
    (void)quiet_step;
    int32_t *ids = NULL, *tg = NULL; size_t cap = 0;
    tr_stats st = {0, 0};
    lop_err e;
    int64_t nb = tr_data_blocks(d);
    for (int64_t g = 0; g < nb; g += B) {
        int T, bb = (int)(nb - g < B ? nb - g : B);
        if (tr_data_batch(d, g, bb, &ids, &tg, &cap, &T, &e) < 0) die_err(&e);
        tr_batch b = {bb, T, ids, tg};
        if (tr_eval_batch(m, &b, NULL, NULL, &st, &e)) die_err(&e);
    }
    free(ids); free(tg);
    double l = st.scored ? st.loss_sum / st.scored : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)step);
    cJSON_AddNumberToObject(o, "eval_loss", l);
    cJSON_AddNumberToObject(o, "eval_ppl", exp(l));
    cJSON_AddNumberToObject(o, "eval_tokens", (double)st.scored);
    emit(o);
}

/* the newest DIR/step-N, or DIR itself when it holds state.json */
static char *find_ckpt(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s/state.json", dir);
    if (fs_is_file(p)) return strdup(dir);
    DIR *d = opendir(dir);
    if (!d) die(1, "%s: no checkpoint here", dir);
    long best = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        long s; char tail;
        if (sscanf(de->d_name, "step-%ld%c", &s, &tail) == 1 && s > best) best = s;
    }
    closedir(d);
    if (best < 0) die(1, "%s: no checkpoint here (no state.json, no step-N folder)", dir);
    snprintf(p, sizeof p, "%s/step-%ld", dir, best);
    return strdup(p);
}

int main(int argc, char **argv) {
    tool_blas_reexec(argv); /* SkylakeX GEMMs, passive OpenMP waiting (see blas_tune.h) */
    tool_init("heal-sft", argc, argv);
    args a = {0};
    a.seq = 512; a.batch = 1; a.accum = 1; a.shuffle = 1; a.keep_sparse = 1;
    a.epochs = 1; a.lr = -1; a.wd = 0.01; a.b1 = 0.9; a.b2 = 0.999; a.eps = 1e-8; a.clip = 1.0;
    a.lalpha = -1; a.sched = SCHED_COSINE; a.targets = 0x7f;
    char *tmpl = NULL;
    static struct option lo[] = {
        {"model", required_argument, 0, 'm'}, {"output", required_argument, 0, 'o'},
        {"data", required_argument, 0, O_DATA}, {"eval-data", required_argument, 0, O_EVAL},
        {"template", required_argument, 0, O_TMPL}, {"seq-len", required_argument, 0, O_SEQ},
        {"no-shuffle", no_argument, 0, O_NOSHUF}, {"batch", required_argument, 0, O_BATCH},
        {"grad-accum", required_argument, 0, O_ACC}, {"epochs", required_argument, 0, O_EPOCHS},
        {"steps", required_argument, 0, O_STEPS}, {"lr", required_argument, 0, O_LR},
        {"schedule", required_argument, 0, O_SCHED}, {"warmup", required_argument, 0, O_WARM},
        {"weight-decay", required_argument, 0, O_WD}, {"beta1", required_argument, 0, O_B1},
        {"beta2", required_argument, 0, O_B2}, {"adam-eps", required_argument, 0, O_EPS},
        {"clip", required_argument, 0, O_CLIP}, {"recompute", no_argument, 0, O_RECOMP},
        {"no-keep-sparsity", no_argument, 0, O_NOSPARSE},
        {"lora-rank", required_argument, 0, O_LRANK}, {"lora-alpha", required_argument, 0, O_LALPHA},
        {"lora-targets", required_argument, 0, O_LTGT}, {"lora-dropout", required_argument, 0, O_LDROP},
        {"merge-lora", no_argument, 0, O_MERGE}, {"save-every", required_argument, 0, O_SAVE},
        {"ckpt-dir", required_argument, 0, O_CKPT}, {"resume", required_argument, 0, O_RESUME},
        {"eval-every", required_argument, 0, O_EVERY},
        TOOL_COMMON_LONGOPTS, {0, 0, 0, 0}};
    int c;
    lop_err e;
    while ((c = getopt_long(argc, argv, "m:o:" TOOL_COMMON_SHORTOPTS, lo, NULL)) != -1) {
        if (tool_common_opt(c, optarg, usage)) continue;
        switch (c) {
        case 'm': a.model = optarg; break;
        case 'o': a.out = optarg; break;
        case O_DATA: a.data = optarg; break;
        case O_EVAL: a.eval = optarg; break;
        case O_TMPL: free(tmpl); tmpl = read_template(optarg); break;
        case O_SEQ: a.seq = (int)opt_int("--seq-len", optarg, 1, 1 << 20); break;
        case O_NOSHUF: a.shuffle = 0; break;
        case O_BATCH: a.batch = (int)opt_int("--batch", optarg, 1, 1 << 16); break;
        case O_ACC: a.accum = (int)opt_int("--grad-accum", optarg, 1, 1 << 16); break;
        case O_EPOCHS: a.epochs = opt_double("--epochs", optarg, 1e-9, 1e6); break;
        case O_STEPS: a.steps = opt_int("--steps", optarg, 1, 1ll << 40); break;
        case O_LR: a.lr = opt_double("--lr", optarg, 0, 10); break;
        case O_SCHED:
            if (sched_parse(optarg, &a.sched)) die_usage("--schedule: '%s' is not constant, linear or cosine", optarg);
            break;
        case O_WARM: a.warmup = opt_int("--warmup", optarg, 0, 1ll << 40); break;
        case O_WD: a.wd = opt_double("--weight-decay", optarg, 0, 10); break;
        case O_B1: a.b1 = opt_double("--beta1", optarg, 0, 0.999999999); break;
        case O_B2: a.b2 = opt_double("--beta2", optarg, 0, 0.999999999); break;
        case O_EPS: a.eps = opt_double("--adam-eps", optarg, 0, 1); break;
        case O_CLIP: a.clip = opt_double("--clip", optarg, 0, 1e9); break;
        case O_RECOMP: a.recompute = 1; break;
        case O_NOSPARSE: a.keep_sparse = 0; break;
        case O_LRANK: a.lrank = (int)opt_int("--lora-rank", optarg, 1, 65536); break;
        case O_LALPHA: a.lalpha = opt_double("--lora-alpha", optarg, 1e-9, 1e9); break;
        case O_LTGT: if (tr_parse_targets(optarg, &a.targets, &e)) die_usage("--lora-targets: %s", e.msg); break;
        case O_LDROP: a.ldrop = opt_double("--lora-dropout", optarg, 0, 0.99); break;
        case O_MERGE: a.merge = 1; break;
        case O_SAVE: a.save_every = opt_int("--save-every", optarg, 1, 1ll << 40); break;
        case O_CKPT: a.ckpt_dir = optarg; break;
        case O_RESUME: a.resume = optarg; break;
        case O_EVERY: a.eval_every = opt_int("--eval-every", optarg, 1, 1ll << 40); break;
        default: die_usage("unknown option");
        }
    }
    if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
    if (!a.model) die_usage("-m/--model is required");
    if (!a.data) die_usage("--data is required");
    if (!a.out) die_usage("-o/--output is required");
    if (!strcmp(a.out, "-")) die_usage("-o: a folder is required (not stdout)");
    if (a.merge && !a.lrank) die_usage("--merge-lora needs --lora-rank");
    if (a.lr < 0) a.lr = a.lrank ? 2e-4 : 2e-5;
    if (a.lalpha < 0) a.lalpha = 2.0 * a.lrank;
    char ckdef[4096];
    if (!a.ckpt_dir) { snprintf(ckdef, sizeof ckdef, "%s.ckpt", a.out); a.ckpt_dir = ckdef; }
    tool_apply_threads();

    /* model */
    tr_opts to = TR_OPTS_DEFAULT;
    to.lora_rank = a.lrank; to.lora_alpha = a.lalpha; to.lora_dropout = a.ldrop;
    to.lora_targets = a.targets; to.keep_sparsity = a.keep_sparse; to.recompute = a.recompute;
    tr_model *m;
    if (tr_open(&m, a.model, &to, g_opt.seed, &e)) die_err(&e);
    lop_tokenizer *tok = NULL;
    lop_err te;
    const char *tokdir = m->st->source_dir ? m->st->source_dir : a.model;
    if (tok_load(&tok, tokdir, &te)) tok = NULL;
    tr_data_opts dopt = {a.seq, tmpl, a.shuffle, g_opt.seed, m->cfg.bos_id, m->cfg.eos_id, m->cfg.pad_id};
    tr_data *data, *eval = NULL;
    if (tr_data_load(&data, a.data, tok, &dopt, &e)) {
        if (!tok && strstr(e.msg, "tokenizer")) die(1, "%s (%s)", e.msg, te.msg);
        die_err(&e);
    }
    if (a.eval) {
        tr_data_opts eo = dopt; eo.shuffle = 0;
        if (tr_data_load(&eval, a.eval, tok, &eo, &e)) die_err(&e);
    }
    int64_t per_step = (int64_t)a.batch * a.accum;
    int64_t total = a.steps ? a.steps
                  : (int64_t)ceil(a.epochs * (double)tr_data_blocks(data) / (double)per_step);
    if (total < 1) total = 1;
    note("%s: %lld trainable parameters (%s), %lld documents, %lld tokens, %lld blocks of %d; %lld steps",
         a.model, (long long)m->trainable_params, a.lrank ? "LoRA" : "full fine-tuning",
         (long long)tr_data_docs(data), (long long)tr_data_tokens(data),
         (long long)tr_data_blocks(data), a.seq, (long long)total);

    /* resume */
    int64_t start = 0;
    if (a.resume) {
        char *dir = find_ckpt(a.resume), *js = NULL;
        if (tr_ckpt_load(m, dir, &js, &e)) die_err(&e);
        cJSON *st = cJSON_Parse(js);
        cJSON *s = cJSON_GetObjectItem(st, "step"), *tt = cJSON_GetObjectItem(st, "total_steps");
        if (!cJSON_IsNumber(s)) die(1, "%s/state.json: no step", dir);
        start = (int64_t)s->valuedouble;
        if (cJSON_IsNumber(tt) && !a.steps) total = (int64_t)tt->valuedouble;
        note("resuming from %s at step %lld", dir, (long long)start);
        cJSON_Delete(st); free(js); free(dir);
    }

    adamw_hp hp = {a.b1, a.b2, a.eps, a.wd};
    int32_t **ids = calloc(a.accum, sizeof *ids), **tg = calloc(a.accum, sizeof *tg);
    size_t *cap = calloc(a.accum, sizeof *cap);
    int *Ts = calloc(a.accum, sizeof *Ts);
    if (!ids || !tg || !cap || !Ts) die(1, "out of memory");
    progress pr;
    progress_start(&pr, "heal-sft", (double)total, "steps");
    double t_start = now_seconds();
    int64_t tokens_done = 0;
    for (int64_t step = start + 1; step <= total; step++) {
        double t0 = now_seconds();
        int64_t g0 = (step - 1) * per_step, scored = 0, toks = 0;
        for (int k = 0; k < a.accum; k++) {
            int64_t s = tr_data_batch(data, g0 + (int64_t)k * a.batch, a.batch, &ids[k], &tg[k],
                                      &cap[k], &Ts[k], &e);
            if (s < 0) die_err(&e);
            scored += s;
            toks += (int64_t)a.batch * Ts[k];
        }
        tr_zero_grad(m);
        tr_stats st = {0, 0};
        float gscale = scored ? 1.0f / (float)scored : 0.0f;
        for (int k = 0; k < a.accum; k++) {
            tr_batch b = {a.batch, Ts[k], ids[k], tg[k]};
            uint64_t dseed = g_opt.seed * 0x9e3779b97f4a7c15ull + (uint64_t)step * 131 + k;
            if (tr_forward_backward(m, &b, gscale, NULL, NULL, dseed, &st, &e)) die_err(&e);
        }
        double norm = sqrt(tr_grad_sumsq(m));
        if (!isfinite(norm)) die(1, "step %lld: gradient norm is not finite", (long long)step);
        double lr = sched_lr(a.sched, a.lr, step - 1, a.warmup, total);
        tr_adamw_step(m, lr, &hp, step, clip_factor(norm, a.clip));
        double dt = now_seconds() - t0;
        tokens_done += toks;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", (double)step);
        cJSON_AddNumberToObject(o, "loss", st.scored ? st.loss_sum / st.scored : 0);
        cJSON_AddNumberToObject(o, "lr", lr);
        cJSON_AddNumberToObject(o, "grad_norm", norm);
        cJSON_AddNumberToObject(o, "tokens", (double)toks);
        cJSON_AddNumberToObject(o, "scored", (double)scored);
        cJSON_AddNumberToObject(o, "tokens_per_s", dt > 0 ? toks / dt : 0);
        emit(o);
        progress_update(&pr, (double)(step - start));
        if (eval && a.eval_every && step % a.eval_every == 0 && step != total)
            eval_run(m, eval, a.batch, step, 0);
        if (a.save_every && (step % a.save_every == 0 || step == total)) {
            char dir[4200], js[512];
            snprintf(dir, sizeof dir, "%s/step-%lld", a.ckpt_dir, (long long)step);
            snprintf(js, sizeof js,
                     "{\"step\": %lld, \"total_steps\": %lld, \"data_block\": %lld, \"seed\": %llu}\n",
                     (long long)step, (long long)total, (long long)(step * per_step),
                     (unsigned long long)g_opt.seed);
            if (tr_ckpt_save(m, dir, js, &e)) die_err(&e);
        }
    }
    progress_end(&pr);
    if (eval) eval_run(m, eval, a.batch, total, 0);
    if (tr_save(m, a.out, a.merge, a.model, &e)) die_err(&e);
    double secs = now_seconds() - t_start;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "output", a.out);
    cJSON_AddNumberToObject(o, "steps", (double)total);
    cJSON_AddNumberToObject(o, "trainable_params", (double)m->trainable_params);
    cJSON_AddNumberToObject(o, "train_tokens", (double)tokens_done);
    cJSON_AddNumberToObject(o, "seconds", secs);
    cJSON_AddNumberToObject(o, "tokens_per_s", secs > 0 ? tokens_done / secs : 0);
    cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)peak_rss_bytes());
    emit(o);
    for (int k = 0; k < a.accum; k++) { free(ids[k]); free(tg[k]); }
    free(ids); free(tg); free(cap); free(Ts); free(tmpl);
    tr_data_free(data); tr_data_free(eval);
    if (tok) tok_free(tok);
    tr_free(m);
    return 0;
}
