/* tok_json.h — a small, fast JSON reader for tokenizer.json (33 MB for Gemma 3): strings are
 * unescaped in place inside the caller's buffer, values live in one arena, nothing is copied.
 * cJSON needs ~0.6 s and a malloc per node for that file; this needs a tenth of it. */
#ifndef LOP_TOK_JSON_H
#define LOP_TOK_JSON_H
#include <stddef.h>
#include <stdint.h>
#include "err.h"

enum { TJ_NULL, TJ_FALSE, TJ_TRUE, TJ_NUM, TJ_STR, TJ_ARR, TJ_OBJ };
typedef struct tj {
    const char *key;        /* member name when inside an object (NUL-terminated) */
    uint32_t keylen;
    uint8_t type;
    uint32_t n;             /* string length / element count */
    union { const char *s; double num; struct tj *kids; };
} tj;
typedef struct tj_doc { tj *root; void *blocks; } tj_doc;

/* Parse buf[0..len) (modified in place; buf must stay alive while the doc is used). */
int tj_parse(tj_doc *doc, char *buf, size_t len, lop_err *e);
void tj_free(tj_doc *doc);
const tj *tj_get(const tj *obj, const char *key);         /* NULL if absent or not an object */
/* typed getters: NULL / default when absent, null or of another type */
const char *tj_str(const tj *obj, const char *key, uint32_t *len);
int tj_bool(const tj *obj, const char *key, int dflt);
#endif
