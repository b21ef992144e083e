/* model-card — turn the JSON lines lop's tools printed into a model card (README.md).
 *
 *   model-card --base BASE [-m MODEL] --log [LABEL=]FILE... [-o README.md]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "folder.h"
#include "fsutil.h"
#include "card.h"
#include "logs.h"
#include "cleanup.h"
#include "outpath.h"
#include "tool.h"
#include "safetensors.h"
#include <cjson/cJSON.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: model-card --base BASE [-m MODEL] --log [LABEL=]FILE... [-o README.md]\n"
        "Write a model card (markdown) from the JSON lines lop's tools printed: architecture before\n"
        "and after, layers removed or merged, sparsity, parameter reduction, the training recipe,\n"
        "perplexity and benchmark tables with retention against the base, and how to load it.\n"
        "\n"
        "  -b, --base BASE     the unpruned model folder (its config.json and safetensors headers)\n"
        "  -m, --model MODEL   the pruned model folder (architecture after; default: derived from logs)\n"
        "  -l, --log [LABEL=]FILE  a log of one stage (JSON lines, or an lm-eval --output file);\n"
        "                      repeatable, in pipeline order; LABEL defaults to the file's name\n"
        "                      without extension. The stage labelled base* (else the first with\n"
        "                      results) is the reference for retention. Extra arguments are logs too.\n"
        "  -o, --output FILE   write the card to FILE atomically and print a JSON line (default: the\n"
        "                      card on stdout)\n"
        "      --name NAME     the pruned model's name in the card (default: MODEL's folder name)\n"
        "      --base-id ID    the base model's hub id for the metadata (default: BASE's folder name)\n"
        TOOL_COMMON_HELP);
}

static const char *dir_name(const char *p) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s", p);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    const char *s = strrchr(buf, '/');
    return s ? s + 1 : buf;
}

/* The base's hub id: from the Hugging Face cache path it lies in, from an adapter's
 * base_model_name_or_path, or from config.json's _name_or_path when that is an "org/name" id. */
static char *base_identity(const char *base) {
    char *id = st_adapter_hub_id(base);
    if (id) return id;
    const char *keys[2] = {"adapter_config.json", "config.json"};
    const char *fields[2] = {"base_model_name_or_path", "_name_or_path"};
    for (int k = 0; k < 2 && !id; k++) {
        char p[4096], *txt = NULL; size_t len; lop_err e;
        snprintf(p, sizeof p, "%s/%s", base, keys[k]);
        if (!fs_is_file(p) || fs_read_all(p, &txt, &len, &e)) continue;
        cJSON *j = cJSON_ParseWithLength(txt, len);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, fields[k]);
        if (cJSON_IsString(v) && v->valuestring[0] != '/' && v->valuestring[0] != '.' &&
            strchr(v->valuestring, '/') && !strchr(strchr(v->valuestring, '/') + 1, '/'))
            id = strdup(v->valuestring);
        cJSON_Delete(j);
        free(txt);
    }
    return id;
}

/* license: from the base folder's README.md front matter (what the hub's model cards carry) */
static char *base_license(const char *base) {
    char p[4096], *txt = NULL, *out = NULL; size_t len; lop_err e;
    snprintf(p, sizeof p, "%s/README.md", base);
    if (!fs_is_file(p) || fs_read_all(p, &txt, &len, &e)) return NULL;
    if (!strncmp(txt, "---", 3)) {
        char *end = strstr(txt + 3, "\n---");
        for (char *l = strchr(txt, '\n'); l && (!end || l < end); l = strchr(l + 1, '\n')) {
            if (strncmp(l + 1, "license:", 8)) continue;
            char *v = l + 9;
            while (*v == ' ') v++;
            size_t n = strcspn(v, "\r\n");
            if (n) out = strndup(v, n);
            break;
        }
    }
    free(txt);
    return out;
}

enum { OPT_NAME = 0x2000, OPT_BASE_ID };

int main(int argc, char **argv) {
    tool_init("model-card", argc, argv);
    static const struct option longopts[] = {
        {"base", required_argument, 0, 'b'},
        {"model", required_argument, 0, 'm'},
        {"log", required_argument, 0, 'l'},
        {"output", required_argument, 0, 'o'},
        {"name", required_argument, 0, OPT_NAME},
        {"base-id", required_argument, 0, OPT_BASE_ID},
        TOOL_COMMON_LONGOPTS,
        {0, 0, 0, 0}};
    const char *base = NULL, *model = NULL, *out = "-", *name = NULL, *base_id = NULL;
    const char **logs = calloc((size_t)argc + 1, sizeof *logs);
    int nlogs = 0, c;
    if (!logs) tool_die(1, "out of memory");
    while ((c = getopt_long(argc, argv, "b:m:l:o:" TOOL_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        if (tool_common_opt(c, optarg, usage)) continue;
        switch (c) {
        case 'b': base = optarg; break;
        case 'm': model = optarg; break;
        case 'l': logs[nlogs++] = optarg; break;
        case 'o': out = optarg; break;
        case OPT_NAME: name = optarg; break;
        case OPT_BASE_ID: base_id = optarg; break;
        default: tool_die_usage("unknown option");
        }
    }
    for (int i = optind; i < argc; i++) logs[nlogs++] = argv[i];
    if (!base) tool_die_usage("--base BASE is required");
    if (!nlogs) tool_die_usage("no --log given");

    out_input("base", base);
    out_input("model", model);
    for (int i = 0; i < nlogs; i++) out_input("log", logs[i]);
    out = out_output("-o", out, OUT_FILE);
    out_check();
    lop_err e;
    mc_arch a_base, a_model;
    if (mc_folder_read(&a_base, base, &e)) tool_die_err(&e);
    if (model && mc_folder_read(&a_model, model, &e)) tool_die_err(&e);
    mc_logs L;
    logs_init(&L);
    for (int i = 0; i < nlogs; i++)
        if (logs_read(&L, logs[i], &e)) tool_die_err(&e);

    char namebuf[512], idbuf[512];
    if (!name) { snprintf(namebuf, sizeof namebuf, "%s", model ? dir_name(model) : "pruned-model"); name = namebuf; }
    char *hub = NULL, *license = NULL;
    if (!base_id) base_id = hub = base_identity(base);
    if (!base_id) { snprintf(idbuf, sizeof idbuf, "%s", dir_name(base)); base_id = idbuf; }
    license = base_license(base);
    mc_card_opts o = {.name = name, .base_id = base_id, .license = license, .base = &a_base,
                      .model = model ? &a_model : NULL};
    sbuf b = {0};
    card_render(&b, &L, &o);
    free(hub); free(license);
    if (b.oom) tool_die(1, "out of memory");

    if (!strcmp(out, "-")) {
        if (fwrite(b.s, 1, b.len, stdout) != b.len || fflush(stdout)) tool_die(1, "writing to stdout failed");
    } else {
        if (fs_write_file_atomic(out, b.s, b.len, &e)) tool_die_err(&e);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "output", out);
        cJSON_AddNumberToObject(j, "bytes", (double)b.len);
        cJSON_AddNumberToObject(j, "stages", L.nst);
        cJSON_AddNumberToObject(j, "dropped", L.ndropped);
        cJSON_AddNumberToObject(j, "merges", L.nmerges);
        tool_emit(j);
        tool_note("wrote %s", out);
    }
    sb_free(&b);
    logs_free(&L);
    free(logs);
    return 0;
}
