/*
 * Building on-disk structures byte by byte in the unit tests: store a
 * little- or big-endian integer at p (buf + offset), a string as UTF-16LE.
 * The reading side is formats/bytes.h (ia_le32() and friends).
 */
#ifndef IA_BYTES_BUILD_H
#define IA_BYTES_BUILD_H

#include <stddef.h>
#include <stdint.h>

static inline void put_le16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
        put_be32(p, (uint32_t)(v >> 32));
        put_be32(p + 4, (uint32_t)v);
}

/* s (ASCII) as UTF-16LE code units at p, without a terminator. */
static inline void put_utf16le(uint8_t *p, const char *s)
{
        for (size_t i = 0; s[i]; i++)
                put_le16(p + 2 * i, (uint8_t)s[i]);
}

#endif
