/* tok_load.c — tokenizer.json (+ tokenizer_config.json) into a lop_tokenizer.
 *
 * What is read: model (BPE only: vocab, merges as "a b" strings or [a, b] pairs, unk_token,
 * fuse_unk, byte_fallback, ignore_merges, continuing_subword_prefix, end_of_word_suffix),
 * added_tokens, normalizer, pre_tokenizer, post_processor, decoder. Anything else fails,
 * naming the component, so lop never silently tokenizes differently from Hugging Face. This file
 * reads the files and drives; each component's parser lives beside its apply/free (tok_bpe.c,
 * tok_added.c, tok_normalize.c, tok_pretok.c, tok_post.c, tok_decode.c; patterns tok_regex.c).
 *
 * tokenizer_config.json is read the way transformers 5 reads it (the goldens come from there):
 *  - add_bos_token / add_eos_token, when present, rebuild the template as [bos] $A [eos];
 *  - a LlamaTokenizer of the SentencePiece kind is rebuilt by transformers from vocab + merges:
 *    no normalizer, a Metaspace pre-tokenizer (prepend "always" when legacy, else "first"), and
 *    the decoder Replace/ByteFallback/Fuse/Strip. We do the same (TOK_LOAD_JSON_ONLY: don't). */
#include "tok_internal.h"
#include "safetensors.h"
#include "tok_json.h"
#include "utf8.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Not fs_read_all: the bytes become the tokenizer's arena (token strings point into it) and are
 * allocated on huge pages (tok_big_alloc: for a large tokenizer.json, 4 KB page faults cost more
 * than the parsing, tok_internal.h). */
static int read_all(const char *path, char **buf, size_t *len, lop_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return lop_fail(e, "%s: cannot open", path);
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) { fclose(f); return lop_fail(e, "%s: not a regular file", path); }
    size_t n = (size_t)st.st_size;
    char *b = tok_big_alloc(n + 1);
    if (!b) { fclose(f); return lop_fail(e, "%s: out of memory", path); }
    if (fread(b, 1, n, f) != n) { free(b); fclose(f); return lop_fail(e, "%s: read error", path); }
    fclose(f);
    b[n] = 0;
    *buf = b; *len = n;
    return 0;
}

/* id of a token string: added tokens first (HF's token_to_id), then the model vocab */
static int32_t token_id(const lop_tokenizer *t, const char *s, size_t n) {
    for (int i = 0; i < t->nadded; i++)
        if (t->added[i].len == n && !memcmp(t->added[i].content, s, n)) return t->added[i].id;
    return strmap_get(&t->vocab, s, n);
}

/* the string of a config token entry: "..." or {"content": "..."} */
static const char *cfg_token(const tj *cfg, const char *key, uint32_t *n) {
    const tj *v = tj_get(cfg, key);
    if (!v) return NULL;
    if (v->type == TJ_STR) { *n = v->n; return v->s; }
    if (v->type == TJ_OBJ) return tj_str(v, "content", n);
    return NULL;
}

/* transformers 5's LlamaTokenizer: rebuilt from vocab + merges (see the file comment) */
static int llama_compat(lop_tokenizer *t, const tj *cfg, lop_err *e) {
    const char *cls = tj_str(cfg, "tokenizer_class", NULL);
    if (!cls || (strcmp(cls, "LlamaTokenizer") && strcmp(cls, "LlamaTokenizerFast"))) return 0;
    if (!t->byte_fallback || t->byte_level) return 0;   /* only the SentencePiece kind */
    const tj *aps = tj_get(cfg, "add_prefix_space");
    int add_prefix = aps && (aps->type == TJ_TRUE || aps->type == TJ_FALSE) ? aps->type == TJ_TRUE : 1;
    int legacy = tj_bool(cfg, "legacy", 0);
    if (t->norm) { norm_free(t->norm); free(t->norm); t->norm = NULL; }
    if (t->pre) { pre_free(t->pre); free(t->pre); }
    t->pre = calloc(1, sizeof *t->pre);
    tdec *d = calloc(1, sizeof *d);
    if (!t->pre || !d) { free(d); return lop_fail(e, "out of memory"); }
    t->pre->kind = PRE_METASPACE;
    memcpy(t->pre->repl, "\xE2\x96\x81", 3); t->pre->repl_len = 3;
    t->pre->prepend_scheme = !add_prefix ? PREPEND_NEVER : legacy ? PREPEND_ALWAYS : PREPEND_FIRST;
    t->pre->split = 0;
    d->kind = DEC_SEQ;
    d->nkids = add_prefix ? 4 : 3;
    d->kids = calloc(4, sizeof *d->kids);
    if (!d->kids) { free(d); return lop_fail(e, "out of memory"); }
    d->kids[0].kind = DEC_REPLACE;
    d->kids[0].pat.lit = tok_dupn("\xE2\x96\x81", 3); d->kids[0].pat.litlen = 3;
    d->kids[0].content = tok_dupn(" ", 1); d->kids[0].clen = 1;
    d->kids[1].kind = DEC_BYTEFALLBACK;
    d->kids[2].kind = DEC_FUSE;
    d->kids[3].kind = DEC_STRIP;
    d->kids[3].content = tok_dupn(" ", 1); d->kids[3].clen = 1; d->kids[3].start = 1;
    if (t->dec) { dec_free(t->dec); free(t->dec); }
    t->dec = d;
    return 0;
}

int tok_load_ex(lop_tokenizer **out, const char *path, unsigned flags, lop_err *e) {
    *out = NULL;
    char jpath[4096], cpath[4096];
    struct stat st;
    if (stat(path, &st)) return lop_fail(e, "%s: no such file or folder", path);
    if (S_ISDIR(st.st_mode)) {
        snprintf(jpath, sizeof jpath, "%s/tokenizer.json", path);
        /* a LoRA adapter folder without tokenizer files: its base's tokenizer */
        static int depth;
        if (stat(jpath, &st) && st_is_adapter(path) && depth < 8) {
            char *base;
            if (st_adapter_base_path(path, &base, e)) return -1;
            depth++;
            int rc = tok_load_ex(out, base, flags, e);
            depth--;
            free(base);
            return rc;
        }
        snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", path);
    } else {
        snprintf(jpath, sizeof jpath, "%s", path);
        const char *sl = strrchr(path, '/');
        if (sl) snprintf(cpath, sizeof cpath, "%.*s/tokenizer_config.json", (int)(sl - path), path);
        else snprintf(cpath, sizeof cpath, "tokenizer_config.json");
    }
    lop_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return lop_fail(e, "out of memory");
    t->bos = t->eos = -1;
    tj_doc doc = {0}, cdoc = {0};
    char *cbuf = NULL; size_t clen;
    const tj *cfg = NULL;
    if (read_all(jpath, &t->arena, &t->arena_len, e)) goto fail;
    static const char *const raw[] = {"vocab", "merges", NULL};
    if (utf8_valid_prefix(t->arena, t->arena_len) != t->arena_len) {
        lop_fail(e, "%s: invalid UTF-8 at byte offset %zu", jpath, utf8_valid_prefix(t->arena, t->arena_len));
        goto fail;
    }
    if (tj_parse_ex(&doc, t->arena, t->arena_len, raw, e)) { lop_wrap(e, "%s", jpath); goto fail; }
    if (!(flags & TOK_LOAD_JSON_ONLY) && stat(cpath, &st) == 0) {
        if (read_all(cpath, &cbuf, &clen, e)) goto fail;
        if (tj_parse(&cdoc, cbuf, clen, e)) { lop_wrap(e, "%s", cpath); goto fail; }
        cfg = cdoc.root;
    }
    const tj *root = doc.root, *v;
    if (root->type != TJ_OBJ) { lop_fail(e, "%s: not a JSON object", jpath); goto fail; }
    const tj *model = tj_get(root, "model"), *added = tj_get(root, "added_tokens");
    if (!model || model->type != TJ_OBJ) { lop_fail(e, "%s: no model", jpath); goto fail; }
    if (tok_bpe_parse(t, model, added, e) || tok_added_parse(t, added, e)) goto wrap;
    if ((v = tj_get(root, "normalizer")) && v->type != TJ_NULL) {
        t->norm = calloc(1, sizeof *t->norm);
        if (!t->norm) { lop_fail(e, "out of memory"); goto fail; }
        if (tok_norm_parse(v, t->norm, e)) goto wrap;
    }
    if ((v = tj_get(root, "pre_tokenizer")) && v->type != TJ_NULL) {
        t->pre = calloc(1, sizeof *t->pre);
        if (!t->pre) { lop_fail(e, "out of memory"); goto fail; }
        if (tok_pre_parse(v, t->pre, e)) goto wrap;
    }
    if ((v = tj_get(root, "decoder")) && v->type != TJ_NULL) {
        t->dec = calloc(1, sizeof *t->dec);
        if (!t->dec) { lop_fail(e, "out of memory"); goto fail; }
        if (tok_dec_parse(v, t->dec, e)) goto wrap;
    }
    if ((v = tj_get(root, "post_processor")) && v->type != TJ_NULL && tok_post_parse(t, v, &t->post, e)) goto wrap;
    if ((v = tj_get(root, "truncation")) && v->type != TJ_NULL) { lop_fail(e, "unsupported truncation (set it to null)"); goto wrap; }
    if ((v = tj_get(root, "padding")) && v->type != TJ_NULL) { lop_fail(e, "unsupported padding (set it to null)"); goto wrap; }
    t->byte_level = tok_pre_has_bytelevel(t->pre);
    for (int i = 0; i < t->post.npre; i++) if (t->post.pre[i] < 0 || t->post.pre[i] >= t->nvocab) { lop_fail(e, "post_processor: id %d out of range", t->post.pre[i]); goto wrap; }
    for (int i = 0; i < t->post.npost; i++) if (t->post.post[i] < 0 || t->post.post[i] >= t->nvocab) { lop_fail(e, "post_processor: id %d out of range", t->post.post[i]); goto wrap; }

    /* BOS / EOS: tokenizer_config names them; otherwise the template's first token */
    uint32_t n;
    const char *s;
    if (cfg && (s = cfg_token(cfg, "bos_token", &n))) t->bos = token_id(t, s, n);
    else if (t->post.npre) t->bos = t->post.pre[0];
    if (cfg && (s = cfg_token(cfg, "eos_token", &n))) t->eos = token_id(t, s, n);
    else {
        static const char *names[] = {"</s>", "<eos>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>"};
        for (size_t i = 0; i < sizeof names / sizeof *names && t->eos < 0; i++)
            t->eos = token_id(t, names[i], strlen(names[i]));
    }
    if (cfg) {
        if (llama_compat(t, cfg, e)) goto wrap;
        t->split_special = tj_bool(cfg, "split_special_tokens", 0);
        const tj *ab = tj_get(cfg, "add_bos_token"), *ae = tj_get(cfg, "add_eos_token");
        if (ab || ae) {                  /* transformers' update_post_processor */
            int add_bos = ab && ab->type == TJ_TRUE, add_eos = ae && ae->type == TJ_TRUE;
            free(t->post.pre); free(t->post.post);
            memset(&t->post, 0, sizeof t->post);
            if ((add_bos && t->bos >= 0 && tok_ids_append(&t->post.pre, &t->post.npre, t->bos)) ||
                (add_eos && t->eos >= 0 && tok_ids_append(&t->post.post, &t->post.npost, t->eos))) { lop_fail(e, "out of memory"); goto fail; }
        }
    }
    if (tok_pre_flatten(t, e)) goto wrap;
    if (trie_build(&t->trie_raw, t->added, t->nadded, 0, NULL, e) ||
        trie_build(&t->trie_norm, t->added, t->nadded, 1, t->norm, e)) goto wrap;
    static uint64_t next_uid;
    t->uid = __atomic_add_fetch(&next_uid, 1, __ATOMIC_RELAXED);
    t->kind = t->byte_level ? "BPE byte-level" : t->byte_fallback ? "BPE byte-fallback" : "BPE";
    tj_free(&doc); tj_free(&cdoc); free(cbuf);
    *out = t;
    return 0;
wrap:
    lop_wrap(e, "%s", jpath);
fail:
    tj_free(&doc); tj_free(&cdoc); free(cbuf);
    tok_free(t);
    return -1;
}

int tok_load(lop_tokenizer **out, const char *path, lop_err *e) { return tok_load_ex(out, path, 0, e); }

void tok_free(lop_tokenizer *t) {
    if (!t) return;
    strmap_free(&t->vocab);
    pairmap_free(&t->merges);
    free(t->id_str); free(t->id_len); free(t->special); free(t->is_added); free(t->cp_id); free(t->meta_unsafe);
    free(t->cont_prefix); free(t->eow_suffix);
    if (t->norm) { norm_free(t->norm); free(t->norm); }
    if (t->pre) { pre_free(t->pre); free(t->pre); }
    free(t->stages);
    if (t->dec) { dec_free(t->dec); free(t->dec); }
    free(t->post.pre); free(t->post.post);
    free(t->added);
    trie_free(&t->trie_raw); trie_free(&t->trie_norm);
    free(t->arena);
    free(t);
}

const char *tok_token(const lop_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->nvocab ? t->id_str[id] : NULL;
}
int tok_vocab_size(const lop_tokenizer *t) { return t->nvocab; }
int tok_bos(const lop_tokenizer *t) { return t->bos; }
int tok_eos(const lop_tokenizer *t) { return t->eos; }
int tok_adds_bos(const lop_tokenizer *t) { return t->post.npre > 0 && t->bos >= 0 && t->post.pre[0] == t->bos; }
int tok_is_special(const lop_tokenizer *t, int32_t id) { return id >= 0 && id < t->nvocab && t->special[id]; }
int32_t tok_token_id(const lop_tokenizer *t, const char *s, size_t n) { return token_id(t, s, n); }
const char *tok_kind(const lop_tokenizer *t) { return t->kind; }
