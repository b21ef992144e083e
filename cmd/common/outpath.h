/* outpath.h — the output guard (CLI.md: "Outputs never destroy data"): every path a tool will
 * write is checked against every path it reads and against the file system BEFORE any work starts.
 *
 * A tool that writes, after option parsing and before loading anything heavy:
 *     out_input("model", model);             // every path it reads: model, teacher, data, cache,
 *     out_input("data", data);               //   eval data, adapter, --resume checkpoint ...
 *                                            //   ("-" and NULL are ignored; missing paths too)
 *     out = out_output("-o", out, OUT_MODEL);// every path it writes; returns the path to use
 *                                            //   (trailing slashes removed: "healed/" == "healed")
 *     out_check();                           // dies with one line "tool: ..." on the first refusal
 *     ... once the size is known (still before writing): out_space(out, bytes);
 *
 * Refused always (exit 2, even with -f/--force): an output that is an input (same device and
 * inode, through symlinks), a folder output that is or contains an input, an output that would
 * replace a file inside an input folder, `-o .` (or any folder holding the working folder), the
 * same path given for two outputs, a folder with files lop does not write (it is never replaced).
 * Refused without -f/--force (exit 2): an existing file, a non-empty folder.
 * Refused by the file system (exit 1): the parent folder is missing, not a folder, not writable
 * (a probe file is created and removed), or has less free space than out_space() asks.
 * All of it costs a few system calls: a refusal comes in milliseconds.
 *
 * Replacing with --force stays atomic: the writers build a temporary file/folder beside the target
 * and rename it into place (a folder: the old one is moved aside, the new one renamed, the old one
 * removed). tool_opt.force is -f/--force (a common option of every tool). */
#ifndef LOP_OUTPATH_H
#define LOP_OUTPATH_H
#include <stdint.h>

typedef enum out_kind {
    OUT_FILE,    /* a file (JSON results, a cache, a card) */
    OUT_FOLDER,  /* a folder (a trained model, a PEFT adapter) */
    OUT_MODEL,   /* what st_writer_open makes of it: a file for *.safetensors, *.zst or an existing
                    file, "-" for stdout, else an HF folder */
    OUT_CKPTS    /* a folder of checkpoints (DIR/step-N): it may hold earlier checkpoints when one
                    of them is the --resume input; else as OUT_FOLDER */
} out_kind;

/* Register a path the run reads. role names it in messages ("model", "data", "teacher", ...). */
void out_input(const char *role, const char *path);
/* Register a path the run writes; opt names it in messages ("-o", "--save-logits"). Returns path
 * with trailing slashes removed (a pointer that lives until exit; "-" and NULL as given). */
const char *out_output(const char *opt, const char *path, out_kind kind);
/* Check every registered output (see above); dies on the first refusal. Idempotent. */
void out_check(void);
/* The output at path will take about bytes: dies (exit 1) when its file system has less free. */
void out_space(const char *path, uint64_t bytes);
/* An OUT_MODEL path that st_writer_open will make an HF folder (not "-", not *.safetensors or
 * *.zst, not an existing file or device). */
int out_is_folder(const char *path);
/* Bytes of a model's weights on disk (a file's size, or the sum of a folder's *.safetensors; 0 for
 * "-" or unknown): the estimate to give out_space() for an output of the same model. */
uint64_t out_model_bytes(const char *model);
/* A model source folder (or the folder of a .safetensors file) whose config.json and tokenizer
 * files an output will copy: dies (exit 1) when one is present but unusable (empty, not JSON), or
 * when the config's num_hidden_layers disagrees with the tensors, so that an output never carries
 * a broken config or tokenizer. Returns 1 if it has a config.json. */
int out_source_usable(const char *model);
#endif
