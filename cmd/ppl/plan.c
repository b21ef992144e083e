/* plan.c — see plan.h. */
#include "plan.h"
#include <stdlib.h>

static int push(plan *p, seg s) {
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 64;
        seg *ns = realloc(p->s, sizeof *ns * cap);
        if (!ns) return -1;
        p->s = ns;
        p->cap = cap;
    }
    p->s[p->n++] = s;
    return 0;
}

int plan_windows(plan *p, const int32_t *ids, int64_t n, int ctx, int stride, int line) {
    int64_t prev_end = 0;
    for (int64_t begin = 0; begin < n; begin += stride) {
        int64_t end = begin + ctx < n ? begin + ctx : n;
        int64_t first = prev_end > begin + 1 ? prev_end : begin + 1; /* first scored token */
        if (end - begin >= 2 && first < end) {
            seg s = {ids + begin, (int)(end - begin), (int)(first - begin), -1, begin, line};
            if (push(p, s)) return -1;
        }
        prev_end = end;
        if (end == n) break;
    }
    return 0;
}

int plan_llama_cpp(plan *p, const int32_t *ids, int64_t n, int ctx, int bos) {
    for (int64_t c = 0; (c + 1) * ctx <= n; c++) {
        seg s = {ids + c * ctx, ctx, ctx / 2 + 1, bos, c * ctx, 0};
        if (push(p, s)) return -1;
    }
    return 0;
}

void plan_free(plan *p) {
    free(p->s);
    p->s = NULL;
    p->n = p->cap = 0;
}
