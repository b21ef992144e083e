/* tok_bpe.c — the BPE model, merge for merge what HF's models/bpe (word.rs merge_all) does:
 * a min-heap of candidate merges ordered by (rank, position); a popped entry is applied only if
 * its left symbol still exists, has a right neighbour, and that pair still merges to the same
 * id; each merge pushes the new pairs with its neighbours. Unknown chars: byte fallback
 * ("<0xXX>" tokens) when enabled, else the unk token (fused runs when fuse_unk), else dropped.
 * ignore_merges: a word that is itself a vocab entry is emitted whole. */
#include "tok_internal.h"
#include <stdio.h>
#include "utf8.h"
#include "tok_json.h"
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

typedef struct hent { uint32_t rank, pos; int32_t nid; } hent;

/* word cache: words up to WC_MAXLEN bytes -> their ids; cleared when full */
#define WC_BITS 16
#define WC_MAXLEN 48
typedef struct wslot { uint64_t h; uint32_t koff, ioff; uint16_t klen, nid; } wslot;

struct bpe_scratch {
    int32_t *c, *prev, *next; uint32_t *len; size_t cap;
    hent *heap; size_t hn, hcap;
    char *tmp; size_t tmpcap;
    uint64_t owner;                  /* uid of the tokenizer the cache belongs to */
    wslot *slot; uint32_t nslot;
    tbuf keys; ivec ids;
};

static void scratch_free(void *p) {
    bpe_scratch *s = p;
    if (!s) return;
    free(s->c); free(s->prev); free(s->next); free(s->len); free(s->heap); free(s->tmp);
    free(s->slot); tbuf_free(&s->keys); free(s->ids.v);
    free(s);
}

static pthread_key_t sc_key;
static pthread_once_t sc_once = PTHREAD_ONCE_INIT;
static void sc_key_init(void) { pthread_key_create(&sc_key, scratch_free); }

static void wc_clear(bpe_scratch *s) {
    if (s->slot) memset(s->slot, 0, sizeof(wslot) << WC_BITS);
    s->nslot = 0; s->keys.len = 0; s->ids.n = 0;
}

bpe_scratch *tok_thread_scratch(const lop_tokenizer *t) {
    pthread_once(&sc_once, sc_key_init);
    bpe_scratch *s = pthread_getspecific(sc_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return NULL;
        s->slot = calloc((size_t)1 << WC_BITS, sizeof *s->slot);
        if (!s->slot || pthread_setspecific(sc_key, s)) { scratch_free(s); return NULL; }
    }
    if (s->owner != t->uid) { wc_clear(s); s->owner = t->uid; }
    return s;
}

static uint64_t whash(const char *k, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    while (n >= 8) { uint64_t w; memcpy(&w, k, 8); h = (h ^ w) * 0xff51afd7ed558ccdull; h ^= h >> 32; k += 8; n -= 8; }
    uint64_t w = 0; memcpy(&w, k, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull; h ^= h >> 29;
    return h | 1;                    /* 0 marks an empty slot */
}

static int reserve(bpe_scratch *s, size_t n) {
    if (n <= s->cap) return 0;
    size_t nc = s->cap ? s->cap : 256;
    while (nc < n) nc *= 2;
    int32_t *c = realloc(s->c, nc * sizeof *c); if (!c) return -1; s->c = c;
    int32_t *p = realloc(s->prev, nc * sizeof *p); if (!p) return -1; s->prev = p;
    int32_t *x = realloc(s->next, nc * sizeof *x); if (!x) return -1; s->next = x;
    uint32_t *l = realloc(s->len, nc * sizeof *l); if (!l) return -1; s->len = l;
    s->cap = nc;
    return 0;
}

static inline int hless(const hent *a, const hent *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}
static int hpush(bpe_scratch *s, uint32_t rank, uint32_t pos, int32_t nid) {
    if (s->hn == s->hcap) {
        size_t nc = s->hcap ? s->hcap * 2 : 256;
        hent *nh = realloc(s->heap, nc * sizeof *nh);
        if (!nh) return -1;
        s->heap = nh; s->hcap = nc;
    }
    hent x = {rank, pos, nid};
    size_t i = s->hn++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (!hless(&x, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = x;
    return 0;
}
static hent hpop(bpe_scratch *s) {
    hent top = s->heap[0], x = s->heap[--s->hn];
    size_t i = 0, n = s->hn;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t m = l + 1 < n && hless(&s->heap[l + 1], &s->heap[l]) ? l + 1 : l;
        if (!hless(&s->heap[m], &x)) break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (n) s->heap[i] = x;
    return top;
}

/* id of one char (with the continuing-subword prefix / end-of-word suffix when configured) */
static int32_t char_id(const lop_tokenizer *t, bpe_scratch *sc, const char *ch, int k, uint32_t cp,
                       int first, int last) {
    int pre = !first && t->cont_prefix_len, suf = last && t->eow_suffix_len;
    if (!pre && !suf) {
        if (cp < CP_TABLE) return t->cp_id[cp];
        return strmap_get(&t->vocab, ch, (size_t)k);
    }
    size_t n = (pre ? t->cont_prefix_len : 0) + (size_t)k + (suf ? t->eow_suffix_len : 0);
    if (n > sc->tmpcap) {
        char *nt = realloc(sc->tmp, n);
        if (!nt) return -2;
        sc->tmp = nt; sc->tmpcap = n;
    }
    size_t o = 0;
    if (pre) { memcpy(sc->tmp, t->cont_prefix, t->cont_prefix_len); o = t->cont_prefix_len; }
    memcpy(sc->tmp + o, ch, (size_t)k); o += (size_t)k;
    if (suf) { memcpy(sc->tmp + o, t->eow_suffix, t->eow_suffix_len); o += t->eow_suffix_len; }
    return strmap_get(&t->vocab, sc->tmp, o);
}

static int bpe_run(const lop_tokenizer *t, const char *w, size_t n, ivec *out, bpe_scratch *sc, lop_err *e);

/* bpe_run through the word cache: short words repeat (Zipf), merging them once is enough */
static int bpe_cached(const lop_tokenizer *t, const char *w, size_t n, ivec *out, bpe_scratch *sc, lop_err *e) {
    if (n > WC_MAXLEN || !sc->slot) return bpe_run(t, w, n, out, sc, e);
    uint64_t h = whash(w, n);
    uint32_t mask = (1u << WC_BITS) - 1, i = (uint32_t)h & mask;
    while (sc->slot[i].h) {
        wslot *sl = &sc->slot[i];
        if (sl->h == h && sl->klen == n && !memcmp(sc->keys.p + sl->koff, w, n)) {
            for (uint32_t k = 0; k < sl->nid; k++)
                if (ivec_push(out, sc->ids.v[sl->ioff + k])) return lop_fail(e, "out of memory");
            return 0;
        }
        i = (i + 1) & mask;
    }
    size_t before = out->n;
    if (bpe_run(t, w, n, out, sc, e)) return -1;
    size_t nid = out->n - before;
    if (nid > 0xFFFF) return 0;
    if (sc->nslot * 2 >= (1u << WC_BITS) || sc->keys.len > (64u << 20)) {
        wc_clear(sc);
        i = (uint32_t)h & mask;
    }
    size_t koff = sc->keys.len, ioff = sc->ids.n;
    if (tbuf_put(&sc->keys, w, n)) return 0;              /* no room: just don't cache */
    for (size_t k = 0; k < nid; k++) if (ivec_push(&sc->ids, out->v[before + k])) { sc->keys.len = koff; sc->ids.n = ioff; return 0; }
    sc->slot[i] = (wslot){h, (uint32_t)koff, (uint32_t)ioff, (uint16_t)n, (uint16_t)nid};
    sc->nslot++;
    return 0;
}

int bpe_word(const lop_tokenizer *t, const char *w, size_t n, ivec *out, bpe_scratch *sc, lop_err *e) {
    if (!n) return 0;
    if (t->ignore_merges) {
        int32_t id = strmap_get(&t->vocab, w, n);
        if (id >= 0) return ivec_push(out, id) ? lop_fail(e, "out of memory") : 0;
    }
    if (!t->meta_unsafe || n < 64) return bpe_cached(t, w, n, out, sc, e);
    /* cut before each "▁" whose left char is a plain vocab char that never precedes "▁" in a
     * token (see meta_unsafe) */
    size_t start = 0, i = 0;
    while (i + 3 <= n) {
        const char *f = memmem(w + i, n - i, "\xE2\x96\x81", 3);
        if (!f) break;
        size_t p = (size_t)(f - w);
        if (p > start) {
            size_t k = p - 1;
            while (k > start && ((unsigned char)w[k] & 0xC0) == 0x80) k--;
            uint32_t cp; u8_dec((const unsigned char *)w + k, &cp);
            if (cp != 0x2581 && cp < CP_TABLE && t->cp_id[cp] >= 0 && !(t->meta_unsafe[cp >> 3] & (1 << (cp & 7)))) {
                if (bpe_cached(t, w + start, p - start, out, sc, e)) return -1;
                start = p;
            }
        }
        i = p + 3;
    }
    return bpe_cached(t, w + start, n - start, out, sc, e);
}

static int bpe_run(const lop_tokenizer *t, const char *w, size_t n, ivec *out, bpe_scratch *sc, lop_err *e) {
    if (reserve(sc, n + 1)) return lop_fail(e, "out of memory");
    size_t ns = 0;
    int32_t unk = -1; uint32_t unk_len = 0;
#define ADD(id_, l_) do { sc->c[ns] = (id_); sc->len[ns] = (l_); ns++; } while (0)
    for (size_t i = 0; i < n;) {
        uint32_t cp; int k = u8_dec((const unsigned char *)w + i, &cp);
        int32_t id = char_id(t, sc, w + i, k, cp, i == 0, i + (size_t)k == n);
        if (id == -2) return lop_fail(e, "out of memory");
        if (id >= 0) {
            if (unk >= 0) { ADD(unk, unk_len); unk = -1; }
            ADD(id, (uint32_t)k);
            i += k;
            continue;
        }
        if (t->byte_fallback) {
            /* every byte of the symbol (prefix and suffix included) must have a "<0xXX>"
             * token; HF does not flush a pending unk here, so the bytes go before it */
            int pre = i && t->cont_prefix_len, suf = i + (size_t)k == n && t->eow_suffix_len;
            size_t sl = (pre ? t->cont_prefix_len : 0) + (size_t)k + (suf ? t->eow_suffix_len : 0);
            const char *sym = w + i;
            if (pre || suf) sym = sc->tmp;          /* char_id built it there */
            int ok = 1;
            for (size_t j = 0; j < sl; j++) if (t->byte_id[(unsigned char)sym[j]] < 0) ok = 0;
            if (ok) {
                if (reserve(sc, ns + sl + (n - i) + 1)) return lop_fail(e, "out of memory");
                sym = (pre || suf) ? sc->tmp : w + i;
                for (size_t j = 0; j < sl; j++) ADD(t->byte_id[(unsigned char)sym[j]], 1);
                i += k;
                continue;
            }
        }
        if (t->unk_id >= 0) {
            if (unk >= 0 && t->fuse_unk) unk_len += (uint32_t)k;
            else {
                if (unk >= 0) ADD(unk, unk_len);
                unk = t->unk_id; unk_len = (uint32_t)k;
            }
        }
        i += k;
    }
    if (unk >= 0) ADD(unk, unk_len);
#undef ADD
    /* link and seed the heap */
    for (size_t i = 0; i < ns; i++) { sc->prev[i] = (int32_t)i - 1; sc->next[i] = i + 1 < ns ? (int32_t)i + 1 : -1; }
    sc->hn = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        uint32_t rank; int32_t nid;
        if (pairmap_get(&t->merges, (uint32_t)sc->c[i], (uint32_t)sc->c[i + 1], &rank, &nid))
            if (hpush(sc, rank, (uint32_t)i, nid)) return lop_fail(e, "out of memory");
    }
    while (sc->hn) {
        hent top = hpop(sc);
        uint32_t p = top.pos;
        if (sc->len[p] == 0 || sc->next[p] < 0) continue;
        int32_t q = sc->next[p];
        uint32_t rank; int32_t nid;
        if (!pairmap_get(&t->merges, (uint32_t)sc->c[p], (uint32_t)sc->c[q], &rank, &nid) || nid != top.nid)
            continue;
        sc->c[p] = top.nid;
        sc->len[p] += sc->len[q];
        sc->len[q] = 0;
        sc->next[p] = sc->next[q];
        if (sc->next[q] >= 0) sc->prev[sc->next[q]] = (int32_t)p;
        if (sc->prev[p] >= 0) {
            int32_t a = sc->prev[p];
            if (pairmap_get(&t->merges, (uint32_t)sc->c[a], (uint32_t)sc->c[p], &rank, &nid))
                if (hpush(sc, rank, (uint32_t)a, nid)) return lop_fail(e, "out of memory");
        }
        if (sc->next[p] >= 0) {
            int32_t b = sc->next[p];
            if (pairmap_get(&t->merges, (uint32_t)sc->c[p], (uint32_t)sc->c[b], &rank, &nid))
                if (hpush(sc, rank, p, nid)) return lop_fail(e, "out of memory");
        }
    }
    for (size_t i = 0; i < ns; i++)
        if (sc->len[i] && ivec_push(out, sc->c[i])) return lop_fail(e, "out of memory");
    return 0;
}

/* ---- parsing: tokenizer.json's "model" (BPE: vocab, merges, options) ---- */

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

int tok_bpe_parse(lop_tokenizer *t, const tj *m, const tj *added, lop_err *e) {
    const char *ty = tok_type_of(m);
    if (tj_get(m, "type") && strcmp(ty, "BPE")) return lop_fail(e, "unsupported model '%s' (lop supports BPE)", ty);
    if (!tj_get(m, "type") && !tj_get(m, "merges")) return lop_fail(e, "unsupported model (no type, no merges: lop supports BPE)");
    const tj *dr = tj_get(m, "dropout");
    if (dr && dr->type == TJ_NUM && dr->num != 0) return lop_fail(e, "unsupported BPE dropout %g (lop is deterministic)", dr->num);
    const tj *vocab = tj_get(m, "vocab"), *merges = tj_get(m, "merges");
    if (!vocab || vocab->type != TJ_RAW || vocab->s[0] != '{') return lop_fail(e, "model.vocab missing or not an object");
    if (!merges || merges->type != TJ_RAW || merges->s[0] != '[') return lop_fail(e, "model.merges missing or not a list");
    uint32_t n;
    const char *s;
    if ((s = tj_str(m, "continuing_subword_prefix", &n)) && n) { t->cont_prefix = tok_dupn(s, n); t->cont_prefix_len = n; }
    if ((s = tj_str(m, "end_of_word_suffix", &n)) && n) { t->eow_suffix = tok_dupn(s, n); t->eow_suffix_len = n; }
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
