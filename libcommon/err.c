/* err.c — error values. */
#include "err.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int vfail(lop_err *e, int code, const char *fmt, va_list ap) {
    if (!e) return -1;
    e->code = code;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    for (char *p = e->msg; *p; p++) if (*p == '\n') *p = ' '; /* one line, always */
    return -1;
}

int lop_fail(lop_err *e, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    int r = vfail(e, LOP_ERUNTIME, fmt, ap);
    va_end(ap);
    return r;
}

int lop_failc(lop_err *e, int code, const char *fmt, ...) {
    va_list ap; va_start(ap, fmt);
    int r = vfail(e, code, fmt, ap);
    va_end(ap);
    return r;
}

int lop_wrap(lop_err *e, const char *fmt, ...) {
    if (!e) return -1;
    char pre[512], old[sizeof e->msg];
    va_list ap; va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    snprintf(e->msg, sizeof e->msg, "%.400s: %.600s", pre, old); /* bounded: -Wformat-truncation */
    return -1;
}
