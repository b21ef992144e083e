/* parse.h — pure parsers for command-line values (no printing, errors as values). */
#ifndef LOP_PARSE_H
#define LOP_PARSE_H
#include <stdint.h>
#include <stddef.h>
#include "err.h"

/* "4096", "64K", "5G" (K/M/G/T = 1024^n, zstd's convention), "5GB"/"500MB" (10^n, as
 * transformers' max_shard_size), "5GiB" (1024^n). */
int parse_size(const char *s, uint64_t *out, lop_err *e);
/* "0-7,25-33,40" -> sorted, de-duplicated indices; every index must be < limit (limit < 0: no
 * limit). *out is malloc'd. */
int parse_ranges(const char *s, int limit, int **out, int *n, lop_err *e);
/* The same; *dup = the lowest index listed more than once (a union, likely a typo), or -1. */
int parse_ranges_dup(const char *s, int limit, int **out, int *n, int *dup, lop_err *e);
int parse_int(const char *s, long long lo, long long hi, long long *out, lop_err *e);
int parse_double(const char *s, double *out, lop_err *e);
#endif
