/* tokenizer.h — Hugging Face tokenizer.json (+ tokenizer_config.json): exact encoding and
 * decoding for byte-level BPE (Qwen, Llama 3) and SentencePiece-style BPE with byte fallback
 * (Gemma 3, Llama 2). Thread-safe after loading: encode/decode from many threads at once. */
#ifndef LOP_TOKENIZER_H
#define LOP_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>
#include "err.h"

typedef struct lop_tokenizer lop_tokenizer;

/* path: a model folder (tokenizer.json, tokenizer_config.json if present) or a tokenizer.json
 * file. Unsupported components fail here, naming the component. */
int tok_load(lop_tokenizer **out, const char *path, lop_err *e);
/* tok_load with flags. TOK_LOAD_JSON_ONLY: tokenizer.json alone, exactly as Hugging Face
 * tokenizers' Tokenizer.from_file; by default tokenizer_config.json is also honoured the way
 * transformers 5 does (add_bos_token/add_eos_token; LlamaTokenizer rebuilt with Metaspace). */
enum { TOK_LOAD_JSON_ONLY = 1 };
int tok_load_ex(lop_tokenizer **out, const char *path, unsigned flags, lop_err *e);
void tok_free(lop_tokenizer *t);

/* Encode text[0..len) (UTF-8; invalid UTF-8 is an error naming the byte offset). add_special:
 * HF's add_special_tokens (post-processor: BOS/EOS as the tokenizer and tokenizer_config decide).
 * *ids is malloc'd. */
int tok_encode(const lop_tokenizer *t, const char *text, size_t len, int add_special,
               int32_t **ids, size_t *n, lop_err *e);
/* Decode (skip_special: HF's skip_special_tokens). *out is malloc'd, NUL-terminated. */
int tok_decode(const lop_tokenizer *t, const int32_t *ids, size_t n, int skip_special,
               char **out, size_t *len, lop_err *e);
const char *tok_token(const lop_tokenizer *t, int32_t id); /* vocab string, NULL if out of range */
int tok_vocab_size(const lop_tokenizer *t);   /* largest id + 1 (incl. added tokens) */
int tok_bos(const lop_tokenizer *t);          /* BOS id or -1 */
int tok_eos(const lop_tokenizer *t);          /* EOS id or -1 */
int tok_adds_bos(const lop_tokenizer *t);     /* encode(add_special=1) starts with BOS */
int tok_is_special(const lop_tokenizer *t, int32_t id);
int32_t tok_token_id(const lop_tokenizer *t, const char *s, size_t n); /* -1 if not a token */
const char *tok_kind(const lop_tokenizer *t); /* "BPE byte-level", "BPE byte-fallback", "BPE" */
#endif
