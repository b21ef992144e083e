/* machine.c — this machine's limits, the denominators of every benchmark ratio:
 * sgemm GFLOP/s through OpenBLAS (1 thread and all threads) at a transformer-like shape. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double gflops(int threads, int M, int N, int K) {
    openblas_set_num_threads(threads);
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N), *c = malloc(sizeof(float) * M * N);
    for (long i = 0; i < (long)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
    for (long i = 0; i < (long)K * N; i++) b[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
    int reps = 0;
    double t0 = now(), t;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
        reps++;
    } while ((t = now() - t0) < 1.5);
    free(a); free(b); free(c);
    return 2.0 * M * N * K * reps / t / 1e9;
}

int main(void) {
    int n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    /* x[512, 2048] @ W[2048, 2048]^T: a projection of a small LM over a 512-token window */
    double g1 = gflops(1, 512, 2048, 2048), gn = gflops(n, 512, 2048, 2048);
    printf("{\"bench\":\"machine\",\"sgemm_gflops_1t\":%.1f,\"sgemm_gflops\":%.1f,\"threads\":%d,\"openblas_core\":\"%s\"}\n",
           g1, gn, n, openblas_get_corename());
    return 0;
}
