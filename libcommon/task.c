/* task.c — the registry of built-in tasks and the documents' lifetime (select, free). The
 * readers that build each task's prompts are in task_load.c. */
#include "task.h"
#include "task_text.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The 57 MMLU subjects in the harness's order, with the category of its _generate_configs.py. */
static const struct { const char *subject, *category; } MMLU[] = {
    {"abstract_algebra", "stem"}, {"anatomy", "stem"}, {"astronomy", "stem"},
    {"business_ethics", "other"}, {"clinical_knowledge", "other"}, {"college_biology", "stem"},
    {"college_chemistry", "stem"}, {"college_computer_science", "stem"},
    {"college_mathematics", "stem"}, {"college_medicine", "other"}, {"college_physics", "stem"},
    {"computer_security", "stem"}, {"conceptual_physics", "stem"},
    {"econometrics", "social_sciences"}, {"electrical_engineering", "stem"},
    {"elementary_mathematics", "stem"}, {"formal_logic", "humanities"}, {"global_facts", "other"},
    {"high_school_biology", "stem"}, {"high_school_chemistry", "stem"},
    {"high_school_computer_science", "stem"}, {"high_school_european_history", "humanities"},
    {"high_school_geography", "social_sciences"},
    {"high_school_government_and_politics", "social_sciences"},
    {"high_school_macroeconomics", "social_sciences"}, {"high_school_mathematics", "stem"},
    {"high_school_microeconomics", "social_sciences"}, {"high_school_physics", "stem"},
    {"high_school_psychology", "social_sciences"}, {"high_school_statistics", "stem"},
    {"high_school_us_history", "humanities"}, {"high_school_world_history", "humanities"},
    {"human_aging", "other"}, {"human_sexuality", "social_sciences"},
    {"international_law", "humanities"}, {"jurisprudence", "humanities"},
    {"logical_fallacies", "humanities"}, {"machine_learning", "stem"}, {"management", "other"},
    {"marketing", "other"}, {"medical_genetics", "other"}, {"miscellaneous", "other"},
    {"moral_disputes", "humanities"}, {"moral_scenarios", "humanities"}, {"nutrition", "other"},
    {"philosophy", "humanities"}, {"prehistory", "humanities"},
    {"professional_accounting", "other"}, {"professional_law", "humanities"},
    {"professional_medicine", "other"}, {"professional_psychology", "social_sciences"},
    {"public_relations", "social_sciences"}, {"security_studies", "social_sciences"},
    {"sociology", "social_sciences"}, {"us_foreign_policy", "social_sciences"},
    {"virology", "other"}, {"world_religions", "humanities"},
};
#define N_MMLU ((int)(sizeof MMLU / sizeof MMLU[0]))

int mmlu_n_subjects(void) { return N_MMLU; }
const char *mmlu_subject(int i) { return i >= 0 && i < N_MMLU ? MMLU[i].subject : NULL; }
const char *mmlu_category(const char *subject) {
    for (int i = 0; i < N_MMLU; i++)
        if (!strcmp(MMLU[i].subject, subject)) return MMLU[i].category;
    return NULL;
}

static const char *const SIMPLE[] = {"hellaswag", "piqa", "arc_easy", "arc_challenge",
                                     "openbookqa", "copa", "boolq", "winogrande",
                                     "lambada_openai", NULL};
/* The task groups, the one table of them: listing order (--list-tasks); a category's members
 * are the MMLU subjects of that category (MMLU[] above). */
static const struct { const char *name, *parent; } GROUP_TABLE[] = {
    {"mmlu", NULL}, {"mmlu_stem", "mmlu"}, {"mmlu_humanities", "mmlu"},
    {"mmlu_social_sciences", "mmlu"}, {"mmlu_other", "mmlu"},
};
#define N_GROUPS ((int)(sizeof GROUP_TABLE / sizeof *GROUP_TABLE))

int task_n_groups(void) { return N_GROUPS; }
const char *task_group_name(int i) { return i >= 0 && i < N_GROUPS ? GROUP_TABLE[i].name : NULL; }
const char *task_group_parent(const char *group) {
    for (int i = 0; i < N_GROUPS; i++)
        if (!strcmp(GROUP_TABLE[i].name, group)) return GROUP_TABLE[i].parent;
    return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

int task_subgroups(const char *group, const char *const **out) {
    static const char *sub[N_GROUPS][N_GROUPS];
    static int nsub[N_GROUPS], ready;
    if (!ready) {   /* the harness reports a group's subgroups in alphabetical order */
        for (int g = 0; g < N_GROUPS; g++) {
            for (int i = 0; i < N_GROUPS; i++)
                if (GROUP_TABLE[i].parent && !strcmp(GROUP_TABLE[i].parent, GROUP_TABLE[g].name))
                    sub[g][nsub[g]++] = GROUP_TABLE[i].name;
            qsort(sub[g], (size_t)nsub[g], sizeof *sub[g], cmp_str);
        }
        ready = 1;
    }
    for (int g = 0; g < N_GROUPS; g++)
        if (!strcmp(GROUP_TABLE[g].name, group)) { *out = sub[g]; return nsub[g]; }
    *out = NULL;
    return 0;
}

int task_is_builtin(const char *name) {
    for (int i = 0; SIMPLE[i]; i++)
        if (!strcmp(name, SIMPLE[i])) return 1;
    if (!strncmp(name, "mmlu_", 5) && mmlu_category(name + 5)) return 1;
    return 0;
}

const char *const *task_builtin_names(void) {
    static const char *all[sizeof SIMPLE / sizeof *SIMPLE + N_GROUPS + N_MMLU];
    static char names[N_MMLU][64];
    if (!all[0]) {
        int k = 0;
        for (int i = 0; SIMPLE[i]; i++) all[k++] = SIMPLE[i];
        for (int i = 0; i < N_GROUPS; i++) all[k++] = GROUP_TABLE[i].name;
        for (int i = 0; i < N_MMLU; i++) {
            snprintf(names[i], sizeof names[i], "mmlu_%s", MMLU[i].subject);
            all[k++] = names[i];
        }
        all[k] = NULL;
    }
    return all;
}

static void add_name(char ***names, int *n, const char *s) {
    for (int i = 0; i < *n; i++)
        if (!strcmp((*names)[i], s)) return;
    char **nn = realloc(*names, sizeof(char *) * (size_t)(*n + 1));
    if (!nn) abort();
    *names = nn;
    nn[(*n)++] = task_strdup(s);
}

int task_expand(const char *list, char ***names, int *n, lop_err *e) {
    *names = NULL;
    *n = 0;
    char *copy = task_strdup(list), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        size_t l = strlen(tok);
        while (l && tok[l - 1] == ' ') tok[--l] = 0;
        if (!*tok) continue;
        const char *cat = NULL;
        int group = 0;
        for (int i = 0; i < N_GROUPS; i++)   /* a category "mmlu_stem" holds the subjects of "stem" */
            if (!strcmp(tok, GROUP_TABLE[i].name)) { group = 1; cat = GROUP_TABLE[i].parent ? tok + 5 : NULL; }
        if (group) {
            char buf[96];
            for (int i = 0; i < N_MMLU; i++)
                if (!cat || !strcmp(cat, MMLU[i].category)) {
                    snprintf(buf, sizeof buf, "mmlu_%s", MMLU[i].subject);
                    add_name(names, n, buf);
                }
        } else if (task_is_builtin(tok)) add_name(names, n, tok);
        else {
            lop_failc(e, LOP_EUSAGE, "unknown task '%s' (see lm-eval --list-tasks)", tok);
            free(copy);
            task_names_free(*names, *n);
            *names = NULL;
            *n = 0;
            return -1;
        }
    }
    free(copy);
    if (*n == 0) return lop_failc(e, LOP_EUSAGE, "no task named in '%s'", list);
    return 0;
}

void task_names_free(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static void doc_free(task_doc *d) {
    for (int i = 0; i < d->n_ctx; i++) free(d->ctx[i]);
    for (int i = 0; i < d->n_cont; i++) free(d->cont[i]);
    free(d->ctx);
    free(d->cont);
    free(d->chars);
}

void task_free(lop_task *t) {
    for (int i = 0; i < t->n_docs; i++) doc_free(&t->docs[i]);
    free(t->docs);
    t->docs = NULL;
    t->n_docs = 0;
}

void task_select(lop_task *t, double limit, int shard_i, int shard_n) {
    int keep = t->n_docs;
    if (limit > 0) {
        /* the harness: int(ceil(n * limit)) if limit < 1 else int(limit) */
        int l = limit < 1.0 ? (int)ceil(t->n_docs * limit) : (int)limit;
        if (l < keep) keep = l;
    }
    int w = 0;
    for (int i = 0; i < t->n_docs; i++) {
        int take = i < keep && (shard_n <= 1 || i % shard_n == shard_i);
        if (take) t->docs[w++] = t->docs[i];
        else doc_free(&t->docs[i]);
    }
    t->n_docs = w;
}
