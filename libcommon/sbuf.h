/* sbuf.h — the growable string of libcommon and the tools: JSON headers and config.json written
 * back, prompts and CSV fields of the task layer, model cards. Appends never fail visibly: an
 * allocation failure sets oom, later appends are dropped, and the owner checks oom once at the
 * end (sb_take returns NULL then). */
#ifndef LOP_SBUF_H
#define LOP_SBUF_H
#include <stddef.h>

typedef struct sbuf {
    char *s;        /* NUL-terminated once anything was appended (NULL before) */
    size_t len, cap;
    int oom;        /* an allocation failed: the text is truncated */
} sbuf;

void sb_put(sbuf *b, const char *s, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s (NUL-terminated, or n bytes that may hold NULs) as a JSON string literal: Python json.dumps's
 * escapes */
void sb_json_string(sbuf *b, const char *s);
void sb_json_string_n(sbuf *b, const char *s, size_t n);
/* The string (malloc'd, "" when nothing was appended) and b reset; NULL when out of memory. */
char *sb_take(sbuf *b);
void sb_free(sbuf *b);
#endif
