/*
 * A small buffered writer for result streams, with fast number formatting.
 *
 * Map output can run to millions of lines, so numbers are formatted by hand
 * rather than through printf, and bytes reach the file descriptor in large
 * writes.  Like stdio, what was written before an error is still delivered
 * when the stream is flushed (qemu-img's partial output is reproduced).
 */
#ifndef IA_OUT_H
#define IA_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IA_OUT_BUFSZ (64 * 1024)

struct ia_out {
        int fd;
        size_t len;
        bool failed; /* a write failed (EPIPE, ENOSPC, ...): the rest is dropped */
        int errnum;
        char buf[IA_OUT_BUFSZ];
};

void ia_out_init(struct ia_out *o, int fd);
void ia_out_write(struct ia_out *o, const void *p, size_t n);
void ia_out_str(struct ia_out *o, const char *s);
void ia_out_char(struct ia_out *o, char c);
void ia_out_u64(struct ia_out *o, uint64_t v);
/* v in decimal at p (at most IA_U64_DEC bytes, no NUL); returns the end. */
#define IA_U64_DEC 20
char *ia_put_u64(char *p, uint64_t v);
/* printf("%#-Ns") of v in hex: "0x..." (bare "0" for zero), left-justified in width. */
void ia_out_hex_padded(struct ia_out *o, uint64_t v, int width);
/* Flush; 0, or -1 with errno set if any write failed. */
int ia_out_flush(struct ia_out *o);

/* Write all n bytes (on EINTR, again); 0, or -1 with errno set. */
int ia_write_all(int fd, const char *p, size_t n);
/*
 * A whole document to path, atomically: a temporary file beside it, fsync,
 * rename (mode 0666 less the umask).  A device or a FIFO (-o /dev/null) is
 * written into, never renamed over.  0, or -1 with errno set.
 */
int ia_write_file(const char *path, const char *buf, size_t len);

#endif
