/* gemm_bf16.c — out = x @ W^T with bf16 inputs and float32 accumulation (AVX512-BF16 vdpbf16ps).
 *
 * vdpbf16ps multiplies PAIRS of bf16 numbers: lane i of dst += a[2i]*b[2i] + a[2i+1]*b[2i+1].
 * So both operands are laid out in k-pairs (32-bit units):
 *   x packed once per call (gemm_bf16_pack_x), in blocks of GB_ROWS rows: [K2 pairs][GB_ROWS];
 *   W packed per thread, in panels of 32 outputs: [K2 pairs][32 outputs].
 * The micro-kernel keeps GB_ROWS x 32 float32 accumulators in registers (28 zmm), loads two
 * W vectors per k-pair and broadcasts each row's pair against them. Panels are packed in groups
 * that fit L2 and every row block of x runs across the whole group while it sits in L1.
 * The products of two bf16 numbers are exact in float32; only the summation order (and the
 * instruction's flushing of denormals) differ from a float64 reference of the rounded inputs. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include "nn.h"

#define GB_PANEL 32                 /* outputs per packed W panel (2 zmm) */
#define GB_GROUP_BYTES (160u << 10) /* packed W kept hot across a row block: ~L2 / 2 threads */
#define TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

int gemm_bf16_available(void) {
    static int cached = -1;
    int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (c < 0) {
        __builtin_cpu_init();
        c = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") ? 1 : 0;
        __atomic_store_n(&cached, c, __ATOMIC_RELAXED);
    }
    return c;
}

/* float -> bf16, round to nearest even (NaN stays NaN), as the hardware's vcvtneps2bf16 */
static inline uint32_t bf16_rne(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u; /* quiet NaN */
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

size_t gemm_bf16_xpack_size(int N, int K) {
    size_t blocks = ((size_t)N + GB_ROWS - 1) / GB_ROWS;
    return blocks * GB_ROWS * (size_t)((K + 1) / 2);
}

/* 16 rows of 16 dwords -> 16 columns (a[i] = row i in, column i out): 2 stages of unpacks inside
 * 128-bit lanes, then a 4x4 transpose of the lanes */
static inline __attribute__((always_inline)) TARGET void transpose16(__m512i a[16]) {
    __m512i t[16], s[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(a[2 * i], a[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(a[2 * i], a[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* s[4i + c] lane L: column 4L + c, rows 4i..4i+3 */
        s[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        s[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        s[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        s[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; c++) { /* column 4L + c = lane L of s[c], s[4+c], s[8+c], s[12+c] */
        __m512i x0 = _mm512_shuffle_i32x4(s[c], s[4 + c], 0x44);
        __m512i x1 = _mm512_shuffle_i32x4(s[c], s[4 + c], 0xEE);
        __m512i x2 = _mm512_shuffle_i32x4(s[8 + c], s[12 + c], 0x44);
        __m512i x3 = _mm512_shuffle_i32x4(s[8 + c], s[12 + c], 0xEE);
        a[c] = _mm512_shuffle_i32x4(x0, x2, 0x88);
        a[4 + c] = _mm512_shuffle_i32x4(x0, x2, 0xDD);
        a[8 + c] = _mm512_shuffle_i32x4(x1, x3, 0x88);
        a[12 + c] = _mm512_shuffle_i32x4(x1, x3, 0xDD);
    }
}

/* one full block of GB_ROWS rows, pairs [0, P16) (a multiple of 16): each row's 32 floats -> 16
 * bf16 pairs (vcvtne2ps2bf16: nearest even, like bf16_rne but for denormals, which vdpbf16ps
 * reads as zero anyway), then a 16x16 transpose whose first GB_ROWS lanes are the block's rows */
static TARGET void pack_x_block_fast(uint32_t *blk, const float *x, int ldx, int P16) {
    for (int p0 = 0; p0 < P16; p0 += 16) {
        __m512i a[16];
        for (int r = 0; r < 16; r++) {
            if (r >= GB_ROWS) { a[r] = _mm512_setzero_si512(); continue; }
            const float *src = x + (size_t)r * ldx + 2 * p0;
            a[r] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 16), _mm512_loadu_ps(src));
        }
        transpose16(a);
        for (int c = 0; c < 16; c++)
            _mm512_mask_storeu_epi32(blk + (size_t)(p0 + c) * GB_ROWS, (__mmask16)((1u << GB_ROWS) - 1), a[c]);
    }
}

void gemm_bf16_pack_x(uint32_t *xp, const float *x, int N, int K, int ldx) {
    int K2 = (K + 1) / 2;
    int fast = gemm_bf16_available();
    for (int b0 = 0; b0 < N; b0 += GB_ROWS) {
        uint32_t *blk = xp + (size_t)b0 * K2; /* block b0/GB_ROWS starts at b0 * K2 */
        int p_done = 0;
        if (fast && b0 + GB_ROWS <= N) {
            p_done = K / 2 / 16 * 16;
            pack_x_block_fast(blk, x + (size_t)b0 * ldx, ldx, p_done);
        }
        for (int r = 0; r < GB_ROWS; r++) {
            int n = b0 + r;
            if (n >= N) {
                for (int p = 0; p < K2; p++) blk[(size_t)p * GB_ROWS + r] = 0;
                continue;
            }
            const float *row = x + (size_t)n * ldx;
            for (int p = p_done; p < K / 2; p++)
                blk[(size_t)p * GB_ROWS + r] = bf16_rne(row[2 * p]) | bf16_rne(row[2 * p + 1]) << 16;
            if (K & 1) blk[(size_t)(K2 - 1) * GB_ROWS + r] = bf16_rne(row[K - 1]);
        }
    }
}

/* bf16 rows, full panel: pairs [0, P16) (a multiple of 16) by 16x16 dword transposes */
static TARGET void pack_w_bf16_fast(uint32_t *wp, const uint16_t *w, int K, int P16) {
    for (int j0 = 0; j0 < GB_PANEL; j0 += 16)
        for (int p0 = 0; p0 < P16; p0 += 16) {
            __m512i a[16];
            for (int i = 0; i < 16; i++)
                a[i] = _mm512_loadu_si512((const void *)(w + (size_t)(j0 + i) * K + 2 * p0));
            transpose16(a);
            for (int c = 0; c < 16; c++)
                _mm512_store_si512((void *)(wp + (size_t)(p0 + c) * GB_PANEL + j0), a[c]);
        }
}

/* Pack nout (<= 32) rows of W (row o at w + o*K elements, dtype dt) into wp[K2][32], zero padded. */
static void pack_w(uint32_t *wp, const void *w, st_dtype dt, int nout, int K, float *rowbuf) {
    int K2 = (K + 1) / 2, p_done = 0;
    if (dt == ST_BF16 && nout == GB_PANEL) {
        p_done = K / 2 / 16 * 16;
        pack_w_bf16_fast(wp, w, K, p_done);
    }
    for (int j = 0; j < nout; j++) {
        if (dt == ST_BF16) {
            const uint16_t *row = (const uint16_t *)w + (size_t)j * K;
            for (int p = p_done; p < K / 2; p++) {
                uint32_t v;
                memcpy(&v, row + 2 * p, 4);
                wp[(size_t)p * GB_PANEL + j] = v;
            }
            if (K & 1) wp[(size_t)(K2 - 1) * GB_PANEL + j] = row[K - 1];
        } else {
            nn_to_f32_serial(rowbuf, (const char *)w + (size_t)j * K * st_dtype_size(dt), dt, (size_t)K);
            for (int p = 0; p < K / 2; p++)
                wp[(size_t)p * GB_PANEL + j] = bf16_rne(rowbuf[2 * p]) | bf16_rne(rowbuf[2 * p + 1]) << 16;
            if (K & 1) wp[(size_t)(K2 - 1) * GB_PANEL + j] = bf16_rne(rowbuf[K - 1]);
        }
    }
    for (int j = nout; j < GB_PANEL; j++)
        for (int p = 0; p < K2; p++) wp[(size_t)p * GB_PANEL + j] = 0;
}

/* out[R, 0:nout] (+)= xb[K2][GB_ROWS] (first R rows) . wp[K2][32]; R is a constant after inlining */
static inline __attribute__((always_inline)) TARGET void
micro(const int R, const uint32_t *xb, const uint32_t *wp, int K2, float *out, int ldo, int nout,
      int accumulate) {
    __m512 c0[GB_ROWS], c1[GB_ROWS];
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++) { c0[r] = _mm512_setzero_ps(); c1[r] = _mm512_setzero_ps(); }
    for (int p = 0; p < K2; p++) {
        __m512i b0 = _mm512_load_si512((const void *)(wp + (size_t)p * GB_PANEL));
        __m512i b1 = _mm512_load_si512((const void *)(wp + (size_t)p * GB_PANEL + 16));
        const uint32_t *xr = xb + (size_t)p * GB_ROWS;
        #pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            __m512i a = _mm512_set1_epi32((int)xr[r]);
            c0[r] = _mm512_dpbf16_ps(c0[r], (__m512bh)a, (__m512bh)b0);
            c1[r] = _mm512_dpbf16_ps(c1[r], (__m512bh)a, (__m512bh)b1);
        }
    }
    __mmask16 m0 = nout >= 16 ? 0xffff : (__mmask16)((1u << nout) - 1);
    __mmask16 m1 = nout >= 32 ? 0xffff : nout <= 16 ? 0 : (__mmask16)((1u << (nout - 16)) - 1);
    #pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
        float *o = out + (size_t)r * ldo;
        if (accumulate) {
            c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, o));
            c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, o + 16));
        }
        _mm512_mask_storeu_ps(o, m0, c0[r]);
        _mm512_mask_storeu_ps(o + 16, m1, c1[r]);
    }
}

#define MICRO_CASE(R) case R: micro(R, xb, wp, K2, out, ldo, nout, accumulate); break;
static TARGET void micro_rows(int R, const uint32_t *xb, const uint32_t *wp, int K2, float *out,
                              int ldo, int nout, int accumulate) {
    switch (R) {
        MICRO_CASE(14) MICRO_CASE(13) MICRO_CASE(12) MICRO_CASE(11) MICRO_CASE(10)
        MICRO_CASE(9) MICRO_CASE(8) MICRO_CASE(7) MICRO_CASE(6) MICRO_CASE(5) MICRO_CASE(4)
        MICRO_CASE(3) MICRO_CASE(2) MICRO_CASE(1)
        default: break;
    }
}
#if GB_ROWS != 14
#error "micro_rows lists the cases 1..14"
#endif

/* per-thread packed-W scratch (64-byte aligned, grown as needed, kept for the thread's life) */
static _Thread_local uint32_t *tls_wp;
static _Thread_local size_t tls_wp_cap;
static _Thread_local float *tls_row;
static _Thread_local size_t tls_row_cap;

static int grow_scratch(size_t wp_n, int K, st_dtype dt) {
    if (wp_n > tls_wp_cap) {
        uint32_t *p = NULL;
        if (posix_memalign((void **)&p, 64, wp_n * 4) != 0) return -1;
        free(tls_wp);
        tls_wp = p;
        tls_wp_cap = wp_n;
    }
    if (dt != ST_BF16 && (size_t)K > tls_row_cap) {
        float *p = malloc(sizeof(float) * (size_t)K);
        if (!p) return -1;
        free(tls_row);
        tls_row = p;
        tls_row_cap = (size_t)K;
    }
    return 0;
}

size_t gemm_bf16_wpack_size(int OC, int K) {
    return (size_t)((OC + GB_PANEL - 1) / GB_PANEL) * GB_PANEL * (size_t)((K + 1) / 2);
}

int gemm_bf16_pack_w(uint32_t *wp, const void *w, st_dtype dt, int OC, int K) {
    if (grow_scratch(0, K, dt)) return -1;
    size_t panel = (size_t)((K + 1) / 2) * GB_PANEL, es = st_dtype_size(dt);
    for (int o = 0; o < OC; o += GB_PANEL)
        pack_w(wp + (size_t)(o / GB_PANEL) * panel, (const char *)w + (size_t)o * K * es, dt,
               OC - o < GB_PANEL ? OC - o : GB_PANEL, K, tls_row);
    return 0;
}

/* rows of xp against panels [0, np) of wp (outputs o0.. of out) */
static TARGET void run_panels(float *out, const uint32_t *xp, const uint32_t *wp, int np, int N,
                              int OC, int K2, int ldo, int accumulate) {
    size_t panel = (size_t)K2 * GB_PANEL;
    for (int n0 = 0; n0 < N; n0 += GB_ROWS) {
        int R = N - n0 < GB_ROWS ? N - n0 : GB_ROWS;
        const uint32_t *xb = xp + (size_t)n0 * K2;
        for (int g = 0; g < np; g++) {
            int o = g * GB_PANEL, nout = OC - o < GB_PANEL ? OC - o : GB_PANEL;
            micro_rows(R, xb, wp + g * panel, K2, out + (size_t)n0 * ldo + o, ldo, nout, accumulate);
        }
    }
}

int gemm_bf16_nt_packed(float *out, const uint32_t *xp, const uint32_t *wp, int N, int OC, int K,
                        int ldo, int accumulate) {
    if (!gemm_bf16_available()) return -1;
    if (N <= 0 || OC <= 0) return 0;
    int K2 = (K + 1) / 2;
    size_t panel = (size_t)K2 * GB_PANEL;
    int G = (int)(GB_GROUP_BYTES / (panel * 4));
    if (G < 1) G = 1;
    for (int o0 = 0; o0 < OC; o0 += G * GB_PANEL) /* groups of panels that stay in L2 */
        run_panels(out + o0, xp, wp + (size_t)(o0 / GB_PANEL) * panel,
                   (OC - o0 < G * GB_PANEL ? OC - o0 + GB_PANEL - 1 : G * GB_PANEL) / GB_PANEL, N,
                   OC - o0, K2, ldo, accumulate);
    return 0;
}

int gemm_bf16_nt_dt(float *out, const uint32_t *xp, const void *w, st_dtype dt, int N, int OC,
                    int K, int ldo, int accumulate) {
    if (!gemm_bf16_available()) return -1;
    if (N <= 0 || OC <= 0) return 0;
    int K2 = (K + 1) / 2;
    size_t panel = (size_t)K2 * GB_PANEL; /* uint32 per packed panel */
    int G = (int)(GB_GROUP_BYTES / (panel * 4));
    if (G < 1) G = 1;
    int maxg = (OC + GB_PANEL - 1) / GB_PANEL;
    if (G > maxg) G = maxg;
    if (grow_scratch((size_t)G * panel, K, dt)) return -1;
    size_t es = st_dtype_size(dt);
    for (int o0 = 0; o0 < OC; o0 += G * GB_PANEL) {
        int ng = (OC - o0 + GB_PANEL - 1) / GB_PANEL;
        if (ng > G) ng = G;
        for (int g = 0; g < ng; g++) {
            int o = o0 + g * GB_PANEL, nout = OC - o < GB_PANEL ? OC - o : GB_PANEL;
            pack_w(tls_wp + g * panel, (const char *)w + (size_t)o * K * es, dt, nout, K, tls_row);
        }
        run_panels(out + o0, xp, tls_wp, ng, N, OC - o0, K2, ldo, accumulate);
    }
    return 0;
}

/* the calling thread's packed-x buffers (slot 0: matmul, 1: lm_head), shared with its team */
static _Thread_local uint32_t *tls_x[2];
static _Thread_local size_t tls_x_cap[2];
uint32_t *gemm_bf16_xbuf(int slot, size_t n) {
    if (n <= tls_x_cap[slot]) return tls_x[slot];
    uint32_t *p = NULL;
    if (posix_memalign((void **)&p, 64, n * 4) != 0) return NULL;
    free(tls_x[slot]);
    tls_x[slot] = p;
    tls_x_cap[slot] = n;
    return p;
}

int gemm_bf16_nt(float *out, const uint32_t *xp, const uint16_t *w, int N, int OC, int K, int ldo,
                 int accumulate) {
    return gemm_bf16_nt_dt(out, xp, w, ST_BF16, N, OC, K, ldo, accumulate);
}
