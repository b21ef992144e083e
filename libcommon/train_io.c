/* train_io.c — writing a trained model (HF folder, merged LoRA, PEFT adapter) and checkpoints. */
#include "train_priv.h"
#include "fsutil.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* a host view of array `which` (TR_W...) of parameter i: in place on the cpu, else downloaded
 * into *buf (grown to *cap floats) */
static const float *host_of(const tr_model *m, int i, int which, float **buf, size_t *cap,
                            lop_err *e) {
    const tr_param *p = &m->p[i];
    if (P(m)->be->host_mem) return tr_param_array(m, i, which);
    if (p->n > *cap) {
        free(*buf);
        *cap = 0;
        if (!(*buf = malloc(p->n * sizeof(float)))) { lop_fail(e, "out of memory"); return NULL; }
        *cap = p->n;
    }
    return tr_param_read(m, i, which, *buf, e) ? NULL : *buf;
}

/* base index -> parameter index (or -1) */
static int *param_of_tensor(const tr_model *m) {
    int *map = malloc(sizeof(int) * (m->st->n ? m->st->n : 1));
    if (!map) return NULL;
    for (int i = 0; i < m->st->n; i++) map[i] = -1;
    for (int i = 0; i < m->np; i++) if (m->p[i].st_index >= 0) map[m->p[i].st_index] = i;
    return map;
}

/* LoRA A index for a base parameter, or -1 */
static int lora_of(const tr_model *m, const tr_param *base) {
    const char *nm = base->name;
    size_t k = strlen(nm);
    if (k < 8) return -1;
    char want[600];
    snprintf(want, sizeof want, "base_model.model.%.*s.lora_A.weight", (int)(k - 7) & 511, nm);
    return tr_find(m, want);
}

static int save_model(tr_model *m, const char *out, int merge, lop_err *e) {
    st_model *st = m->st;
    int *map = param_of_tensor(m);
    if (!map) return lop_fail(e, "out of memory");
    st_info *infos = calloc(st->n, sizeof *infos);
    if (!infos) { free(map); return lop_fail(e, "out of memory"); }
    for (int i = 0; i < st->n; i++) { infos[i] = st->info[i]; infos[i].offset = 0; }
    char *cfg = config_to_json(&m->cfg);
    st_writer *w;
    st_write_opts wo = {0, 0};
    int rc = st_writer_open(&w, out, infos, st->n, cfg ? cfg : st->config_json, st->source_dir, &wo, e);
    free(cfg);
    if (rc) { free(map); free(infos); return -1; }
    float *f = NULL; void *buf = NULL; size_t fcap = 0;
    float *hw = NULL, *ha = NULL, *hb = NULL; size_t hwc = 0, hac = 0, hbc = 0;
    for (int i = 0; i < st->n && !rc; i++) {
        int pi = map[i];
        const void *data = st->data[i];
        if (pi >= 0) {
            tr_param *p = &m->p[pi];
            int la = merge ? lora_of(m, p) : -1;
            if (la < 0 && p->trainable) {
                if (p->n > fcap) {
                    free(f); free(buf); fcap = p->n;
                    f = malloc(fcap * 4); buf = malloc(fcap * 8);
                    if (!f || !buf) { rc = lop_fail(e, "out of memory"); break; }
                }
                const float *x = host_of(m, pi, TR_W, &hw, &hwc, e);
                if (!x) { rc = -1; break; }
                st_from_f32(buf, x, st->info[i].dtype, p->n);
                data = buf;
            } else if (la >= 0) {
                if (p->n > fcap) {
                    free(f); free(buf); fcap = p->n;
                    f = malloc(fcap * 4); buf = malloc(fcap * 8);
                    if (!f || !buf) { rc = lop_fail(e, "out of memory"); break; }
                }
                if (p->w) {
                    const float *x = host_of(m, pi, TR_W, &hw, &hwc, e);
                    if (!x) { rc = -1; break; }
                    memcpy(f, x, p->n * 4);
                } else {
                    st_to_f32(f, p->src, p->dtype, p->n);
                }
                /* W += (alpha/r) B A; exact zeros of W stay zero when keeping sparsity */
                const tr_param *A = &m->p[la];
                const float *Aw = host_of(m, la, TR_W, &ha, &hac, e),
                            *Bw = Aw ? host_of(m, la + 1, TR_W, &hb, &hbc, e) : NULL;
                if (!Bw) { rc = -1; break; }
                int r = (int)A->rows;
                float s = (float)(m->opt.lora_alpha / m->opt.lora_rank);
                #pragma omp parallel for schedule(static)
                for (int64_t o = 0; o < p->rows; o++)
                    for (int64_t c = 0; c < p->cols; c++) {
                        float *wv = &f[o * p->cols + c];
                        if (m->opt.keep_sparsity && *wv == 0.0f) continue;
                        float acc = 0;
                        for (int k = 0; k < r; k++) acc += Bw[o * r + k] * Aw[(int64_t)k * p->cols + c];
                        *wv += s * acc;
                    }
                st_from_f32(buf, f, st->info[i].dtype, p->n);
                data = buf;
            }
        }
        rc = st_writer_put(w, i, data, e);
        if (data == st->data[i]) st_release(st, i); /* copied through: its pages can go */
    }
    free(f); free(buf); free(map); free(infos); free(hw); free(ha); free(hb);
    if (rc) { st_writer_abort(w); return -1; }
    return st_writer_finish(w, e);
}

static int save_adapter_in(tr_model *m, const char *out, const char *base_path, lop_err *e);

/* the adapter folder is built under a temporary name beside out and renamed into place */
static int save_adapter(tr_model *m, const char *out, const char *base_path, lop_err *e) {
    char *parent = fs_dirname(out);
    const char *base = strrchr(out, '/');
    base = base && base[1] ? base + 1 : out;
    size_t len = strlen(parent ? parent : ".") + strlen(base) + 32;
    char *tmp = malloc(len);
    if (!parent || !tmp) { free(parent); free(tmp); return lop_fail(e, "out of memory"); }
    snprintf(tmp, len, "%s/.%s.tmp.XXXXXX", parent, base);
    free(parent);
    if (!fs_temp_dir(tmp)) { int rc = lop_fail(e, "%s: cannot create a temporary folder: %s", out, strerror(errno)); free(tmp); return rc; }
    int rc = save_adapter_in(m, tmp, base_path, e);
    if (!rc) rc = fs_dir_replace(tmp, out, e);
    if (rc) { fs_rm_rf(tmp); fs_temp_note(tmp, 0); }
    free(tmp);
    return rc;
}

static int save_adapter_in(tr_model *m, const char *out, const char *base_path, lop_err *e) {
    int n = 0;
    for (int i = 0; i < m->np; i++) n += m->p[i].st_index < 0;
    st_info *infos = calloc(n ? n : 1, sizeof *infos);
    int *idx = calloc(n ? n : 1, sizeof *idx);
    if (!infos || !idx) { free(infos); free(idx); return lop_fail(e, "out of memory"); }
    int k = 0;
    for (int i = 0; i < m->np; i++) {
        const tr_param *p = &m->p[i];
        if (p->st_index >= 0) continue;
        infos[k].name = p->name; infos[k].dtype = ST_F32; infos[k].ndim = 2;
        infos[k].shape[0] = p->rows; infos[k].shape[1] = p->cols;
        infos[k].nbytes = p->n * 4;
        idx[k++] = i;
    }
    char *path = join(out, "adapter_model.safetensors");
    st_writer *w = NULL;
    st_write_opts wo = {0, 0};
    float *hb = NULL; size_t hc = 0;
    int rc = !path ? lop_fail(e, "out of memory") : st_writer_open(&w, path, infos, n, NULL, NULL, &wo, e);
    for (int i = 0; i < n && !rc; i++) {
        const float *x = host_of(m, idx[i], TR_W, &hb, &hc, e);
        rc = x ? st_writer_put(w, i, x, e) : -1;
    }
    if (path && !rc) rc = st_writer_finish(w, e);
    else if (path && w) st_writer_abort(w);
    free(path); free(infos); free(idx); free(hb);
    if (rc) return -1;
    /* adapter_config.json as PEFT writes it */
    cJSON *c = cJSON_CreateObject();
    /* The base as a hub id when it came from the Hugging Face cache, else as a path relative to
     * the adapter folder: the pair stays valid when both folders move together (lop resolves it
     * against the adapter folder first; PEFT's AutoPeftModel resolves against the working folder,
     * see heal-sft(1)). An absolute path only when no relative one exists. */
    char *abs = base_path ? st_adapter_hub_id(base_path) : NULL;
    if (!abs && base_path) {
        char *aa = fs_abspath(out), *bb = fs_abspath(base_path);
        /* relative only when the two share a folder below the root: "../../../work/x" would
         * survive no move at all */
        const char *s1 = aa ? strchr(aa + 1, '/') : NULL;
        if (s1 && bb && !strncmp(aa, bb, (size_t)(s1 - aa) + 1)) abs = fs_relpath(out, base_path);
        free(aa); free(bb);
    }
    if (!abs && base_path) abs = fs_abspath(base_path);
    cJSON_AddItemToObject(c, "alpha_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(c, "auto_mapping");
    if (abs || base_path) cJSON_AddStringToObject(c, "base_model_name_or_path", abs ? abs : base_path);
    else cJSON_AddNullToObject(c, "base_model_name_or_path");
    free(abs);
    cJSON_AddStringToObject(c, "bias", "none");
    cJSON_AddFalseToObject(c, "fan_in_fan_out");
    cJSON_AddTrueToObject(c, "inference_mode");
    cJSON_AddTrueToObject(c, "init_lora_weights");
    cJSON_AddNullToObject(c, "layers_pattern");
    cJSON_AddNullToObject(c, "layers_to_transform");
    cJSON_AddNumberToObject(c, "lora_alpha", m->opt.lora_alpha);
    cJSON_AddNumberToObject(c, "lora_dropout", m->opt.lora_dropout);
    cJSON_AddNullToObject(c, "modules_to_save");
    cJSON_AddStringToObject(c, "peft_type", "LORA");
    cJSON_AddNumberToObject(c, "r", m->opt.lora_rank);
    cJSON_AddItemToObject(c, "rank_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(c, "revision");
    cJSON *t = cJSON_AddArrayToObject(c, "target_modules");
    for (int i = 0; i < PROJ_N; i++)
        if (m->opt.lora_targets >> i & 1) cJSON_AddItemToArray(t, cJSON_CreateString(arch_proj_module((lop_proj)i)));
    cJSON_AddStringToObject(c, "task_type", "CAUSAL_LM");
    cJSON_AddFalseToObject(c, "use_dora");
    cJSON_AddFalseToObject(c, "use_rslora");
    char *js = cJSON_Print(c);
    cJSON_Delete(c);
    char *cp = join(out, "adapter_config.json");
    rc = !js || !cp ? lop_fail(e, "out of memory") : fs_write_file_atomic(cp, js, strlen(js), e);
    free(js); free(cp);
    return rc;
}

int tr_save(tr_model *m, const char *out_dir, int merge_lora, const char *base_path, lop_err *e) {
    tr_release_acts(m);
    if (m->opt.lora_rank > 0 && !merge_lora) return save_adapter(m, out_dir, base_path, e);
    return save_model(m, out_dir, merge_lora, e);
}

/* ---------------------------------------------------------------- checkpoints */

int tr_ckpt_save(const tr_model *m, const char *dir, const char *state_json, lop_err *e) {
    /* built in a temporary folder beside dir, then renamed into place */
    char *parent = fs_dirname(dir);
    if (!parent) return lop_fail(e, "out of memory");
    if (fs_mkdir_p(parent, e)) { free(parent); return -1; }
    size_t len = strlen(dir) + 16;
    char *tmp = malloc(len);
    snprintf(tmp, len, "%s.tmp.XXXXXX", dir);
    free(parent);
    if (!fs_temp_dir(tmp)) { lop_fail(e, "%s: %s", tmp, strerror(errno)); free(tmp); return -1; }
    int n = 0;
    for (int i = 0; i < m->np; i++) n += m->p[i].trainable ? 3 : 0;
    st_info *infos = calloc(n ? n : 1, sizeof *infos);
    int *src = calloc(n ? n : 1, sizeof *src);   /* parameter * 4 + array */
    char **names = calloc(n ? n : 1, sizeof *names);
    int rc = !infos || !src || !names ? lop_fail(e, "out of memory") : 0;
    int k = 0;
    static const char *suf[3] = {"", ".exp_avg", ".exp_avg_sq"};
    for (int i = 0; i < m->np && !rc; i++) {
        const tr_param *p = &m->p[i];
        if (!p->trainable) continue;
        static const int arr[3] = {TR_W, TR_M, TR_V};
        for (int j = 0; j < 3; j++, k++) {
            size_t nl = strlen(p->name) + 16;
            names[k] = malloc(nl);
            if (!names[k]) { rc = lop_fail(e, "out of memory"); break; }
            snprintf(names[k], nl, "%s%s", p->name, suf[j]);
            infos[k].name = names[k]; infos[k].dtype = ST_F32; infos[k].ndim = 1;
            infos[k].shape[0] = (int64_t)p->n; infos[k].nbytes = p->n * 4;
            src[k] = i * 4 + arr[j];
        }
    }
    char *sp = join(tmp, "state.safetensors"), *jp = join(tmp, "state.json");
    st_writer *w = NULL;
    st_write_opts wo = {0, 0};
    if (!rc) rc = st_writer_open(&w, sp, infos, n, NULL, NULL, &wo, e);
    float *hb = NULL; size_t hc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const float *x = host_of(m, src[i] / 4, src[i] % 4, &hb, &hc, e);
        rc = x ? st_writer_put(w, i, x, e) : -1;
    }
    free(hb);
    if (w) { if (!rc) rc = st_writer_finish(w, e); else st_writer_abort(w); }
    if (!rc) rc = fs_write_file_atomic(jp, state_json, strlen(state_json), e);
    if (!rc) rc = fs_dir_replace(tmp, dir, e); /* an older checkpoint of the same step goes */
    if (rc) { fs_rm_rf(tmp); fs_temp_note(tmp, 0); }
    for (int i = 0; i < k; i++) free(names[i]);
    free(names); free(infos); free(src); free(sp); free(jp); free(tmp);
    return rc;
}

int tr_ckpt_load(tr_model *m, const char *dir, char **state_json, lop_err *e) {
    char *sp = join(dir, "state.safetensors"), *jp = join(dir, "state.json");
    size_t len;
    st_model *st = NULL;
    int rc = 0;
    *state_json = NULL;
    if (!sp || !jp) rc = lop_fail(e, "out of memory");
    if (!rc) rc = fs_read_all(jp, state_json, &len, e);
    if (!rc) rc = st_open(&st, sp, e);
    static const char *suf[3] = {"", ".exp_avg", ".exp_avg_sq"};
    for (int i = 0; i < m->np && !rc; i++) {
        tr_param *p = &m->p[i];
        if (!p->trainable) continue;
        static const int arr[3] = {TR_W, TR_M, TR_V};
        for (int j = 0; j < 3 && !rc; j++) {
            char name[700];
            snprintf(name, sizeof name, "%s%s", p->name, suf[j]);
            int t = st_find(st, name);
            if (t < 0) { rc = lop_fail(e, "%s: checkpoint has no %s (another model or LoRA setup?)", dir, name); break; }
            if (st->info[t].dtype != ST_F32 || st->info[t].nbytes != p->n * 4) {
                rc = lop_fail(e, "%s: %s has the wrong size", dir, name); break;
            }
            /* a byte copy (memcpy, or to the device): the file's alignment does not matter */
            rc = tr_param_write(m, i, arr[j], (const float *)st->data[t], e);
        }
    }
    if (st) st_close(st);
    if (rc && *state_json) { free(*state_json); *state_json = NULL; }
    free(sp); free(jp);
    return rc;
}
