/*
 * The one escaping function of the reports and the per-format quoting that
 * goes on top of it: see escape.h for the rules and why they exist.
 */
#include "escape.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "banned.h"

/* Length of the valid UTF-8 sequence at s (1-4) with its code point, or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
        unsigned c = s[0];
        size_t k;
        uint32_t v;

        if (c >= 0xc2 && c <= 0xdf) {
                k = 1;
                v = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
                k = 2;
                v = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
                k = 3;
                v = c & 0x07;
        } else {
                return 0;
        }
        if (n <= k)
                return 0;
        for (size_t j = 1; j <= k; j++) {
                if ((s[j] & 0xc0) != 0x80)
                        return 0;
                v = (v << 6) | (s[j] & 0x3f);
        }
        if ((k == 2 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) ||
            (k == 3 && (v < 0x10000 || v > 0x10ffff)))
                return 0;
        *cp = v;
        return k + 1;
}

/* Code points that are valid but must not reach a terminal or a page as is. */
static bool cp_unsafe(uint32_t cp)
{
        /* the bidi controls are those of Unicode's Bidi_Control property */
        return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0x061c ||
               cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
               (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

void ia_escape_name(struct ia_rbuf *b, const char *str, size_t n)
{
        const unsigned char *s = (const unsigned char *)str;
        size_t i = 0;

        while (i < n) {
                unsigned c = s[i];
                uint32_t cp;
                size_t k;

                if (c >= 0x20 && c < 0x7f) {
                        if (c == '\\')
                                ia_rbuf_addc(b, '\\');
                        ia_rbuf_addc(b, (char)c);
                        i++;
                        continue;
                }
                if (c == '\n' || c == '\t' || c == '\r') {
                        ia_rbuf_addc(b, '\\');
                        ia_rbuf_addc(b, c == '\n' ? 'n' : c == '\t' ? 't' : 'r');
                        i++;
                        continue;
                }
                if (c < 0x80 || (k = utf8_seq(s + i, n - i, &cp)) == 0) {
                        ia_rbuf_addf(b, "\\x%02x", c);
                        i++;
                        continue;
                }
                if (cp_unsafe(cp))
                        ia_rbuf_addf(b, "\\u%04" PRIx32, cp);
                else
                        ia_rbuf_add(b, s + i, k);
                i += k;
        }
}

void ia_vdiag(const char *prefix, const char *fmt, va_list ap0)
{
        char small[512], *msg = small;
        struct ia_rbuf b;
        va_list ap;
        int n;

        va_copy(ap, ap0);
        n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0) {
                n = 0;
                small[0] = '\0';
        } else if ((size_t)n >= sizeof(small)) {
                msg = malloc((size_t)n + 1);
                if (msg) {
                        va_copy(ap, ap0);
                        vsnprintf(msg, (size_t)n + 1, fmt, ap);
                        va_end(ap);
                } else {
                        msg = small; /* cut, but still escaped */
                        n = (int)sizeof(small) - 1;
                }
        }
        ia_rbuf_init(&b);
        ia_rbuf_adds(&b, prefix);
        ia_rbuf_adds(&b, ": ");
        ia_escape_name(&b, msg, (size_t)n);
        ia_rbuf_addc(&b, '\n');
        if (b.nomem)
                fprintf(stderr, "%s: out of memory\n", prefix);
        else
                fwrite(b.buf, 1, b.len, stderr);
        ia_rbuf_release(&b);
        if (msg != small)
                free(msg);
}

void ia_diag(const char *prefix, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        ia_vdiag(prefix, fmt, ap);
        va_end(ap);
}

/*
 * The escaped name in b as a string of its own (b is left empty), or NULL
 * on ENOMEM.  An empty name still gets a buffer.
 */
static char *escaped_string(struct ia_rbuf *b)
{
        size_t len;
        char *out, *fit;

        ia_rbuf_addc(b, '\0');
        if (b->nomem) {
                ia_rbuf_release(b);
                return NULL;
        }
        /* the buffer grew by doubling from 256 bytes: keep only the name (a report holds
         * several names per image) */
        out = ia_rbuf_detach(b, &len);
        fit = realloc(out, len + 1);
        return fit ? fit : out;
}

char *ia_escape_dup(const char *s, size_t n)
{
        struct ia_rbuf b;

        ia_rbuf_init(&b);
        ia_escape_name(&b, s, n);
        return escaped_string(&b);
}

void ia_escape_path(struct ia_rbuf *b, const char *s, size_t n, size_t plain)
{
        size_t i = 0;

        if (plain > n)
                plain = n;
        while (i < plain) {
                const char *bang = memchr(s + i, '!', plain - i);
                size_t k = bang ? (size_t)(bang - (s + i)) : plain - i;

                ia_escape_name(b, s + i, k); /* '!' is ASCII: never inside a UTF-8 sequence */
                i += k;
                if (bang) {
                        ia_rbuf_adds(b, "\\x21");
                        i++;
                }
        }
        ia_escape_name(b, s + plain, n - plain);
}

char *ia_escape_path_dup(const char *s, size_t n, size_t plain)
{
        struct ia_rbuf b;

        ia_rbuf_init(&b);
        ia_escape_path(&b, s, n, plain);
        return escaped_string(&b);
}

bool ia_escape_is_clean(const char *str, size_t n)
{
        const unsigned char *s = (const unsigned char *)str;
        size_t i = 0;

        while (i < n) {
                uint32_t cp;
                size_t k;

                if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
                        i++;
                        continue;
                }
                if (s[i] < 0x80 || (k = utf8_seq(s + i, n - i, &cp)) == 0 || cp_unsafe(cp))
                        return false;
                i += k;
        }
        return true;
}

bool ia_utf8_ok(const char *str, size_t n)
{
        const unsigned char *s = (const unsigned char *)str;
        size_t i = 0;

        while (i < n) {
                uint32_t cp;
                size_t k;

                if (s[i] == 0)
                        return false;
                if (s[i] < 0x80) {
                        i++;
                        continue;
                }
                k = utf8_seq(s + i, n - i, &cp);
                if (k == 0)
                        return false;
                i += k;
        }
        return true;
}

void ia_csv_field(struct ia_rbuf *b, const char *s)
{
        bool quote = false;

        for (const char *p = s; *p; p++)
                if (*p == ',' || *p == '"' || *p == '\n' || *p == '\r')
                        quote = true;
        if (!quote && (*s == ' ' || (*s && s[strlen(s) - 1] == ' ')))
                quote = true;
        if (!quote) {
                ia_rbuf_adds(b, s);
                return;
        }
        ia_rbuf_addc(b, '"');
        for (const char *p = s; *p; p++) {
                if (*p == '"')
                        ia_rbuf_addc(b, '"');
                ia_rbuf_addc(b, *p);
        }
        ia_rbuf_addc(b, '"');
}

void ia_html_text(struct ia_rbuf *b, const char *s)
{
        for (const char *p = s; *p; p++) {
                switch (*p) {
                case '&':
                        ia_rbuf_adds(b, "&amp;");
                        break;
                case '<':
                        ia_rbuf_adds(b, "&lt;");
                        break;
                case '>':
                        ia_rbuf_adds(b, "&gt;");
                        break;
                case '"':
                        ia_rbuf_adds(b, "&quot;");
                        break;
                case '\'':
                        ia_rbuf_adds(b, "&#39;");
                        break;
                default:
                        ia_rbuf_addc(b, *p);
                }
        }
}

void ia_prom_label(struct ia_rbuf *b, const char *s)
{
        for (const char *p = s; *p; p++) {
                if (*p == '\\')
                        ia_rbuf_adds(b, "\\\\");
                else if (*p == '"')
                        ia_rbuf_adds(b, "\\\"");
                else if (*p == '\n')
                        ia_rbuf_adds(b, "\\n");
                else
                        ia_rbuf_addc(b, *p);
        }
}

void ia_iec(char *buf, size_t n, uint64_t v)
{
        static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        double d = (double)v;
        int u = -1;

        if (v < 1024) {
                snprintf(buf, n, "%" PRIu64 " B", v);
                return;
        }
        while (d >= 1024.0 && u < 5) {
                d /= 1024.0;
                u++;
        }
        /* 1023.96 KiB would print as "1024.0 KiB": move to the next unit instead */
        if (d >= 1023.95 && u < 5) {
                d /= 1024.0;
                u++;
        }
        snprintf(buf, n, "%.1f %s", d, units[u]);
}
