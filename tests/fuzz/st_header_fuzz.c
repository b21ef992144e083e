/* st_header_fuzz.c — libFuzzer target for the safetensors header parser.
 * Input: a whole safetensors image (length prefix, header, data). Checks beyond "no crash":
 * a header that parses is rebuilt by the writer's header builder and must parse back to the same
 * tensors (names, dtypes, shapes, sizes) — the reader and the writer agree on the format. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "st_internal.h"

static void check_rebuild(const st_info *v, int n) {
    size_t len;
    unsigned char *h = st_build_header(v, n, NULL, 0, &len);
    if (!h) return;
    uint64_t data_len = 0;
    for (int i = 0; i < n; i++) data_len += v[i].nbytes;
    st_info *w; int m; cJSON *meta; lop_err e;
    if (st_parse_header((const char *)h + 8, len - 8, data_len, &w, &m, &meta, &e)) abort();
    if (m != n) abort();
    for (int i = 0; i < n; i++)
        if (strcmp(v[i].name, w[i].name) || v[i].dtype != w[i].dtype || v[i].ndim != w[i].ndim ||
            v[i].nbytes != w[i].nbytes || memcmp(v[i].shape, w[i].shape, sizeof v[i].shape))
            abort();
    st_infos_free(w, m);
    cJSON_Delete(meta);
    free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_info *v; int n; cJSON *meta; uint64_t ds; lop_err e;
    if (st_parse_image(data, size, &v, &n, &meta, &ds, &e) == 0) {
        if (ds > size) abort();
        for (int i = 0; i < n; i++)   /* every tensor lies inside the image */
            if (v[i].offset + v[i].nbytes > size - ds || v[i].nbytes != st_numel(&v[i]) * st_dtype_size(v[i].dtype)) abort();
        check_rebuild(v, n);
        st_infos_free(v, n);
        cJSON_Delete(meta);
    }
    /* the same bytes as a bare header of a stream (end unknown) */
    if (st_parse_header((const char *)data, size, UINT64_MAX, &v, &n, &meta, &e) == 0) {
        st_infos_free(v, n);
        cJSON_Delete(meta);
    }
    return 0;
}
