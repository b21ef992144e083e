/* tok_json_fuzz.c — libFuzzer target for the tokenizer loader: tokenizer.json (models, vocab,
 * merges, added tokens, normalizers, pre-tokenizers and their PCRE2 regexes, decoders,
 * post-processors, byte fallback) and tokenizer_config.json.
 * Input: tokenizer.json [FZ_SEP tokenizer_config.json [FZ_SEP text]].
 * Checks beyond "no crash", for a tokenizer that loads:
 *   - every id encode returns is in [0, vocab) and names a token;
 *   - encode is deterministic (two calls give the same ids);
 *   - with add_special and a tokenizer that adds BOS, the first id is BOS;
 *   - decode accepts every id list encode produced, and any in-range ids at all (with and
 *     without skip_special), returning a NUL-terminated string of the length it reports;
 *   - tok_token_id(tok_token(i)) names a token with the same string (the vocabulary's map and
 *     table agree) for the first ids.
 * Hangs count: a regex that backtracks catastrophically must fail fast (PCRE2 limits). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "tokenizer.h"
#include "utf8.h"

static void check_encode(const lop_tokenizer *t, const char *s, size_t n, int add_special) {
    int32_t *ids = NULL, *ids2 = NULL;
    size_t k = 0, k2 = 0;
    lop_err e;
    int V = tok_vocab_size(t);
    if (tok_encode(t, s, n, add_special, &ids, &k, &e)) return;   /* errors are fine */
    for (size_t i = 0; i < k; i++) {
        FZ_CHECK(ids[i] >= 0 && ids[i] < V, "id %d of %zu outside [0, %d)", ids[i], i, V);
        FZ_CHECK(tok_token(t, ids[i]) != NULL, "id %d has no token string", ids[i]);
    }
    FZ_CHECK(tok_encode(t, s, n, add_special, &ids2, &k2, &e) == 0, "second encode failed: %s", e.msg);
    FZ_CHECK(k == k2 && (!k || !memcmp(ids, ids2, k * sizeof *ids)), "encode is not deterministic");
    if (add_special && tok_adds_bos(t)) FZ_CHECK(k > 0 && ids[0] == tok_bos(t), "no BOS first");
    for (int skip = 0; skip < 2; skip++) {
        char *out = NULL; size_t len = 0;
        FZ_CHECK(tok_decode(t, ids, k, skip, &out, &len, &e) == 0, "decode of encoded ids failed: %s", e.msg);
        FZ_CHECK(strlen(out) <= len && out[len] == 0, "decode length");
        free(out);
    }
    free(ids); free(ids2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[3]; size_t len[3];
    int np = fz_split(data, size, part, len, 3);
    fz_write("tokenizer.json", part[0], len[0]);
    if (np > 1) fz_write("tokenizer_config.json", part[1], len[1]);
    else unlink(fz_path("tokenizer_config.json"));
    lop_tokenizer *t;
    lop_err e;
    if (tok_load(&t, fz_dir(), &e)) return 0;
    int V = tok_vocab_size(t);
    FZ_CHECK(V >= 0, "vocab %d", V);
    static const char fixed[] = "Hello, world! It's 2024:  x\n\n\ty\xc3\xa9\xe2\x80\x94\xe4\xb8\xad\xf0\x9f\x98\x80 <s></s><|endoftext|>";
    for (int a = 0; a < 2; a++) check_encode(t, fixed, sizeof fixed - 1, a);
    if (np > 2) for (int a = 0; a < 2; a++) check_encode(t, (const char *)part[2], len[2], a);
    /* decode arbitrary in-range ids: the input's bytes as ids */
    if (V > 0) {
        size_t k = len[0] < 64 ? len[0] : 64;
        int32_t ids[64];
        for (size_t i = 0; i < k; i++) ids[i] = (int32_t)(((uint32_t)part[0][i] * 2654435761u) % (uint32_t)V);
        for (int skip = 0; skip < 2; skip++) {
            char *out = NULL; size_t l;
            if (tok_decode(t, ids, k, skip, &out, &l, &e) == 0) { FZ_CHECK(out[l] == 0, "decode NUL"); free(out); }
        }
    }
    for (int32_t i = 0; i < V && i < 300; i++) {
        const char *s = tok_token(t, i);
        if (!s) continue;
        int32_t j = tok_token_id(t, s, strlen(s));
        /* (a token with a NUL byte is not found by its C string: j < 0 is allowed) */
        FZ_CHECK(j < 0 || (tok_token(t, j) && !strcmp(tok_token(t, j), s)), "token %d '%s' maps back to %d", i, s, j);
    }
    tok_free(t);
    return 0;
}
