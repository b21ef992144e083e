/* provenance.h — the first JSON line of every tool (CLI.md "Provenance"): what ran, on what.
 *
 *   {"provenance":{"tool","version","argv":[...],"cwd","time","threads","seed",
 *                  "options":{...resolved...},"inputs":[{"role","path","bytes","hash","hashed"}]}}
 *
 * A tool records its resolved options with prov_opt_*() and its inputs with prov_input() (the
 * output guard's out_input() does it too) before its first JSON line; tool_emit() writes the
 * provenance line first, once, to wherever that first line goes. Fingerprints are cheap on
 * multi-GB inputs: a model is hashed over its config.json, index and safetensors headers (not its
 * weights), a file over its bytes when it is at most 64 MiB, else over its first and last 16 MiB
 * ("hashed" says which); bytes is the full size. Hash: FNV-1a 64, hex.
 *
 * LOP_PROVENANCE=0 in the environment leaves the line out (for scripts that read the first line
 * as the result; lop's own readers skip provenance lines). */
#ifndef LOP_PROVENANCE_H
#define LOP_PROVENANCE_H
#include <stdint.h>
#include <stdio.h>
#include <cjson/cJSON.h>

void prov_input(const char *role, const char *path);
void prov_opt_str(const char *key, const char *v);   /* NULL: JSON null */
void prov_opt_num(const char *key, double v);
void prov_opt_bool(const char *key, int v);
void prov_opt_json(const char *key, cJSON *v);       /* takes ownership */
/* What ran: the tool layer (tool.c) fills it from its state; provenance.c knows nothing of tool.c,
 * so the tool layer's call graph has no circle. */
typedef struct prov_run {
    const char *tool;
    int argc;
    char **argv;
    int threads;
    uint64_t seed;
} prov_run;
/* Write the provenance line to f unless written already (or LOP_PROVENANCE=0). Tools call
 * tool_provenance(f) (tool.h), which passes the run. */
void prov_write(FILE *f, const prov_run *run);
/* 1 if a parsed JSON line is a provenance line (readers of lop's JSON lines skip it). */
int prov_is_line(const cJSON *o);
#endif
