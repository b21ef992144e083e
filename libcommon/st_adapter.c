/* st_adapter.c — a PEFT LoRA adapter folder opened as a model.
 *
 * st_open() on a folder with adapter_config.json + adapter_model.safetensors and no model weights
 * lands here: the base named by the adapter (or the --base override) is opened, and every weight
 * the adapter targets is replaced by W + s * B A computed in float32 (s = lora_alpha / r, or
 * lora_alpha / sqrt(r) with use_rslora; per-module r and alpha from rank_pattern / alpha_pattern),
 * held as an F32 tensor. That is PEFT's own arithmetic: its unmerged forward in float32 computes
 * x W^T + s (x A^T) B^T, equal to x (W + s B A)^T up to float32 rounding, so every tool that
 * reads the result sees the adapted model without knowing an adapter was involved.
 * Why merged at load and not on the fly: one code path for every tool (streaming ones too), and
 * the engine's GEMMs stay as fast as for a plain model; the price is 4 bytes per targeted weight
 * while it is open (the untargeted tensors stay mmap'd in their stored dtype).
 *
 * Tensors of the adapter that are not LoRA factors (PEFT's modules_to_save, saved as
 * base_model.model.NAME) replace the base tensor NAME whole. DoRA, bias training and other PEFT
 * types are refused with a message.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "fsutil.h"
#include "st_internal.h"
#include "dtype.h"
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

static int has_file(const char *dir, const char *name) {
    char *p = join(dir, name);
    int r = p && fs_is_file(p);
    free(p);
    return r;
}

int st_is_adapter(const char *dir) {
    return fs_is_dir(dir) && has_file(dir, "adapter_config.json") &&
           !has_file(dir, "model.safetensors") && !has_file(dir, "model.safetensors.index.json");
}

/* The Hugging Face hub cache folder of a repo id ("org/name"), resolved to the snapshot that
 * refs/main names (what huggingface-cli download leaves), or NULL. */
static char *hf_cache_snapshot(const char *id) {
    const char *slash = strchr(id, '/');
    if (!slash || strchr(slash + 1, '/') || id[0] == '.' || id[0] == '/') return NULL;
    char hub[PATH_MAX];
    const char *env;
    if ((env = getenv("HF_HUB_CACHE")) && *env) snprintf(hub, sizeof hub, "%s", env);
    else if ((env = getenv("HF_HOME")) && *env) snprintf(hub, sizeof hub, "%s/hub", env);
    else if ((env = getenv("HOME")) && *env) snprintf(hub, sizeof hub, "%s/.cache/huggingface/hub", env);
    else return NULL;
    char repo[PATH_MAX * 2 + 32];
    snprintf(repo, sizeof repo, "%s/models--%.*s--%s", hub, (int)(slash - id), id, slash + 1);
    char ref[PATH_MAX * 2 + 64], *rev = NULL;
    size_t len;
    snprintf(ref, sizeof ref, "%s/refs/main", repo);
    lop_err ignore;
    if (!fs_is_file(ref) || fs_read_all(ref, &rev, &len, &ignore)) return NULL;
    while (len && (rev[len - 1] == '\n' || rev[len - 1] == ' ')) rev[--len] = 0;
    char snap[PATH_MAX * 4];
    snprintf(snap, sizeof snap, "%s/snapshots/%s", repo, rev);
    free(rev);
    return fs_is_dir(snap) ? strdup(snap) : NULL;
}

char *st_adapter_hub_id(const char *path) {
    /* .../models--ORG--NAME/snapshots/REV[/...] -> "ORG/NAME" */
    char *abs = fs_abspath(path);
    if (!abs) return NULL;
    char *m = strstr(abs, "/models--"), *s = m ? strstr(m, "/snapshots/") : NULL;
    char *id = NULL;
    if (m && s) {
        const char *a = m + 9, *sep = strstr(a, "--");
        if (sep && sep < s) {
            size_t n1 = (size_t)(sep - a), n2 = (size_t)(s - sep - 2);
            id = malloc(n1 + n2 + 2);
            if (id) snprintf(id, n1 + n2 + 2, "%.*s/%.*s", (int)n1, a, (int)n2, sep + 2);
        }
    }
    free(abs);
    return id;
}

/* Where the adapter's base is: the override, else base_model_name_or_path as an absolute path,
 * a path relative to the adapter folder, a path relative to the working folder, or a hub id in the
 * local Hugging Face cache. */
static int resolve_base(const char *dir, const char *named, char **out, lop_err *e) {
    *out = NULL;
    const char *g_base_override = st_adapter_base();
    if (g_base_override) {
        if (!(*out = strdup(g_base_override))) return lop_fail(e, "out of memory");
        return 0;
    }
    if (!named)
        return lop_fail(e, "%s: adapter_config.json names no base model (base_model_name_or_path); "
                           "pass --base PATH", dir);
    struct stat sb;
    if (named[0] == '/') {
        if (stat(named, &sb) == 0) return (*out = strdup(named)) ? 0 : lop_fail(e, "out of memory");
    } else {
        char *rel = join(dir, named);
        if (rel && stat(rel, &sb) == 0) { *out = rel; return 0; }
        free(rel);
        if (stat(named, &sb) == 0) return (*out = strdup(named)) ? 0 : lop_fail(e, "out of memory");
        if ((*out = hf_cache_snapshot(named))) return 0;
    }
    return lop_fail(e, "%s: the adapter's base '%s' is not a folder here (looked beside the adapter, "
                       "in the working folder and in the Hugging Face cache); pass --base PATH",
                    dir, named);
}

/* PEFT's rank_pattern / alpha_pattern: the first key K with re.match("(^|.*\.)K$", module). */
static int pattern_value(const cJSON *pat, const char *module, double *val, lop_err *e) {
    const cJSON *it;
    cJSON_ArrayForEach(it, pat) {
        if (!cJSON_IsNumber(it) || !it->string) continue;
        size_t n = strlen(it->string) + 16;
        char *re = malloc(n);
        if (!re) return lop_fail(e, "out of memory");
        snprintf(re, n, "(^|.*\\.)(%s)$", it->string);
        int err; PCRE2_SIZE off;
        pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_ANCHORED, &err, &off, NULL);
        free(re);
        if (!c) return lop_fail(e, "adapter_config.json: bad pattern '%s'", it->string);
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(c, NULL);
        pcre2_match_context *mc = pcre2_match_context_create(NULL);
        if (mc) pcre2_set_match_limit(mc, 1000000);
        int r = md ? pcre2_match(c, (PCRE2_SPTR)module, strlen(module), 0, 0, md, mc) : -1;
        pcre2_match_context_free(mc);
        pcre2_match_data_free(md);
        pcre2_code_free(c);
        if (r >= 0) { *val = it->valuedouble; return 1; }
    }
    return 0;
}

/* "base_model.model.X.lora_A[.default].weight" -> module X, kind 'A'/'B', embedding flag;
 * NULL when the name is not a LoRA factor. */
static char *lora_module(const char *name, int *kind, int *embedding) {
    static const char *pre = "base_model.model.";
    if (strncmp(name, pre, strlen(pre))) return NULL;
    const char *s = name + strlen(pre);
    static const struct { const char *suf; int kind, emb; } forms[] = {
        {".lora_A.weight", 'A', 0}, {".lora_B.weight", 'B', 0},
        {".lora_A.default.weight", 'A', 0}, {".lora_B.default.weight", 'B', 0},
        {".lora_embedding_A", 'A', 1}, {".lora_embedding_B", 'B', 1},
        {".lora_embedding_A.default", 'A', 1}, {".lora_embedding_B.default", 'B', 1},
    };
    size_t n = strlen(s);
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        size_t k = strlen(forms[i].suf);
        if (n > k && !strcmp(s + n - k, forms[i].suf)) {
            *kind = forms[i].kind; *embedding = forms[i].emb;
            return strndup(s, n - k);
        }
    }
    return NULL;
}

static float *to_f32(const st_model *m, int i, lop_err *e) {
    uint64_t n = st_numel(&m->info[i]);
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (!f) { lop_fail(e, "out of memory for '%s' in float32", m->info[i].name); return NULL; }
    if (!st_dtype_is_float(m->info[i].dtype)) { free(f); lop_fail(e, "'%s' is not a float tensor", m->info[i].name); return NULL; }
    st_to_f32(f, m->data[i], m->info[i].dtype, n);
    return f;
}

int st_adapter_base_path(const char *dir, char **base, lop_err *e) {
    *base = NULL;
    char *cp = join(dir, "adapter_config.json"), *txt = NULL;
    size_t len;
    int rc = !cp ? lop_fail(e, "out of memory") : fs_read_all(cp, &txt, &len, e);
    cJSON *cfg = rc ? NULL : cJSON_ParseWithLength(txt, len);
    if (!rc && !cJSON_IsObject(cfg)) rc = lop_fail(e, "%s: not a JSON object", cp);
    const cJSON *bn = cJSON_GetObjectItemCaseSensitive(cfg, "base_model_name_or_path");
    if (!rc) rc = resolve_base(dir, cJSON_IsString(bn) ? bn->valuestring : NULL, base, e);
    free(cp); free(txt);
    cJSON_Delete(cfg);
    return rc;
}

static int depth;  /* adapters whose base is an adapter: bounded, so a loop of configs ends */

int st_adapter_open(st_model *m, const char *dir, lop_err *e) {
    if (has_file(dir, "adapter_model.bin") && !has_file(dir, "adapter_model.safetensors"))
        return lop_fail(e, "%s: adapter_model.bin (a pickle) is not read; save the adapter with "
                           "safe_serialization=True (adapter_model.safetensors)", dir);
    char *cp = join(dir, "adapter_config.json"), *wp = join(dir, "adapter_model.safetensors");
    char *txt = NULL; size_t len;
    int rc = !cp || !wp ? lop_fail(e, "out of memory") : fs_read_all(cp, &txt, &len, e);
    cJSON *cfg = rc ? NULL : cJSON_ParseWithLength(txt, len);
    free(txt);
    if (!rc && !cJSON_IsObject(cfg)) rc = lop_fail(e, "%s: not a JSON object", cp);
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(cfg, "peft_type");
    if (!rc && (!cJSON_IsString(pt) || strcmp(pt->valuestring, "LORA")))
        rc = lop_fail(e, "%s: peft_type %s: only LoRA adapters are read", cp,
                      cJSON_IsString(pt) ? pt->valuestring : "(missing)");
    if (!rc && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "use_dora")))
        rc = lop_fail(e, "%s: DoRA adapters (use_dora) are not supported", cp);
    const cJSON *bias = cJSON_GetObjectItemCaseSensitive(cfg, "bias");
    if (!rc && cJSON_IsString(bias) && strcmp(bias->valuestring, "none"))
        rc = lop_fail(e, "%s: bias \"%s\" is not supported (only \"none\")", cp, bias->valuestring);
    if (!rc && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "fan_in_fan_out")))
        rc = lop_fail(e, "%s: fan_in_fan_out (GPT-2 Conv1D layers) is not supported", cp);
    const cJSON *jr = cJSON_GetObjectItemCaseSensitive(cfg, "r");
    const cJSON *ja = cJSON_GetObjectItemCaseSensitive(cfg, "lora_alpha");
    if (!rc && (!cJSON_IsNumber(jr) || jr->valuedouble <= 0 || !cJSON_IsNumber(ja)))
        rc = lop_fail(e, "%s: needs numbers \"r\" > 0 and \"lora_alpha\"", cp);
    int rslora = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "use_rslora"));
    const cJSON *rpat = cJSON_GetObjectItemCaseSensitive(cfg, "rank_pattern");
    const cJSON *apat = cJSON_GetObjectItemCaseSensitive(cfg, "alpha_pattern");
    const cJSON *bn = cJSON_GetObjectItemCaseSensitive(cfg, "base_model_name_or_path");
    if (!rc && !fs_is_file(wp)) rc = lop_fail(e, "%s: no adapter_model.safetensors", dir);

    char *base_path = NULL;
    st_model *base = NULL, *ad = NULL, *bm = NULL;
    if (!rc) rc = resolve_base(dir, cJSON_IsString(bn) ? bn->valuestring : NULL, &base_path, e);
    if (!rc && depth >= 8) rc = lop_fail(e, "%s: adapters nested more than 8 deep (a loop of base paths?)", dir);
    if (!rc) {
        depth++;
        rc = st_open(&base, base_path, e);
        depth--;
        if (rc) lop_wrap(e, "%s: its base", dir);
    }
    if (!rc && st_open(&ad, wp, e)) rc = -1;

    /* the merged model: base's tensors (shared bytes), targeted ones replaced by owned F32 */
    if (!rc) {
        m->n = base->n;
        m->info = calloc((size_t)base->n + 1, sizeof *m->info);
        m->data = calloc((size_t)base->n + 1, sizeof *m->data);
        if (!m->info || !m->data) rc = lop_fail(e, "out of memory");
        for (int i = 0; i < base->n && !rc; i++) {
            m->info[i] = base->info[i];
            if (!(m->info[i].name = strdup(base->info[i].name))) rc = lop_fail(e, "out of memory");
            m->data[i] = base->data[i];
        }
        if (!rc && base->config_json && !(m->config_json = strdup(base->config_json))) rc = lop_fail(e, "out of memory");
        /* tokenizer files: the adapter's own when it has them, else the base's */
        if (!rc) m->source_dir = has_file(dir, "tokenizer.json") ? fs_abspath(dir)
                               : base->source_dir ? strdup(base->source_dir) : NULL;
        if (!rc) rc = st_priv_set_base(m, base, e);
        if (!rc) { bm = base; base = NULL; }  /* m owns it now */
    }
    char *used = calloc(ad ? (size_t)ad->n + 1 : 1, 1);
    if (!rc && !used) rc = lop_fail(e, "out of memory");
    int merged = 0;
    for (int i = 0; ad && i < ad->n && !rc; i++) {
        if (used[i]) continue;
        int kind, emb;
        char *mod = lora_module(ad->info[i].name, &kind, &emb);
        if (!mod) {
            /* modules_to_save: base_model.model.NAME replaces NAME */
            const char *pre = "base_model.model.";
            const char *nm = strncmp(ad->info[i].name, pre, strlen(pre)) ? NULL : ad->info[i].name + strlen(pre);
            int t = nm ? st_find(m, nm) : -1;
            if (t < 0) { rc = lop_fail(e, "%s: adapter tensor '%s' matches no tensor of the base", wp, ad->info[i].name); break; }
            if (ad->info[i].ndim != m->info[t].ndim || memcmp(ad->info[i].shape, m->info[t].shape, sizeof(int64_t) * (size_t)ad->info[i].ndim)) {
                rc = lop_fail(e, "%s: '%s' has another shape than the base's '%s'", wp, ad->info[i].name, nm); break;
            }
            void *copy = aligned_alloc(64, (ad->info[i].nbytes + 63) / 64 * 64 + 64);
            if (!copy || st_priv_own(m, copy, e)) { free(copy); rc = copy ? -1 : lop_fail(e, "out of memory"); break; }
            memcpy(copy, ad->data[i], ad->info[i].nbytes);  /* the adapter file is closed below */
            m->info[t].dtype = ad->info[i].dtype; m->info[t].nbytes = ad->info[i].nbytes;
            m->data[t] = copy;
            st_priv_unmap(m, t);
            used[i] = 1;
            continue;
        }
        /* find the partner factor */
        int ia = -1, ib = -1;
        for (int j = 0; j < ad->n; j++) {
            int k2, e2;
            char *m2 = lora_module(ad->info[j].name, &k2, &e2);
            if (m2 && !strcmp(m2, mod) && e2 == emb) { if (k2 == 'A') ia = j; else ib = j; }
            free(m2);
        }
        char wname[1024];
        snprintf(wname, sizeof wname, "%s.weight", mod);
        int t = st_find(m, wname);
        if (ia < 0 || ib < 0) rc = lop_fail(e, "%s: module '%s' has lora_%s but not lora_%s", wp, mod, ia < 0 ? "B" : "A", ia < 0 ? "A" : "B");
        else if (t < 0) rc = lop_fail(e, "%s: the adapter targets '%s', which the base (%s) does not have", wp, wname, base_path);
        else if (ad->info[ia].ndim != 2 || ad->info[ib].ndim != 2 || m->info[t].ndim != 2)
            rc = lop_fail(e, "%s: '%s': LoRA factors and weight must be matrices", wp, mod);
        if (rc) { free(mod); break; }
        used[ia] = used[ib] = 1;
        int64_t out = m->info[t].shape[0], in = m->info[t].shape[1];
        int64_t r = ad->info[ia].shape[0];
        /* Linear: A [r, in], B [out, r], delta = B A.  Embedding: A [r, V], B [C, r], delta = (B A)^T */
        int ok = emb ? (ad->info[ia].shape[1] == out && ad->info[ib].shape[0] == in && ad->info[ib].shape[1] == r)
                     : (ad->info[ia].shape[1] == in && ad->info[ib].shape[0] == out && ad->info[ib].shape[1] == r);
        if (!ok) { rc = lop_fail(e, "%s: '%s': factor shapes [%lld,%lld] and [%lld,%lld] do not fit the weight [%lld,%lld]",
                                 wp, mod, (long long)ad->info[ia].shape[0], (long long)ad->info[ia].shape[1],
                                 (long long)ad->info[ib].shape[0], (long long)ad->info[ib].shape[1],
                                 (long long)out, (long long)in); free(mod); break; }
        double rr = jr->valuedouble, alpha = ja->valuedouble, v;
        if (rpat && pattern_value(rpat, mod, &v, e) > 0) rr = v;
        if (apat && pattern_value(apat, mod, &v, e) > 0) alpha = v;
        if ((int64_t)rr != r) { rc = lop_fail(e, "%s: '%s' has rank %lld but the config says %g", wp, mod, (long long)r, rr); free(mod); break; }
        float s = (float)(rslora ? alpha / sqrt(rr) : alpha / rr);
        float *W = to_f32(m, t, e), *A = W ? to_f32(ad, ia, e) : NULL, *B = A ? to_f32(ad, ib, e) : NULL;
        if (!B) { free(W); free(A); rc = -1; free(mod); break; }
        if (emb) /* W[V, C] += s * (B[C, r] A[r, V])^T = s * A^T B^T */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)out, (int)in, (int)r, s, A, (int)out, B, (int)r, 1.0f, W, (int)in);
        else     /* W[out, in] += s * B[out, r] A[r, in] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, (int)r, s, B, (int)r, A, (int)in, 1.0f, W, (int)in);
        free(A); free(B);
        if (st_priv_own(m, W, e)) { free(W); rc = -1; free(mod); break; }
        m->info[t].dtype = ST_F32;
        m->info[t].nbytes = (uint64_t)out * (uint64_t)in * 4;
        m->data[t] = W;
        st_release(bm, t);  /* the base's pages of W were read once: give them back */
        st_priv_unmap(m, t);
        merged++;
        free(mod);
    }
    if (!rc && ad && !merged && ad->n)
        rc = lop_fail(e, "%s: no LoRA factors found (names like base_model.model.X.lora_A.weight)", wp);
    if (!rc) {
        /* provenance for the tools: where the adapter and its base are */
        if (!m->metadata) m->metadata = cJSON_CreateObject();
        char *absd = fs_abspath(dir), *absb = fs_abspath(base_path);
        if (m->metadata) {
            cJSON_AddStringToObject(m->metadata, "adapter", absd ? absd : dir);
            cJSON_AddStringToObject(m->metadata, "adapter_base", absb ? absb : base_path);
        }
        free(absd); free(absb);
    }
    free(used);
    st_close(ad);
    st_close(base);
    free(base_path); free(cp); free(wp);
    cJSON_Delete(cfg);
    return rc;
}

/* The one entry that opens a model for reading: an adapter folder as its merged model, anything
 * else mapped (st_read.c). Here rather than in st_read.c because an adapter's base is opened with
 * st_open again (it may itself be an adapter): the recursion stays inside this file, and st_read.c
 * knows nothing of adapters. */
int st_open(st_model **out, const char *path, lop_err *e) {
    *out = NULL;
    st_model *m;
    if (st_model_new(&m, e)) return -1;
    int rc = strcmp(path, "-") && st_is_adapter(path) ? st_adapter_open(m, path, e) : st_open_mapped(m, path, e);
    if (rc) { st_close(m); return -1; }
    *out = m;
    return 0;
}
