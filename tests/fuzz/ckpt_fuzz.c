/* ckpt_fuzz.c — libFuzzer target for training checkpoints (heal-sft / kd-train --resume:
 * DIR/state.safetensors with float32 values and AdamW states, DIR/state.json), loaded into a
 * small Llama model built at start-up, trained in full or through LoRA adapters.
 * Input: byte 0 (bit 0: the LoRA model), then state.safetensors FZ_SEP state.json.
 * Checks, for a checkpoint that loads:
 *   - state.json comes back as written;
 *   - saving the loaded state and loading it into the zeroed model gives the same values bit for
 *     bit; saving again gives the same state.safetensors bytes.
 * LOP_FUZZ_WRITE_SEEDS=DIR: write valid checkpoints of both models into DIR and exit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "train.h"

static tr_model *models[2];

static const char CONFIG[] =
    "{\"model_type\":\"llama\",\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":16,"
    "\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":2,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"max_position_embeddings\":64,\"rms_norm_eps\":1e-5,"
    "\"tie_word_embeddings\":true,\"bos_token_id\":1,\"eos_token_id\":2}";

static void make_model(const char *dir) {
    const char *names[] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                           "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                           "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight"};
    int64_t shapes[9][2] = {{8, 8}, {4, 8}, {4, 8}, {8, 8}, {16, 8}, {16, 8}, {8, 16}, {8, 0}, {8, 0}};
    st_info inf[2 + 2 * 9];
    char nm[2 + 2 * 9][96];
    int n = 0;
    #define ADD(NM, r, c) do { snprintf(nm[n], 96, "%s", NM); inf[n] = (st_info){.name = nm[n], .dtype = ST_F32, \
        .ndim = (c) ? 2 : 1, .shape = {r, c}, .nbytes = (uint64_t)(r) * ((c) ? (c) : 1) * 4}; n++; } while (0)
    ADD("model.embed_tokens.weight", 16, 8);
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 9; k++) {
            char full[96];
            snprintf(full, sizeof full, "model.layers.%d.%s", l, names[k]);
            ADD(full, shapes[k][0], shapes[k][1]);
        }
    ADD("model.norm.weight", 8, 0);
    st_writer *w; lop_err e;
    st_write_opts o = {0, 0};
    if (st_writer_open(&w, dir, inf, n, CONFIG, NULL, &o, &e)) { fprintf(stderr, "%s\n", e.msg); exit(2); }
    float buf[256];
    for (int i = 0; i < 256; i++) buf[i] = 0.01f * (float)((i * 37) % 101) - 0.5f;
    for (int i = 0; i < n; i++) if (st_writer_put(w, i, buf, &e)) { fprintf(stderr, "%s\n", e.msg); exit(2); }
    if (st_writer_finish(w, &e)) { fprintf(stderr, "%s\n", e.msg); exit(2); }
}

static void fill(tr_model *m, float base) {
    for (int i = 0; i < m->np; i++) {
        tr_param *p = &m->p[i];
        if (!p->trainable) continue;
        for (size_t j = 0; j < p->n; j++) { p->w[j] = base + 0.001f * (float)j; p->m[j] = -0.5f * base; p->v[j] = 0.25f; }
    }
}

static void write_seed(const char *out, int which) {
    const char *ck = fz_path("seedck");
    lop_err e;
    fill(models[which], 0.1f * (float)(which + 1));
    if (tr_ckpt_save(models[which], ck, "{\"step\": 3, \"data_block\": 12, \"rng\": [1, 2]}", &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
    char p[600], *st, *js; size_t ls, lj;
    snprintf(p, sizeof p, "%s/state.safetensors", ck);
    if (fs_read_all(p, &st, &ls, &e)) exit(1);
    snprintf(p, sizeof p, "%s/state.json", ck);
    if (fs_read_all(p, &js, &lj, &e)) exit(1);
    FILE *f = fopen(out, "wb");
    uint8_t b0 = (uint8_t)which;
    fwrite(&b0, 1, 1, f); fwrite(st, 1, ls, f); fwrite(FZ_SEP, 1, sizeof FZ_SEP - 1, f); fwrite(js, 1, lj, f);
    fclose(f);
    free(st); free(js);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *dir = fz_path("model");
    make_model(dir);
    lop_err e;
    tr_opts full = TR_OPTS_DEFAULT, lora = TR_OPTS_DEFAULT;
    lora.lora_rank = 2;
    if (tr_open(&models[0], dir, &full, 1, &e) || tr_open(&models[1], dir, &lora, 1, &e)) {
        fprintf(stderr, "ckpt_fuzz: %s\n", e.msg); exit(2);
    }
    const char *d = getenv("LOP_FUZZ_WRITE_SEEDS");
    if (d) {
        char p[600];
        snprintf(p, sizeof p, "%s/full.ckpt", d); write_seed(p, 0);
        snprintf(p, sizeof p, "%s/lora.ckpt", d); write_seed(p, 1);
        exit(0);
    }
    return 0;
}

static float *snapshot(const tr_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->np; i++) if (m->p[i].trainable) n += 3 * m->p[i].n;
    float *s = malloc(4 * (n ? n : 1)), *q = s;
    for (int i = 0; i < m->np; i++) {
        const tr_param *p = &m->p[i];
        if (!p->trainable) continue;
        memcpy(q, p->w, 4 * p->n); q += p->n;
        memcpy(q, p->m, 4 * p->n); q += p->n;
        memcpy(q, p->v, 4 * p->n); q += p->n;
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    tr_model *m = models[data[0] & 1];
    const uint8_t *part[2]; size_t len[2];
    int np = fz_split(data + 1, size - 1, part, len, 2);
    const char *ck = fz_path("ck");
    mkdir(ck, 0755);
    fz_write("ck/state.safetensors", part[0], len[0]);
    if (np > 1) fz_write("ck/state.json", part[1], len[1]);
    else unlink(fz_path("ck/state.json"));
    char *js = NULL;
    lop_err e;
    if (tr_ckpt_load(m, ck, &js, &e)) return 0;
    FZ_CHECK(np > 1 && !memcmp(js, part[1], len[1]) && js[len[1]] == 0, "state.json changed on the way");
    size_t n = 0;
    for (int i = 0; i < m->np; i++) if (m->p[i].trainable) n += 3 * m->p[i].n;
    float *snap = snapshot(m);
    const char *c2 = fz_path("ck2"), *c3 = fz_path("ck3");
    FZ_CHECK(tr_ckpt_save(m, c2, js, &e) == 0, "save: %s", e.msg);
    fill(m, 0);
    char *js2 = NULL;
    FZ_CHECK(tr_ckpt_load(m, c2, &js2, &e) == 0, "a saved checkpoint does not load: %s", e.msg);
    float *snap2 = snapshot(m);
    FZ_CHECK(!memcmp(snap, snap2, 4 * n) && !strcmp(js, js2), "values or state differ after save + load");
    FZ_CHECK(tr_ckpt_save(m, c3, js2, &e) == 0, "save 2: %s", e.msg);
    char p2[600], p3[600], *a, *b; size_t la, lb;
    snprintf(p2, sizeof p2, "%s/state.safetensors", c2);
    snprintf(p3, sizeof p3, "%s/state.safetensors", c3);
    FZ_CHECK(fs_read_all(p2, &a, &la, &e) == 0 && fs_read_all(p3, &b, &lb, &e) == 0, "read back");
    FZ_CHECK(la == lb && !memcmp(a, b, la), "saving twice gives different bytes");
    free(a); free(b); free(snap); free(snap2); free(js); free(js2);
    return 0;
}
