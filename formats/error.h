/*
 * Errors of the engine.
 *
 * Every engine call that can fail returns 0 (or a pointer) on success and -1
 * (or NULL) on failure, and fills the caller's struct ia_error.  The category
 * says what kind of failure it was, so that the scanner can store it and main()
 * can pick an exit status; the message says it in words, for a person:
 * lowercase, what failed first, the subject quoted, the value and the limit.
 *
 * On success an error struct is left alone.  ia_error_set() returns -1 so that
 * "return ia_error_set(err, ...);" is one line.
 */
#ifndef IA_ERROR_H
#define IA_ERROR_H

#include <stddef.h>

enum ia_errcat {
        IA_ERR_NONE = 0,
        IA_ERR_IO,          /* the operating system failed a read, open or seek */
        IA_ERR_TRUNCATED,   /* the file ends before a structure it declares */
        IA_ERR_CORRUPT,     /* a structure contradicts itself or the format */
        IA_ERR_UNSUPPORTED, /* valid, but a feature or version we do not map */
        IA_ERR_LIMIT,       /* a value is beyond one of our caps */
        IA_ERR_MISSING,     /* a referenced file does not exist */
        IA_ERR_REFUSED,     /* a reference the policy does not allow */
        IA_ERR_NOMEM,       /* an allocation failed */
        IA_ERR_INTERNAL,    /* a bug in imgaudit */
        IA_ERR_USAGE,       /* the caller asked for something meaningless */
};

/*
 * Messages are never cut.  A message that fits (most do) lives in msg; a
 * longer one (a name from a deep directory tree, several such names) is
 * kept whole in an append-only table of the process (one copy of each
 * distinct text, never freed, so a struct ia_error stays a plain value that
 * may be copied and dropped freely) and full points at it, while msg holds
 * its first IA_ERROR_MSG_MAX - 1 bytes.  Read messages with ia_error_msg().
 */
#define IA_ERROR_MSG_MAX 512

struct ia_error {
        enum ia_errcat cat;
        int errnum;         /* errno where the cause was a system call, else 0 */
        const char *reason; /* optional finer code for links: "loop", "outside-roots", ... */
        const char *full;   /* the whole message when it is longer than msg, else NULL */
        char msg[IA_ERROR_MSG_MAX];
};

/* The whole message of err ("" for none). */
const char *ia_error_msg(const struct ia_error *err);

/*
 * A copy of the text of s (len bytes) that lives as long as the process, from
 * the table above: the same pointer for the same text.  NULL only when out of
 * memory.
 */
const char *ia_error_keep(const char *s, size_t len);

/* Fill *err (if not NULL) and return -1. */
int ia_error_set(struct ia_error *err, enum ia_errcat cat, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like ia_error_set(), with errnum recorded and ": strerror(errnum)" appended. */
int ia_error_errno(struct ia_error *err, enum ia_errcat cat, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Put "<formatted>: " in front of the message already in *err. */
void ia_error_prefix(struct ia_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clear *err back to IA_ERR_NONE. */
void ia_error_clear(struct ia_error *err);

/* A short stable name of the category ("io", "corrupt", ...), as stored in the database. */
const char *ia_errcat_name(enum ia_errcat cat);

#endif
