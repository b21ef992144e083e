/* textio.h — the one reader of whole text inputs: prompts, ppl's text, calibration samples,
 * training data, task files, model-card's logs.
 *   - a path, or "-" for stdin;
 *   - zstd-compressed when it starts with zstd's magic number, whatever its name (the same rule and
 *     decoder as safetensors inputs: st_src.c);
 *   - text: a NUL byte (after decompression) is refused, naming the file. */
#ifndef LOP_TEXTIO_H
#define LOP_TEXTIO_H
#include <stddef.h>
#include "err.h"

/* *buf malloc'd and NUL-terminated, *len without the NUL. An empty input is not an error. */
int text_read(const char *path, char **buf, size_t *len, lop_err *e);
/* The same bytes without the NUL check (binary inputs that may be compressed). */
int text_read_bytes(const char *path, char **buf, size_t *len, lop_err *e);
#endif
