/* config.c — config.json -> lop_config, as transformers reads it (Llama, Qwen2, Qwen3, Gemma 3
 * text and the text part of Gemma 3), and back to JSON keeping every untouched key in order.
 *
 * Missing keys take the transformers default of the family (a Gemma 3 text_config often holds
 * only a few keys); only the sizes that have no sensible default are required. */
#include "config.h"
#include "sbuf.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading values ---- */

static const cJSON *get(const cJSON *o, const char *k) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* An integer key: required (def < 0 and absent -> error) or defaulted. */
static int get_int(const cJSON *o, const char *k, long def, int required, long lo, long hi, long *out, lop_err *e) {
    const cJSON *v = get(o, k);
    if (!v) {
        if (required) return lop_fail(e, "config.json: missing key \"%s\"", k);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return lop_fail(e, "config.json: \"%s\" must be an integer in [%ld, %ld]", k, lo, hi);
    *out = (long)v->valuedouble;
    return 0;
}

static int get_num(const cJSON *o, const char *k, double def, double *out, lop_err *e) {
    const cJSON *v = get(o, k);
    if (!v) { *out = def; return 0; }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return lop_fail(e, "config.json: \"%s\" must be a number", k);
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *o, const char *k, int def) {
    const cJSON *v = get(o, k);
    return v ? cJSON_IsTrue(v) || (cJSON_IsNumber(v) && v->valuedouble != 0) : def;
}

/* A token id: an integer, or a list of them (the first counts), or absent/null: -1. */
static int get_token(const cJSON *a, const cJSON *b, const char *k) {
    const cJSON *v = get(a, k);
    if (!v) v = get(b, k);
    if (cJSON_IsArray(v)) v = v->child;
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 2147483647.0 ? (int)v->valuedouble : -1;
}

/* ---- rope ---- */

static int rope_from(const cJSON *r, double def_theta, lop_rope *out, lop_err *e) {
    memset(out, 0, sizeof *out);
    out->theta = def_theta;
    out->factor = 1;
    if (!r) return 0;
    if (!cJSON_IsObject(r)) return lop_fail(e, "config.json: rope parameters must be an object");
    if (get_num(r, "rope_theta", def_theta, &out->theta, e)) return -1;
    const cJSON *t = get(r, "rope_type");
    if (!t) t = get(r, "type");
    const char *ty = cJSON_IsString(t) ? t->valuestring : "default";
    if (!strcmp(ty, "default")) out->type = ROPE_DEFAULT;
    else if (!strcmp(ty, "linear")) out->type = ROPE_LINEAR;
    else if (!strcmp(ty, "llama3")) out->type = ROPE_LLAMA3;
    else return lop_fail(e, "config.json: rope type '%s' is not supported (default, linear, llama3)", ty);
    if (get_num(r, "factor", 1, &out->factor, e)) return -1;
    if (out->type == ROPE_LLAMA3) {
        long omp = 0;
        if (get_num(r, "low_freq_factor", 1, &out->low_freq_factor, e) ||
            get_num(r, "high_freq_factor", 4, &out->high_freq_factor, e) ||
            get_int(r, "original_max_position_embeddings", 8192, 0, 1, 1L << 30, &omp, e)) return -1;
        out->original_max_pos = (int)omp;
    }
    if (!(out->theta > 0) || !(out->factor > 0)) return lop_fail(e, "config.json: rope theta and factor must be positive");
    return 0;
}

/* Both the older keys (rope_theta, rope_scaling, rope_local_base_freq) and transformers 5's
 * rope_parameters, flat or keyed by attention type. */
static int parse_rope(lop_config *c, const cJSON *tj, double def_theta, lop_err *e) {
    const cJSON *rp = get(tj, "rope_parameters");
    double theta = 0, local_theta = 0;
    if (get_num(tj, "rope_theta", def_theta, &theta, e)) return -1;
    if (get_num(tj, "rope_local_base_freq", 10000.0, &local_theta, e)) return -1;
    if (rp) {
        const cJSON *full = get(rp, "full_attention"), *slide = get(rp, "sliding_attention");
        if (full || slide) {
            if (rope_from(full, theta, &c->rope_full, e)) return -1;
            if (rope_from(slide ? slide : full, slide ? local_theta : theta, &c->rope_local, e)) return -1;
            if (!slide && !c->family->local_rope) c->rope_local = c->rope_full;
            return 0;
        }
        if (rope_from(rp, theta, &c->rope_full, e)) return -1;
    } else {
        const cJSON *rs = get(tj, "rope_scaling");
        if (rope_from(rs, theta, &c->rope_full, e)) return -1;
        c->rope_full.theta = theta;
    }
    if (c->family->local_rope) rope_from(NULL, local_theta, &c->rope_local, e); /* Gemma 3: local layers unscaled */
    else c->rope_local = c->rope_full;
    return 0;
}

/* ---- layer types ---- */

static int parse_layer_types(lop_config *c, const cJSON *tj, lop_err *e) {
    int L = c->n_layers;
    c->layer_sliding = calloc((size_t)(L ? L : 1), 1);
    if (!c->layer_sliding) return lop_fail(e, "out of memory");
    const cJSON *lt = get(tj, "layer_types");
    if (lt) {
        if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != L)
            return lop_fail(e, "config.json: \"layer_types\" must be a list of %d entries (num_hidden_layers)", L);
        int i = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, lt) {
            const char *s = cJSON_IsString(v) ? v->valuestring : "";
            if (!strcmp(s, "sliding_attention")) c->layer_sliding[i] = 1;
            else if (strcmp(s, "full_attention"))
                return lop_fail(e, "config.json: layer_types[%d] is '%s' (sliding_attention or full_attention)", i, s);
            i++;
        }
        return 0;
    }
    if (c->family->sliding == ARCH_SLIDING_PATTERN) { /* HF: sliding unless (i+1) is a multiple of the pattern */
        long pat = 6;
        const char *k = get(tj, "sliding_window_pattern") ? "sliding_window_pattern" : "_sliding_window_pattern";
        if (get_int(tj, k, 6, 0, 1, 1 << 20, &pat, e)) return -1;
        for (int i = 0; i < L; i++) c->layer_sliding[i] = ((i + 1) % pat) != 0;
    } else if (c->family->sliding == ARCH_SLIDING_MAX_WINDOW) {
        long mwl = 0;                      /* HF: sliding from layer max_window_layers on */
        if (get_int(tj, "max_window_layers", 28, 0, 0, 1 << 30, &mwl, e)) return -1;
        for (int i = 0; i < L; i++) c->layer_sliding[i] = c->sliding_window > 0 && i >= mwl;
    }
    return 0;
}

/* ---- JSON number literals, so that 1000000.0 is written back as 1000000.0 ---- */

static void number_nodes(cJSON *n, cJSON ***v, int *cnt, int *cap) {
    for (; n; n = n->next) {
        if (cJSON_IsNumber(n)) {
            if (*cnt == *cap) {
                cJSON **nv = realloc(*v, (size_t)(*cap = *cap ? *cap * 2 : 64) * sizeof *nv);
                if (!nv) { *cnt = -(1 << 30); return; }
                *v = nv;
            }
            if (*cnt >= 0) (*v)[(*cnt)++] = n;
        }
        if (n->child) number_nodes(n->child, v, cnt, cap);
    }
}

/* cJSON keeps numbers as doubles; remember each literal in its (otherwise unused) valuestring.
 * cJSON builds nodes in document order, so the k-th literal is the k-th number node. */
static void keep_literals(cJSON *root, const char *s, size_t len) {
    cJSON **v = NULL;
    int cnt = 0, cap = 0, k = 0;
    number_nodes(root, &v, &cnt, &cap);
    for (size_t i = 0; i < len && cnt > 0;) {
        char ch = s[i];
        if (ch == '"') {
            for (i++; i < len && s[i] != '"'; i++) if (s[i] == '\\') i++;
            i++;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            size_t j = i;
            while (j < len && strchr("+-0123456789.eE", s[j])) j++;
            if (k < cnt && !v[k]->valuestring) v[k]->valuestring = strndup(s + i, j - i);
            k++;
            i = j;
        } else i++;
    }
    if (k != cnt) /* should not happen; fall back to printing the doubles */
        for (int i = 0; i < cnt; i++) { free(v[i]->valuestring); v[i]->valuestring = NULL; }
    free(v);
}

/* ---- parse ---- */

int config_parse(lop_config *c, const char *json_text, lop_err *e) {
    memset(c, 0, sizeof *c);
    if (!json_text) return lop_fail(e, "config.json: no config");
    size_t len = strlen(json_text);
    c->json = cJSON_ParseWithLength(json_text, len);
    if (!c->json || !cJSON_IsObject(c->json)) { config_free(c); return lop_fail(e, "config.json: not a JSON object"); }
    keep_literals(c->json, json_text, len);
    const cJSON *mt = get(c->json, "model_type");
    if (!cJSON_IsString(mt)) { config_free(c); return lop_fail(e, "config.json: missing key \"model_type\""); }
    snprintf(c->model_type, sizeof c->model_type, "%s", mt->valuestring);
    cJSON *tj = c->json;
    const char *type = c->model_type;
    const lop_family *wrapped = arch_family_wrapping(type);
    if (wrapped) {
        tj = cJSON_GetObjectItemCaseSensitive(c->json, "text_config");
        if (!cJSON_IsObject(tj)) {
            config_free(c);
            return lop_fail(e, "config.json: model_type %s without a \"text_config\" object", wrapped->wrapper_type);
        }
        type = wrapped->model_type;
    }
    c->text_json = tj;
    const lop_family *f = arch_family_find(type);
    if (!f) {
        lop_fail(e, "config.json: model_type '%s' is not supported (%s)", c->model_type, arch_family_list());
        config_free(c);
        return -1;
    }
    c->arch = f->arch;
    c->family = f;
    c->gemma = f->norm_one_plus_w;
    int opt = f->sizes_optional;
    long vocab = 0, hidden = 0, inter = 0, L = 0, nh = 1, nkv = 1, hd = 0, maxp = 0, sw = 0;
    const int big = 1 << 30;
    if (get_int(tj, "vocab_size", f->vocab, !opt, 1, big, &vocab, e) ||
        get_int(tj, "hidden_size", 0, 1, 1, 1 << 20, &hidden, e) ||
        get_int(tj, "intermediate_size", f->inter, !opt, 1, big, &inter, e) ||
        get_int(tj, "num_hidden_layers", f->layers, 1, 0, 1 << 16, &L, e) ||
        get_int(tj, "num_attention_heads", f->heads, !opt, 1, 1 << 16, &nh, e) ||
        get_int(tj, "num_key_value_heads", f->kv_heads ? f->kv_heads : nh, 0, 1, 1 << 16, &nkv, e) ||
        get_int(tj, "head_dim", f->head_dim ? f->head_dim : hidden / nh, 0, 1, 1 << 16, &hd, e) ||
        get_int(tj, "max_position_embeddings", f->max_pos, 0, 1, big, &maxp, e) ||
        get_num(tj, "rms_norm_eps", 1e-6, &c->eps, e)) { config_free(c); return -1; }
    if (nh % nkv) { config_free(c); return lop_fail(e, "config.json: num_attention_heads %ld is not a multiple of num_key_value_heads %ld", nh, nkv); }
    if (!f->head_dim && !f->qk_norm && !get(tj, "head_dim") && hidden % nh) {
        config_free(c);
        return lop_fail(e, "config.json: hidden_size %ld is not a multiple of num_attention_heads %ld", hidden, nh);
    }
    c->vocab = (int)vocab; c->hidden = (int)hidden; c->inter = (int)inter; c->n_layers = (int)L;
    c->n_heads = (int)nh; c->n_kv_heads = (int)nkv; c->head_dim = (int)hd; c->max_pos = (int)maxp;
    /* tie_word_embeddings may sit at the top of a multimodal config */
    c->tied = get_bool(tj, "tie_word_embeddings", get_bool(c->json, "tie_word_embeddings", f->tied));
    int ab = f->attention_bias_key && get_bool(tj, "attention_bias", 0);
    c->attn_bias = f->qkv_bias || ab;
    c->o_bias = ab;
    c->mlp_bias = f->mlp_bias_key && get_bool(tj, "mlp_bias", 0);
    c->qk_norm = f->qk_norm;
    const cJSON *act = get(tj, f->act_key);
    if (!act) act = get(tj, "hidden_act");
    const char *an = cJSON_IsString(act) ? act->valuestring : f->act_default;
    if (!strcmp(an, "silu") || !strcmp(an, "swish")) c->act = ACT_SILU;
    else if (!strcmp(an, "gelu_pytorch_tanh") || !strcmp(an, "gelu_new") || !strcmp(an, "gelu_fast")) c->act = ACT_GELU_TANH;
    else { lop_fail(e, "config.json: activation '%s' is not supported (silu, gelu_pytorch_tanh)", an); config_free(c); return -1; }
    double qpas = hd;
    if (f->query_pre_attn_scalar && get_num(tj, "query_pre_attn_scalar", 256, &qpas, e)) { config_free(c); return -1; }
    if (!(qpas > 0)) { config_free(c); return lop_fail(e, "config.json: query_pre_attn_scalar must be positive"); }
    c->attn_scale = 1.0 / sqrt(qpas);
    if (f->softcaps && (get_num(tj, "attn_logit_softcapping", 0, &c->attn_softcap, e) ||
              get_num(tj, "final_logit_softcapping", 0, &c->final_softcap, e))) { config_free(c); return -1; }
    if (f->sliding == ARCH_SLIDING_PATTERN) {
        if (get_int(tj, "sliding_window", 4096, 0, 0, big, &sw, e)) { config_free(c); return -1; }
    } else if (f->sliding == ARCH_SLIDING_MAX_WINDOW && get_bool(tj, "use_sliding_window", 0)) {
        if (get_int(tj, "sliding_window", 4096, 0, 0, big, &sw, e)) { config_free(c); return -1; }
    }
    c->sliding_window = (int)sw;
    if (parse_layer_types(c, tj, e) || parse_rope(c, tj, f->rope_theta, e)) { config_free(c); return -1; }
    c->bos_id = get_token(tj, c->json, "bos_token_id");
    c->eos_id = get_token(tj, c->json, "eos_token_id");
    c->pad_id = get_token(tj, c->json, "pad_token_id");
    const char *outer = wrapped ? wrapped->wrapper_prefix : "";
    snprintf(c->prefix, sizeof c->prefix, "%s%s", outer, f->prefix);
    snprintf(c->head_name, sizeof c->head_name, "%s%s", outer, f->head);
    return 0;
}

void config_free(lop_config *c) {
    if (!c) return;
    cJSON_Delete(c->json);
    free(c->layer_sliding);
    memset(c, 0, sizeof *c);
}

void config_tensor_name(const lop_config *c, int layer, const char *suffix, char *buf, int len) {
    if (layer < 0) snprintf(buf, (size_t)len, "%s%s", c->prefix, suffix);
    else snprintf(buf, (size_t)len, "%slayers.%d.%s", c->prefix, layer, suffix);
}

/* ---- tensor names and shapes (arch.h's table + this config's sizes and bias keys) ---- */

int config_has_vec(const lop_config *c, lop_lvec v) {
    if ((unsigned)v >= LVEC_N || !c->family) return 0;
    const arch_vec *x = &c->family->vec[v];
    if (!x->suffix) return 0;
    switch (x->when) {
    case ARCH_ALWAYS: return 1;
    case ARCH_IF_ATTN_BIAS: return c->attn_bias;
    case ARCH_IF_O_BIAS: return c->o_bias;
    case ARCH_IF_MLP_BIAS: return c->mlp_bias;
    default: return 0;
    }
}

const char *config_proj_name(const lop_config *c, int layer, lop_proj p, char *buf, int len) {
    char suf[128];
    config_tensor_name(c, layer, arch_proj_suffix(c->family, p, suf, sizeof suf), buf, len);
    return buf;
}

const char *config_vec_name(const lop_config *c, int layer, lop_lvec v, char *buf, int len) {
    if (!config_has_vec(c, v)) { if (len > 0) buf[0] = 0; return buf; }
    config_tensor_name(c, layer, c->family->vec[v].suffix, buf, len);
    return buf;
}

const char *config_embed_name(const lop_config *c, char *buf, int len) {
    config_tensor_name(c, -1, c->family->embed, buf, len);
    return buf;
}

const char *config_final_norm_name(const lop_config *c, char *buf, int len) {
    config_tensor_name(c, -1, c->family->final_norm, buf, len);
    return buf;
}

void config_proj_shape(const lop_config *c, lop_proj p, int64_t *rows, int64_t *cols) {
    int64_t C = c->hidden, FF = c->inter, qd = (int64_t)c->n_heads * c->head_dim,
            kd = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t shape[PROJ_N][2] = {{qd, C}, {kd, C}, {kd, C}, {C, qd}, {FF, C}, {FF, C}, {C, FF}};
    *rows = (unsigned)p < PROJ_N ? shape[p][0] : 0;
    *cols = (unsigned)p < PROJ_N ? shape[p][1] : 0;
}

int64_t config_vec_len(const lop_config *c, lop_lvec v) {
    int64_t C = c->hidden, FF = c->inter, D = c->head_dim, qd = (int64_t)c->n_heads * D,
            kd = (int64_t)c->n_kv_heads * D;
    const int64_t len[LVEC_N] = {C, C, C, C, D, D, qd, kd, kd, C, FF, FF, C};
    return (unsigned)v < LVEC_N ? len[v] : 0;
}

int config_tensor_layer(const lop_config *c, const char *name, const char **rest) {
    (void)c;  /* any "...layers.N." counts, so a checkpoint with another prefix still works */
    for (const char *p = strstr(name, "layers."); p; p = strstr(p + 1, "layers.")) {
        if (p != name && p[-1] != '.') continue;
        const char *q = p + 7;
        if (*q < '0' || *q > '9') continue;
        long v = 0;
        while (*q >= '0' && *q <= '9' && v < 1 << 24) v = v * 10 + (*q++ - '0');
        if (*q != '.') continue;
        if (rest) *rest = q + 1;
        return (int)v;
    }
    return -1;
}

int config_check_layer_count(const lop_config *c, const char *const *names, int n, lop_err *e) {
    size_t pl = strlen(c->prefix);
    int top = -1;
    const char *at = NULL;
    for (int i = 0; i < n; i++) {
        const char *s = names[i];
        if (strncmp(s, c->prefix, pl) || strncmp(s + pl, "layers.", 7)) continue;
        const char *q = s + pl + 7;
        long v = 0;
        if (*q < '0' || *q > '9') continue;
        while (*q >= '0' && *q <= '9' && v < 1 << 24) v = v * 10 + (*q++ - '0');
        if (*q == '.' && v > top) { top = (int)v; at = s; }
    }
    if (top >= c->n_layers)
        return lop_fail(e, "config.json says num_hidden_layers %d, but the tensors hold %d layers "
                           "('%s'): config and weights disagree", c->n_layers, top + 1, at);
    return 0;
}

int config_detect_prefix(lop_config *c, const char *const *names, int n) {
    const lop_family *f = c->family ? c->family : arch_family(ARCH_LLAMA);
    const char *emb = f->embed;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]), k = strlen(emb);
        if (len < k || strcmp(names[i] + len - k, emb) || len - k >= sizeof c->prefix) continue;
        if (len - k && names[i][len - k - 1] != '.') continue;
        snprintf(c->prefix, sizeof c->prefix, "%.*s", (int)(len - k), names[i]);
        /* the head sits beside the text model: "model." -> "lm_head.weight";
         * "language_model.model." -> "language_model.lm_head.weight"; any other layout
         * ("model.language_model.", transformers >= 4.52) has it at the top: "lm_head.weight" */
        size_t pl = strlen(c->prefix), fl = strlen(f->prefix);
        size_t pre = pl >= fl && !strcmp(c->prefix + pl - fl, f->prefix) &&
                     (pl == fl || c->prefix[pl - fl - 1] == '.') ? pl - fl : 0;
        snprintf(c->head_name, sizeof c->head_name, "%.*s%s", (int)pre, c->prefix, f->head);
        return 0;
    }
    return -1;
}

/* ---- keeping layers ---- */

static const char *const NOT_PER_LAYER[] = {"architectures", "eos_token_id", "bos_token_id", "pad_token_id", NULL};

int config_keep_layers(lop_config *c, const int *keep, int n, lop_err *e) {
    int L = c->n_layers;
    for (int i = 0; i < n; i++)
        if (keep[i] < 0 || keep[i] >= L || (i && keep[i] <= keep[i - 1]))
            return lop_fail(e, "layers to keep must be sorted, distinct and in [0, %d)", L);
    cJSON *tj = c->text_json;
    int had_types = get(tj, "layer_types") != NULL, any_sliding = 0;
    for (int i = 0; i < L; i++) any_sliding |= c->layer_sliding[i];
    /* every per-layer list: keep the kept layers' entries */
    for (cJSON *it = tj->child; it; it = it->next) {
        if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != L || L == 0) continue;
        int skip = 0;
        for (int k = 0; NOT_PER_LAYER[k]; k++) skip |= it->string && !strcmp(it->string, NOT_PER_LAYER[k]);
        if (skip) continue;
        cJSON *na = cJSON_CreateArray();
        if (!na) return lop_fail(e, "out of memory");
        for (int i = 0; i < n; i++) cJSON_AddItemToArray(na, cJSON_Duplicate(cJSON_GetArrayItem(it, keep[i]), 1));
        na->string = strdup(it->string);   /* ReplaceItemViaPointer keeps no key */
        if (!na->string) { cJSON_Delete(na); return lop_fail(e, "out of memory"); }
        cJSON_ReplaceItemViaPointer(tj, it, na);
        it = na;
    }
    /* layer_types explicit whenever a type was implied (Gemma's pattern, Qwen's window) */
    uint8_t *ns = calloc((size_t)(n ? n : 1), 1);
    if (!ns) return lop_fail(e, "out of memory");
    for (int i = 0; i < n; i++) ns[i] = c->layer_sliding[keep[i]];
    if (!had_types && (c->family->sliding == ARCH_SLIDING_PATTERN || any_sliding)) {
        cJSON *lt = cJSON_CreateArray();
        for (int i = 0; lt && i < n; i++) cJSON_AddItemToArray(lt, cJSON_CreateString(ns[i] ? "sliding_attention" : "full_attention"));
        if (!lt) { free(ns); return lop_fail(e, "out of memory"); }
        cJSON_AddItemToObject(tj, "layer_types", lt);
    }
    /* Qwen: layers >= max_window_layers slide; the kept layers below it are the first ones, so
     * their count is the new boundary (untouched when it was past the last layer: all full) */
    const cJSON *mw = get(tj, "max_window_layers");
    if (c->family->sliding == ARCH_SLIDING_MAX_WINDOW && cJSON_IsNumber(mw) && mw->valuedouble < L) {
        int k = 0;
        for (int i = 0; i < n; i++) k += keep[i] < mw->valuedouble;
        cJSON_ReplaceItemInObjectCaseSensitive(tj, "max_window_layers", cJSON_CreateNumber(k));
    }
    if (get(tj, "num_hidden_layers")) cJSON_ReplaceItemInObjectCaseSensitive(tj, "num_hidden_layers", cJSON_CreateNumber(n));
    else cJSON_AddNumberToObject(tj, "num_hidden_layers", n);
    free(c->layer_sliding);
    c->layer_sliding = ns;
    c->n_layers = n;
    return 0;
}

/* ---- writing ---- */

static void put_number(sbuf *b, const cJSON *v) {
    double d = v->valuedouble;
    if (v->valuestring && strtod(v->valuestring, NULL) == d) { sb_puts(b, v->valuestring); return; }
    if (!isfinite(d)) { sb_puts(b, "null"); return; }
    if (d == floor(d) && fabs(d) < 1e15) { sb_printf(b, "%.0f", d); return; }
    char s[40];
    for (int p = 1; p <= 17; p++) {      /* shortest text that reads back the same */
        snprintf(s, sizeof s, "%.*g", p, d);
        if (strtod(s, NULL) == d) break;
    }
    sb_puts(b, s);
}

static void put_value(sbuf *b, const cJSON *v, int depth) {
    if (cJSON_IsNull(v)) sb_puts(b, "null");
    else if (cJSON_IsTrue(v)) sb_puts(b, "true");
    else if (cJSON_IsFalse(v)) sb_puts(b, "false");
    else if (cJSON_IsNumber(v)) put_number(b, v);
    else if (cJSON_IsString(v)) sb_json_string(b, v->valuestring);
    else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        int obj = cJSON_IsObject(v);
        if (!v->child) { sb_puts(b, obj ? "{}" : "[]"); return; }
        sb_puts(b, obj ? "{" : "[");
        for (const cJSON *c = v->child; c; c = c->next) {
            sb_puts(b, "\n");
            for (int i = 0; i < depth + 1; i++) sb_puts(b, "  ");
            if (obj) { sb_json_string(b, c->string ? c->string : ""); sb_puts(b, ": "); }
            put_value(b, c, depth + 1);
            if (c->next) sb_puts(b, ",");
        }
        sb_puts(b, "\n");
        for (int i = 0; i < depth; i++) sb_puts(b, "  ");
        sb_puts(b, obj ? "}" : "]");
    } else sb_puts(b, "null");
}

char *config_to_json(const lop_config *c) {
    sbuf b = {0};
    put_value(&b, c->json, 0);
    sb_puts(&b, "\n");
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}

/* ---- parameter counts ---- */

int64_t config_layer_param_count(const lop_config *c) {
    int64_t n = 0, rows, cols;
    for (int p = 0; p < PROJ_N; p++) {
        config_proj_shape(c, (lop_proj)p, &rows, &cols);
        n += rows * cols;
    }
    for (int v = 0; v < LVEC_N; v++)
        if (config_has_vec(c, (lop_lvec)v)) n += config_vec_len(c, (lop_lvec)v);
    return n;
}

int64_t config_param_count(const lop_config *c) {
    int64_t emb = (int64_t)c->vocab * c->hidden;
    return emb + (c->tied ? 0 : emb) + c->hidden /* final norm */ + c->n_layers * config_layer_param_count(c);
}
