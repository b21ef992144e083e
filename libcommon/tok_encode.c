/* tok_encode.c — text to ids, in Hugging Face tokenizers' order:
 *   1. added tokens with normalized=false are cut out of the raw text;
 *   2. every other piece is normalized on its own (so Llama's Prepend("▁") applies after each
 *      added token, as in HF), then cut on the normalized added tokens;
 *   3. the pre-tokenizer splits pieces into words; 4. BPE per word;
 *   5. the post-processor template adds BOS/EOS when add_special. */
#include "tok_internal.h"
#include "utf8.h"
#include <stdlib.h>
#include <string.h>

int tok_encode(const lop_tokenizer *t, const char *text, size_t len, int add_special,
               int32_t **ids, size_t *n, lop_err *e) {
    *ids = NULL; *n = 0;
    size_t bad = utf8_valid_prefix(text, len);
    if (bad != len) return lop_fail(e, "invalid UTF-8 at byte offset %zu", bad);
    tbuf buf = {0}, tmp = {0};
    tpvec a = {0}, b = {0};
    ivec out = {0};
    bpe_scratch *sc = bpe_scratch_new();
    int rc = -1;
    if (!sc || tbuf_put(&buf, text, len) || tpvec_push(&a, 0, len, -1, 1)) goto oom;
    if (add_special) for (int i = 0; i < t->post.npre; i++) if (ivec_push(&out, t->post.pre[i])) goto oom;

    /* 1. raw added tokens */
    if (added_split(t, &t->trie_raw, &buf, &a, &b)) goto oom;
    /* 2. normalize the rest, piece by piece */
    a.n = 0;
    for (size_t i = 0; i < b.n; i++) {
        tpiece pc = b.v[i];
        if (pc.id >= 0 || !t->norm) {
            if ((pc.id >= 0 || pc.len) && tpvec_push(&a, pc.off, pc.len, pc.id, pc.at0)) goto oom;
            continue;
        }
        tmp.len = 0;
        if (norm_apply(t->norm, buf.p + pc.off, pc.len, &tmp, e)) goto fail;
        if (!tmp.len) continue;                         /* HF drops empty pieces */
        size_t off = buf.len;
        if (tbuf_put(&buf, tmp.p, tmp.len) || tpvec_push(&a, off, tmp.len, -1, pc.at0)) goto oom;
    }
    b.n = 0;
    if (added_split(t, &t->trie_norm, &buf, &a, &b)) goto oom;
    /* 3. pre-tokenize */
    a.n = 0;
    if (t->pre) { if (pre_apply(t->pre, &buf, &b, &a, e)) goto fail; }
    else { tpvec s = a; a = b; b = s; }
    /* 4. the model */
    for (size_t i = 0; i < a.n; i++) {
        tpiece pc = a.v[i];
        if (pc.id >= 0) { if (ivec_push(&out, pc.id)) goto oom; continue; }
        if (bpe_word(t, buf.p + pc.off, pc.len, &out, sc, e)) goto fail;
    }
    /* 5. post-processor */
    if (add_special) for (int i = 0; i < t->post.npost; i++) if (ivec_push(&out, t->post.post[i])) goto oom;
    *ids = out.v; *n = out.n;
    out.v = NULL;
    if (!*ids) { *ids = malloc(sizeof(int32_t)); if (!*ids) goto oom; }
    rc = 0;
    goto done;
oom:
    lop_fail(e, "out of memory");
fail:
    free(out.v);
done:
    tbuf_free(&buf); tbuf_free(&tmp); tpvec_free(&a); tpvec_free(&b);
    bpe_scratch_free(sc);
    return rc;
}
