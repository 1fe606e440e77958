/*
 * Filling struct ia_error: see error.h.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "banned.h"

static void vset(struct ia_error *err, enum ia_errcat cat, int errnum, const char *fmt, va_list ap)
{
        err->cat = cat;
        err->errnum = errnum;
        err->reason = NULL;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int ia_error_set(struct ia_error *err, enum ia_errcat cat, const char *fmt, ...)
{
        va_list ap;

        if (!err)
                return -1;
        va_start(ap, fmt);
        vset(err, cat, 0, fmt, ap);
        va_end(ap);
        return -1;
}

int ia_error_errno(struct ia_error *err, enum ia_errcat cat, int errnum, const char *fmt, ...)
{
        va_list ap;
        size_t n;

        if (!err)
                return -1;
        va_start(ap, fmt);
        vset(err, cat, errnum, fmt, ap);
        va_end(ap);
        n = strlen(err->msg);
        if (n < sizeof(err->msg))
                snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(errnum));
        return -1;
}

void ia_error_prefix(struct ia_error *err, const char *fmt, ...)
{
        char old[IA_ERROR_MSG_MAX];
        va_list ap;
        int n;

        if (!err)
                return;
        memcpy(old, err->msg, sizeof(old));
        va_start(ap, fmt);
        n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n + 2 >= sizeof(err->msg))
                return;
        err->msg[n] = ':';
        err->msg[n + 1] = ' ';
        memcpy(err->msg + n + 2, old, sizeof(err->msg) - (size_t)n - 2);
        err->msg[sizeof(err->msg) - 1] = '\0';
}

void ia_error_clear(struct ia_error *err)
{
        if (!err)
                return;
        err->cat = IA_ERR_NONE;
        err->errnum = 0;
        err->reason = NULL;
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
