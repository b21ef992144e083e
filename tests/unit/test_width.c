/* test_width.c — width pruning: top-k and ties, GQA head choice, counts checks, weight statistics
 * (OptiPFair's maw/vow/pon by rows and columns), tensor specs and slicing, Gemma's rescale, config. */
#include "width.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"


static const char *CFG =
    "{\"model_type\":\"qwen3\",\"vocab_size\":10,\"hidden_size\":4,\"intermediate_size\":6,"
    "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":2}";

static void test_topk(void) {
    lop_err e;
    double s[] = {1, 3, 3, 0, NAN, 2};
    int k[4];
    CHECK(width_topk(s, 6, 3, k, &e) == 0 && k[0] == 1 && k[1] == 2 && k[2] == 5);
    CHECK(width_topk(s, 6, 4, k, &e) == 0 && k[0] == 0 && k[3] == 5);   /* NaN is the lowest */
    double t[] = {5, 5, 5};
    CHECK(width_topk(t, 3, 2, k, &e) == 0 && k[0] == 0 && k[1] == 1);   /* ties: lower index */
    CHECK(width_topk(t, 3, 4, k, &e) == -1);
}

static void test_init_heads(void) {
    lop_config c; lop_err e; lop_width w;
    CHECK(config_parse(&c, CFG, &e) == 0);
    CHECK(width_init(&w, &c, 0, 0, 3, 0, &e) == -1 && e.code == LOP_EUSAGE);   /* 3 over 2 groups */
    CHECK(width_init(&w, &c, 0, 7, 0, 0, &e) == -1 && e.code == LOP_EUSAGE);
    CHECK(width_init(&w, &c, 5, 0, 0, 0, &e) == -1 && e.code == LOP_EUSAGE);
    CHECK(width_init(&w, &c, 0, 0, 4, 1, &e) == -1 && e.code == LOP_EUSAGE);   /* 4 in 1 group of 2 */
    CHECK(width_init(&w, &c, 0, 0, 2, 0, &e) == 0 && w.nq == 2 && w.nkv == 2 && w.mlp[0] && !w.qh[0]);
    double qs[] = {1, 2, 4, 3};
    int q[2], kv[2];
    CHECK(width_pick_heads(&w, qs, q, kv, &e) == 0 && q[0] == 1 && q[1] == 2 && kv[0] == 0 && kv[1] == 1);
    width_free(&w);
    CHECK(width_init(&w, &c, 0, 0, 0, 1, &e) == 0 && w.nq == 2 && w.nkv == 1);  /* a whole group */
    CHECK(width_pick_heads(&w, qs, q, kv, &e) == 0 && kv[0] == 1 && q[0] == 2 && q[1] == 3);
    width_free(&w);
    config_free(&c);
}

static void test_stat(void) {
    lop_err e;
    float m[6] = {1, -2, 3, -4, 5, -6};   /* 2 x 3 */
    double r[2] = {0}, cl[3] = {0};
    CHECK(width_stat(WIDTH_MAW, m, ST_F32, 2, 3, 0, r, &e) == 0 && r[0] == 5 && r[1] == 11);
    CHECK(width_stat(WIDTH_MAW, m, ST_F32, 2, 3, 1, cl, &e) == 0 && cl[0] == 5 && cl[1] == 7 && cl[2] == 9);
    memset(r, 0, sizeof r); memset(cl, 0, sizeof cl);
    CHECK(width_stat(WIDTH_PON, m, ST_F32, 2, 3, 0, r, &e) == 0 && r[0] == 6 && r[1] == 15);
    CHECK(width_stat(WIDTH_PON, m, ST_F32, 2, 3, 1, cl, &e) == 0 && cl[0] == 5 && cl[2] == 9);
    memset(r, 0, sizeof r); memset(cl, 0, sizeof cl);
    /* row 0: mean 2/3, var (n-1) = ((1/3)^2 + (8/3)^2 + (7/3)^2)/2 = 19/3 */
    CHECK(width_stat(WIDTH_VOW, m, ST_F32, 2, 3, 0, r, &e) == 0 && fabs(r[0] - 19.0 / 3) < 1e-12);
    CHECK(width_stat(WIDTH_VOW, m, ST_F32, 2, 3, 1, cl, &e) == 0 && fabs(cl[0] - 12.5) < 1e-12);
}

static void test_slice(void) {
    lop_config c; lop_err e; lop_width w;
    CHECK(config_parse(&c, CFG, &e) == 0);
    CHECK(width_init(&w, &c, 3, 4, 2, 0, &e) == 0);
    for (int l = 0; l < 2; l++) {
        w.mlp[l] = malloc(4 * sizeof(int)); w.qh[l] = malloc(2 * sizeof(int)); w.kvh[l] = malloc(2 * sizeof(int));
        int mk[] = {0, 2, 3, 5}, qk[] = {1, 2}, kk[] = {0, 1};
        memcpy(w.mlp[l], mk, sizeof mk); memcpy(w.qh[l], qk, sizeof qk); memcpy(w.kvh[l], kk, sizeof kk);
    }
    free(w.hid);
    w.hid = malloc(3 * sizeof(int));
    w.hid[0] = 0; w.hid[1] = 1; w.hid[2] = 3;
    st_info t = {.name = "model.layers.1.self_attn.o_proj.weight", .dtype = ST_F32, .ndim = 2, .shape = {4, 8}};
    t.nbytes = 4 * 8 * 4;
    lop_wspec s;
    CHECK(width_tensor_spec(&w, &c, &t, &s, &e) == 0 && s.layer == 1 && s.sel[0] == WSEL_HIDDEN && s.sel[1] == WSEL_QHEADS && s.needs_heads);
    st_info o;
    width_out_info(&w, &t, &s, &o);
    CHECK(o.shape[0] == 3 && o.shape[1] == 4 && o.nbytes == 48);
    float in[32], out[12];
    for (int i = 0; i < 32; i++) in[i] = (float)i;
    CHECK(width_slice(&w, &t, &s, in, out, 1.0, &e) == 0);
    /* rows 0,1,3; columns of heads 1,2 (D = 2): 2,3,4,5 */
    float want[12] = {2, 3, 4, 5, 10, 11, 12, 13, 26, 27, 28, 29};
    CHECK(!memcmp(out, want, sizeof want));
    st_info bad = t;
    bad.shape[1] = 7;
    CHECK(width_tensor_spec(&w, &c, &bad, &s, &e) == -1 && strstr(e.msg, "o_proj"));
    st_info odd = {.name = "extra.proj", .dtype = ST_F32, .ndim = 2, .shape = {4, 9}};
    CHECK(width_tensor_spec(&w, &c, &odd, &s, &e) == -1 && e.code == LOP_EUSAGE);   /* hidden-sized dim */
    CHECK(width_config_apply(&c, &w, &e) == 0);
    char *js = config_to_json(&c);
    CHECK(js && strstr(js, "\"hidden_size\": 3") && strstr(js, "\"intermediate_size\": 4") &&
          strstr(js, "\"num_attention_heads\": 2") && strstr(js, "\"head_dim\": 2"));
    free(js);
    width_free(&w);
    config_free(&c);
}

static void test_gemma_scale(void) {
    const char *g = "{\"model_type\":\"gemma3_text\",\"vocab_size\":2,\"hidden_size\":4,\"intermediate_size\":4,"
                    "\"num_hidden_layers\":1,\"num_attention_heads\":1,\"num_key_value_heads\":1,\"head_dim\":2}";
    lop_config c; lop_err e; lop_width w;
    CHECK(config_parse(&c, g, &e) == 0 && c.tied);
    CHECK(width_init(&w, &c, 1, 0, 0, 0, &e) == 0);
    w.hid = malloc(sizeof(int));
    w.hid[0] = 2;
    CHECK(fabs(width_gemma_scale(&w) - 2.0) < 1e-15);
    st_info emb = {.name = "model.embed_tokens.weight", .dtype = ST_F32, .ndim = 2, .shape = {2, 4}, .nbytes = 32};
    st_info nrm = {.name = "model.norm.weight", .dtype = ST_F32, .ndim = 1, .shape = {4}, .nbytes = 16};
    lop_wspec s;
    float in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[2];
    CHECK(width_tensor_spec(&w, &c, &emb, &s, &e) == 0 && s.op == WOP_EMBED_SCALE);
    CHECK(width_slice(&w, &emb, &s, in, out, 2.0, &e) == 0 && out[0] == 6 && out[1] == 14);
    CHECK(width_tensor_spec(&w, &c, &nrm, &s, &e) == 0 && s.op == WOP_GEMMA_FINAL_NORM);
    CHECK(width_slice(&w, &nrm, &s, in, out, 2.0, &e) == 0 && out[0] == 1);   /* (1+3)/2 - 1 */
    width_free(&w);
    config_free(&c);
}

int main(void) {
    test_topk();
    test_init_heads();
    test_stat();
    test_slice();
    test_gemma_scale();
    if (fails) { printf("%d checks failed\n", fails); return 1; }
    printf("test_width: ok\n");
    return 0;
}
