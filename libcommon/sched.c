/* sched.c — learning-rate schedules with warmup, as transformers' get_*_schedule_with_warmup. */
#include "optim.h"
#include <math.h>
#include <string.h>

static const char *names[] = {"constant", "linear", "cosine"};
int sched_parse(const char *s, sched_kind *k) {
    for (int i = 0; i < 3; i++) if (!strcmp(s, names[i])) { *k = (sched_kind)i; return 0; }
    return -1;
}
const char *sched_name(sched_kind k) { return (unsigned)k < 3 ? names[k] : "?"; }

double sched_lr(sched_kind k, double base_lr, int64_t step, int64_t warmup, int64_t total) {
    if (step < warmup) return base_lr * (double)step / (double)(warmup > 1 ? warmup : 1);
    double rest = (double)(total - warmup > 1 ? total - warmup : 1);
    switch (k) {
    case SCHED_LINEAR: return base_lr * fmax(0.0, (double)(total - step) / rest);
    case SCHED_COSINE: {
        double prog = (double)(step - warmup) / rest; /* num_cycles 0.5: one half cosine */
        return base_lr * fmax(0.0, 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * prog)));
    }
    default: return base_lr;
    }
}
