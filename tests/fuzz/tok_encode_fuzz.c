/* tok_encode_fuzz.c — libFuzzer target for the tokenizer's encode path on arbitrary bytes, with
 * real tokenizers (what lm-tok, ppl, lm-eval and the trainers do with a stranger's text).
 * Tokenizers: LOP_FUZZ_TOKENIZERS="PATH=MODE:PATH=MODE..." (tools/fuzz.sh sets it from
 * ../shared), MODE saying what decode(encode(text)) must give back for valid UTF-8 text:
 *   exact     the text itself (byte-level BPE without a normalizer: Llama 3)
 *   nfc       the text in NFC (Qwen2/3: an NFC normalizer)
 *   space     the text with U+2581 read as a space (SentencePiece-style without a prefix: Gemma 3)
 *   sp        as space, less one leading space (Llama 2 as transformers 5 loads it: Metaspace
 *             prepends U+2581 only to a text that does not start with one, and the decoder
 *             strips one: "  x" comes back as " x", exactly as Hugging Face does)
 *   none      no round trip (only the checks below)
 * Input: byte 0 picks the tokenizer (low bits), lossy (bit 6) and add_special (bit 7); the rest
 * is the text. Checks:
 *   - valid UTF-8 always encodes (every tokenizer here has byte fallback or byte-level), ids in
 *     [0, vocab), and round-trips as MODE says (skip_special off) unless it holds a special
 *     token's text;
 *   - invalid UTF-8 fails without --lossy, naming the offset of the first bad byte; with
 *     --lossy (utf8_lossy, as lm-tok does) it encodes, and the repaired text round-trips. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "fuzz_util.h"
#include "tokenizer.h"
#include "utf8.h"

enum { M_NONE, M_EXACT, M_NFC, M_SPACE, M_SP };
static lop_tokenizer *toks[8];
static int modes[8], ntok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *env = getenv("LOP_FUZZ_TOKENIZERS");
    if (!env || !*env) { fprintf(stderr, "tok_encode_fuzz: set LOP_FUZZ_TOKENIZERS=PATH=MODE:...\n"); exit(2); }
    char *s = strdup(env), *save = NULL;
    for (char *it = strtok_r(s, ":", &save); it && ntok < 8; it = strtok_r(NULL, ":", &save)) {
        char *eq = strrchr(it, '=');
        int mode = M_NONE;
        if (eq) {
            *eq = 0;
            mode = !strcmp(eq + 1, "exact") ? M_EXACT : !strcmp(eq + 1, "nfc") ? M_NFC
                 : !strcmp(eq + 1, "space") ? M_SPACE : !strcmp(eq + 1, "sp") ? M_SP : M_NONE;
        }
        lop_err e;
        if (tok_load(&toks[ntok], it, &e)) { fprintf(stderr, "tok_encode_fuzz: %s\n", e.msg); exit(2); }
        modes[ntok++] = mode;
    }
    free(s);
    if (!ntok) exit(2);
    return 0;
}

/* what decode(encode(s)) must give (malloc'd), NULL: no expectation */
static char *expected(int mode, const char *s, size_t n, size_t *outn) {
    if (mode == M_EXACT) { *outn = n; return fz_strndup((const uint8_t *)s, n); }
    if (mode == M_NFC) {
        utf8proc_uint8_t *d = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &d,
                                          UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (r < 0) return NULL;
        *outn = (size_t)r;
        return (char *)d;
    }
    if (mode == M_SPACE || mode == M_SP) {
        char *o = malloc(n + 1);
        size_t k = 0, i = 0;
        if (mode == M_SP) {   /* one leading space (or U+2581) is lost */
            if (n >= 1 && s[0] == ' ') i = 1;
            else if (n >= 3 && !memcmp(s, "\xe2\x96\x81", 3)) i = 3;
        }
        while (i < n) {
            if (i + 3 <= n && !memcmp(s + i, "\xe2\x96\x81", 3)) { o[k++] = ' '; i += 3; }
            else o[k++] = s[i++];
        }
        o[k] = 0; *outn = k;
        return o;
    }
    return NULL;
}

static void round_trip(int ti, const char *s, size_t n, int add_special) {
    const lop_tokenizer *t = toks[ti];
    int32_t *ids = NULL; size_t k = 0;
    lop_err e;
    FZ_CHECK(tok_encode(t, s, n, add_special, &ids, &k, &e) == 0, "valid UTF-8 did not encode: %s", e.msg);
    int V = tok_vocab_size(t), special = 0;
    for (size_t i = 0; i < k; i++) {
        FZ_CHECK(ids[i] >= 0 && ids[i] < V, "id %d outside [0, %d)", ids[i], V);
        special |= tok_is_special(t, ids[i]);
    }
    if (add_special && tok_adds_bos(t)) FZ_CHECK(k && ids[0] == tok_bos(t), "no BOS");
    char *out = NULL; size_t olen = 0;
    FZ_CHECK(tok_decode(t, ids, k, 0, &out, &olen, &e) == 0, "decode failed: %s", e.msg);
    size_t xn = 0;
    char *x = add_special || special ? NULL : expected(modes[ti], s, n, &xn);
    if (x) FZ_CHECK(xn == olen && !memcmp(x, out, xn), "tokenizer %d: decode(encode(text)) differs: %zu bytes in, %zu expected, %zu out ('%.*s')",
                    ti, n, xn, olen, (int)(olen > 200 ? 200 : olen), out);
    free(x); free(out); free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int ti = data[0] % ntok, lossy = data[0] >> 6 & 1, add_special = data[0] >> 7;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    size_t valid = utf8_valid_prefix(s, n);
    if (valid == n) { round_trip(ti, s, n, add_special); return 0; }
    int32_t *ids = NULL; size_t k = 0;
    lop_err e;
    if (!lossy) {
        FZ_CHECK(tok_encode(toks[ti], s, n, add_special, &ids, &k, &e) != 0, "invalid UTF-8 encoded");
        char want[64];
        snprintf(want, sizeof want, "offset %zu", valid);
        FZ_CHECK(strstr(e.msg, want) != NULL, "error '%s' does not name %s", e.msg, want);
        return 0;
    }
    size_t ln;
    char *fixed = utf8_lossy(s, n, &ln);
    FZ_CHECK(fixed && utf8_valid_prefix(fixed, ln) == ln, "utf8_lossy output is not valid UTF-8");
    round_trip(ti, fixed, ln, add_special);
    free(fixed);
    return 0;
}
