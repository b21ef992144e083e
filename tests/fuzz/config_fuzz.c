/* config_fuzz.c — libFuzzer target for config.json (every family: llama, qwen2, qwen3,
 * gemma3_text, gemma3 with text_config; rope settings old and new; layer_types, sliding-window
 * patterns, max_window_layers). Also model-card's own reader (arch_read: config.json and the
 * parameter count from a safetensors header).
 * Input: config.json [FZ_SEP model.safetensors (for arch_read)].
 * Checks, for a config that parses:
 *   - the parameter count equals the sum of the tensor shapes the model loader binds (model.c's
 *     table, recomputed here in 128-bit arithmetic: no overflow, no formula drift);
 *   - config_to_json reads back to the same architecture (every field, per-layer types, rope);
 *   - keeping all layers changes nothing; keeping every other layer gives those layers' types
 *     and the same architecture otherwise, and reads back so. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "fuzz_util.h"
// fuzz-sources: cmd/model-card/folder.c
#include "../../cmd/model-card/folder.h"

/* what model.c binds, per layer and in all */
static __int128 shapes_count(const lop_config *c) {
    __int128 C = c->hidden, FF = c->inter, D = c->head_dim, qd = (__int128)c->n_heads * D,
             kd = (__int128)c->n_kv_heads * D, V = c->vocab;
    __int128 l = qd * C + 2 * kd * C + C * qd + 2 * FF * C + C * FF;   /* q k v o gate up down */
    l += C * (c->gemma ? 4 : 2);                                        /* norms */
    if (c->qk_norm) l += 2 * D;
    if (c->attn_bias) l += qd + 2 * kd;
    if (c->o_bias) l += C;
    if (c->mlp_bias) l += 2 * FF + C;
    return V * C * (c->tied ? 1 : 2) + C + (__int128)c->n_layers * l;
}

static int rope_eq(const lop_rope *a, const lop_rope *b) {
    return a->theta == b->theta && a->type == b->type && a->factor == b->factor &&
           a->low_freq_factor == b->low_freq_factor && a->high_freq_factor == b->high_freq_factor &&
           a->original_max_pos == b->original_max_pos;
}

/* a and b describe the same architecture (sliding: b's layer i is a's layer map[i]) */
static void same(const lop_config *a, const lop_config *b, const int *map, const char *what) {
    FZ_CHECK(a->arch == b->arch && !strcmp(a->model_type, b->model_type), "%s: arch", what);
    FZ_CHECK(a->vocab == b->vocab && a->hidden == b->hidden && a->inter == b->inter &&
             a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
             a->max_pos == b->max_pos, "%s: sizes", what);
    FZ_CHECK(a->eps == b->eps && a->tied == b->tied && a->attn_bias == b->attn_bias && a->o_bias == b->o_bias &&
             a->mlp_bias == b->mlp_bias && a->qk_norm == b->qk_norm && a->gemma == b->gemma && a->act == b->act,
             "%s: flags", what);
    FZ_CHECK(a->attn_scale == b->attn_scale && a->attn_softcap == b->attn_softcap &&
             a->final_softcap == b->final_softcap && a->sliding_window == b->sliding_window, "%s: attention", what);
    FZ_CHECK(rope_eq(&a->rope_full, &b->rope_full) && rope_eq(&a->rope_local, &b->rope_local), "%s: rope", what);
    FZ_CHECK(a->bos_id == b->bos_id && a->eos_id == b->eos_id && a->pad_id == b->pad_id, "%s: token ids", what);
    FZ_CHECK(!strcmp(a->prefix, b->prefix) && !strcmp(a->head_name, b->head_name), "%s: names", what);
    for (int i = 0; i < b->n_layers; i++)
        FZ_CHECK(b->layer_sliding[i] == a->layer_sliding[map ? map[i] : i], "%s: layer %d type", what, i);
}

static void reparse(const lop_config *c, lop_config *out, const char *what) {
    char *js = config_to_json(c);
    FZ_CHECK(js != NULL, "%s: config_to_json failed", what);
    lop_err e;
    FZ_CHECK(config_parse(out, js, &e) == 0, "%s: written config does not parse: %s\n%s", what, e.msg, js);
    free(js);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[2]; size_t len[2];
    int np = fz_split(data, size, part, len, 2);
    char *text = fz_strndup(part[0], len[0]);
    lop_config c, r;
    lop_err e;
    if (config_parse(&c, text, &e) == 0) {
        __int128 want = shapes_count(&c);
        FZ_CHECK(want <= INT64_MAX, "an accepted config implies more than 2^63 parameters");
        FZ_CHECK(config_param_count(&c) == (int64_t)want, "param count %lld, shapes give %lld",
                 (long long)config_param_count(&c), (long long)want);
        reparse(&c, &r, "to_json");
        same(&c, &r, NULL, "to_json");
        FZ_CHECK(r.n_layers == c.n_layers, "to_json: layers");
        config_free(&r);
        int L = c.n_layers, n = 0;
        int *keep = malloc(sizeof(int) * (size_t)(L ? L : 1));
        lop_config all;
        FZ_CHECK(config_parse(&all, text, &e) == 0, "second parse");
        for (int i = 0; i < L; i++) keep[i] = i;
        FZ_CHECK(config_keep_layers(&all, keep, L, &e) == 0, "keep all: %s", e.msg);
        same(&c, &all, keep, "keep all");
        reparse(&all, &r, "keep all");
        same(&c, &r, keep, "keep all, read back");
        config_free(&r); config_free(&all);
        for (int i = 0; i < L; i += 2) keep[n++] = i;
        FZ_CHECK(config_keep_layers(&c, keep, n, &e) == 0, "keep every other: %s", e.msg);
        FZ_CHECK(c.n_layers == n, "keep: n_layers");
        reparse(&c, &r, "keep every other");
        FZ_CHECK(r.n_layers == n, "keep every other: read back %d layers, kept %d", r.n_layers, n);
        lop_config orig;
        FZ_CHECK(config_parse(&orig, text, &e) == 0, "third parse");
        same(&orig, &r, keep, "keep every other, read back");
        config_free(&orig); config_free(&r);
        free(keep);
        config_free(&c);
    }
    /* model-card's reader of the same file */
    fz_write("config.json", part[0], len[0]);
    if (np > 1) fz_write("model.safetensors", part[1], len[1]);
    else unlink(fz_path("model.safetensors"));
    mc_arch a;
    mc_folder_read(&a, fz_dir(), &e);
    free(text);
    return 0;
}
