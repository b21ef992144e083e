/* test_model.c — the forward engine against every ../shared golden (transformers, float32):
 * per-token NLL, hidden states (embedding, each layer's output, final norm), top-5 logits, the
 * first logits of position 0; batching (all texts in one packed batch) gives the same numbers;
 * the kv cache (token-by-token decoding) matches the full forward; skipping layers matches
 * transformers' model with those layers removed (drop goldens); stories260K's greedy continuation
 * of BOS. Skips (exit 0) when ../shared is absent. */
#include <cjson/cJSON.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "model.h"
#include "check.h"

static double worst_nll, worst_hidden, worst_logit;

static char shared[PATH_MAX];

static cJSON *load_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc(n + 1);
    if (fread(s, 1, n, f) != (size_t)n) n = 0;
    s[n] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(s);
    free(s);
    return j;
}

static int32_t *json_ids(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    int32_t *ids = malloc(sizeof(int32_t) * (*n ? *n : 1));
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)cJSON_GetArrayItem(a, i)->valuedouble;
    return ids;
}

/* LOP_TEST_DEVICE=cuda (make test-cuda): the same goldens through the GPU backend; NLL must then
 * be within 1e-4 of transformers' */
static const char *device;

/* hidden states captured by the resid hook: h[k] = [N, C] copies; h[L] by the final hook */
typedef struct { float **h; int L, N, C; } cap;
static int cap_final(void *u, const float *h, const float *hn, const lop_batch *b) {
    (void)h;
    cap *c = u;
    memcpy(c->h[c->L], hn, sizeof(float) * (size_t)b->N * c->C);
    return 0;
}
static int cap_resid(void *u, int layer, lop_resid_where w, float *x, const lop_batch *b) {
    cap *c = u;
    if (w == LOP_RESID_IN) memcpy(c->h[layer], x, sizeof(float) * (size_t)b->N * c->C);
    return 0;
}

/* one text alone: nll, hidden_first8, top5, logits_pos0_first16 */
static void check_text(lop_model *m, const char *mname, const char *tname, const cJSON *t) {
    int n;
    int32_t *ids = json_ids(cJSON_GetObjectItem(t, "ids"), &n);
    int L = m->cfg.n_layers, C = m->cfg.hidden, V = m->cfg.vocab;
    cap cp = {calloc(L + 1, sizeof(float *)), L, n, C};
    for (int l = 0; l <= L; l++) cp.h[l] = malloc(sizeof(float) * n * C);
    lop_hooks hk = {.user = &cp, .resid = cap_resid, .final = cap_final};
    lop_fwd_opts o = {.hooks = &hk};
    int32_t *tg = malloc(sizeof(int32_t) * n), *topid = malloc(sizeof(int32_t) * n * 5);
    float *lp = malloc(sizeof(float) * n), *topv = malloc(sizeof(float) * n * 5), *lse = malloc(sizeof(float) * n);
    float *logits0 = malloc(sizeof(float) * V);
    uint8_t *want = calloc(n, 1);
    want[0] = 1;
    for (int i = 0; i < n; i++) tg[i] = i + 1 < n ? ids[i + 1] : -1;
    lop_head_req h = {.target = tg, .target_logprob = lp, .lse = lse, .topk = 5, .topk_id = topid,
                      .topk_logit = topv, .want_logits = want, .logits = logits0};
    lop_batch b = {.B = 1, .len = &n, .ids = ids};
    lop_err e = {0};
    if (lop_forward(m, &b, &o, &h, &e)) { CHECK(0, "%s/%s: forward: %s", mname, tname, e.msg); goto out; }
    const cJSON *nll = cJSON_GetObjectItem(t, "nll");
    double w = 0;
    for (int i = 0; i + 1 < n; i++) {
        double d = fabs(-lp[i] - cJSON_GetArrayItem(nll, i)->valuedouble);
        if (d > w) w = d;
    }
    if (w > worst_nll) worst_nll = w;
    CHECK(w < 1e-3, "%s/%s: nll max err %g", mname, tname, w);
    const cJSON *hf = cJSON_GetObjectItem(t, "hidden_first8");
    if (hf) {
        CHECK(cJSON_GetArraySize(hf) == L + 1, "%s: %d hidden states, golden has %d", mname, L + 1, cJSON_GetArraySize(hf));
        double wh = 0;
        for (int k = 0; k <= L && k < cJSON_GetArraySize(hf); k++) {
            const float *H = cp.h[k];
            const cJSON *hk2 = cJSON_GetArrayItem(hf, k);
            for (int i = 0; i < n; i++) {
                const cJSON *row = cJSON_GetArrayItem(hk2, i);
                double scale = 0;
                for (int j = 0; j < 8; j++) scale = fmax(scale, fabs(cJSON_GetArrayItem(row, j)->valuedouble));
                for (int j = 0; j < 8 && j < C; j++) {
                    double g = cJSON_GetArrayItem(row, j)->valuedouble;
                    double d = fabs(H[(size_t)i * C + j] - g) / (fabs(g) + 1e-2 * scale + 1e-6);
                    if (d > wh) wh = d;
                }
            }
            if (k < L && !device) { /* the arena keeps every layer's input too (host memory) */
                double dd = 0;
                for (size_t i = 0; i < (size_t)n * C; i++) dd = fmax(dd, fabs(cp.h[k][i] - m->acts.layer[k].x_in[i]));
                CHECK(dd == 0, "%s/%s: acts.layer[%d].x_in differs from the hook's copy", mname, tname, k);
            }
        }
        if (wh > worst_hidden) worst_hidden = wh;
        CHECK(wh < 1e-3, "%s/%s: hidden max rel err %g", mname, tname, wh);
        const cJSON *ti = cJSON_GetObjectItem(t, "top5_ids_last"), *tv = cJSON_GetObjectItem(t, "top5_logits_last");
        double wl = 0;
        for (int k = 0; k < 5; k++) {
            CHECK(topid[(n - 1) * 5 + k] == cJSON_GetArrayItem(ti, k)->valueint, "%s/%s: top5 id %d: %d vs %d",
                  mname, tname, k, topid[(n - 1) * 5 + k], cJSON_GetArrayItem(ti, k)->valueint);
            wl = fmax(wl, fabs(topv[(n - 1) * 5 + k] - cJSON_GetArrayItem(tv, k)->valuedouble));
        }
        const cJSON *l0 = cJSON_GetObjectItem(t, "logits_pos0_first16");
        for (int k = 0; k < 16; k++) wl = fmax(wl, fabs(logits0[k] - cJSON_GetArrayItem(l0, k)->valuedouble));
        if (wl > worst_logit) worst_logit = wl;
        CHECK(wl < 1e-3, "%s/%s: logits max err %g", mname, tname, wl);
        /* lse from the head equals logsumexp of the full logits of position 0 */
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, logits0[v]);
        for (int v = 0; v < V; v++) s += exp(logits0[v] - mx);
        CHECK(fabs(mx + log(s) - lse[0]) < 1e-4 * fabs(lse[0]) + 1e-4, "%s/%s: lse %g vs %g", mname, tname, lse[0], mx + log(s));
    }
out:
    for (int l = 0; l <= L; l++) free(cp.h[l]);
    free(cp.h); free(ids); free(tg); free(lp); free(topid); free(topv); free(lse); free(logits0); free(want);
}

/* every text in one packed batch: the same NLLs as the goldens */
static void check_batch(lop_model *m, const char *mname, const cJSON *texts) {
    int B = cJSON_GetArraySize(texts), N = 0;
    int *len = malloc(sizeof(int) * B);
    int32_t **each = malloc(sizeof(int32_t *) * B);
    for (int i = 0; i < B; i++) { each[i] = json_ids(cJSON_GetObjectItem(cJSON_GetArrayItem(texts, i), "ids"), &len[i]); N += len[i]; }
    int32_t *ids = malloc(sizeof(int32_t) * N), *tg = malloc(sizeof(int32_t) * N);
    float *lp = malloc(sizeof(float) * N);
    for (int i = 0, r = 0; i < B; i++)
        for (int t = 0; t < len[i]; t++, r++) { ids[r] = each[i][t]; tg[r] = t + 1 < len[i] ? each[i][t + 1] : -1; }
    lop_batch b = {.B = B, .len = len, .ids = ids};
    lop_head_req h = {.target = tg, .target_logprob = lp};
    lop_err e;
    if (lop_forward(m, &b, NULL, &h, &e)) { CHECK(0, "%s batch: %s", mname, e.msg); }
    else {
        double w = 0;
        for (int i = 0; i < B; i++) {
            const cJSON *nll = cJSON_GetObjectItem(cJSON_GetArrayItem(texts, i), "nll");
            for (int t = 0; t + 1 < len[i]; t++)
                w = fmax(w, fabs(-lp[b.off[i] + t] - cJSON_GetArrayItem(nll, t)->valuedouble));
        }
        if (w > worst_nll) worst_nll = w;
        CHECK(w < 1e-3, "%s: batched nll max err %g", mname, w);
    }
    for (int i = 0; i < B; i++) free(each[i]);
    free(each); free(len); free(ids); free(tg); free(lp);
}

/* kv cache: first half as a prefill, then one token at a time, 2 sequences at once */
static void check_kv(lop_model *m, const char *mname, const cJSON *texts) {
    const cJSON *t0 = cJSON_GetArrayItem(texts, 0), *t1 = cJSON_GetArrayItem(texts, 1);
    int n0, n1;
    int32_t *a = json_ids(cJSON_GetObjectItem(t0, "ids"), &n0), *c = json_ids(cJSON_GetObjectItem(t1, "ids"), &n1);
    int n = n0 < n1 ? n0 : n1, pre = n / 2;
    lop_kv *kv;
    lop_err e;
    if (lop_kv_new(&kv, m, 2, n, &e)) { CHECK(0, "kv: %s", e.msg); return; }
    double w = 0;
    int len[2] = {pre, pre};
    int32_t ids[2 * 64], tg[2 * 64];
    float lp[2 * 64];
    if (pre > 64) pre = 64;
    for (int step = 0; pre + step <= n - 1 && !fails; step++) {
        int T = step ? 1 : pre, p0 = step ? pre + step - 1 : 0;
        len[0] = len[1] = T;
        for (int i = 0; i < T; i++) {
            ids[i] = a[p0 + i]; tg[i] = a[p0 + i + 1];
            ids[T + i] = c[p0 + i]; tg[T + i] = c[p0 + i + 1];
        }
        lop_batch b = {.B = 2, .len = len, .ids = ids};
        lop_fwd_opts o = {.kv = kv};
        lop_head_req h = {.target = tg, .target_logprob = lp};
        if (lop_forward(m, &b, &o, &h, &e)) { CHECK(0, "kv step %d: %s", step, e.msg); break; }
        for (int i = 0; i < T; i++) {
            w = fmax(w, fabs(-lp[i] - cJSON_GetArrayItem(cJSON_GetObjectItem(t0, "nll"), p0 + i)->valuedouble));
            w = fmax(w, fabs(-lp[T + i] - cJSON_GetArrayItem(cJSON_GetObjectItem(t1, "nll"), p0 + i)->valuedouble));
        }
    }
    CHECK(kv->len[0] == n - 1, "kv len %d, expected %d", kv->len[0], n - 1);
    if (w > worst_nll) worst_nll = w;
    CHECK(w < 1e-3, "%s: kv-cache decode nll max err %g", mname, w);
    lop_kv_free(kv);
    free(a); free(c);
}

/* skip mask == transformers with the layers removed (drop goldens: mean NLL of text en) */
static void check_drop(lop_model *m, const char *mname, const cJSON *g) {
    const cJSON *drop = cJSON_GetObjectItem(g, "drop"), *d;
    const cJSON *en = cJSON_GetObjectItem(cJSON_GetObjectItem(g, "texts"), "en");
    cJSON_ArrayForEach(d, drop) {
        const cJSON *want = cJSON_GetObjectItem(d, "mean_nll_en");
        if (!want) continue;
        uint8_t *skip = calloc(m->cfg.n_layers, 1);
        char buf[64];
        snprintf(buf, sizeof buf, "%s", d->string);
        for (char *s = strtok(buf, ","); s; s = strtok(NULL, ",")) skip[atoi(s)] = 1;
        int n;
        int32_t *ids = json_ids(cJSON_GetObjectItem(en, "ids"), &n), *tg = malloc(sizeof(int32_t) * n);
        float *lp = malloc(sizeof(float) * n);
        for (int i = 0; i < n; i++) tg[i] = i + 1 < n ? ids[i + 1] : -1;
        lop_batch b = {.B = 1, .len = &n, .ids = ids};
        lop_fwd_opts o = {.skip = skip};
        lop_head_req h = {.target = tg, .target_logprob = lp};
        lop_err e;
        if (lop_forward(m, &b, &o, &h, &e)) CHECK(0, "drop: %s", e.msg);
        double s = 0;
        for (int i = 0; i + 1 < n; i++) s -= lp[i];
        s /= n - 1;
        CHECK(fabs(s - want->valuedouble) < 1e-4, "%s: skipping %s: mean nll %.6f, golden %.6f", mname, d->string, s, want->valuedouble);
        free(skip); free(ids); free(tg); free(lp);
    }
}

static void check_greedy(lop_model *m, const cJSON *g) {
    const cJSON *want = cJSON_GetObjectItem(g, "greedy_from_bos");
    if (!want) return;
    int n = cJSON_GetArraySize(want), one = 1;
    lop_kv *kv;
    lop_err e;
    if (lop_kv_new(&kv, m, 1, n + 1, &e)) { CHECK(0, "%s", e.msg); return; }
    int32_t tok = m->cfg.bos_id >= 0 ? m->cfg.bos_id : 1, am;
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        lop_batch b = {.B = 1, .len = &one, .ids = &tok};
        lop_fwd_opts o = {.kv = kv};
        lop_head_req h = {.argmax = &am};
        if (lop_forward(m, &b, &o, &h, &e)) { CHECK(0, "greedy: %s", e.msg); break; }
        if (am != cJSON_GetArrayItem(want, i)->valueint) {
            CHECK(0, "greedy token %d: %d, golden %d", i, am, cJSON_GetArrayItem(want, i)->valueint);
            ok = 0;
        }
        tok = am;
    }
    lop_kv_free(kv);
}

int main(int argc, char **argv) {
    (void)argc;
    const char *env = getenv("LOP_SHARED");
    device = getenv("LOP_TEST_DEVICE");
    if (device && (!*device || !strcmp(device, "cpu"))) device = NULL;
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (env) snprintf(shared, sizeof shared, "%s", env);
    else if (k > 0) { exe[k] = 0; snprintf(shared, sizeof shared, "%s/../../shared", dirname(exe)); }
    else snprintf(shared, sizeof shared, "%s", argv[0]);
    const char *models[] = {"gemma3-tiny", "qwen3-tiny", "llama-tiny", "llama-tiny-student", "stories260K"};
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/models", shared);
    if (access(path, R_OK)) { printf("test_model: ../shared is absent, skipped\n"); return 0; }
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/models/%s", shared, models[i]);
        lop_model *m;
        lop_err e;
        if (lop_model_open(&m, path, &e)) { CHECK(0, "open %s: %s", models[i], e.msg); continue; }
        if (device && lop_model_set_device(m, device, &e)) {
            printf("test_model: skipped on %s: %s\n", device, e.msg);
            lop_model_free(m);
            return 0;
        }
        snprintf(path, sizeof path, "%s/models/%s/golden.json", shared, models[i]);
        cJSON *g = load_json(path);
        const cJSON *texts = cJSON_GetObjectItem(g, "texts"), *t;
        cJSON_ArrayForEach(t, texts) check_text(m, models[i], t->string, t);
        check_batch(m, models[i], texts);
        check_kv(m, models[i], texts);
        check_drop(m, models[i], g);
        check_greedy(m, g);
        cJSON_Delete(g);
        lop_model_free(m);
    }
    printf("test_model%s%s: worst nll err %.3g, hidden rel err %.3g, logit err %.3g\n", device ? " on " : "",
           device ? device : "", worst_nll, worst_hidden, worst_logit);
    if (device) CHECK(worst_nll < 1e-4, "on %s: worst per-token NLL error %.3g >= 1e-4", device, worst_nll);
    if (fails) { printf("%d check(s) failed\n", fails); return 1; }
    return 0;
}
