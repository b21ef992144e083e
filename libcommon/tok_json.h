/* tok_json.h — a small, fast JSON reader for tokenizer.json (33 MB for Gemma 3): strings are
 * unescaped in place inside the caller's buffer, values live in one arena, nothing is copied.
 * cJSON needs ~0.6 s and a malloc per node for that file; this needs a tenth of it. */
#ifndef LOP_TOK_JSON_H
#define LOP_TOK_JSON_H
#include <stddef.h>
#include <stdint.h>
#include "err.h"

enum { TJ_NULL, TJ_FALSE, TJ_TRUE, TJ_NUM, TJ_STR, TJ_ARR, TJ_OBJ, TJ_RAW };
typedef struct tj {
    const char *key;        /* member name when inside an object (NUL-terminated) */
    uint32_t keylen;
    uint8_t type;
    uint32_t n;             /* string length / element count */
    union { const char *s; double num; struct tj *kids; };
} tj;
typedef struct tj_doc { tj *root; void *blocks; } tj_doc;

/* Parse buf[0..len) (modified in place; buf must stay alive while the doc is used).
 * raw_keys (NULL-terminated, may be NULL): members with these names are not parsed but kept as
 * TJ_RAW (s, n = the value's unparsed text), for the iterators below — no node per element. */
int tj_parse_ex(tj_doc *doc, char *buf, size_t len, const char *const *raw_keys, lop_err *e);
int tj_parse(tj_doc *doc, char *buf, size_t len, lop_err *e);
/* Walk a TJ_RAW object / array, one member or element at a time. The tj handed to cb lives
 * only during the call (strings stay valid: they are unescaped in the buffer). cb returns 0 to
 * go on, nonzero to stop with that value. */
int tj_raw_members(const tj *raw, int (*cb)(void *ctx, const tj *member), void *ctx, lop_err *e);
/* Number of members / elements of a TJ_RAW container (a quick scan, for sizing tables). */
size_t tj_raw_count(const tj *raw);
int tj_raw_elements(const tj *raw, int (*cb)(void *ctx, uint32_t i, const tj *el), void *ctx, lop_err *e);
void tj_free(tj_doc *doc);
const tj *tj_get(const tj *obj, const char *key);         /* NULL if absent or not an object */
/* typed getters: NULL / default when absent, null or of another type */
const char *tj_str(const tj *obj, const char *key, uint32_t *len);
int tj_bool(const tj *obj, const char *key, int dflt);
#endif
