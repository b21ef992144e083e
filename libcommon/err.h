/* err.h — errors are values (jq style): a library function that fails fills a lop_err and
 * returns -1 (or NULL); the tool prints "tool: msg" once and exits. libcommon never prints or
 * exits. */
#ifndef LOP_ERR_H
#define LOP_ERR_H
#include <stddef.h>

enum { LOP_OK = 0, LOP_ERUNTIME = 1, LOP_EUSAGE = 2 };

typedef struct lop_err {
    int code;       /* LOP_ERUNTIME (exit 1) or LOP_EUSAGE (exit 2) */
    char msg[1024]; /* one line, names the offending path/value */
} lop_err;

/* Set e (may be NULL) and return -1: `return lop_fail(e, "%s: bad header", path);` */
int lop_fail(lop_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same with an explicit code (LOP_EUSAGE for bad arguments). */
int lop_failc(lop_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefix an existing message: "ctx: old message". */
int lop_wrap(lop_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
