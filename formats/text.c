/*
 * UTF-16 and Windows path helpers: see text.h.
 */
#include "text.h"

#include <string.h>

#include "bytes.h"
#include "banned.h"

/* Append code point cp as UTF-8 to out (capacity cap, keeping room for a NUL). */
static bool put_utf8(char *out, size_t cap, size_t *n, uint32_t cp)
{
        uint8_t b[4];
        size_t k;

        if (cp < 0x80) {
                b[0] = (uint8_t)cp;
                k = 1;
        } else if (cp < 0x800) {
                b[0] = (uint8_t)(0xc0 | cp >> 6);
                b[1] = (uint8_t)(0x80 | (cp & 0x3f));
                k = 2;
        } else if (cp < 0x10000) {
                b[0] = (uint8_t)(0xe0 | cp >> 12);
                b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
                b[2] = (uint8_t)(0x80 | (cp & 0x3f));
                k = 3;
        } else {
                b[0] = (uint8_t)(0xf0 | cp >> 18);
                b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
                b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
                b[3] = (uint8_t)(0x80 | (cp & 0x3f));
                k = 4;
        }
        if (cap - *n < k + 1)
                return false;
        memcpy(out + *n, b, k);
        *n += k;
        return true;
}

long ia_utf16_to_utf8(const uint8_t *in, size_t len, bool big_endian, char *out, size_t cap)
{
        size_t n = 0;

        if (cap == 0)
                return -1;
        for (size_t i = 0; i + 1 < len; i += 2) {
                uint32_t cp = big_endian ? ia_be16(in + i) : ia_le16(in + i);

                if (cp == 0)
                        break;
                if (cp >= 0xd800 && cp < 0xdc00 && i + 3 < len) {
                        uint32_t lo = big_endian ? ia_be16(in + i + 2) : ia_le16(in + i + 2);

                        if (lo >= 0xdc00 && lo < 0xe000) {
                                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                i += 2;
                        } else {
                                cp = 0xfffd;
                        }
                } else if (cp >= 0xd800 && cp < 0xe000) {
                        cp = 0xfffd;
                }
                if (!put_utf8(out, cap, &n, cp))
                        return -1;
        }
        out[n] = '\0';
        return (long)n;
}

size_t ia_windows_relative_path(char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] == '\\')
                        s[i] = '/';
        while (n >= 2 && s[0] == '.' && s[1] == '/') {
                memmove(s, s + 2, n - 2);
                n -= 2;
                s[n] = '\0';
        }
        return n;
}
