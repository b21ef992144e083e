/* blas_tune.c — see blas_tune.h. */
#include "blas_tune.h"
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int avx512_core(const char *core) {
    return core && (!strcasecmp(core, "SkylakeX") || !strcasecmp(core, "Cooperlake") ||
                    !strcasecmp(core, "SapphireRapids"));
}

void tool_blas_reexec(char **argv) {
    if (getenv("LOP_NO_REEXEC")) return;
    int again = 0;
    if (!getenv("OPENBLAS_CORETYPE")) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
            !avx512_core(openblas_get_corename())) {
            setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
            again = 1;
        }
    }
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        again = 1;
    }
    if (!again) return;
    setenv("LOP_NO_REEXEC", "1", 1); /* never loop */
    execv("/proc/self/exe", argv);
    /* exec failed: carry on as we are */
}
