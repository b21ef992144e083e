/* card.c — markdown sections of the model card, each from one kind of log. */
#include "card.h"
#include "retention.h"
#include "tool.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- small formatters ---------- */

static const char *thou(char *buf, long long v) { return tool_commas(v, buf, 32); }

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* "2, 3, 5-7" from a sorted list */
static void sb_ranges(sbuf *b, const int *v, int n) {
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && v[j + 1] == v[j] + 1) j++;
        sb_printf(b, "%s", i ? ", " : "");
        if (j > i + 1) sb_printf(b, "%d-%d", v[i], v[j]);
        else if (j == i + 1) sb_printf(b, "%d, %d", v[i], v[j]);
        else sb_printf(b, "%d", v[i]);
        i = j + 1;
    }
}

static void sb_json_scalar(sbuf *b, const cJSON *f) {
    if (cJSON_IsString(f)) sb_printf(b, "%s", f->valuestring);
    else if (cJSON_IsBool(f)) sb_puts(b, cJSON_IsTrue(f) ? "true" : "false");
    else if (cJSON_IsNumber(f)) {
        double v = f->valuedouble;
        if (v == floor(v) && fabs(v) < 1e15) sb_printf(b, "%.0f", v);
        else sb_printf(b, "%.6g", v);
    }
}

/* key: value table rows of an object's scalar fields */
static void sb_kv_rows(sbuf *b, const cJSON *o) {
    const cJSON *f;
    cJSON_ArrayForEach(f, o) {
        sb_printf(b, "| %s | ", f->string);
        sb_json_scalar(b, f);
        sb_puts(b, " |\n");
    }
}

static const char *basename_of(const char *p) {
    const char *s = p + strlen(p);
    while (s > p && s[-1] == '/') s--; /* "dir/" -> "dir" */
    const char *e = s;
    while (s > p && s[-1] != '/') s--;
    static char buf[256];
    size_t n = (size_t)(e - s);
    if (n >= sizeof buf) n = sizeof buf - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
    return buf;
}

/* ---------- facts derived from everything ---------- */

typedef struct facts {
    int *dropped, ndropped;    /* sorted */
    int merges_accepted, merges_rejected, layers_merged_away;
    int after_layers;          /* -1 unknown */
    int64_t p_before, p_after; /* -1 unknown */
    int trained;               /* a training stage exists */
    int kd;
    int sparse;
} facts;

static void facts_get(facts *F, const mc_logs *L, const mc_card_opts *o) {
    memset(F, 0, sizeof *F);
    F->ndropped = L->ndropped;
    F->dropped = malloc(sizeof(int) * (L->ndropped ? L->ndropped : 1));
    if (F->dropped && L->ndropped) {
        memcpy(F->dropped, L->dropped, sizeof(int) * L->ndropped);
        qsort(F->dropped, L->ndropped, sizeof(int), cmp_int);
    } else if (!F->dropped) F->ndropped = 0;
    for (int i = 0; i < L->nmerges; i++) {
        if (L->merges[i].accepted) {   /* saturating: the logs are a stranger's numbers */
            F->merges_accepted++;
            if (__builtin_add_overflow(F->layers_merged_away, L->merges[i].gone, &F->layers_merged_away))
                F->layers_merged_away = L->merges[i].gone > 0 ? INT_MAX : INT_MIN;
        }
        else F->merges_rejected++;
    }
    F->p_before = o->base->params >= 0 ? o->base->params : L->params_before;
    F->p_after = o->model && o->model->params >= 0 ? o->model->params : L->params_after;
    if (o->model) F->after_layers = o->model->n_layers;
    else if (F->ndropped || F->layers_merged_away) {
        long long n = (long long)o->base->n_layers - F->ndropped - F->layers_merged_away;
        F->after_layers = n < INT_MIN ? INT_MIN : n > INT_MAX ? INT_MAX : (int)n;
    }
    else F->after_layers = -1;
    for (int i = 0; i < L->nst; i++) if (L->st[i].nsteps) {
        F->trained = 1;
        if (!strcmp(L->st[i].train_tool, "kd-train")) F->kd = 1;
    }
    F->sparse = L->nwt > 0 || L->overall_sparsity >= 0;
}

/* ---------- sections ---------- */

static void front_matter(sbuf *b, const facts *F, const mc_card_opts *o) {
    sb_puts(b, "---\n");
    sb_printf(b, "base_model: %s\n", o->base_id);
    if (o->license) sb_printf(b, "license: %s\n", o->license);
    sb_puts(b, "library_name: transformers\npipeline_tag: text-generation\ntags:\n- lop\n- pruned\n");
    if (F->ndropped) sb_puts(b, "- depth-pruning\n");
    if (F->merges_accepted) sb_puts(b, "- layer-merging\n");
    if (F->sparse) sb_puts(b, "- unstructured-sparsity\n");
    if (F->kd) sb_puts(b, "- knowledge-distillation\n");
    else if (F->trained) sb_puts(b, "- healed\n");
    sb_puts(b, "---\n\n");
}

static void summary(sbuf *b, const facts *F, const mc_logs *L, const mc_card_opts *o) {
    sb_printf(b, "# %s\n\n", o->name);
    sb_printf(b, "`%s` is `%s` (%s) compressed with the lop tools", o->name, o->base_id,
              o->base->architecture[0] ? o->base->architecture : o->base->model_type);
    int first = 1;
    sb_puts(b, ":");
    if (F->ndropped) {
        sb_printf(b, " %d of its %d layers removed (", F->ndropped, o->base->n_layers);
        sb_ranges(b, F->dropped, F->ndropped);
        sb_puts(b, ")");
        first = 0;
    }
    if (F->merges_accepted) {
        sb_printf(b, "%s %d layer merge%s (%d layers folded into their neighbours)", first ? "" : ";",
                  F->merges_accepted, F->merges_accepted > 1 ? "s" : "", F->layers_merged_away);
        first = 0;
    }
    if (F->sparse) {
        double s = L->overall_sparsity;
        if (s < 0 && L->nwt) { s = 0; for (int i = 0; i < L->nwt; i++) s += L->wt[i].sparsity; s /= L->nwt; }
        sb_printf(b, "%s %.1f%% of the selected weights set to zero%s%s%s", first ? "" : ";", 100 * s,
                  L->wmask_method[0] ? " (" : "", L->wmask_method, L->wmask_method[0] ? ")" : "");
        first = 0;
    }
    for (int i = 0; i < L->nst; i++) if (L->st[i].nsteps) {
        sb_printf(b, "%s %s for %d steps (stage `%s`)", first ? "" : ";", L->st[i].train_tool,
                  L->st[i].nsteps, L->st[i].label);
        first = 0;
    }
    if (first) sb_puts(b, " see the logs below");
    sb_puts(b, ".\n\n");
    if (F->p_before > 0 && F->p_after > 0) {
        char x[32], y[32];
        sb_printf(b, "Parameters: %s → %s (%.2f%% fewer).\n\n", thou(x, F->p_before), thou(y, F->p_after),
                  100.0 * (double)(F->p_before - F->p_after) / (double)F->p_before);
    }
}

static void arch_row_int(sbuf *b, const char *what, int a, int c, int known) {
    sb_printf(b, "| %s | %d | ", what, a);
    if (known) sb_printf(b, "%d |\n", c);
    else sb_puts(b, "— |\n");
}

static void architecture(sbuf *b, const facts *F, const mc_card_opts *o) {
    const mc_arch *a = o->base, *m = o->model;
    sb_puts(b, "## Architecture\n\n| | base | pruned |\n|---|---|---|\n");
    sb_printf(b, "| model | %s | %s |\n", a->architecture[0] ? a->architecture : a->model_type,
              m ? (m->architecture[0] ? m->architecture : m->model_type) : (a->architecture[0] ? a->architecture : a->model_type));
    arch_row_int(b, "layers", a->n_layers, F->after_layers, F->after_layers >= 0);
    if (a->n_sliding || a->n_full) {
        sb_printf(b, "| attention (sliding + full) | %d + %d | ", a->n_sliding, a->n_full);
        if (m && (m->n_sliding || m->n_full)) sb_printf(b, "%d + %d |\n", m->n_sliding, m->n_full);
        else sb_puts(b, "— |\n");
    }
    arch_row_int(b, "hidden size", a->hidden, m ? m->hidden : a->hidden, 1);
    arch_row_int(b, "MLP size", a->inter, m ? m->inter : a->inter, 1);
    arch_row_int(b, "attention heads", a->n_heads, m ? m->n_heads : a->n_heads, 1);
    arch_row_int(b, "KV heads", a->n_kv_heads, m ? m->n_kv_heads : a->n_kv_heads, 1);
    arch_row_int(b, "head dim", a->head_dim, m ? m->head_dim : a->head_dim, 1);
    arch_row_int(b, "vocabulary", a->vocab, m ? m->vocab : a->vocab, 1);
    sb_printf(b, "| tied embeddings | %s | %s |\n", a->tied ? "yes" : "no", (m ? m->tied : a->tied) ? "yes" : "no");
    if (a->dtype[0] || (m && m->dtype[0])) sb_printf(b, "| dtype | %s | %s |\n", a->dtype[0] ? a->dtype : "—",
                                                   m && m->dtype[0] ? m->dtype : (a->dtype[0] ? a->dtype : "—"));
    char x[32], y[32];
    sb_printf(b, "| parameters | %s | ", F->p_before >= 0 ? thou(x, F->p_before) : "—");
    if (F->p_after >= 0 && F->p_before > 0)
        sb_printf(b, "%s (−%.2f%%) |\n", thou(y, F->p_after), 100.0 * (double)(F->p_before - F->p_after) / (double)F->p_before);
    else sb_printf(b, "%s |\n", F->p_after >= 0 ? thou(y, F->p_after) : "—");
    sb_puts(b, "\n");
    if (m && m->types_listed && (m->n_sliding || m->n_full))
        sb_puts(b, "The pruned config.json lists `layer_types` explicitly, so every kept layer keeps its own "
                   "attention type (transformers would otherwise re-derive the pattern from the new "
                   "indices).\n\n");
}

static int is_dropped(const facts *F, int layer) {
    for (int i = 0; i < F->ndropped; i++) if (F->dropped[i] == layer) return 1;
    return 0;
}

static void layers(sbuf *b, const facts *F, const mc_logs *L) {
    if (!F->ndropped && !L->nscores) return;
    sb_puts(b, "## Layers removed\n\n");
    if (F->ndropped) {
        sb_printf(b, "Removed (indices in the base model): ");
        sb_ranges(b, F->dropped, F->ndropped);
        sb_puts(b, ". The remaining layers are renumbered in order.\n\n");
    }
    if (L->nscores) {
        sb_printf(b, "Layer importance from `layer-score --metric %s` (higher = more important):\n\n", L->score_metric);
        int blocks = 0;
        for (int i = 0; i < L->nscores; i++) if (L->scores[i].n > 1) blocks = 1;
        sb_printf(b, "| %s | score | rank | %s |\n|---|---|---|---|\n", blocks ? "layers" : "layer", F->ndropped ? "removed" : "");
        for (int i = 0; i < L->nscores; i++) {
            const mc_score *s = &L->scores[i];
            int rank = 1;  /* 1 = most important; ties share the better rank */
            for (int j = 0; j < L->nscores; j++) if (L->scores[j].score > s->score) rank++;
            if (s->n > 1) sb_printf(b, "| %d-%d ", s->layer, s->layer + s->n - 1);
            else sb_printf(b, "| %d ", s->layer);
            sb_printf(b, "| %.6f | %d | %s |\n", s->score, rank, s->n == 1 && is_dropped(F, s->layer) ? "yes" : "");
        }
        sb_puts(b, "\n");
    }
}

static void merges(sbuf *b, const facts *F, const mc_logs *L) {
    if (!L->nmerges && !L->merge_stats) return;
    sb_puts(b, "## Layers merged\n\n");
    if (L->nmerges) {
        sb_printf(b, "%d merge%s accepted, %d rejected (θ = θ_A + Σ (θ_k − θ_A), LaCo's rule, unless the log says otherwise).\n\n",
                  F->merges_accepted, F->merges_accepted == 1 ? "" : "s", F->merges_rejected);
        sb_puts(b, "| layers | similarity | accepted |\n|---|---|---|\n");
        for (int i = 0; i < L->nmerges; i++) {
            const mc_merge *m = &L->merges[i];
            sb_printf(b, "| %d-%d | ", m->a, m->b);
            if (m->has_sim) sb_printf(b, "%.4f", m->sim);
            else sb_puts(b, "—");
            sb_printf(b, " | %s |\n", m->accepted ? "yes" : "no");
        }
        sb_puts(b, "\n");
    }
    if (L->merge_stats) {
        sb_puts(b, "| statistic | value |\n|---|---|\n");
        sb_kv_rows(b, L->merge_stats);
        sb_puts(b, "\n");
    }
}

static void sparsity(sbuf *b, const mc_logs *L) {
    if (!L->nwt && !L->wmask_summary) return;
    sb_puts(b, "## Weight sparsity\n\n");
    if (L->nwt) {
        double lo = 1, hi = 0, sum = 0;
        for (int i = 0; i < L->nwt; i++) {
            double s = L->wt[i].sparsity;
            if (s < lo) lo = s;
            if (s > hi) hi = s;
            sum += s;
        }
        sb_printf(b, "%d tensors pruned%s%s%s; per-tensor sparsity %.2f%% to %.2f%% (mean %.2f%%).\n\n",
                  L->nwt, L->wmask_method[0] ? " by " : "", L->wmask_method, L->wmask_method[0] ? "" : "",
                  100 * lo, 100 * hi, 100 * sum / L->nwt);
    }
    if (L->wmask_summary) {
        sb_puts(b, "| statistic | value |\n|---|---|\n");
        sb_kv_rows(b, L->wmask_summary);
        sb_puts(b, "\n");
    }
    sb_puts(b, "The zeros are stored as dense weights: the model is no smaller or faster on dense kernels; "
               "sparse kernels or compression are needed to gain from them.\n\n");
}

static void training(sbuf *b, const mc_logs *L) {
    int any = 0;
    for (int i = 0; i < L->nst; i++) any |= L->st[i].nsteps > 0;
    if (!any) return;
    sb_puts(b, "## Training\n\n| stage | tool | steps | loss first → last | min loss | peak lr | tokens/s | held-out ppl |\n"
               "|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < L->nst; i++) {
        const mc_stage *s = &L->st[i];
        if (!s->nsteps) continue;
        sb_printf(b, "| %s | %s | %d | %.4f → %.4f | %.4f | %.3g | ", s->label, s->train_tool, s->nsteps,
                  s->first_loss, s->last_loss, s->min_loss, s->peak_lr);
        if (s->n_tok_s) sb_printf(b, "%.0f", s->sum_tok_s / s->n_tok_s);
        else sb_puts(b, "—");
        sb_puts(b, " | ");
        if (s->eval_ppl >= 0) sb_printf(b, "%.4f", s->eval_ppl);
        else sb_puts(b, "—");
        sb_puts(b, " |\n");
    }
    sb_puts(b, "\n");
    for (int i = 0; i < L->nst; i++) {
        const mc_stage *s = &L->st[i];
        if (!s->nsteps) continue;
        if (s->train_info && cJSON_GetArraySize(s->train_info)) {
            sb_printf(b, "Recipe of `%s`:\n\n| setting | value |\n|---|---|\n", s->label);
            sb_kv_rows(b, s->train_info);
            sb_puts(b, "\n");
        }
        if (s->train_terms && cJSON_GetArraySize(s->train_terms)) {
            sb_printf(b, "Last step of `%s`:", s->label);
            const cJSON *f;
            cJSON_ArrayForEach(f, s->train_terms) {
                sb_printf(b, " %s = ", f->string);
                sb_json_scalar(b, f);
                sb_puts(b, ";");
            }
            b->len--; /* the last ';' */
            b->s[b->len] = 0;
            sb_puts(b, ".\n\n");
        }
    }
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s && s[1] ? s + 1 : p;
}

/* the text a ppl stage was measured on: its provenance line's "text" option */
static const char *prov_text(const mc_stage *s) {
    for (int k = 0; k < s->nprov; k++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(s->prov[k], "tool");
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(s->prov[k], "options");
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "text");
        if (cJSON_IsString(t) && !strcmp(t->valuestring, "ppl") && cJSON_IsString(x)) return x->valuestring;
    }
    return NULL;
}

/* "Provenance": every stage's command lines, resolved options and input fingerprints, as the
 * tools recorded them in their first JSON line */
static void provenance_section(sbuf *b, const mc_logs *L) {
    int any = 0;
    for (int i = 0; i < L->nst; i++) any |= L->st[i].nprov > 0;
    if (!any) return;
    sb_puts(b, "## Provenance\n\nEach stage as run (from the first JSON line of each tool's log).\n\n");
    for (int i = 0; i < L->nst; i++) for (int k = 0; k < L->st[i].nprov; k++) {
        const cJSON *p = L->st[i].prov[k];
        const cJSON *tool = cJSON_GetObjectItemCaseSensitive(p, "tool"), *ver = cJSON_GetObjectItemCaseSensitive(p, "version");
        const cJSON *tm = cJSON_GetObjectItemCaseSensitive(p, "time"), *av = cJSON_GetObjectItemCaseSensitive(p, "argv");
        sb_printf(b, "### `%s`: %s %s%s%s\n\n```sh\n", L->st[i].label, cJSON_IsString(tool) ? tool->valuestring : "?",
                  cJSON_IsString(ver) ? ver->valuestring : "", cJSON_IsString(tm) ? ", " : "", cJSON_IsString(tm) ? tm->valuestring : "");
        const cJSON *a;
        int first = 1;
        cJSON_ArrayForEach(a, av) {
            if (!cJSON_IsString(a)) continue;
            int plain = a->valuestring[0] != 0;
            for (const char *c = a->valuestring; *c && plain; c++) plain = !strchr(" \t\"'$`\\|&;<>()*?[]{}!", *c);
            sb_printf(b, plain ? "%s%s" : "%s'%s'", first ? "" : " ", a->valuestring);
            first = 0;
        }
        sb_puts(b, "\n```\n\n");
        const cJSON *opts = cJSON_GetObjectItemCaseSensitive(p, "options");
        const cJSON *seed = cJSON_GetObjectItemCaseSensitive(p, "seed"), *thr = cJSON_GetObjectItemCaseSensitive(p, "threads");
        sb_puts(b, "| setting | value |\n|---|---|\n");
        if (cJSON_IsNumber(seed)) sb_printf(b, "| seed | %.0f |\n", seed->valuedouble);
        if (cJSON_IsNumber(thr)) sb_printf(b, "| threads | %.0f |\n", thr->valuedouble);
        if (cJSON_IsObject(opts)) sb_kv_rows(b, opts);
        sb_puts(b, "\n");
        const cJSON *ins = cJSON_GetObjectItemCaseSensitive(p, "inputs");
        if (cJSON_GetArraySize(ins)) {
            sb_puts(b, "| input | file | bytes | fingerprint |\n|---|---|---|---|\n");
            const cJSON *in;
            cJSON_ArrayForEach(in, ins) {
                const cJSON *r = cJSON_GetObjectItemCaseSensitive(in, "role"), *pa = cJSON_GetObjectItemCaseSensitive(in, "path");
                const cJSON *by = cJSON_GetObjectItemCaseSensitive(in, "bytes"), *h = cJSON_GetObjectItemCaseSensitive(in, "hash");
                const cJSON *hw = cJSON_GetObjectItemCaseSensitive(in, "hashed");
                char x[32];
                sb_printf(b, "| %s | `%s` | %s | %s%s%s%s |\n", cJSON_IsString(r) ? r->valuestring : "?",
                          cJSON_IsString(pa) ? base_name(pa->valuestring) : "?",
                          cJSON_IsNumber(by) ? thou(x, (long long)by->valuedouble) : "—",
                          cJSON_IsString(h) ? "fnv1a64 " : "", cJSON_IsString(h) ? h->valuestring : "—",
                          cJSON_IsString(hw) ? " of " : "", cJSON_IsString(hw) ? hw->valuestring : "");
            }
            sb_puts(b, "\n");
        }
    }
}

static void perplexity(sbuf *b, const mc_logs *L, const mc_stage *base) {
    int any = 0;
    for (int i = 0; i < L->nst; i++) any |= L->st[i].has_ppl;
    if (!any) return;
    sb_puts(b, "## Perplexity\n\n| stage | ppl | ± stderr | tokens | text | retention |\n|---|---|---|---|---|---|\n");
    for (int k = -1; k < L->nst; k++) { /* the reference first, then the others in order */
        const mc_stage *s = k < 0 ? base : &L->st[k];
        if (!s || (k >= 0 && s == base)) continue;
        if (!s->has_ppl) continue;
        sb_printf(b, "| %s | %.4f | ", s->label, s->ppl);
        if (s->ppl_stderr >= 0) sb_printf(b, "%.4f", s->ppl_stderr);
        else sb_puts(b, "—");
        sb_puts(b, " | ");
        if (s->ppl_tokens >= 0) { char x[32]; sb_puts(b, thou(x, s->ppl_tokens)); }
        else sb_puts(b, "—");
        sb_puts(b, " | ");
        const char *txt = prov_text(s);
        if (txt) sb_printf(b, "`%s`", base_name(txt));
        else sb_puts(b, "—");
        sb_puts(b, " | ");
        if (base && base->has_ppl && s->ppl > 0) sb_printf(b, "%.1f%%", 100.0 * base->ppl / s->ppl);
        else sb_puts(b, "—");
        sb_puts(b, " |\n");
    }
    sb_puts(b, "\nRetention = base ppl / ppl × 100 (100% = no loss).\n\n");
}

static const mc_eval *find_eval(const mc_stage *s, const char *task, const char *metric) {
    for (int i = 0; i < s->nev; i++)
        if (!strcmp(s->ev[i].task, task) && !strcmp(s->ev[i].metric, metric)) return &s->ev[i];
    return NULL;
}

/* perplexity-like metrics: lower is better, retention inverts */
static int lower_better(const char *metric) { return strstr(metric, "perplexity") || !strcmp(metric, "ppl"); }

static void benchmarks(sbuf *b, const mc_logs *L, const mc_stage *base) {
    /* columns: the reference first, then the other stages with results, in order */
    const mc_stage **col = malloc(sizeof *col * (size_t)(L->nst + 1));
    if (!col) return;
    int ncol = 0;
    if (base && base->nev) col[ncol++] = base;
    for (int i = 0; i < L->nst; i++) if (L->st[i].nev && &L->st[i] != base) col[ncol++] = &L->st[i];
    if (!ncol) { free(col); return; }
    const mc_stage *last = col[ncol - 1];
    int cmp = base && base->nev && last != base;
    /* retention by the one rule (libcommon/retention.h), as lm-eval --compare computes it */
    ret_row *rr = NULL;
    ret_summary S = {0};
    if (cmp) {
        rr = calloc((size_t)last->nev + 1, sizeof *rr);
        if (!rr) { free(col); return; }
        for (int k = 0; k < last->nev; k++) {
            const mc_eval *lv = &last->ev[k], *bv = find_eval(base, lv->task, lv->metric);
            rr[k] = (ret_row){.task = lv->task, .metric = lv->metric, .value = lv->value, .se = lv->stderr_,
                              .n = lv->n, .base = bv ? bv->value : NAN, .base_se = bv ? bv->stderr_ : -1,
                              .higher_better = !lower_better(lv->metric)};
        }
        ret_compute(rr, last->nev, &S);
    }
    sb_puts(b, "## Benchmarks\n\n| task | metric | n | chance |");
    for (int j = 0; j < ncol; j++) sb_printf(b, " %s |", col[j]->label);
    if (cmp) sb_printf(b, " retention (%s) |", last->label);
    sb_puts(b, "\n|---|---|---|---|");
    for (int j = 0; j < ncol + cmp; j++) sb_puts(b, "---|");
    sb_puts(b, "\n");
    /* rows: every (task, metric) in order of first appearance over the columns */
    for (int i = 0; i < ncol; i++) for (int k = 0; k < col[i]->nev; k++) {
        const mc_eval *row = &col[i]->ev[k];
        int seen = 0;
        for (int i2 = 0; i2 < i && !seen; i2++) seen = find_eval(col[i2], row->task, row->metric) != NULL;
        for (int k2 = 0; k2 < k && !seen; k2++)
            seen = !strcmp(col[i]->ev[k2].task, row->task) && !strcmp(col[i]->ev[k2].metric, row->metric);
        if (seen) continue;
        double ch = ret_chance(row->task);
        sb_printf(b, "| %s | %s | ", row->task, row->metric);
        if (row->n >= 0) sb_printf(b, "%lld", row->n);
        else sb_puts(b, "—");
        if (ch >= 0 && !lower_better(row->metric)) sb_printf(b, " | %.2f |", ch);
        else sb_puts(b, " | — |");
        for (int j = 0; j < ncol; j++) {
            const mc_eval *v = find_eval(col[j], row->task, row->metric);
            if (!v) { sb_puts(b, " — |"); continue; }
            sb_printf(b, " %.4f", v->value);
            if (v->stderr_ >= 0) sb_printf(b, " ± %.4f", v->stderr_);
            sb_puts(b, " |");
        }
        if (cmp) {
            const ret_row *x = NULL;
            for (int q = 0; q < last->nev; q++)
                if (!strcmp(rr[q].task, row->task) && !strcmp(rr[q].metric, row->metric)) x = &rr[q];
            if (x && isfinite(x->retention)) sb_printf(b, " %.1f%%%s |", x->retention, x->noise ? " ~" : "");
            else sb_puts(b, " — |");
        }
        sb_puts(b, "\n");
    }
    sb_puts(b, "\n");
    if (cmp && S.n_cap) {
        sb_printf(b, "Capability retention of `%s`: %.1f%% (mean of value / base × 100 over %d top-level "
                     "task%s, acc_norm where a task has it, else acc; the rule lm-eval --compare uses).\n",
                  last->label, S.capability, S.n_cap, S.n_cap > 1 ? "s" : "");
        if (S.n_noise)
            sb_printf(b, "~ marks a difference smaller than two standard errors: at this n, %d of the %d tasks "
                         "do not tell the two models apart.\n", S.n_noise, S.n_cap);
        sb_puts(b, "\n");
    }
    /* eval settings as run */
    for (int j = 0; j < ncol; j++) for (int k = 0; k < col[j]->nprov; k++) {
        const cJSON *p = col[j]->prov[k], *t = cJSON_GetObjectItemCaseSensitive(p, "tool");
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(p, "options");
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "lm-eval") || !cJSON_IsObject(o)) continue;
        const cJSON *lim = cJSON_GetObjectItemCaseSensitive(o, "limit"), *fs = cJSON_GetObjectItemCaseSensitive(o, "num_fewshot");
        sb_printf(b, "`%s` evaluated with %s%.0f-shot prompts", col[j]->label, "", cJSON_IsNumber(fs) ? fs->valuedouble : 0);
        if (cJSON_IsNumber(lim) && lim->valuedouble > 0)
            sb_printf(b, lim->valuedouble < 1 ? ", --limit %.3g of each task" : ", --limit %.0f documents per task", lim->valuedouble);
        sb_puts(b, ".\n");
    }
    free(rr);
    free(col);
}

static void loading(sbuf *b, const mc_card_opts *o) {
    sb_puts(b, "## How to load\n\nWith transformers:\n\n```python\n"
               "from transformers import AutoModelForCausalLM, AutoTokenizer\n");
    sb_printf(b, "tok = AutoTokenizer.from_pretrained(\"%s\")\n", o->name);
    sb_printf(b, "model = AutoModelForCausalLM.from_pretrained(\"%s\", torch_dtype=\"auto\")\n", o->name);
    sb_puts(b, "ids = tok(\"Once upon a time\", return_tensors=\"pt\")\n"
               "print(tok.decode(model.generate(**ids, max_new_tokens=40)[0]))\n```\n\nWith lop:\n\n```sh\n");
    sb_printf(b, "lm-gen -m %s --prompt \"Once upon a time\" --max-tokens 40\n", o->name);
    sb_printf(b, "ppl -m %s your-text.txt\n```\n\n", o->name);
}

static void provenance(sbuf *b, const mc_logs *L) {
    sb_puts(b, "## Logs\n\nThis card was generated by `model-card` (lop " LOP_VERSION ") from these logs, "
               "in this order:\n\n");
    for (int i = 0; i < L->nst; i++) {
        const mc_stage *s = &L->st[i];
        sb_printf(b, "- `%s`:", s->label);
        for (int k = 0; k < s->nfiles; k++) sb_printf(b, "%s %s", k ? "," : "", basename_of(s->file[k]));
        sb_printf(b, " (%d line%s", s->lines, s->lines == 1 ? "" : "s");
        if (s->unknown && !s->nsteps) sb_printf(b, ", %d not summarized", s->unknown);
        sb_puts(b, ")\n");
    }
    sb_puts(b, "\n");
}

void card_render(sbuf *b, const mc_logs *L, const mc_card_opts *o) {
    facts F;
    facts_get(&F, L, o);
    const mc_stage *base = logs_base(L);
    front_matter(b, &F, o);
    summary(b, &F, L, o);
    architecture(b, &F, o);
    layers(b, &F, L);
    merges(b, &F, L);
    sparsity(b, L);
    training(b, L);
    perplexity(b, L, base);
    benchmarks(b, L, base);
    provenance_section(b, L);
    loading(b, o);
    provenance(b, L);
    free(F.dropped);
}
