/* backend_cuda_load.c — the CUDA backend is a shared object (liblop_cuda.so, built from
 * libcommon/cuda/ when nvcc is present) loaded only when a tool is asked for a GPU, so CPU runs
 * never map cuBLAS and the CUDA runtime (hundreds of MB, seconds to load) and a build without
 * nvcc is the same program. Looked up in order: $LOP_CUDA_LIB; beside the executable's folder
 * (../build/ of a source tree, ../lib/lop/ of an install); the dynamic linker's path. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "backend.h"

typedef int (*cuda_new_fn)(lop_backend **, int, const lop_config *, lop_err *);

static void *cuda_handle(char *why, size_t whylen) {
    static void *h;
    static int tried;
    static char err[512];
    if (tried) { snprintf(why, whylen, "%.500s", err); return h; }
    tried = 1;
    static char cand[4][PATH_MAX + 32];
    int n = 0;
    const char *env = getenv("LOP_CUDA_LIB");
    if (env && *env) snprintf(cand[n++], sizeof cand[0], "%s", env);
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(cand[n++], sizeof cand[0], "%s/../build/liblop_cuda.so", exe);
            snprintf(cand[n++], sizeof cand[0], "%s/../lib/lop/liblop_cuda.so", exe);
        }
    }
    snprintf(cand[n++], sizeof cand[0], "liblop_cuda.so");
    err[0] = 0;
    for (int i = 0; i < n && !h; i++) {
        if (strchr(cand[i], '/') && access(cand[i], F_OK)) continue;
        h = dlopen(cand[i], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            const char *d = dlerror();
            snprintf(err, sizeof err, "%.500s", d ? d : "dlopen failed");
        }
    }
    if (!h && !err[0]) snprintf(err, sizeof err, "liblop_cuda.so not found");
    snprintf(why, whylen, "%.500s", err);
    return h;
}

int lop_backend_has_cuda(void) {
    char why[512];
    return cuda_handle(why, sizeof why) != NULL;
}

int lop_backend_cuda_new(lop_backend **out, int dev, const lop_config *c, lop_err *e) {
    *out = NULL;
    char why[512];
    void *h = cuda_handle(why, sizeof why);
    if (!h)
        return lop_failc(e, LOP_EUSAGE, "this build has no CUDA (%s; build on a machine with nvcc, or "
                         "make CUDA=1, or point LOP_CUDA_LIB at liblop_cuda.so)", why);
    cuda_new_fn fn = (cuda_new_fn)dlsym(h, "lop_cuda_backend_new");
    if (!fn) return lop_fail(e, "liblop_cuda.so lacks lop_cuda_backend_new");
    return fn(out, dev, c, e);
}

void *lop_backend_cuda_sym(const char *name) {
    char why[512];
    void *h = cuda_handle(why, sizeof why);
    return h ? dlsym(h, name) : NULL;
}
