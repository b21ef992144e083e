/* logs.c — recognize the tools' JSON lines by their keys and collect them per stage. */
#include "logs.h"
#include "textio.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void logs_init(mc_logs *L) {
    memset(L, 0, sizeof *L);
    L->params_before = L->params_after = -1;
    L->target_sparsity = L->overall_sparsity = L->model_sparsity = -1;
}

void logs_free(mc_logs *L) {
    for (int i = 0; i < L->nst; i++) {
        free(L->st[i].ev);
        cJSON_Delete(L->st[i].train_terms);
        cJSON_Delete(L->st[i].train_info);
        for (int k = 0; k < L->st[i].nprov; k++) cJSON_Delete(L->st[i].prov[k]);
    }
    free(L->st);
    free(L->scores);
    free(L->dropped);
    free(L->merges);
    free(L->wt);
    cJSON_Delete(L->merge_stats);
    cJSON_Delete(L->wmask_summary);
    memset(L, 0, sizeof *L);
}

/* Make room for item n of *arr (elem bytes each): capacity 8, doubled whenever n reaches a power
 * of two beyond that. Returns -1 on OOM. */
static int grow(void **arr, int n, size_t elem) {
    size_t cap;
    if (n == 0) cap = 8;
    else if (n >= 8 && (n & (n - 1)) == 0) cap = (size_t)n * 2;
    else return 0;
    void *p = realloc(*arr, cap * elem);
    if (!p) return -1;
    *arr = p;
    return 0;
}

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }
static int has_num(const cJSON *o, const char *k) { return cJSON_IsNumber(get(o, k)); }
static double num(const cJSON *o, const char *k, double d) {
    const cJSON *v = get(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : d;
}
/* a JSON number as an int / long long: NaN is 0, beyond the range saturates (a cast would be
 * undefined; a hostile or broken log may hold 1e300) */
static int to_int(double v) { return v != v ? 0 : v >= INT_MAX ? INT_MAX : v <= INT_MIN ? INT_MIN : (int)v; }
/* a layer number: no model has a million layers, and clamping there keeps spans and sums of
 * hostile numbers inside int */
static int to_layer(double v) { return v != v ? 0 : v >= (1 << 20) ? (1 << 20) : v <= -(1 << 20) ? -(1 << 20) : (int)v; }
static long long to_ll(double v) { return v != v ? 0 : v >= 9.2e18 ? LLONG_MAX : v <= -9.2e18 ? LLONG_MIN : (long long)v; }
static const char *str(const cJSON *o, const char *k) {
    const cJSON *v = get(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* keys whose values change from run to run (timings, memory) or only name things (action,
 * output path): left out of the card, which must be the same for the same experiment */
static int volatile_key(const char *k) {
    static const char *const sub[] = {"seconds", "rss", "time", "elapsed", "per_s", "tok_s", "eta", NULL};
    if (!strcmp(k, "action") || !strcmp(k, "output") || !strcmp(k, "tool")) return 1;
    for (int i = 0; sub[i]; i++) if (strstr(k, sub[i])) return 1;
    return 0;
}

/* copy the scalar (number, string, bool) fields of src into *dst (created on demand), later lines
 * overriding earlier ones key by key */
static void merge_scalars(cJSON **dst, const cJSON *src, const char *const *skip) {
    if (!*dst) *dst = cJSON_CreateObject();
    if (!*dst) return;
    const cJSON *f;
    cJSON_ArrayForEach(f, src) {
        int s = volatile_key(f->string);
        for (int i = 0; skip && skip[i]; i++) if (!strcmp(skip[i], f->string)) s = 1;
        if (s || !(cJSON_IsNumber(f) || cJSON_IsString(f) || cJSON_IsBool(f))) continue;
        cJSON *c = cJSON_Duplicate(f, 0);
        if (!c) continue;
        if (get(*dst, f->string)) cJSON_ReplaceItemInObjectCaseSensitive(*dst, f->string, c);
        else cJSON_AddItemToObject(*dst, f->string, c);
    }
}

static int add_eval(mc_stage *s, const char *task, const char *metric, double v, double se, long long n) {
    /* a later line for the same task and metric replaces the earlier one (lm-eval --merge logs) */
    for (int i = 0; i < s->nev; i++)
        if (!strcmp(s->ev[i].task, task) && !strcmp(s->ev[i].metric, metric)) {
            s->ev[i].value = v; s->ev[i].stderr_ = se; s->ev[i].n = n;
            return 0;
        }
    if (grow((void **)&s->ev, s->nev, sizeof *s->ev)) return -1;
    mc_eval *x = &s->ev[s->nev++];
    snprintf(x->task, sizeof x->task, "%s", task);
    snprintf(x->metric, sizeof x->metric, "%s", metric);
    x->value = v; x->stderr_ = se; x->n = n;
    return 0;
}

static int add_dropped(mc_logs *L, int layer) {
    for (int i = 0; i < L->ndropped; i++) if (L->dropped[i] == layer) return 0;
    if (grow((void **)&L->dropped, L->ndropped, sizeof *L->dropped)) return -1;
    L->dropped[L->ndropped++] = layer;
    return 0;
}

static int add_dropped_json(mc_logs *L, const cJSON *v) {
    if (cJSON_IsNumber(v)) return add_dropped(L, to_layer(v->valuedouble));
    const cJSON *x;
    if (cJSON_IsArray(v)) cJSON_ArrayForEach(x, v) if (cJSON_IsNumber(x) && add_dropped(L, to_layer(x->valuedouble))) return -1;
    return 0;
}

/* "A-B" or [A,B] or [A,..,B] -> a, b */
static int range_of(const cJSON *v, int *a, int *b) {
    if (cJSON_IsString(v)) {
        double x, y;
        if (sscanf(v->valuestring, "%lf-%lf", &x, &y) != 2) return -1;
        *a = to_layer(x); *b = to_layer(y);
        return 0;
    }
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) >= 2) {
        const cJSON *f = cJSON_GetArrayItem(v, 0), *l = cJSON_GetArrayItem(v, cJSON_GetArraySize(v) - 1);
        if (!cJSON_IsNumber(f) || !cJSON_IsNumber(l)) return -1;
        *a = to_layer(f->valuedouble); *b = to_layer(l->valuedouble);
        return 0;
    }
    return -1;
}

static int is_merge_line(const cJSON *o) {
    const char *act = str(o, "action");
    if (act && strstr(act, "merge")) return 1;
    if (get(o, "merge") || get(o, "merged") || (get(o, "accepted") && get(o, "similarity"))) return 1;
    const cJSON *f; /* layer-merge's statistics: merges_accepted, merges_rejected, ... */
    cJSON_ArrayForEach(f, o) if (!strncmp(f->string, "merges_", 7)) return 1;
    return 0;
}

static int take_merge(mc_logs *L, const cJSON *o) {
    int a, b;
    const cJSON *r = get(o, "source_layers"); /* LaCo: the base model's numbering */
    if (!r) r = get(o, "layers");
    if (!r) r = get(o, "merge");
    if (!r) r = get(o, "merged");
    int ok = r && range_of(r, &a, &b) == 0;
    if (!ok && has_num(o, "start") && has_num(o, "end")) {
        a = to_layer(num(o, "start", 0)); b = to_layer(num(o, "end", 0)); ok = 1;
    }
    if (!ok) { /* layer-merge's closing statistics */
        merge_scalars(&L->merge_stats, o, NULL);
        return 0;
    }
    if (grow((void **)&L->merges, L->nmerges, sizeof *L->merges)) return -1;
    mc_merge *m = &L->merges[L->nmerges++];
    m->a = a; m->b = b;
    int ca, cb; /* layers removed by this merge: its span in the numbering it was applied to */
    m->gone = get(o, "layers") && range_of(get(o, "layers"), &ca, &cb) == 0 ? cb - ca : b - a;
    m->has_sim = has_num(o, "similarity");
    m->sim = num(o, "similarity", 0);
    const cJSON *acc = get(o, "accepted");
    m->accepted = acc ? cJSON_IsTrue(acc) : 1; /* --merge A-B: always applied */
    return 0;
}

static int is_drop_line(const cJSON *o) {
    const char *act = str(o, "action");
    if (act && (!strcmp(act, "drop") || !strcmp(act, "dropped") || !strcmp(act, "remove"))) return 1;
    return get(o, "dropped") || get(o, "drop") || get(o, "removed");
}

static void take_params(mc_logs *L, const cJSON *o) {
    static const char *const before[] = {"params_before", "before", "params_in", NULL};
    static const char *const after[] = {"params_after", "after", "params_out", NULL};
    for (int i = 0; before[i]; i++) if (has_num(o, before[i])) { L->params_before = to_ll(num(o, before[i], 0)); break; }
    for (int i = 0; after[i]; i++) if (has_num(o, after[i])) { L->params_after = to_ll(num(o, after[i], 0)); break; }
}

static int take_drop(mc_logs *L, const cJSON *o) {
    const char *act = str(o, "action");
    int rc = 0;
    if (get(o, "dropped")) rc = add_dropped_json(L, get(o, "dropped"));
    else if (get(o, "drop")) rc = add_dropped_json(L, get(o, "drop"));
    else if (get(o, "removed")) rc = add_dropped_json(L, get(o, "removed"));
    else if (act && has_num(o, "layer")) rc = add_dropped(L, to_layer(num(o, "layer", 0)));
    take_params(L, o);
    return rc;
}

static int has_sparsity_key(const cJSON *o) {
    const cJSON *f;
    cJSON_ArrayForEach(f, o) if (strstr(f->string, "sparsity")) return 1;
    return 0;
}

static int take_wmask(mc_logs *L, const cJSON *o) {
    const char *name = str(o, "tensor");
    if (!name) name = str(o, "name");
    const char *m = str(o, "method");
    if (m) snprintf(L->wmask_method, sizeof L->wmask_method, "%s", m);
    if (name && has_num(o, "sparsity")) {
        if (grow((void **)&L->wt, L->nwt, sizeof *L->wt)) return -1;
        mc_wtensor *t = &L->wt[L->nwt++];
        snprintf(t->name, sizeof t->name, "%s", name);
        t->sparsity = num(o, "sparsity", 0);
        return 0;
    }
    merge_scalars(&L->wmask_summary, o, NULL);
    if (has_num(o, "target_sparsity")) L->target_sparsity = num(o, "target_sparsity", -1);
    else if (has_num(o, "target")) L->target_sparsity = num(o, "target", -1);
    static const char *const overall[] = {"overall_sparsity", "sparsity", "selected_sparsity", NULL};
    for (int i = 0; overall[i]; i++) if (has_num(o, overall[i])) { L->overall_sparsity = num(o, overall[i], 0); break; }
    if (has_num(o, "model_sparsity")) L->model_sparsity = num(o, "model_sparsity", 0);
    return 0;
}

static const char *const step_keys[] = {"step", "loss", "lr", "grad_norm", "tokens_per_s", "tok_s",
                                        "tokens", "scored", "epoch", "elapsed", "time", "tool", NULL};

static void take_step(mc_stage *s, const cJSON *o) {
    double loss = num(o, "loss", NAN), lr = num(o, "lr", NAN);
    if (s->nsteps == 0) { s->first_loss = loss; s->min_loss = loss; s->peak_lr = 0; }
    s->nsteps++;
    s->last_step = to_ll(num(o, "step", 0));
    s->last_loss = loss;
    if (loss < s->min_loss) s->min_loss = loss;
    if (lr > s->peak_lr) s->peak_lr = lr;
    double ts = has_num(o, "tokens_per_s") ? num(o, "tokens_per_s", 0) : num(o, "tok_s", -1);
    if (ts >= 0) { s->sum_tok_s += ts; s->n_tok_s++; }
    if (has_num(o, "tokens") && __builtin_add_overflow(s->tokens, to_ll(num(o, "tokens", 0)), &s->tokens)) s->tokens = LLONG_MAX;
    /* kd-train: the loss's terms */
    static const char *const kd[] = {"ce", "fkl", "rkl", "skl", "srkl", "jsd", "tvd", "kl", NULL};
    for (int i = 0; kd[i]; i++) if (get(o, kd[i])) snprintf(s->train_tool, sizeof s->train_tool, "kd-train");
    const char *tool = str(o, "tool");
    if (tool) snprintf(s->train_tool, sizeof s->train_tool, "%s", tool);
    if (!s->train_tool[0]) snprintf(s->train_tool, sizeof s->train_tool, "heal-sft");
    cJSON_Delete(s->train_terms);
    s->train_terms = NULL;
    merge_scalars(&s->train_terms, o, step_keys);
}

static int take_line(mc_logs *L, mc_stage *s, const cJSON *o) {
    const cJSON *pv = cJSON_GetObjectItemCaseSensitive(o, "provenance");
    if (cJSON_IsObject(pv)) {
        if (s->nprov < MC_MAX_FILES && !(s->prov[s->nprov++] = cJSON_Duplicate(pv, 1))) return -1;
        return 0;
    }
    const char *task = str(o, "task"), *metric = str(o, "metric");
    if (task && metric && has_num(o, "value"))
        return add_eval(s, task, metric, num(o, "value", 0), num(o, "stderr", -1), to_ll(num(o, "n", -1)));
    if (metric && has_num(o, "score") && (has_num(o, "layer") || has_num(o, "start"))) {
        if (!L->score_metric[0]) snprintf(L->score_metric, sizeof L->score_metric, "%s", metric);
        if (strcmp(L->score_metric, metric)) return 0;
        if (grow((void **)&L->scores, L->nscores, sizeof *L->scores)) return -1;
        mc_score *x = &L->scores[L->nscores++];
        x->layer = to_layer(has_num(o, "layer") ? num(o, "layer", 0) : num(o, "start", 0));
        x->n = to_int(num(o, "n", 1));
        x->score = num(o, "score", 0);
        return 0;
    }
    if (has_num(o, "ppl") && !get(o, "step") && !metric) {
        s->has_ppl = 1;
        s->ppl = num(o, "ppl", 0);
        /* ppl's "stderr" is that of the mean NLL; "ppl_stderr" that of the perplexity */
        s->ppl_stderr = has_num(o, "ppl_stderr") ? num(o, "ppl_stderr", -1) : num(o, "stderr", -1);
        s->nll = num(o, "nll", NAN);
        s->ppl_tokens = to_ll(num(o, "tokens", -1));
        return 0;
    }
    if (get(o, "pos") && get(o, "nll")) return 0; /* ppl --per-token */
    if (has_num(o, "step") && has_num(o, "loss")) { take_step(s, o); return 0; }
    if (has_num(o, "eval_loss") || has_num(o, "eval_ppl")) {
        s->eval_loss = num(o, "eval_loss", -1);
        s->eval_ppl = num(o, "eval_ppl", s->eval_loss >= 0 ? exp(s->eval_loss) : -1);
        return 0;
    }
    if (is_merge_line(o)) return take_merge(L, o);
    if (is_drop_line(o)) return take_drop(L, o);
    if (has_num(o, "params_before") || has_num(o, "params_after")) { take_params(L, o); return 0; }
    if (has_sparsity_key(o)) return take_wmask(L, o);
    /* anything else: kept as this stage's info (a training tool's recipe line) */
    merge_scalars(&s->train_info, o, NULL);
    s->unknown++;
    return 0;
}

/* lm-evaluation-harness results layout: {"results": {task: {"acc,none": x, "acc_stderr,none": y}}} */
static int take_harness(mc_stage *s, const cJSON *root) {
    const cJSON *res = get(root, "results"), *t, *f;
    const cJSON *ns = get(root, "n-samples");
    cJSON_ArrayForEach(t, res) {
        /* "results" (or a task) that is an array has members without names: not the layout */
        if (!t->string || !cJSON_IsObject(t)) continue;
        long long n = -1;
        const cJSON *nt = ns ? get(ns, t->string) : NULL;
        if (nt) n = to_ll(num(nt, "effective", num(nt, "original", -1)));
        cJSON_ArrayForEach(f, t) {
            if (!cJSON_IsNumber(f) || !f->string || strstr(f->string, "_stderr")) continue;
            char metric[64];
            snprintf(metric, sizeof metric, "%s", f->string);
            char *comma = strchr(metric, ',');
            const char *filter = comma ? comma + 1 : "";
            if (comma) *comma = 0;
            char sek[160];
            snprintf(sek, sizeof sek, "%s_stderr,%s", metric, filter);
            double se = num(t, comma ? sek : "", -1);
            if (add_eval(s, t->string, metric, f->valuedouble, se, n)) return -1;
        }
    }
    return 0;
}

/* "runs/base.ppl.jsonl" -> "base": the file name up to its first dot */
static void label_from_path(char *dst, size_t n, const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(dst, n, "%s", b);
    char *dot = strchr(dst, '.');
    if (dot && dot != dst) *dot = 0;
}

int logs_read(mc_logs *L, const char *arg, lop_err *e) {
    char label[128] = "";
    const char *path = arg, *eq = strchr(arg, '=');
    struct stat st;
    if (eq && eq != arg && stat(arg, &st) != 0 && !memchr(arg, '/', (size_t)(eq - arg))) {
        size_t ln = (size_t)(eq - arg);
        if (ln >= sizeof label) ln = sizeof label - 1;
        memcpy(label, arg, ln);
        label[ln] = 0;
        path = eq + 1;
    }
    if (!*path) return lop_failc(e, LOP_EUSAGE, "--log %s: no file", arg);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return lop_fail(e, "%s: is a folder, not a log", path);
    if (strcmp(path, "-") && stat(path, &st) != 0) return lop_fail(e, "%s: cannot open", path);
    size_t len;
    char *txt;
    if (text_read(path, &txt, &len, e)) return -1;   /* "-", .zst, NUL bytes refused */
    if (!label[0]) label_from_path(label, sizeof label, path);
    /* logs of one stage (same label) are one stage: base.ppl.jsonl + base.eval.jsonl */
    mc_stage *s = NULL;
    for (int i = 0; i < L->nst; i++) if (!strcmp(L->st[i].label, label)) s = &L->st[i];
    if (!s) {
        if (grow((void **)&L->st, L->nst, sizeof *L->st)) { free(txt); return lop_fail(e, "out of memory"); }
        s = &L->st[L->nst++];
        memset(s, 0, sizeof *s);
        s->eval_loss = s->eval_ppl = -1;
        snprintf(s->label, sizeof s->label, "%s", label);
    }
    if (s->nfiles < MC_MAX_FILES) s->file[s->nfiles++] = path;

    /* a whole-file JSON object with "results": lm-eval --output / the harness's results file */
    cJSON *whole = cJSON_ParseWithOpts(txt, NULL, 1);
    if (cJSON_IsObject(whole) && cJSON_IsObject(get(whole, "results"))) {
        int rc = take_harness(s, whole);
        cJSON_Delete(whole);
        free(txt);
        return rc ? lop_fail(e, "out of memory") : 0;
    }
    cJSON_Delete(whole);

    int rc = 0, lineno = 0;
    for (char *p = txt; rc == 0 && p < txt + len;) {
        char *nl = memchr(p, '\n', (size_t)(txt + len - p));
        char *end = nl ? nl : txt + len;
        *end = 0;
        lineno++;
        char *q = p;
        while (*q == ' ' || *q == '\t' || *q == '\r') q++;
        if (*q && *q != '{' && *q != '[') s->human++;   /* "layer-drop: ..." caught in the same file */
        else if (*q) {
            cJSON *o = cJSON_Parse(q);
            if (!cJSON_IsObject(o)) rc = lop_fail(e, "%s:%d: not a JSON object", path, lineno);
            else if (take_line(L, s, o)) rc = lop_fail(e, "out of memory");
            else s->lines++;
            cJSON_Delete(o);
        }
        p = end + 1;
    }
    free(txt);
    return rc;
}

const mc_stage *logs_base(const mc_logs *L) {
    for (int i = 0; i < L->nst; i++)
        if (!strncmp(L->st[i].label, "base", 4)) return &L->st[i];
    for (int i = 0; i < L->nst; i++)
        if (L->st[i].has_ppl || L->st[i].nev) return &L->st[i];
    return NULL;
}
