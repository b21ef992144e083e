/* laco.h — layer-merge's LaCo search (laco.c) and the output helpers it shares with main.c. */
#ifndef LAYER_MERGE_LACO_H
#define LAYER_MERGE_LACO_H
#include <stdio.h>
#include <cjson/cJSON.h>
#include "layers.h"

typedef struct laco_opts {
    int C;                  /* layers per merge: the base and C-1 after it */
    int L, H;               /* lowest base tried; the first base is H - C (H < 0: layer count) */
    int I;                  /* move down by I after an accepted merge, by 1 after a rejection */
    double T;               /* accept when the mean cosine similarity is above T */
    double max_compression; /* stop when this fraction of the layers is gone */
    const char *data;       /* calibration file */
    int samples, ctx, lines;
    lop_merge_rule rule;
    const char *device;     /* where the forwards run (NULL: cpu) */
} laco_opts;

laco_opts laco_default_opts(void);
int laco_run(const char *model, const char *out, const laco_opts *o, const st_write_opts *wo,
             lop_err *e);

/* main.c */
#endif
