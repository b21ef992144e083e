/* calib.h — calibration data for every tool that looks at activations (layer-score, layer-merge
 * --laco, wmask --wanda, heal-sft, ...): token sequences read from
 *   - a text file: one sample per line (CALIB_LINES) or one text cut into windows (CALIB_PACKED),
 *   - JSONL: one {"text": ...} object per line (the key can be changed),
 *   - either of them zstd-compressed (detected by zstd's magic number, not the name), or "-" (stdin).
 *
 * Typical use (a tool with --data FILE --samples N --ctx N):
 *     lop_calib_opts o = calib_default_opts();          // CALIB_AUTO, ctx 2048, all samples
 *     o.ctx = 512; o.samples = 128;
 *     lop_calib cal;
 *     if (calib_load(&cal, path, tok, &o, &e)) die_err(&e);
 *     for (int i = 0; i < cal.n; i++) forward(cal.ids[i], cal.len[i]);   // ids[i][0..len[i])
 *     calib_free(&cal);
 *
 * Rules (so that every tool's "128 samples of 512 tokens" means the same tokens):
 *   CALIB_LINES: each non-empty line / JSONL record is one sample, encoded with the tokenizer's
 *     special tokens (BOS + text when the tokenizer adds BOS), truncated to ctx tokens (ctx 0: whole).
 *   CALIB_PACKED: the samples are encoded without special tokens and concatenated (records joined
 *     by "\n\n"); the token stream is cut into consecutive windows of ctx tokens, each starting with
 *     BOS when the tokenizer adds BOS (then ctx-1 text tokens per window). A tail shorter than a
 *     window is dropped unless it is the only one.
 *   CALIB_AUTO: LINES for JSONL, PACKED for plain text.
 *   samples > 0 keeps that many samples: the first ones, or with random = 1 a reproducible random
 *   choice (seed) kept in file order. No sample at all is an error ("no calibration text").
 * libcommon rules: errors as values, no printing.
 */
#ifndef LOP_CALIB_H
#define LOP_CALIB_H
#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "tokenizer.h"

typedef enum { CALIB_AUTO, CALIB_LINES, CALIB_PACKED } lop_calib_mode;

typedef struct lop_calib_opts {
    lop_calib_mode mode;
    int ctx;             /* tokens per sample: window length (PACKED) or truncation (LINES, 0 = none) */
    int samples;         /* samples to keep (0: all) */
    int random;          /* 1: a random choice of `samples` (by seed) instead of the first ones */
    uint64_t seed;
    const char *field;   /* JSONL key holding the text (NULL: "text") */
} lop_calib_opts;

typedef struct lop_calib {
    int n;               /* samples */
    int32_t **ids;       /* [n] -> token ids of sample i (point into one block) */
    int *len;            /* [n] tokens of sample i */
    int64_t tokens;      /* sum of len */
    int32_t *store;      /* the block ids[] point into */
} lop_calib;

typedef struct lop_texts {
    int n;
    char **text;         /* [n] NUL-terminated UTF-8 (each malloc'd) */
    size_t *len;         /* [n] bytes */
    int jsonl;           /* the file was JSONL */
} lop_texts;

lop_calib_opts calib_default_opts(void);   /* AUTO, ctx 2048, all samples, first ones */

/* Tokenize a data file into samples as described above. */
/* Calibration sequences for a model: its own tokenizer (the folder its weights came from), random
 * windows (seed) of ctx tokens capped at the model's context, `samples` of them. What wmask
 * (Wanda, SparseGPT, OWL) and width-prune (activation scores) both need. */
struct lop_model;
int calib_load_for_model(lop_calib *c, const struct lop_model *m, const char *path, int ctx, int samples,
                         uint64_t seed, lop_err *e);
int calib_load(lop_calib *c, const char *path, const lop_tokenizer *tok, const lop_calib_opts *o,
               lop_err *e);
void calib_free(lop_calib *c);

/* ---- the pieces (usable without a tokenizer) ---- */
/* Whole file (or stdin for "-"), zstd-decompressed when it starts with zstd's magic number;
 * NUL-terminated, *buf malloc'd. */
int calib_read_file(const char *path, char **buf, size_t *len, lop_err *e);
/* 1 if the file looks like JSONL: its name (without .zst) ends in .jsonl/.json, or its first
 * non-blank line starts with '{'. */
int calib_is_jsonl(const char *path, const char *buf);
/* The samples of a file: JSONL records' field, the non-empty lines (LINES), or the whole text
 * (PACKED, one element). mode must not be AUTO here unless the file is JSONL. */
int calib_read_texts(const char *path, lop_calib_mode mode, const char *field, lop_texts *out,
                     lop_err *e);
void calib_texts_free(lop_texts *t);
/* Cut a token stream ids[0..n) into windows of ctx tokens (bos >= 0: each window is bos + ctx-1
 * tokens) and keep them as described above (samples / random / seed of o). */
int calib_pack(lop_calib *c, const int32_t *ids, size_t n, int bos, const lop_calib_opts *o,
               lop_err *e);
/* Take ownership of sequences seqs[i][0..lens[i]) (copied), truncated to o->ctx, selected by
 * o->samples / random / seed. */
int calib_from_seqs(lop_calib *c, int32_t *const *seqs, const int *lens, int n,
                    const lop_calib_opts *o, lop_err *e);
#endif
