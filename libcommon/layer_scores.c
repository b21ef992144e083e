/* layer_scores.c — choosing layers by score: layer-score's JSON lines read back (per-layer and
 * block scores) and the layers to drop picked from them (layers.h). */
#include "layers.h"
#include "textio.h"
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void layer_scores_free(lop_scores *s) {
    free(s->score); free(s->block_start); free(s->block_n); free(s->block_score);
    memset(s, 0, sizeof *s);
}

static int num_field(const cJSON *o, const char *k, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x)) return -1;
    *v = x->valuedouble;
    return 0;
}

static int int_field(const cJSON *o, const char *k, int *v) {
    double d;
    if (num_field(o, k, &d) || d != floor(d) || d < 0 || d > INT_MAX) return -1;
    *v = (int)d;
    return 0;
}

int layer_scores_read(lop_scores *s, const char *path, int n_layers, lop_err *e) {
    memset(s, 0, sizeof *s);
    /* the one text reader (textio.h): "-", zstd by its magic number, NUL bytes refused */
    char *text;
    size_t tlen;
    if (text_read(path, &text, &tlen, e)) return lop_wrap(e, "scores file");
    s->n_layers = n_layers;
    s->score = malloc((n_layers ? n_layers : 1) * sizeof *s->score);
    int rc = s->score ? 0 : lop_fail(e, "out of memory"), cap = 0, nscored = 0;
    for (int l = 0; l < n_layers && !rc; l++) s->score[l] = NAN;
    int lineno = 0;
    for (char *line = text, *next; !rc && line < text + tlen; line = next) {
        lineno++;
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : text + tlen;
        if (nl) *nl = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue;
        cJSON *o = cJSON_Parse(p);
        if (!cJSON_IsObject(o)) { cJSON_Delete(o); rc = lop_fail(e, "%s:%d: not a JSON object", path, lineno); break; }
        const cJSON *met = cJSON_GetObjectItemCaseSensitive(o, "metric");
        int has_layer = cJSON_HasObjectItem(o, "layer"), has_start = cJSON_HasObjectItem(o, "start");
        double sc;
        int l, st, n;
        if (!has_layer && !has_start) { cJSON_Delete(o); continue; }   /* a summary line */
        if (num_field(o, "score", &sc) || !isfinite(sc))
            rc = lop_fail(e, "%s:%d: no numeric \"score\"", path, lineno);
        else if (met && !cJSON_IsString(met))
            rc = lop_fail(e, "%s:%d: \"metric\" is not a string", path, lineno);
        else if (met && s->metric[0] && strcmp(s->metric, met->valuestring))
            rc = lop_fail(e, "%s:%d: metric \"%s\" mixed with \"%s\"", path, lineno, met->valuestring, s->metric);
        else if (has_layer) {
            if (int_field(o, "layer", &l) || l >= n_layers)
                rc = lop_fail(e, "%s:%d: \"layer\" is not a layer index of this %d-layer model", path, lineno, n_layers);
            else if (!isnan(s->score[l]))
                rc = lop_fail(e, "%s:%d: layer %d scored twice", path, lineno, l);
            else { s->score[l] = sc; nscored++; }
        } else {
            if (int_field(o, "start", &st) || int_field(o, "n", &n) || n < 1 || st + (int64_t)n > n_layers)
                rc = lop_fail(e, "%s:%d: block \"start\"/\"n\" outside this %d-layer model", path, lineno, n_layers);
            else {
                if (s->n_blocks == cap) {
                    cap = cap ? cap * 2 : 16;
                    int *a = realloc(s->block_start, cap * sizeof *a); if (a) s->block_start = a;
                    int *b = realloc(s->block_n, cap * sizeof *b); if (b) s->block_n = b;
                    double *c = realloc(s->block_score, cap * sizeof *c); if (c) s->block_score = c;
                    if (!a || !b || !c) rc = lop_fail(e, "out of memory");
                }
                if (!rc) {
                    s->block_start[s->n_blocks] = st; s->block_n[s->n_blocks] = n;
                    s->block_score[s->n_blocks++] = sc;
                }
            }
        }
        if (!rc && met && !s->metric[0]) snprintf(s->metric, sizeof s->metric, "%s", met->valuestring);
        cJSON_Delete(o);
    }
    free(text);
    if (!rc && nscored == 0 && s->n_blocks == 0)
        rc = lop_fail(e, "%s: no scores (expected layer-score's {\"layer\",\"metric\",\"score\"} lines)", path);
    if (rc) layer_scores_free(s);
    return rc;
}

static const lop_scores *g_scores;
static int cmp_score(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    double sx = g_scores->score[x], sy = g_scores->score[y];
    if (sx != sy) return sx < sy ? -1 : 1;
    return y - x;   /* ties: the later layer first */
}
static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int layer_scores_pick(const lop_scores *s, int k, int **out, lop_err *e) {
    *out = NULL;
    int nsc = 0;
    for (int l = 0; l < s->n_layers; l++) nsc += !isnan(s->score[l]);
    if (k < 1) return lop_failc(e, LOP_EUSAGE, "nothing to drop (n = %d)", k);
    if (nsc > 0) {
        if (k > nsc) return lop_failc(e, LOP_EUSAGE, "cannot drop %d layers: the scores file scores %d", k, nsc);
        int *idx = malloc(nsc * sizeof *idx), m = 0;
        if (!idx) return lop_fail(e, "out of memory");
        for (int l = 0; l < s->n_layers; l++) if (!isnan(s->score[l])) idx[m++] = l;
        g_scores = s;
        qsort(idx, m, sizeof *idx, cmp_score);
        qsort(idx, k, sizeof *idx, cmp_int);
        *out = idx;
        return 0;
    }
    int best = -1;
    for (int b = 0; b < s->n_blocks; b++)
        if (s->block_n[b] == k && (best < 0 || s->block_score[b] <= s->block_score[best])) best = b;
    if (best < 0) return lop_failc(e, LOP_EUSAGE, "the scores file has no block of n = %d layers", k);
    int *idx = malloc(k * sizeof *idx);
    if (!idx) return lop_fail(e, "out of memory");
    for (int i = 0; i < k; i++) idx[i] = s->block_start[best] + i;
    *out = idx;
    return 0;
}
