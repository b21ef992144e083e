/* prune.c — exact-count weight selection (see prune.h for the order every function keeps). */
#include "prune.h"
#include <math.h>
#include <stdlib.h>

/* Below this many weights a parallel region costs more than it saves (and on a loaded machine
 * spinning OpenMP threads cost far more). */
#define PAR_MIN (1 << 16)

int64_t prune_count(double sparsity, int64_t n) {
    if (!(sparsity > 0) || n <= 0) return 0;
    if (sparsity >= 1) return n;
    long double x = (long double)sparsity * (long double)n;
    int64_t k = (int64_t)floorl(x * (1 + 1e-9L));
    return k > n ? n : k;
}

/* ---- quickselect ---- */
static inline void swap_u64(uint64_t *a, uint64_t *b) { uint64_t t = *a; *a = *b; *b = t; }

static void sift_down(uint64_t *a, int64_t n, int64_t i) {
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && a[c + 1] > a[c]) c++;
        if (a[i] >= a[c]) return;
        swap_u64(&a[i], &a[c]);
        i = c;
    }
}

/* Fallback: the k smallest of a[0..n) into a[0..k) with a max-heap, then the max of those to
 * a[k-1]. O(n log k). */
static void heap_select(uint64_t *a, int64_t n, int64_t k) {
    for (int64_t i = k / 2 - 1; i >= 0; i--) sift_down(a, k, i);
    for (int64_t i = k; i < n; i++)
        if (a[i] < a[0]) { swap_u64(&a[i], &a[0]); sift_down(a, k, 0); }
    swap_u64(&a[0], &a[k - 1]);
}

uint64_t prune_select_u64(uint64_t *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1, want = k - 1;
    int budget = 2 * 64; /* partitions allowed before falling back to the heap */
    while (hi > lo) {
        if (--budget < 0) {
            heap_select(a + lo, hi - lo + 1, want - lo + 1);
            return a[want];
        }
        int64_t mid = lo + (hi - lo) / 2;
        /* median of three into a[mid], then use it as the pivot */
        if (a[mid] < a[lo]) swap_u64(&a[mid], &a[lo]);
        if (a[hi] < a[lo]) swap_u64(&a[hi], &a[lo]);
        if (a[hi] < a[mid]) swap_u64(&a[hi], &a[mid]);
        uint64_t pivot = a[mid];
        int64_t i = lo, j = hi;
        while (i <= j) { /* Hoare partition: values are distinct */
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i <= j) { swap_u64(&a[i], &a[j]); i++; j--; }
        }
        /* now a[lo..j] <= pivot <= a[i..hi], and a[j+1..i-1] == pivot */
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return a[want];
    }
    return a[want];
}

/* ---- per row ---- */
static inline float norm_at(const float *norm, int64_t j) { return norm ? norm[j] : 1.0f; }

/* Zero the k lowest of one row (k >= 1); returns the largest selected key. */
static uint32_t select_row(float *w, int64_t cols, const float *norm, int64_t k, uint64_t *tmp) {
    for (int64_t j = 0; j < cols; j++)
        tmp[j] = ((uint64_t)prune_key(w[j], norm_at(norm, j)) << 32) | (uint64_t)j;
    uint64_t kth = prune_select_u64(tmp, cols, k);
    for (int64_t t = 0; t < k; t++) w[tmp[t] & 0xffffffffu] = 0.0f;
    return (uint32_t)(kth >> 32);
}

static int64_t count_zeros(const float *w, int64_t n) {
    int64_t z = 0;
    for (int64_t i = 0; i < n; i++) z += (w[i] == 0.0f);
    return z;
}

int prune_rows(float *w, int64_t rows, int64_t cols, const float *norm, double sparsity,
               prune_stat *st) {
    return prune_rows_k(w, rows, cols, norm, prune_count(sparsity, cols), 0, st);
}

int prune_rows_k(float *w, int64_t rows, int64_t cols, const float *norm, int64_t k,
                 int64_t extra, prune_stat *st) {
    int64_t before = count_zeros(w, rows * cols);
    uint32_t maxkey = 0;
    int fail = 0;
    if (k < 0 || k > cols || extra < 0 || extra > rows || (extra > 0 && k >= cols)) return -1;
    if ((k > 0 || extra > 0) && cols > 0xffffffffLL) return -1; /* the column must fit the key's low half */
    if (k > 0 || extra > 0) {
#pragma omp parallel reduction(max : maxkey) reduction(| : fail) if (rows * cols >= PAR_MIN)
        {
            uint64_t *tmp = malloc((size_t)cols * sizeof *tmp);
            if (!tmp) fail = 1;
            else {
#pragma omp for schedule(static)
                for (int64_t r = 0; r < rows; r++) {
                    int64_t kr = k + (r < extra);
                    if (!kr) continue;
                    uint32_t m = select_row(w + r * cols, cols, norm, kr, tmp);
                    if (m > maxkey) maxkey = m;
                }
            }
            free(tmp);
        }
    }
    if (fail) return -1;
    st->zeros = count_zeros(w, rows * cols);
    st->pruned = st->zeros - before;
    st->threshold = ((k > 0 || extra > 0) && rows > 0) ? prune_key_score(maxkey) : 0.0f;
    return 0;
}

int prune_nm(float *w, int64_t rows, int64_t cols, const float *norm, int n, int m,
             prune_stat *st) {
    if (m <= 0 || m > 256 || n < 0 || n > m || cols % m) return -1;
    int64_t before = count_zeros(w, rows * cols);
    uint32_t maxkey = 0;
    if (n > 0) {
#pragma omp parallel for schedule(static) reduction(max : maxkey) if (rows * cols >= PAR_MIN)
        for (int64_t r = 0; r < rows; r++) {
            uint64_t t[256];
            for (int64_t g = 0; g < cols; g += m) {
                uint32_t k = select_row(w + r * cols + g, m, norm ? norm + g : NULL, n, t);
                if (k > maxkey) maxkey = k;
            }
        }
    }
    st->zeros = count_zeros(w, rows * cols);
    st->pruned = st->zeros - before;
    st->threshold = (n > 0 && rows > 0 && cols > 0) ? prune_key_score(maxkey) : 0.0f;
    return 0;
}

/* ---- radix select across matrices ---- */
int prune_sel_init(prune_sel *s, int64_t k) {
    memset(s, 0, sizeof *s);
    s->k = k;
    s->hist = calloc(65536, sizeof *s->hist);
    if (!s->hist) return -1;
    if (k <= 0) { s->k = 0; s->pass = 2; s->T = 0; s->rem = 0; }
    return 0;
}

int prune_sel_done(const prune_sel *s) { return s->pass >= 2; }

void prune_sel_add(prune_sel *s, const float *w, int64_t rows, int64_t cols, const float *norm) {
    uint64_t *h = s->hist;
    int64_t n = rows * cols;
    if (s->pass == 0) {
        for (int64_t i = 0; i < n; i++) h[prune_key(w[i], norm_at(norm, i % cols)) >> 16]++;
    } else if (s->pass == 1) {
        for (int64_t i = 0; i < n; i++) {
            uint32_t key = prune_key(w[i], norm_at(norm, i % cols));
            if ((key >> 16) == s->hi) h[key & 0xffff]++;
        }
    }
    s->seen += n;
}

int prune_sel_next(prune_sel *s) {
    if (s->pass >= 2) return 0;
    if (s->seen < s->k) return -1;
    /* find the bin that holds the k-th smallest (1-based) among those not yet below */
    int64_t need = s->k - s->below, acc = 0;
    int bin = 0;
    for (; bin < 65536; bin++) {
        if (acc + (int64_t)s->hist[bin] >= need) break;
        acc += (int64_t)s->hist[bin];
    }
    if (bin == 65536) return -1;
    s->below += acc;
    if (s->pass == 0) s->hi = (uint32_t)bin;
    else {
        s->T = (s->hi << 16) | (uint32_t)bin;
        s->rem = s->k - s->below;
    }
    s->pass++;
    s->seen = 0;
    memset(s->hist, 0, 65536 * sizeof *s->hist);
    return 0;
}

void prune_sel_apply(const prune_sel *s, int64_t *ties, float *w, int64_t rows, int64_t cols,
                     const float *norm, prune_stat *st) {
    int64_t n = rows * cols, before = count_zeros(w, n);
    if (s->k > 0) {
        uint32_t T = s->T;
        /* below the threshold: order-free, in parallel */
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            if (prune_key(w[i], norm_at(norm, i % cols)) < T) w[i] = 0.0f;
        /* at the threshold: the first *ties in stream order */
        for (int64_t i = 0; i < n && *ties > 0; i++)
            if (prune_key(w[i], norm_at(norm, i % cols)) == T) { w[i] = 0.0f; (*ties)--; }
    }
    st->zeros = count_zeros(w, n);
    st->pruned = st->zeros - before;
    st->threshold = s->k > 0 ? prune_key_score(s->T) : 0.0f;
}

void prune_sel_free(prune_sel *s) {
    free(s->hist);
    s->hist = NULL;
}
