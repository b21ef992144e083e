/* blas_tune.c — see blas_tune.h. */
#include "blas_tune.h"
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void tool_blas_reexec(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv("LOP_NO_REEXEC")) return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq"))
        return;
    const char *core = openblas_get_corename();
    if (core && (!strcmp(core, "SkylakeX") || !strcmp(core, "Cooperlake") ||
                 !strcmp(core, "SapphireRapids") || !strcmp(core, "skylakex") ||
                 !strcmp(core, "cooperlake") || !strcmp(core, "sapphirerapids")))
        return;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    setenv("LOP_NO_REEXEC", "1", 1); /* never loop */
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the kernels we have */
}
