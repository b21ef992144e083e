/* test_layers.c — layer names, maps, plans (order, holds, errors), merge arithmetic, scores. */
#include "layers.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"


static void test_names(void) {
    const char *rest;
    CHECK(layer_of_name("model.layers.12.mlp.up_proj.weight", "model.layers.", &rest) == 12 && !strcmp(rest, "mlp.up_proj.weight"));
    CHECK(layer_of_name("model.layers.x.mlp", "model.layers.", &rest) == -1);
    CHECK(layer_of_name("model.layers.3", "model.layers.", &rest) == -1);
    CHECK(layer_of_name("model.layers.03.a", "model.layers.", &rest) == -1);
    CHECK(layer_of_name("model.norm.weight", "model.layers.", &rest) == -1);
    CHECK(layer_rest_merged("self_attn.q_proj.weight") && layer_rest_merged("self_attn.k_norm.weight"));
    CHECK(layer_rest_merged("mlp.down_proj.bias") && !layer_rest_merged("input_layernorm.weight"));
    CHECK(!layer_rest_merged("post_feedforward_layernorm.weight"));
    st_info in[4] = {{.name = "vision.encoder.layers.0.w"}, {.name = "lm.model.layers.0.a"},
                     {.name = "lm.model.layers.7.a"}, {.name = "lm.model.norm"}};
    char p[64]; int n; lop_err e;
    CHECK(layer_find_prefix(in, 4, p, sizeof p, &n, &e) == 0 && !strcmp(p, "lm.model.layers.") && n == 8);
    CHECK(layer_find_prefix(in + 3, 1, p, sizeof p, &n, &e) == -1);
}

static void test_maps(void) {
    lop_layer_map m; lop_err e;
    int keep[] = {0, 2, 5};
    CHECK(layer_map_keep(&m, 6, keep, 3, &e) == 0 && m.n_out == 3 && m.first[2] == 5 && m.last[2] == 5);
    layer_map_free(&m);
    int bad[] = {0, 6};
    CHECK(layer_map_keep(&m, 6, bad, 2, &e) == -1 && e.code == LOP_EUSAGE);
    int f[] = {1, 4}, l[] = {2, 6};
    CHECK(layer_map_merge(&m, 8, f, l, 2, &e) == 0 && m.n_out == 5);
    int want_f[] = {0, 1, 3, 4, 7}, want_l[] = {0, 2, 3, 6, 7};
    for (int j = 0; j < 5 && m.n_out == 5; j++) CHECK(m.first[j] == want_f[j] && m.last[j] == want_l[j]);
    layer_map_free(&m);
    int f2[] = {1, 2}, l2[] = {2, 3};
    CHECK(layer_map_merge(&m, 8, f2, l2, 2, &e) == -1 && e.code == LOP_EUSAGE);   /* overlap */
    int f3[] = {6}, l3[] = {8};
    CHECK(layer_map_merge(&m, 8, f3, l3, 1, &e) == -1 && e.code == LOP_EUSAGE);   /* range */
}

static st_info mk(const char *name, st_dtype t, int64_t rows) {
    st_info i = {0};
    i.name = (char *)name; i.dtype = t; i.ndim = 1; i.shape[0] = rows;
    i.nbytes = rows * st_dtype_size(t);
    return i;
}

static void test_plan(void) {
    /* names in lexicographic file order, as transformers writes them: layers.0, layers.1, layers.10?
       here 3 layers, file order mixes layers: 2 first, then 0, then 1 */
    st_info in[] = {
        mk("model.embed_tokens.weight", ST_BF16, 4),
        mk("model.layers.2.mlp.up_proj.weight", ST_BF16, 2),
        mk("model.layers.2.input_layernorm.weight", ST_BF16, 2),
        mk("model.layers.0.mlp.up_proj.weight", ST_BF16, 2),
        mk("model.layers.0.input_layernorm.weight", ST_BF16, 2),
        mk("model.layers.1.mlp.up_proj.weight", ST_BF16, 2),
        mk("model.layers.1.input_layernorm.weight", ST_BF16, 2),
        mk("model.norm.weight", ST_BF16, 4),
    };
    lop_layer_map m; lop_plan p; lop_err e;
    int f[] = {0}, l[] = {1};
    CHECK(layer_map_merge(&m, 3, f, l, 1, &e) == 0);
    CHECK(layer_plan_build(&p, in, 8, "model.layers.", &m, LMERGE_RDSC, &e) == 0);
    /* outputs: embed, layers.1.* (old 2, renamed), layers.0 norm (copy from 0), merged up_proj
       (ready at input 5), norm */
    CHECK(p.n == 6);
    if (p.n == 6) {
        CHECK(!strcmp(p.item[0].info.name, "model.embed_tokens.weight"));
        CHECK(!strcmp(p.item[1].info.name, "model.layers.1.mlp.up_proj.weight") && p.item[1].src[0] == 1);
        CHECK(!strcmp(p.item[2].info.name, "model.layers.1.input_layernorm.weight"));
        CHECK(!strcmp(p.item[3].info.name, "model.layers.0.input_layernorm.weight") && p.item[3].ready == 4);
        CHECK(!strcmp(p.item[4].info.name, "model.layers.0.mlp.up_proj.weight") && p.item[4].op == PLAN_MERGE
              && p.item[4].nsrc == 2 && p.item[4].src[0] == 3 && p.item[4].src[1] == 5 && p.item[4].ready == 5);
        CHECK(p.last_use[6] == -1 && p.last_use[3] == 4);
        CHECK(p.params_in == 20 && p.params_out == 16 && p.layer_params[1] == 4);
    }
    layer_plan_free(&p);
    /* a merged tensor missing from a member */
    st_info in2[] = {mk("model.layers.0.mlp.up_proj.weight", ST_BF16, 2), mk("model.layers.1.mlp.gate_proj.weight", ST_BF16, 2)};
    CHECK(layer_plan_build(&p, in2, 2, "model.layers.", &m, LMERGE_RDSC, &e) == -1 && strstr(e.msg, "up_proj"));
    /* shape mismatch */
    st_info in3[] = {mk("model.layers.0.mlp.up_proj.weight", ST_BF16, 2), mk("model.layers.1.mlp.up_proj.weight", ST_BF16, 3)};
    CHECK(layer_plan_build(&p, in3, 2, "model.layers.", &m, LMERGE_RDSC, &e) == -1 && strstr(e.msg, "shape"));
    /* layer index past the model */
    st_info in4[] = {mk("model.layers.5.mlp.up_proj.weight", ST_BF16, 2)};
    CHECK(layer_plan_build(&p, in4, 1, "model.layers.", &m, LMERGE_RDSC, &e) == -1 && strstr(e.msg, "layer 5"));
    layer_map_free(&m);
}

static void test_merge_math(void) {
    float a[4] = {1.0f, 2.0f, -3.0f, 0.5f}, b[4] = {2.0f, 2.0f, 1.0f, 0.25f}, c[4] = {4.0f, 0.0f, 1.0f, 0.75f};
    uint16_t ab[4], bb[4], cb[4], out[4];
    st_from_f32(ab, a, ST_BF16, 4); st_from_f32(bb, b, ST_BF16, 4); st_from_f32(cb, c, ST_BF16, 4);
    const void *in[3] = {ab, bb, cb};
    st_dtype dt[3] = {ST_BF16, ST_BF16, ST_BF16};
    lop_err e;
    float r[4];
    CHECK(layer_merge_tensor(out, ST_BF16, in, dt, 3, 4, LMERGE_RDSC, &e) == 0);
    st_to_f32(r, out, ST_BF16, 4);
    for (int i = 0; i < 4; i++) CHECK(r[i] == a[i] + (b[i] - a[i]) + (c[i] - a[i]));
    CHECK(layer_merge_tensor(out, ST_BF16, in, dt, 3, 4, LMERGE_AVERAGE, &e) == 0);
    st_to_f32(r, out, ST_BF16, 4);
    CHECK(r[0] == bf16_to_f32(f32_to_bf16(7.0f / 3.0f)));
    CHECK(r[1] == bf16_to_f32(f32_to_bf16(4.0f / 3.0f)) && r[3] == 0.5f);
    CHECK(layer_merge_tensor(out, ST_BF16, in, dt, 3, 4, LMERGE_REPLACE, &e) == 0);
    st_to_f32(r, out, ST_BF16, 4);
    for (int i = 0; i < 4; i++) CHECK(r[i] == c[i]);
    /* mixed input dtypes, f32 output; big tensor crossing chunk boundaries */
    int n = 5000;
    float *x = malloc(n * 4), *y = malloc(n * 4), *o = malloc(n * 4);
    uint16_t *yh = malloc(n * 2);
    for (int i = 0; i < n; i++) { x[i] = i * 0.5f; y[i] = (float)(n - i); }
    st_from_f32(yh, y, ST_F16, n);
    const void *in2[2] = {x, yh};
    st_dtype dt2[2] = {ST_F32, ST_F16};
    CHECK(layer_merge_tensor(o, ST_F32, in2, dt2, 2, n, LMERGE_RDSC, &e) == 0);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += o[i] != x[i] + (f16_to_f32(yh[i]) - x[i]);
    CHECK(bad == 0);
    st_dtype dt3[2] = {ST_F32, ST_I32};
    CHECK(layer_merge_tensor(o, ST_F32, in2, dt3, 2, n, LMERGE_RDSC, &e) == -1);
    free(x); free(y); free(o); free(yh);
}

static const char *put(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/test_layers.%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_scores(void) {
    lop_scores s; lop_err e; int *d;
    const char *p = put("{\"layer\":0,\"metric\":\"bi\",\"score\":0.5}\n\n{\"layer\":1,\"metric\":\"bi\",\"score\":0.2}\n"
                        "{\"layer\":2,\"metric\":\"bi\",\"score\":0.2}\n{\"layer\":3,\"metric\":\"bi\",\"score\":0.9}\n"
                        "{\"metric\":\"bi\",\"samples\":3}\n");
    CHECK(layer_scores_read(&s, p, 4, &e) == 0 && !strcmp(s.metric, "bi"));
    CHECK(layer_scores_pick(&s, 1, &d, &e) == 0 && d[0] == 2);   /* tie: the later layer */
    free(d);
    CHECK(layer_scores_pick(&s, 3, &d, &e) == 0 && d[0] == 0 && d[1] == 1 && d[2] == 2);
    free(d);
    CHECK(layer_scores_pick(&s, 5, &d, &e) == -1);
    layer_scores_free(&s);
    CHECK(layer_scores_read(&s, p, 3, &e) == -1 && strstr(e.msg, ":5:"));   /* layer 3 of 3 */
    p = put("{\"layer\":0,\"metric\":\"bi\",\"score\":0.5}\n{\"layer\":1,\"metric\":\"kl\",\"score\":0.2}\n");
    CHECK(layer_scores_read(&s, p, 4, &e) == -1 && strstr(e.msg, "mixed"));
    p = put("{\"layer\":0,\"score\":\"x\"}\n");
    CHECK(layer_scores_read(&s, p, 4, &e) == -1 && strstr(e.msg, "score"));
    p = put("{\"layer\":1.5,\"score\":1}\n");
    CHECK(layer_scores_read(&s, p, 4, &e) == -1);
    p = put("[1,2]\n");
    CHECK(layer_scores_read(&s, p, 4, &e) == -1 && strstr(e.msg, ":1:"));
    p = put("{\"note\":1}\n");
    CHECK(layer_scores_read(&s, p, 4, &e) == -1 && strstr(e.msg, "no scores"));
    p = put("{\"start\":0,\"n\":2,\"score\":0.3}\n{\"start\":1,\"n\":2,\"score\":0.1}\n{\"start\":1,\"n\":3,\"score\":0.0}\n");
    CHECK(layer_scores_read(&s, p, 4, &e) == 0 && s.n_blocks == 3);
    CHECK(layer_scores_pick(&s, 2, &d, &e) == 0 && d[0] == 1 && d[1] == 2);
    free(d);
    CHECK(layer_scores_pick(&s, 1, &d, &e) == -1);
    layer_scores_free(&s);
    p = put("{\"start\":3,\"n\":2,\"score\":0.3}\n");
    CHECK(layer_scores_read(&s, p, 4, &e) == -1);
    unlink(p);
}

int main(void) {
    test_names();
    test_maps();
    test_plan();
    test_merge_math();
    test_scores();
    if (fails) printf("test_layers: %d failures\n", fails);
    return fails != 0;
}
