/*
 * The buffered result writer: see out.h.
 */
#define _GNU_SOURCE
#include "out.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "banned.h"

void ia_out_init(struct ia_out *o, int fd)
{
        o->fd = fd;
        o->len = 0;
        o->failed = false;
        o->errnum = 0;
}

static void drain(struct ia_out *o)
{
        size_t done = 0;

        while (done < o->len && !o->failed) {
                ssize_t n = write(o->fd, o->buf + done, o->len - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        o->failed = true;
                        o->errnum = errno;
                        break;
                }
                done += (size_t)n;
        }
        o->len = 0;
}

void ia_out_write(struct ia_out *o, const void *p, size_t n)
{
        const char *s = p;

        if (n < sizeof(o->buf) - o->len) {
                /* The common case: it fits. */
                memcpy(o->buf + o->len, s, n);
                o->len += n;
                return;
        }

        while (n > 0) {
                size_t room = sizeof(o->buf) - o->len;
                size_t k = n < room ? n : room;

                memcpy(o->buf + o->len, s, k);
                o->len += k;
                s += k;
                n -= k;
                if (o->len == sizeof(o->buf))
                        drain(o);
        }
}

void ia_out_str(struct ia_out *o, const char *s)
{
        ia_out_write(o, s, strlen(s));
}

void ia_out_char(struct ia_out *o, char c)
{
        if (o->len == sizeof(o->buf))
                drain(o);
        o->buf[o->len++] = c;
}

char *ia_put_u64(char *p, uint64_t v)
{
        char tmp[IA_U64_DEC];
        int i = sizeof(tmp);

        do {
                tmp[--i] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        memcpy(p, tmp + i, sizeof(tmp) - (size_t)i);
        return p + sizeof(tmp) - i;
}

void ia_out_u64(struct ia_out *o, uint64_t v)
{
        char tmp[IA_U64_DEC];

        ia_out_write(o, tmp, (size_t)(ia_put_u64(tmp, v) - tmp));
}

void ia_out_hex_padded(struct ia_out *o, uint64_t v, int width)
{
        static const char digits[] = "0123456789abcdef";
        char tmp[18];
        int i = sizeof(tmp);
        int n;

        if (v == 0) {
                tmp[--i] = '0';
        } else {
                while (v) {
                        tmp[--i] = digits[v & 15];
                        v >>= 4;
                }
                tmp[--i] = 'x';
                tmp[--i] = '0';
        }
        n = (int)sizeof(tmp) - i;
        ia_out_write(o, tmp + i, (size_t)n);
        for (; n < width; n++)
                ia_out_char(o, ' ');
}

int ia_out_flush(struct ia_out *o)
{
        drain(o);
        if (o->failed) {
                errno = o->errnum;
                return -1;
        }
        return 0;
}

int ia_write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

/* Write buf to path atomically: a temporary file beside it, fsync, rename. */
int ia_write_file(const char *path, const char *buf, size_t len)
{
        size_t n = strlen(path);
        char *tmp;
        mode_t mask;
        struct stat st;
        int fd, e;

        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
                /* a device or a FIFO (-o /dev/stdout, /dev/null): written in place, never
                 * renamed over */
                fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return -1;
                if (ia_write_all(fd, buf, len) < 0) {
                        e = errno;
                        close(fd);
                        errno = e;
                        return -1;
                }
                return close(fd);
        }
        tmp = malloc(n + 16);
        if (!tmp) {
                errno = ENOMEM;
                return -1;
        }
        snprintf(tmp, n + 16, "%s.tmp.XXXXXX", path);
        fd = mkstemp(tmp);
        if (fd < 0) {
                e = errno;
                free(tmp);
                errno = e;
                return -1;
        }
        mask = umask(0);
        umask(mask);
        if (fchmod(fd, 0666 & ~mask) < 0 || ia_write_all(fd, buf, len) < 0 || fsync(fd) < 0) {
                e = errno;
                close(fd);
                unlink(tmp);
                free(tmp);
                errno = e;
                return -1;
        }
        if (close(fd) < 0 || rename(tmp, path) < 0) {
                e = errno;
                unlink(tmp);
                free(tmp);
                errno = e;
                return -1;
        }
        free(tmp);
        return 0;
}

void ia_sink_init(struct ia_sink *s, int fd)
{
        ia_rbuf_init(&s->b);
        s->fd = fd;
        s->errnum = 0;
        s->failed = false;
}

static void sink_write(struct ia_sink *s)
{
        if (s->b.nomem && !s->failed) {
                s->failed = true;
                s->errnum = ENOMEM;
        }
        if (!s->failed && s->b.len && ia_write_all(s->fd, s->b.buf, s->b.len) < 0) {
                s->failed = true;
                s->errnum = errno;
        }
        s->b.len = 0;
        if (s->b.buf)
                s->b.buf[0] = '\0';
}

void ia_sink_spill(struct ia_sink *s)
{
        if (s && (s->b.len >= IA_OUT_BUFSZ || s->b.nomem))
                sink_write(s);
}

int ia_sink_flush(struct ia_sink *s)
{
        sink_write(s);
        if (s->failed) {
                errno = s->errnum;
                return -1;
        }
        return 0;
}

void ia_sink_release(struct ia_sink *s)
{
        ia_rbuf_release(&s->b);
}

int ia_sink_copy_fd(struct ia_sink *s, int fd)
{
        char *buf;
        ssize_t n;

        if (ia_sink_flush(s) < 0)
                return -1;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -1;
        buf = malloc(IA_OUT_BUFSZ);
        if (!buf) {
                errno = ENOMEM;
                return -1;
        }
        while ((n = read(fd, buf, IA_OUT_BUFSZ)) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 || ia_write_all(s->fd, buf, (size_t)n) < 0) {
                        int e = errno;
                        free(buf);
                        errno = e;
                        return -1;
                }
        }
        free(buf);
        return 0;
}

int ia_tmpfile(void)
{
        FILE *f;
        int fd;

#ifdef O_TMPFILE
        fd = open("/tmp", O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);
        if (fd >= 0)
                return fd;
#endif
        f = tmpfile();
        if (!f)
                return -1;
        fd = fcntl(fileno(f), F_DUPFD_CLOEXEC, 0);
        fclose(f);
        return fd;
}

int ia_outfile_open(struct ia_outfile *f, const char *path)
{
        struct stat st;
        size_t n;
        mode_t mask;
        int e;

        f->fd = -1;
        f->tmp = NULL;
        f->path = path && strcmp(path, "-") != 0 ? path : NULL;
        if (!f->path) {
                f->fd = ia_tmpfile();
                return f->fd < 0 ? -1 : 0;
        }
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
                /* a device or a FIFO (-o /dev/stdout, /dev/null): written in place */
                f->fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
                return f->fd < 0 ? -1 : 0;
        }
        n = strlen(path);
        f->tmp = malloc(n + 16);
        if (!f->tmp) {
                errno = ENOMEM;
                return -1;
        }
        snprintf(f->tmp, n + 16, "%s.tmp.XXXXXX", path);
        f->fd = mkstemp(f->tmp);
        if (f->fd < 0) {
                e = errno;
                free(f->tmp);
                f->tmp = NULL;
                errno = e;
                return -1;
        }
        mask = umask(0);
        umask(mask);
        if (fchmod(f->fd, 0666 & ~mask) < 0) {
                e = errno;
                ia_outfile_abort(f);
                errno = e;
                return -1;
        }
        return 0;
}

int ia_outfile_commit(struct ia_outfile *f)
{
        int e, ret = 0;

        if (!f->path) {
                struct ia_sink s;

                ia_sink_init(&s, STDOUT_FILENO);
                ret = ia_sink_copy_fd(&s, f->fd);
                ia_sink_release(&s);
        } else if (f->tmp) {
                if (fsync(f->fd) < 0 || close(f->fd) < 0) {
                        f->fd = -1;
                        e = errno;
                        ia_outfile_abort(f);
                        errno = e;
                        return -1;
                }
                f->fd = -1;
                if (rename(f->tmp, f->path) < 0) {
                        e = errno;
                        ia_outfile_abort(f);
                        errno = e;
                        return -1;
                }
                free(f->tmp);
                f->tmp = NULL;
                return 0;
        }
        e = errno;
        if (close(f->fd) < 0 && ret == 0) {
                e = errno;
                ret = -1;
        }
        f->fd = -1;
        errno = e;
        return ret;
}

void ia_outfile_abort(struct ia_outfile *f)
{
        if (f->fd >= 0)
                close(f->fd);
        f->fd = -1;
        if (f->tmp) {
                unlink(f->tmp);
                free(f->tmp);
                f->tmp = NULL;
        }
}
