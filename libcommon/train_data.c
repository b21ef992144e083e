/* train_data.c — reading, tokenizing, packing and batching training data (see train_data.h). */
#include "train_data.h"
#include "fsutil.h"
#include "textio.h"
#include "optim.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

struct tr_data {
    int pretok;
    int seq_len, pad_id;
    int64_t ndocs;
    int64_t *off;        /* [ndocs+1] into tok/mask */
    int32_t *tok;        /* all documents' tokens */
    uint8_t *mask;       /* 1: this token is a scored target */
    int64_t ntok, cap;
    int shuffle;
    uint64_t seed;
    /* the current epoch's packed stream */
    int64_t epoch;       /* -1: none */
    int64_t *perm;       /* [ndocs] */
    int32_t *stream; uint8_t *smask;
    int64_t nblocks;
};

static int push(tr_data *d, const int32_t *ids, size_t n, int scored, lop_err *e) {
    if (d->ntok + (int64_t)n > d->cap) {
        int64_t nc = d->cap ? d->cap * 2 : 1 << 16;
        while (nc < d->ntok + (int64_t)n) nc *= 2;
        int32_t *t = realloc(d->tok, nc * sizeof *t);
        if (!t) return lop_fail(e, "out of memory reading data");
        d->tok = t;
        uint8_t *mk = realloc(d->mask, nc);
        if (!mk) return lop_fail(e, "out of memory reading data");
        d->mask = mk; d->cap = nc;
    }
    memcpy(d->tok + d->ntok, ids, n * sizeof *ids);
    memset(d->mask + d->ntok, scored, n);
    d->ntok += n;
    return 0;
}

static int end_doc(tr_data *d, lop_err *e) {
    if ((d->ndocs + 2) % 1024 == 0 || d->ndocs == 0) {
        int64_t *o = realloc(d->off, sizeof *o * (d->ndocs + 1026));
        if (!o) return lop_fail(e, "out of memory reading data");
        d->off = o;
        if (d->ndocs == 0) d->off[0] = 0;
    }
    d->off[++d->ndocs] = d->ntok;
    return 0;
}

static int encode(const lop_tokenizer *tok, const char *s, size_t n, int special, int32_t **ids,
                  size_t *k, lop_err *e) {
    if (!tok) return lop_fail(e, "text data needs the model's tokenizer");
    return tok_encode(tok, s, n, special, ids, k, e);
}

/* a text document: BOS (as the tokenizer adds it) + tokens + EOS, all scored */
static int add_text(tr_data *d, const lop_tokenizer *tok, const char *s, size_t n, int eos,
                    lop_err *e) {
    int32_t *ids = NULL; size_t k = 0;
    if (encode(tok, s, n, 1, &ids, &k, e)) return -1;
    int r = push(d, ids, k, 1, e);
    free(ids);
    if (!r && eos >= 0) r = push(d, (int32_t[]){eos}, 1, 1, e);
    return r ? -1 : end_doc(d, e);
}

/* append s to a growing string */
static int cat(char **b, size_t *n, size_t *cap, const char *s, size_t k) {
    if (*n + k + 1 > *cap) {
        size_t nc = (*n + k + 1) * 2;
        char *t = realloc(*b, nc);
        if (!t) return -1;
        *b = t; *cap = nc;
    }
    memcpy(*b + *n, s, k); *n += k; (*b)[*n] = 0;
    return 0;
}

static const char *jstr(cJSON *o, const char *k) {
    cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* instruction data: the template up to {response} is the unscored prompt */
static int add_instruction(tr_data *d, const lop_tokenizer *tok, const char *tmpl, cJSON *o,
                           int eos, int64_t line, lop_err *e) {
    const char *ins = jstr(o, "instruction"), *pr = jstr(o, "prompt"), *ctx = jstr(o, "context");
    const char *resp = jstr(o, "response");
    if (!ins) ins = pr ? pr : "";
    if (!ctx) ctx = jstr(o, "input");
    if (!ctx) ctx = "";
    const char *rp = strstr(tmpl, "{response}");
    if (!rp) return lop_failc(e, LOP_EUSAGE, "--template has no {response}");
    char *b = NULL; size_t n = 0, cap = 0;
    for (const char *p = tmpl; p < rp;) {
        const char *val = NULL; size_t adv = 0;
        if (!strncmp(p, "{instruction}", 13)) { val = ins; adv = 13; }
        else if (!strncmp(p, "{prompt}", 8)) { val = ins; adv = 8; }
        else if (!strncmp(p, "{context}", 9)) { val = ctx; adv = 9; }
        else if (!strncmp(p, "{context_block}", 15)) { val = ""; adv = 15;
            if (*ctx && (cat(&b, &n, &cap, "\n\n", 2) || cat(&b, &n, &cap, ctx, strlen(ctx)))) goto oom; }
        if (adv) { if (cat(&b, &n, &cap, val, strlen(val))) goto oom; p += adv; continue; }
        if (cat(&b, &n, &cap, p, 1)) goto oom;
        p++;
    }
    int32_t *ids = NULL; size_t k = 0;
    if (encode(tok, b ? b : "", n, 1, &ids, &k, e)) { free(b); return lop_wrap(e, "line %lld", (long long)line); }
    free(b);
    int r = push(d, ids, k, 0, e);
    free(ids);
    if (r) return -1;
    /* response + the template's tail, scored */
    char *rb = NULL; size_t rn = 0, rcap = 0;
    if (cat(&rb, &rn, &rcap, resp, strlen(resp)) ||
        cat(&rb, &rn, &rcap, rp + 10, strlen(rp + 10))) { free(rb); goto oom; }
    if (encode(tok, rb, rn, 0, &ids, &k, e)) { free(rb); return lop_wrap(e, "line %lld", (long long)line); }
    free(rb);
    r = push(d, ids, k, 1, e);
    free(ids);
    if (!r && eos >= 0) r = push(d, (int32_t[]){eos}, 1, 1, e);
    return r ? -1 : end_doc(d, e);
oom:
    free(b);
    return lop_fail(e, "out of memory");
}

static int add_ids(tr_data *d, cJSON *arr, int64_t line, lop_err *e) {
    int n = cJSON_GetArraySize(arr);
    if (n < 2) return lop_fail(e, "line %lld: a pre-tokenized sequence needs at least 2 ids", (long long)line);
    if (n > d->seq_len + 1)
        return lop_fail(e, "line %lld: %d ids exceed --seq-len %d (+1)", (long long)line, n, d->seq_len);
    int32_t *ids = malloc(sizeof *ids * n);
    if (!ids) return lop_fail(e, "out of memory");
    int i = 0; cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 2147483647.0) {
            free(ids);
            return lop_fail(e, "line %lld: ids must be non-negative integers", (long long)line);
        }
        ids[i++] = (int32_t)v->valuedouble;
    }
    int r = push(d, ids, n, 1, e);
    free(ids);
    return r ? -1 : end_doc(d, e);
}

int tr_data_load(tr_data **out, const char *path, const lop_tokenizer *tok, const tr_data_opts *o,
                 lop_err *e) {
    *out = NULL;
    if (o->seq_len < 1) return lop_failc(e, LOP_EUSAGE, "--seq-len must be positive");
    char *buf; size_t len;
    if (text_read(path, &buf, &len, e)) return -1;
    tr_data *d = calloc(1, sizeof *d);
    if (!d) { free(buf); return lop_fail(e, "out of memory"); }
    d->seq_len = o->seq_len; d->shuffle = o->shuffle; d->seed = o->seed; d->epoch = -1;
    d->pad_id = o->pad_id >= 0 ? o->pad_id : (o->eos_id >= 0 ? o->eos_id : 0);
    int eos = o->eos_id >= 0 ? o->eos_id : (tok ? tok_eos(tok) : -1);
    const char *tmpl = o->tmpl ? o->tmpl : TR_DEFAULT_TEMPLATE;
    const char *p = buf, *end = buf + len;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    int jsonl = p < end && *p == '{';
    int blank_sep = !jsonl && (strstr(buf, "\n\n") || strstr(buf, "\n\r\n"));
    int64_t line = 0;
    if (jsonl) {
        int kind = -1; /* 0 text, 1 instruction, 2 ids */
        for (const char *s = buf; s < end;) {
            const char *nl = memchr(s, '\n', end - s);
            if (!nl) nl = end;
            line++;
            const char *q = s;
            while (q < nl && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
            if (q < nl) {
                cJSON *obj = cJSON_ParseWithLength(s, nl - s);
                if (!cJSON_IsObject(obj)) {
                    cJSON_Delete(obj);
                    lop_fail(e, "%s:%lld: not a JSON object", path, (long long)line); goto fail;
                }
                /* a lop tool's provenance line (lm-tok output used as data): not data */
                if (cJSON_HasObjectItem(obj, "provenance")) { cJSON_Delete(obj); s = nl + 1; continue; }
                cJSON *ids = cJSON_GetObjectItem(obj, "ids");
                int k = cJSON_IsArray(ids) ? 2 : jstr(obj, "response") ? 1 : jstr(obj, "text") ? 0 : -1;
                if (k < 0) {
                    cJSON_Delete(obj);
                    lop_fail(e, "%s:%lld: no \"text\", \"response\" or \"ids\" field", path, (long long)line);
                    goto fail;
                }
                if (kind >= 0 && (k == 2) != (kind == 2)) {
                    cJSON_Delete(obj);
                    lop_fail(e, "%s:%lld: pre-tokenized and text lines mixed", path, (long long)line);
                    goto fail;
                }
                kind = k;
                int r = k == 2 ? add_ids(d, ids, line, e)
                      : k == 1 ? add_instruction(d, tok, tmpl, obj, eos, line, e)
                      : add_text(d, tok, jstr(obj, "text"), strlen(jstr(obj, "text")), eos, e);
                cJSON_Delete(obj);
                if (r) { lop_wrap(e, "%s:%lld", path, (long long)line); goto fail; }
            }
            s = nl + 1;
        }
        d->pretok = kind == 2;
    } else {
        /* documents: lines, or paragraphs separated by blank lines */
        const char *s = buf;
        while (s < end) {
            const char *stop;
            if (blank_sep) {
                const char *a = strstr(s, "\n\n"), *b2 = strstr(s, "\n\r\n");
                stop = !a ? b2 : !b2 ? a : (a < b2 ? a : b2);
                if (!stop) stop = end;
            } else {
                stop = memchr(s, '\n', end - s);
                if (!stop) stop = end;
            }
            const char *t0 = s, *t1 = stop;
            while (t0 < t1 && (*t0 == '\n' || *t0 == '\r' || *t0 == ' ' || *t0 == '\t')) t0++;
            while (t1 > t0 && (t1[-1] == '\n' || t1[-1] == '\r' || t1[-1] == ' ' || t1[-1] == '\t')) t1--;
            if (t1 > t0 && add_text(d, tok, t0, t1 - t0, eos, e)) { lop_wrap(e, "%s", path); goto fail; }
            s = stop + 1;
            while (s < end && (*s == '\n' || *s == '\r')) s++;
        }
    }
    free(buf); buf = NULL;
    if (d->ndocs == 0) { lop_fail(e, "%s: no documents (empty data file)", path); goto fail; }
    if (!d->pretok && d->ntok < 2) { lop_fail(e, "%s: fewer than 2 tokens", path); goto fail; }
    d->perm = malloc(sizeof(int64_t) * d->ndocs);
    if (!d->perm) { lop_fail(e, "out of memory"); goto fail; }
    if (!d->pretok) {
        d->stream = malloc(sizeof(int32_t) * d->ntok);
        d->smask = malloc(d->ntok);
        if (!d->stream || !d->smask) { lop_fail(e, "out of memory"); goto fail; }
        d->nblocks = (d->ntok - 1 + d->seq_len - 1) / d->seq_len;
    } else {
        d->nblocks = d->ndocs;
    }
    *out = d;
    return 0;
fail:
    free(buf);
    tr_data_free(d);
    return -1;
}

void tr_data_free(tr_data *d) {
    if (!d) return;
    free(d->off); free(d->tok); free(d->mask); free(d->perm); free(d->stream); free(d->smask);
    free(d);
}
int64_t tr_data_blocks(const tr_data *d) { return d->nblocks; }
int64_t tr_data_tokens(const tr_data *d) { return d->ntok; }
int64_t tr_data_docs(const tr_data *d) { return d->ndocs; }
int tr_data_pretokenized(const tr_data *d) { return d->pretok; }

/* the document order of epoch ep (Fisher-Yates with an RNG seeded by seed and epoch) */
static void set_epoch(tr_data *d, int64_t ep) {
    if (d->epoch == ep) return;
    for (int64_t i = 0; i < d->ndocs; i++) d->perm[i] = i;
    if (d->shuffle) {
        trng r; trng_seed(&r, d->seed * 0x100000001b3ull + (uint64_t)ep + 1);
        for (int64_t i = d->ndocs - 1; i > 0; i--) {
            int64_t j = (int64_t)trng_below(&r, (uint64_t)i + 1);
            int64_t t = d->perm[i]; d->perm[i] = d->perm[j]; d->perm[j] = t;
        }
    }
    if (!d->pretok) {
        int64_t k = 0;
        for (int64_t i = 0; i < d->ndocs; i++) {
            int64_t a = d->off[d->perm[i]], b = d->off[d->perm[i] + 1];
            memcpy(d->stream + k, d->tok + a, sizeof(int32_t) * (b - a));
            memcpy(d->smask + k, d->mask + a, b - a);
            k += b - a;
        }
    }
    d->epoch = ep;
}

int64_t tr_data_batch(tr_data *d, int64_t g, int B, int32_t **ids, int32_t **targets,
                      size_t *cap, int *T, lop_err *e) {
    /* the batch's length: seq_len for packed text (shorter if the data is), longest line else */
    int t = 1;
    for (int b = 0; b < B; b++) {
        int64_t gb = g + b, ep = gb / d->nblocks, bi = gb % d->nblocks;
        set_epoch(d, ep);
        int len;
        if (d->pretok) {
            int64_t doc = d->perm[bi];
            len = (int)(d->off[doc + 1] - d->off[doc] - 1);
        } else {
            int64_t s = bi * d->seq_len;
            len = (int)(d->ntok - 1 - s < d->seq_len ? d->ntok - 1 - s : d->seq_len);
        }
        if (len > t) t = len;
    }
    size_t need = (size_t)B * t;
    if (need > *cap) {
        int32_t *a = realloc(*ids, need * 4), *c;
        if (!a) return lop_fail(e, "out of memory");
        *ids = a;
        c = realloc(*targets, need * 4);
        if (!c) return lop_fail(e, "out of memory");
        *targets = c; *cap = need;
    }
    int64_t scored = 0;
    for (int b = 0; b < B; b++) {
        int64_t gb = g + b, ep = gb / d->nblocks, bi = gb % d->nblocks;
        set_epoch(d, ep);
        const int32_t *src; const uint8_t *msk; int len;
        if (d->pretok) {
            int64_t doc = d->perm[bi];
            src = d->tok + d->off[doc]; msk = d->mask + d->off[doc];
            len = (int)(d->off[doc + 1] - d->off[doc] - 1);
        } else {
            int64_t s = bi * d->seq_len;
            src = d->stream + s; msk = d->smask + s;
            len = (int)(d->ntok - 1 - s < d->seq_len ? d->ntok - 1 - s : d->seq_len);
        }
        int32_t *ii = *ids + (size_t)b * t, *Tg = *targets + (size_t)b * t;
        for (int i = 0; i < t; i++) {
            if (i < len) {
                ii[i] = src[i];
                Tg[i] = msk[i + 1] ? src[i + 1] : -1;
                scored += Tg[i] >= 0;
            } else {
                ii[i] = d->pad_id; Tg[i] = -1;
            }
        }
    }
    *T = t;
    return scored;
}
