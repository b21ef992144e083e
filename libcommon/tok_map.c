/* tok_map.c — the tokenizer's hash maps (token bytes -> id, id pair -> merge) and scratch
 * vectors. Open addressing, power-of-two tables, load <= 1/2. */
#include "tok_internal.h"
#include "tok_json.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int tbuf_reserve(tbuf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t nc = b->cap ? b->cap * 2 : 256;
    while (nc < b->len + extra) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) return -1;
    b->p = np; b->cap = nc;
    return 0;
}
int tbuf_put(tbuf *b, const void *s, size_t n) {
    if (tbuf_reserve(b, n + 1)) return -1;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}
void tbuf_free(tbuf *b) { free(b->p); b->p = NULL; b->len = b->cap = 0; }

int tpvec_push(tpvec *pv, size_t off, size_t len, int32_t id, int at0) {
    if (pv->n == pv->cap) {
        size_t nc = pv->cap ? pv->cap * 2 : 64;
        tpiece *nv = realloc(pv->v, nc * sizeof *nv);
        if (!nv) return -1;
        pv->v = nv; pv->cap = nc;
    }
    pv->v[pv->n++] = (tpiece){off, len, id, (uint8_t)at0};
    return 0;
}
void tpvec_free(tpvec *pv) { free(pv->v); pv->v = NULL; pv->n = pv->cap = 0; }

int ivec_push(ivec *iv, int32_t x) {
    if (iv->n == iv->cap) {
        size_t nc = iv->cap ? iv->cap * 2 : 256;
        int32_t *nv = realloc(iv->v, nc * sizeof *nv);
        if (!nv) return -1;
        iv->v = nv; iv->cap = nc;
    }
    iv->v[iv->n++] = x;
    return 0;
}

/* FNV-1a over 8-byte words then bytes, finished with a multiply-xorshift mix. */
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    while (n >= 8) {
        uint64_t w; memcpy(&w, s, 8);
        h = (h ^ w) * 0x100000001b3ull; h ^= h >> 29;
        s += 8; n -= 8;
    }
    while (n--) h = (h ^ (unsigned char)*s++) * 0x100000001b3ull;
    h ^= h >> 32; h *= 0xd6e8feb86659fd93ull; h ^= h >> 32;
    return h;
}

int strmap_init(strmap *m, uint32_t expect) {
    memset(m, 0, sizeof *m);
    uint32_t sz = 16;
    while (sz < expect + expect / 2 + 16) sz *= 2;
    m->mask = sz - 1;
    m->slot = tok_big_alloc(sz * sizeof *m->slot);
    if (m->slot) memset(m->slot, 0, sz * sizeof *m->slot);
    m->cap = expect + 16;
    m->ent = malloc(m->cap * sizeof *m->ent);
    if (!m->slot || !m->ent) { strmap_free(m); return -1; }
    return 0;
}

static int strmap_grow(strmap *m) {
    uint32_t sz = (m->mask + 1) * 2;
    smslot *ns = tok_big_alloc(sz * sizeof *ns);
    if (!ns) return -1;
    memset(ns, 0, sz * sizeof *ns);
    for (uint32_t i = 0; i <= m->mask; i++) {
        if (!m->slot[i].idx1) continue;
        uint32_t j = m->slot[i].hash & (sz - 1);
        while (ns[j].idx1) j = (j + 1) & (sz - 1);
        ns[j] = m->slot[i];
    }
    free(m->slot);
    m->slot = ns; m->mask = sz - 1;
    return 0;
}

/* the first 8 bytes of a key, zero padded: most tokens are shorter, so a compare rarely needs
 * the key's own (cache-cold) memory */
static inline uint64_t prefix8(const char *k, size_t n) {
    uint64_t p = 0;
    memcpy(&p, k, n < 8 ? n : 8);
    return p;
}

static inline int key_eq(const sment *en, const char *k, size_t klen, uint64_t pre) {
    return en->klen == klen && en->pre == pre && (klen <= 8 || !memcmp(en->key + 8, k + 8, klen - 8));
}

int strmap_put(strmap *m, const char *k, uint32_t klen, int32_t v) {
    uint32_t h = (uint32_t)hash_bytes(k, klen), i = h & m->mask;
    uint64_t pre = prefix8(k, klen);
    while (m->slot[i].idx1) {
        sment *en = &m->ent[m->slot[i].idx1 - 1];
        if (m->slot[i].hash == h && key_eq(en, k, klen, pre)) { en->val = v; return 0; }
        i = (i + 1) & m->mask;
    }
    if (m->n == m->cap) {
        uint32_t nc = m->cap * 2;
        sment *ne = realloc(m->ent, nc * sizeof *ne);
        if (!ne) return -1;
        m->ent = ne; m->cap = nc;
    }
    m->ent[m->n] = (sment){k, klen, v, pre};
    m->slot[i] = (smslot){++m->n, h};
    if ((uint64_t)m->n * 4 > (uint64_t)(m->mask + 1) * 3) return strmap_grow(m);
    return 0;
}

int32_t strmap_get(const strmap *m, const char *k, size_t klen) {
    uint32_t h = (uint32_t)hash_bytes(k, klen), i = h & m->mask;
    uint64_t pre = prefix8(k, klen);
    while (m->slot[i].idx1) {
        if (m->slot[i].hash == h) {
            const sment *en = &m->ent[m->slot[i].idx1 - 1];
            if (key_eq(en, k, klen, pre)) return en->val;
        }
        i = (i + 1) & m->mask;
    }
    return -1;
}

void strmap_free(strmap *m) {
    free(m->slot); free(m->ent);
    memset(m, 0, sizeof *m);
}

int pairmap_init(pairmap *m, uint32_t expect) {
    uint32_t sz = 16;
    while (sz < expect + expect / 2 + 16) sz *= 2;
    m->mask = sz - 1; m->n = 0;
    m->e = tok_big_alloc(sz * sizeof *m->e);
    if (!m->e) return -1;
    memset(m->e, 0xFF, sz * sizeof *m->e);
    return 0;
}

static inline uint32_t pair_slot(uint64_t k, uint32_t mask) {
    return (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static int pairmap_grow(pairmap *m) {
    uint32_t sz = (m->mask + 1) * 2;
    pment *ne = tok_big_alloc(sz * sizeof *ne);
    if (!ne) return -1;
    memset(ne, 0xFF, sz * sizeof *ne);
    for (uint32_t i = 0; i <= m->mask; i++) {
        if (m->e[i].key == UINT64_MAX) continue;
        uint32_t j = pair_slot(m->e[i].key, sz - 1);
        while (ne[j].key != UINT64_MAX) j = (j + 1) & (sz - 1);
        ne[j] = m->e[i];
    }
    free(m->e);
    m->e = ne; m->mask = sz - 1;
    return 0;
}

/* A repeated pair keeps the later rank, as HF's HashMap collect does. */
int pairmap_put(pairmap *m, uint32_t a, uint32_t b, uint32_t rank, int32_t new_id) {
    uint64_t k = ((uint64_t)a << 32) | b;
    uint32_t i = pair_slot(k, m->mask);
    while (m->e[i].key != UINT64_MAX && m->e[i].key != k) i = (i + 1) & m->mask;
    if (m->e[i].key == UINT64_MAX) m->n++;
    m->e[i].key = k;
    m->e[i].val = ((uint64_t)rank << 32) | (uint32_t)new_id;
    if ((uint64_t)m->n * 4 > (uint64_t)(m->mask + 1) * 3) return pairmap_grow(m);
    return 0;
}

void pairmap_free(pairmap *m) { free(m->e); m->e = NULL; }

void *tok_big_alloc(size_t n) {
    if (n < (4u << 20)) return malloc(n ? n : 1);
    size_t al = 2u << 20, sz = (n + al - 1) & ~(al - 1);
    void *p = aligned_alloc(al, sz);
    if (p) madvise(p, sz, MADV_HUGEPAGE);
    return p;
}

/* ---- small helpers of the parsers ---- */

char *tok_dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) { memcpy(d, s, n); d[n] = 0; }
    return d;
}

const char *tok_type_of(const tj *o) {
    const char *t = tj_str(o, "type", NULL);
    return t ? t : "?";
}
