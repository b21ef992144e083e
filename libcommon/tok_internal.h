/* tok_internal.h — the tokenizer's private shapes, shared by libcommon/tok_*.c only.
 *
 * Pipeline (Hugging Face tokenizers' order, see tok_encode.c):
 *   raw text -> split on added tokens (non-normalized ones, raw text) -> normalizer per piece
 *   -> split on normalized added tokens -> pre-tokenizer per piece -> BPE per word
 *   -> post-processor (template: BOS/EOS).
 * Every component is immutable after tok_load, so encode/decode need no locks. */
#ifndef LOP_TOK_INTERNAL_H
#define LOP_TOK_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "tokenizer.h"

/* Large allocations (>= 4 MB) on transparent huge pages: loading Gemma's tokenizer touches
 * ~80 MB, and 4 KB page faults cost more than the parsing. Free with free(). */
void *tok_big_alloc(size_t n);

/* ---- growable byte buffer and piece lists (per call scratch) ---- */
typedef struct tbuf { char *p; size_t len, cap; } tbuf;
int tbuf_reserve(tbuf *b, size_t extra);            /* 0 ok, -1 out of memory */
int tbuf_put(tbuf *b, const void *s, size_t n);
void tbuf_free(tbuf *b);

/* A piece of text in a tbuf (offsets, since the buffer may move). id >= 0: an added token
 * already decided. at0: the piece begins at offset 0 of the original text (Metaspace "first"). */
typedef struct tpiece { size_t off, len; int32_t id; uint8_t at0; } tpiece;
typedef struct tpvec { tpiece *v; size_t n, cap; } tpvec;
int tpvec_push(tpvec *pv, size_t off, size_t len, int32_t id, int at0);
void tpvec_free(tpvec *pv);

typedef struct ivec { int32_t *v; size_t n, cap; } ivec;
int ivec_push(ivec *iv, int32_t x);

/* ---- hash maps ---- */
typedef struct smslot { uint32_t idx1, hash; } smslot;      /* entry index + 1 (0 = empty) */
typedef struct sment { const char *key; uint32_t klen; int32_t val; uint64_t pre; } sment; /* pre: first 8 bytes */
typedef struct strmap {          /* bytes -> int32, open addressing, keys not copied */
    smslot *slot; uint32_t mask;
    sment *ent; uint32_t n, cap;
} strmap;
int strmap_init(strmap *m, uint32_t expect);
int strmap_put(strmap *m, const char *k, uint32_t klen, int32_t v); /* overwrite: last wins */
int32_t strmap_get(const strmap *m, const char *k, size_t klen);    /* -1 if absent */
void strmap_free(strmap *m);

typedef struct pment { uint64_t key, val; } pment;   /* key UINT64_MAX = empty */
typedef struct pairmap {         /* (a,b) token ids -> (rank, new id) */
    pment *e; uint32_t mask, n;
} pairmap;
int pairmap_init(pairmap *m, uint32_t expect);
int pairmap_put(pairmap *m, uint32_t a, uint32_t b, uint32_t rank, int32_t new_id); /* grows */
/* 1 and (*rank,*new_id) if present */
static inline int pairmap_get(const pairmap *m, uint32_t a, uint32_t b, uint32_t *rank, int32_t *nid) {
    uint64_t k = ((uint64_t)a << 32) | b;
    uint32_t i = (uint32_t)((k * 0x9E3779B97F4A7C15ull) >> 32) & m->mask;
    for (;;) {
        uint64_t kk = m->e[i].key;
        if (kk == k) { uint64_t v = m->e[i].val; *rank = (uint32_t)(v >> 32); *nid = (int32_t)(uint32_t)v; return 1; }
        if (kk == UINT64_MAX) return 0;
        i = (i + 1) & m->mask;
    }
}
void pairmap_free(pairmap *m);

/* ---- regex (PCRE2, with onig's \s) ---- */
typedef struct tregex tregex;
tregex *tregex_compile(const char *pattern, size_t len, lop_err *e);
void tregex_free(tregex *r);
typedef struct tmatch { size_t s, e; } tmatch;
/* Per-call matching state (PCRE2 match data, a JIT stack when a piece needs more): one per
 * encode/decode call, so compiled patterns stay shared and read-only. */
typedef struct rx_scratch { void *md, *mc, *js; } rx_scratch;
void rx_scratch_free(rx_scratch *x);
/* Iterate matches like onig's find_iter (an empty match right at the previous match end is
 * skipped by one char). Start with *pos = 0, *last = SIZE_MAX; returns 1 and [*ms,*me) for a
 * match, 0 at the end, -1 on error. s may move between calls (same content). */
int rx_next(const tregex *r, rx_scratch *x, const char *s, size_t n, size_t *pos, size_t *last,
            size_t *ms, size_t *me, lop_err *e);

/* ---- a string pattern: literal or regex (Replace, Split) ---- */
typedef struct tpattern { char *lit; size_t litlen; tregex *re; } tpattern;
int tpattern_next(const tpattern *p, rx_scratch *x, const char *s, size_t n, size_t *pos, size_t *last,
                  size_t *ms, size_t *me, lop_err *e);
/* All matches at once (normalizers, decoders: short strings). */
int tpattern_find_all(const tpattern *p, const char *s, size_t n, tmatch **out, size_t *nout, lop_err *e);

/* ---- normalizers ---- */
enum { NORM_SEQ, NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD, NORM_REPLACE, NORM_PREPEND,
       NORM_STRIP, NORM_LOWER, NORM_STRIP_ACCENTS };
typedef struct tnorm {
    int kind;
    struct tnorm *kids; int nkids;     /* NORM_SEQ */
    tpattern pat; char *content; size_t clen; /* REPLACE; PREPEND uses content */
    int left, right;                   /* STRIP */
} tnorm;
/* Normalize s[0..n) into out (appended); returns 0 or -1 with e set. */
int norm_apply(const tnorm *nm, const char *s, size_t n, tbuf *out, lop_err *e);
void norm_free(tnorm *nm);

/* ---- pre-tokenizers ---- */
enum { PRE_SEQ, PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE, PRE_DIGITS, PRE_WHITESPACE,
       PRE_WSSPLIT };
enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };
typedef struct tpre {
    int kind;
    struct tpre *kids; int nkids;      /* PRE_SEQ */
    tpattern pat; int behavior, invert;/* PRE_SPLIT */
    int add_prefix_space, use_regex;   /* PRE_BYTELEVEL */
    char repl[8]; size_t repl_len; int prepend_scheme, split; /* PRE_METASPACE */
    int individual_digits;             /* PRE_DIGITS */
} tpre;
void pre_free(tpre *p);
extern const tregex *tok_bytelevel_re;  /* GPT-2 regex for ByteLevel use_regex (built on load) */

/* One encode call's working state. Pieces are (offset, length) in buf; a stage appends what it
 * rewrites and truncates buf back when done (stack discipline), so memory stays small. */
typedef struct bpe_scratch bpe_scratch;
typedef struct tok_ctx {
    const lop_tokenizer *t;
    tbuf buf;
    ivec out;
    bpe_scratch *sc;
    rx_scratch rx;
    lop_err *e;
} tok_ctx;
/* Run pre-tokenizer stages [stage..] on buf[off..off+len), then BPE on each word. */
int pre_stream(tok_ctx *c, int stage, size_t off, size_t len, int at0);

/* ---- decoders ---- */
enum { DEC_SEQ, DEC_BYTELEVEL, DEC_METASPACE, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE,
       DEC_STRIP, DEC_BPE_SUFFIX };
typedef struct tdec {
    int kind;
    struct tdec *kids; int nkids;
    tpattern pat; char *content; size_t clen;   /* REPLACE; STRIP content char; BPE suffix */
    int start, stop;                            /* STRIP */
    char repl[8]; size_t repl_len; int prepend_scheme; /* METASPACE */
} tdec;
void dec_free(tdec *d);

/* ---- added tokens: a byte trie matched leftmost-longest ---- */
typedef struct tadded {
    char *content; size_t len; int32_t id;
    uint8_t special, lstrip, rstrip, single_word, normalized;
} tadded;
typedef struct ttrie {           /* nodes with sorted edge lists */
    uint32_t *first_edge; uint32_t *nedges; int32_t *term; /* added index or -1 */
    uint8_t *edge_byte; uint32_t *edge_to;
    uint32_t nnodes, nedges_total;
    uint8_t first_byte[256];     /* can a match start with this byte */
} ttrie;
int trie_build(ttrie *tr, const tadded *ad, int nad, int want_normalized, const tnorm *nm, lop_err *e);
void trie_free(ttrie *tr);
/* Split `in` pieces (id < 0) around added-token matches; others pass through. */
int added_split(const lop_tokenizer *t, const ttrie *tr, tbuf *buf, tpvec *in, tpvec *out);

/* ---- post-processor: the single-sequence template ---- */
typedef struct tpost {
    int32_t *pre; int npre;      /* ids before the sequence */
    int32_t *post; int npost;    /* ids after */
} tpost;

struct lop_tokenizer {
    char *arena;                 /* the tokenizer.json bytes: token strings point inside */
    size_t arena_len;
    /* model */
    int32_t nvocab;              /* largest id + 1 over model vocab and added tokens */
    const char **id_str; uint32_t *id_len;   /* token string per id (added content wins) */
    strmap vocab;                /* model vocab */
    pairmap merges;
    int32_t *cp_id;              /* single-codepoint token id, cp < CP_TABLE, -1 none */
    int32_t unk_id;
    int fuse_unk, byte_fallback, ignore_merges;
    char *cont_prefix; size_t cont_prefix_len;
    char *eow_suffix; size_t eow_suffix_len;
    int32_t byte_id[256];        /* "<0xXX>" ids for byte fallback */
    int byte_level;              /* a ByteLevel pre-tokenizer maps bytes to chars */
    /* SentencePiece-style words can be cut before a "▁" when no vocab token holds "X▁" for the
     * char X left of it: no merge can cross such a point, so BPE runs on the cuts alone (long
     * words — Llama's whole text is one — merge in cache-sized pieces). Bit set: X unsafe. */
    uint8_t *meta_unsafe;        /* CP_TABLE bits, NULL when the cut is never safe */
    /* pipeline */
    tnorm *norm;
    tpre *pre;
    const tpre **stages; int nstages;   /* pre flattened: Sequence kids in order */
    tdec *dec;
    tpost post;
    /* added tokens */
    tadded *added; int nadded;
    ttrie trie_raw, trie_norm;
    uint8_t *special;            /* per id */
    uint8_t *is_added;           /* per id */
    int32_t bos, eos;
    int split_special;           /* tokenizer_config split_special_tokens: specials are plain text */
    char *kind;                  /* short description, e.g. "BPE byte-level" */
    uint64_t uid;                /* unique per load: owner tag of per-thread word caches */
};
#define CP_TABLE 0x30000

/* BPE one word s[0..n) (already normalized / mapped), appending ids. The scratch holds the
 * merge arrays and a word -> ids cache; one per thread (tok_thread_scratch), reused by every
 * call on that thread, tagged with the tokenizer's uid so another tokenizer never sees it. */
bpe_scratch *tok_thread_scratch(const lop_tokenizer *t);
int bpe_word(const lop_tokenizer *t, const char *s, size_t n, ivec *out, bpe_scratch *sc,
             lop_err *e);

/* ---- UTF-8 ---- */
/* Decode one code point at s[i] (valid UTF-8 assumed); returns its length. */
static inline int u8_dec(const unsigned char *s, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    if (c < 0xE0) { *cp = ((c & 0x1F) << 6) | (s[1] & 0x3F); return 2; }
    if (c < 0xF0) { *cp = ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F); return 3; }
    *cp = ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}
static inline int u8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }
int u8_enc(uint32_t cp, char *out); /* returns bytes written (1..4) */
int u8_is_space(uint32_t cp);       /* Unicode White_Space (Rust char::is_whitespace) */
int u8_is_word(uint32_t cp);        /* regex \w (Unicode) */
/* ---- reading tokenizer.json (tok_load.c drives; each component parses its own part, in its
 * own file, next to where it is applied) ---- */
typedef struct tj tj;
char *tok_dupn(const char *s, size_t n);                     /* tok_map.c: malloc'd copy + NUL */
const char *tok_type_of(const tj *o);                        /* its "type", or "?" */
int tok_pattern_parse(const tj *o, tpattern *p, const char *where, lop_err *e);  /* tok_regex.c */
int tok_norm_parse(const tj *o, tnorm *nm, lop_err *e);      /* tok_normalize.c */
int tok_prepend_scheme_parse(const tj *o, int *scheme);      /* tok_pretok.c (Metaspace) */
void tok_bytelevel_once(void);                               /* tok_pretok.c: ByteLevel tables + regex */
int tok_pre_parse(const tj *o, tpre *p, lop_err *e);
int tok_pre_flatten(lop_tokenizer *t, lop_err *e);           /* t->pre as t->stages */
int tok_pre_has_bytelevel(const tpre *p);
int tok_dec_parse(const tj *o, tdec *d, lop_err *e);         /* tok_decode.c */
int tok_ids_append(int32_t **v, int *n, int32_t id);         /* tok_post.c */
int tok_post_parse(lop_tokenizer *t, const tj *o, tpost *pp, lop_err *e);
int tok_bpe_parse(lop_tokenizer *t, const tj *m, const tj *added, lop_err *e); /* tok_bpe.c */
int tok_added_parse(lop_tokenizer *t, const tj *added, lop_err *e);            /* tok_added.c */
#endif
