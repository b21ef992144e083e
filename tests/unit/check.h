/* check.h — what every C unit test shares: CHECK (count the check; on failure count it, print
 * where, the condition and an optional printf-style message), and the seeded xorshift generator
 * the tests draw their random inputs from. */
#ifndef LOP_CHECK_H
#define LOP_CHECK_H
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

static int fails, checks __attribute__((unused));

static inline void check_note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* CHECK(cond) or CHECK(cond, "format", args...) */
#define CHECK(cond, ...) do { checks++; if (!(cond)) { fails++; \
    printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); check_note("" __VA_ARGS__); } } while (0)

/* xorshift64 (13, 7, 17) over the caller's state */
static inline uint64_t check_xorshift(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}
/* uniform in [-1, 1): the top 53 bits as a double, rounded to float */
static inline float check_frand(uint64_t *s) {
    return (float)((check_xorshift(s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
#endif
