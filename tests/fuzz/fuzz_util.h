/* fuzz_util.h — what every lop fuzz target shares: a private scratch folder (most of lop's
 * readers take paths, so an input is written to a file there first), splitting one input into
 * several files at a separator line, and a check that aborts (the fuzzer's "property failed").
 *
 * Multi-file inputs: the parts are separated by FZ_SEP ("\n--lopfuzz--\n"); the fuzz dictionary
 * (tests/fuzz/lop.dict) holds it, so mutations keep the structure. */
#ifndef LOP_FUZZ_UTIL_H
#define LOP_FUZZ_UTIL_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "fsutil.h"

#define FZ_SEP "\n--lopfuzz--\n"

static char fz_root[64];

static void fz_cleanup(void) { if (fz_root[0]) fs_rm_rf(fz_root); }

/* The process's scratch folder (tmpfs when there is one), removed at exit. */
static const char *fz_dir(void) {
    if (!fz_root[0]) {
        snprintf(fz_root, sizeof fz_root, "%s/lopfuzz.XXXXXX", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
        if (!mkdtemp(fz_root)) { perror("mkdtemp"); abort(); }
        atexit(fz_cleanup);
    }
    return fz_root;
}

/* fz_dir()/name (static buffer, one of 4 in rotation) */
static const char *fz_path(const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", fz_dir(), name);
    return p;
}

static const char *fz_write(const char *name, const void *d, size_t n) {
    const char *p = fz_path(name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(d, 1, n, f) != n) || fclose(f)) { perror(p); abort(); }
    return p;
}

/* Split d[0..n) at FZ_SEP into at most max parts (the last part keeps any further separators).
 * Returns the part count (>= 1). */
static int fz_split(const uint8_t *d, size_t n, const uint8_t **part, size_t *len, int max) {
    int k = 0;
    const size_t sl = sizeof FZ_SEP - 1;
    while (k < max - 1) {
        const uint8_t *s = memmem(d, n, FZ_SEP, sl);
        if (!s) break;
        part[k] = d; len[k] = (size_t)(s - d); k++;
        n -= (size_t)(s - d) + sl; d = s + sl;
    }
    part[k] = d; len[k] = n;
    return k + 1;
}

/* A property failed: say which, then abort (libFuzzer saves the input as a crash). */
#define FZ_CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "fuzz property failed: %s: ", #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); abort(); } } while (0)

/* malloc'd NUL-terminated copy */
static char *fz_strndup(const uint8_t *d, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, d, n); s[n] = 0;
    return s;
}

/* A small SentencePiece-style tokenizer (Llama 2's components: Prepend + Replace normalizer,
 * BPE with byte fallback, ByteFallback/Fuse/Strip decoder, BOS template), written into the
 * scratch folder as FOLDER/tokenizer.json; returns FOLDER. For the targets that need some
 * tokenizer (training and calibration data) without depending on ../shared. */
static const char *fz_tiny_tokenizer(const char *folder) {
    static char buf[32768];
    static const char *pieces[] = {"\u2581", "e", "t", "h", "a", "o", "\u2581t", "th", "\u2581th",
                                   "he", "\u2581the", "n", "i", "s", "\u2581a", NULL};
    static const char *merges[] = {"\u2581 t", "t h", "\u2581 th", "h e", "\u2581th e", "\u2581 a", NULL};
    int n = snprintf(buf, sizeof buf,
        "{\"version\":\"1.0\",\"added_tokens\":["
        "{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"single_word\":false},"
        "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"single_word\":false},"
        "{\"id\":2,\"content\":\"</s>\",\"special\":true,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"single_word\":false}],"
        "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},"
        "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"
        "\"pre_tokenizer\":null,"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
        "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
        "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}},"
        "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},\"content\":\" \"},"
        "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
        "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":null,"
        "\"end_of_word_suffix\":null,\"fuse_unk\":true,\"byte_fallback\":true,\"vocab\":{"
        "\"<unk>\":0,\"<s>\":1,\"</s>\":2");
    for (int b = 0; b < 256; b++) n += snprintf(buf + n, sizeof buf - n, ",\"<0x%02X>\":%d", b, 3 + b);
    int id = 259;
    for (int i = 0; pieces[i]; i++) n += snprintf(buf + n, sizeof buf - n, ",\"%s\":%d", pieces[i], id++);
    n += snprintf(buf + n, sizeof buf - n, "},\"merges\":[");
    for (int i = 0; merges[i]; i++) n += snprintf(buf + n, sizeof buf - n, "%s\"%s\"", i ? "," : "", merges[i]);
    n += snprintf(buf + n, sizeof buf - n, "]}}");
    char p[600];
    snprintf(p, sizeof p, "%s/%s", fz_dir(), folder);
    mkdir(p, 0755);
    static char name[700];
    snprintf(name, sizeof name, "%s/tokenizer.json", folder);
    fz_write(name, buf, (size_t)n);
    static char out[700];
    snprintf(out, sizeof out, "%s/%s", fz_dir(), folder);
    return out;
}
#endif
