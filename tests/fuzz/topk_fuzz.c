/* topk_fuzz.c — libFuzzer target for ppl's --save-logits / --kl-base file reader
 * (cmd/ppl/topk_file.c: a zstd stream of "LOPTOPK1", k, vocab, then fixed-size records).
 * Input: a whole file.
 * Checks, for a file that opens:
 *   - every record that reads has its target and its k ids in [0, vocab) (ppl --kl-base
 *     matches them against the model's logits);
 *   - a file read to its end, written back with the writer, reads back to the same records, and
 *     writing that once more gives the same bytes.
 * LOP_FUZZ_WRITE_SEEDS=DIR: write a few valid files into DIR and exit. */
// fuzz-sources: cmd/ppl/topk_file.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_util.h"
#include "topk_file.h"

#define MAXREC 4096

static void write_file(const char *path, int k, int vocab, int n) {
    topk_writer *w; lop_err e;
    if (topk_writer_open(&w, path, k, vocab, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
    int32_t id[64]; float lp[64];
    for (int r = 0; r < n; r++) {
        for (int j = 0; j < k; j++) { id[j] = (r * 7 + j * 13) % vocab; lp[j] = -0.25f * (float)(j + 1); }
        topk_rec rec = {r % vocab, -1.5f, id, lp};
        if (topk_writer_put(w, &rec, &e)) exit(1);
    }
    if (topk_writer_finish(w, &e)) { fprintf(stderr, "%s\n", e.msg); exit(1); }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *d = getenv("LOP_FUZZ_WRITE_SEEDS");
    if (!d) return 0;
    char p[600];
    snprintf(p, sizeof p, "%s/a.topk", d); write_file(p, 4, 50, 20);
    snprintf(p, sizeof p, "%s/b.topk", d); write_file(p, 1, 3, 1);
    snprintf(p, sizeof p, "%s/c.topk", d); write_file(p, 64, 1000, 3);
    snprintf(p, sizeof p, "%s/d.topk", d); write_file(p, 8, 8, 0);
    exit(0);
}

typedef struct { int32_t target; float tlp; int32_t *id; float *lp; } rec_copy;

/* read all of path: records into *out (malloc'd), count; -1 if a read fails or there are too many */
static int read_all(const char *path, int *k, int *vocab, rec_copy **out, int *n) {
    topk_reader *r; lop_err e;
    *out = NULL; *n = 0;
    if (topk_reader_open(&r, path, k, vocab, &e)) return -2;
    rec_copy *v = calloc(MAXREC, sizeof *v);
    int rc = 0;
    for (;;) {
        topk_rec rec;
        int got = topk_reader_next(r, &rec, &e);
        if (got <= 0) { rc = got; break; }
        FZ_CHECK(rec.target >= 0 && rec.target < *vocab, "record %d: target %d outside [0, %d)", *n, rec.target, *vocab);
        for (int j = 0; j < *k; j++)
            FZ_CHECK(rec.id[j] >= 0 && rec.id[j] < *vocab, "record %d: id %d outside [0, %d)", *n, rec.id[j], *vocab);
        if (*n == MAXREC || (size_t)(*n + 1) * (size_t)*k > (1u << 22)) { rc = -1; break; }
        rec_copy *c = &v[(*n)++];
        c->target = rec.target; c->tlp = rec.target_lp;
        c->id = malloc(4 * (size_t)*k); c->lp = malloc(4 * (size_t)*k);
        memcpy(c->id, rec.id, 4 * (size_t)*k); memcpy(c->lp, rec.lp, 4 * (size_t)*k);
    }
    topk_reader_close(r);
    *out = v;
    return rc;
}

static void free_recs(rec_copy *v, int n) {
    for (int i = 0; i < n; i++) { free(v[i].id); free(v[i].lp); }
    free(v);
}

static void write_recs(const char *path, int k, int vocab, const rec_copy *v, int n) {
    topk_writer *w; lop_err e;
    FZ_CHECK(topk_writer_open(&w, path, k, vocab, &e) == 0, "writer open: %s", e.msg);
    for (int i = 0; i < n; i++) {
        topk_rec rec = {v[i].target, v[i].tlp, v[i].id, v[i].lp};
        FZ_CHECK(topk_writer_put(w, &rec, &e) == 0, "put: %s", e.msg);
    }
    FZ_CHECK(topk_writer_finish(w, &e) == 0, "finish: %s", e.msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_write("in.topk", data, size);
    int k, vocab, n;
    rec_copy *v;
    int rc = read_all(path, &k, &vocab, &v, &n);
    if (rc == -2) return 0;
    if (rc == 0) {
        const char *p2 = fz_path("out2.topk"), *p3 = fz_path("out3.topk");
        write_recs(p2, k, vocab, v, n);
        int k2, vocab2, n2;
        rec_copy *w;
        FZ_CHECK(read_all(p2, &k2, &vocab2, &w, &n2) == 0, "rewritten file does not read");
        FZ_CHECK(k2 == k && vocab2 == vocab && n2 == n, "rewritten header/count differs");
        for (int i = 0; i < n; i++)
            FZ_CHECK(w[i].target == v[i].target && !memcmp(&w[i].tlp, &v[i].tlp, 4) &&
                     !memcmp(w[i].id, v[i].id, 4 * (size_t)k) && !memcmp(w[i].lp, v[i].lp, 4 * (size_t)k),
                     "record %d differs after rewriting", i);
        write_recs(p3, k, vocab, w, n2);
        char *a, *b; size_t la, lb; lop_err e;
        FZ_CHECK(fs_read_all(p2, &a, &la, &e) == 0 && fs_read_all(p3, &b, &lb, &e) == 0, "read back");
        FZ_CHECK(la == lb && !memcmp(a, b, la), "rewriting twice gives different bytes");
        free(a); free(b);
        free_recs(w, n2);
    }
    free_recs(v, n);
    return 0;
}
