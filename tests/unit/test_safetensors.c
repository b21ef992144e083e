/* test_safetensors.c — the library API: write a file and a sharded folder with st_writer, read
 * them back with st_open and st_reader; unpadded (misaligned) files still give aligned tensor
 * pointers with the right bytes; writer misuse fails cleanly and leaves nothing behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fsutil.h"
#include "safetensors.h"
#include "check.h"


static st_info mk(const char *name, st_dtype t, int64_t a, int64_t b) {
    st_info i = {0};
    i.name = (char *)name; i.dtype = t; i.ndim = 2; i.shape[0] = a; i.shape[1] = b;
    i.nbytes = (uint64_t)(a * b) * st_dtype_size(t);
    return i;
}

int main(void) {
    char dir[] = "/tmp/lop-test-st.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char path[512], folder[128];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    snprintf(folder, sizeof folder, "%s/model", dir);
    st_info v[3] = {mk("w.f32", ST_F32, 3, 5), mk("w.bf16", ST_BF16, 7, 3), mk("w.i8", ST_I8, 1, 9)};
    unsigned char *data[3];
    for (int i = 0; i < 3; i++) {
        data[i] = malloc(v[i].nbytes);
        for (uint64_t k = 0; k < v[i].nbytes; k++) data[i][k] = (unsigned char)(k * 7 + i);
    }
    lop_err e;
    st_writer *w;
    const char *cfg = "{\"model_type\": \"llama\"}";
    /* file */
    CHECK(st_writer_open(&w, path, v, 3, cfg, dir, NULL, &e) == 0, "open: %s", e.msg);
    for (int i = 0; i < 3; i++) CHECK(st_writer_put(w, i, data[i], &e) == 0, "put %d", i);
    CHECK(st_writer_finish(w, &e) == 0, "finish: %s", e.msg);
    st_model *m;
    CHECK(st_open(&m, path, &e) == 0, "st_open: %s", e.msg);
    CHECK(m->n == 3 && m->config_json && !strcmp(m->config_json, cfg), "config from metadata");
    char *real = fs_abspath(dir);
    CHECK(m->source_dir && real && !strcmp(m->source_dir, real), "source from metadata");
    free(real);
    for (int i = 0; i < 3; i++) {
        int j = st_find(m, v[i].name);
        CHECK(j >= 0 && !memcmp(m->data[j], data[i], v[i].nbytes), "tensor %s bytes", v[i].name);
        CHECK((uintptr_t)m->data[j] % st_dtype_size(v[i].dtype) == 0, "aligned");
    }
    st_close(m);
    /* folder, one tensor per shard (limit smaller than any tensor) */
    st_write_opts o = {.max_shard_size = 10};
    CHECK(st_writer_open(&w, folder, v, 3, cfg, NULL, &o, &e) == 0, "open folder: %s", e.msg);
    for (int i = 0; i < 3; i++) CHECK(st_writer_put(w, i, data[i], &e) == 0, "put %d", i);
    CHECK(st_writer_finish(w, &e) == 0, "finish folder: %s", e.msg);
    snprintf(path, sizeof path, "%s/model-00003-of-00003.safetensors", folder);
    CHECK(fs_is_file(path), "3 shards");
    st_reader *r;
    CHECK(st_reader_open(&r, folder, &e) == 0, "reader: %s", e.msg);
    int n, idx, k = 0;
    const st_info *ri = st_reader_infos(r, &n);
    const void *d;
    CHECK(n == 3 && st_reader_config(r) && strstr(st_reader_config(r), "llama"), "reader header");
    while (st_reader_next(r, &idx, &d, &e) == 1) {
        CHECK(idx == k && !strcmp(ri[idx].name, v[k].name) && !memcmp(d, data[k], v[k].nbytes), "reader tensor %d", k);
        k++;
    }
    CHECK(k == 3, "reader saw %d tensors", k);
    st_reader_close(r);
    /* an unpadded header leaves the F32 data misaligned in the file: st_open must copy it */
    snprintf(path, sizeof path, "%s/odd.safetensors", dir);
    const char *h = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";   /* 55 bytes */
    FILE *f = fopen(path, "wb");
    uint64_t hl = strlen(h);
    float val[2] = {1.5f, -3.25f};
    fwrite(&hl, 8, 1, f); fwrite(h, 1, hl, f); fwrite(val, 4, 2, f); fclose(f);
    CHECK(st_open(&m, path, &e) == 0, "odd: %s", e.msg);
    CHECK((uintptr_t)m->data[0] % 4 == 0 && !memcmp(m->data[0], val, 8), "misaligned tensor copied aligned");
    st_release(m, 0); /* an owned copy: releasing must not touch (MADV_DONTNEED would zero it) */
    CHECK(!memcmp(m->data[0], val, 8), "st_release left an owned tensor intact");
    st_close(m);
    /* a mapped tensor of several pages: released pages read back the file's bytes */
    {
        snprintf(path, sizeof path, "%s/big.safetensors", dir);
        st_info bv = mk("big", ST_F32, 4096, 5);
        float *big = malloc(bv.nbytes);
        for (int k = 0; k < 4096 * 5; k++) big[k] = (float)k * 0.5f - 7.0f;
        CHECK(st_writer_open(&w, path, &bv, 1, NULL, NULL, NULL, &e) == 0, "open big");
        CHECK(st_writer_put(w, 0, big, &e) == 0 && st_writer_finish(w, &e) == 0, "write big");
        CHECK(st_open(&m, path, &e) == 0, "big: %s", e.msg);
        CHECK(!memcmp(m->data[0], big, bv.nbytes), "big bytes");
        st_release(m, 0);
        st_release(m, -1); st_release(m, 5); st_release(NULL, 0); /* out of range: no-ops */
        CHECK(!memcmp(m->data[0], big, bv.nbytes), "big bytes after st_release");
        st_close(m);
        /* the same bytes misaligned in the file: st_open owns an aligned copy, which st_release
         * must leave alone (MADV_DONTNEED on heap pages would zero them) */
        snprintf(path, sizeof path, "%s/big-odd.safetensors", dir);
        char hb[160];
        int hn = snprintf(hb, sizeof hb, "{\"big\":{\"dtype\":\"F32\",\"shape\":[20480],\"data_offsets\":[0,%llu]}}",
                          (unsigned long long)bv.nbytes);
        if ((8 + hn) % 4 == 0) hb[hn++] = ' ';
        uint64_t hl2 = (uint64_t)hn;
        FILE *bf = fopen(path, "wb");
        fwrite(&hl2, 8, 1, bf); fwrite(hb, 1, (size_t)hn, bf); fwrite(big, 1, bv.nbytes, bf); fclose(bf);
        CHECK(st_open(&m, path, &e) == 0, "big-odd: %s", e.msg);
        st_release(m, 0);
        CHECK(!memcmp(m->data[0], big, bv.nbytes), "owned big tensor intact after st_release");
        st_close(m);
        free(big);
    }
    /* misuse: out of order, unfinished */
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    CHECK(st_writer_open(&w, path, v, 3, NULL, NULL, NULL, &e) == 0, "open");
    CHECK(st_writer_put(w, 1, data[1], &e) == -1 && strstr(e.msg, "order"), "out of order rejected");
    CHECK(st_writer_put(w, 0, data[0], &e) == 0, "put 0");
    CHECK(st_writer_finish(w, &e) == -1 && strstr(e.msg, "1 of 3"), "unfinished rejected: %s", e.msg);
    CHECK(!fs_is_file(path), "no file left behind");
    fs_rm_rf(dir);
    for (int i = 0; i < 3; i++) free(data[i]);
    if (fails) { printf("%d failures\n", fails); return 1; }
    printf("test_safetensors: ok\n");
    return 0;
}
