/* test_tasks.c — the task layer: prompt strings for known items (written out by hand from the
 * harness's doc_to_text / doc_to_choice / target delimiter), readers, selection, scoring and
 * aggregation (against formulas computed here another way). Reads ../shared when present
 * (LOP_SHARED overrides); skips those checks otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>
#include "task.h"
#include "task_text.h"
#include "check.h"

#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
    if (!a_ || strcmp(a_, b_)) { printf("FAIL %s:%d: got \"%s\"\n  want \"%s\"\n", __FILE__, __LINE__, a_ ? a_ : "(null)", b_); fails++; } } while (0)

static void test_text(void) {
    char *s;
    /* hellaswag preprocess: values from Python's re/str applied to the harness's definition */
    s = hellaswag_preprocess("  a [title]b [x] c  "); CHECK_STR(s, "a. b c"); free(s);
    s = hellaswag_preprocess("x [y\n] z"); CHECK_STR(s, "x [y\n] z"); free(s);
    s = hellaswag_preprocess(" [title] [title]"); CHECK_STR(s, ". "); free(s);
    s = hellaswag_preprocess("a    b   c"); CHECK_STR(s, "a  b  c"); free(s);
    s = hellaswag_preprocess("q [unclosed"); CHECK_STR(s, "q [unclosed"); free(s);
    s = hellaswag_preprocess("[a]][b]"); CHECK_STR(s, "]"); free(s);
    /* Python's strip: U+00A0, U+3000, \x1c are whitespace; U+200B is not */
    s = task_py_strip("\xc2\xa0\t x y\xe3\x80\x80\x1c"); CHECK_STR(s, "x y"); free(s);
    s = task_py_strip("\xe2\x80\x8bz"); CHECK_STR(s, "\xe2\x80\x8bz"); free(s);
    s = task_py_strip("   "); CHECK_STR(s, ""); free(s);
    CHECK(task_py_trailing_space("ab \n\t", 5) == 3);
    CHECK(task_py_trailing_space("the ", 4) == 1);
    CHECK(task_py_trailing_space("\xe3\x80\x80", 3) == 3);
    CHECK(task_utf8_len("\xd0\x9f\xd1\x80\xd0\xb8") == 3); /* "При" */
    CHECK(task_utf8_len(" a kilogram of iron") == 19);
    char *ch[4] = {"0", "4", "2", "6"};
    s = mmlu_doc_text(" Find Q.\n", ch);
    CHECK_STR(s, "Find Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:");
    free(s);
}

static void test_csv(void) {
    const char *in = "question,a\n\"x, \"\"y\"\"\nz\",b\r\nplain,\"\"\n";
    const char *p = in, *end = in + strlen(in);
    char **f;
    lop_err e;
    int n = csv_record(&p, end, &f, &e);
    CHECK(n == 2 && !strcmp(f[0], "question"));
    csv_free(f, n);
    n = csv_record(&p, end, &f, &e);
    CHECK(n == 2 && !strcmp(f[0], "x, \"y\"\nz") && !strcmp(f[1], "b"));
    csv_free(f, n);
    n = csv_record(&p, end, &f, &e);
    CHECK(n == 2 && !strcmp(f[0], "plain") && !strcmp(f[1], ""));
    csv_free(f, n);
    CHECK(csv_record(&p, end, &f, &e) == 0);
    const char *bad = "\"open,b\n";
    p = bad;
    CHECK(csv_record(&p, bad + strlen(bad), &f, &e) < 0);
}

static void test_registry(void) {
    char **names;
    int n;
    lop_err e;
    CHECK(task_expand("mmlu", &names, &n, &e) == 0 && n == 57);
    CHECK(n == 57 && !strcmp(names[0], "mmlu_abstract_algebra") && !strcmp(names[56], "mmlu_world_religions"));
    task_names_free(names, n);
    int cats[4] = {0};
    for (int i = 0; i < mmlu_n_subjects(); i++) {
        const char *c = mmlu_category(mmlu_subject(i));
        cats[!strcmp(c, "stem") ? 0 : !strcmp(c, "humanities") ? 1 : !strcmp(c, "social_sciences") ? 2 : 3]++;
    }
    CHECK(cats[0] == 19 && cats[1] == 13 && cats[2] == 12 && cats[3] == 13);
    CHECK(task_expand(" hellaswag , mmlu_stem,hellaswag,mmlu_anatomy", &names, &n, &e) == 0 && n == 20);
    CHECK(n == 20 && !strcmp(names[0], "hellaswag") && !strcmp(names[2], "mmlu_anatomy"));
    task_names_free(names, n);
    CHECK(task_expand("hellaswag,nope", &names, &n, &e) < 0 && e.code == LOP_EUSAGE && strstr(e.msg, "nope"));
    CHECK(task_expand(",,", &names, &n, &e) < 0 && e.code == LOP_EUSAGE);
}

static void test_scoring(void) {
    double x[4] = {-3, -1, -1, -2};
    CHECK(task_argmax_first(x, 4) == 1);
    double y[3] = {-1, NAN, 0};
    CHECK(task_argmax_first(y, 3) == 1);
    /* acc_norm divides by the choice's characters (not the delimiter): ll -10/10 vs -6/4 */
    lop_task t = {.kind = TASK_MC};
    char *cont[2] = {" aaaaaaaaaa", " bbbb"};
    int chars[2] = {10, 4};
    task_doc d = {.n_ctx = 1, .n_cont = 2, .cont = cont, .chars = chars, .gold = 0};
    double ll[2] = {-10, -6};
    uint8_t g[2] = {0, 0};
    task_score sc;
    task_score_doc(&t, &d, ll, g, &sc);
    CHECK(sc.acc == 0 && sc.acc_norm == 1);
    t.kind = TASK_LOGLIK;
    task_score_doc(&t, &d, ll, (uint8_t[]){1}, &sc);
    CHECK(sc.acc == 1 && sc.ll == -10);
    /* mean and stderr against sqrt((sum x^2 - n mean^2) / (n-1) / n) */
    double v[5] = {1, 0, 1, 1, 0}, m, se;
    task_agg_mean(v, 5, &m, &se);
    double s2 = 0;
    for (int i = 0; i < 5; i++) s2 += v[i] * v[i];
    CHECK(fabs(m - 0.6) < 1e-15 && fabs(se - sqrt((s2 - 5 * 0.36) / 4 / 5)) < 1e-12);
    task_agg_mean(v, 1, &m, &se);
    CHECK(m == 1 && isnan(se));
    double lls[3] = {-1, -2, -3};
    task_agg_perplexity(lls, 3, &m, &se);
    CHECK(fabs(m - exp(2.0)) < 1e-12 && fabs(se - exp(2.0) * 1.0 / sqrt(3.0)) < 1e-12);
    /* group: weighted mean; pooled stderr from the per-task variances written out */
    double means[2] = {0.5, 0.25}, ses[2] = {0.1, 0.2};
    int sizes[2] = {10, 30};
    task_agg_group(means, ses, sizes, 2, &m, &se);
    double pooled = (9 * 0.01 * 10 + 29 * 0.04 * 30) / (40 - 2);
    CHECK(fabs(m - (5 + 7.5) / 40) < 1e-15 && fabs(se - sqrt(pooled / 40)) < 1e-12);
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    fputs(s, f);
    fclose(f);
}

static void test_task_file(void) {
    char dir[] = "/tmp/lop_test_tasks.XXXXXX";
    if (!mkdtemp(dir)) { printf("FAIL mkdtemp\n"); fails++; return; }
    char p[256];
    lop_task t;
    lop_err e;
    snprintf(p, sizeof p, "%s/mine.jsonl", dir);
    write_file(p, "{\"query\": \"Q: 2+2=\", \"choices\": [\"4\", \"five\"], \"gold\": 0}\n\n"
                  "{\"query\": \"Q: x \", \"choices\": [\"y\", \"z\"], \"gold\": 1}\n");
    CHECK(task_load_file(&t, p, " ", &e) == 0);
    CHECK(!strcmp(t.name, "mine") && t.kind == TASK_MC && t.n_docs == 2 && t.metrics == (MET_ACC | MET_ACC_NORM));
    if (t.n_docs == 2) {
        CHECK_STR(t.docs[0].ctx[0], "Q: 2+2=");
        CHECK_STR(t.docs[0].cont[1], " five");
        CHECK(t.docs[0].chars[1] == 4 && t.docs[1].gold == 1);
    }
    task_free(&t);
    /* empty delimiter: the choices are the continuations, acc_norm by their full length */
    CHECK(task_load_file(&t, p, "", &e) == 0 && t.n_docs == 2);
    if (t.n_docs == 2) CHECK(!strcmp(t.docs[0].cont[1], "five") && t.docs[0].chars[1] == 4);
    task_free(&t);
    snprintf(p, sizeof p, "%s/wino.jsonl", dir);
    write_file(p, "{\"context_options\": [\"A so A\", \"A so B\"], \"continuation\": \"won.\", \"gold\": 1}\n");
    CHECK(task_load_file(&t, p, " ", &e) == 0 && t.kind == TASK_MULTI && t.n_docs == 1);
    if (t.n_docs == 1) CHECK(t.docs[0].n_ctx == 2 && !strcmp(t.docs[0].cont[0], " won.") && task_doc_nreq(&t.docs[0]) == 2);
    task_free(&t);
    /* compressed: lam.jsonl absent, lam.jsonl.zst present */
    const char *lam = "{\"context\": \"He said\", \"continuation\": \"hello\"}\n";
    char zb[256];
    size_t zn = ZSTD_compress(zb, sizeof zb, lam, strlen(lam), 3);
    snprintf(p, sizeof p, "%s/lam.jsonl.zst", dir);
    FILE *f = fopen(p, "wb");
    fwrite(zb, 1, zn, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/lam.jsonl", dir);
    CHECK(task_load_file(&t, p, " ", &e) == 0 && t.kind == TASK_LOGLIK && t.metrics == (MET_ACC | MET_PPL));
    if (t.n_docs == 1) CHECK(!strcmp(t.docs[0].ctx[0], "He said") && !strcmp(t.docs[0].cont[0], " hello"));
    task_free(&t);
    /* bad inputs: each a clear error naming the file */
    static const char *bad[] = {
        "", "not json\n", "{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 1}\n",
        "{\"query\": \"q\", \"choices\": [], \"gold\": 0}\n",
        "{\"query\": \"q\", \"choices\": [\"a\", 3], \"gold\": 0}\n",
        "{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0}\n{\"context\": \"c\", \"continuation\": \"d\"}\n",
        "{\"other\": 1}\n", "{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0.5}\n", "\n\n",
    };
    snprintf(p, sizeof p, "%s/bad.jsonl", dir);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_file(p, bad[i]);
        memset(&e, 0, sizeof e);
        int rc = task_load_file(&t, p, " ", &e);
        if (rc == 0 || !strstr(e.msg, "bad.jsonl")) { printf("FAIL bad task file %zu: rc %d msg '%s'\n", i, rc, e.msg); fails++; }
        if (rc == 0) task_free(&t);
    }
    snprintf(p, sizeof p, "%s/none.jsonl", dir);
    CHECK(task_load_file(&t, p, " ", &e) < 0 && strstr(e.msg, "none.jsonl"));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
}

static void test_select(void) {
    lop_task t = {0};
    t.n_docs = 10;
    t.docs = calloc(10, sizeof(task_doc));
    for (int i = 0; i < 10; i++) t.docs[i].doc_id = i;
    task_select(&t, 0.25, 1, 2); /* ceil(2.5) = 3 docs: 0,1,2 -> shard 1 of 2: doc 1 */
    CHECK(t.n_docs == 1 && t.docs[0].doc_id == 1);
    task_free(&t);
    t.n_docs = 10;
    t.docs = calloc(10, sizeof(task_doc));
    for (int i = 0; i < 10; i++) t.docs[i].doc_id = i;
    task_select(&t, 7, 0, 3); /* first 7, every 3rd from 0: 0,3,6 */
    CHECK(t.n_docs == 3 && t.docs[1].doc_id == 3 && t.docs[2].doc_id == 6);
    task_free(&t);
}

/* the real files: prompts of known items, counts */
static void test_shared(const char *eval) {
    lop_task t;
    lop_err e;
    if (task_load(&t, "hellaswag", eval, 0, &e)) { printf("FAIL hellaswag: %s\n", e.msg); fails++; }
    else {
        CHECK(t.n_docs == 10042 && t.kind == TASK_MC);
        CHECK_STR(t.docs[0].ctx[0], "Roof shingle removal: A man is sitting on a roof. he");
        CHECK_STR(t.docs[0].cont[0], " is using wrap to wrap a pair of skis.");
        CHECK(t.docs[0].gold == 3 && t.docs[0].chars[0] == 37);
        /* item 3505 has "[www.kiddio.org]" in its context: removed, the double space folded */
        CHECK(strstr(t.docs[3505].ctx[0], "Visit a site like to find loads") != NULL);
        task_free(&t);
    }
    if (task_load(&t, "piqa", eval, 0, &e)) { printf("FAIL piqa: %s\n", e.msg); fails++; }
    else {
        CHECK(t.n_docs == 1838);
        CHECK_STR(t.docs[0].ctx[0], "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
        CHECK_STR(t.docs[1].ctx[0], "Question: dresser\nAnswer:");
        CHECK_STR(t.docs[1].cont[0], " replace drawer with bobby pin "); /* raw sol1 keeps its space */
        CHECK(t.docs[1].chars[0] == 30 && t.docs[1].gold == 1 && t.docs[0].gold == 0);
        task_free(&t);
    }
    if (task_load(&t, "arc_easy", eval, 0, &e)) { printf("FAIL arc_easy: %s\n", e.msg); fails++; }
    else {
        CHECK(t.n_docs == 2376);
        CHECK_STR(t.docs[1].ctx[0], "Question: Which piece of safety equipment is used to keep mold spores from entering the respiratory system?\nAnswer:");
        CHECK_STR(t.docs[1].cont[1], " breathing mask");
        CHECK(t.docs[1].gold == 1);
        task_free(&t);
    }
    if (task_load(&t, "copa", eval, 0, &e)) { printf("FAIL copa: %s\n", e.msg); fails++; }
    else {
        CHECK(t.n_docs == 100 && t.metrics == MET_ACC);
        CHECK_STR(t.docs[0].ctx[0], "The man turned on the faucet therefore");
        CHECK_STR(t.docs[0].cont[0], "  the toilet filled with water.");
        CHECK(t.docs[0].chars[0] == 30);
        task_free(&t);
    }
    if (task_load(&t, "boolq", eval, 0, &e)) { printf("FAIL boolq: %s\n", e.msg); fails++; }
    else {
        CHECK(t.n_docs == 3270 && t.version == 2.0);
        CHECK(!strncmp(t.docs[0].ctx[0], "All biomass goes through", 24));
        const char *c = t.docs[0].ctx[0];
        size_t n = strlen(c);
        CHECK(n > 17 && !strcmp(c + n - 17, "produces?\nAnswer:"));
        CHECK(strstr(c, "producing gasoline.\nQuestion: does ethanol take more energy make that produces?\nAnswer:") != NULL);
        CHECK_STR(t.docs[0].cont[0], " no");
        CHECK_STR(t.docs[0].cont[1], " yes");
        task_free(&t);
    }
    if (task_load(&t, "winogrande", eval, 0, &e)) { printf("FAIL winogrande: %s\n", e.msg); fails++; }
    else {
        CHECK(t.n_docs == 1267 && t.kind == TASK_MULTI);
        CHECK_STR(t.docs[0].ctx[1], "Sarah was a much better surgeon than Maria so Maria");
        CHECK_STR(t.docs[0].cont[0], " always got the easier cases.");
        CHECK(t.docs[0].gold == 1);
        task_free(&t);
    }
    if (task_load(&t, "lambada_openai", eval, 0, &e)) { printf("FAIL lambada: %s\n", e.msg); fails++; }
    else {
        CHECK(t.n_docs == 5153 && t.kind == TASK_LOGLIK);
        CHECK_STR(t.docs[0].cont[0], " signs");
        task_free(&t);
    }
    if (task_load(&t, "openbookqa", eval, 0, &e)) { printf("FAIL openbookqa: %s\n", e.msg); fails++; }
    else {
        CHECK(t.n_docs == 500);
        CHECK_STR(t.docs[2].ctx[0], "Predators eat");
        CHECK_STR(t.docs[2].cont[2], " bunnies");
        task_free(&t);
    }
    if (task_load(&t, "mmlu_abstract_algebra", eval, 0, &e)) { printf("FAIL mmlu: %s\n", e.msg); fails++; }
    else {
        CHECK(t.n_docs == 100 && !strcmp(t.group, "mmlu_stem") && t.metrics == MET_ACC);
        CHECK_STR(t.docs[0].ctx[0],
                  "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
                  "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
                  "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:");
        CHECK_STR(t.docs[0].cont[3], " D");
        CHECK(t.docs[0].chars[3] == 1 && t.docs[0].gold == 1);
        task_free(&t);
    }
    if (task_load(&t, "mmlu_abstract_algebra", eval, 1, &e)) { printf("FAIL mmlu 1-shot: %s\n", e.msg); fails++; }
    else {
        CHECK_STR(t.docs[0].ctx[0],
                  "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
                  "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n"
                  "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
                  "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:");
        task_free(&t);
    }
    CHECK(task_load(&t, "mmlu_anatomy", eval, 6, &e) < 0 && e.code == LOP_EUSAGE);
    CHECK(task_load(&t, "hellaswag", eval, 1, &e) < 0 && e.code == LOP_EUSAGE);
    CHECK(task_load(&t, "piqa", "/nonexistent", 0, &e) < 0 && strstr(e.msg, "/nonexistent/piqa-official"));
    /* every MMLU subject reads */
    int total = 0;
    for (int i = 0; i < mmlu_n_subjects(); i++) {
        char name[96];
        snprintf(name, sizeof name, "mmlu_%s", mmlu_subject(i));
        if (task_load(&t, name, eval, 5, &e)) { printf("FAIL %s: %s\n", name, e.msg); fails++; continue; }
        total += t.n_docs;
        task_free(&t);
    }
    CHECK(total == 14042);
}

int main(void) {
    test_text();
    test_csv();
    test_registry();
    test_scoring();
    test_task_file();
    test_select();
    const char *sh = getenv("LOP_SHARED");
    char eval[1024];
    snprintf(eval, sizeof eval, "%s/data/eval", sh ? sh : "../shared");
    if (access(eval, R_OK) == 0) test_shared(eval);
    else printf("skip: %s absent\n", eval);
    if (fails) { printf("%d failures\n", fails); return 1; }
    printf("test_tasks: ok\n");
    return 0;
}
