/* tok_load.c — tokenizer.json (+ tokenizer_config.json) into a lop_tokenizer.
 *
 * What is read: model (BPE only: vocab, merges as "a b" strings or [a, b] pairs, unk_token,
 * fuse_unk, byte_fallback, ignore_merges, continuing_subword_prefix, end_of_word_suffix),
 * added_tokens, normalizer, pre_tokenizer, post_processor, decoder. Anything else fails here,
 * naming the component, so lop never silently tokenizes differently from Hugging Face.
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void tok_bytelevel_init(void);

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

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) { memcpy(d, s, n); d[n] = 0; }
    return d;
}

static const char *type_of(const tj *o) {
    const char *t = tj_str(o, "type", NULL);
    return t ? t : "?";
}

/* {"String": "..."} or {"Regex": "..."} */
static int parse_pattern(const tj *o, tpattern *p, const char *where, lop_err *e) {
    memset(p, 0, sizeof *p);
    uint32_t n;
    const char *s;
    if (o && (s = tj_str(o, "String", &n))) {
        p->lit = dupn(s, n); p->litlen = n;
        return p->lit ? 0 : lop_fail(e, "out of memory");
    }
    if (o && (s = tj_str(o, "Regex", &n))) {
        p->re = tregex_compile(s, n, e);
        return p->re ? 0 : lop_wrap(e, "%s", where);
    }
    return lop_fail(e, "%s: pattern must be {\"String\": ...} or {\"Regex\": ...}", where);
}

static int parse_norm(const tj *o, tnorm *nm, lop_err *e) {
    memset(nm, 0, sizeof *nm);
    const char *ty = type_of(o);
    if (!strcmp(ty, "Sequence")) {
        const tj *l = tj_get(o, "normalizers");
        nm->kind = NORM_SEQ;
        if (!l || l->type != TJ_ARR) return lop_fail(e, "normalizer Sequence without a list");
        nm->kids = calloc(l->n ? l->n : 1, sizeof *nm->kids);
        if (!nm->kids) return lop_fail(e, "out of memory");
        for (uint32_t i = 0; i < l->n; i++) {
            nm->nkids++;
            if (parse_norm(&l->kids[i], &nm->kids[i], e)) return -1;
        }
        return 0;
    }
    if (!strcmp(ty, "NFC")) { nm->kind = NORM_NFC; return 0; }
    if (!strcmp(ty, "NFD")) { nm->kind = NORM_NFD; return 0; }
    if (!strcmp(ty, "NFKC")) { nm->kind = NORM_NFKC; return 0; }
    if (!strcmp(ty, "NFKD")) { nm->kind = NORM_NFKD; return 0; }
    if (!strcmp(ty, "Lowercase")) { nm->kind = NORM_LOWER; return 0; }
    if (!strcmp(ty, "StripAccents")) { nm->kind = NORM_STRIP_ACCENTS; return 0; }
    if (!strcmp(ty, "Strip")) {
        nm->kind = NORM_STRIP;
        nm->left = tj_bool(o, "strip_left", 1); nm->right = tj_bool(o, "strip_right", 1);
        return 0;
    }
    if (!strcmp(ty, "Replace") || !strcmp(ty, "Prepend")) {
        uint32_t n;
        const char *c = tj_str(o, ty[0] == 'R' ? "content" : "prepend", &n);
        if (!c) return lop_fail(e, "normalizer %s without its string", ty);
        nm->kind = ty[0] == 'R' ? NORM_REPLACE : NORM_PREPEND;
        nm->content = dupn(c, n); nm->clen = n;
        if (!nm->content) return lop_fail(e, "out of memory");
        if (nm->kind == NORM_REPLACE) return parse_pattern(tj_get(o, "pattern"), &nm->pat, "normalizer Replace", e);
        return 0;
    }
    return lop_fail(e, "unsupported normalizer '%s'", ty);
}

static int parse_prepend_scheme(const tj *o, int *scheme) {
    const char *ps = tj_str(o, "prepend_scheme", NULL);
    if (ps) {
        if (!strcmp(ps, "always")) *scheme = PREPEND_ALWAYS;
        else if (!strcmp(ps, "first")) *scheme = PREPEND_FIRST;
        else if (!strcmp(ps, "never")) *scheme = PREPEND_NEVER;
        else return -1;
        return 0;
    }
    *scheme = tj_bool(o, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
    return 0;
}

static pthread_once_t bl_once = PTHREAD_ONCE_INIT;
static void bl_init(void) {
    tok_bytelevel_init();
    static const char re[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    tok_bytelevel_re = tregex_compile(re, sizeof re - 1, NULL);
}

static int parse_pre(const tj *o, tpre *p, lop_err *e) {
    memset(p, 0, sizeof *p);
    const char *ty = type_of(o);
    if (!strcmp(ty, "Sequence")) {
        const tj *l = tj_get(o, "pretokenizers");
        p->kind = PRE_SEQ;
        if (!l || l->type != TJ_ARR) return lop_fail(e, "pre_tokenizer Sequence without a list");
        p->kids = calloc(l->n ? l->n : 1, sizeof *p->kids);
        if (!p->kids) return lop_fail(e, "out of memory");
        for (uint32_t i = 0; i < l->n; i++) {
            p->nkids++;
            if (parse_pre(&l->kids[i], &p->kids[i], e)) return -1;
        }
        return 0;
    }
    if (!strcmp(ty, "Split")) {
        p->kind = PRE_SPLIT;
        const char *b = tj_str(o, "behavior", NULL);
        if (!b) return lop_fail(e, "pre_tokenizer Split without behavior");
        if (!strcmp(b, "Removed")) p->behavior = SPLIT_REMOVED;
        else if (!strcmp(b, "Isolated")) p->behavior = SPLIT_ISOLATED;
        else if (!strcmp(b, "MergedWithPrevious")) p->behavior = SPLIT_MERGED_PREV;
        else if (!strcmp(b, "MergedWithNext")) p->behavior = SPLIT_MERGED_NEXT;
        else if (!strcmp(b, "Contiguous")) p->behavior = SPLIT_CONTIGUOUS;
        else return lop_fail(e, "unsupported Split behavior '%s'", b);
        p->invert = tj_bool(o, "invert", 0);
        return parse_pattern(tj_get(o, "pattern"), &p->pat, "pre_tokenizer Split", e);
    }
    if (!strcmp(ty, "ByteLevel")) {
        p->kind = PRE_BYTELEVEL;
        p->add_prefix_space = tj_bool(o, "add_prefix_space", 1);
        p->use_regex = tj_bool(o, "use_regex", 1);
        pthread_once(&bl_once, bl_init);
        if (!tok_bytelevel_re) return lop_fail(e, "ByteLevel regex failed to compile");
        return 0;
    }
    if (!strcmp(ty, "Metaspace")) {
        p->kind = PRE_METASPACE;
        uint32_t n;
        const char *r = tj_str(o, "replacement", &n);
        if (!r || !n || n > 4) return lop_fail(e, "pre_tokenizer Metaspace: bad replacement");
        memcpy(p->repl, r, n); p->repl_len = n;
        if (parse_prepend_scheme(o, &p->prepend_scheme)) return lop_fail(e, "pre_tokenizer Metaspace: bad prepend_scheme");
        p->split = tj_bool(o, "split", 1);
        return 0;
    }
    if (!strcmp(ty, "Digits")) { p->kind = PRE_DIGITS; p->individual_digits = tj_bool(o, "individual_digits", 0); return 0; }
    if (!strcmp(ty, "WhitespaceSplit")) { p->kind = PRE_WSSPLIT; return 0; }
    if (!strcmp(ty, "Whitespace")) {
        p->kind = PRE_WHITESPACE;
        static const char re[] = "\\w+|[^\\w\\s]+";
        p->pat.re = tregex_compile(re, sizeof re - 1, e);
        return p->pat.re ? 0 : -1;
    }
    return lop_fail(e, "unsupported pre_tokenizer '%s'", ty);
}

static int parse_dec(const tj *o, tdec *d, lop_err *e) {
    memset(d, 0, sizeof *d);
    const char *ty = type_of(o);
    if (!strcmp(ty, "Sequence")) {
        const tj *l = tj_get(o, "decoders");
        d->kind = DEC_SEQ;
        if (!l || l->type != TJ_ARR) return lop_fail(e, "decoder Sequence without a list");
        d->kids = calloc(l->n ? l->n : 1, sizeof *d->kids);
        if (!d->kids) return lop_fail(e, "out of memory");
        for (uint32_t i = 0; i < l->n; i++) {
            d->nkids++;
            if (parse_dec(&l->kids[i], &d->kids[i], e)) return -1;
        }
        return 0;
    }
    if (!strcmp(ty, "ByteLevel")) { d->kind = DEC_BYTELEVEL; pthread_once(&bl_once, bl_init); return 0; }
    if (!strcmp(ty, "ByteFallback")) { d->kind = DEC_BYTEFALLBACK; return 0; }
    if (!strcmp(ty, "Fuse")) { d->kind = DEC_FUSE; return 0; }
    if (!strcmp(ty, "Strip")) {
        d->kind = DEC_STRIP;
        uint32_t n;
        const char *c = tj_str(o, "content", &n);
        const tj *st = tj_get(o, "start"), *sp = tj_get(o, "stop");
        if (!c || !n) return lop_fail(e, "decoder Strip without content");
        d->content = dupn(c, n); d->clen = n;
        d->start = st && st->type == TJ_NUM ? (int)st->num : 0;
        d->stop = sp && sp->type == TJ_NUM ? (int)sp->num : 0;
        return d->content ? 0 : lop_fail(e, "out of memory");
    }
    if (!strcmp(ty, "Replace")) {
        d->kind = DEC_REPLACE;
        uint32_t n;
        const char *c = tj_str(o, "content", &n);
        if (!c) return lop_fail(e, "decoder Replace without content");
        d->content = dupn(c, n); d->clen = n;
        if (!d->content) return lop_fail(e, "out of memory");
        return parse_pattern(tj_get(o, "pattern"), &d->pat, "decoder Replace", e);
    }
    if (!strcmp(ty, "Metaspace")) {
        d->kind = DEC_METASPACE;
        uint32_t n;
        const char *r = tj_str(o, "replacement", &n);
        if (!r || !n || n > 4) return lop_fail(e, "decoder Metaspace: bad replacement");
        memcpy(d->repl, r, n); d->repl_len = n;
        if (parse_prepend_scheme(o, &d->prepend_scheme)) return lop_fail(e, "decoder Metaspace: bad prepend_scheme");
        return 0;
    }
    if (!strcmp(ty, "BPEDecoder")) {
        d->kind = DEC_BPE_SUFFIX;
        uint32_t n;
        const char *c = tj_str(o, "suffix", &n);
        if (!c) { c = "</w>"; n = 4; }
        d->content = dupn(c, n); d->clen = n;
        return d->content ? 0 : lop_fail(e, "out of memory");
    }
    return lop_fail(e, "unsupported decoder '%s'", ty);
}

/* id of a token string: added tokens first (HF's token_to_id), then the model vocab */
static int32_t token_id(const lop_tokenizer *t, const char *s, size_t n) {
    for (int i = 0; i < t->nadded; i++)
        if (t->added[i].len == n && !memcmp(t->added[i].content, s, n)) return t->added[i].id;
    return strmap_get(&t->vocab, s, n);
}

static int ids_append(int32_t **v, int *n, int32_t id) {
    int32_t *nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
    if (!nv) return -1;
    nv[(*n)++] = id;
    *v = nv;
    return 0;
}

static int parse_post(lop_tokenizer *t, const tj *o, tpost *pp, lop_err *e) {
    const char *ty = type_of(o);
    if (!strcmp(ty, "ByteLevel")) return 0;
    if (!strcmp(ty, "Sequence")) {
        const tj *l = tj_get(o, "processors");
        if (!l || l->type != TJ_ARR) return lop_fail(e, "post_processor Sequence without a list");
        for (uint32_t i = 0; i < l->n; i++) {
            tpost inner = {0};
            if (parse_post(t, &l->kids[i], &inner, e)) { free(inner.pre); free(inner.post); return -1; }
            /* a later processor wraps the earlier result */
            int32_t *pre = NULL; int npre = 0;
            int bad = 0;
            for (int k = 0; k < inner.npre; k++) bad |= ids_append(&pre, &npre, inner.pre[k]);
            for (int k = 0; k < pp->npre; k++) bad |= ids_append(&pre, &npre, pp->pre[k]);
            for (int k = 0; k < inner.npost; k++) bad |= ids_append(&pp->post, &pp->npost, inner.post[k]);
            free(pp->pre); pp->pre = pre; pp->npre = npre;
            free(inner.pre); free(inner.post);
            if (bad) return lop_fail(e, "out of memory");
        }
        return 0;
    }
    if (!strcmp(ty, "TemplateProcessing")) {
        const tj *single = tj_get(o, "single"), *sp = tj_get(o, "special_tokens");
        if (!single || single->type != TJ_ARR) return lop_fail(e, "TemplateProcessing without 'single'");
        int seen_a = 0;
        for (uint32_t i = 0; i < single->n; i++) {
            const tj *it = &single->kids[i];
            if (tj_get(it, "Sequence")) { seen_a = 1; continue; }
            const tj *st = tj_get(it, "SpecialToken");
            const char *name = st ? tj_str(st, "id", NULL) : NULL;
            if (!name) return lop_fail(e, "TemplateProcessing: bad item in 'single'");
            const tj *def = tj_get(sp, name), *ids = def ? tj_get(def, "ids") : NULL;
            if (!ids || ids->type != TJ_ARR) return lop_fail(e, "TemplateProcessing: special token '%s' undefined", name);
            for (uint32_t k = 0; k < ids->n; k++) {
                if (ids->kids[k].type != TJ_NUM) return lop_fail(e, "TemplateProcessing: bad id for '%s'", name);
                int32_t id = (int32_t)ids->kids[k].num;
                if (seen_a ? ids_append(&pp->post, &pp->npost, id) : ids_append(&pp->pre, &pp->npre, id))
                    return lop_fail(e, "out of memory");
            }
        }
        return 0;
    }
    if (!strcmp(ty, "RobertaProcessing") || !strcmp(ty, "BertProcessing")) {
        const tj *cls = tj_get(o, "cls"), *sep = tj_get(o, "sep");
        if (!cls || cls->type != TJ_ARR || cls->n != 2 || cls->kids[1].type != TJ_NUM ||
            !sep || sep->type != TJ_ARR || sep->n != 2 || sep->kids[1].type != TJ_NUM)
            return lop_fail(e, "%s: bad cls/sep", ty);
        if (ids_append(&pp->pre, &pp->npre, (int32_t)cls->kids[1].num) ||
            ids_append(&pp->post, &pp->npost, (int32_t)sep->kids[1].num))
            return lop_fail(e, "out of memory");
        return 0;
    }
    (void)t;
    return lop_fail(e, "unsupported post_processor '%s'", ty);
}

/* vocab and merges: kept raw by the JSON reader and walked here, one entry at a time */
typedef struct mctx { lop_tokenizer *t; int32_t maxid; lop_err *e; } mctx;

static int vocab_cb(void *ctx, const tj *v) {
    mctx *c = ctx;
    if (v->type != TJ_NUM || v->num < 0 || v->num > 1e8 || v->num != (double)(int32_t)v->num)
        return lop_fail(c->e, "model.vocab: bad id for '%s'", v->key);
    int32_t id = (int32_t)v->num;
    if (id > c->maxid) c->maxid = id;
    return strmap_put(&c->t->vocab, v->key, v->keylen, id) ? lop_fail(c->e, "out of memory") : 0;
}

/* Merges are read in two passes: the JSON walk collects the (a, b) strings, then the id
 * lookups (three per merge, the bulk of loading Gemma's 515k merges) run on all cores. */
typedef struct mraw { const char *a, *b; uint32_t al, bl; } mraw;
typedef struct mlist { mraw *v; size_t n, cap; lop_err *e; } mlist;

static int merge_collect(void *ctx, uint32_t r, const tj *mg) {
    mlist *l = ctx;
    mraw m;
    if (mg->type == TJ_STR) {
        const char *sp = memchr(mg->s, ' ', mg->n);
        if (!sp || memchr(sp + 1, ' ', mg->n - (size_t)(sp + 1 - mg->s)))
            return lop_fail(l->e, "model.merges[%u]: '%s' is not two tokens separated by one space", r, mg->s);
        m.a = mg->s; m.al = (uint32_t)(sp - mg->s); m.b = sp + 1; m.bl = mg->n - m.al - 1;
    } else if (mg->type == TJ_ARR && mg->n == 2 && mg->kids[0].type == TJ_STR && mg->kids[1].type == TJ_STR) {
        m.a = mg->kids[0].s; m.al = mg->kids[0].n; m.b = mg->kids[1].s; m.bl = mg->kids[1].n;
    } else return lop_fail(l->e, "model.merges[%u]: bad merge", r);
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 1024;
        mraw *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) return lop_fail(l->e, "out of memory");
        l->v = nv; l->cap = nc;
    }
    l->v[l->n++] = m;
    return 0;
}

/* ids of merge i: a, b and a + b (b without the continuing-subword prefix); -1 if absent */
static void merge_ids(const lop_tokenizer *t, const mraw *m, char *tmp, size_t tmpcap, int32_t out[3]) {
    out[0] = strmap_get(&t->vocab, m->a, m->al);
    out[1] = strmap_get(&t->vocab, m->b, m->bl);
    size_t skip = t->cont_prefix_len < m->bl ? t->cont_prefix_len : m->bl;
    size_t n = m->al + m->bl - skip;
    const char *k = tmp;
    char *big = NULL;
    if (n > tmpcap) { big = malloc(n); if (!big) { out[2] = -2; return; } k = big; }
    memcpy((char *)k, m->a, m->al);
    memcpy((char *)k + m->al, m->b + skip, m->bl - skip);
    out[2] = strmap_get(&t->vocab, k, n);
    free(big);
}

static int build_merges(lop_tokenizer *t, const tj *merges, lop_err *e) {
    mlist l = {.e = e};
    size_t cnt = tj_raw_count(merges);
    if (cnt) { l.v = malloc(cnt * sizeof *l.v); l.cap = cnt; if (!l.v) return lop_fail(e, "out of memory"); }
    if (tj_raw_elements(merges, merge_collect, &l, e)) { free(l.v); return -1; }
    int32_t (*ids)[3] = malloc((l.n ? l.n : 1) * sizeof *ids);
    if (!ids || pairmap_init(&t->merges, (uint32_t)l.n)) { free(ids); free(l.v); return lop_fail(e, "out of memory"); }
    #pragma omp parallel
    {
        char tmp[512];
        #pragma omp for schedule(static)
        for (size_t i = 0; i < l.n; i++) merge_ids(t, &l.v[i], tmp, sizeof tmp, ids[i]);
    }
    int r = 0;
    for (size_t i = 0; i < l.n && !r; i++) {
        const mraw *m = &l.v[i];
        if (ids[i][0] < 0 || ids[i][1] < 0)
            r = lop_fail(e, "model.merges[%zu]: token '%.*s' not in the vocabulary", i,
                         (int)(ids[i][0] < 0 ? m->al : m->bl), ids[i][0] < 0 ? m->a : m->b);
        else if (ids[i][2] == -2) r = lop_fail(e, "out of memory");
        else if (ids[i][2] < 0)
            r = lop_fail(e, "model.merges[%zu]: merged token '%.*s%.*s' not in the vocabulary", i,
                         (int)m->al, m->a, (int)m->bl, m->b);
        else if (pairmap_put(&t->merges, (uint32_t)ids[i][0], (uint32_t)ids[i][1], (uint32_t)i, ids[i][2]))
            r = lop_fail(e, "out of memory");
    }
    free(ids); free(l.v);
    return r;
}

static int parse_model(lop_tokenizer *t, const tj *m, const tj *added, lop_err *e) {
    const char *ty = type_of(m);
    if (tj_get(m, "type") && strcmp(ty, "BPE")) return lop_fail(e, "unsupported model '%s' (lop supports BPE)", ty);
    if (!tj_get(m, "type") && !tj_get(m, "merges")) return lop_fail(e, "unsupported model (no type, no merges: lop supports BPE)");
    const tj *dr = tj_get(m, "dropout");
    if (dr && dr->type == TJ_NUM && dr->num != 0) return lop_fail(e, "unsupported BPE dropout %g (lop is deterministic)", dr->num);
    const tj *vocab = tj_get(m, "vocab"), *merges = tj_get(m, "merges");
    if (!vocab || vocab->type != TJ_RAW || vocab->s[0] != '{') return lop_fail(e, "model.vocab missing or not an object");
    if (!merges || merges->type != TJ_RAW || merges->s[0] != '[') return lop_fail(e, "model.merges missing or not a list");
    uint32_t n;
    const char *s;
    if ((s = tj_str(m, "continuing_subword_prefix", &n)) && n) { t->cont_prefix = dupn(s, n); t->cont_prefix_len = n; }
    if ((s = tj_str(m, "end_of_word_suffix", &n)) && n) { t->eow_suffix = dupn(s, n); t->eow_suffix_len = n; }
    mctx c = {.t = t, .maxid = -1, .e = e};
    if (strmap_init(&t->vocab, (uint32_t)tj_raw_count(vocab) + 16)) return lop_fail(e, "out of memory");
    if (tj_raw_members(vocab, vocab_cb, &c, e)) return -1;
    /* ids span vocab and added tokens */
    if (added && added->type == TJ_ARR)
        for (uint32_t i = 0; i < added->n; i++) {
            const tj *id = tj_get(&added->kids[i], "id");
            if (!id || id->type != TJ_NUM || id->num < 0 || id->num > 1e8) return lop_fail(e, "added_tokens[%u]: bad id", i);
            if ((int32_t)id->num > c.maxid) c.maxid = (int32_t)id->num;
        }
    t->nvocab = c.maxid + 1;
    t->id_str = calloc((size_t)t->nvocab + 1, sizeof *t->id_str);
    t->id_len = calloc((size_t)t->nvocab + 1, sizeof *t->id_len);
    t->special = calloc((size_t)t->nvocab + 1, 1);
    t->is_added = calloc((size_t)t->nvocab + 1, 1);
    t->cp_id = malloc(CP_TABLE * sizeof *t->cp_id);
    if (!t->id_str || !t->id_len || !t->special || !t->is_added || !t->cp_id) return lop_fail(e, "out of memory");
    memset(t->cp_id, 0xFF, CP_TABLE * sizeof *t->cp_id);
    for (uint32_t i = 0; i < t->vocab.n; i++) {
        const sment *en = &t->vocab.ent[i];
        t->id_str[en->val] = en->key; t->id_len[en->val] = en->klen;
        uint32_t cp;
        if (en->klen && (uint32_t)u8_len((unsigned char)en->key[0]) == en->klen) {
            u8_dec((const unsigned char *)en->key, &cp);
            if (cp < CP_TABLE && strmap_get(&t->vocab, en->key, en->klen) == en->val) t->cp_id[cp] = en->val;
        }
    }
    /* options */
    t->unk_id = -1;
    if ((s = tj_str(m, "unk_token", &n))) t->unk_id = strmap_get(&t->vocab, s, n);
    t->fuse_unk = tj_bool(m, "fuse_unk", 0);
    t->byte_fallback = tj_bool(m, "byte_fallback", 0);
    t->ignore_merges = tj_bool(m, "ignore_merges", 0);
    for (int b = 0; b < 256; b++) {
        char nm[8];
        snprintf(nm, sizeof nm, "<0x%02X>", b);
        t->byte_id[b] = t->byte_fallback ? strmap_get(&t->vocab, nm, 6) : -1;
    }
    /* where may a long word be cut before "▁"? (see meta_unsafe) */
    if (!t->cont_prefix_len && !t->eow_suffix_len && strmap_get(&t->vocab, "\xE2\x96\x81", 3) >= 0) {
        t->meta_unsafe = calloc(CP_TABLE / 8, 1);
        if (!t->meta_unsafe) return lop_fail(e, "out of memory");
        for (uint32_t i = 0; i < t->vocab.n && t->meta_unsafe; i++) {
            const char *k = t->vocab.ent[i].key; uint32_t kl = t->vocab.ent[i].klen;
            for (uint32_t j = 0; j + 3 <= kl; j++) {
                const char *f = memmem(k + j, kl - j, "\xE2\x96\x81", 3);
                if (!f) break;
                j = (uint32_t)(f - k);
                if (j == 0) continue;
                uint32_t q = j - 1, cp;
                while (q > 0 && ((unsigned char)k[q] & 0xC0) == 0x80) q--;
                u8_dec((const unsigned char *)k + q, &cp);
                if (cp == 0x2581) continue;
                if (cp >= CP_TABLE) { free(t->meta_unsafe); t->meta_unsafe = NULL; break; }
                t->meta_unsafe[cp >> 3] |= (uint8_t)(1 << (cp & 7));
            }
        }
    }
    return build_merges(t, merges, e);
}

static int parse_added(lop_tokenizer *t, const tj *added, lop_err *e) {
    if (!added || added->type == TJ_NULL) return 0;
    if (added->type != TJ_ARR) return lop_fail(e, "added_tokens is not a list");
    t->added = calloc(added->n ? added->n : 1, sizeof *t->added);
    if (!t->added) return lop_fail(e, "out of memory");
    for (uint32_t i = 0; i < added->n; i++) {
        const tj *a = &added->kids[i];
        uint32_t n;
        const char *c = tj_str(a, "content", &n);
        if (!c) return lop_fail(e, "added_tokens[%u]: no content", i);
        tadded *d = &t->added[t->nadded++];
        d->content = (char *)c; d->len = n;
        d->id = (int32_t)tj_get(a, "id")->num;
        d->special = (uint8_t)tj_bool(a, "special", 0);
        d->lstrip = (uint8_t)tj_bool(a, "lstrip", 0);
        d->rstrip = (uint8_t)tj_bool(a, "rstrip", 0);
        d->single_word = (uint8_t)tj_bool(a, "single_word", 0);
        d->normalized = (uint8_t)tj_bool(a, "normalized", !d->special);
        t->id_str[d->id] = c; t->id_len[d->id] = n;  /* added content wins for id -> token */
        t->special[d->id] = d->special;
        t->is_added[d->id] = 1;
    }
    return 0;
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
    d->kids[0].pat.lit = dupn("\xE2\x96\x81", 3); d->kids[0].pat.litlen = 3;
    d->kids[0].content = dupn(" ", 1); d->kids[0].clen = 1;
    d->kids[1].kind = DEC_BYTEFALLBACK;
    d->kids[2].kind = DEC_FUSE;
    d->kids[3].kind = DEC_STRIP;
    d->kids[3].content = dupn(" ", 1); d->kids[3].clen = 1; d->kids[3].start = 1;
    if (t->dec) { dec_free(t->dec); free(t->dec); }
    t->dec = d;
    return 0;
}

/* the pre-tokenizer tree as a list of stages (a Sequence runs its kids in order) */
static int count_stages(const tpre *p) {
    if (p->kind != PRE_SEQ) return 1;
    int n = 0;
    for (int i = 0; i < p->nkids; i++) n += count_stages(&p->kids[i]);
    return n;
}
static void fill_stages(const tpre *p, const tpre **out, int *k) {
    if (p->kind != PRE_SEQ) { out[(*k)++] = p; return; }
    for (int i = 0; i < p->nkids; i++) fill_stages(&p->kids[i], out, k);
}
static int flatten_pre(lop_tokenizer *t, lop_err *e) {
    free(t->stages); t->stages = NULL; t->nstages = 0;
    if (!t->pre) return 0;
    int n = count_stages(t->pre), k = 0;
    t->stages = malloc((size_t)(n ? n : 1) * sizeof *t->stages);
    if (!t->stages) return lop_fail(e, "out of memory");
    fill_stages(t->pre, t->stages, &k);
    t->nstages = k;
    return 0;
}

static int has_bytelevel(const tpre *p) {
    if (!p) return 0;
    if (p->kind == PRE_BYTELEVEL) return 1;
    for (int i = 0; i < p->nkids; i++) if (has_bytelevel(&p->kids[i])) return 1;
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
    if (parse_model(t, model, added, e) || parse_added(t, added, e)) goto wrap;
    if ((v = tj_get(root, "normalizer")) && v->type != TJ_NULL) {
        t->norm = calloc(1, sizeof *t->norm);
        if (!t->norm) { lop_fail(e, "out of memory"); goto fail; }
        if (parse_norm(v, t->norm, e)) goto wrap;
    }
    if ((v = tj_get(root, "pre_tokenizer")) && v->type != TJ_NULL) {
        t->pre = calloc(1, sizeof *t->pre);
        if (!t->pre) { lop_fail(e, "out of memory"); goto fail; }
        if (parse_pre(v, t->pre, e)) goto wrap;
    }
    if ((v = tj_get(root, "decoder")) && v->type != TJ_NULL) {
        t->dec = calloc(1, sizeof *t->dec);
        if (!t->dec) { lop_fail(e, "out of memory"); goto fail; }
        if (parse_dec(v, t->dec, e)) goto wrap;
    }
    if ((v = tj_get(root, "post_processor")) && v->type != TJ_NULL && parse_post(t, v, &t->post, e)) goto wrap;
    if ((v = tj_get(root, "truncation")) && v->type != TJ_NULL) { lop_fail(e, "unsupported truncation (set it to null)"); goto wrap; }
    if ((v = tj_get(root, "padding")) && v->type != TJ_NULL) { lop_fail(e, "unsupported padding (set it to null)"); goto wrap; }
    t->byte_level = has_bytelevel(t->pre);
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
            if ((add_bos && t->bos >= 0 && ids_append(&t->post.pre, &t->post.npre, t->bos)) ||
                (add_eos && t->eos >= 0 && ids_append(&t->post.post, &t->post.npost, t->eos))) { lop_fail(e, "out of memory"); goto fail; }
        }
    }
    if (flatten_pre(t, e)) goto wrap;
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
