/*
 * qemu-compatible size parsing: see size.h.
 */
#include "size.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "banned.h"

static uint64_t suffix_mul(char c)
{
        switch (c) {
        case 'b':
        case 'B':
                return 1;
        case 'k':
        case 'K':
                return 1ull << 10;
        case 'm':
        case 'M':
                return 1ull << 20;
        case 'g':
        case 'G':
                return 1ull << 30;
        case 't':
        case 'T':
                return 1ull << 40;
        case 'p':
        case 'P':
                return 1ull << 50;
        case 'e':
        case 'E':
                return 1ull << 60;
        }
        return 0;
}

static int strtou64(const char *s, char **end, int base, uint64_t *v)
{
        errno = 0;
        *v = strtoull(s, end, base);
        if (*end == s)
                return -EINVAL;
        if (errno == ERANGE)
                return -ERANGE;
        return 0;
}

int ia_parse_size(const char *s, uint64_t *val, bool *hex_suffix)
{
        uint64_t v, frac = 0, mul;
        bool hex = false;
        char *end;
        int r;

        *hex_suffix = false;
        r = strtou64(s, &end, 10, &v);
        if (r)
                return r;
        if (memchr(s, '-', (size_t)(end - s)))
                return -EINVAL;
        if (v == 0 && (*end == 'x' || *end == 'X')) {
                r = strtou64(s, &end, 16, &v);
                if (r)
                        return r;
                if (*end == '.')
                        return -EINVAL;
                hex = true;
        } else if (*end == '.') {
                const char *f = end;
                double d;

                errno = 0;
                d = strtod(f, &end);
                if (end == f || errno || !isfinite(d)) {
                        end = (char *)f + 1; /* "1.k": a bare point */
                } else if (memchr(f, 'e', (size_t)(end - f)) || memchr(f, 'E', (size_t)(end - f))) {
                        return -EINVAL;
                } else {
                        frac = (uint64_t)(d * 0x1p64);
                }
        }
        mul = suffix_mul(*end);
        if (mul) {
                *hex_suffix = hex;
                end++;
        } else {
                mul = 1;
        }
        if (*end)
                return -EINVAL;
        if (mul == 1) {
                if (frac)
                        return -EINVAL; /* a fraction needs a scaling suffix */
        } else {
                unsigned __int128 t = (unsigned __int128)v * mul;
                unsigned __int128 f = (unsigned __int128)frac * mul;

                t += f >> 64;
                t += ((uint64_t)f) >> 63; /* round half up */
                if (t >> 64)
                        return -ERANGE;
                v = (uint64_t)t;
        }
        *val = v;
        return 0;
}
