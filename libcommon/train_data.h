/* train_data.h — training data: reading, tokenizing, packing, shuffling, batching.
 *
 * Inputs (the format is decided per file; .zst compressed files are read transparently):
 *   - plain text: one document per line, or documents separated by blank lines when the file
 *     has any blank line;
 *   - JSON lines (the first non-blank character is '{'): {"text": ...}; instruction data
 *     {"instruction", "context", "response"} (Dolly) or {"prompt", "response"}, rendered through
 *     a template with loss only on the response (+ EOS); or pre-tokenized {"ids": [...]}.
 * Text documents are tokenized (BOS as the tokenizer adds it), EOS appended, and PACKED: the
 * documents of an epoch (shuffled with the seed, a new order every epoch) are concatenated and cut
 * into blocks of seq_len inputs (+1 token of overlap for the targets). Pre-tokenized lines are
 * used exactly as given, one sequence each (shuffled too), padded within a batch.
 * The data is an endless series of blocks: block g is block g % n of epoch g / n, so a
 * checkpoint's data position is one number. */
#ifndef LOP_TRAIN_DATA_H
#define LOP_TRAIN_DATA_H
#include <stdint.h>
#include "err.h"
#include "tokenizer.h"

/* Default instruction template: {instruction} (or {prompt}), {context} (empty when absent;
 * the "{context_block}" form inserts "\n\n" + context only when there is one), {response}
 * marks the scored part (everything before it is the unscored prompt). */
#define TR_DEFAULT_TEMPLATE "### Instruction:\n{prompt}{context_block}\n\n### Response:\n{response}"

typedef struct tr_data tr_data;
typedef struct tr_data_opts {
    int seq_len;              /* inputs per packed block */
    const char *tmpl;         /* instruction template (NULL: TR_DEFAULT_TEMPLATE) */
    int shuffle;              /* shuffle documents every epoch */
    uint64_t seed;
    int bos_id, eos_id, pad_id; /* from the model config (-1: unknown) */
} tr_data_opts;

/* tok may be NULL when the file is pre-tokenized. */
int tr_data_load(tr_data **out, const char *path, const lop_tokenizer *tok, const tr_data_opts *o,
                 lop_err *e);
void tr_data_free(tr_data *d);
int64_t tr_data_blocks(const tr_data *d);      /* blocks per epoch */
int64_t tr_data_tokens(const tr_data *d);      /* tokens of an epoch (incl. BOS/EOS) */
int64_t tr_data_docs(const tr_data *d);
int tr_data_pretokenized(const tr_data *d);

/* A batch of B blocks starting at global block index g: ids/targets [B*T] (malloc'd by the
 * callee, reused across calls through ids, targets and cap), T the batch's length. Returns tokens
 * scored. */
int64_t tr_data_batch(tr_data *d, int64_t g, int B, int32_t **ids, int32_t **targets,
                      size_t *cap, int *T, lop_err *e);
#endif
