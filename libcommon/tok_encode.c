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

/* Normalize one piece of c->buf, cut it on normalized added tokens, pre-tokenize and BPE it. */
static int piece(tok_ctx *c, tbuf *tmp, size_t off, size_t len, int at0) {
    const lop_tokenizer *t = c->t;
    if (t->norm) {
        tmp->len = 0;
        if (norm_apply(t->norm, c->buf.p + off, len, tmp, c->e)) return -1;
        if (!tmp->len) return 0;                      /* HF drops empty pieces */
        off = c->buf.len; len = tmp->len;
        if (tbuf_put(&c->buf, tmp->p, tmp->len)) return lop_fail(c->e, "out of memory");
    }
    if (!len) return 0;
    if (t->trie_norm.nnodes > 1) {
        tpvec in = {0}, parts = {0};
        int r = tpvec_push(&in, off, len, -1, at0) || added_split(t, &t->trie_norm, &c->buf, &in, &parts)
              ? lop_fail(c->e, "out of memory") : 0;
        for (size_t i = 0; i < parts.n && !r; i++) {
            tpiece q = parts.v[i];
            if (q.id >= 0) r = ivec_push(&c->out, q.id) ? lop_fail(c->e, "out of memory") : 0;
            else if (q.len) r = pre_stream(c, 0, q.off, q.len, q.at0);
        }
        tpvec_free(&in); tpvec_free(&parts);
        return r;
    }
    return pre_stream(c, 0, off, len, at0);
}

int tok_encode(const lop_tokenizer *t, const char *text, size_t len, int add_special,
               int32_t **ids, size_t *n, lop_err *e) {
    *ids = NULL; *n = 0;
    size_t bad = utf8_valid_prefix(text, len);
    if (bad != len) return lop_fail(e, "invalid UTF-8 at byte offset %zu", bad);
    tok_ctx c = {.t = t, .e = e};
    tbuf tmp = {0};
    tpvec segs = {0}, one = {0};
    int rc = -1;
    c.sc = tok_thread_scratch(t);
    if (!c.sc || tbuf_put(&c.buf, text, len) || tpvec_push(&one, 0, len, -1, 1)) goto oom;
    if (add_special) for (int i = 0; i < t->post.npre; i++) if (ivec_push(&c.out, t->post.pre[i])) goto oom;
    /* 1. raw added tokens; then every other piece on its own */
    if (added_split(t, &t->trie_raw, &c.buf, &one, &segs)) goto oom;
    size_t base = c.buf.len;
    for (size_t i = 0; i < segs.n; i++) {
        tpiece pc = segs.v[i];
        if (pc.id >= 0) { if (ivec_push(&c.out, pc.id)) goto oom; continue; }
        if (piece(&c, &tmp, pc.off, pc.len, pc.at0)) goto fail;
        c.buf.len = base;
    }
    if (add_special) for (int i = 0; i < t->post.npost; i++) if (ivec_push(&c.out, t->post.post[i])) goto oom;
    *ids = c.out.v; *n = c.out.n;
    c.out.v = NULL;
    if (!*ids) { *ids = malloc(sizeof(int32_t)); if (!*ids) goto oom; }
    rc = 0;
    goto done;
oom:
    lop_fail(e, "out of memory");
fail:
    free(c.out.v);
done:
    tbuf_free(&c.buf); tbuf_free(&tmp); tpvec_free(&segs); tpvec_free(&one);
    rx_scratch_free(&c.rx);
    return rc;
}
