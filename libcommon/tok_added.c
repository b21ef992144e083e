/* tok_added.c — added tokens: found in the text before the model sees it, leftmost-longest (HF
 * builds an Aho-Corasick automaton with MatchKind::LeftmostLongest), honouring single_word
 * (skip a match glued to word characters), lstrip/rstrip (swallow the whitespace around it).
 * Tokens with normalized=false are matched in the raw text, the others in the normalized text
 * against their normalized content (two tries, as HF's split_trie / split_normalized_trie). */
#include "tok_internal.h"
#include "tok_json.h"
#include <stdlib.h>
#include <string.h>

typedef struct { uint32_t from; uint8_t b; uint32_t to; } tedge;

static int cmp_edge(const void *a, const void *b) {
    const tedge *x = a, *y = b;
    if (x->from != y->from) return x->from < y->from ? -1 : 1;
    return (int)x->b - (int)y->b;
}

/* Child of node with byte b: binary search in its sorted edges. */
static inline int64_t child(const ttrie *tr, uint32_t node, uint8_t b) {
    uint32_t lo = tr->first_edge[node], hi = lo + tr->nedges[node];
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (tr->edge_byte[mid] < b) lo = mid + 1;
        else if (tr->edge_byte[mid] > b) hi = mid;
        else return tr->edge_to[mid];
    }
    return -1;
}

int trie_build(ttrie *tr, const tadded *ad, int nad, int want_normalized, const tnorm *nm, lop_err *e) {
    memset(tr, 0, sizeof *tr);
    /* build with a simple edge list, then sort edges per node */
    size_t cap_nodes = 1, cap_edges = 0;
    for (int i = 0; i < nad; i++) if (ad[i].normalized == want_normalized) cap_nodes += ad[i].len * 4 + 8;
    cap_edges = cap_nodes;
    tedge *edges = malloc(cap_edges * sizeof *edges);
    int32_t *term = malloc(cap_nodes * sizeof *term);
    if (!edges || !term) { free(edges); free(term); return lop_fail(e, "out of memory"); }
    uint32_t nnodes = 1, nedges = 0;
    term[0] = -1;
    pairmap kids;                                   /* (node, byte) -> child while building */
    if (pairmap_init(&kids, (uint32_t)cap_nodes)) { free(edges); free(term); return lop_fail(e, "out of memory"); }
    for (int i = 0; i < nad; i++) {
        if (ad[i].normalized != want_normalized || !ad[i].len) continue;
        const char *s = ad[i].content; size_t n = ad[i].len;
        tbuf nb = {0};
        if (want_normalized && nm) {
            if (norm_apply(nm, s, n, &nb, e)) { free(edges); free(term); tbuf_free(&nb); pairmap_free(&kids); return -1; }
            s = nb.p; n = nb.len;
            if (!n) { tbuf_free(&nb); continue; }
        }
        if (nnodes + n + 1 > cap_nodes || nedges + n + 1 > cap_edges) {
            size_t nc = (cap_nodes + n + 1) * 2;
            int32_t *nt = realloc(term, nc * sizeof *nt);
            tedge *ne = realloc(edges, nc * sizeof *ne);
            if (nt) term = nt;
            if (ne) edges = ne;
            if (!nt || !ne) { free(edges); free(term); tbuf_free(&nb); pairmap_free(&kids); return lop_fail(e, "out of memory"); }
            cap_nodes = cap_edges = nc;
            pairmap_free(&kids);                    /* re-index the edges in a bigger map */
            if (pairmap_init(&kids, (uint32_t)nc)) { free(edges); free(term); tbuf_free(&nb); return lop_fail(e, "out of memory"); }
            for (uint32_t k = 0; k < nedges; k++)
                if (pairmap_put(&kids, edges[k].from, edges[k].b, 0, (int32_t)edges[k].to)) { free(edges); free(term); tbuf_free(&nb); pairmap_free(&kids); return lop_fail(e, "out of memory"); }
        }
        uint32_t node = 0;
        for (size_t j = 0; j < n; j++) {
            uint8_t b = (uint8_t)s[j];
            uint32_t nx, rk; int32_t got;
            if (pairmap_get(&kids, node, b, &rk, &got)) nx = (uint32_t)got;
            else {
                nx = nnodes++;
                term[nx] = -1;
                edges[nedges++] = (tedge){node, b, nx};
                if (pairmap_put(&kids, node, b, 0, (int32_t)nx)) { free(edges); free(term); tbuf_free(&nb); pairmap_free(&kids); return lop_fail(e, "out of memory"); }
            }
            node = nx;
        }
        /* the same content twice: the later token wins, as in HF's map */
        term[node] = i;
        tr->first_byte[(uint8_t)s[0]] = 1;
        tbuf_free(&nb);
    }
    pairmap_free(&kids);
    qsort(edges, nedges, sizeof *edges, cmp_edge);
    tr->nnodes = nnodes; tr->nedges_total = nedges;
    tr->first_edge = calloc(nnodes, sizeof *tr->first_edge);
    tr->nedges = calloc(nnodes, sizeof *tr->nedges);
    tr->edge_byte = malloc((nedges + 1) * sizeof *tr->edge_byte);
    tr->edge_to = malloc((nedges + 1) * sizeof *tr->edge_to);
    tr->term = term;
    if (!tr->first_edge || !tr->nedges || !tr->edge_byte || !tr->edge_to) {
        free(edges); trie_free(tr); return lop_fail(e, "out of memory");
    }
    for (uint32_t k = 0; k < nedges; k++) {
        if (!tr->nedges[edges[k].from]) tr->first_edge[edges[k].from] = k;
        tr->nedges[edges[k].from]++;
        tr->edge_byte[k] = edges[k].b;
        tr->edge_to[k] = edges[k].to;
    }
    free(edges);
    return 0;
}

void trie_free(ttrie *tr) {
    free(tr->first_edge); free(tr->nedges); free(tr->term); free(tr->edge_byte); free(tr->edge_to);
    memset(tr, 0, sizeof *tr);
}

/* Longest token starting at s[i]: its added index, length in *len; -1 if none. */
static int longest_at(const ttrie *tr, const char *s, size_t n, size_t i, size_t *len) {
    uint32_t node = 0;
    int best = -1;
    for (size_t j = i; j < n; j++) {
        int64_t c = child(tr, node, (uint8_t)s[j]);
        if (c < 0) break;
        node = (uint32_t)c;
        if (tr->term[node] >= 0) { best = tr->term[node]; *len = j + 1 - i; }
    }
    return best;
}

static int prev_is_word(const char *s, size_t start) {
    if (!start) return 0;
    size_t k = start - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    uint32_t cp; u8_dec((const unsigned char *)s + k, &cp);
    return u8_is_word(cp);
}
static int next_is_word(const char *s, size_t n, size_t stop) {
    if (stop >= n) return 0;
    uint32_t cp; u8_dec((const unsigned char *)s + stop, &cp);
    return u8_is_word(cp);
}

/* Matches of one piece, as HF's AddedVocabulary::find_matches: (start, stop, id) triples. */
static int find_matches(const lop_tokenizer *t, const ttrie *tr, const char *s, size_t n,
                        size_t base, int at0, tpvec *out) {
    size_t start_offset = 0, i = 0;
    while (i < n) {
        if (!tr->first_byte[(uint8_t)s[i]]) { i++; continue; }
        size_t len = 0;
        int a = longest_at(tr, s, n, i, &len);
        if (a < 0) { i++; continue; }
        const tadded *tok = &t->added[a];
        size_t start = i, stop = i + len;
        i = stop;                                   /* the automaton resumes after the match */
        if (t->split_special && tok->special) continue;   /* HF's encode_special_tokens */
        if (tok->single_word && (prev_is_word(s, start) || next_is_word(s, n, stop))) continue;
        if (tok->lstrip) {
            size_t k = start;
            while (k > 0) {
                size_t q = k - 1;
                while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
                uint32_t cp; u8_dec((const unsigned char *)s + q, &cp);
                if (!u8_is_space(cp)) break;
                k = q;
            }
            start = k > start_offset ? k : start_offset;
        }
        if (tok->rstrip) {
            while (stop < n) {
                uint32_t cp; int k = u8_dec((const unsigned char *)s + stop, &cp);
                if (!u8_is_space(cp)) break;
                stop += k;
            }
        }
        if (start < start_offset) start = start_offset;
        if (start_offset < start &&
            tpvec_push(out, base + start_offset, start - start_offset, -1, at0 && start_offset == 0)) return -1;
        if (tpvec_push(out, base + start, stop - start, tok->id, at0 && start == 0)) return -1;
        start_offset = stop;
        if (i < stop) i = stop;
    }
    if (start_offset < n &&
        tpvec_push(out, base + start_offset, n - start_offset, -1, at0 && start_offset == 0)) return -1;
    return 0;
}

int added_split(const lop_tokenizer *t, const ttrie *tr, tbuf *buf, tpvec *in, tpvec *out) {
    for (size_t k = 0; k < in->n; k++) {
        tpiece pc = in->v[k];
        if (pc.id >= 0 || tr->nnodes <= 1) {
            if (tpvec_push(out, pc.off, pc.len, pc.id, pc.at0)) return -1;
            continue;
        }
        if (find_matches(t, tr, buf->p + pc.off, pc.len, pc.off, pc.at0, out)) return -1;
    }
    return 0;
}

/* ---- parsing: tokenizer.json's "added_tokens" ---- */

int tok_added_parse(lop_tokenizer *t, const tj *added, lop_err *e) {
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
    /* A file whose ids contradict themselves (one content with two ids, one id with two contents,
     * an added token the vocabulary knows under another id) is refused: HF tokenizers re-assign
     * such a token the vocabulary's id with a warning, and an id's string then depends on the
     * order of the entries; no tokenizer a model was trained with looks like this (the fuzzer
     * found it). Real files repeat vocabulary entries in added_tokens with the same id: fine. */
    for (int i = 0; i < t->nadded; i++) {
        const tadded *d = &t->added[i];
        int32_t v = strmap_get(&t->vocab, d->content, d->len);
        if (v >= 0 && v != d->id)
            return lop_fail(e, "added_tokens[%d]: '%.*s' has id %d but the vocabulary gives it %d", i,
                            (int)(d->len > 40 ? 40 : d->len), d->content, (int)d->id, (int)v);
        if (t->id_len[d->id] != d->len || memcmp(t->id_str[d->id], d->content, d->len))
            return lop_fail(e, "added_tokens[%d]: id %d is given to two different tokens", i, (int)d->id);
        for (int k = 0; k < i; k++)
            if (t->added[k].len == d->len && t->added[k].id != d->id &&
                !memcmp(t->added[k].content, d->content, d->len))
                return lop_fail(e, "added_tokens[%d]: '%.*s' is given two ids (%d and %d)", i,
                                (int)(d->len > 40 ? 40 : d->len), d->content, (int)t->added[k].id, (int)d->id);
    }
    return 0;
}
