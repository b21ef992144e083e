/* stats.h — streaming per-tensor statistics for st-cat --stats. */
#ifndef ST_CAT_STATS_H
#define ST_CAT_STATS_H
#include <stdint.h>
#include "dtype.h"

typedef struct tensor_stats {
    double min, max, mean, std;  /* over finite values; std is the population std (divide by n) */
    uint64_t n, finite, zeros, nan, inf;
} tensor_stats;

/* Statistics of n elements of type t at data (any alignment). */
void tensor_stats_compute(tensor_stats *s, const void *data, st_dtype t, uint64_t n);
#endif
