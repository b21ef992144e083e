/* train_cli.h — the command-line layer shared by the training tools (heal-sft's options, kd-train):
 * the training options (data, optimization, LoRA, checkpoints, evaluation) with their help text,
 * opening the model and data, and the optimizer-step loop with hooks for a custom loss.
 *
 * A tool:
 *     train_args a; train_args_init(&a);
 *     getopt_long loop over {..., TRAIN_CLI_LONGOPTS, TOOL_COMMON_LONGOPTS}:
 *         if (tool_common_opt(c, optarg, usage) || train_cli_opt(&a, c, optarg)) continue;
 *     train_cli_check(&a);                     // required options, defaults (dies on usage errors)
 *     train_run r; train_cli_open(&a, &r);     // model (+LoRA), tokenizer, data, step count
 *     train_hooks h = {...};                   // loss + ctx, a hook before every micro-batch, ...
 *     train_cli_loop(&a, &r, &h);              // steps (JSON line each), eval, checkpoints, save
 *     train_cli_close(&r);
 * Everything here prints or exits like any tool code (cmd/ layer). */
#ifndef LOP_TRAIN_CLI_H
#define LOP_TRAIN_CLI_H
#include <getopt.h>
#include <stdint.h>
#include "tool.h"
#include "tokenizer.h"
#include "train.h"
#include "train_data.h"

typedef struct train_args {
    const char *model, *data, *eval, *out, *ckpt_dir, *resume;
    char *tmpl;
    int seq, batch, accum, shuffle, recompute, keep_sparse, merge, lrank;
    double epochs, lr, wd, b1, b2, eps, clip, lalpha, ldrop;
    long long steps, warmup, save_every, eval_every, save_limit;
    sched_kind sched;
    unsigned targets;
    const char *device;     /* --device (NULL: cpu) */
    lop_gemm gemm;          /* --gemm (default: f32 on the cpu, bf16 on a GPU) */
    int gemm_set;
    char ckpt_buf[4096];
} train_args;

enum { TRAIN_OPT_BASE = 0x200, TO_DATA, TO_EVAL, TO_TMPL, TO_SEQ, TO_NOSHUF, TO_BATCH, TO_ACC,
       TO_EPOCHS, TO_STEPS, TO_LR, TO_SCHED, TO_WARM, TO_WD, TO_B1, TO_B2, TO_EPS, TO_CLIP,
       TO_RECOMP, TO_NOSPARSE, TO_LRANK, TO_LALPHA, TO_LTGT, TO_LDROP, TO_MERGE, TO_SAVE, TO_CKPT,
       TO_RESUME, TO_EVERY, TO_LIMIT, TO_DEVICE, TO_GEMM, TRAIN_OPT_END };

#define TRAIN_CLI_LONGOPTS                                                                       \
    {"model", required_argument, 0, 'm'}, {"output", required_argument, 0, 'o'},                 \
    {"data", required_argument, 0, TO_DATA}, {"eval-data", required_argument, 0, TO_EVAL},       \
    {"template", required_argument, 0, TO_TMPL}, {"seq-len", required_argument, 0, TO_SEQ},      \
    {"ctx", required_argument, 0, TO_SEQ}, {"max-length", required_argument, 0, TO_SEQ},          \
    {"no-shuffle", no_argument, 0, TO_NOSHUF}, {"batch", required_argument, 0, TO_BATCH},        \
    {"grad-accum", required_argument, 0, TO_ACC}, {"epochs", required_argument, 0, TO_EPOCHS},   \
    {"steps", required_argument, 0, TO_STEPS}, {"lr", required_argument, 0, TO_LR},              \
    {"schedule", required_argument, 0, TO_SCHED}, {"warmup", required_argument, 0, TO_WARM},     \
    {"weight-decay", required_argument, 0, TO_WD}, {"beta1", required_argument, 0, TO_B1},       \
    {"beta2", required_argument, 0, TO_B2}, {"adam-eps", required_argument, 0, TO_EPS},          \
    {"clip", required_argument, 0, TO_CLIP}, {"recompute", no_argument, 0, TO_RECOMP},           \
    {"no-keep-sparsity", no_argument, 0, TO_NOSPARSE},                                           \
    {"lora-rank", required_argument, 0, TO_LRANK}, {"lora-alpha", required_argument, 0, TO_LALPHA}, \
    {"lora-targets", required_argument, 0, TO_LTGT},                                             \
    {"lora-dropout", required_argument, 0, TO_LDROP}, {"merge-lora", no_argument, 0, TO_MERGE},  \
    {"save-every", required_argument, 0, TO_SAVE}, {"ckpt-dir", required_argument, 0, TO_CKPT},  \
    {"resume", required_argument, 0, TO_RESUME}, {"eval-every", required_argument, 0, TO_EVERY}, \
    {"save-total-limit", required_argument, 0, TO_LIMIT}, {"device", required_argument, 0, TO_DEVICE}, \
    {"gemm", required_argument, 0, TO_GEMM}
#define TRAIN_CLI_SHORTOPTS "m:o:"

#define TRAIN_CLI_HELP                                                                           \
"Data:\n"                                                                                        \
"  -m, --model PATH       HF model folder or .safetensors file (the model trained)\n"             \
"      --data FILE        training data: text (one document per line, or blank-line separated),\n" \
"                         JSONL {\"text\"}, instruction JSONL (instruction/context/response or\n"  \
"                         prompt/response, loss on the response only), or {\"ids\":[...]} lines\n" \
"                         (pre-tokenized, one sequence each); .zst read transparently\n"         \
"      --eval-data FILE   held-out data: loss and ppl every --eval-every steps and at the end\n"  \
"      --template T       instruction template ({prompt} {instruction} {context} {context_block}\n" \
"                         {response}); @FILE reads it from a file (default: Alpaca-style)\n"     \
"      --seq-len N        tokens per packed sequence (default 512; --ctx and --max-length\n"\
"                         are the same option)\n"                            \
"      --no-shuffle       keep the documents in file order (default: shuffled with --seed)\n"    \
"  -o, --output PATH      output folder (written atomically; an existing one is replaced only\n" \
"                         with -f/--force, and never when it is an input of the run)\n"      \
"\n"                                                                                             \
"Optimization (AdamW with PyTorch semantics):\n"                                                 \
"      --batch B          sequences per micro-batch (default 1)\n"                               \
"      --grad-accum K     micro-batches per optimizer step (default 1)\n"                        \
"      --epochs E         passes over the data (default 1), or\n"                                \
"      --steps S          optimizer steps (overrides --epochs)\n"                                \
"      --lr X             peak learning rate (default 2e-5 full, 2e-4 LoRA)\n"                   \
"      --schedule S       constant | linear | cosine (default cosine), after --warmup\n"         \
"      --warmup N         warmup steps from lr 0 (default 0)\n"                                  \
"      --weight-decay W   decoupled weight decay of matrices (default 0.01)\n"                   \
"      --beta1 X, --beta2 X, --adam-eps X   (defaults 0.9, 0.999, 1e-8)\n"                       \
"      --clip C           clip gradients to global norm C (default 1.0; 0: off)\n"               \
"      --recompute        keep only each layer's input; recompute it in the backward (less memory)\n" \
"      --no-keep-sparsity let weights that are exactly zero in the input regrow (default: they\n" \
"                         stay zero, so a wmask-pruned model stays sparse)\n"                    \
"\n"                                                                                             \
"LoRA:\n"                                                                                        \
"      --lora-rank r      train rank-r adapters instead of the weights\n"                        \
"      --lora-alpha a     scale a/r (default 2r)\n"                                              \
"      --lora-targets L   q,k,v,o,gate,up,down (default all seven)\n"                            \
"      --lora-dropout p   dropout on the adapters' input (default 0)\n"                          \
"      --merge-lora       write the merged model instead of the adapter\n"                       \
"\n"                                                                                             \
"Checkpoints and evaluation:\n"                                                                  \
"      --save-every N     checkpoint every N steps (weights, AdamW state, data position)\n"      \
"      --ckpt-dir DIR     checkpoints go to DIR/step-N (default OUT.ckpt)\n"                     \
"      --save-total-limit N  keep only the newest N checkpoints (older step-N folders removed)\n" \
"      --resume DIR       continue from a checkpoint (DIR/step-N, or the latest in DIR),\n"      \
"                         bit-for-bit as if never stopped: the options that change the numbers\n" \
"                         and the data's fingerprint are recorded, and a difference is refused\n" \
"                         (listed) unless -f/--force. SIGINT/SIGTERM: the current step ends, a\n" \
"                         checkpoint is written to the checkpoint folder, and the exact command\n" \
"                         to resume is printed (exit 130/143). A checkpoint is not a model:\n"   \
"                         --resume CKPT --steps N (its step) -o DIR writes it as one\n"           \
"      --eval-every N     evaluate every N steps (default: only at the end)\n"                 \
"\n"                                                                                             \
"Device:\n"                                                                                      \
"      --device D         where it trains: cpu (default), cuda or cuda:N (a build made where nvcc\n" \
"                         is; parameters, gradients, AdamW states and activations live on the GPU,\n" \
"                         frozen base weights are uploaded once in their dtype)\n"               \
"      --gemm f32|bf16    precision of the matrix products: bf16 operands with float32\n"       \
"                         accumulation, masters and AdamW states float32 (default on a GPU), or\n" \
"                         float32 throughout (default on the cpu; on a GPU the cpu's numbers to\n" \
"                         ~1e-5). Checkpoints record both: --resume refuses another\n"          \
"\n"                                                                                             \
"Several processes: mpirun -np N (a power of two dividing --grad-accum) shares each step's\n"     \
"micro-batches between N ranks; the weights written are byte-identical for any N (man page,\n"   \
"docs/mpi.md). Only rank 0 prints and writes; -t is per rank.\n"

void train_args_init(train_args *a);
/* 1 if c was a training option (handled), 0 if not; dies (exit 2) on a bad value */
int train_cli_opt(train_args *a, int c, const char *arg);
/* required options and defaults; need_out: -o is required. Registers the run's inputs (model,
 * data, eval data, --resume) and outputs (-o, the checkpoint folder) with the output guard and
 * checks them (outpath.h): a tool with more inputs (a teacher) calls out_input() before. */
void train_cli_check(train_args *a, int need_out);
/* --gemm as given, else its default for --device (bf16 on a GPU, f32 on the cpu) */
lop_gemm train_cli_gemm(const train_args *a);

typedef struct train_run {
    tr_model *m;
    lop_tokenizer *tok;     /* NULL when the model has none (pre-tokenized data only) */
    tr_data *data, *eval;
    int64_t total;          /* optimizer steps */
    int64_t per_step;       /* blocks per step = batch * grad-accum */
    int max_T;              /* the longest training sequence (positions) */
    uint64_t data_fp;       /* fingerprint of the first epoch's blocks, in training order */
} train_run;
/* One pass over an epoch's blocks: the longest (positions) and a fingerprint of them all (tokens,
 * targets, lengths, in training order: what the data, --seq-len, the template, the tokenizer,
 * --seed and --no-shuffle make of the data). */
void train_cli_scan(tr_data *d, int *max_T, uint64_t *fp);
/* --seq-len against a model's context: dies unless --allow-long-context (tool_check_context) */
void train_cli_check_context(const train_args *a, int max_T, int max_pos);
/* Open model (LoRA as asked), tokenizer and data; compute the step count. Dies on errors. */
void train_cli_open(const train_args *a, train_run *r);
/* Open only the data with a given tokenizer (save-teacher mode: no student needed). */
tr_data *train_cli_data(const train_args *a, const char *path, const lop_tokenizer *tok,
                        const lop_config *cfg, int shuffle);
int64_t train_cli_total_steps(const train_args *a, const tr_data *d);

typedef struct train_hooks {
    void *user;
    tr_loss_fn loss;        /* NULL: cross-entropy */
    void *loss_ctx;
    /* before micro-batch b (blocks g0 .. g0+B-1) is trained on: e.g. a teacher's forward */
    int (*before_batch)(void *batch_user, const tr_batch *b, int64_t g0, lop_err *e);
    void *batch_user;
    /* when the loss fails (returns NaN) and *loss_failed is set, *loss_err is the message */
    const int *loss_failed;
    const lop_err *loss_err;
    /* after each step's line is built (before it is printed): add fields, reset sums */
    void (*step_fields)(void *user, cJSON *o, const tr_stats *st);
    const char *what;       /* progress label (tool name) */
    /* add the tool's own options that change the numbers (loss, teacher) to the checkpoint's
     * "options" object, compared on --resume */
    void (*options)(void *user, cJSON *o);
    /* the tool's running sums that its loss adds to (kd-train's terms): the loop keeps them per
     * micro-batch and adds them in micro-batch order, so step_fields sees the same numbers for
     * any rank count (mpirun); NULL/0: none */
    double *stat;
    int nstat;
    int64_t *stat_n;
} train_hooks;
/* A cheap fingerprint of a model: tensor names, dtypes, shapes and sampled bytes of each. */
uint64_t train_cli_model_fingerprint(const st_model *st);
void train_cli_loop(const train_args *a, train_run *r, const train_hooks *h);
void train_cli_close(train_run *r);
#endif
