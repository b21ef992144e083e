/* sbuf.h — a growable string, for building the card in memory before one atomic write. */
#ifndef MC_SBUF_H
#define MC_SBUF_H
#include <stddef.h>

typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom; /* set when an allocation failed; the text is then truncated */
} sbuf;

void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_puts(sbuf *b, const char *s);
void sb_free(sbuf *b);
/* 4022468096 -> "4,022,468,096" into buf */
void fmt_thousands(char *buf, size_t n, long long v);
#endif
