/*
 * Decoding on-disk integers from bytes, and overflow-checked arithmetic.
 *
 * Every on-disk number is hostile: drivers never cast a buffer to a struct;
 * they decode each field from its bytes with these helpers, then check it.
 */
#ifndef IA_BYTES_H
#define IA_BYTES_H

#include <stdbool.h>
#include <stdint.h>

static inline uint16_t ia_le16(const uint8_t *p)
{
        return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t ia_le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t ia_le64(const uint8_t *p)
{
        return (uint64_t)ia_le32(p) | (uint64_t)ia_le32(p + 4) << 32;
}

static inline uint16_t ia_be16(const uint8_t *p)
{
        return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t ia_be32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t ia_be64(const uint8_t *p)
{
        return (uint64_t)ia_be32(p) << 32 | (uint64_t)ia_be32(p + 4);
}

/* *sum = a + b; false if that overflows. */
static inline bool ia_add_ok(uint64_t a, uint64_t b, uint64_t *sum)
{
        return !__builtin_add_overflow(a, b, sum);
}

/* *prod = a * b; false if that overflows. */
static inline bool ia_mul_ok(uint64_t a, uint64_t b, uint64_t *prod)
{
        return !__builtin_mul_overflow(a, b, prod);
}

/* Is [off, off+len) inside [0, size)?  Overflow-safe. */
static inline bool ia_range_in(uint64_t off, uint64_t len, uint64_t size)
{
        return off <= size && len <= size - off;
}

static inline uint64_t ia_min_u64(uint64_t a, uint64_t b)
{
        return a < b ? a : b;
}

static inline uint64_t ia_round_up(uint64_t v, uint64_t align)
{
        return (v + align - 1) / align * align;
}

#endif
