/* st_read.c — safetensors mapped for reading: one file (mmap, zero copy), an HF folder (a single
 * model.safetensors or an index with shards), "-" (stdin) and .zst input (read into memory).
 * st_open, which also opens adapter folders, is st_adapter.c's; the streaming reader st_stream.c. */
#include "fsutil.h"
#include "st_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct region { void *addr; size_t len; int mapped; } region;

typedef struct model_priv {
    region *reg; int nreg;        /* mappings / buffers backing the tensors */
    void **owned; int nowned;     /* aligned copies of tensors whose bytes were misaligned */
    int *reg_of;                  /* [n] region of tensor i (-1: an owned copy) */
    st_model *base;               /* an adapter's base: tensors not replaced are its bytes */
    int *base_of;                 /* [n] with base: tensor i is base's tensor base_of[i] (-1: owned) */
} model_priv;

static int add_region(model_priv *p, void *addr, size_t len, int mapped) {
    region *r = realloc(p->reg, (size_t)(p->nreg + 1) * sizeof *r);
    if (!r) return -1;
    p->reg = r;
    r[p->nreg++] = (region){addr, len, mapped};
    return 0;
}

/* Read fd to its end (decompressing zstd) into memory. */
static int slurp(int fd, int own, const char *what, unsigned char **buf, size_t *len, lop_err *e) {
    st_src s;
    int rc = src_open_fd(&s, fd, own, what, e);
    if (!rc) rc = src_read_rest(&s, buf, len, e);
    src_close(&s);
    return rc;
}

/* The bytes of one safetensors file: mmap'd, or read into memory for zstd and pipes. */
static int load_image(const char *path, unsigned char **base, size_t *size, int *mapped, lop_err *e) {
    if (!strcmp(path, "-")) { *mapped = 0; return slurp(0, 0, "stdin", base, size, e); }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lop_fail(e, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) { close(fd); return lop_fail(e, "%s: %s", path, strerror(errno)); }
    unsigned char magic[4];
    ssize_t r = S_ISREG(st.st_mode) ? pread(fd, magic, 4, 0) : -1;
    if (!S_ISREG(st.st_mode) || (r == 4 && (magic[0] | magic[1] << 8 | magic[2] << 16 | (uint32_t)magic[3] << 24) == ST_ZSTD_MAGIC)) {
        *mapped = 0;
        return slurp(fd, 1, path, base, size, e);  /* a FIFO or a .zst: sequential read */
    }
    if (st.st_size == 0) { close(fd); return lop_fail(e, "%s: empty file (no safetensors header)", path); }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return lop_fail(e, "%s: mmap: %s", path, strerror(errno));
    *base = m; *size = (size_t)st.st_size; *mapped = 1;
    return 0;
}

static void free_image(unsigned char *base, size_t size, int mapped) {
    if (mapped) munmap(base, size); else free(base);
}

/* Append the tensors of one file to m; tensors whose bytes are misaligned for their dtype are
 * copied so that every data[i] is aligned to its element size. */
static int add_file(st_model *m, const char *path, cJSON **meta, lop_err *e) {
    model_priv *p = m->priv;
    unsigned char *base; size_t size; int mapped;
    if (load_image(path, &base, &size, &mapped, e)) return -1;
    st_info *v; int n; uint64_t ds;
    if (st_parse_image(base, size, &v, &n, meta, &ds, e)) {
        free_image(base, size, mapped);
        return lop_wrap(e, "%s", strcmp(path, "-") ? path : "stdin");
    }
    if (add_region(p, base, size, mapped)) { free_image(base, size, mapped); st_infos_free(v, n); return lop_fail(e, "out of memory"); }
    st_info *ni = realloc(m->info, (size_t)(m->n + n + 1) * sizeof *ni);
    const void **nd = realloc(m->data, (size_t)(m->n + n + 1) * sizeof *nd);
    int *nr = realloc(p->reg_of, (size_t)(m->n + n + 1) * sizeof *nr);
    if (ni) m->info = ni;
    if (nd) m->data = nd;
    if (nr) p->reg_of = nr;
    if (!ni || !nd || !nr) { st_infos_free(v, n); return lop_fail(e, "out of memory"); }
    for (int i = 0; i < n; i++) {
        const unsigned char *d = base + ds + v[i].offset;
        size_t al = st_dtype_size(v[i].dtype);
        p->reg_of[m->n] = p->nreg - 1;
        if ((uintptr_t)d % al) {
            void *c = aligned_alloc(8, (v[i].nbytes + 7) / 8 * 8 + 8);
            void **no = realloc(p->owned, (size_t)(p->nowned + 1) * sizeof *no);
            if (!c || !no) {
                free(c);
                if (no) p->owned = no;
                for (int k = i; k < n; k++) free(v[k].name);
                free(v);
                return lop_fail(e, "out of memory");
            }
            p->owned = no;
            p->owned[p->nowned++] = c;
            memcpy(c, d, v[i].nbytes);
            d = c;
            p->reg_of[m->n] = -1;
        }
        m->info[m->n] = v[i];
        m->data[m->n++] = d;
    }
    free(v); /* names moved into m->info */
    return 0;
}

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A sharded folder: the shard files named in the index's weight_map, in name order; every tensor
 * must be in the shard the index names, and every shard tensor in the index. */
static int add_shards(st_model *m, const char *dir, const char *index, lop_err *e) {
    char *txt; size_t len;
    if (fs_read_all(index, &txt, &len, e)) return -1;
    cJSON *j = cJSON_ParseWithLength(txt, len);
    free(txt);
    const cJSON *wm = j ? cJSON_GetObjectItemCaseSensitive(j, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) { cJSON_Delete(j); return lop_fail(e, "%s: not an index (no \"weight_map\" object)", index); }
    int n = cJSON_GetArraySize(wm), nf = 0, rc = 0;
    char **files = calloc((size_t)n + 1, sizeof *files);
    if (!files) { cJSON_Delete(j); return lop_fail(e, "out of memory"); }
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it) || !*it->valuestring || strchr(it->valuestring, '/') || !strcmp(it->valuestring, "..")) {
            rc = lop_fail(e, "%s: weight_map entry '%s' is not a shard file name", index, it->string);
            break;
        }
        files[nf++] = it->valuestring;
    }
    qsort(files, (size_t)nf, sizeof *files, cmp_str);
    int u = 0;
    for (int i = 0; i < nf; i++) if (!u || strcmp(files[i], files[u - 1])) files[u++] = files[i];
    for (int i = 0; i < u && !rc; i++) {
        char *p = join(dir, files[i]);
        int first = m->n;
        if (!p) { rc = lop_fail(e, "out of memory"); break; }
        cJSON *meta = NULL;
        rc = add_file(m, p, &meta, e);
        if (!rc && !m->metadata) m->metadata = meta; else cJSON_Delete(meta);
        for (int t = first; t < m->n && !rc; t++) {
            const cJSON *w = cJSON_GetObjectItemCaseSensitive(wm, m->info[t].name);
            if (!w) rc = lop_fail(e, "%s: tensor '%s' is not in the index", p, m->info[t].name);
            else if (strcmp(w->valuestring, files[i]))
                rc = lop_fail(e, "%s: tensor '%s' is here but the index puts it in %s", p, m->info[t].name, w->valuestring);
        }
        free(p);
    }
    if (!rc && m->n != n) rc = lop_fail(e, "%s: the index names %d tensors but the shards hold %d", index, n, m->n);
    free(files);
    cJSON_Delete(j);
    return rc;
}

static int check_unique(const st_model *m, lop_err *e) {
    if (m->n < 2) return 0;
    const char **v = malloc((size_t)m->n * sizeof *v);
    if (!v) return lop_fail(e, "out of memory");
    for (int i = 0; i < m->n; i++) v[i] = m->info[i].name;
    qsort(v, (size_t)m->n, sizeof *v, cmp_str);
    int rc = 0;
    for (int i = 1; i < m->n && !rc; i++)
        if (!strcmp(v[i], v[i - 1])) rc = lop_fail(e, "tensor '%s' appears in two shards", v[i]);
    free(v);
    return rc;
}

const char *st_meta_str(const cJSON *md, const char *key) {
    const cJSON *v = md ? cJSON_GetObjectItemCaseSensitive(md, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* config.json and the source folder of a folder, or of a file's own folder when its metadata
 * carries no config (a model.safetensors inside an HF folder). */
static int load_folder_config(st_model *m, const char *dir, lop_err *e) {
    char *cp = join(dir, "config.json");
    if (!cp) return lop_fail(e, "out of memory");
    int rc = 0;
    if (fs_is_file(cp)) {
        size_t len;
        rc = fs_read_all(cp, &m->config_json, &len, e);
        if (!rc) m->source_dir = fs_abspath(dir);
    }
    free(cp);
    return rc;
}

static int open_any(st_model *m, const char *path, lop_err *e) {
    if (!strcmp(path, "-") || !fs_is_dir(path)) {
        if (add_file(m, path, &m->metadata, e)) return -1;
        const char *c = st_meta_str(m->metadata, "config"), *s = st_meta_str(m->metadata, "source");
        if (c) {
            if (!(m->config_json = strdup(c))) return lop_fail(e, "out of memory");
            if (s && !(m->source_dir = strdup(s))) return lop_fail(e, "out of memory");
            return 0;
        }
        if (!strcmp(path, "-")) return 0;
        char *dir = fs_dirname(path);
        int rc = dir ? load_folder_config(m, dir, e) : lop_fail(e, "out of memory");
        free(dir);
        return rc;
    }
    char *single = join(path, "model.safetensors"), *index = join(path, "model.safetensors.index.json");
    int rc;
    if (!single || !index) rc = lop_fail(e, "out of memory");
    else if (fs_is_file(single)) rc = add_file(m, single, &m->metadata, e);
    else if (fs_is_file(index)) rc = add_shards(m, path, index, e);
    else rc = lop_fail(e, "%s: no model.safetensors or model.safetensors.index.json in this folder", path);
    free(single); free(index);
    if (!rc) rc = check_unique(m, e);
    if (!rc) rc = load_folder_config(m, path, e);
    return rc;
}

int st_model_new(st_model **out, lop_err *e) {
    *out = NULL;
    st_model *m = calloc(1, sizeof *m);
    model_priv *p = calloc(1, sizeof *p);
    if (!m || !p) { free(m); free(p); return lop_fail(e, "out of memory"); }
    m->priv = p;
    *out = m;
    return 0;
}

int st_open_mapped(st_model *m, const char *path, lop_err *e) { return open_any(m, path, e); }

void st_priv_sequential(const st_model *m) {
    const model_priv *p = m->priv;
    for (int i = 0; i < p->nreg; i++)
        if (p->reg[i].mapped) madvise(p->reg[i].addr, p->reg[i].len, MADV_SEQUENTIAL);
}

/* ---- for st_adapter.c: a model whose bytes are another model's, some replaced ---- */
int st_priv_set_base(st_model *m, st_model *base, lop_err *e) {
    model_priv *p = m->priv;
    if (!(p->base_of = malloc(((size_t)m->n + 1) * sizeof *p->base_of))) return lop_fail(e, "out of memory");
    for (int i = 0; i < m->n; i++) p->base_of[i] = i;
    p->base = base;
    return 0;
}
int st_priv_own(st_model *m, void *buf, lop_err *e) {
    model_priv *p = m->priv;
    void **no = realloc(p->owned, (size_t)(p->nowned + 1) * sizeof *no);
    if (!no) return lop_fail(e, "out of memory");
    p->owned = no;
    p->owned[p->nowned++] = buf;
    return 0;
}
void st_priv_unmap(st_model *m, int i) {
    model_priv *p = m->priv;
    if (p->base_of && i >= 0 && i < m->n) p->base_of[i] = -1;
}

int st_find(const st_model *m, const char *name) {
    for (int i = 0; i < m->n; i++) if (!strcmp(m->info[i].name, name)) return i;
    return -1;
}

void st_close(st_model *m) {
    if (!m) return;
    model_priv *p = m->priv;
    if (p) {
        for (int i = 0; i < p->nreg; i++) free_image(p->reg[i].addr, p->reg[i].len, p->reg[i].mapped);
        for (int i = 0; i < p->nowned; i++) free(p->owned[i]);
        free(p->reg); free(p->owned); free(p->reg_of); free(p->base_of);
        st_close(p->base);
        free(p);
    }
    st_infos_free(m->info, m->n);
    free(m->data);
    free(m->config_json); free(m->source_dir);
    cJSON_Delete(m->metadata);
    free(m);
}

/* Drop the pages of a tensor already handed out, so that resident memory stays bounded by what
 * is in use (the file stays in the page cache; a later touch faults it back). Only whole pages
 * inside the tensor, so a neighbour's bytes are never dropped while in use; and only mappings
 * (MADV_DONTNEED on owned heap bytes would zero them). */
void st_release(const st_model *m, int i) {
    const model_priv *p = m ? m->priv : NULL;
    if (p && p->base) {
        if (i >= 0 && i < m->n && p->base_of[i] >= 0) st_release(p->base, p->base_of[i]);
        return;
    }
    if (!p || i < 0 || i >= m->n || p->reg_of[i] < 0 || !p->reg[p->reg_of[i]].mapped) return;
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)m->data[i], b = a + m->info[i].nbytes;
    a = (a + (uintptr_t)pg - 1) & ~(uintptr_t)(pg - 1);
    b &= ~(uintptr_t)(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}
