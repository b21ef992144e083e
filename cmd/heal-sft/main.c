/* heal-sft — heal a pruned model by supervised fine-tuning (full, or LoRA), on the CPU or a GPU.
 * The options, data, step loop, evaluation and checkpoints are the training tools' shared layer
 * (cmd/common/train_cli.h); heal-sft is that layer with the cross-entropy loss. */
#include "tool.h"
#include "blas_tune.h"
#include "train_cli.h"
#include "job.h"
#include <getopt.h>
#include <stdio.h>

static void usage(FILE *f) {
    fprintf(f,
"usage: heal-sft -m MODEL --data FILE -o OUT [options]\n"
"Fine-tune MODEL on FILE to heal it after pruning; write OUT (an HF folder in the source dtype,\n"
"or with --lora-rank a PEFT adapter folder unless --merge-lora). One JSON line per step.\n"
"\n"
"Memory: full fine-tuning keeps float32 weights, gradients and two AdamW states: 16 bytes per\n"
"parameter, plus activations. LoRA keeps every base weight (embedding and head included)\n"
"memory-mapped in its dtype: the file's size plus activations.\n"
"\n" TRAIN_CLI_HELP "\n" TOOL_COMMON_HELP);
}

int main(int argc, char **argv) {
    tool_blas_reexec(argv); /* SkylakeX GEMMs, passive OpenMP waiting (see blas_tune.h) */
    tool_init_job("heal-sft", argc, argv);
    train_args a;
    train_args_init(&a);
    static struct option lo[] = {TRAIN_CLI_LONGOPTS, TOOL_COMMON_LONGOPTS, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, TRAIN_CLI_SHORTOPTS TOOL_COMMON_SHORTOPTS, lo, NULL)) != -1) {
        if (tool_common_opt(c, optarg, usage) || train_cli_opt(&a, c, optarg)) continue;
        tool_die_usage("unexpected option");
    }
    if (optind < argc) tool_die_usage("unexpected argument '%s'", argv[optind]);
    train_cli_check(&a, 1);
    tool_apply_threads();
    train_run r;
    train_cli_open(&a, &r);
    train_hooks h = {0};
    h.what = "heal-sft";
    train_cli_loop(&a, &r, &h);
    train_cli_close(&r);
    return 0;
}
