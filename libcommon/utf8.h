/* utf8.h — UTF-8 validation and repair, as strict as Rust's str and as forgiving as Python's
 * errors="replace" (one U+FFFD per maximal invalid subpart, the Unicode best practice). */
#ifndef LOP_UTF8_H
#define LOP_UTF8_H
#include <stddef.h>

/* Length of the longest valid UTF-8 prefix of s[0..n): n when all of it is valid, else the byte
 * offset of the first invalid sequence. */
size_t utf8_valid_prefix(const char *s, size_t n);
/* A malloc'd, NUL-terminated copy of s[0..n) with every invalid sequence replaced by U+FFFD;
 * *outlen gets its length. NULL on out of memory. */
char *utf8_lossy(const char *s, size_t n, size_t *outlen);
#endif
