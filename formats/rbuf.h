/*
 * A growable byte buffer for documents and their parts.
 *
 * A report goes through one (struct ia_sink, out.h) into a temporary file
 * that becomes the output only when complete, so that an error never leaves
 * half a report on stdout or in the -o file (STYLE 9).
 * Allocation failure is sticky: the buffer remembers it, further appends are
 * dropped, and the caller checks once at the end.
 */
#ifndef IA_RBUF_H
#define IA_RBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ia_rbuf {
        char *buf; /* NUL-terminated when not NULL */
        size_t len, cap;
        bool nomem;
};

void ia_rbuf_init(struct ia_rbuf *b);
void ia_rbuf_release(struct ia_rbuf *b);
/* Hand the buffer over (NUL-terminated, or NULL) and reset b. */
char *ia_rbuf_detach(struct ia_rbuf *b, size_t *len);
void ia_rbuf_reset(struct ia_rbuf *b);

void ia_rbuf_add(struct ia_rbuf *b, const void *p, size_t n);
void ia_rbuf_adds(struct ia_rbuf *b, const char *s);
void ia_rbuf_addc(struct ia_rbuf *b, char c);
void ia_rbuf_addf(struct ia_rbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* n copies of c */
void ia_rbuf_pad(struct ia_rbuf *b, char c, size_t n);

#endif
