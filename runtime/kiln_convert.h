/* Conversions between float32 / integers and ONNX's storage types (bfloat16, float8, float4,
 * 4- and 2-bit integers), included by every generated model. Kernels never compute in a storage
 * type: they decode to float32 (or int8/uint8) after a load and encode before a store.
 *
 * Encoding rounds to nearest even. `sat` (ONNX Cast's saturate) clamps values beyond the
 * format's largest finite value (and infinities) to it; without it they become the format's
 * infinity, or NaN where it has none. FNUZ formats have no -0 (it encodes as +0) and one NaN
 * (0x80). Sub-byte values are packed low bits first: element i of an int4 tensor is bits
 * 4*(i%2).. of byte i/2. */
#ifndef KILN_CONVERT_H
#define KILN_CONVERT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t kiln_f32_bits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float kiln_bits_f32(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

/* A small float with M mantissa bits and exponent bias B; its sign is bit `sign_bit`.
 * max_code: the largest finite magnitude's code; nan_code / inf_code: magnitude codes (-1: the
 * format has no infinity); fnuz: NaN is the lone sign bit and zero has no sign. */
static inline uint8_t kiln_encode_small_float(float x, int M, int B, int sign_bit,
                                              uint32_t max_code, int nan_code, int inf_code,
                                              int fnuz, int sat) {
    uint32_t u = kiln_f32_bits(x);
    uint32_t sign = fnuz ? 0u : (u >> 31) << sign_bit;
    uint32_t a = u & 0x7FFFFFFFu;
    uint32_t code;
    if (a > 0x7F800000u) return (uint8_t)(fnuz ? 1u << sign_bit : sign | (uint32_t)nan_code);
    if (a >= (uint32_t)(128 - B) << 23 && a < 0x7F800000u) {  /* normal in the format */
        uint32_t shift = 23u - (uint32_t)M;
        uint32_t rounded = (a + (1u << (shift - 1)) - 1u + ((a >> shift) & 1u)) >> shift;
        code = rounded - ((uint32_t)(127 - B) << M);
    } else if (a < 0x7F800000u) {                            /* subnormal or zero */
        float scaled = kiln_bits_f32(a) * (float)(1u << (B - 1 + M));
        code = (uint32_t)nearbyintf(scaled);
    } else {
        code = max_code + 1u;                                /* infinity: overflows */
    }
    if (code > max_code) {
        if (sat) code = max_code;
        else if (inf_code >= 0) code = (uint32_t)inf_code;
        else return (uint8_t)(fnuz ? 1u << sign_bit : sign | (uint32_t)nan_code);
    }
    if (fnuz && code == 0) return 0;
    return (uint8_t)((u >> 31) << sign_bit | code);
}

/* kind: 0 the all-ones magnitude is NaN (E4M3FN), 1 FNUZ, 2 IEEE-like (all-ones exponent is
 * Inf/NaN), 3 no specials (E2M1). */
static inline float kiln_decode_small_float(uint32_t c, int M, int E, int B, int sign_bit,
                                            int kind) {
    uint32_t sign = (c >> sign_bit) & 1u;
    uint32_t mag = c & ((1u << sign_bit) - 1u);
    uint32_t e = mag >> M, m = mag & ((1u << M) - 1u);
    float v;
    if (kind == 1 && c == 1u << sign_bit) return NAN;
    if (kind == 0 && mag == (1u << sign_bit) - 1u) return sign ? -NAN : NAN;
    if (kind == 2 && e == (1u << E) - 1u) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexpf((float)m, 1 - B - M);
    else v = kiln_bits_f32((e - (uint32_t)B + 127u) << 23 | m << (23 - M));
    return sign ? -v : v;
}

static inline uint8_t kiln_encode_float8e4m3fn(float x, int sat) {
    return kiln_encode_small_float(x, 3, 7, 7, 0x7E, 0x7F, -1, 0, sat);
}
static inline uint8_t kiln_encode_float8e4m3fnuz(float x, int sat) {
    return kiln_encode_small_float(x, 3, 8, 7, 0x7F, 0, -1, 1, sat);
}
static inline uint8_t kiln_encode_float8e5m2(float x, int sat) {
    return kiln_encode_small_float(x, 2, 15, 7, 0x7B, 0x7E, 0x7C, 0, sat);
}
static inline uint8_t kiln_encode_float8e5m2fnuz(float x, int sat) {
    return kiln_encode_small_float(x, 2, 16, 7, 0x7F, 0, -1, 1, sat);
}
/* E2M1 always saturates; NaN becomes -0, as ONNX's reference does. */
static inline uint8_t kiln_encode_float4e2m1(float x, int sat) {
    (void)sat;
    return kiln_encode_small_float(x, 1, 1, 3, 0x7, 0x8, -1, 0, 1);
}
static inline float kiln_decode_float8e4m3fn(uint8_t c) { return kiln_decode_small_float(c, 3, 4, 7, 7, 0); }
static inline float kiln_decode_float8e4m3fnuz(uint8_t c) { return kiln_decode_small_float(c, 3, 4, 8, 7, 1); }
static inline float kiln_decode_float8e5m2(uint8_t c) { return kiln_decode_small_float(c, 2, 5, 15, 7, 2); }
static inline float kiln_decode_float8e5m2fnuz(uint8_t c) { return kiln_decode_small_float(c, 2, 5, 16, 7, 1); }
static inline float kiln_decode_float4e2m1(uint8_t c) { return kiln_decode_small_float(c, 1, 2, 1, 3, 3); }

static inline uint16_t kiln_encode_bfloat16(float x, int sat) {
    uint32_t u = kiln_f32_bits(x);
    (void)sat;
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40u);   /* quiet NaN */
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
static inline float kiln_decode_bfloat16(uint16_t c) { return kiln_bits_f32((uint32_t)c << 16); }

/* E8M0: a biased power of two (no sign, no zero; 0xFF is NaN). mode: 0 rounds up (to the next
 * power of two when any fraction bit is set), 1 down, 2 to nearest. */
static inline uint8_t kiln_encode_float8e8m0(float x, int sat, int mode) {
    uint32_t u = kiln_f32_bits(x);
    uint32_t e = (u >> 23) & 0xFFu, m = u & 0x7FFFFFu;
    int up;
    if (e == 0xFFu) return 0xFF;
    up = mode == 0 ? m != 0 : mode == 2 ? (m & 0x400000u) && ((m & 0x3FFFFFu) || e > 0) : 0;
    if (up) {
        if (e == 0xFEu) return sat ? 0xFE : 0xFF;
        e += 1u;
    }
    return (uint8_t)e;
}
static inline float kiln_decode_float8e8m0(uint8_t c) {
    if (c == 0xFF) return NAN;
    return kiln_bits_f32(c == 0 ? 0x00400000u : (uint32_t)c << 23);
}

/* 4- and 2-bit integers: encoding keeps the low bits (ONNX Cast wraps), decoding extends. */
static inline uint8_t kiln_encode_int4(int64_t v, int sat) { (void)sat; return (uint8_t)(v & 15); }
static inline uint8_t kiln_encode_uint4(int64_t v, int sat) { (void)sat; return (uint8_t)(v & 15); }
static inline uint8_t kiln_encode_int2(int64_t v, int sat) { (void)sat; return (uint8_t)(v & 3); }
static inline uint8_t kiln_encode_uint2(int64_t v, int sat) { (void)sat; return (uint8_t)(v & 3); }
static inline int8_t kiln_decode_int4(uint8_t c) { return (int8_t)((int)(c ^ 8u) - 8); }
static inline uint8_t kiln_decode_uint4(uint8_t c) { return c; }
static inline int8_t kiln_decode_int2(uint8_t c) { return (int8_t)((int)(c ^ 2u) - 2); }
static inline uint8_t kiln_decode_uint2(uint8_t c) { return c; }

/* Element k of a byte of packed 4-bit (2 per byte) or 2-bit (4 per byte) codes, and a byte
 * made of such codes (element 0 in the low bits). */
static inline uint8_t kiln_unpack4(uint8_t byte, int64_t k) { return (uint8_t)((byte >> (4 * k)) & 15u); }
static inline uint8_t kiln_unpack2(uint8_t byte, int64_t k) { return (uint8_t)((byte >> (2 * k)) & 3u); }
static inline uint8_t kiln_pack4(uint8_t c0, uint8_t c1) { return (uint8_t)(c0 | c1 << 4); }
static inline uint8_t kiln_pack2(uint8_t c0, uint8_t c1, uint8_t c2, uint8_t c3) {
    return (uint8_t)(c0 | c1 << 2 | c2 << 4 | c3 << 6);
}

#endif /* KILN_CONVERT_H */
