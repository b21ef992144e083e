/* eval_data_fuzz.c — libFuzzer target for lm-eval's data readers: the built-in tasks' files
 * (harness JSONL shapes of arc/openbookqa/copa/boolq/winogrande/lambada, MMLU's CSV test and dev
 * splits with few-shot, hellaswag's 6-line file, piqa's JSONL + label list) and a user's task
 * JSONL (task_load_file), each plain or zstd-compressed (FILE.zst).
 * Input: byte 0 = the task (low 4 bits), compression (bit 4: the harness compresses the bytes;
 * bit 5: the bytes are written as FILE.zst as they are), few-shot count (bits 6-7, MMLU);
 * then the file, [FZ_SEP second file] (piqa's labels, MMLU's dev split).
 * Checks, for a task that loads: every document well formed — n_ctx, n_cont >= 1 and one of
 * them 1 or both equal, strings present, gold a valid request (or -1 for loglikelihood tasks
 * only), MC choice lengths = the choice's code points; task_select keeps a subset in order. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include "fuzz_util.h"
#include "task.h"
#include "utf8.h"

static const char *const NAMES[16] = {
    "hellaswag", "piqa", "mmlu_anatomy", "arc_easy", "arc_challenge", "openbookqa", "copa", "boolq",
    "winogrande", "lambada_openai", "mmlu_college_physics", NULL, NULL, NULL, NULL, NULL};
static const char *const FILES[16] = {
    "hellaswag/hellaswag_val_full.txt", "piqa-official/valid.jsonl", "mmlu/test/anatomy_test.csv",
    "arc_easy.jsonl", "arc_challenge.jsonl", "openbook_qa.jsonl", "copa.jsonl", "boolq.jsonl",
    "winogrande.jsonl", "lambada_openai.jsonl", "mmlu/test/college_physics_test.csv",
    "mytask.jsonl", "mytask.jsonl", "user.jsonl", "user.jsonl", "user.jsonl"};

static void put(const char *rel, const uint8_t *d, size_t n, int mode) {
    char name[256];
    unlink(fz_path(rel));
    snprintf(name, sizeof name, "%s.zst", rel);
    unlink(fz_path(name));
    if (mode == 0) { fz_write(rel, d, n); return; }
    if (mode == 2) { fz_write(name, d, n); return; }
    size_t cap = ZSTD_compressBound(n);
    void *z = malloc(cap);
    size_t zn = ZSTD_compress(z, cap, d, n, 1);
    if (ZSTD_isError(zn)) abort();
    fz_write(name, z, zn);
    free(z);
}

/* code points as Python counts them after decoding with errors="replace" */
static size_t code_points(const char *s) {
    size_t len, n = 0;
    char *f = utf8_lossy(s, strlen(s), &len);
    if (!f) abort();
    for (size_t i = 0; i < len; i++) n += ((unsigned char)f[i] & 0xC0) != 0x80;
    free(f);
    return n;
}

static void check(const lop_task *t) {
    FZ_CHECK(t->n_docs >= 0 && t->n_docs <= t->n_original, "n_docs %d of %d", t->n_docs, t->n_original);
    for (int i = 0; i < t->n_docs; i++) {
        const task_doc *d = &t->docs[i];
        FZ_CHECK(d->n_ctx >= 1 && d->n_cont >= 1 && (d->n_ctx == 1 || d->n_cont == 1 || d->n_ctx == d->n_cont),
                 "doc %d: %d contexts, %d continuations", i, d->n_ctx, d->n_cont);
        int nr = task_doc_nreq(d);
        for (int r = 0; r < nr; r++) FZ_CHECK(task_req_ctx(d, r) && task_req_cont(d, r), "doc %d: request %d has no text", i, r);
        if (t->kind == TASK_LOGLIK) FZ_CHECK(d->gold == -1 || (d->gold >= 0 && d->gold < nr), "loglik gold");
        else FZ_CHECK(d->gold >= 0 && d->gold < nr, "doc %d: gold %d of %d requests", i, d->gold, nr);
        if (t->kind == TASK_MC && d->chars)
            for (int r = 0; r < nr; r++) {
                /* cont = delimiter + choice; chars counts the choice only */
                size_t all = code_points(task_req_cont(d, r));
                FZ_CHECK(d->chars[r] >= 0 && (size_t)d->chars[r] <= all, "doc %d: choice %d has %d code points of %zu",
                         i, r, d->chars[r], all);
            }
        FZ_CHECK(d->doc_id >= 0 && d->doc_id < t->n_original, "doc_id");
        if (i) FZ_CHECK(d->doc_id > t->docs[i - 1].doc_id, "documents out of order");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int which = data[0] & 15, comp = data[0] >> 4 & 3, k = data[0] >> 6;
    if (comp == 3) comp = 0;
    const uint8_t *part[2]; size_t len[2];
    int np = fz_split(data + 1, size - 1, part, len, 2);
    static int dirs_made;
    if (!dirs_made) {
        const char *sub[] = {"hellaswag", "piqa-official", "mmlu", "mmlu/test", "mmlu/dev"};
        for (int i = 0; i < 5; i++) mkdir(fz_path(sub[i]), 0755);
        dirs_made = 1;
    }
    put(FILES[which], part[0], len[0], comp);
    lop_task t;
    lop_err e;
    int rc;
    if (NAMES[which]) {
        if (which == 1) put("piqa-official/valid-labels.lst", part[1], np > 1 ? len[1] : 0, 0);
        if (which == 2 || which == 10) {
            const char *dev = which == 2 ? "mmlu/dev/anatomy_dev.csv" : "mmlu/dev/college_physics_dev.csv";
            put(dev, np > 1 ? part[1] : part[0], np > 1 ? len[1] : len[0], 0);
        } else k = 0;
        rc = task_load(&t, NAMES[which], fz_dir(), k, &e);
    } else {
        const char *delim = which == 12 ? "" : which == 13 ? "\n" : " ";
        rc = task_load_file(&t, fz_path(FILES[which]), delim, &e);
    }
    if (rc) return 0;
    FZ_CHECK(t.n_docs == t.n_original && t.n_docs >= 1, "loaded %d of %d documents", t.n_docs, t.n_original);
    check(&t);
    task_select(&t, k ? 0.5 : 3, k & 1, 2);
    check(&t);
    task_free(&t);
    return 0;
}
