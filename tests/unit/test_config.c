/* test_config.c — config_parse against public configs typed into tests/fixtures/configs (with
 * their published parameter counts) and against transformers' resolved_config in
 * ../shared/models/x/golden.json; config_to_json round trips; config_keep_layers. */
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "fsutil.h"
#include "check.h"

static char root[4096];

static char *slurp(const char *rel) {
    char p[16384]; char *b; size_t n; lop_err e;
    snprintf(p, sizeof p, "%s/%s", root, rel);
    if (fs_read_all(p, &b, &n, &e)) return NULL;
    return b;
}

static void parse_fixture(const char *name, lop_config *c, char **text) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/configs/%s.json", name);
    *text = slurp(rel);
    lop_err e;
    if (!*text) { CHECK(0, "cannot read %s", rel); exit(1); }
    if (config_parse(c, *text, &e)) { CHECK(0, "%s: %s", name, e.msg); exit(1); }
}

/* published parameter counts: config_param_count must equal them, and the JSON must come back
 * byte for byte (these files are in transformers' indent=2 layout) */
static void count(const char *name, int64_t want) {
    lop_config c; char *t;
    parse_fixture(name, &c, &t);
    CHECK(config_param_count(&c) == want, "%s: %lld params, want %lld", name, (long long)config_param_count(&c), (long long)want);
    char *j = config_to_json(&c);
    CHECK(j && !strcmp(j, t), "%s: config_to_json does not reproduce the file", name);
    free(j); free(t); config_free(&c);
}

static void test_details(void) {
    lop_config c; char *t; lop_err e;
    parse_fixture("gemma-3-270m", &c, &t);
    CHECK(c.arch == ARCH_GEMMA3 && c.gemma && c.qk_norm && c.tied && c.act == ACT_GELU_TANH, "gemma flags");
    CHECK(fabs(c.attn_scale - 1.0 / 16) < 1e-15, "gemma attn scale %g", c.attn_scale);
    CHECK(c.rope_full.theta == 1e6 && c.rope_local.theta == 1e4, "gemma rope thetas");
    CHECK(c.layer_sliding[5] == 0 && c.layer_sliding[4] == 1 && c.layer_sliding[17] == 0, "gemma layer types");
    CHECK(c.sliding_window == 512 && c.eos_id == 1 && c.bos_id == 2 && c.pad_id == 0, "gemma window/tokens");
    int keep[] = {0, 1, 4, 5, 6};
    CHECK(config_keep_layers(&c, keep, 5, &e) == 0, "keep");
    char *j = config_to_json(&c);
    lop_config d;
    CHECK(config_parse(&d, j, &e) == 0, "reparse");
    CHECK(d.n_layers == 5 && d.layer_sliding[3] == 0 && d.layer_sliding[2] == 1 && d.layer_sliding[4] == 1, "kept types");
    CHECK(strstr(j, "\"rope_theta\": 1000000.0") != NULL, "literal 1000000.0 kept");
    free(j); config_free(&d); config_free(&c); free(t);

    parse_fixture("gemma-3-4b-it", &c, &t);     /* multimodal: text_config, transformers defaults */
    CHECK(c.arch == ARCH_GEMMA3 && c.n_layers == 34 && c.vocab == 262208 && c.n_heads == 8 && c.n_kv_heads == 4, "gemma3 text defaults");
    CHECK(c.head_dim == 256 && c.sliding_window == 1024 && c.eos_id == 1, "gemma3 head_dim/window/eos list");
    CHECK(c.rope_full.type == ROPE_LINEAR && c.rope_full.factor == 8 && c.rope_full.theta == 1e6, "full rope linear x8");
    CHECK(c.rope_local.type == ROPE_DEFAULT && c.rope_local.theta == 1e4, "local rope plain");
    CHECK(c.layer_sliding[5] == 0 && c.layer_sliding[6] == 1 && c.layer_sliding[11] == 0, "pattern 6");
    CHECK(!strcmp(c.prefix, "language_model.model.") && !strcmp(c.head_name, "language_model.lm_head.weight"), "prefix");
    const char *names[] = {"model.language_model.embed_tokens.weight"};
    CHECK(config_detect_prefix(&c, names, 1) == 0 && !strcmp(c.prefix, "model.language_model."), "detect prefix");
    int k2[] = {4, 5, 6};
    CHECK(config_keep_layers(&c, k2, 3, &e) == 0, "keep");
    j = config_to_json(&c);
    CHECK(config_parse(&d, j, &e) == 0 && d.n_layers == 3 && d.layer_sliding[0] && !d.layer_sliding[1] && d.layer_sliding[2], "kept pattern types");
    CHECK(strstr(j, "\"layer_types\"") && strstr(j, "\"num_hidden_layers\": 3"), "explicit layer_types written");
    free(j); config_free(&d); config_free(&c); free(t);

    parse_fixture("llama-3.2-1b", &c, &t);
    CHECK(c.rope_full.type == ROPE_LLAMA3 && c.rope_full.factor == 32 && c.rope_full.original_max_pos == 8192 &&
          c.rope_full.high_freq_factor == 4 && c.rope_full.theta == 5e5, "llama3 rope");
    CHECK(c.eos_id == 128001 && !c.attn_bias && !c.mlp_bias, "llama eos list, no bias");
    config_free(&c); free(t);

    parse_fixture("qwen2.5-0.5b", &c, &t);
    CHECK(c.attn_bias && !c.o_bias && !c.qk_norm && c.sliding_window == 0, "qwen2 q/k/v bias");
    config_free(&c); free(t);

    /* Qwen with a real sliding window: layers >= max_window_layers slide; renumbering keeps that */
    const char *qw = "{\"model_type\":\"qwen2\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":16,"
                     "\"num_hidden_layers\":4,\"num_attention_heads\":2,\"use_sliding_window\":true,"
                     "\"sliding_window\":64,\"max_window_layers\":2,\"attention_bias\":true,\"mlp_bias\":true}";
    CHECK(config_parse(&c, qw, &e) == 0, "qwen sliding: %s", e.msg);
    CHECK(!c.layer_sliding[1] && c.layer_sliding[2] && c.sliding_window == 64 && !c.mlp_bias, "qwen sliding layers");
    int k3[] = {0, 2, 3};
    CHECK(config_keep_layers(&c, k3, 3, &e) == 0, "keep");
    j = config_to_json(&c);
    CHECK(config_parse(&d, j, &e) == 0 && !d.layer_sliding[0] && d.layer_sliding[1] && d.layer_sliding[2], "qwen kept types");
    CHECK(strstr(j, "\"max_window_layers\": 1") != NULL, "max_window_layers renumbered: %s", j);
    free(j); config_free(&d); config_free(&c);

    /* transformers 5 rope_parameters keyed by attention type; llama biases */
    const char *t5 = "{\"model_type\":\"gemma3_text\",\"hidden_size\":8,\"num_hidden_layers\":2,"
                     "\"rope_parameters\":{\"full_attention\":{\"rope_theta\":123.0,\"rope_type\":\"linear\",\"factor\":2.0},"
                     "\"sliding_attention\":{\"rope_theta\":45.0,\"rope_type\":\"default\"}}}";
    CHECK(config_parse(&c, t5, &e) == 0 && c.rope_full.theta == 123 && c.rope_full.type == ROPE_LINEAR &&
          c.rope_local.theta == 45, "rope_parameters by type");
    config_free(&c);
    const char *lb = "{\"model_type\":\"llama\",\"vocab_size\":10,\"hidden_size\":8,\"intermediate_size\":16,"
                     "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"attention_bias\":true,\"mlp_bias\":true,"
                     "\"rope_parameters\":{\"rope_theta\":99.0,\"rope_type\":\"default\"}}";
    CHECK(config_parse(&c, lb, &e) == 0 && c.attn_bias && c.o_bias && c.mlp_bias && c.rope_full.theta == 99, "llama biases, flat rope_parameters");
    /* 10*8 emb + 10*8 head + 8 norm + layer: 4*64 + 3*8 + 8 (o bias) + 3*128 + 2*16 + 8 + 2*8 */
    CHECK(config_param_count(&c) == 80 + 80 + 8 + 256 + 24 + 8 + 384 + 40 + 16, "llama bias count %lld", (long long)config_param_count(&c));
    config_free(&c);
    CHECK(config_parse(&c, "{\"model_type\":\"mistral\"}", &e) == -1 && strstr(e.msg, "mistral"), "unknown family named");
    CHECK(config_parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":8}", &e) == -1 && strstr(e.msg, "vocab_size"), "missing key named: %s", e.msg);
    CHECK(config_parse(&c, "{\"model_type\":\"llama\",\"vocab_size\":1,\"hidden_size\":8,\"intermediate_size\":1,\"num_hidden_layers\":1,\"num_attention_heads\":2,\"rope_scaling\":{\"rope_type\":\"yarn\"}}", &e) == -1 && strstr(e.msg, "yarn"), "yarn rejected");
    CHECK(config_parse(&c, "[1]", &e) == -1, "array rejected");
    int nm = config_tensor_layer(NULL, "model.layers.12.mlp.up_proj.weight", (const char **)&t);
    CHECK(nm == 12 && !strcmp(t, "mlp.up_proj.weight"), "tensor layer");
    CHECK(config_tensor_layer(NULL, "model.norm.weight", NULL) == -1, "no layer");
}

/* transformers' resolution of each ../shared model's config (golden.json resolved_config) */
static void test_goldens(void) {
    const char *models[] = {"gemma3-tiny", "qwen3-tiny", "llama-tiny", "llama-tiny-student", "stories260K"};
    char rel[8192];
    snprintf(rel, sizeof rel, "%s/../shared/models", root);
    if (!fs_is_dir(rel)) { printf("test_config: ../shared absent, golden checks skipped\n"); return; }
    for (int m = 0; m < 5; m++) {
        snprintf(rel, sizeof rel, "../shared/models/%s/config.json", models[m]);
        char *txt = slurp(rel);
        snprintf(rel, sizeof rel, "../shared/models/%s/golden.json", models[m]);
        char *gt = slurp(rel);
        if (!txt || !gt) { CHECK(0, "%s: missing files", models[m]); continue; }
        lop_config c; lop_err e;
        if (config_parse(&c, txt, &e)) { CHECK(0, "%s: %s", models[m], e.msg); continue; }
        cJSON *g = cJSON_Parse(gt);
        const cJSON *rc = cJSON_GetObjectItem(g, "resolved_config");
#define NUM(k) cJSON_GetObjectItem(rc, k)->valuedouble
        CHECK(c.head_dim == NUM("head_dim") && c.n_layers == NUM("num_hidden_layers") && c.hidden == NUM("hidden_size") &&
              c.vocab == NUM("vocab_size") && c.n_kv_heads == NUM("num_key_value_heads") && c.eps == NUM("rms_norm_eps"), "%s: sizes", models[m]);
        CHECK(c.tied == cJSON_IsTrue(cJSON_GetObjectItem(rc, "tie_word_embeddings")), "%s: tied", models[m]);
        const cJSON *lt = cJSON_GetObjectItem(rc, "layer_types");
        for (int l = 0; l < c.n_layers; l++) {
            int want = lt ? !strcmp(cJSON_GetArrayItem(lt, l)->valuestring, "sliding_attention") : 0;
            CHECK(c.layer_sliding[l] == want, "%s: layer %d type", models[m], l);
        }
        const cJSON *rp = cJSON_GetObjectItem(rc, "rope_parameters");
        const cJSON *full = cJSON_GetObjectItem(rp, "full_attention"), *sl = cJSON_GetObjectItem(rp, "sliding_attention");
        if (!full) full = rp;
        CHECK(c.rope_full.theta == cJSON_GetObjectItem(full, "rope_theta")->valuedouble, "%s: full rope theta", models[m]);
        if (sl) CHECK(c.rope_local.theta == cJSON_GetObjectItem(sl, "rope_theta")->valuedouble, "%s: local rope theta", models[m]);
        const cJSON *sw = cJSON_GetObjectItem(rc, "sliding_window");
        CHECK(c.sliding_window == (cJSON_IsNumber(sw) ? sw->valueint : 0), "%s: sliding window", models[m]);
        const cJSON *q = cJSON_GetObjectItem(rc, "query_pre_attn_scalar");
        double scale = 1.0 / sqrt(q ? q->valuedouble : NUM("head_dim"));
        CHECK(fabs(c.attn_scale - scale) < 1e-15, "%s: attention scale", models[m]);
        char *j = config_to_json(&c);
        /* the file's own text comes back (modulo the trailing newline these files lack) */
        size_t lt2 = strlen(txt);
        CHECK(j && !strncmp(j, txt, lt2) && (j[lt2] == 0 || !strcmp(j + lt2, "\n")), "%s: config_to_json differs from the file", models[m]);
        free(j); cJSON_Delete(g); config_free(&c); free(txt); free(gt);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    char *exe = realpath(argv[0], NULL);
    snprintf(root, sizeof root, "%s", exe ? dirname(dirname(exe)) : "..");
    free(exe);
    count("gemma-3-270m", 268098176);
    count("qwen3-0.6b", 596049920);
    count("qwen3-4b", 4022468096LL);
    count("llama-3.2-1b", 1235814400);
    count("qwen2.5-0.5b", 494032768);
    test_details();
    test_goldens();
    if (fails) { printf("%d failures\n", fails); return 1; }
    printf("test_config: ok\n");
    return 0;
}
