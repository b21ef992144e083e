/* safetensors.h — reading and writing safetensors: files (mmap, zero copy), sharded HF folders,
 * streams on pipes (sequential, never seek), zstd-compressed files/streams (by magic number).
 *
 * Three views:
 *   st_model   random access to every tensor (compute tools): mmap'd file or shards; a pipe or
 *              .zst input is read into memory once.
 *   st_reader  one tensor at a time, in file order (streaming tools: memory bounded by the largest
 *              tensor). The whole header (names, dtypes, shapes) is known right after open.
 *   st_writer  writes tensors in order to "-" (stdout stream), a file, or an HF folder (shards,
 *              index, config.json, tokenizer files copied from the source folder). Atomic: temp
 *              names renamed into place by st_writer_finish().
 * A stream or single file carries config.json in __metadata__["config"] and the source folder in
 * __metadata__["source"] (see ../shared/CLI.md).
 */
#ifndef LOP_SAFETENSORS_H
#define LOP_SAFETENSORS_H
#include <stdint.h>
#include <cjson/cJSON.h>
#include "dtype.h"
#include "err.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u << 20) /* 100 MB, the format's limit */

typedef struct st_info {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t nbytes;   /* = prod(shape) * dtype size */
    uint64_t offset;   /* in its file's data section (set by readers; writers compute their own) */
} st_info;

uint64_t st_numel(const st_info *t);

/* ---- random access ---- */
typedef struct st_model {
    int n;                /* tensors, in file order (shards in index order) */
    st_info *info;        /* [n] */
    const void **data;    /* [n] bytes of tensor i (mmap'd or owned) */
    char *config_json;    /* config.json text (folder file, or __metadata__.config), or NULL */
    char *source_dir;     /* folder for tokenizer files (the folder itself, or __metadata__.source), or NULL */
    cJSON *metadata;      /* __metadata__ (string values), or NULL */
    void *priv;
} st_model;

/* path: an HF folder (model.safetensors or an index with shards), a .safetensors file (maybe
 * .zst), or "-" for stdin. Validates everything (see st_parse_header). */
int st_open(st_model **out, const char *path, lop_err *e);
int st_find(const st_model *m, const char *name);     /* index, or -1 */
void st_close(st_model *m);
/* Give back the resident pages of tensor i when it is mmap'd (no-op for owned bytes): for a
 * caller that copied it elsewhere. The bytes stay valid: a later read faults them back in. */
void st_release(const st_model *m, int i);

/* ---- PEFT LoRA adapters (st_adapter.c) ----
 * A folder with adapter_config.json + adapter_model.safetensors and no model weights is opened by
 * st_open / st_reader_open as the adapted model: its base (base_model_name_or_path: an absolute
 * path, a path relative to the adapter folder or to the working folder, or a hub id found in the
 * local Hugging Face cache; or the override below) with every targeted weight replaced by
 * W + s B A in float32 (PEFT's arithmetic; s = lora_alpha/r, or /sqrt(r) with use_rslora).
 * __metadata__ gains "adapter" and "adapter_base" (absolute paths). */
void st_adapter_set_base(const char *path);  /* the tools' --base PATH; NULL: none */
int st_is_adapter(const char *dir);          /* 1 if dir is such an adapter folder */
/* The folder of an adapter's base, resolved as st_open does (malloc'd into *base). */
int st_adapter_base_path(const char *dir, char **base, lop_err *e);
/* "ORG/NAME" when path lies in a Hugging Face cache snapshot (models--ORG--NAME/snapshots/..),
 * else NULL (malloc'd). */
char *st_adapter_hub_id(const char *path);

/* ---- streaming ---- */
typedef struct st_reader st_reader;
int st_reader_open(st_reader **out, const char *path, lop_err *e);
const st_info *st_reader_infos(const st_reader *r, int *n);
const char *st_reader_config(const st_reader *r);   /* config.json text or NULL */
const char *st_reader_source(const st_reader *r);   /* source folder or NULL */
const cJSON *st_reader_metadata(const st_reader *r);
/* Next tensor in order: returns 1 and sets *idx and *data (valid until the next call), 0 at the
 * end, -1 on error (truncated stream, I/O). */
int st_reader_next(st_reader *r, int *idx, const void **data, lop_err *e);
void st_reader_close(st_reader *r);

/* Parse and validate one header (the JSON bytes after the 8-byte length) against a data section
 * of data_len bytes (UINT64_MAX when unknown, as on a pipe: then the end is checked as data
 * arrives). Rejects: invalid JSON/UTF-8, non-string metadata, unknown dtype, duplicate names,
 * offsets out of order/overlapping/with holes/past the end, nbytes != numel*size, bad shapes.
 * On success *infos is malloc'd [*n] sorted by offset and *meta is the __metadata__ (or NULL). */
int st_parse_header(const char *json, uint64_t json_len, uint64_t data_len, st_info **infos,
                    int *n, cJSON **meta, lop_err *e);
void st_infos_free(st_info *infos, int n);

/* ---- writing ---- */
typedef struct st_write_opts {
    uint64_t max_shard_size; /* folder output: bytes per shard (0: 5G, as transformers) */
    int zstd_level;          /* 0: none; >0: compress file/stream output with zstd (a file named
                                *.zst is compressed at level 3 when this is 0). Single-threaded:
                                multithreaded zstd buffers several MB per thread, and memory must
                                stay bounded by the largest tensor. */
} st_write_opts;

typedef struct st_writer st_writer;
/* path "-": stream to stdout; path ending ".safetensors" or ".zst": one file; anything else: an
 * HF folder. infos[n] fixes the names, dtypes, shapes and order (offsets are computed here).
 * config_json (may be NULL) travels in __metadata__ (stream/file) or is written as config.json
 * (folder); source_dir (may be NULL) is recorded, and its tokenizer files are copied to a folder. */
int st_writer_open(st_writer **out, const char *path, const st_info *infos, int n,
                   const char *config_json, const char *source_dir, const st_write_opts *o,
                   lop_err *e);
/* Tensor idx (must come in order 0..n-1) with infos[idx].nbytes bytes. */
int st_writer_put(st_writer *w, int idx, const void *data, lop_err *e);
int st_writer_finish(st_writer *w, lop_err *e); /* flush, fsync, rename into place, free */
void st_writer_abort(st_writer *w);             /* remove temporaries, free */
#endif
