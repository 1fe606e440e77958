/*
 * Filling struct ia_error: see error.h.
 */
#include "error.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "banned.h"

/* ---- the table of long messages: lock-free, append-only ---- */

struct kept {
        struct kept *next;
        uint64_t hash;
        size_t len;
        char text[];
};

#define KEPT_BUCKETS 1024u

static _Atomic(struct kept *) kept_table[KEPT_BUCKETS];

static uint64_t fnv1a(const char *s, size_t len)
{
        uint64_t h = 0xcbf29ce484222325ull;

        for (size_t i = 0; i < len; i++) {
                h ^= (unsigned char)s[i];
                h *= 0x100000001b3ull;
        }
        return h;
}

const char *ia_error_keep(const char *s, size_t len)
{
        uint64_t h = fnv1a(s, len);
        _Atomic(struct kept *) *slot = &kept_table[h % KEPT_BUCKETS];
        struct kept *head = atomic_load(slot), *k;

        for (k = head; k; k = k->next)
                if (k->hash == h && k->len == len && memcmp(k->text, s, len) == 0)
                        return k->text;
        k = malloc(sizeof(*k) + len + 1);
        if (!k)
                return NULL;
        k->hash = h;
        k->len = len;
        memcpy(k->text, s, len);
        k->text[len] = '\0';
        for (;;) {
                struct kept *seen = head;

                k->next = head;
                if (atomic_compare_exchange_weak(slot, &head, k))
                        return k->text;
                /* another thread pushed first: is the same text among the new ones? */
                for (struct kept *o = head; o && o != seen; o = o->next)
                        if (o->hash == h && o->len == len && memcmp(o->text, s, len) == 0) {
                                free(k);
                                return o->text;
                        }
        }
}

/* Make text (len bytes) the message of err: inline when it fits, else kept whole. */
static void put_msg(struct ia_error *err, const char *text, size_t len)
{
        size_t in = len < sizeof(err->msg) ? len : sizeof(err->msg) - 1;

        if (text != err->msg)
                memmove(err->msg, text, in);
        err->msg[in] = '\0';
        err->full = len >= sizeof(err->msg) ? ia_error_keep(text, len) : NULL;
}

/* Format into a malloc'd string (*len its length), or NULL. */
static char *vformat(size_t *len, const char *fmt, va_list ap0)
{
        va_list ap;
        char *out;
        int n;

        va_copy(ap, ap0);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return NULL;
        out = malloc((size_t)n + 1);
        if (!out)
                return NULL;
        va_copy(ap, ap0);
        vsnprintf(out, (size_t)n + 1, fmt, ap);
        va_end(ap);
        *len = (size_t)n;
        return out;
}

static void vset(struct ia_error *err, enum ia_errcat cat, int errnum, const char *suffix,
                 const char *fmt, va_list ap0)
{
        va_list ap;
        int n;

        err->cat = cat;
        err->errnum = errnum;
        err->reason = NULL;
        err->full = NULL;
        va_copy(ap, ap0);
        n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t)n + strlen(suffix) < sizeof(err->msg)) {
                memcpy(err->msg + n, suffix, strlen(suffix) + 1);
        } else {
                size_t len, sn = strlen(suffix);
                char *whole = vformat(&len, fmt, ap0), *joined;

                if (!whole)
                        return; /* out of memory: the message stays cut */
                joined = realloc(whole, len + sn + 1);
                if (!joined) {
                        free(whole);
                        return;
                }
                memcpy(joined + len, suffix, sn + 1);
                put_msg(err, joined, len + sn);
                free(joined);
        }
}

const char *ia_error_msg(const struct ia_error *err)
{
        if (!err)
                return "";
        return err->full ? err->full : err->msg;
}

int ia_error_set(struct ia_error *err, enum ia_errcat cat, const char *fmt, ...)
{
        va_list ap;

        if (!err)
                return -1;
        va_start(ap, fmt);
        vset(err, cat, 0, "", fmt, ap);
        va_end(ap);
        return -1;
}

int ia_error_errno(struct ia_error *err, enum ia_errcat cat, int errnum, const char *fmt, ...)
{
        char suffix[256];
        va_list ap;

        if (!err)
                return -1;
        snprintf(suffix, sizeof(suffix), ": %s", strerror(errnum));
        va_start(ap, fmt);
        vset(err, cat, errnum, suffix, fmt, ap);
        va_end(ap);
        return -1;
}

void ia_error_prefix(struct ia_error *err, const char *fmt, ...)
{
        const char *old;
        size_t pn, on;
        char *prefix, *joined;
        va_list ap;

        if (!err)
                return;
        va_start(ap, fmt);
        prefix = vformat(&pn, fmt, ap);
        va_end(ap);
        if (!prefix)
                return;
        old = ia_error_msg(err);
        on = strlen(old);
        joined = malloc(pn + 2 + on + 1);
        if (joined) {
                memcpy(joined, prefix, pn);
                memcpy(joined + pn, ": ", 2);
                memcpy(joined + pn + 2, old, on + 1);
                put_msg(err, joined, pn + 2 + on);
                free(joined);
        }
        free(prefix);
}

void ia_error_clear(struct ia_error *err)
{
        if (!err)
                return;
        err->cat = IA_ERR_NONE;
        err->errnum = 0;
        err->reason = NULL;
        err->full = NULL;
        err->msg[0] = '\0';
}

const char *ia_errcat_name(enum ia_errcat cat)
{
        switch (cat) {
        case IA_ERR_NONE:
                return "ok";
        case IA_ERR_IO:
                return "io";
        case IA_ERR_TRUNCATED:
                return "truncated";
        case IA_ERR_CORRUPT:
                return "corrupt";
        case IA_ERR_UNSUPPORTED:
                return "unsupported";
        case IA_ERR_LIMIT:
                return "limit";
        case IA_ERR_MISSING:
                return "missing";
        case IA_ERR_REFUSED:
                return "refused";
        case IA_ERR_NOMEM:
                return "nomem";
        case IA_ERR_INTERNAL:
                return "internal";
        case IA_ERR_USAGE:
                return "usage";
        }
        return "internal";
}
