/* test_calib.c — calibration readers and windowing (calib.h), without a tokenizer. */
#include "calib.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>
#include "check.h"


static char dir[64];

static const char *put(const char *name, const void *data, size_t n) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    return path;
}

static void test_lines(void) {
    const char *txt = "first line\r\n\n   \nsecond\nthird with no newline";
    const char *p = put("a.txt", txt, strlen(txt));
    lop_texts t; lop_err e;
    CHECK(calib_read_texts(p, CALIB_LINES, NULL, &t, &e) == 0);
    CHECK(t.n == 3 && !t.jsonl);
    if (t.n == 3) {
        CHECK(!strcmp(t.text[0], "first line") && t.len[0] == 10);
        CHECK(!strcmp(t.text[1], "second"));
        CHECK(!strcmp(t.text[2], "third with no newline"));
    }
    calib_texts_free(&t);
    CHECK(calib_read_texts(p, CALIB_PACKED, NULL, &t, &e) == 0);
    CHECK(t.n == 1 && t.len[0] == strlen(txt) && !strcmp(t.text[0], txt));
    calib_texts_free(&t);
}

static void test_jsonl_and_zstd(void) {
    const char *js = "{\"text\": \"caf\\u00e9\", \"id\": 1}\n\n{\"text\": \"b\"}\n";
    const char *p = put("d.jsonl", js, strlen(js));
    lop_texts t; lop_err e;
    CHECK(calib_read_texts(p, CALIB_AUTO, NULL, &t, &e) == 0);
    CHECK(t.n == 2 && t.jsonl);
    if (t.n == 2) CHECK(!strcmp(t.text[0], "caf\xc3\xa9") && !strcmp(t.text[1], "b"));
    calib_texts_free(&t);
    /* the same bytes compressed, under a name that says nothing: found by magic and by '{' */
    char z[256];
    size_t zn = ZSTD_compress(z, sizeof z, js, strlen(js), 3);
    CHECK(!ZSTD_isError(zn));
    p = put("data.bin", z, zn);
    CHECK(calib_read_texts(p, CALIB_AUTO, NULL, &t, &e) == 0);
    CHECK(t.n == 2 && t.jsonl);
    calib_texts_free(&t);
    /* truncated zstd */
    p = put("trunc.zst", z, zn / 2);
    CHECK(calib_read_texts(p, CALIB_AUTO, NULL, &t, &e) == -1);
    CHECK(strstr(e.msg, "trunc.zst") != NULL);
    /* another field */
    const char *js2 = "{\"content\": \"x\"}\n";
    p = put("c.jsonl", js2, strlen(js2));
    CHECK(calib_read_texts(p, CALIB_AUTO, NULL, &t, &e) == -1);
    CHECK(strstr(e.msg, "c.jsonl:1") && strstr(e.msg, "\"text\""));
    CHECK(calib_read_texts(p, CALIB_AUTO, "content", &t, &e) == 0 && t.n == 1);
    calib_texts_free(&t);
    /* malformed line 2 */
    const char *bad = "{\"text\": \"ok\"}\n{\"text\": \n";
    p = put("bad.jsonl", bad, strlen(bad));
    CHECK(calib_read_texts(p, CALIB_AUTO, NULL, &t, &e) == -1);
    CHECK(strstr(e.msg, "bad.jsonl:2") != NULL);
}

static void test_errors(void) {
    lop_texts t; lop_err e;
    const char *p = put("empty.txt", "", 0);
    CHECK(calib_read_texts(p, CALIB_LINES, NULL, &t, &e) == -1 && strstr(e.msg, "no calibration text"));
    p = put("blank.txt", "\n  \n", 4);
    CHECK(calib_read_texts(p, CALIB_PACKED, NULL, &t, &e) == -1 && strstr(e.msg, "no calibration text"));
    CHECK(calib_read_texts("/nonexistent/x.txt", CALIB_LINES, NULL, &t, &e) == -1 && strstr(e.msg, "/nonexistent/x.txt"));
    p = put("nul.txt", "a\0b", 3);
    CHECK(calib_read_texts(p, CALIB_LINES, NULL, &t, &e) == -1 && strstr(e.msg, "NUL"));
}

static void test_pack(void) {
    int32_t ids[23];
    for (int i = 0; i < 23; i++) ids[i] = 100 + i;
    lop_calib_opts o = calib_default_opts();
    o.ctx = 5;
    lop_calib c; lop_err e;
    /* with BOS: 4 text tokens per window -> 5 windows, tail of 3 dropped */
    CHECK(calib_pack(&c, ids, 23, 1, &o, &e) == 0);
    CHECK(c.n == 5 && c.tokens == 25);
    for (int w = 0; w < c.n; w++) {
        CHECK(c.len[w] == 5 && c.ids[w][0] == 1);
        for (int j = 1; j < 5; j++) CHECK(c.ids[w][j] == 100 + w * 4 + j - 1);
    }
    calib_free(&c);
    /* without BOS, first 2 samples */
    o.samples = 2;
    CHECK(calib_pack(&c, ids, 23, -1, &o, &e) == 0);
    CHECK(c.n == 2 && c.ids[1][0] == 105 && c.ids[1][4] == 109);
    calib_free(&c);
    /* random choice: reproducible, in file order, distinct */
    o.samples = 3; o.random = 1; o.seed = 42;
    lop_calib c2;
    CHECK(calib_pack(&c, ids, 23, -1, &o, &e) == 0);
    CHECK(calib_pack(&c2, ids, 23, -1, &o, &e) == 0);
    CHECK(c.n == 3 && c2.n == 3);
    for (int w = 0; w < 3; w++) CHECK(c.ids[w][0] == c2.ids[w][0]);
    CHECK(c.ids[0][0] < c.ids[1][0] && c.ids[1][0] < c.ids[2][0]);
    calib_free(&c); calib_free(&c2);
    /* shorter than a window: one short sample */
    o = calib_default_opts(); o.ctx = 64;
    CHECK(calib_pack(&c, ids, 3, 7, &o, &e) == 0);
    CHECK(c.n == 1 && c.len[0] == 4 && c.ids[0][0] == 7 && c.ids[0][3] == 102);
    calib_free(&c);
    o.ctx = 1;
    CHECK(calib_pack(&c, ids, 3, 7, &o, &e) == -1 && e.code == LOP_EUSAGE);
    o.ctx = 8;
    CHECK(calib_pack(&c, ids, 0, 7, &o, &e) == -1);
}

static void test_seqs(void) {
    int32_t a[] = {1, 2, 3, 4, 5, 6}, b[] = {1, 9}, cc[] = {1, 7, 7, 7};
    int32_t *seqs[] = {a, b, NULL, cc};
    int lens[] = {6, 2, 0, 4};
    lop_calib_opts o = calib_default_opts();
    o.ctx = 3;
    lop_calib c; lop_err e;
    CHECK(calib_from_seqs(&c, seqs, lens, 4, &o, &e) == 0);
    CHECK(c.n == 3 && c.tokens == 3 + 2 + 3);
    CHECK(c.len[0] == 3 && c.ids[0][2] == 3 && c.len[1] == 2 && c.ids[2][1] == 7);
    calib_free(&c);
    o.ctx = 0; o.samples = 1;
    CHECK(calib_from_seqs(&c, seqs, lens, 4, &o, &e) == 0 && c.n == 1 && c.len[0] == 6);
    calib_free(&c);
    int zero[] = {0, 0};
    CHECK(calib_from_seqs(&c, seqs, zero, 2, &o, &e) == -1);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_calib.XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    test_lines();
    test_jsonl_and_zstd();
    test_errors();
    test_pack();
    test_seqs();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    if (fails) printf("test_calib: %d failures\n", fails);
    return fails != 0;
}
