/* plan.h — which tokens ppl feeds and scores: windows (HF strided perplexity), llama.cpp chunks,
 * or one sequence per line. A segment is one forward sequence; it scores its tokens from index
 * `first` on (each predicted by the row before it). */
#ifndef PPL_PLAN_H
#define PPL_PLAN_H
#include <stdint.h>

typedef struct seg {
    const int32_t *ids;  /* the sequence's tokens (into a shared token array) */
    int n;               /* tokens fed */
    int first;           /* first scored index (>= 1) */
    int bos;             /* >= 0: feed this id instead of ids[0] (llama.cpp's BOS per chunk) */
    int64_t pos0;        /* index of ids[0] in its text (for --per-token "pos") */
    int line;            /* line number (1-based) with --lines, else 0 */
} seg;

typedef struct plan {
    seg *s;
    int n, cap;
} plan;

/* HF strided windows over ids[n]: windows of ctx tokens every stride tokens; each scores the
 * tokens no earlier window scored. */
int plan_windows(plan *p, const int32_t *ids, int64_t n, int ctx, int stride, int line);
/* llama.cpp's llama-perplexity: floor(n / ctx) chunks of ctx tokens, BOS (bos >= 0) replacing each
 * chunk's first token, only the second half of each chunk scored. */
int plan_llama_cpp(plan *p, const int32_t *ids, int64_t n, int ctx, int bos);
void plan_free(plan *p);
#endif
