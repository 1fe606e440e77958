/*
 * Path names without a length limit: see path.h.
 */
#define _GNU_SOURCE
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "banned.h"

#define MAX_SYMLINKS 40 /* the kernel's MAXSYMLINKS */

/* Append the components of p to out (length *n), resolving "." and ".." textually. */
static void lexical_add(char *out, size_t *n, const char *p)
{
        while (*p) {
                size_t len;

                while (*p == '/')
                        p++;
                len = strcspn(p, "/");
                if (len == 0)
                        break;
                if (len == 1 && p[0] == '.') {
                        /* nothing */
                } else if (len == 2 && p[0] == '.' && p[1] == '.') {
                        while (*n > 0 && out[*n - 1] != '/')
                                (*n)--;
                        if (*n > 0)
                                (*n)--;
                } else {
                        out[(*n)++] = '/';
                        memcpy(out + *n, p, len);
                        *n += len;
                }
                p += len;
        }
}

char *ia_path_lexical(const char *path)
{
        char *cwd = NULL, *out;
        size_t n = 0, cap;

        if (path[0] != '/') {
                cwd = getcwd(NULL, 0);
                if (!cwd)
                        return NULL;
        }
        cap = (cwd ? strlen(cwd) + 1 : 0) + strlen(path) + 2;
        out = malloc(cap);
        if (!out) {
                free(cwd);
                return NULL;
        }
        if (cwd)
                lexical_add(out, &n, cwd);
        lexical_add(out, &n, path);
        free(cwd);
        if (n == 0)
                out[n++] = '/';
        out[n] = '\0';
        return out;
}

char *ia_path_canonical(const char *path)
{
        char *r = realpath(path, NULL);

        if (r || errno == ENOMEM)
                return r;
        return ia_path_lexical(path);
}

struct dir_id {
        dev_t dev;
        ino_t ino;
};

/* The target of the symlink open (O_PATH | O_NOFOLLOW) at fd, malloc'd; NULL with errno. */
static char *read_link(int fd, size_t hint)
{
        size_t cap = hint + 2 > 64 ? hint + 2 : 64;

        for (;;) {
                char *buf = malloc(cap);
                ssize_t got;

                if (!buf)
                        return NULL;
                got = readlinkat(fd, "", buf, cap);
                if (got < 0) {
                        int e = errno;

                        free(buf);
                        errno = e;
                        return NULL;
                }
                if ((size_t)got < cap) {
                        buf[got] = '\0';
                        return buf;
                }
                free(buf);
                if (cap > ((size_t)1 << 20)) {
                        errno = ENAMETOOLONG;
                        return NULL;
                }
                cap *= 2;
        }
}

/*
 * The symlink fd (of size bytes) met on the way, with *p the rest of the
 * name after it: *rest becomes its target followed by that rest, and *p its
 * start.  0, or an errno (EXDEV for an absolute target: never out of the
 * root).
 */
static int splice_link(int fd, size_t size, char **rest, const char **p)
{
        char *target = read_link(fd, size), *joined;
        size_t tn, rn;

        if (!target)
                return errno;
        if (target[0] == '/') {
                free(target);
                return EXDEV;
        }
        tn = strlen(target);
        rn = strlen(*p);
        joined = malloc(tn + rn + 1);
        if (!joined) {
                free(target);
                return ENOMEM;
        }
        memcpy(joined, target, tn);
        memcpy(joined + tn, *p, rn + 1);
        free(target);
        free(*rest);
        *rest = joined;
        *p = joined;
        return 0;
}

/*
 * ".." from *cur, at *depth > 0 beneath rootfd: the parent must be the
 * directory the walk came down through (ids[*depth - 1]), else a directory
 * was moved meanwhile (EXDEV).  0, or an errno; *cur is then unchanged.
 */
static int step_up(int rootfd, int *cur, const struct dir_id *ids, size_t *depth)
{
        int fd = openat(*cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        struct stat st;
        int e;

        if (fd < 0)
                return errno;
        if (fstat(fd, &st) < 0) {
                e = errno;
                close(fd);
                return e;
        }
        if (st.st_dev != ids[*depth - 1].dev || st.st_ino != ids[*depth - 1].ino) {
                close(fd);
                return EXDEV;
        }
        (*depth)--;
        close(*cur);
        if (*depth == 0) {
                close(fd);
                *cur = rootfd;
        } else {
                *cur = fd;
        }
        return 0;
}

int ia_open_beneath_walk(int rootfd, const char *path, int nofollow)
{
        struct dir_id *ids = NULL;
        size_t depth = 0, cap = 0;
        char *rest = strdup(path);
        const char *p = rest;
        int cur = rootfd, links = 0, e = 0, fd = -1;
        struct stat st;

        if (!rest)
                return -1;
        if (*p == '/') {
                e = EXDEV;
                goto fail;
        }
        if (fstat(rootfd, &st) < 0) {
                e = errno;
                goto fail;
        }
        ids = malloc(16 * sizeof(*ids));
        if (!ids) {
                e = ENOMEM;
                goto fail;
        }
        cap = 16;
        ids[0].dev = st.st_dev;
        ids[0].ino = st.st_ino;
        for (;;) {
                char comp[NAME_MAX + 1];
                size_t n;
                bool last;

                while (*p == '/')
                        p++;
                if (*p == '\0') {
                        /* the name ends with a directory: that one */
                        fd = cur != rootfd ? cur : openat(rootfd, ".", O_PATH | O_CLOEXEC);
                        if (fd < 0)
                                e = errno;
                        cur = rootfd;
                        break;
                }
                n = strcspn(p, "/");
                if (n > NAME_MAX) {
                        e = ENAMETOOLONG;
                        break;
                }
                memcpy(comp, p, n);
                comp[n] = '\0';
                p += n;
                last = *p == '\0';
                if (strcmp(comp, ".") == 0)
                        continue;
                if (strcmp(comp, "..") == 0) {
                        if (nofollow || depth == 0) {
                                e = EXDEV;
                                break;
                        }
                        e = step_up(rootfd, &cur, ids, &depth);
                        if (e)
                                break;
                        continue;
                }
                fd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0 || fstat(fd, &st) < 0) {
                        e = errno;
                        break;
                }
                if (S_ISLNK(st.st_mode)) {
                        if (nofollow || ++links > MAX_SYMLINKS) {
                                e = ELOOP;
                                break;
                        }
                        e = splice_link(fd, (size_t)st.st_size, &rest, &p);
                        close(fd);
                        fd = -1;
                        if (e)
                                break;
                        continue;
                }
                if (last)
                        break; /* fd is the answer */
                if (!S_ISDIR(st.st_mode)) {
                        e = ENOTDIR;
                        break;
                }
                if (depth + 1 == cap) {
                        struct dir_id *nv = realloc(ids, cap * 2 * sizeof(*nv));

                        if (!nv) {
                                e = ENOMEM;
                                break;
                        }
                        ids = nv;
                        cap *= 2;
                }
                depth++;
                ids[depth].dev = st.st_dev;
                ids[depth].ino = st.st_ino;
                if (cur != rootfd)
                        close(cur);
                cur = fd;
                fd = -1;
        }
        if (e && fd >= 0) {
                close(fd);
                fd = -1;
        }
fail:
        if (cur != rootfd)
                close(cur);
        free(ids);
        free(rest);
        if (e) {
                errno = e;
                return -1;
        }
        return fd;
}

int ia_openat_long(int dirfd, const char *path, int flags)
{
        const char *p = path;
        int cur = dirfd, fd;

        fd = openat(dirfd, path, flags);
        if (fd >= 0 || errno != ENAMETOOLONG)
                return fd;
        while (strlen(p) >= PATH_MAX) {
                /* the longest run of whole components the kernel takes in one call */
                size_t cut = PATH_MAX - 1;
                char *chunk;
                int next;

                while (cut > 0 && p[cut] != '/')
                        cut--;
                if (cut == 0 && p[0] != '/') {
                        errno = ENAMETOOLONG;
                        fd = -1;
                        goto out;
                }
                chunk = cut ? strndup(p, cut) : strdup("/");
                if (!chunk) {
                        fd = -1;
                        goto out;
                }
                next = openat(cur, chunk, O_PATH | O_DIRECTORY | O_CLOEXEC);
                free(chunk);
                if (next < 0) {
                        fd = -1;
                        goto out;
                }
                if (cur != dirfd)
                        close(cur);
                cur = next;
                p += cut;
                while (*p == '/')
                        p++;
        }
        fd = openat(cur, *p ? p : ".", flags);
out:
        if (cur != dirfd) {
                int e = errno;

                close(cur);
                errno = e;
        }
        return fd;
}
