/* train_data_fuzz.c — libFuzzer target for the training-data reader (heal-sft, kd-train:
 * plain text by lines or paragraphs, JSONL {"text"}, instruction JSONL through a template,
 * pre-tokenized {"ids"} lines, any of them zstd-compressed) and the calibration-data reader
 * (layer-score, wmask, ...: text, JSONL with a field, zstd).
 * Input: byte 0 = options (seq_len, shuffle, template choice, calibration mode), byte 1 = the
 * calibration window, then the file's bytes (compressed or not, as given).
 * Checks, for data that loads:
 *   - blocks/tokens/docs consistent: a packed epoch's blocks hold exactly tokens-1 inputs;
 *     a pre-tokenized epoch one block per document;
 *   - every batch: ids in [0, vocab) for text, every scored target is the next input (packed) or
 *     the next id of its line (pre-tokenized), T within seq_len (+1 tolerance for lines);
 *   - calibration: every id in range, every sample within ctx, tokens == sum of lengths. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "calib.h"
#include "fuzz_util.h"
#include "tokenizer.h"
#include "train_data.h"
#include <zstd.h>

static lop_tokenizer *tok;
static int V;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    lop_err e;
    if (tok_load(&tok, fz_tiny_tokenizer("tiny"), &e)) { fprintf(stderr, "%s\n", e.msg); exit(2); }
    V = tok_vocab_size(tok);
    return 0;
}

static void check_train(const char *path, const uint8_t opt) {
    static const char *tmpls[4] = {NULL, "{instruction}\n{context}\n{response}</s>",
                                   "Q: {prompt}{context_block} A: {response}", "no response here"};
    tr_data_opts o = {.seq_len = 1 + (opt & 15), .tmpl = tmpls[opt >> 4 & 3], .shuffle = opt >> 6 & 1,
                      .seed = opt, .bos_id = 1, .eos_id = opt >> 7 ? 2 : -1, .pad_id = -1};
    tr_data *d;
    lop_err e;
    if (tr_data_load(&d, path, tok, &o, &e)) return;
    int64_t nb = tr_data_blocks(d), nt = tr_data_tokens(d), nd = tr_data_docs(d);
    int pre = tr_data_pretokenized(d);
    FZ_CHECK(nd >= 1 && nb >= 1, "docs %lld blocks %lld", (long long)nd, (long long)nb);
    if (pre) FZ_CHECK(nb == nd, "pre-tokenized: %lld blocks for %lld lines", (long long)nb, (long long)nd);
    else FZ_CHECK(nt >= 2 && nb == (nt - 1 + o.seq_len - 1) / o.seq_len, "packed: %lld blocks for %lld tokens", (long long)nb, (long long)nt);
    int32_t *ids = NULL, *tg = NULL;
    size_t cap = 0;
    int64_t inputs = 0, lim = nb > 64 ? 64 : nb;
    for (int64_t g = 0; g < lim + 2; g++) {       /* the first blocks, and into the next epoch */
        int T;
        int64_t sc = tr_data_batch(d, g, 1, &ids, &tg, &cap, &T, &e);
        FZ_CHECK(sc >= 0 && T >= 1 && T <= o.seq_len, "batch %lld: T %d (seq_len %d)", (long long)g, T, o.seq_len);
        if (g < nb && nb <= 64) inputs += T;
        int64_t cnt = 0;
        for (int i = 0; i < T; i++) {
            if (!pre) FZ_CHECK(ids[i] >= 0 && ids[i] < V, "id %d out of range", ids[i]);
            if (tg[i] >= 0) { cnt++; if (i + 1 < T) FZ_CHECK(tg[i] == ids[i + 1], "target %d is not the next input", i); }
        }
        FZ_CHECK(cnt == sc, "scored %lld, counted %lld", (long long)sc, (long long)cnt);
    }
    if (!pre && nb <= 64) FZ_CHECK(inputs == nt - 1, "an epoch holds %lld inputs, %lld tokens", (long long)inputs, (long long)nt);
    int T;   /* a batch of several blocks at once */
    FZ_CHECK(tr_data_batch(d, nb - 1, 3, &ids, &tg, &cap, &T, &e) >= 0, "batch of 3");
    free(ids); free(tg);
    tr_data_free(d);
}

static void check_calib(const char *path, uint8_t opt, uint8_t ctxb) {
    lop_calib_opts o = calib_default_opts();
    o.mode = (lop_calib_mode)(opt % 3);
    o.ctx = ctxb & 63;
    if (o.mode == CALIB_PACKED && o.ctx < 2) o.ctx = 2;
    o.samples = ctxb >> 6;
    o.random = opt >> 2 & 1;
    o.seed = opt;
    o.field = opt >> 3 & 1 ? "content" : NULL;
    lop_calib c;
    lop_err e;
    if (calib_load(&c, path, tok, &o, &e)) return;
    FZ_CHECK(c.n >= 1, "no samples accepted");
    if (o.samples) FZ_CHECK(c.n <= o.samples, "%d samples, %d asked", c.n, o.samples);
    int64_t sum = 0;
    for (int i = 0; i < c.n; i++) {
        FZ_CHECK(c.len[i] >= 0 && (!o.ctx || c.len[i] <= o.ctx), "sample %d: %d tokens (ctx %d)", i, c.len[i], o.ctx);
        for (int j = 0; j < c.len[i]; j++) FZ_CHECK(c.ids[i][j] >= 0 && c.ids[i][j] < V, "calib id out of range");
        sum += c.len[i];
    }
    FZ_CHECK(sum == c.tokens, "tokens %lld, lengths sum to %lld", (long long)c.tokens, (long long)sum);
    calib_free(&c);
}

/* 1 if a zstd input decompresses to more than 1 MB: real work, not a finding (training data is
 * read whole, as large as it is; 149 bytes of zstd make 4 MB of text that takes seconds to
 * tokenize under ASan), so such inputs are left out to keep the fuzzer fast */
static int too_big(const uint8_t *d, size_t n) {
    if (n < 4 || d[0] != 0x28 || d[1] != 0xB5 || d[2] != 0x2F || d[3] != 0xFD) return 0;
    ZSTD_DCtx *z = ZSTD_createDCtx();
    static char out[1 << 16];
    ZSTD_inBuffer in = {d, n, 0};
    size_t total = 0;
    int big = 0;
    while (in.pos < in.size && !big) {
        ZSTD_outBuffer o = {out, sizeof out, 0};
        size_t r = ZSTD_decompressStream(z, &o, &in);
        if (ZSTD_isError(r)) break;
        total += o.pos;
        big = total > (1u << 20);
        if (o.pos == 0 && r != 0 && in.pos == in.size) break;
        if (r == 0 && in.pos == in.size) break;
    }
    ZSTD_freeDCtx(z);
    return big;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || too_big(data + 2, size - 2)) return 0;
    const char *path = fz_write("data", data + 2, size - 2);
    check_train(path, data[0]);
    check_calib(path, data[0], data[1]);
    return 0;
}
