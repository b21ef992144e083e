/* test_fsutil.c — the pieces of issue 14 that live in libcommon: temporaries announced through
 * the hook (created, renamed, removed), fs_dir_replace (new, replace, swap section announced),
 * config_check_layer_count, parse_ranges_dup. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config.h"
#include "fsutil.h"
#include "parse.h"
#include "check.h"


static int live, enters, leaves;   /* temporaries announced and not withdrawn; swap sections */
static void hook(const char *path, int created) {
    if (created == FS_TEMP_ENTER) { enters++; return; }
    if (created == FS_TEMP_LEAVE) { leaves++; return; }
    live += created ? 1 : -1;
    (void)path;
}

static int exists(const char *p) { struct stat st; return stat(p, &st) == 0; }

int main(void) {
    char root[] = "/tmp/lop-test-fsutil.XXXXXX";
    if (!mkdtemp(root)) { printf("mkdtemp failed\n"); return 1; }
    fs_set_temp_hook(hook);
    lop_err e;
    char p[4096], q[4096];

    /* an atomic file write announces its temporary, then withdraws it */
    snprintf(p, sizeof p, "%s/a.txt", root);
    CHECK(fs_write_file_atomic(p, "hi", 2, &e) == 0, "%s", e.msg);
    CHECK(live == 0, "temporaries left announced: %d", live);
    CHECK(exists(p), "a.txt not written");

    /* a folder: built in a temporary, put in place; then replaced (the old one goes) */
    snprintf(q, sizeof q, "%s/.out.tmp.XXXXXX", root);
    CHECK(fs_temp_dir(q) != NULL, "fs_temp_dir");
    CHECK(live == 1, "temp dir not announced");
    char f[4200];
    snprintf(f, sizeof f, "%s/one", q);
    CHECK(fs_write_file_atomic(f, "1", 1, &e) == 0, "%s", e.msg);
    snprintf(p, sizeof p, "%s/out", root);
    CHECK(fs_dir_replace(q, p, &e) == 0, "%s", e.msg);
    CHECK(live == 0 && enters == 0, "new folder: live %d enters %d", live, enters);
    snprintf(q, sizeof q, "%s/.out.tmp.XXXXXX", root);
    CHECK(fs_temp_dir(q) != NULL, "fs_temp_dir");
    snprintf(f, sizeof f, "%s/two", q);
    CHECK(fs_write_file_atomic(f, "2", 1, &e) == 0, "%s", e.msg);
    CHECK(fs_dir_replace(q, p, &e) == 0, "%s", e.msg);
    CHECK(live == 0, "replace: temporaries left announced: %d", live);
    CHECK(enters == 1 && leaves == 1, "the swap is one section (enters %d leaves %d)", enters, leaves);
    snprintf(f, sizeof f, "%s/out/two", root);
    CHECK(exists(f), "new content not in place");
    snprintf(f, sizeof f, "%s/out/one", root);
    CHECK(!exists(f), "old content still there");
    /* nothing but out and a.txt is left in root (no .old, no .tmp) */
    int n = 0;
    FILE *ls;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "ls -A '%s'", root);
    if ((ls = popen(cmd, "r"))) { char line[512]; while (fgets(line, sizeof line, ls)) n++; pclose(ls); }
    CHECK(n == 2, "root holds %d entries, want 2", n);
    /* a file where the folder goes is not replaced */
    snprintf(q, sizeof q, "%s/.x.tmp.XXXXXX", root);
    CHECK(fs_temp_dir(q) != NULL, "fs_temp_dir");
    snprintf(p, sizeof p, "%s/a.txt", root);
    CHECK(fs_dir_replace(q, p, &e) == -1 && strstr(e.msg, "not a folder"), "file replaced by a folder");
    fs_rm_rf(q);

    /* config: more layers in the tensors than the config says */
    lop_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.prefix, sizeof c.prefix, "model.");
    c.n_layers = 2;
    const char *ok[] = {"model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight",
                        "vision_tower.encoder.layers.7.w", "model.embed_tokens.weight"};
    CHECK(config_check_layer_count(&c, ok, 4, &e) == 0, "%s", e.msg);
    const char *bad[] = {"model.layers.0.mlp.up_proj.weight", "model.layers.4.mlp.up_proj.weight"};
    CHECK(config_check_layer_count(&c, bad, 2, &e) == -1 && strstr(e.msg, "hold 5 layers"), "%s", e.msg);

    /* ranges: a duplicate is found (and the list deduplicated) */
    int *v, nv, dup;
    CHECK(parse_ranges_dup("0-2,1-3", 8, &v, &nv, &dup, &e) == 0 && nv == 4 && dup == 1, "dup %d nv %d", dup, nv);
    free(v);
    CHECK(parse_ranges_dup("5,1,3", 8, &v, &nv, &dup, &e) == 0 && nv == 3 && dup == -1, "dup %d", dup);
    free(v);

    fs_rm_rf(root);
    if (fails) { printf("%d failures\n", fails); return 1; }
    printf("test_fsutil: ok\n");
    return 0;
}
