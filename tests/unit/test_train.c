/* test_train.c — the training engine against ../shared goldens from transformers + torch:
 * for every tiny model, the loss on text "en", every parameter's gradient norm and the loss
 * after one AdamW step (lr 1e-3, betas 0.9/0.999, eps 1e-8, wd 0.01 on every parameter), each
 * within 1e-4 relative. Also: activation recomputation gives the same gradients, and LoRA's
 * gradient is the full one's projection. Skips (exit 0 with a message) when ../shared is absent.
 *
 * LOP_TEST_DEVICE=cuda (make test-cuda, on a GPU): the same on the CUDA backend, float32
 * products (the same 1e-4 bounds); LOP_TEST_GEMM=bf16 as well: bf16 products with float32
 * masters, within the bounds docs/gpu.md gives (BF16_TOL below). */
#include "fsutil.h"
#include "train.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "check.h"

static const char *device;
static lop_gemm gemm = LOP_GEMM_F32;
/* relative bounds: float32 anywhere; bf16 products (8 mantissa bits per operand, float32
 * accumulation) on the tiny goldens */
#define F32_TOL 1e-4
#define BF16_TOL 2e-2
static double tol(void) { return gemm == LOP_GEMM_BF16 ? BF16_TOL : F32_TOL; }

static tr_opts opts_here(void) {
    tr_opts o = TR_OPTS_DEFAULT;
    o.device = device;
    o.gemm = gemm;
    return o;
}

/* a host copy of array `which` of parameter i (downloaded from a device) */
static float *host(const tr_model *m, int i, int which) {
    float *x = malloc(m->p[i].n * sizeof(float));
    lop_err e;
    if (!x || tr_param_read(m, i, which, x, &e)) { printf("read %s: FAIL\n", m->p[i].name); exit(1); }
    return x;
}

/* a whole file, NUL-terminated (libcommon's reader), or NULL */
static char *slurp(const char *path) {
    char *b; size_t n; lop_err e;
    return fs_read_all(path, &b, &n, &e) ? NULL : b;
}

/* LoRA on the same batch (base matrices, embedding and head all kept mapped in their stored
 * dtype): B starts at zero, so the loss is the full model's, and dL/dB = (alpha/r) dL/dW A^T
 * with dL/dW the full fine-tuning gradient of the same projection. */
static void lora_check(const tr_model *full, const char *path, const char *name, const tr_batch *b,
                       double full_loss) {
    tr_opts o = opts_here();
    o.lora_rank = 4; o.lora_alpha = 8; o.lora_targets = 0x7f;
    tr_model *m; lop_err e;
    if (tr_open(&m, path, &o, 7, &e)) { printf("  lora: %s FAIL\n", e.msg); fails++; return; }
    tr_stats st = {0, 0};
    tr_zero_grad(m);
    if (tr_forward_backward(m, b, 1.0f / (b->T - 1), NULL, NULL, 0, &st, &e)) {
        printf("  lora: %s FAIL\n", e.msg); fails++; tr_free(m); return;
    }
    double loss = st.loss_sum / st.scored;
    int ok = fabs(loss - full_loss) < (gemm == LOP_GEMM_BF16 ? 1e-3 : 1e-5) * fmax(1, fabs(full_loss));
    const char *mods[] = {"model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj",
                          "model.layers.1.self_attn.v_proj"};
    double worst = 0;
    for (int k = 0; k < 3; k++) {
        char wn[256], an[300];
        snprintf(wn, sizeof wn, "%s.weight", mods[k]);
        snprintf(an, sizeof an, "base_model.model.%s.lora_A.weight", mods[k]);
        int wi = tr_find(full, wn), ai = tr_find(m, an);
        if (wi < 0 || ai < 0) { printf("  lora: no %s FAIL\n", mods[k]); ok = 0; continue; }
        const tr_param *W = &full->p[wi], *A = &m->p[ai];
        int64_t O = W->rows, I = W->cols, r = A->rows;
        float *Wg = host(full, wi, TR_G), *Aw = host(m, ai, TR_W), *Bg = host(m, ai + 1, TR_G);
        double num = 0, den = 0;
        for (int64_t i = 0; i < O; i++)
            for (int64_t j = 0; j < r; j++) {
                double want = 0;
                for (int64_t c = 0; c < I; c++) want += (double)Wg[i * I + c] * Aw[j * I + c];
                want *= o.lora_alpha / o.lora_rank;
                double d = Bg[i * r + j] - want;
                num += d * d; den += want * want;
            }
        free(Wg); free(Aw); free(Bg);
        double rel = sqrt(num / fmax(den, 1e-30));
        if (rel > worst) worst = rel;
        if (rel > (gemm == LOP_GEMM_BF16 ? BF16_TOL : 1e-4)) ok = 0;
    }
    printf("  LoRA r4 (mapped base): loss %.6f, dB vs (a/r) dW A^T worst rel.err %.2e %s\n", loss,
           worst, ok ? "ok" : "FAIL");
    (void)name;
    fails += !ok;
    tr_free(m);
}

static int run_model(const char *shared, const char *name, int recompute) {
    char path[1024], gpath[1100];
    snprintf(path, sizeof path, "%s/models/%s", shared, name);
    snprintf(gpath, sizeof gpath, "%s/golden.json", path);
    char *txt = slurp(gpath);
    if (!txt) { printf("%s: no golden.json\n", name); return 1; }
    cJSON *g = cJSON_Parse(txt); free(txt);
    cJSON *ids = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(g, "texts"), "en"), "ids");
    cJSON *tr = cJSON_GetObjectItem(g, "train");
    if (!tr) { printf("%-12s no train golden, skipped\n", name); cJSON_Delete(g); return 0; }
    int n = cJSON_GetArraySize(ids);
    int32_t *in = malloc(n * 4), *tg = malloc(n * 4);
    for (int i = 0; i < n; i++) in[i] = cJSON_GetArrayItem(ids, i)->valueint;
    for (int i = 0; i < n; i++) tg[i] = i + 1 < n ? in[i + 1] : -1;
    tr_opts o = opts_here();
    o.keep_sparsity = 0; o.decay_vectors = 1; o.recompute = recompute;
    tr_model *m; lop_err e;
    if (tr_open(&m, path, &o, 0, &e)) { printf("%s: %s\n", name, e.msg); cJSON_Delete(g); return 1; }
    tr_batch b = {1, n, in, tg};
    tr_stats st = {0, 0};
    tr_zero_grad(m);
    if (tr_forward_backward(m, &b, 1.0f / (n - 1), NULL, NULL, 0, &st, &e)) { printf("%s\n", e.msg); return 1; }
    double loss = st.loss_sum / st.scored, want = cJSON_GetObjectItem(tr, "loss")->valuedouble;
    int ok = fabs(loss - want) < tol() * fmax(1, fabs(want));
    printf("%-12s%s loss %.6f vs %.6f %s\n", name, recompute ? "(recompute)" : "", loss, want, ok ? "ok" : "FAIL");
    fails += !ok;
    cJSON *gn = cJSON_GetObjectItem(tr, "grad_norm"), *it;
    int checked = 0, bad = 0; double worst = 0;
    cJSON_ArrayForEach(it, gn) {
        int i = tr_find(m, it->string);
        if (i < 0) { printf("  no parameter %s\n", it->string); bad++; continue; }
        float *gi = host(m, i, TR_G);
        double s = sqrt(grad_sumsq(gi, m->p[i].n)), w = it->valuedouble;
        free(gi);
        double rel = fabs(s - w) / fmax(w, 1e-12);
        if (rel > worst) worst = rel;
        if (rel > tol()) { printf("  grad norm %s: %.7g vs %.7g (rel %.2e) FAIL\n", it->string, s, w, rel); bad++; }
        checked++;
    }
    printf("  %d gradient norms, worst rel.err %.2e %s\n", checked, worst, bad ? "FAIL" : "ok");
    fails += bad > 0;
    if (!recompute) lora_check(m, path, name, &b, loss);
    adamw_hp hp = ADAMW_DEFAULTS;
    tr_adamw_step(m, 1e-3, &hp, 1, 1.0);
    tr_stats s2 = {0, 0};
    tr_eval_batch(m, &b, NULL, NULL, &s2, &e);
    double l1 = s2.loss_sum / s2.scored, w1 = cJSON_GetObjectItem(tr, "loss_after_1_step")->valuedouble;
    ok = fabs(l1 - w1) < tol() * fmax(1, fabs(w1));
    printf("  loss after 1 AdamW step %.6f vs %.6f %s\n", l1, w1, ok ? "ok" : "FAIL");
    fails += !ok;
    tr_free(m); free(in); free(tg); cJSON_Delete(g);
    return 0;
}

int main(void) {
    const char *cands[] = {getenv("LOP_SHARED"), "../shared", "../../shared"};
    const char *shared = NULL;
    struct stat sb;
    char probe[1200];
    for (int i = 0; i < 3; i++) {
        if (!cands[i]) continue;
        snprintf(probe, sizeof probe, "%s/models", cands[i]);
        if (!stat(probe, &sb)) { shared = cands[i]; break; }
    }
    if (!shared) { printf("skip: ../shared is absent (goldens live there)\n"); return 0; }
    device = getenv("LOP_TEST_DEVICE");
    const char *gs = getenv("LOP_TEST_GEMM");
    if (gs && lop_gemm_parse(gs, &gemm)) { printf("LOP_TEST_GEMM: f32 or bf16\n"); return 2; }
    printf("device %s, %s products\n", device ? device : "cpu", gemm == LOP_GEMM_BF16 ? "bf16" : "f32");
    const char *models[] = {"llama-tiny", "qwen3-tiny", "gemma3-tiny", "stories260K", "llama-tiny-student"};
    for (int i = 0; i < 5; i++) fails += run_model(shared, models[i], 0);
    fails += run_model(shared, "gemma3-tiny", 1);
    if (fails) printf("%d FAILED\n", fails);
    return fails != 0;
}
