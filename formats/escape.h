/*
 * Making untrusted names safe to print, once, for every report format.
 *
 * File names are bytes chosen by whoever wrote the store: they can hold a
 * newline (which would forge a line of a table, a CSV record or a metric),
 * terminal escapes, bidirectional overrides, or bytes that are not UTF-8.
 * ia_escape_name() is the one function that turns such a name into a
 * printable single line; every format prints names only through it, then
 * applies its own syntax quoting (CSV, HTML, Prometheus label) on top.
 *
 * The escaped form: printable ASCII as is, except the backslash, doubled;
 * \n \t \r for those controls, \xHH for other control bytes, DEL and every
 * byte that is not part of valid UTF-8; valid UTF-8 as is, except C1
 * controls, line/paragraph separators, bidi controls and the BOM, which
 * become \uXXXX.  The mapping is injective: a name can be read back.
 */
#ifndef IA_ESCAPE_H
#define IA_ESCAPE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rbuf.h"

/* Append the escaped form of the n bytes at s. */
void ia_escape_name(struct ia_rbuf *b, const char *s, size_t n);
/* The escaped form as a new string (NULL on ENOMEM). */
char *ia_escape_dup(const char *s, size_t n);
/*
 * The escaped form of a file's path whose first `plain` bytes name a file of
 * the file system (all of them, or an archive member's outermost archive):
 * there a '!' is written \x21 too, so that no file name reads like the
 * ARCHIVE!MEMBER name of a member and two files never print alike.
 */
void ia_escape_path(struct ia_rbuf *b, const char *s, size_t n, size_t plain);
char *ia_escape_path_dup(const char *s, size_t n, size_t plain);
/* Does s need no escaping at all (ia_escape_name would copy it unchanged)? */
bool ia_escape_is_clean(const char *s, size_t n);

/* Is [s, s+n) valid UTF-8 without NUL bytes? */
bool ia_utf8_ok(const char *s, size_t n);

/* Format-level quoting of an already escaped (single-line, printable) string. */
void ia_csv_field(struct ia_rbuf *b, const char *s);  /* RFC 4180: quoted when needed */
void ia_html_text(struct ia_rbuf *b, const char *s);  /* & < > " ' as entities */
void ia_prom_label(struct ia_rbuf *b, const char *s); /* \\ \" \n as the text format wants */

/*
 * A diagnostic on stderr: "PREFIX: " and the message formatted from fmt,
 * escaped as names are (ia_escape_name), then a newline.  Messages hold
 * names (of files, of backing files, of descriptor lines) that must not
 * forge a line or reach the terminal as escapes: every message of map, scan
 * and report goes out through this.  The fixed text of a message is
 * printable ASCII without backslashes, which escaping leaves as it is.
 */
void ia_diag(const char *prefix, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with a va_list. */
void ia_vdiag(const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Sizes in IEC units: "0 B", "512 B", "1.5 KiB", "20.0 GiB" (one decimal). */
void ia_iec(char *buf, size_t n, uint64_t v);

#endif
