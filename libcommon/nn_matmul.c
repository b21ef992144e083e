/* nn_matmul.c — linear layers: float32 GEMMs (OpenBLAS, one thread per call) over weights kept in
 * their stored dtype. Each OpenMP thread converts a slice of the weight's rows into its own small
 * float32 scratch and multiplies it at once, so the conversion stays in cache, there is no barrier
 * between converting and multiplying, and OpenBLAS's own threads never compete with OpenMP's
 * (measured here: mixing the two loses 3x). */
#include "nn.h"
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void nn_to_f32(float *dst, const void *src, st_dtype dt, size_t n) {
    size_t es = st_dtype_size(dt);
    if (n < (1u << 16)) { nn_to_f32_serial(dst, src, dt, n); return; }
    #pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        size_t a = n * t / nt, b = n * (t + 1) / nt;
        nn_to_f32_serial(dst + a, (const char *)src + a * es, dt, b - a);
    }
}

void embedding_forward(float *out, const int32_t *ids, const void *table, st_dtype dt, int N, int C,
                       float scale) {
    size_t es = st_dtype_size(dt);
    #pragma omp parallel for schedule(static) if ((long)N * C > 65536)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * C;
        nn_to_f32_serial(o, (const char *)table + (size_t)ids[n] * C * es, dt, (size_t)C);
        if (scale != 1.0f)
            for (int i = 0; i < C; i++) o[i] *= scale;
    }
}

#ifndef CHUNK_KB
#define CHUNK_KB 1024u
#endif
/* Rows of W per conversion chunk: about 256 KB of float32 (fits L2 beside OpenBLAS's panels). */
static int chunk_rows(int IC) {
    int r = (int)((CHUNK_KB << 10) / sizeof(float) / (unsigned)IC);
    r = r < 16 ? 16 : r;
    return (r + 15) & ~15;
}

/* One thread: out[:, o0:o1] = x @ W[o0:o1]^T (+bias), converting W in chunks through scr. */
static void matmul_slice(float *out, const float *x, const void *w, st_dtype dt,
                         const float *bias, int N, int IC, int OC, int o0, int o1, float *scr,
                         int cr, int accumulate) {
    size_t es = st_dtype_size(dt);
    for (int a = o0; a < o1; a += cr) {
        int nr = o1 - a < cr ? o1 - a : cr;
        const float *wf;
        if (dt == ST_F32) {
            wf = (const float *)w + (size_t)a * IC;
        } else {
            nn_to_f32_serial(scr, (const char *)w + (size_t)a * IC * es, dt, (size_t)nr * IC);
            wf = scr;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, nr, IC, 1.0f, x, IC, wf, IC,
                    accumulate ? 1.0f : 0.0f, out + a, OC);
        if (bias)
            for (int n = 0; n < N; n++)
                for (int j = 0; j < nr; j++) out[(size_t)n * OC + a + j] += bias[a + j];
    }
}

int matmul_forward(float *out, const float *x, const void *w, st_dtype dt, const float *bias,
                   int N, int IC, int OC, int accumulate) {
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    int cr = chunk_rows(IC);
    int nt = omp_get_max_threads();
    if ((double)N * OC * IC < 2e6) nt = 1; /* tiny: a parallel region costs more than it saves */
    int fail = 0;
    #pragma omp parallel num_threads(nt) reduction(|: fail)
    {
        int T = omp_get_num_threads(), t = omp_get_thread_num();
        /* slices in multiples of 16 rows so every thread's GEMM has full vector widths */
        int units = (OC + 15) / 16;
        int o0 = (int)((long)units * t / T) * 16, o1 = (int)((long)units * (t + 1) / T) * 16;
        if (o1 > OC) o1 = OC;
        if (o0 < o1) {
            float *scr = dt == ST_F32 ? NULL : nn_scratch(0, (size_t)cr * IC);
            if (dt == ST_F32 || scr)
                matmul_slice(out, x, w, dt, bias, N, IC, OC, o0, o1, scr, cr, accumulate);
            else
                fail = 1;
        }
    }
    return fail ? -1 : 0;
}

/* Per-thread growable scratch buffers (slot 0..NN_SLOTS-1), kept for the thread's life. */
#define NN_SLOTS 4
static _Thread_local float *tls_buf[NN_SLOTS];
static _Thread_local size_t tls_cap[NN_SLOTS];
float *nn_scratch(int slot, size_t n) {
    if (n <= tls_cap[slot]) return tls_buf[slot];
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, n * sizeof(float)) != 0) return NULL;
    free(tls_buf[slot]);
    tls_buf[slot] = p;
    tls_cap[slot] = n;
    return p;
}

int matmul_forward_bf16(float *out, const float *x, const void *w, st_dtype dt, const float *bias,
                        int N, int IC, int OC, int accumulate) {
    if (!gemm_bf16_available()) return matmul_forward(out, x, w, dt, bias, N, IC, OC, accumulate);
    int K2 = (IC + 1) / 2;
    uint32_t *xp = gemm_bf16_xbuf(0, gemm_bf16_xpack_size(N, IC));
    if (!xp) return -1;
    int nt = omp_get_max_threads();
    if ((double)N * OC * IC < 2e6) nt = 1;
    size_t es = st_dtype_size(dt);
    int fail = 0;
    #pragma omp parallel num_threads(nt) reduction(|: fail)
    {
        int T = omp_get_num_threads(), t = omp_get_thread_num();
        /* x -> bf16 k-pairs, each thread a range of whole row blocks */
        int blocks = (N + GB_ROWS - 1) / GB_ROWS;
        int b0 = (int)((long)blocks * t / T), b1 = (int)((long)blocks * (t + 1) / T);
        int n0 = b0 * GB_ROWS, n1 = b1 * GB_ROWS < N ? b1 * GB_ROWS : N;
        if (n0 < n1) gemm_bf16_pack_x(xp + (size_t)n0 * K2, x + (size_t)n0 * IC, n1 - n0, IC, IC);
        #pragma omp barrier
        /* chunks of 1-4 panels of 32 outputs (about 4 per thread), taken dynamically: a thread
         * slowed by other work on the machine does not hold the others at the region's end */
        int panels = (OC + 31) / 32, cp = panels / (4 * T);
        cp = cp < 1 ? 1 : cp > 4 ? 4 : cp;
        int cw = cp * 32, nch = (OC + cw - 1) / cw;
        #pragma omp for schedule(dynamic, 1)
        for (int ch = 0; ch < nch; ch++) {
            int o0 = ch * cw, o1 = o0 + cw < OC ? o0 + cw : OC;
            if (gemm_bf16_nt_dt(out + o0, xp, (const char *)w + (size_t)o0 * IC * es, dt, N, o1 - o0,
                                IC, OC, accumulate))
                fail = 1;
            else if (bias)
                for (int n = 0; n < N; n++)
                    for (int j = o0; j < o1; j++) out[(size_t)n * OC + j] += bias[j];
        }
    }
    return fail ? -1 : 0;
}
