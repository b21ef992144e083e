/* test_sbuf.c — libcommon's growable string: appends, printf, take, and the one JSON string rule
 * (Python's json.dumps with ensure_ascii=False, what transformers and the harness write; lm-tok's
 * output uses it too) on every control byte, NUL inside a counted string included. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sbuf.h"
#include "check.h"

static void json_is(const char *s, size_t n, const char *want) {
    sbuf b = {0};
    sb_json_string_n(&b, s, n);
    char *got = sb_take(&b);
    CHECK(got && !strcmp(got, want), "json of %zu bytes: got %s want %s", n, got ? got : "(null)", want);
    free(got);
}

int main(void) {
    sbuf b = {0};
    sb_puts(&b, "ab");
    sb_put(&b, "cdef", 2);
    sb_printf(&b, "-%d-%s", 42, "x");
    char *s = sb_take(&b);
    CHECK(s && !strcmp(s, "abcd-42-x"), "%s", s ? s : "(null)");
    free(s);
    s = sb_take(&b);                       /* taken: the buffer is empty again */
    CHECK(s && !strcmp(s, ""));
    free(s);
    /* json.dumps("a\"b\\c\nd\te\rf\bg\fh\x01i\x7fj", ensure_ascii=False) */
    json_is("a\"b\\c\nd\te\rf\bg\fh\x01i\x7fj", 19, "\"a\\\"b\\\\c\\nd\\te\\rf\\bg\\fh\\u0001i\x7fj\"");
    json_is("x\0y", 3, "\"x\\u0000y\"");
    json_is("é€🙂", strlen("é€🙂"), "\"é€🙂\"");   /* UTF-8 as is */
    sb_json_string(&b, "tab\there");
    s = sb_take(&b);
    CHECK(s && !strcmp(s, "\"tab\\there\""));
    free(s);
    printf("test_sbuf: %d checks, %d failed\n", checks, fails);
    return fails != 0;
}
