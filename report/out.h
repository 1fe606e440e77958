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

#include "rbuf.h"

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

/*
 * A report written as it is made: appended to b, which goes to fd as soon
 * as it holds IA_OUT_BUFSZ bytes or more (ia_sink_spill), so a report never
 * holds its whole text.  A failed write or allocation is sticky and
 * reported by ia_sink_flush.
 */
struct ia_sink {
        struct ia_rbuf b;
        int fd;
        int errnum;
        bool failed;
};

void ia_sink_init(struct ia_sink *s, int fd);
void ia_sink_spill(struct ia_sink *s);
/* Write everything; 0, or -1 with errno set (ENOMEM after an allocation failure). */
int ia_sink_flush(struct ia_sink *s);
void ia_sink_release(struct ia_sink *s);
/* Append the whole of file fd (read from its start) to s. */
int ia_sink_copy_fd(struct ia_sink *s, int fd);

/*
 * Where a report goes, whole or not at all: -o FILE through a temporary file
 * beside it, fsync'ed and renamed over FILE by commit (a device or a FIFO is
 * written in place); standard output (path NULL or "-") through an unlinked
 * temporary file in /tmp, copied to it by commit, so an error never leaves
 * half a report on either.
 */
struct ia_outfile {
        int fd;
        char *tmp;        /* the temporary file beside path, or NULL */
        const char *path; /* NULL: standard output */
};

int ia_outfile_open(struct ia_outfile *f, const char *path);
int ia_outfile_commit(struct ia_outfile *f);
void ia_outfile_abort(struct ia_outfile *f);
/* An unlinked temporary file in /tmp (O_TMPFILE or tmpfile), read-write; -1 and errno. */
int ia_tmpfile(void);

#endif
