/* results_table.c — the harness's markdown tables (pytablewriter: headers centred, text left,
 * numbers right): tasks with their groups' members indented under them, then the groups. */
#include "results.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TCOLS 9
typedef struct table_row { char c[TCOLS][128]; } table_row;

static int dwidth(const char *s) { /* display width: code points */
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void print_table(FILE *f, const char *first, const table_row *r, int n) {
    static const char *hdr[TCOLS] = {"", "Version", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr"};
    static const int right[TCOLS] = {0, 1, 0, 1, 0, 0, 1, 0, 1};
    int w[TCOLS];
    for (int c = 0; c < TCOLS; c++) {
        w[c] = dwidth(c ? hdr[c] : first);
        if (w[c] < 3) w[c] = 3;
        for (int i = 0; i < n; i++) if (dwidth(r[i].c[c]) > w[c]) w[c] = dwidth(r[i].c[c]);
    }
    for (int c = 0; c < TCOLS; c++) {
        const char *h = c ? hdr[c] : first;
        int pad = w[c] - dwidth(h), l = pad / 2;
        fprintf(f, "|%*s%s%*s", l, "", h, pad - l, "");
    }
    fprintf(f, "|\n");
    for (int c = 0; c < TCOLS; c++) {
        fputc('|', f);
        for (int k = 0; k < w[c] - right[c]; k++) fputc('-', f);
        if (right[c]) fputc(':', f);
    }
    fprintf(f, "|\n");
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < TCOLS; c++) {
            int pad = w[c] - dwidth(r[i].c[c]);
            if (right[c]) fprintf(f, "|%*s%s", pad, "", r[i].c[c]);
            else fprintf(f, "|%s%*s", r[i].c[c], pad, "");
        }
        fprintf(f, "|\n");
    }
}

static int add_rows(table_row *rows, int n, const char *name, double version, int nshot, const res_metric *m, int k) {
    for (int j = 0; j < k; j++) {
        table_row *r = &rows[n++];
        memset(r, 0, sizeof *r);
        snprintf(r->c[0], sizeof r->c[0], "%s", j ? "" : name);
        if (!j) snprintf(r->c[1], sizeof r->c[1], "%g", version);
        snprintf(r->c[2], sizeof r->c[2], "none");
        if (nshot >= 0) snprintf(r->c[3], sizeof r->c[3], "%d", nshot);
        snprintf(r->c[4], sizeof r->c[4], "%s", m[j].metric);
        snprintf(r->c[5], sizeof r->c[5], "%s", m[j].higher_better ? "↑" : "↓");
        snprintf(r->c[6], sizeof r->c[6], "%.4f", m[j].value);
        snprintf(r->c[7], sizeof r->c[7], "±");
        if (isnan(m[j].se)) snprintf(r->c[8], sizeof r->c[8], "N/A");
        else snprintf(r->c[8], sizeof r->c[8], "%.4f", m[j].se);
    }
    return n;
}

void res_print_table(const res_set *rs, FILE *f) {
    int cap = rs->nt * 3 + 64, n = 0, sz;
    table_row *rows = res_calloc((size_t)cap, sizeof(table_row));
    res_metric m[3];
    const char **g;
    int ng = res_group_rows(rs, &g);
    uint8_t *shown = res_calloc((size_t)rs->nt, 1);
    char name[128];
    /* groups with their members indented under them, as the harness prints them */
    for (int i = 0; i < ng; i++) {
        int top = !strcmp(g[i], "mmlu");
        int under = 0;
        for (int j = 0; j < ng; j++) under |= !strcmp(g[j], "mmlu") && !top;
        if (under) continue; /* printed under mmlu */
        int k = res_group_metrics(rs, g[i], m, &sz);
        if (!k) continue;
        n = add_rows(rows, n, g[i], top ? 2 : 1, -1, m, k);
        for (int c = 0; c < res_n_categories(); c++) {
            if (top ? !res_has_members(rs, res_category(c)) : strcmp(g[i], res_category(c))) continue;
            if (top) {
                snprintf(name, sizeof name, " - %s", res_category(c) + 5);
                for (char *p = name; *p; p++) if (*p == '_') *p = ' ';
                k = res_group_metrics(rs, res_category(c), m, &sz);
                n = add_rows(rows, n, name, 1, -1, m, k);
            }
            for (int t = 0; t < rs->nt; t++) {
                if (strcmp(rs->t[t].group, res_category(c))) continue;
                snprintf(name, sizeof name, "%s- %s", top ? "  " : " ", rs->t[t].name + 5);
                k = res_task_metrics(&rs->t[t], m);
                n = add_rows(rows, n, name, rs->t[t].version, rs->t[t].num_fewshot, m, k);
                shown[t] = 1;
            }
        }
    }
    for (int t = 0; t < rs->nt; t++) {
        if (shown[t]) continue;
        int k = res_task_metrics(&rs->t[t], m);
        n = add_rows(rows, n, rs->t[t].name, rs->t[t].version, rs->t[t].num_fewshot, m, k);
    }
    print_table(f, "Tasks", rows, n);
    if (ng) {
        n = 0;
        for (int i = 0; i < ng; i++) {
            int k = res_group_metrics(rs, g[i], m, &sz);
            n = add_rows(rows, n, g[i], strcmp(g[i], "mmlu") ? 1 : 2, -1, m, k);
        }
        fputc('\n', f);
        print_table(f, "Groups", rows, n);
    }
    free(shown);
    free(rows);
}

