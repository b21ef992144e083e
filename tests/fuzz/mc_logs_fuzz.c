/* mc_logs_fuzz.c — libFuzzer target for model-card's log reader (cmd/model-card/logs.c: the JSON
 * lines every lop tool prints, lm-eval results files) and the card rendered from them.
 * Input: up to three logs separated by FZ_SEP, read as stages "base", "pruned" and "healed".
 * Checks: the card renders; rendering is deterministic (the same logs give the same bytes) and
 * the card holds no NUL byte. */
// fuzz-sources: cmd/model-card/logs.c cmd/model-card/card.c cmd/model-card/folder.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "card.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[3]; size_t len[3];
    int np = fz_split(data, size, part, len, 3);
    static const char *labels[3] = {"base", "pruned", "healed"};
    static char args[3][600];
    mc_logs L;
    logs_init(&L);
    lop_err e;
    for (int i = 0; i < np; i++) {
        char name[32];
        snprintf(name, sizeof name, "log%d.jsonl", i);
        const char *p = fz_write(name, part[i], len[i]);
        snprintf(args[i], sizeof args[i], "%s=%s", labels[i], p);
        if (logs_read(&L, args[i], &e)) { logs_free(&L); return 0; }
    }
    mc_arch base, model;
    memset(&base, 0, sizeof base);
    snprintf(base.path, sizeof base.path, "base-model");
    snprintf(base.model_type, sizeof base.model_type, "llama");
    snprintf(base.architecture, sizeof base.architecture, "LlamaForCausalLM");
    base.n_layers = 8; base.hidden = 64; base.inter = 256; base.n_heads = 4; base.n_kv_heads = 2;
    base.head_dim = 16; base.vocab = 512; base.tied = 1; base.params = 123456;
    model = base;
    model.n_layers = 6; model.params = 100000;
    mc_card_opts o = {.name = "fuzz-model", .base_id = "org/base", .base = &base, .model = size & 1 ? &model : NULL};
    sbuf a = {0}, b = {0};
    card_render(&a, &L, &o);
    card_render(&b, &L, &o);
    FZ_CHECK(a.len == b.len && !memcmp(a.s, b.s, a.len), "rendering twice differs");
    FZ_CHECK(!memchr(a.s, 0, a.len), "a NUL byte in the card");
    sb_free(&a); sb_free(&b);
    logs_free(&L);
    return 0;
}
