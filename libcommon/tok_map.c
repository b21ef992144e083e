/* tok_map.c — the tokenizer's hash maps (token bytes -> id, id pair -> merge) and scratch
 * vectors. Open addressing, power-of-two tables, load <= 1/2. */
#include "tok_internal.h"
#include <stdlib.h>
#include <string.h>

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
    memcpy(b->p + b->len, s, n);
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
    while (sz < expect * 2u + 16) sz *= 2;
    m->mask = sz - 1;
    m->slot = calloc(sz, sizeof *m->slot);
    m->slot_hash = malloc(sz * sizeof *m->slot_hash);
    m->cap = expect + 16;
    m->key = malloc(m->cap * sizeof *m->key);
    m->klen = malloc(m->cap * sizeof *m->klen);
    m->val = malloc(m->cap * sizeof *m->val);
    if (!m->slot || !m->slot_hash || !m->key || !m->klen || !m->val) { strmap_free(m); return -1; }
    return 0;
}

static int strmap_grow(strmap *m) {
    uint32_t sz = (m->mask + 1) * 2;
    uint32_t *ns = calloc(sz, sizeof *ns), *nh = malloc(sz * sizeof *nh);
    if (!ns || !nh) { free(ns); free(nh); return -1; }
    for (uint32_t i = 0; i <= m->mask; i++) {
        if (!m->slot[i]) continue;
        uint32_t h = m->slot_hash[i], j = h & (sz - 1);
        while (ns[j]) j = (j + 1) & (sz - 1);
        ns[j] = m->slot[i]; nh[j] = h;
    }
    free(m->slot); free(m->slot_hash);
    m->slot = ns; m->slot_hash = nh; m->mask = sz - 1;
    return 0;
}

int strmap_put(strmap *m, const char *k, uint32_t klen, int32_t v) {
    uint32_t h = (uint32_t)hash_bytes(k, klen), i = h & m->mask;
    while (m->slot[i]) {
        uint32_t ei = m->slot[i] - 1;
        if (m->slot_hash[i] == h && m->klen[ei] == klen && !memcmp(m->key[ei], k, klen)) {
            m->val[ei] = v;
            return 0;
        }
        i = (i + 1) & m->mask;
    }
    if (m->n == m->cap) {
        uint32_t nc = m->cap * 2;
        const char **nk = realloc(m->key, nc * sizeof *nk);
        if (!nk) return -1;
        m->key = nk;
        uint32_t *nl = realloc(m->klen, nc * sizeof *nl);
        if (!nl) return -1;
        m->klen = nl;
        int32_t *nv = realloc(m->val, nc * sizeof *nv);
        if (!nv) return -1;
        m->val = nv;
        m->cap = nc;
    }
    uint32_t ei = m->n++;
    m->key[ei] = k; m->klen[ei] = klen; m->val[ei] = v;
    m->slot[i] = ei + 1; m->slot_hash[i] = h;
    if (m->n * 2 > m->mask) return strmap_grow(m);
    return 0;
}

int32_t strmap_get(const strmap *m, const char *k, size_t klen) {
    uint32_t h = (uint32_t)hash_bytes(k, klen), i = h & m->mask;
    while (m->slot[i]) {
        uint32_t ei = m->slot[i] - 1;
        if (m->slot_hash[i] == h && m->klen[ei] == klen && !memcmp(m->key[ei], k, klen))
            return m->val[ei];
        i = (i + 1) & m->mask;
    }
    return -1;
}

void strmap_free(strmap *m) {
    free(m->slot); free(m->slot_hash); free(m->key); free(m->klen); free(m->val);
    memset(m, 0, sizeof *m);
}

int pairmap_init(pairmap *m, uint32_t expect) {
    uint32_t sz = 16;
    while (sz < expect * 2u + 16) sz *= 2;
    m->mask = sz - 1; m->n = 0;
    m->key = malloc(sz * sizeof *m->key);
    m->val = malloc(sz * sizeof *m->val);
    if (!m->key || !m->val) { pairmap_free(m); return -1; }
    memset(m->key, 0xFF, sz * sizeof *m->key);
    return 0;
}

/* The table is sized for every merge up front, so put never grows. A repeated pair keeps the
 * later rank, as HF's HashMap collect does. */
void pairmap_put(pairmap *m, uint32_t a, uint32_t b, uint32_t rank, int32_t new_id) {
    uint64_t k = ((uint64_t)a << 32) | b;
    uint32_t i = (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32) & m->mask;
    while (m->key[i] != UINT64_MAX && m->key[i] != k) i = (i + 1) & m->mask;
    if (m->key[i] == UINT64_MAX) m->n++;
    m->key[i] = k;
    m->val[i] = ((uint64_t)rank << 32) | (uint32_t)new_id;
}

void pairmap_free(pairmap *m) { free(m->key); free(m->val); m->key = NULL; m->val = NULL; }
