/*
 * Byte sources: plain files, windows, memory, and a fault injector for tests.
 * See source.h for the contract.
 */
#define _GNU_SOURCE
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bytes.h"
#include "path.h"
#include "banned.h"

void ia_source_init(struct ia_source *src, const struct ia_source_ops *ops, uint64_t size)
{
        src->ops = ops;
        src->size = size;
        src->allocated = size;
        src->dev = 0;
        src->ino = 0;
        atomic_init(&src->refs, 1);
}

struct ia_source *ia_source_ref(struct ia_source *src)
{
        atomic_fetch_add(&src->refs, 1);
        return src;
}

void ia_source_unref(struct ia_source *src)
{
        if (src && atomic_fetch_sub(&src->refs, 1) == 1)
                src->ops->destroy(src);
}

int64_t ia_read_upto(struct ia_source *src, void *buf, size_t len, uint64_t off,
                     struct ia_error *err)
{
        size_t done = 0;

        if (off >= src->size)
                return 0;
        if (len > src->size - off)
                len = (size_t)(src->size - off);
        while (done < len) {
                int64_t n =
                    src->ops->pread(src, (uint8_t *)buf + done, len - done, off + done, err);
                if (n < 0)
                        return -1;
                if (n == 0)
                        break; /* the source shrank under us */
                done += (size_t)n;
        }
        return (int64_t)done;
}

int64_t ia_read_nowait(struct ia_source *src, void *buf, size_t len, uint64_t off,
                       struct ia_error *err)
{
        if (!src->ops->pread_nowait)
                return ia_read_upto(src, buf, len, off, err);
        if (off >= src->size)
                return 0;
        if (len > src->size - off)
                len = (size_t)(src->size - off);
        return src->ops->pread_nowait(src, buf, len, off, err);
}

int ia_read(struct ia_source *src, void *buf, size_t len, uint64_t off, const char *what,
            struct ia_error *err)
{
        int64_t n;

        if (!ia_range_in(off, len, src->size))
                return ia_error_set(err, IA_ERR_TRUNCATED,
                                    "%s at offset %llu (%zu bytes) lies beyond the end of the "
                                    "file (%llu bytes)",
                                    what, (unsigned long long)off, len,
                                    (unsigned long long)src->size);
        n = ia_read_upto(src, buf, len, off, err);
        if (n < 0) {
                ia_error_prefix(err, "reading %s", what);
                return -1;
        }
        if ((size_t)n != len)
                return ia_error_set(err, IA_ERR_TRUNCATED,
                                    "%s at offset %llu: file ended after %lld of %zu bytes", what,
                                    (unsigned long long)off, (long long)n, len);
        return 0;
}

int ia_source_seek(struct ia_source *src, uint64_t off, enum ia_seek what, uint64_t *res,
                   int *errnum)
{
        if (!src->ops->seek) {
                *errnum = EOPNOTSUPP;
                return -1;
        }
        return src->ops->seek(src, off, what, res, errnum);
}

/* ---- plain files ---- */

int64_t ia_fd_pread(int fd, void *buf, size_t len, uint64_t at, const char *what, uint64_t off,
                    struct ia_error *err)
{
        ssize_t n;

        if (len > (size_t)INT_MAX)
                len = INT_MAX;
        do {
                n = pread(fd, buf, len, (off_t)at);
        } while (n < 0 && errno == EINTR);
        if (n < 0)
                return ia_error_errno(err, IA_ERR_IO, errno,
                                      "%s of %zu bytes at offset %llu failed", what, len,
                                      (unsigned long long)off);
        return n;
}

static atomic_bool noatime_refused;

int ia_open_noatime(int dirfd, const char *name, int flags)
{
        int fd;

        if (!atomic_load_explicit(&noatime_refused, memory_order_relaxed)) {
                fd = openat(dirfd, name, flags | O_NOATIME);
                if (fd >= 0 || errno != EPERM)
                        return fd;
                fd = openat(dirfd, name, flags);
                if (fd >= 0) /* the flag was what was refused: not the owner */
                        atomic_store_explicit(&noatime_refused, true, memory_order_relaxed);
                return fd;
        }
        return openat(dirfd, name, flags);
}

struct file_source {
        struct ia_source base;
        int fd;
};

static int64_t file_pread(struct ia_source *src, void *buf, size_t len, uint64_t off,
                          struct ia_error *err)
{
        struct file_source *fs = (struct file_source *)src;

        if (off > (uint64_t)INT64_MAX)
                return 0;
        return ia_fd_pread(fs->fd, buf, len, off, "read", off, err);
}

/*
 * preadv2(RWF_NOWAIT) gives what the page cache holds and, for the rest,
 * starts the read-ahead and fails with EAGAIN; POSIX_FADV_WILLNEED asks for
 * it too where a kernel's RWF_NOWAIT does not start it.  A kernel or file
 * system without RWF_NOWAIT (EOPNOTSUPP, EINVAL, ENOSYS) is read as always.
 */
static int64_t file_pread_nowait(struct ia_source *src, void *buf, size_t len, uint64_t off,
                                 struct ia_error *err)
{
        struct file_source *fs = (struct file_source *)src;
        struct iovec iov = {.iov_base = buf, .iov_len = len > (size_t)INT_MAX ? INT_MAX : len};
        ssize_t n;

        if (off > (uint64_t)INT64_MAX || off >= src->size)
                return 0;
        do {
                n = preadv2(fs->fd, &iov, 1, (off_t)off, RWF_NOWAIT);
        } while (n < 0 && errno == EINTR);
        if (n >= 0 && ((size_t)n == iov.iov_len || off + (uint64_t)n >= src->size))
                return n;
        if (n >= 0 || errno == EAGAIN) {
                (void)posix_fadvise(fs->fd, (off_t)off, (off_t)iov.iov_len, POSIX_FADV_WILLNEED);
                return IA_NOT_IN_MEMORY;
        }
        return ia_read_upto(src, buf, len, off, err);
}

static int file_seek(struct ia_source *src, uint64_t off, enum ia_seek what, uint64_t *res,
                     int *errnum)
{
        struct file_source *fs = (struct file_source *)src;
        off_t r;

        if (off > (uint64_t)INT64_MAX) {
                *errnum = ENXIO;
                return -1;
        }
        r = lseek(fs->fd, (off_t)off, what == IA_SEEK_DATA ? SEEK_DATA : SEEK_HOLE);
        if (r < 0) {
                *errnum = errno;
                return -1;
        }
        *res = (uint64_t)r;
        return 0;
}

static void file_destroy(struct ia_source *src)
{
        struct file_source *fs = (struct file_source *)src;

        close(fs->fd);
        free(fs);
}

static const struct ia_source_ops file_ops = {
    .pread = file_pread,
    .seek = file_seek,
    .destroy = file_destroy,
    .pread_nowait = file_pread_nowait,
};

static const char *file_type_name(mode_t mode)
{
        if (S_ISDIR(mode))
                return "a directory";
        if (S_ISFIFO(mode))
                return "a FIFO";
        if (S_ISSOCK(mode))
                return "a socket";
        if (S_ISCHR(mode))
                return "a character device";
        if (S_ISBLK(mode))
                return "a block device";
        if (S_ISLNK(mode))
                return "a symbolic link";
        return "not a regular file";
}

/* The source over fd (which it owns from now on: closed on failure), st its fstat. */
static struct ia_source *file_source_new(int fd, const char *name, const struct stat *st,
                                         uint64_t size, uint64_t allocated, struct ia_error *err)
{
        struct file_source *fs = calloc(1, sizeof(*fs));

        if (!fs) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory opening '%s'", name);
                close(fd);
                return NULL;
        }
        ia_source_init(&fs->base, &file_ops, size);
        fs->base.allocated = allocated;
        fs->base.dev = (uint64_t)st->st_dev;
        fs->base.ino = (uint64_t)st->st_ino;
        fs->fd = fd;
        return &fs->base;
}

struct ia_source *ia_source_from_fd(int fd, const char *name, struct ia_error *err)
{
        return ia_source_from_fd_stat(fd, name, NULL, err);
}

struct ia_source *ia_source_from_fd_stat(int fd, const char *name, struct stat *stp,
                                         struct ia_error *err)
{
        struct stat local, *sp = stp ? stp : &local;

        if (fstat(fd, sp) < 0) {
                ia_error_errno(err, IA_ERR_IO, errno, "cannot stat '%s'", name);
                close(fd);
                return NULL;
        }
        if (!S_ISREG(sp->st_mode)) {
                ia_error_set(err, IA_ERR_REFUSED, "'%s' is %s, not a regular file", name,
                             file_type_name(sp->st_mode));
                close(fd);
                return NULL;
        }
        return file_source_new(fd, name, sp, (uint64_t)sp->st_size, (uint64_t)sp->st_blocks * 512,
                               err);
}

struct ia_source *ia_source_from_blockdev(int fd, const char *name, uint64_t size,
                                          struct ia_error *err)
{
        struct stat st;

        if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode)) {
                ia_error_set(err, IA_ERR_REFUSED, "'%s' is not a block device", name);
                close(fd);
                return NULL;
        }
        return file_source_new(fd, name, &st, size, size, err);
}

static void open_error(int e, const char *path, unsigned flags, struct ia_error *err)
{
        if (e == ENOENT || e == ENOTDIR) {
                ia_error_set(err, IA_ERR_MISSING, "'%s' does not exist", path);
                if (err)
                        err->reason = "missing";
        } else if (e == ELOOP && (flags & IA_OPEN_NOFOLLOW)) {
                ia_error_set(err, IA_ERR_REFUSED, "'%s' is a symbolic link", path);
                if (err)
                        err->reason = "symlink";
        } else if (e == EXDEV) {
                ia_error_set(err, IA_ERR_REFUSED, "'%s' resolves outside the allowed roots", path);
                if (err)
                        err->reason = "outside-roots";
        } else if (e == ELOOP) {
                ia_error_set(err, IA_ERR_REFUSED, "'%s': too many levels of symbolic links", path);
                if (err)
                        err->reason = "symlink-loop";
        } else {
                ia_error_errno(err, IA_ERR_IO, e, "cannot open '%s'", path);
                if (err)
                        err->reason = "unreadable";
        }
}

static struct ia_source *reopen_regular(int pfd, const char *path, struct ia_error *err);

/*
 * Without openat2 (Linux < 5.6): walk path one component at a time beneath
 * rootfd, refusing "..", absolute names and every symlink (stricter than
 * RESOLVE_BENEATH, never weaker).  An O_PATH descriptor, or -1 with errno.
 */
int ia_open_beneath_by_components(int rootfd, const char *path)
{
        char comp[NAME_MAX + 1];
        struct stat st;
        int dirfd = rootfd, fd = -1;
        const char *p = path;

        if (*p == '/') {
                errno = EXDEV;
                return -1;
        }
        for (;;) {
                size_t n = strcspn(p, "/");
                bool last;

                if (n > NAME_MAX) {
                        errno = ENAMETOOLONG;
                        break;
                }
                memcpy(comp, p, n);
                comp[n] = '\0';
                p += n;
                while (*p == '/')
                        p++;
                last = *p == '\0';
                if (strcmp(comp, "..") == 0) {
                        errno = EXDEV;
                        break;
                }
                /* O_PATH | O_NOFOLLOW opens a symlink itself: look, and refuse it. */
                fd = openat(dirfd, n ? comp : ".", O_PATH | O_CLOEXEC | O_NOFOLLOW);
                if (dirfd != rootfd)
                        close(dirfd);
                dirfd = rootfd;
                if (fd < 0)
                        return -1;
                if (fstat(fd, &st) < 0) {
                        int e = errno;

                        close(fd);
                        errno = e;
                        return -1;
                }
                if (S_ISLNK(st.st_mode) || (!last && !S_ISDIR(st.st_mode))) {
                        close(fd);
                        errno = S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
                        return -1;
                }
                if (last)
                        return fd;
                dirfd = fd;
        }
        if (dirfd != rootfd)
                close(dirfd);
        return -1;
}

struct ia_source *ia_source_open_beneath(int rootfd, const char *path, const char *name,
                                         struct ia_error *err)
{
        struct open_how how;
        int pfd;

        if (!name)
                name = path;
        memset(&how, 0, sizeof(how));
        how.flags = O_PATH | O_CLOEXEC;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        pfd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
        if (pfd < 0 && (errno == ENOSYS || errno == ENAMETOOLONG))
                /* the same walk one component at a time: no limit on the whole name */
                pfd = ia_open_beneath_walk(rootfd, path, 0);
        if (pfd < 0) {
                open_error(errno, name, 0, err);
                return NULL;
        }
        return reopen_regular(pfd, name, err);
}

struct ia_source *ia_source_open_file(int dirfd, const char *path, unsigned flags,
                                      struct ia_error *err)
{
        int pfd;
        int oflags = O_PATH | O_CLOEXEC;

        if (flags & IA_OPEN_NOFOLLOW)
                oflags |= O_NOFOLLOW;
        pfd = ia_openat_long(dirfd, path, oflags);
        if (pfd < 0) {
                open_error(errno, path, flags, err);
                return NULL;
        }
        return reopen_regular(pfd, path, err);
}

/* pfd is an O_PATH descriptor: check the type, then open it for reading. */
static struct ia_source *reopen_regular(int pfd, const char *path, struct ia_error *err)
{
        char proc[64];
        struct stat st;
        int fd;
        if (fstat(pfd, &st) < 0) {
                ia_error_errno(err, IA_ERR_IO, errno, "cannot stat '%s'", path);
                close(pfd);
                return NULL;
        }
        if (!S_ISREG(st.st_mode)) {
                /* Never open a FIFO, socket or device for I/O: no hang, no side effect. */
                ia_error_set(err, IA_ERR_REFUSED, "'%s' is %s, not a regular file", path,
                             file_type_name(st.st_mode));
                if (err)
                        err->reason = "not-regular";
                close(pfd);
                return NULL;
        }
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
        fd = ia_open_noatime(AT_FDCWD, proc, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) {
                ia_error_errno(err, IA_ERR_IO, errno, "cannot open '%s' for reading", path);
                close(pfd);
                return NULL;
        }
        close(pfd);
        return ia_source_from_fd(fd, path, err);
}

/* ---- windows ---- */

struct window_source {
        struct ia_source base;
        struct ia_source *under;
        uint64_t off;
};

static int64_t window_pread(struct ia_source *src, void *buf, size_t len, uint64_t off,
                            struct ia_error *err)
{
        struct window_source *w = (struct window_source *)src;

        if (off >= src->size)
                return 0;
        if (len > src->size - off)
                len = (size_t)(src->size - off);
        return w->under->ops->pread(w->under, buf, len, w->off + off, err);
}

static int window_seek(struct ia_source *src, uint64_t off, enum ia_seek what, uint64_t *res,
                       int *errnum)
{
        struct window_source *w = (struct window_source *)src;
        uint64_t r;

        if (off >= src->size) {
                *errnum = ENXIO;
                return -1;
        }
        if (ia_source_seek(w->under, w->off + off, what, &r, errnum) < 0) {
                if (*errnum == ENXIO && what == IA_SEEK_HOLE) {
                        *res = src->size;
                        return 0;
                }
                return -1;
        }
        if (r < w->off + off) {
                *errnum = EIO;
                return -1;
        }
        r -= w->off;
        if (r >= src->size) {
                if (what == IA_SEEK_DATA) {
                        *errnum = ENXIO;
                        return -1;
                }
                r = src->size;
        }
        *res = r;
        return 0;
}

static void window_destroy(struct ia_source *src)
{
        struct window_source *w = (struct window_source *)src;

        ia_source_unref(w->under);
        free(w);
}

static const struct ia_source_ops window_ops = {
    .pread = window_pread,
    .seek = window_seek,
    .destroy = window_destroy,
};

struct ia_source *ia_source_window(struct ia_source *base, uint64_t off, uint64_t len,
                                   struct ia_error *err)
{
        struct window_source *w;

        if (!ia_range_in(off, len, base->size)) {
                ia_error_set(err, IA_ERR_TRUNCATED,
                             "window [%llu, +%llu) lies beyond the end of its source (%llu bytes)",
                             (unsigned long long)off, (unsigned long long)len,
                             (unsigned long long)base->size);
                return NULL;
        }
        w = calloc(1, sizeof(*w));
        if (!w) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                return NULL;
        }
        ia_source_init(&w->base, &window_ops, len);
        w->base.allocated = len;
        w->under = ia_source_ref(base);
        w->off = off;
        return &w->base;
}

/* ---- memory ---- */

struct memory_source {
        struct ia_source base;
        const uint8_t *buf;
        void *owned;
};

static int64_t memory_pread(struct ia_source *src, void *buf, size_t len, uint64_t off,
                            struct ia_error *err)
{
        struct memory_source *m = (struct memory_source *)src;

        (void)err;
        if (off >= src->size)
                return 0;
        if (len > src->size - off)
                len = (size_t)(src->size - off);
        memcpy(buf, m->buf + off, len);
        return (int64_t)len;
}

static void memory_destroy(struct ia_source *src)
{
        struct memory_source *m = (struct memory_source *)src;

        free(m->owned);
        free(m);
}

static const struct ia_source_ops memory_ops = {
    .pread = memory_pread,
    .seek = NULL,
    .destroy = memory_destroy,
};

struct ia_source *ia_source_memory(const void *buf, size_t len, bool copy, struct ia_error *err)
{
        struct memory_source *m = calloc(1, sizeof(*m));

        if (!m)
                goto nomem;
        if (copy) {
                m->owned = malloc(len ? len : 1);
                if (!m->owned)
                        goto free_m;
                if (len)
                        memcpy(m->owned, buf, len);
                m->buf = m->owned;
        } else {
                m->buf = buf;
        }
        ia_source_init(&m->base, &memory_ops, len);
        return &m->base;

free_m:
        free(m);
nomem:
        ia_error_set(err, IA_ERR_NOMEM, "out of memory for a %zu-byte buffer", len);
        return NULL;
}

struct ia_source *ia_source_memory_adopt(void *buf, size_t len, struct ia_error *err)
{
        struct memory_source *m = calloc(1, sizeof(*m));

        if (!m) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                return NULL;
        }
        m->owned = buf;
        m->buf = buf;
        ia_source_init(&m->base, &memory_ops, len);
        return &m->base;
}

/* ---- fault injection ---- */

struct faulty_source {
        struct ia_source base;
        struct ia_source *under;
        uint64_t fail_at;
        uint64_t own_count;
        uint64_t *count;
};

static int64_t faulty_pread(struct ia_source *src, void *buf, size_t len, uint64_t off,
                            struct ia_error *err)
{
        struct faulty_source *f = (struct faulty_source *)src;

        ++*f->count;
        if (f->fail_at && *f->count >= f->fail_at)
                return ia_error_set(err, IA_ERR_IO, "injected read failure #%llu at offset %llu",
                                    (unsigned long long)*f->count, (unsigned long long)off);
        return f->under->ops->pread(f->under, buf, len, off, err);
}

static int faulty_seek(struct ia_source *src, uint64_t off, enum ia_seek what, uint64_t *res,
                       int *errnum)
{
        struct faulty_source *f = (struct faulty_source *)src;

        return ia_source_seek(f->under, off, what, res, errnum);
}

static void faulty_destroy(struct ia_source *src)
{
        struct faulty_source *f = (struct faulty_source *)src;

        ia_source_unref(f->under);
        free(f);
}

static const struct ia_source_ops faulty_ops = {
    .pread = faulty_pread,
    .seek = faulty_seek,
    .destroy = faulty_destroy,
};

struct ia_source *ia_source_faulty(struct ia_source *base, uint64_t fail_at, uint64_t *counter,
                                   struct ia_error *err)
{
        struct faulty_source *f = calloc(1, sizeof(*f));

        if (!f) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                return NULL;
        }
        ia_source_init(&f->base, &faulty_ops, base->size);
        f->base.allocated = base->allocated;
        f->base.dev = base->dev;
        f->base.ino = base->ino;
        f->under = ia_source_ref(base);
        f->fail_at = fail_at;
        f->count = counter ? counter : &f->own_count;
        return &f->base;
}
