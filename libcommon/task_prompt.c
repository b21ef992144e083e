/* task_prompt.c — the pieces of the harness's prompts (declared in task.h): Python's whitespace
 * and length rules (str.strip, len), hellaswag's preprocess, MMLU's question text. */
#include "task.h"
#include "task_text.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 and Python's whitespace ---- */

/* decode one code point at s (len bytes left); invalid bytes count as one code point each */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *adv) {
    unsigned c = s[0];
    int k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (k == 0 || (size_t)k > len) { *adv = 1; return c; }
    uint32_t cp = k == 1 ? c : k == 2 ? (c & 0x1f) : k == 3 ? (c & 0x0f) : (c & 0x07);
    for (int i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) { *adv = 1; return c; }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    *adv = (size_t)k;
    return cp;
}

/* str.isspace(): bidi class WS/B/S or category Zs */
static int py_isspace_cp(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

int task_utf8_len(const char *s) {
    size_t len = strlen(s), i = 0, adv;
    int n = 0;
    while (i < len) { utf8_next((const unsigned char *)s + i, len - i, &adv); i += adv; n++; }
    return n;
}

size_t task_py_trailing_space(const char *s, size_t len) {
    /* walk forward remembering where the last non-space code point ended */
    size_t i = 0, keep = 0, adv;
    while (i < len) {
        uint32_t c = utf8_next((const unsigned char *)s + i, len - i, &adv);
        i += adv;
        if (!py_isspace_cp(c)) keep = i;
    }
    return len - keep;
}

char *task_py_strip(const char *s) {
    size_t len = strlen(s), i = 0, adv;
    while (i < len) {
        uint32_t c = utf8_next((const unsigned char *)s + i, len - i, &adv);
        if (!py_isspace_cp(c)) break;
        i += adv;
    }
    size_t end = len - task_py_trailing_space(s + i, len - i);
    sbuf b = {0};
    sb_put(&b, s + i, end > i ? end - i : 0);
    return task_text_take(&b);
}

/* ---- hellaswag ---- */

char *hellaswag_preprocess(const char *text) {
    char *t = task_py_strip(text);
    sbuf b = {0};
    /* " [title]" -> ". " */
    for (const char *p = t; *p;) {
        if (!strncmp(p, " [title]", 8)) { sb_puts(&b, ". "); p += 8; }
        else sb_put(&b, p++, 1);
    }
    free(t);
    t = task_text_take(&b);
    /* re.sub(r"\[.*?\]", "", t): '.' does not match a newline */
    for (const char *p = t; *p;) {
        if (*p == '[') {
            const char *q = p + 1;
            while (*q && *q != ']' && *q != '\n') q++;
            if (*q == ']') { p = q + 1; continue; }
        }
        sb_put(&b, p++, 1);
    }
    free(t);
    t = task_text_take(&b);
    /* str.replace("  ", " "): non-overlapping, left to right */
    for (const char *p = t; *p;) {
        if (p[0] == ' ' && p[1] == ' ') { sb_puts(&b, " "); p += 2; }
        else sb_put(&b, p++, 1);
    }
    free(t);
    return task_text_take(&b);
}

char *mmlu_doc_text(const char *question, char *const choices[4]) {
    sbuf b = {0};
    char *q = task_py_strip(question);
    sb_puts(&b, q);
    free(q);
    static const char *letter[4] = {"\nA. ", "\nB. ", "\nC. ", "\nD. "};
    for (int i = 0; i < 4; i++) { sb_puts(&b, letter[i]); sb_puts(&b, choices[i]); }
    sb_puts(&b, "\nAnswer:");
    return task_text_take(&b);
}

