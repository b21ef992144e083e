/* calib_load.c — calib_load(): read a data file, tokenize, cut into samples (rules in calib.h).
 * Kept apart from calib.c so that code using only the readers links without the tokenizer. */
#include "calib.h"
#include "model.h"
#include <stdlib.h>
#include <string.h>

#define CHUNK (256u << 10) /* encode long texts in pieces of about this many bytes */

typedef struct { int32_t *v; size_t n, cap; } ivec;

static int ivec_add(ivec *a, const int32_t *x, size_t n, lop_err *e) {
    if (a->n + n > a->cap) {
        size_t nc = a->cap ? a->cap : 4096;
        while (nc < a->n + n) nc *= 2;
        int32_t *nv = realloc(a->v, nc * sizeof *nv);
        if (!nv) return lop_fail(e, "out of memory");
        a->v = nv; a->cap = nc;
    }
    memcpy(a->v + a->n, x, n * sizeof *x);
    a->n += n;
    return 0;
}

/* Piece end: the last paragraph break ("\n\n", else "\n") before CHUNK bytes, so that pieces
 * split where a pre-tokenizer splits anyway. */
static size_t piece_end(const char *s, size_t n) {
    if (n <= CHUNK) return n;
    for (size_t i = CHUNK; i > CHUNK / 2; i--)
        if (s[i - 1] == '\n' && s[i - 2] == '\n') return i;
    for (size_t i = CHUNK; i > CHUNK / 2; i--)
        if (s[i - 1] == '\n') return i;
    size_t i = CHUNK;   /* no newline: do not split a UTF-8 sequence */
    while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
    return i;
}

static int load_packed(lop_calib *c, const lop_texts *t, const lop_tokenizer *tok,
                       const lop_calib_opts *o, lop_err *e) {
    int bos = tok_adds_bos(tok) ? tok_bos(tok) : -1;
    size_t per = (size_t)(o->ctx > 1 ? o->ctx : 2) - (bos >= 0);
    /* without random choice, only the first samples' tokens are needed */
    size_t enough = o->samples > 0 && !o->random ? per * (size_t)o->samples : SIZE_MAX;
    ivec all = {0};
    int rc = 0;
    for (int i = 0; i < t->n && !rc && all.n < enough; i++) {
        const char *s = t->text[i];
        size_t n = t->len[i];
        while (n > 0 && !rc && all.n < enough) {
            size_t k = piece_end(s, n);
            int32_t *ids = NULL; size_t m = 0;
            rc = tok_encode(tok, s, k, 0, &ids, &m, e);
            if (!rc) rc = ivec_add(&all, ids, m, e);
            free(ids);
            s += k; n -= k;
        }
        if (!rc && t->n > 1 && i + 1 < t->n) {   /* records are joined by a blank line */
            int32_t *ids = NULL; size_t m = 0;
            rc = tok_encode(tok, "\n\n", 2, 0, &ids, &m, e);
            if (!rc) rc = ivec_add(&all, ids, m, e);
            free(ids);
        }
    }
    if (!rc) rc = calib_pack(c, all.v, all.n, bos, o, e);
    free(all.v);
    return rc;
}

static int load_lines(lop_calib *c, const lop_texts *t, const lop_tokenizer *tok,
                      const lop_calib_opts *o, lop_err *e) {
    int32_t **seqs = calloc(t->n ? t->n : 1, sizeof *seqs);
    int *lens = calloc(t->n ? t->n : 1, sizeof *lens);
    int rc = seqs && lens ? 0 : lop_fail(e, "out of memory");
    int n = 0, nonempty = 0;
    for (int i = 0; i < t->n && !rc; i++) {
        if (o->samples > 0 && !o->random && nonempty >= o->samples) break;
        size_t m = 0;
        rc = tok_encode(tok, t->text[i], t->len[i], 1, &seqs[i], &m, e);
        if (rc) { lop_wrap(e, "sample %d", i + 1); break; }
        lens[i] = m > (size_t)1 << 30 ? 1 << 30 : (int)m;
        nonempty += lens[i] > 0;
        n = i + 1;
    }
    if (!rc) rc = calib_from_seqs(c, seqs, lens, n, o, e);
    for (int i = 0; seqs && i < t->n; i++) free(seqs[i]);
    free(seqs); free(lens);
    return rc;
}

int calib_load(lop_calib *c, const char *path, const lop_tokenizer *tok, const lop_calib_opts *o,
               lop_err *e) {
    memset(c, 0, sizeof *c);
    lop_calib_opts d = o ? *o : calib_default_opts();
    if (d.ctx < 0 || d.samples < 0) return lop_failc(e, LOP_EUSAGE, "negative context or sample count");
    lop_texts t;
    if (calib_read_texts(path, d.mode, d.field, &t, e)) return -1;
    lop_calib_mode mode = d.mode;
    if (mode == CALIB_AUTO) mode = t.jsonl ? CALIB_LINES : CALIB_PACKED;
    int rc = mode == CALIB_LINES ? load_lines(c, &t, tok, &d, e) : load_packed(c, &t, tok, &d, e);
    calib_texts_free(&t);
    if (rc) lop_wrap(e, "%s", path);
    return rc;
}

int calib_load_for_model(lop_calib *c, const struct lop_model *m, const char *path, int ctx, int samples,
                         uint64_t seed, lop_err *e) {
    const char *src = m->st->source_dir;
    if (!src) return lop_fail(e, "no tokenizer folder known for the model (calibration needs tokenizer.json)");
    lop_tokenizer *tok;
    if (tok_load(&tok, src, e)) return -1;
    lop_calib_opts o = calib_default_opts();
    o.ctx = ctx;
    if (m->cfg.max_pos > 0 && o.ctx > m->cfg.max_pos) o.ctx = m->cfg.max_pos;
    o.samples = samples;
    o.random = 1;
    o.seed = seed;
    int rc = calib_load(c, path, tok, &o, e);
    tok_free(tok);
    return rc ? lop_wrap(e, "%s", path) : 0;
}
