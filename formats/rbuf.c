/*
 * The growable document buffer of the reports: see rbuf.h.
 */
#include "rbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "banned.h"

void ia_rbuf_init(struct ia_rbuf *b)
{
        b->buf = NULL;
        b->len = 0;
        b->cap = 0;
        b->nomem = false;
}

void ia_rbuf_release(struct ia_rbuf *b)
{
        free(b->buf);
        ia_rbuf_init(b);
}

void ia_rbuf_reset(struct ia_rbuf *b)
{
        b->len = 0;
        if (b->buf)
                b->buf[0] = '\0';
}

char *ia_rbuf_detach(struct ia_rbuf *b, size_t *len)
{
        char *p = b->buf;

        if (len)
                *len = b->len;
        ia_rbuf_init(b);
        return p;
}

static bool grow(struct ia_rbuf *b, size_t extra)
{
        size_t need, cap;
        char *p;

        if (b->nomem)
                return false;
        if (extra > SIZE_MAX - b->len - 1) {
                b->nomem = true;
                return false;
        }
        need = b->len + extra + 1;
        if (need <= b->cap)
                return true;
        cap = b->cap ? b->cap : 256;
        while (cap < need)
                cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        p = realloc(b->buf, cap);
        if (!p) {
                b->nomem = true;
                return false;
        }
        b->buf = p;
        b->cap = cap;
        return true;
}

void ia_rbuf_add(struct ia_rbuf *b, const void *p, size_t n)
{
        if (!grow(b, n))
                return;
        memcpy(b->buf + b->len, p, n);
        b->len += n;
        b->buf[b->len] = '\0';
}

void ia_rbuf_adds(struct ia_rbuf *b, const char *s)
{
        ia_rbuf_add(b, s, strlen(s));
}

void ia_rbuf_addc(struct ia_rbuf *b, char c)
{
        ia_rbuf_add(b, &c, 1);
}

void ia_rbuf_pad(struct ia_rbuf *b, char c, size_t n)
{
        if (!grow(b, n))
                return;
        memset(b->buf + b->len, c, n);
        b->len += n;
        b->buf[b->len] = '\0';
}

void ia_rbuf_addf(struct ia_rbuf *b, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0 || !grow(b, (size_t)n))
                return;
        va_start(ap, fmt);
        vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
}
