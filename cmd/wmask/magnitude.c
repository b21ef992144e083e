/* magnitude.c — score |W|: streams tensor by tensor (memory: the largest tensor, twice, plus its
 * float32 copy). Global scope reads the input three times (two histogram passes, then the
 * write); a stdin stream is first spooled to a temporary file for that. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "calib.h"
#include "model.h"
#include "tool.h"
#include "wmask.h"

/* Copy stdin into a temporary file (for the re-reads of --scope global). */
static int spool_stdin(char *path, size_t len, lop_err *e) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, len, "%s/wmask-XXXXXX.safetensors", dir && *dir ? dir : "/tmp");
    int fd = mkstemps(path, 12);
    if (fd < 0) return lop_fail(e, "%s: cannot create a temporary file", path);
    FILE *f = fdopen(fd, "wb");
    char buf[1 << 16];
    size_t got;
    int bad = !f;
    while (!bad && (got = fread(buf, 1, sizeof buf, stdin)) > 0) bad = fwrite(buf, 1, got, f) != got;
    bad |= ferror(stdin);
    if (f) bad |= fclose(f) != 0; else close(fd);
    if (bad) { unlink(path); return lop_fail(e, "spooling stdin to %s failed", path); }
    return 0;
}

/* grow-only buffers */
typedef struct { void *p; size_t cap; } wm_buf;
static void *buf_get(wm_buf *b, size_t n) {
    if (n > b->cap) {
        void *q = realloc(b->p, n ? n : 1);
        if (!q) return NULL;
        b->p = q;
        b->cap = n;
    }
    return b->p;
}

/* Which tensors are selected; every selected tensor must be a float tensor. */
static int select_tensors(const wm_targets *tg, const st_info *inf, int n, uint8_t *sel,
                          int *count, lop_err *e) {
    *count = 0;
    for (int i = 0; i < n; i++) {
        sel[i] = (uint8_t)wm_targets_match(tg, inf[i].name);
        if (sel[i] && !st_dtype_is_float(inf[i].dtype))
            return lop_fail(e, "%s: dtype %s cannot be pruned (not a float tensor)", inf[i].name,
                            st_dtype_name(inf[i].dtype));
        *count += sel[i];
    }
    if (!*count) return lop_fail(e, "no tensor matches the target set (see --include/--exclude)");
    return 0;
}

/* --scope global: the threshold over every selected tensor, by re-reading the input. */
static int global_threshold(const char *path, const uint8_t *sel, int64_t k, prune_sel *s,
                            wm_buf *fb, lop_err *e) {
    if (prune_sel_init(s, k)) return lop_fail(e, "out of memory");
    while (!prune_sel_done(s)) {
        st_reader *r;
        if (st_reader_open(&r, path, e)) return -1;
        int n, idx, rc;
        const st_info *inf = st_reader_infos(r, &n);
        const void *data;
        while ((rc = st_reader_next(r, &idx, &data, e)) == 1) {
            if (!sel[idx]) continue;
            int64_t rows, cols;
            wm_matrix_shape(&inf[idx], &rows, &cols);
            float *w = buf_get(fb, st_numel(&inf[idx]) * sizeof(float));
            if (!w) { rc = lop_fail(e, "out of memory"); break; }
            st_to_f32(w, data, inf[idx].dtype, st_numel(&inf[idx]));
            prune_sel_add(s, w, rows, cols, NULL);
        }
        st_reader_close(r);
        if (rc < 0) return -1;
        if (prune_sel_next(s)) return lop_fail(e, "%s: the input changed between passes", path);
    }
    return 0;
}

/* --owl: the layer budgets need the dense model's activations (one calibration pass), then the
 * model is closed and streamed as usual. */
static int owl_plan(const wm_job *j, const wm_targets *tg, wm_owl *o, wm_totals *tot, lop_err *e) {
    if (!strcmp(j->model, "-"))
        return lop_failc(e, LOP_EUSAGE, "--owl reads the model twice (calibration, then pruning): "
                         "give a path, not a stream on stdin");
    lop_model *m;
    lop_calib cal = {0};
    uint8_t *target = NULL;
    int rc = -1;
    if (lop_model_open(&m, j->model, e)) return -1;
    target = calloc((size_t)m->cfg.n_layers * PROJ_N, 1);
    if (!target) { lop_fail(e, "out of memory"); goto out; }
    if (wm_find_targets(m, tg, target, e)) goto out;
    if (wm_load_calib(j, m, &cal, e)) goto out;
    tool_note("owl: %d calibration sequences, %lld tokens", cal.n, (long long)cal.tokens);
    if (wm_owl_plan(o, j, m, &cal, j->batch, target, tot, e)) goto out;
    wm_owl_report(j, o);
    rc = 0;
out:
    free(target);
    calib_free(&cal);
    lop_model_free(m);
    return rc;
}

int wm_run_magnitude(const wm_job *j, const wm_targets *tg, wm_totals *tot, lop_err *e) {
    char spool[PATH_MAX] = "";
    const char *path = j->model;
    int global = j->scope == SCOPE_GLOBAL && !j->nm_m, rc = -1, n, count;
    if (global && !strcmp(path, "-")) {
        if (spool_stdin(spool, sizeof spool, e)) return -1;
        path = spool;
    }
    st_reader *r = NULL;
    st_writer *w = NULL;
    uint8_t *sel = NULL;
    wm_buf fb = {0}, ob = {0};
    prune_sel gs = {0};
    int64_t ties = 0;
    wm_owl owl = {0};
    if (j->owl && owl_plan(j, tg, &owl, tot, e)) return -1;
    if (st_reader_open(&r, path, e)) goto out;
    const st_info *inf = st_reader_infos(r, &n);
    sel = malloc(n ? (size_t)n : 1);
    if (!sel) { lop_fail(e, "out of memory"); goto out; }
    if (select_tensors(tg, inf, n, sel, &count, e)) goto out;
    if (global) {
        int64_t total = 0;
        for (int i = 0; i < n; i++) if (sel[i]) total += (int64_t)st_numel(&inf[i]);
        if (global_threshold(path, sel, prune_count(j->sparsity, total), &gs, &fb, e)) goto out;
        ties = gs.rem;
    }
    st_write_opts wo = {.max_shard_size = j->max_shard, .zstd_level = j->zstd_level};
    if (st_writer_open(&w, j->output, inf, n, st_reader_config(r), st_reader_source(r), &wo, e))
        goto out;
    progress pg;
    progress_start(&pg, "pruning", n, "tensors");
    int idx, got;
    const void *data;
    while ((got = st_reader_next(r, &idx, &data, e)) == 1) {
        const st_info *t = &inf[idx];
        uint64_t numel = st_numel(t);
        tot->model_params += (int64_t)numel;
        const void *outp = data;
        if (sel[idx]) {
            int64_t rows, cols;
            wm_matrix_shape(t, &rows, &cols);
            float *wf = buf_get(&fb, numel * sizeof(float));
            void *raw = buf_get(&ob, t->nbytes);
            if (!wf || !raw) { lop_fail(e, "out of memory"); goto out; }
            st_to_f32(wf, data, t->dtype, numel);
            prune_stat st;
            if (global) prune_sel_apply(&gs, &ties, wf, rows, cols, NULL, &st);
            const wm_quota *q = j->owl ? wm_owl_quota(&owl, t->name) : NULL;
            if (j->owl && !q) { lop_fail(e, "%s: not in the OWL plan", t->name); goto out; }
            if (!global && wm_prune_matrix(j, t->name, wf, rows, cols, NULL, q, &st, e)) goto out;
            memcpy(raw, data, t->nbytes);
            wm_raw_apply(raw, wf, t->dtype, numel);
            wm_report_tensor_q(j, t, &st, q, -1, tot);
            outp = raw;
        }
        tot->model_zeros += wm_raw_zeros(outp, t->dtype, numel);
        if (st_writer_put(w, idx, outp, e)) goto out;
        progress_update(&pg, idx + 1);
    }
    progress_end(&pg);
    if (got < 0) goto out;
    rc = st_writer_finish(w, e);
    w = NULL;
out:
    if (w) st_writer_abort(w);
    if (r) st_reader_close(r);
    if (spool[0]) unlink(spool);
    if (gs.hist) prune_sel_free(&gs);
    free(sel);
    wm_owl_free(&owl);
    free(fb.p);
    free(ob.p);
    return rc;
}
