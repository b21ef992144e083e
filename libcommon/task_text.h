/* task_text.h — the task layer's data files: a task file through the one text reader (textio.h,
 * with the FILE.zst fallback of data folders), its CSV records (RFC 4180) or JSON lines, and two
 * string helpers over sbuf. Internal to task*.c, lm-eval and their tests. Prefixes: task_, csv_,
 * jsonl_ (textio.c's text_ is the reader below). */
#ifndef LOP_TASK_TEXT_H
#define LOP_TASK_TEXT_H
#include <stddef.h>
#include <cjson/cJSON.h>
#include "err.h"
#include "sbuf.h"

/* sb_take that never returns NULL: out of memory for a prompt string aborts (see task_text.c) */
char *task_text_take(sbuf *b);

/* text_read (textio.h) of path, or of path.zst when path is absent. An empty file is an error. */
int task_read_file(const char *path, char **buf, size_t *len, lop_err *e);

/* CSV: parse one record starting at *p (advanced past its line end). Fields are malloc'd.
 * Returns the field count, 0 at end of input, -1 on error (unterminated quote). */
int csv_record(const char **p, const char *end, char ***fields, lop_err *e);
void csv_free(char **fields, int n);

/* Iterate JSON lines: returns the next parsed object (caller frees), NULL at the end or on an
 * error (then *bad is set with the 1-based line number in e). Blank lines are skipped. */
cJSON *jsonl_next(const char **p, const char *end, int *lineno, int *bad, const char *path,
                  lop_err *e);
/* strdup that never returns NULL for a NULL input (returns "") */
char *task_strdup(const char *s);
#endif
