/* backend_cpu.c — the CPU backend: host memory, the nn_*.c float32 kernels, OpenBLAS and the
 * AVX512-BF16 GEMM (gemm_bf16.c). Each op is the call model_forward.c made before the seam
 * existed, so numbers are the same bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "backend_cpu.h"

#define vecf cpu_vecf

static void cpu_destroy(lop_backend *be) {
    cpu_be *c = (cpu_be *)be;
    free(c->vec);
    free(c->aseq);
    free(c->wscr);
    free(c->ascr);
    free(c);
}

static void *cpu_alloc(lop_backend *be, size_t n) {
    (void)be;
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) return NULL;
    return p;
}

static void cpu_release(lop_backend *be, void *p) { (void)be; free(p); }

static int cpu_copy(lop_backend *be, void *dst, const void *src, size_t n, lop_err *e) {
    (void)be; (void)e;
    if (dst != src && n) memcpy(dst, src, n);
    return 0;
}

static int cpu_weight_load(lop_backend *be, const lop_wref *w, lop_err *e) {
    (void)be; (void)w; (void)e;
    return 0;
}

static int cpu_weights_fit(lop_backend *be, size_t bytes, lop_err *e) { (void)be; (void)bytes; (void)e; return 0; }
static int cpu_weights_changed(lop_backend *be, lop_err *e) { (void)be; (void)e; return 0; }

static lop_gemm cpu_gemm_supported(lop_backend *be, lop_gemm g) {
    (void)be;
    return g == LOP_GEMM_BF16 && gemm_bf16_available() ? LOP_GEMM_BF16 : LOP_GEMM_F32;
}

static int cpu_embed(lop_backend *be, float *out, const int32_t *ids, const lop_wref *t, int N,
                     int C, float scale, lop_err *e) {
    (void)be; (void)e;
    embedding_forward(out, ids, t->data, t->dtype, N, C, scale);
    return 0;
}

static int cpu_matmul(lop_backend *be, float *out, const float *x, const lop_wref *w,
                      const lop_wref *bias, int N, lop_gemm g, lop_err *e) {
    const float *b = vecf((cpu_be *)be, bias);
    int r = g == LOP_GEMM_BF16
        ? matmul_forward_bf16(out, x, w->data, w->dtype, b, N, (int)w->cols, (int)w->rows, 0)
        : matmul_forward(out, x, w->data, w->dtype, b, N, (int)w->cols, (int)w->rows, 0);
    if (r) return lop_fail(e, "out of memory in a matmul");
    return 0;
}

static int cpu_rmsnorm(lop_backend *be, float *out, float *rstd, const float *x, const lop_wref *w,
                       int N, int C, float eps, int gemma, lop_err *e) {
    (void)e;
    rmsnorm_forward(out, rstd, x, vecf((cpu_be *)be, w), N, C, eps, gemma);
    return 0;
}

static int cpu_rope_table(lop_backend *be, float *cs, const int *pos, const float *inv, int N,
                          int D, lop_err *e) {
    (void)be; (void)e;
    rope_table(cs, pos, inv, N, D);
    return 0;
}

static int cpu_rope_apply(lop_backend *be, float *x, const float *cs, int N, int H, int D,
                          lop_err *e) {
    (void)be; (void)e;
    rope_apply(x, cs, N, H, D);
    return 0;
}

static int cpu_attention(lop_backend *be, const lop_attn_args *a, lop_err *e) {
    cpu_be *c = (cpu_be *)be;
    if (a->B > c->aseq_cap) {
        free(c->aseq);
        c->aseq = malloc(sizeof(attn_seq) * a->B);
        c->aseq_cap = c->aseq ? a->B : 0;
        if (!c->aseq) return lop_fail(e, "out of memory");
    }
    int qd = a->Hq * a->D, kd = a->Hkv * a->D;
    for (int i = 0; i < a->B; i++) {
        int T = a->len[i], r0 = a->off[i];
        const float *K = a->k + (size_t)r0 * kd, *V = a->v + (size_t)r0 * kd;
        int q0 = 0;
        if (a->kv) {
            lop_kv *kv = a->kv;
            q0 = kv->len[i];
            float *kc = kv->k[a->layer] + (size_t)i * kv->max_t * kd,
                  *vc = kv->v[a->layer] + (size_t)i * kv->max_t * kd;
            memcpy(kc + (size_t)q0 * kd, K, sizeof(float) * (size_t)T * kd);
            memcpy(vc + (size_t)q0 * kd, V, sizeof(float) * (size_t)T * kd);
            K = kc;
            V = vc;
        }
        c->aseq[i] = (attn_seq){a->out + (size_t)r0 * qd, a->att ? a->att + a->att_off[i] : NULL,
                                a->q + (size_t)r0 * qd, K, V, T, q0 + T, q0};
    }
    attention_forward_batch(c->aseq, a->B, a->Hq, a->Hkv, a->D, a->scale, a->window, a->softcap);
    return 0;
}

static int cpu_glu(lop_backend *be, float *h, const float *gate, const float *up, size_t n,
                   lop_act act, lop_err *e) {
    (void)be; (void)e;
    glu_forward(h, gate, up, n, act);
    return 0;
}

static int cpu_add(lop_backend *be, float *out, const float *a, const float *b, size_t n,
                   lop_err *e) {
    (void)be; (void)e;
    #pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    return 0;
}

static int cpu_head(lop_backend *be, const lop_head_args *a, lop_head_req *h, lop_err *e) {
    (void)be;
    return head_forward_cpu(a, h, e);
}

static size_t cpu_mem_peak(lop_backend *be) { (void)be; return 0; }

static int cpu_nonfinite(lop_backend *be, const float *x, size_t n, int slot, lop_err *e) {
    (void)be; (void)slot; (void)e;
    int bad = 0;
    #pragma omp parallel for reduction(|:bad) schedule(static) if (n > (1u << 16))
    for (size_t i = 0; i < n; i++) bad |= !isfinite(x[i]);
    return bad;
}

static int cpu_nonfinite_first(lop_backend *be, int nslots, lop_err *e) {
    (void)be; (void)nslots; (void)e;
    return -1; /* answered at once by cpu_nonfinite */
}

static const lop_backend_ops cpu_ops = {
    .destroy = cpu_destroy, .alloc = cpu_alloc, .release = cpu_release,
    .upload = cpu_copy, .download = cpu_copy, .copy = cpu_copy,
    .weight_load = cpu_weight_load, .weights_fit = cpu_weights_fit,
    .weights_changed = cpu_weights_changed, .gemm_supported = cpu_gemm_supported,
    .embed = cpu_embed, .matmul = cpu_matmul, .rmsnorm = cpu_rmsnorm,
    .rope_table = cpu_rope_table, .rope_apply = cpu_rope_apply, .qk_norm_rope = NULL,
    .attention = cpu_attention,
    .glu = cpu_glu, .add = cpu_add, .head = cpu_head, .nonfinite = cpu_nonfinite,
    .nonfinite_first = cpu_nonfinite_first, .mem_peak = cpu_mem_peak,
    /* training (backend_cpu_train.c) */
    .zero = cpu_zero, .lora_forward = cpu_lora_forward, .matmul_backward = cpu_matmul_backward,
    .lora_backward = cpu_lora_backward, .rmsnorm_backward = cpu_rmsnorm_backward,
    .rope_backward = cpu_rope_backward, .attention_backward = cpu_attention_backward,
    .glu_backward = cpu_glu_backward, .embed_backward = cpu_embed_backward,
    .head_logits = cpu_head_logits, .head_backward = cpu_head_backward, .xent = cpu_xent,
    .grad_sumsq = cpu_grad_sumsq, .adamw = cpu_adamw,
};

int lop_backend_cpu_new(lop_backend **out, const lop_config *cfg, lop_err *e) {
    *out = NULL;
    cpu_be *c = calloc(1, sizeof *c);
    if (!c) return lop_fail(e, "out of memory");
    int mv = cfg->hidden;
    if (cfg->inter > mv) mv = cfg->inter;
    if (cfg->n_heads * cfg->head_dim > mv) mv = cfg->n_heads * cfg->head_dim;
    c->maxvec = mv;
    {   /* the largest layer matrix, or 256 rows of the head: the frozen-matrix scratch */
        size_t C = (size_t)cfg->hidden, FF = (size_t)cfg->inter,
               qd = (size_t)cfg->n_heads * cfg->head_dim;
        size_t w = FF * C > qd * C ? FF * C : qd * C;
        c->wscr_want = w > C * 256 ? w : C * 256;
    }
    c->vec = malloc(sizeof(float) * (size_t)mv);
    if (!c->vec) { free(c); return lop_fail(e, "out of memory"); }
    c->be.op = &cpu_ops;
    strcpy(c->be.name, "cpu");
    c->be.host_mem = 1;
    c->be.device = -1;
    *out = &c->be;
    return 0;
}

int lop_device_parse(const char *s) {
    if (!strcmp(s, "cpu")) return -1;
    if (!strcmp(s, "cuda")) return 0;
    if (!strncmp(s, "cuda:", 5) && s[5]) {
        char *end;
        long n = strtol(s + 5, &end, 10);
        if (!*end && n >= 0 && n < 1024) return (int)n;
    }
    return -2;
}

