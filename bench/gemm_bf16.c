/* gemm_bf16.c — the bf16 GEMM kernel alone (1 thread) against OpenBLAS sgemm on the same shapes,
 * back to back, several rounds (other work may share the machine: read the best round).
 * Shapes: N rows x OC outputs x K inputs, W [OC, K] bf16 as stored (sgemm gets it as float32).
 * JSON line per shape and round: gflops of both and the ratio. Build: see bench/gemm-bf16.sh. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "nn.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* --peak: the bf16 GEMM ceiling with every thread (matmul_forward_bf16 on a large MLP-like shape,
 * bf16 weights), the denominator of ppl --gemm bf16's GFLOP/s */
static int peak(void) {
    int N = 2048, OC = 2048, K = 640;
    float *x = malloc(sizeof(float) * N * K), *out = malloc(sizeof(float) * N * OC);
    uint16_t *wb = malloc(2 * (size_t)OC * K);
    for (long i = 0; i < (long)N * K; i++) x[i] = (float)((i * 7919) % 13) * 0.1f - 0.6f;
    for (long i = 0; i < (long)OC * K; i++) wb[i] = (uint16_t)(0x3c00 + (i * 104729) % 255);
    matmul_forward_bf16(out, x, wb, ST_BF16, NULL, N, K, OC, 0);
    int reps = 0;
    double t0 = now(), t;
    do { matmul_forward_bf16(out, x, wb, ST_BF16, NULL, N, K, OC, 0); reps++; } while ((t = now() - t0) < 1.5);
    printf("{\"bench\":\"bf16_gemm_peak\",\"gflops\":%.1f,\"N\":%d,\"OC\":%d,\"K\":%d}\n",
           2.0 * N * OC * K * reps / t / 1e9, N, OC, K);
    free(x); free(out); free(wb);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--peak")) return gemm_bf16_available() ? peak() : 1;
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    double secs = argc > 2 ? atof(argv[2]) : 0.7;
    static const int shapes[][3] = {{512, 2048, 640}, {512, 640, 2048}, {504, 256, 640},
                                    {512, 1024, 640}, {2048, 2048, 640}, {512, 3072, 1024}};
    if (!gemm_bf16_available()) { fprintf(stderr, "gemm_bf16: no avx512_bf16 on this CPU\n"); return 1; }
    openblas_set_num_threads(1);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], OC = shapes[s][1], K = shapes[s][2];
        float *x = malloc(sizeof(float) * N * K), *wf = malloc(sizeof(float) * OC * K);
        uint16_t *wb = malloc(2 * (size_t)OC * K);
        float *out = malloc(sizeof(float) * N * OC);
        uint32_t *xp = malloc(4 * gemm_bf16_xpack_size(N, K));
        for (long i = 0; i < (long)N * K; i++) x[i] = (float)((i * 7919) % 13) * 0.1f - 0.6f;
        for (long i = 0; i < (long)OC * K; i++) {
            wf[i] = (float)((i * 104729) % 11) * 0.05f - 0.25f;
            uint32_t u; memcpy(&u, &wf[i], 4); wb[i] = (uint16_t)(u >> 16);
        }
        for (int r = 0; r < rounds; r++) {
            double g[2];
            for (int k = 0; k < 2; k++) {
                int reps = 0;
                double t0 = now(), t;
                do {
                    if (k == 0) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, K, 1, x, K, wf, K, 0, out, OC);
                    else { gemm_bf16_pack_x(xp, x, N, K, K); gemm_bf16_nt(out, xp, wb, N, OC, K, OC, 0); }
                    reps++;
                } while ((t = now() - t0) < secs);
                g[k] = 2.0 * N * OC * K * reps / t / 1e9;
            }
            printf("{\"bench\":\"gemm_bf16\",\"N\":%d,\"OC\":%d,\"K\":%d,\"round\":%d,\"sgemm_gflops\":%.1f,"
                   "\"bf16_gflops\":%.1f,\"ratio\":%.2f}\n", N, OC, K, r, g[0], g[1], g[1] / g[0]);
            fflush(stdout);
        }
        free(x); free(wf); free(wb); free(out); free(xp);
    }
    return 0;
}
