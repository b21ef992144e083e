/* kd_cache_fuzz.c — libFuzzer target for kd-train's teacher cache reader (libcommon/kd_cache.c:
 * header JSON, zstd vocabulary section, block index, trailer, zstd block frames).
 * Input: a whole cache file.
 * Checks, for a cache that opens and whose blocks all read:
 *   - every block is consistent (nscored = targets >= 0, top-k ids ascending in [0, vocab));
 *   - written back with the writer (same vocab, k, temperature, caller keys, vocabulary, blocks)
 *     it reads back identically: header values, tokens, every block bit for bit;
 *   - written back once more, the file is byte-identical (the writer is deterministic).
 * LOP_FUZZ_WRITE_SEEDS=DIR: write a few valid caches into DIR and exit (seeds). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "fuzz_util.h"
#include "kd_cache.h"

#define MAXB 32

static void write_seed(const char *path, int V, int k, int nblocks, int T, int vocab, uint32_t seed) {
    const char *toks[64];
    char names[64][8];
    for (int i = 0; i < 64; i++) { snprintf(names[i], 8, "t%d", i); toks[i] = names[i]; }
    kd_cache_w *w; lop_err e;
    if (kdc_create(&w, path, V, k, 1.5, "{\"teacher\":\"x\",\"seq_len\":8,\"seed\":1}", vocab ? toks : NULL,
                   vocab ? (V < 64 ? V : 64) : 0, 3, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
    uint32_t r = seed;
    for (int b = 0; b < nblocks; b++) {
        int32_t ids[16], tg[16], tk[16 * 16]; float lp[16 * 16], tail[16];
        int ns = 0;
        for (int t = 0; t < T; t++) {
            r = r * 1664525u + 1013904223u;
            ids[t] = (int32_t)(r % (uint32_t)V);
            tg[t] = (r >> 8) % 4 ? (int32_t)((r >> 12) % (uint32_t)V) : -1;
            if (tg[t] < 0) continue;
            for (int j = 0; j < k; j++) { tk[ns * k + j] = j * (V / k); lp[ns * k + j] = -0.5f * (float)j - 0.1f; }
            tail[ns] = -2.0f - (float)ns; ns++;
        }
        if (kdc_put(w, T, ids, tg, tk, lp, tail, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
    }
    if (kdc_finish(w, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *d = getenv("LOP_FUZZ_WRITE_SEEDS");
    if (!d) return 0;
    char p[600];
    snprintf(p, sizeof p, "%s/kd1.cache", d); write_seed(p, 50, 4, 3, 8, 1, 1);
    snprintf(p, sizeof p, "%s/kd2.cache", d); write_seed(p, 16, 16, 2, 5, 0, 2);
    snprintf(p, sizeof p, "%s/kd3.cache", d); write_seed(p, 1000, 1, 1, 16, 1, 3);
    snprintf(p, sizeof p, "%s/kd4.cache", d); write_seed(p, 7, 3, 0, 1, 1, 4);
    exit(0);
}

/* the caller's keys of a header (everything the writer adds itself removed) */
static char *caller_meta(const char *meta) {
    cJSON *j = cJSON_Parse(meta);
    if (!cJSON_IsObject(j)) { cJSON_Delete(j); return NULL; }
    static const char *own[] = {"format", "version", "vocab", "k", "temperature", "tokenizer_size"};
    for (int i = 0; i < 6; i++)
        while (cJSON_GetObjectItem(j, own[i])) cJSON_DeleteItemFromObject(j, own[i]);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* c -> path; 0 ok, -1 if the writer refuses (then the cache is outside what lop writes) */
static int rewrite(kd_cache *c, const kdc_block *blk, int nb, const char *path) {
    char *meta = caller_meta(kdc_meta(c));
    FZ_CHECK(meta != NULL, "header of an opened cache does not parse");
    int ntok;
    const char *const *toks = kdc_tokens(c, &ntok);
    kd_cache_w *w; lop_err e;
    int rc = kdc_create(&w, path, kdc_vocab(c), kdc_k(c), kdc_temperature(c), meta, toks, ntok, 1, &e);
    free(meta);
    FZ_CHECK(rc == 0, "writer refuses what the reader accepted: %s", e.msg);
    for (int b = 0; b < nb; b++)
        FZ_CHECK(kdc_put(w, blk[b].T, blk[b].ids, blk[b].targets, blk[b].topk_ids, blk[b].topk_lp, blk[b].tail, &e) == 0,
                 "writer refuses block %d: %s", b, e.msg);
    FZ_CHECK(kdc_finish(w, &e) == 0, "finish: %s", e.msg);
    return 0;
}

static void same_block(const kdc_block *a, const kdc_block *b, int g) {
    FZ_CHECK(a->T == b->T && a->nscored == b->nscored && a->k == b->k, "block %d: sizes", g);
    size_t nk = (size_t)a->nscored * a->k;
    FZ_CHECK(!memcmp(a->ids, b->ids, 4 * (size_t)a->T) && !memcmp(a->targets, b->targets, 4 * (size_t)a->T),
             "block %d: ids/targets", g);
    FZ_CHECK(!memcmp(a->topk_ids, b->topk_ids, 4 * nk) && !memcmp(a->topk_lp, b->topk_lp, 4 * nk) &&
             !memcmp(a->tail, b->tail, 4 * (size_t)a->nscored), "block %d: top-k", g);
}

static uint8_t *slurp(const char *p, size_t *n) {
    char *b; lop_err e;
    if (fs_read_all(p, &b, n, &e)) abort();
    return (uint8_t *)b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_write("in.cache", data, size);
    kd_cache *c; lop_err e;
    if (kdc_open(&c, path, &e)) return 0;
    int64_t n = kdc_blocks(c);
    int nb = n < MAXB ? (int)n : MAXB, ok = 1;
    kdc_block blk[MAXB];
    memset(blk, 0, sizeof blk);
    for (int g = 0; g < nb && ok; g++) {
        if (kdc_read(c, g, &blk[g], &e)) { ok = 0; break; }
        const kdc_block *b = &blk[g];
        int sc = 0;
        for (int t = 0; t < b->T; t++) sc += b->targets[t] >= 0;
        FZ_CHECK(sc == b->nscored && b->k == kdc_k(c), "block %d: %d scored, %d counted", g, b->nscored, sc);
        for (size_t i = 0; i < (size_t)b->nscored; i++)
            for (int j = 0; j < b->k; j++) {
                int32_t id = b->topk_ids[i * b->k + j];
                FZ_CHECK(id >= 0 && id < kdc_vocab(c) && (!j || id > b->topk_ids[i * b->k + j - 1]), "block %d: top-k id %d", g, id);
            }
    }
    if (ok && n == nb) {
        const char *p2 = fz_path("out2.cache"), *p3 = fz_path("out3.cache");
        rewrite(c, blk, nb, p2);
        kd_cache *c2;
        FZ_CHECK(kdc_open(&c2, p2, &e) == 0, "rewritten cache does not open: %s", e.msg);
        FZ_CHECK(kdc_vocab(c2) == kdc_vocab(c) && kdc_k(c2) == kdc_k(c) && kdc_temperature(c2) == kdc_temperature(c) &&
                 kdc_blocks(c2) == n, "rewritten header differs");
        int n1, n2;
        const char *const *t1 = kdc_tokens(c, &n1), *const *t2 = kdc_tokens(c2, &n2);
        FZ_CHECK(n1 == n2, "tokens %d vs %d", n1, n2);
        for (int i = 0; i < n1; i++) FZ_CHECK(!strcmp(t1[i], t2[i]), "token %d differs", i);
        kdc_block b2 = {0};
        for (int g = 0; g < nb; g++) {
            FZ_CHECK(kdc_read(c2, g, &b2, &e) == 0, "rewritten block %d: %s", g, e.msg);
            same_block(&blk[g], &b2, g);
            blk[g] = (kdc_block){.buf = blk[g].buf}; /* keep the buffer for freeing */
        }
        /* once more from the rewritten cache: the same bytes */
        kdc_block bb[MAXB];
        memset(bb, 0, sizeof bb);
        for (int g = 0; g < nb; g++) FZ_CHECK(kdc_read(c2, g, &bb[g], &e) == 0, "reread");
        rewrite(c2, bb, nb, p3);
        size_t l2, l3;
        uint8_t *a = slurp(p2, &l2), *b = slurp(p3, &l3);
        FZ_CHECK(l2 == l3 && !memcmp(a, b, l2), "rewriting twice gives different bytes");
        free(a); free(b);
        for (int g = 0; g < nb; g++) kdc_block_free(&bb[g]);
        kdc_block_free(&b2);
        kdc_close(c2);
    }
    for (int g = 0; g < nb; g++) kdc_block_free(&blk[g]);
    kdc_close(c);
    return 0;
}
