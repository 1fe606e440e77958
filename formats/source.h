/*
 * Byte sources: where the engine reads image bytes from.
 *
 * A source is a read-only, pread-style view of bytes: a plain file, a window
 * (a slice of another source: an uncompressed tar member), a memory buffer
 * (tests and fuzzers), or a spool (a decompressed archive member, owned by the
 * scanner).  Sources never mmap: a file truncated under us must give a read
 * error, not a SIGBUS.
 *
 * Drivers read only through ia_read(), which bounds-checks, loops on short
 * reads and never hands back partial data.  Sources are reference counted and
 * may be shared between threads (pread has no file position); everything
 * per-reader, such as the hole cache, lives in struct ia_file (image.h).
 */
#ifndef IA_SOURCE_H
#define IA_SOURCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum ia_seek {
        IA_SEEK_DATA, /* like lseek(SEEK_DATA) */
        IA_SEEK_HOLE, /* like lseek(SEEK_HOLE) */
};

struct ia_source;

struct ia_source_ops {
        /*
         * Read up to len bytes at off.  Returns the number read, 0 only at or
         * beyond the end, or -1 with *err filled.  Short reads are allowed.
         */
        int64_t (*pread)(struct ia_source *src, void *buf, size_t len, uint64_t off,
                         struct ia_error *err);
        /*
         * Optional.  lseek(SEEK_DATA/SEEK_HOLE) semantics: 0 and *res, or -1
         * and *errnum (ENXIO: no data at or after off).  NULL means the source
         * knows nothing of holes, which callers treat as "all data".
         */
        int (*seek)(struct ia_source *src, uint64_t off, enum ia_seek what, uint64_t *res,
                    int *errnum);
        /* Release what the backend holds; the struct itself included. */
        void (*destroy)(struct ia_source *src);
        /*
         * Optional.  Like pread, but only from memory and never waiting: the
         * count (short at the end only), or IA_NOT_IN_MEMORY when the bytes
         * are not all in memory yet, their reading started in the background
         * (a later pread finds them there, or waits less), or -1 with *err.
         * NULL: the source is read by pread (it is in memory, or cannot say).
         */
        int64_t (*pread_nowait)(struct ia_source *src, void *buf, size_t len, uint64_t off,
                                struct ia_error *err);
};

#define IA_NOT_IN_MEMORY (-2)

struct ia_source {
        const struct ia_source_ops *ops;
        uint64_t size;      /* bytes; fixed for the life of the source */
        uint64_t allocated; /* bytes the backing store occupies (st_blocks * 512) */
        uint64_t dev, ino;  /* identity for loop detection; 0, 0 when none */
        atomic_uint refs;
};

/* Initialise the common part of a new source (refs = 1). */
void ia_source_init(struct ia_source *src, const struct ia_source_ops *ops, uint64_t size);

struct ia_source *ia_source_ref(struct ia_source *src);
void ia_source_unref(struct ia_source *src); /* NULL-safe */

/*
 * Read exactly len bytes at off.  Reading past the end of the source is an
 * IA_ERR_TRUNCATED error naming what was read ("what", e.g. "L2 table").
 */
int ia_read(struct ia_source *src, void *buf, size_t len, uint64_t off, const char *what,
            struct ia_error *err);

/* Read up to len bytes at off (fewer at the end); the count, or -1. */
int64_t ia_read_upto(struct ia_source *src, void *buf, size_t len, uint64_t off,
                     struct ia_error *err);

/*
 * Read up to len bytes at off if they are in memory now (ia_read_upto's
 * result), else start reading them and return IA_NOT_IN_MEMORY without
 * waiting: the scan asks each walked file's first bytes this way and
 * probes the files that had to wait later, so that many small reads are
 * in flight at once on a cold cache.  A source without the method is read
 * by ia_read_upto().
 */
int64_t ia_read_nowait(struct ia_source *src, void *buf, size_t len, uint64_t off,
                       struct ia_error *err);

/*
 * openat(2) for reading a file the scan audits, flags | O_NOATIME where the
 * process may (root, or the file's owner): reading an image must not write
 * its inode's access time (relatime still does, once a day).  Refused once
 * (EPERM, and the open without it succeeds), it is not asked for again by
 * this process.
 */
int ia_open_noatime(int dirfd, const char *name, int flags);

/*
 * A file source's read: pread(2) of fd at `at`, retried on EINTR, at most
 * INT_MAX bytes; the count (0 at the end), or -1 with err saying "WHAT of
 * LEN bytes at offset OFF failed", OFF being the offset the source was asked
 * for (a window's own offset, not fd's).
 */
int64_t ia_fd_pread(int fd, void *buf, size_t len, uint64_t at, const char *what, uint64_t off,
                    struct ia_error *err);

/* Seek through the source's method; -1 with *errnum = EOPNOTSUPP when it has none. */
int ia_source_seek(struct ia_source *src, uint64_t off, enum ia_seek what, uint64_t *res,
                   int *errnum);

/*
 * Plain files.
 *
 * ia_source_open_file() opens path (relative to dirfd, or AT_FDCWD) without
 * ever opening anything that is not a regular file: the name is first opened
 * with O_PATH, checked with fstat, and only then reopened for reading, so a
 * FIFO or a device is never opened for I/O (no hang, no side effect).  With
 * IA_OPEN_NOFOLLOW a final symlink is refused.  Files are opened read-only,
 * close-on-exec, non-blocking, and never locked.
 */
#define IA_OPEN_NOFOLLOW 0x1u

struct ia_source *ia_source_open_file(int dirfd, const char *path, unsigned flags,
                                      struct ia_error *err);

/*
 * Like ia_source_open_file(), but path (relative) must resolve beneath the
 * directory rootfd, symlinks included (openat2 RESOLVE_BENEATH; on kernels
 * without it, and for names longer than the kernel takes in one call, the
 * same walk one component at a time: ia_open_beneath_walk() in path.h): a
 * name or a link that leaves it is refused with reason "outside-roots".
 * name (or path when NULL) is what messages call the file.
 */
struct ia_source *ia_source_open_beneath(int rootfd, const char *path, const char *name,
                                         struct ia_error *err);

/* The fallback of ia_source_open_beneath() for kernels without openat2, exposed
 * for its tests: an O_PATH descriptor, or -1 with errno (EXDEV, ELOOP, ...). */
int ia_open_beneath_by_components(int rootfd, const char *path);

/* A source over an fd already open for reading (the source owns it). */
struct ia_source *ia_source_from_fd(int fd, const char *name, struct ia_error *err);
/* The same, also giving the fstat(2) it took (st may be NULL). */
struct stat;
struct ia_source *ia_source_from_fd_stat(int fd, const char *name, struct stat *st,
                                         struct ia_error *err);

/*
 * A source over a block device already open read-only (never exclusively),
 * of size bytes (BLKGETSIZE64, which the caller asked); allocated is the
 * size.  Only `imgaudit scan --devices` makes one.
 */
struct ia_source *ia_source_from_blockdev(int fd, const char *name, uint64_t size,
                                          struct ia_error *err);

/* A window [off, off+len) of base (which gets a reference). */
struct ia_source *ia_source_window(struct ia_source *base, uint64_t off, uint64_t len,
                                   struct ia_error *err);

/*
 * A memory buffer.  With copy false the caller keeps buf alive and unchanged
 * for the life of the source.  Holes: none (all data).
 */
struct ia_source *ia_source_memory(const void *buf, size_t len, bool copy, struct ia_error *err);

/* A memory source that takes over buf (malloc'd; freed with the source). */
struct ia_source *ia_source_memory_adopt(void *buf, size_t len, struct ia_error *err);

/*
 * Fault injection for tests: a wrapper over base whose preads count into
 * *counter (shared by every wrapper given the same counter, so that "the Nth
 * read" can span all the files of a chain); once the count reaches fail_at
 * (1-based) that read and every later one fail with an I/O error.  fail_at 0
 * never fails.  counter may be NULL (a private one is used).
 */
struct ia_source *ia_source_faulty(struct ia_source *base, uint64_t fail_at, uint64_t *counter,
                                   struct ia_error *err);

#endif
