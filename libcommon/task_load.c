/* task_load.c — readers for the files of ../shared/data/eval, each rebuilding the harness's
 * prompt (doc_to_text, doc_to_choice, target delimiter) from the file's fields:
 *
 *   hellaswag   preprocess(activity_label + ": " + ctx) / " " + preprocess(ending)
 *               (the 6-line file joins ctx_a and ctx_b without the harness's ctx_b.capitalize())
 *   piqa        "Question: {goal}\nAnswer:" / " " + sol   (piqa-official: raw goal and sols)
 *   arc_*       "Question: {question}\nAnswer:" / " " + text   (llm-foundry's query + "\nAnswer:")
 *   openbookqa  question_stem / " " + text
 *   copa        premise[:-1] + " because"|" therefore" / " " + (" " + choice, first letter
 *               lowercased): the harness's doc_to_choice already starts with a space, so the
 *               continuation starts with two (llm-foundry's query has ", because": comma dropped)
 *   boolq       "{passage}\nQuestion: {question}?\nAnswer:" / " no", " yes"
 *   winogrande  sentence[:blank] + option (two contexts) / " " + rest of the sentence
 *   lambada     context / " " + last word  (loglikelihood; acc = greedy, perplexity)
 *   mmlu_<s>    "The following are multiple choice questions (with answers) about {s}.\n\n"
 *               + K dev examples "{doc}" + " {letter}\n\n" + "{q.strip()}\nA. ..\nAnswer:" / " A".." D"
 */
#include "task.h"
#include "task_text.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static task_doc *new_doc(lop_task *t, int *cap) {
    if (t->n_docs == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        task_doc *d = realloc(t->docs, sizeof(task_doc) * (size_t)*cap);
        if (!d) abort();
        t->docs = d;
    }
    task_doc *d = &t->docs[t->n_docs];
    memset(d, 0, sizeof *d);
    d->doc_id = t->n_docs++;
    return d;
}

static char **alloc_strs(int n) {
    char **s = calloc((size_t)n, sizeof(char *));
    if (!s) abort();
    return s;
}

static char *cat2(const char *a, const char *b) {
    sbuf s = {0};
    sb_puts(&s, a);
    sb_puts(&s, b);
    return task_text_take(&s);
}

/* one context (taken over), continuations delim + choice[i] */
static void doc_mc(task_doc *d, char *ctx, const char *delim, char *const *choices, int n, int gold) {
    d->n_ctx = 1;
    d->ctx = alloc_strs(1);
    d->ctx[0] = ctx;
    d->n_cont = n;
    d->cont = alloc_strs(n);
    d->chars = calloc((size_t)n, sizeof(int));
    if (!d->chars) abort();
    for (int i = 0; i < n; i++) {
        d->cont[i] = cat2(delim, choices[i]);
        d->chars[i] = task_utf8_len(choices[i]);
    }
    d->gold = gold;
}

static void set_path(lop_task *t, const char *dir, const char *rel) {
    snprintf(t->source, sizeof t->source, "%s/%s", dir, rel);
}

/* ---- JSON field access with errors naming file and line ---- */

static const char *jstr(cJSON *o, const char *k, const lop_task *t, int line, lop_err *e) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v)) {
        lop_fail(e, "%s:%d: missing string field \"%s\"", t->source, line, k);
        return NULL;
    }
    return v->valuestring;
}

static int jint(cJSON *o, const char *k, int lo, int hi, const lop_task *t, int line, int *out,
                lop_err *e) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    /* range first: casting 2^31 or NaN to int is undefined */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
        v->valuedouble != (double)(int)v->valuedouble)
        return lop_fail(e, "%s:%d: field \"%s\" must be an integer in [%d, %d]", t->source, line,
                        k, lo, hi);
    *out = v->valueint;
    return 0;
}

/* string array field; *out points into the JSON (valid while o lives) */
static int jstrs(cJSON *o, const char *k, const lop_task *t, int line, const char ***out, int *n,
                 lop_err *e) {
    cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k);
    int m = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
    if (m < 1) return lop_fail(e, "%s:%d: field \"%s\" must be a non-empty array of strings", t->source, line, k);
    const char **s = calloc((size_t)m, sizeof(char *));
    if (!s) abort();
    for (int i = 0; i < m; i++) {
        cJSON *v = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsString(v)) {
            free(s);
            return lop_fail(e, "%s:%d: field \"%s\" must be an array of strings", t->source, line, k);
        }
        s[i] = v->valuestring;
    }
    *out = s;
    *n = m;
    return 0;
}

/* ---- the three JSONL shapes ---- */

typedef enum { Q_PLAIN, Q_ARC, Q_BOOLQ, Q_COPA } query_rule;

/* the harness's prompt from llm-foundry's query */
static char *rebuild_query(query_rule r, const char *q, const lop_task *t, int line, lop_err *e) {
    size_t n = strlen(q);
    switch (r) {
    case Q_PLAIN: return task_strdup(q);
    case Q_ARC: return cat2(q, "\nAnswer:");
    case Q_BOOLQ:
        if (strncmp(q, "Passage: ", 9)) {
            lop_fail(e, "%s:%d: boolq query does not start with \"Passage: \"", t->source, line);
            return NULL;
        }
        return cat2(q + 9, "\nAnswer:");
    case Q_COPA: {
        static const char *conn[2] = {", because", ", therefore"};
        for (int i = 0; i < 2; i++) {
            size_t c = strlen(conn[i]);
            if (n >= c && !strcmp(q + n - c, conn[i])) {
                sbuf b = {0};
                sb_put(&b, q, n - c);
                sb_puts(&b, conn[i] + 1); /* " because" */
                return task_text_take(&b);
            }
        }
        lop_fail(e, "%s:%d: copa query does not end with \", because\" or \", therefore\"", t->source, line);
        return NULL;
    }
    }
    return NULL;
}

/* choice[0].lower() + choice[1:] */
static char *lower_first(const char *s) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, -1, &cp);
    if (k <= 0 || !*s) return task_strdup(s);
    utf8proc_uint8_t buf[8];
    utf8proc_ssize_t w = utf8proc_encode_char(utf8proc_tolower(cp), buf);
    sbuf b = {0};
    sb_put(&b, (const char *)buf, (size_t)w);
    sb_puts(&b, s + k);
    return task_text_take(&b);
}

static int load_jsonl(lop_task *t, query_rule rule, const char *delim, lop_err *e) {
    char *buf;
    size_t len;
    if (task_read_file(t->source, &buf, &len, e)) return -1;
    const char *p = buf, *end = buf + len;
    int line = 0, bad = 0, cap = 0, rc = 0;
    int shape = -1; /* the first line decides: 0 MC, 1 MULTI, 2 LOGLIK */
    cJSON *o;
    while ((o = jsonl_next(&p, end, &line, &bad, t->source, e))) {
        int s = cJSON_HasObjectItem(o, "query") ? 0 : cJSON_HasObjectItem(o, "context_options") ? 1
              : cJSON_HasObjectItem(o, "context") ? 2 : -1;
        if (s < 0 || (shape >= 0 && s != shape)) {
            rc = lop_fail(e, "%s:%d: expected %s", t->source, line,
                          shape < 0 ? "{\"query\",\"choices\",\"gold\"}, {\"context_options\",\"continuation\",\"gold\"} or {\"context\",\"continuation\"}"
                          : shape == 0 ? "{\"query\",\"choices\",\"gold\"} like the first line"
                          : shape == 1 ? "{\"context_options\",\"continuation\",\"gold\"} like the first line"
                                       : "{\"context\",\"continuation\"} like the first line");
            cJSON_Delete(o);
            break;
        }
        shape = s;
        const char **arr = NULL;
        int n = 0, gold = -1;
        if (s == 0) {
            const char *q = jstr(o, "query", t, line, e);
            if (!q || jstrs(o, "choices", t, line, &arr, &n, e) ||
                jint(o, "gold", 0, n - 1, t, line, &gold, e)) rc = -1;
            char *ctx = rc ? NULL : rebuild_query(rule, q, t, line, e);
            if (!rc && !ctx) rc = -1;
            if (!rc) {
                char **ch = alloc_strs(n);
                for (int i = 0; i < n; i++) {
                    if (rule != Q_COPA) { ch[i] = task_strdup(arr[i]); continue; }
                    char *lf = lower_first(arr[i]); /* copa's doc_to_choice: " " + lowered */
                    ch[i] = cat2(" ", lf);
                    free(lf);
                }
                doc_mc(new_doc(t, &cap), ctx, delim, ch, n, gold);
                for (int i = 0; i < n; i++) free(ch[i]);
                free(ch);
            }
        } else if (s == 1) {
            const char *c = NULL;
            if (jstrs(o, "context_options", t, line, &arr, &n, e) ||
                !(c = jstr(o, "continuation", t, line, e)) ||
                jint(o, "gold", 0, n - 1, t, line, &gold, e)) rc = -1;
            else {
                task_doc *d = new_doc(t, &cap);
                d->n_ctx = n;
                d->ctx = alloc_strs(n);
                for (int i = 0; i < n; i++) d->ctx[i] = task_strdup(arr[i]);
                d->n_cont = 1;
                d->cont = alloc_strs(1);
                d->cont[0] = cat2(delim, c);
                d->chars = calloc((size_t)n, sizeof(int));
                if (!d->chars) abort();
                d->gold = gold;
            }
        } else {
            const char *c = jstr(o, "context", t, line, e), *k = c ? jstr(o, "continuation", t, line, e) : NULL;
            if (!k) rc = -1;
            else {
                task_doc *d = new_doc(t, &cap);
                d->n_ctx = d->n_cont = 1;
                d->ctx = alloc_strs(1);
                d->ctx[0] = task_strdup(c);
                d->cont = alloc_strs(1);
                d->cont[0] = cat2(delim, k);
                d->chars = calloc(1, sizeof(int));
                if (!d->chars) abort();
                d->gold = -1;
            }
        }
        free(arr);
        cJSON_Delete(o);
        if (rc) break;
    }
    free(buf);
    if (bad) rc = -1;
    if (!rc && t->n_docs == 0) rc = lop_fail(e, "%s: no documents", t->source);
    if (rc) { task_free(t); return -1; }
    t->kind = (task_kind)shape;
    t->n_original = t->n_docs;
    return 0;
}

/* ---- hellaswag: llama.cpp's 6 lines per item ---- */

static int load_hellaswag(lop_task *t, lop_err *e) {
    char *buf;
    size_t len;
    if (task_read_file(t->source, &buf, &len, e)) return -1;
    /* split into lines (\n, dropping a \r before it) */
    int nl = 0, cap = 0;
    char **lines = NULL;
    for (char *p = buf; p < buf + len;) {
        char *q = memchr(p, '\n', (size_t)(buf + len - p));
        char *le = q ? q : buf + len;
        if (le > p && le[-1] == '\r') le[-1] = 0;
        *le = 0;
        if (nl == cap) { cap = cap ? cap * 2 : 4096; lines = realloc(lines, sizeof(char *) * (size_t)cap); if (!lines) abort(); }
        lines[nl++] = p;
        p = le + 1;
    }
    int rc = 0, dcap = 0;
    if (nl % 6) rc = lop_fail(e, "%s: %d lines, not a multiple of 6 (query, gold, 4 endings per item)", t->source, nl);
    for (int i = 0; !rc && i + 5 < nl; i += 6) {
        char *endp;
        long g = strtol(lines[i + 1], &endp, 10);
        if (endp == lines[i + 1] || *endp || g < 0 || g > 3) {
            rc = lop_fail(e, "%s:%d: gold label must be 0..3", t->source, i + 2);
            break;
        }
        char *ch[4];
        for (int k = 0; k < 4; k++) ch[k] = hellaswag_preprocess(lines[i + 2 + k]);
        doc_mc(new_doc(t, &dcap), hellaswag_preprocess(lines[i]), " ", ch, 4, (int)g);
        for (int k = 0; k < 4; k++) free(ch[k]);
    }
    free(lines);
    free(buf);
    if (!rc && t->n_docs == 0) rc = lop_fail(e, "%s: no documents", t->source);
    if (rc) { task_free(t); return -1; }
    t->n_original = t->n_docs;
    return 0;
}

/* ---- piqa-official: valid.jsonl + valid-labels.lst ---- */

static int load_piqa(lop_task *t, const char *dir, lop_err *e) {
    char lab_path[1100];
    snprintf(lab_path, sizeof lab_path, "%s/piqa-official/valid-labels.lst", dir);
    char *lab, *buf;
    size_t ll, len;
    if (task_read_file(lab_path, &lab, &ll, e)) return -1;
    if (task_read_file(t->source, &buf, &len, e)) { free(lab); return -1; }
    const char *p = buf, *end = buf + len, *lp = lab;
    int line = 0, bad = 0, cap = 0, rc = 0;
    cJSON *o;
    while ((o = jsonl_next(&p, end, &line, &bad, t->source, e))) {
        while (*lp == '\n' || *lp == '\r') lp++;
        if (*lp != '0' && *lp != '1') { rc = lop_fail(e, "%s: fewer labels (0/1) than items", lab_path); cJSON_Delete(o); break; }
        int gold = *lp++ - '0';
        const char *goal = jstr(o, "goal", t, line, e);
        const char *s1 = goal ? jstr(o, "sol1", t, line, e) : NULL;
        const char *s2 = s1 ? jstr(o, "sol2", t, line, e) : NULL;
        if (!s2) { rc = -1; cJSON_Delete(o); break; }
        sbuf b = {0};
        sb_puts(&b, "Question: ");
        sb_puts(&b, goal);
        sb_puts(&b, "\nAnswer:");
        char *ch[2] = {(char *)s1, (char *)s2};
        doc_mc(new_doc(t, &cap), task_text_take(&b), " ", ch, 2, gold);
        cJSON_Delete(o);
    }
    free(buf);
    free(lab);
    if (bad) rc = -1;
    if (!rc && t->n_docs == 0) rc = lop_fail(e, "%s: no documents", t->source);
    if (rc) { task_free(t); return -1; }
    t->n_original = t->n_docs;
    return 0;
}

/* ---- MMLU csv ---- */

typedef struct mmlu_row { char *q, *c[4]; int answer; } mmlu_row;

static int read_mmlu_csv(const char *path, mmlu_row **rows, int *n, lop_err *e) {
    char *buf;
    size_t len;
    if (task_read_file(path, &buf, &len, e)) return -1;
    const char *p = buf, *end = buf + len;
    if (len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3)) p += 3;
    char **f;
    int nf, rec = 0, cap = 0, rc = 0;
    *rows = NULL;
    *n = 0;
    while ((nf = csv_record(&p, end, &f, e)) != 0) {
        if (nf < 0) { rc = lop_wrap(e, "%s", path); break; }
        rec++;
        if (rec == 1 && nf >= 1 && !strcmp(f[0], "question")) { csv_free(f, nf); continue; }
        if (nf == 1 && !f[0][0]) { csv_free(f, nf); continue; } /* blank line */
        char *endp;
        long a = nf == 6 ? strtol(f[5], &endp, 10) : -1;
        /* the original release (Hendrycks' data.tar) writes the answer as a letter */
        if (nf == 6 && f[5][0] >= 'A' && f[5][0] <= 'D' && !f[5][1]) { a = f[5][0] - 'A'; endp = f[5] + 1; }
        if (nf != 6 || endp == f[5] || *endp || a < 0 || a > 3) {
            rc = lop_fail(e, "%s: record %d: expected question,choice0..choice3,answer (0-3 or A-D)", path, rec);
            csv_free(f, nf);
            break;
        }
        if (*n == cap) { cap = cap ? cap * 2 : 64; *rows = realloc(*rows, sizeof(mmlu_row) * (size_t)cap); if (!*rows) abort(); }
        mmlu_row *r = &(*rows)[(*n)++];
        r->q = f[0];
        for (int i = 0; i < 4; i++) r->c[i] = f[1 + i];
        r->answer = (int)a;
        free(f[5]);
        free(f);
    }
    free(buf);
    if (!rc && *n == 0) rc = lop_fail(e, "%s: no questions", path);
    return rc;
}

static void mmlu_rows_free(mmlu_row *r, int n) {
    for (int i = 0; i < n; i++) {
        free(r[i].q);
        for (int k = 0; k < 4; k++) free(r[i].c[k]);
    }
    free(r);
}

static int load_mmlu(lop_task *t, const char *dir, const char *subject, int k, lop_err *e) {
    char path[1100];
    snprintf(t->source, sizeof t->source, "%s/mmlu/test/%s_test.csv", dir, subject);
    mmlu_row *test = NULL, *dev = NULL;
    int nt = 0, nd = 0;
    if (read_mmlu_csv(t->source, &test, &nt, e)) { mmlu_rows_free(test, nt); return -1; }
    if (k > 0) {
        snprintf(path, sizeof path, "%s/mmlu/dev/%s_dev.csv", dir, subject);
        if (read_mmlu_csv(path, &dev, &nd, e)) { mmlu_rows_free(test, nt); mmlu_rows_free(dev, nd); return -1; }
        if (k > nd) {
            mmlu_rows_free(test, nt);
            mmlu_rows_free(dev, nd);
            return lop_failc(e, LOP_EUSAGE, "--num-fewshot %d: %s has only %d dev examples", k, path, nd);
        }
    }
    /* description + the first k dev examples (the harness's first_n sampler) */
    sbuf pre = {0};
    sb_puts(&pre, "The following are multiple choice questions (with answers) about ");
    for (const char *s = subject; *s; s++) sb_put(&pre, *s == '_' ? " " : s, 1);
    sb_puts(&pre, ".\n\n");
    static const char *letters[4] = {"A", "B", "C", "D"};
    for (int i = 0; i < k; i++) {
        char *dt = mmlu_doc_text(dev[i].q, dev[i].c);
        sb_puts(&pre, dt);
        sb_puts(&pre, " ");
        sb_puts(&pre, letters[dev[i].answer]);
        sb_puts(&pre, "\n\n");
        free(dt);
    }
    char *prefix = task_text_take(&pre);
    int cap = 0;
    for (int i = 0; i < nt; i++) {
        char *dt = mmlu_doc_text(test[i].q, test[i].c);
        doc_mc(new_doc(t, &cap), cat2(prefix, dt), " ", (char *const *)letters, 4, test[i].answer);
        free(dt);
    }
    free(prefix);
    mmlu_rows_free(test, nt);
    mmlu_rows_free(dev, nd);
    t->n_original = t->n_docs;
    snprintf(t->group, sizeof t->group, "mmlu_%s", mmlu_category(subject));
    return 0;
}

/* ---- entry points ---- */

int task_load(lop_task *t, const char *name, const char *dir, int k, lop_err *e) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->kind = TASK_MC;
    t->metrics = MET_ACC | MET_ACC_NORM;
    t->version = 1.0;
    t->num_fewshot = k;
    int is_mmlu = !strncmp(name, "mmlu_", 5) && mmlu_category(name + 5);
    if (!task_is_builtin(name)) return lop_failc(e, LOP_EUSAGE, "unknown task '%s'", name);
    if (k > 0 && !is_mmlu)
        return lop_failc(e, LOP_EUSAGE,
                         "--num-fewshot %d: task %s has no dev split here to take examples from "
                         "(few-shot is supported for mmlu)", k, name);
    if (is_mmlu) {
        t->metrics = MET_ACC;
        return load_mmlu(t, dir, name + 5, k, e);
    }
    if (!strcmp(name, "hellaswag")) {
        set_path(t, dir, "hellaswag/hellaswag_val_full.txt");
        return load_hellaswag(t, e);
    }
    if (!strcmp(name, "piqa")) {
        set_path(t, dir, "piqa-official/valid.jsonl");
        return load_piqa(t, dir, e);
    }
    static const struct { const char *name, *file; query_rule rule; int metrics; double version; } J[] = {
        {"arc_easy", "arc_easy.jsonl", Q_ARC, MET_ACC | MET_ACC_NORM, 1.0},
        {"arc_challenge", "arc_challenge.jsonl", Q_ARC, MET_ACC | MET_ACC_NORM, 1.0},
        {"openbookqa", "openbook_qa.jsonl", Q_PLAIN, MET_ACC | MET_ACC_NORM, 1.0},
        {"copa", "copa.jsonl", Q_COPA, MET_ACC, 1.0},
        {"boolq", "boolq.jsonl", Q_BOOLQ, MET_ACC, 2.0},
        {"winogrande", "winogrande.jsonl", Q_PLAIN, MET_ACC, 1.0},
        {"lambada_openai", "lambada_openai.jsonl", Q_PLAIN, MET_ACC | MET_PPL, 1.0},
    };
    for (size_t i = 0; i < sizeof J / sizeof J[0]; i++) {
        if (strcmp(name, J[i].name)) continue;
        set_path(t, dir, J[i].file);
        t->metrics = J[i].metrics;
        t->version = J[i].version;
        if (load_jsonl(t, J[i].rule, " ", e)) return -1;
        task_kind want = !strcmp(name, "winogrande") ? TASK_MULTI
                       : !strcmp(name, "lambada_openai") ? TASK_LOGLIK : TASK_MC;
        if (t->kind != want) {
            task_free(t);
            return lop_fail(e, "%s: not the JSONL shape of %s", t->source, name);
        }
        return 0;
    }
    return lop_failc(e, LOP_EUSAGE, "unknown task '%s'", name);
}

int task_load_file(lop_task *t, const char *path, const char *delim, lop_err *e) {
    memset(t, 0, sizeof *t);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(t->name, sizeof t->name, "%s", base);
    char *dot = strstr(t->name, ".jsonl");
    if (dot) *dot = 0;
    else if ((dot = strrchr(t->name, '.'))) *dot = 0;
    if (!t->name[0]) snprintf(t->name, sizeof t->name, "task");
    snprintf(t->source, sizeof t->source, "%s", path);
    t->version = 1.0;
    if (load_jsonl(t, Q_PLAIN, delim ? delim : " ", e)) return -1;
    t->metrics = t->kind == TASK_MC ? MET_ACC | MET_ACC_NORM : t->kind == TASK_MULTI ? MET_ACC : MET_ACC | MET_PPL;
    return 0;
}
