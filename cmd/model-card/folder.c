/* folder.c — a model folder's config and parameter count, through libcommon (config_parse,
 * st_open, text_read): the card needs names and shapes, never tensor data (st_open maps it). */
#include "folder.h"
#include "config.h"
#include "fsutil.h"
#include "safetensors.h"
#include "textio.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void top_str(const cJSON *o, const char *k, char *dst, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsString(v)) snprintf(dst, n, "%s", v->valuestring);
}

int mc_folder_read(mc_arch *a, const char *path, lop_err *e) {
    memset(a, 0, sizeof *a);
    a->params = -1;
    snprintf(a->path, sizeof a->path, "%s", path);
    struct stat st;
    if (stat(path, &st) != 0) return lop_fail(e, "%s: no such model folder or config.json", path);
    int dir = fs_is_dir(path);
    char cp[2048];
    snprintf(cp, sizeof cp, dir ? "%s/config.json" : "%s", path);
    if (dir && st_is_adapter(path)) {   /* a LoRA adapter: the architecture is its base's */
        char *b;
        if (st_adapter_base_path(path, &b, e)) return -1;
        snprintf(cp, sizeof cp, "%s/config.json", b);
        free(b);
    }
    char *txt;
    size_t len;
    if (text_read(cp, &txt, &len, e)) return -1;
    lop_config c;
    int rc = config_parse(&c, txt, e);
    free(txt);
    if (rc) return lop_wrap(e, "%s", cp);
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(c.json, "architectures");
    if (cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        snprintf(a->architecture, sizeof a->architecture, "%s", cJSON_GetArrayItem(archs, 0)->valuestring);
    snprintf(a->model_type, sizeof a->model_type, "%s", c.model_type);
    top_str(c.json, "torch_dtype", a->dtype, sizeof a->dtype);
    top_str(c.json, "dtype", a->dtype, sizeof a->dtype);
    a->n_layers = c.n_layers;
    a->hidden = c.hidden;
    a->inter = c.inter;
    a->n_heads = c.n_heads;
    a->n_kv_heads = c.n_kv_heads;
    a->head_dim = c.head_dim;
    a->vocab = c.vocab;
    a->max_pos = c.max_pos;
    a->tied = c.tied;
    a->types_listed = cJSON_GetObjectItemCaseSensitive(c.text_json, "layer_types") != NULL;
    if (a->types_listed || c.sliding_window > 0)   /* the types config_parse derived, listed or implied */
        for (int l = 0; l < c.n_layers; l++) {
            if (c.layer_sliding[l]) a->n_sliding++;
            else a->n_full++;
        }
    config_free(&c);
    if (a->n_layers <= 0) return lop_fail(e, "%s: no layers (num_hidden_layers)", cp);
    if (dir) {   /* weights that do not open only lose the count */
        st_model *m;
        lop_err e2;
        if (st_open(&m, path, &e2) == 0) {
            int64_t n = 0;
            for (int i = 0; i < m->n; i++) n += (int64_t)st_numel(&m->info[i]);
            a->params = n;
            st_close(m);
        }
    }
    return 0;
}
