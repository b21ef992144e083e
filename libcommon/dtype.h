/* dtype.h — safetensors element types and conversions to and from float32.
 * f32 -> bf16 and f32 -> f16 round to nearest even; NaN stays NaN, Inf stays Inf. */
#ifndef LOP_DTYPE_H
#define LOP_DTYPE_H
#include <stddef.h>
#include <stdint.h>

typedef enum st_dtype {
    ST_F64, ST_F32, ST_F16, ST_BF16,
    ST_I64, ST_I32, ST_I16, ST_I8,
    ST_U64, ST_U32, ST_U16, ST_U8, ST_BOOL,
    ST_NDTYPES
} st_dtype;

size_t st_dtype_size(st_dtype t);          /* bytes per element */
const char *st_dtype_name(st_dtype t);     /* "BF16" — as in the safetensors header */
int st_dtype_parse(const char *s, st_dtype *out); /* header name -> dtype; -1 if unknown */
int st_dtype_is_float(st_dtype t);         /* F64/F32/F16/BF16 */

float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

/* n elements of a float dtype -> float32 (dst[n]); -1 for non-float dtypes. */
int st_to_f32(float *dst, const void *src, st_dtype t, size_t n);
/* The same for the float dtypes on the hot paths (weights converted per matrix): bf16 and f32
 * loops the compiler vectorizes, others through st_to_f32. */
void st_to_f32_fast(float *dst, const void *src, st_dtype t, size_t n);
/* n float32 -> a float dtype (dst holds n * st_dtype_size(t) bytes); -1 for non-float. */
int st_from_f32(void *dst, const float *src, st_dtype t, size_t n);
#endif
