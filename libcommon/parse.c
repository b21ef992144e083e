/* parse.c — sizes, ranges and numbers from the command line. */
#include "parse.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int parse_size(const char *s, uint64_t *out, lop_err *e) {
    if (!s || !*s) return lop_failc(e, LOP_EUSAGE, "empty size");
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0 || !isfinite(v)) return lop_failc(e, LOP_EUSAGE, "bad size '%s'", s);
    int p = 0;
    switch (toupper((unsigned char)*end)) {
    case 0: break;
    case 'K': p = 1; break;
    case 'M': p = 2; break;
    case 'G': p = 3; break;
    case 'T': p = 4; break;
    default: return lop_failc(e, LOP_EUSAGE, "bad size suffix in '%s' (use K, M, G, T)", s);
    }
    double base = 1024;
    if (p) {
        const char *r = end + 1;
        if ((r[0] == 'B' || r[0] == 'b') && r[1] == 0) base = 1000;
        else if ((r[0] == 'i' || r[0] == 'I') && (r[1] == 'B' || r[1] == 'b') && r[2] == 0) base = 1024;
        else if (r[0] != 0) return lop_failc(e, LOP_EUSAGE, "bad size suffix in '%s'", s);
    }
    v *= pow(base, p);
    if (v > 1.8e19) return lop_failc(e, LOP_EUSAGE, "size too large '%s'", s);
    *out = (uint64_t)v;
    return 0;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int parse_ranges(const char *s, int limit, int **out, int *n, lop_err *e) {
    return parse_ranges_dup(s, limit, out, n, NULL, e);
}

int parse_ranges_dup(const char *s, int limit, int **out, int *n, int *dup, lop_err *e) {
    *out = NULL; *n = 0;
    if (dup) *dup = -1;
    if (!s || !*s) return lop_failc(e, LOP_EUSAGE, "empty range list");
    int cap = 16, cnt = 0;
    int *v = malloc(cap * sizeof *v);
    if (!v) return lop_fail(e, "out of memory");
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long a = strtol(p, &end, 10), b;
        if (end == p || a < 0 || errno || a > INT_MAX) goto bad;
        p = end;
        b = a;
        if (*p == '-') {
            p++;
            b = strtol(p, &end, 10);
            if (end == p || b < a || errno || b > INT_MAX) goto bad;
            p = end;
        }
        if (limit >= 0 && b >= limit) {
            free(v);
            return lop_failc(e, LOP_EUSAGE, "index %ld out of range in '%s' (there are %d)", b, s, limit);
        }
        if (b - a > 10000000) goto bad;
        for (long i = a; i <= b; i++) {
            if (cnt == cap) {
                int *nv = realloc(v, (cap *= 2) * sizeof *v);
                if (!nv) { free(v); return lop_fail(e, "out of memory"); }
                v = nv;
            }
            v[cnt++] = (int)i;
        }
        if (*p == ',') { p++; if (!*p) goto bad; }
        else if (*p) goto bad;
    }
    qsort(v, cnt, sizeof *v, cmp_int);
    int m = 0;
    for (int i = 0; i < cnt; i++) {
        if (m == 0 || v[m - 1] != v[i]) v[m++] = v[i];
        else if (dup && *dup < 0) *dup = v[i];
    }
    *out = v; *n = m;
    return 0;
bad:
    free(v);
    return lop_failc(e, LOP_EUSAGE, "bad range list '%s' (expected e.g. 0-7,25-33)", s);
}

int parse_int(const char *s, long long lo, long long hi, long long *out, lop_err *e) {
    char *end;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || end == s || *end || errno) return lop_failc(e, LOP_EUSAGE, "bad integer '%s'", s ? s : "");
    if (v < lo || v > hi) return lop_failc(e, LOP_EUSAGE, "%lld out of range [%lld, %lld]", v, lo, hi);
    *out = v;
    return 0;
}

int parse_double(const char *s, double *out, lop_err *e) {
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || end == s || *end || errno || !isfinite(v)) return lop_failc(e, LOP_EUSAGE, "bad number '%s'", s ? s : "");
    *out = v;
    return 0;
}
