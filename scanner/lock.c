/*
 * The scan lock (see lock.h): an OFD lock on the database file, and DB.lock
 * with the holder's identity in it.
 */
#define _GNU_SOURCE
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "banned.h"

/* The lock's byte: far past SQLite's lock bytes (1 GiB and up) and any real file. */
#define LOCK_BYTE ((off_t)1 << 62)

/* db_path with its directory (and the file, when it is a symlink) resolved. */
static char *canonical(const char *db_path)
{
        char *full = realpath(db_path, NULL), *dir, *slash, *out;
        const char *base;
        size_t n;

        if (full)
                return full;
        if (errno != ENOENT)
                return NULL;
        dir = strdup(db_path);
        if (!dir)
                return NULL;
        slash = strrchr(dir, '/');
        if (slash && slash[1] == '\0') {
                free(dir);
                errno = EISDIR;
                return NULL;
        }
        base = slash ? db_path + (slash - dir) + 1 : db_path; /* not into dir: freed below */
        if (slash == dir)
                full = strdup("/");
        else if (slash) {
                *slash = '\0';
                full = realpath(dir, NULL);
        } else {
                full = realpath(".", NULL);
        }
        free(dir);
        if (!full)
                return NULL;
        n = strlen(full) + strlen(base) + 2;
        out = malloc(n);
        if (out)
                snprintf(out, n, "%s%s%s", full, strcmp(full, "/") ? "/" : "", base);
        free(full);
        return out;
}

int ia_lock_take(struct ia_lock *l, const char *db_path, struct ia_error *err)
{
        char info[512], host[256], when[32];
        struct flock fl = {
            .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = LOCK_BYTE, .l_len = 1};
        size_t n;
        struct timespec ts;
        struct tm tm;
        ssize_t got;
        int len;

        l->fd = l->db_fd = -1;
        l->path = NULL;
        l->db = canonical(db_path);
        if (!l->db)
                return ia_error_errno(err, IA_ERR_IO, errno, "cannot open database '%s'", db_path);
        n = strlen(l->db);
        l->path = malloc(n + sizeof(".lock"));
        if (!l->path) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto fail;
        }
        memcpy(l->path, l->db, n);
        memcpy(l->path + n, ".lock", sizeof(".lock"));
        l->db_fd = open(l->db, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
        if (l->db_fd < 0) {
                ia_error_errno(err, IA_ERR_IO, errno, "cannot open database '%s'", db_path);
                goto fail;
        }
        if (fcntl(l->db_fd, F_OFD_SETLK, &fl) < 0) {
                int e = errno;

                if (e != EAGAIN && e != EACCES) {
                        ia_error_errno(err, IA_ERR_IO, e, "cannot lock database '%s'", db_path);
                        goto fail;
                }
                info[0] = '\0';
                l->fd = open(l->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                if (l->fd >= 0) {
                        got = pread(l->fd, info, sizeof(info) - 1, 0);
                        info[got > 0 ? got : 0] = '\0';
                        info[strcspn(info, "\n")] = '\0';
                        close(l->fd); /* the holder's: never truncated by us */
                        l->fd = -1;
                }
                ia_error_set(err, IA_ERR_REFUSED,
                             "database '%s' is locked by another scan (%s); not starting", db_path,
                             info[0] ? info
                                     : "holder unknown: it may use another name of the file");
                if (err)
                        err->reason = "locked";
                goto fail;
        }
        l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
        if (l->fd < 0) {
                ia_error_errno(err, IA_ERR_IO, errno, "cannot open the lock file '%s'", l->path);
                goto fail;
        }
        if (gethostname(host, sizeof(host)) < 0)
                snprintf(host, sizeof(host), "unknown");
        host[sizeof(host) - 1] = '\0';
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        len = snprintf(info, sizeof(info), "pid %ld on host %s since %s\n", (long)getpid(), host,
                       when);
        if (ftruncate(l->fd, 0) < 0 || pwrite(l->fd, info, (size_t)len, 0) != len) {
                ia_error_errno(err, IA_ERR_IO, errno, "cannot write the lock file '%s'", l->path);
                goto fail;
        }
        return 0;

fail:
        ia_lock_release(l);
        return -1;
}

void ia_lock_release(struct ia_lock *l)
{
        if (l->fd >= 0 && l->db_fd >= 0) {
                if (ftruncate(l->fd, 0) < 0) {
                        /* the kernel lock is what matters; stale text is only a hint */
                }
        }
        if (l->fd >= 0)
                close(l->fd);
        if (l->db_fd >= 0)
                close(l->db_fd); /* drops the lock */
        l->fd = l->db_fd = -1;
        free(l->path);
        free(l->db);
        l->path = l->db = NULL;
}
