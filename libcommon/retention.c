/* retention.c — the retention rule (see retention.h). */
#include "retention.h"
#include "task.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

double ret_chance(const char *t) {
    if (!strncmp(t, "mmlu", 4) || !strcmp(t, "hellaswag") || !strcmp(t, "openbookqa") ||
        !strcmp(t, "arc_easy") || !strcmp(t, "arc_challenge")) return 0.25;
    if (!strcmp(t, "piqa") || !strcmp(t, "copa") || !strcmp(t, "boolq") || !strcmp(t, "winogrande")) return 0.5;
    if (!strcmp(t, "lambada_openai")) return 0.0;
    return -1;
}

static int has(const char *const *names, int n, const char *x) {
    for (int i = 0; i < n; i++) if (!strcmp(names[i], x)) return 1;
    return 0;
}

int ret_top_level(const char *task, const char *const *names, int n) {
    if (strncmp(task, "mmlu_", 5)) return 1;
    const char *cat = mmlu_category(task + 5);     /* a subject: stem, humanities, ... */
    if (cat) {
        char g[64];
        snprintf(g, sizeof g, "mmlu_%s", cat);
        return !has(names, n, "mmlu") && !has(names, n, g);
    }
    return !has(names, n, "mmlu");                 /* a category group: inside mmlu if present */
}

void ret_compute(ret_row *r, int n, ret_summary *s) {
    memset(s, 0, sizeof *s);
    double sum_c = 0, sum_p = 0, sum_v = 0, sum_b = 0;
    const char *names[4096];
    int nn = 0;
    for (int i = 0; i < n && nn < 4096; i++) if (!has(names, nn, r[i].task)) names[nn++] = r[i].task;
    for (int i = 0; i < n; i++) {
        ret_row *x = &r[i];
        x->retention = NAN; x->in_summary = 0; x->noise = 0;
        /* a score of 0 retains 0% of a positive base; a perplexity needs both sides positive */
        if (!(x->base > 0) || !isfinite(x->base) || !isfinite(x->value) || x->value < 0) continue;
        if (!x->higher_better && !(x->value > 0)) continue;
        x->retention = x->higher_better ? x->value / x->base * 100 : x->base / x->value * 100;
        if (x->se >= 0 && x->base_se >= 0)
            x->noise = fabs(x->value - x->base) < 2 * sqrt(x->se * x->se + x->base_se * x->base_se);
        if (!ret_top_level(x->task, names, nn)) continue;
        if (!x->higher_better) {
            x->in_summary = 1; sum_p += x->retention; s->n_ppl++;
            continue;
        }
        int has_norm = 0;
        for (int j = 0; j < n; j++) has_norm |= !strcmp(r[j].task, x->task) && !strcmp(r[j].metric, "acc_norm");
        if (strcmp(x->metric, has_norm ? "acc_norm" : "acc")) continue;
        x->in_summary = 1;
        sum_c += x->retention; sum_v += x->value; sum_b += x->base; s->n_cap++;
        s->n_noise += x->noise;
    }
    s->capability = s->n_cap ? sum_c / s->n_cap : NAN;
    s->perplexity = s->n_ppl ? sum_p / s->n_ppl : NAN;
    s->avg = s->n_cap ? sum_v / s->n_cap : NAN;
    s->base_avg = s->n_cap ? sum_b / s->n_cap : NAN;
}
