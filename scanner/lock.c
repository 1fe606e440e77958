/*
 * The scan lock (see lock.h): an flock()ed DB.lock file with the holder's
 * identity in it.
 */
#define _GNU_SOURCE
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

int ia_lock_take(struct ia_lock *l, const char *db_path, struct ia_error *err)
{
        char info[512], host[256], when[32];
        size_t n = strlen(db_path);
        struct timespec ts;
        struct tm tm;
        ssize_t got;
        int len;

        l->fd = -1;
        l->path = malloc(n + sizeof(".lock"));
        if (!l->path)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        memcpy(l->path, db_path, n);
        memcpy(l->path + n, ".lock", sizeof(".lock"));
        l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
        if (l->fd < 0) {
                ia_error_errno(err, IA_ERR_IO, errno, "cannot open the lock file '%s'", l->path);
                goto free_path;
        }
        if (flock(l->fd, LOCK_EX | LOCK_NB) < 0) {
                int e = errno;

                if (e != EWOULDBLOCK) {
                        ia_error_errno(err, IA_ERR_IO, e, "cannot lock '%s'", l->path);
                        goto close_fd;
                }
                got = pread(l->fd, info, sizeof(info) - 1, 0);
                info[got > 0 ? got : 0] = '\0';
                info[strcspn(info, "\n")] = '\0';
                ia_error_set(err, IA_ERR_REFUSED,
                             "database '%s' is locked by another scan (%s); not starting", db_path,
                             info[0] ? info : "holder unknown");
                if (err)
                        err->reason = "locked";
                goto close_fd;
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
                goto close_fd;
        }
        return 0;

close_fd:
        close(l->fd);
        l->fd = -1;
free_path:
        free(l->path);
        l->path = NULL;
        return -1;
}

void ia_lock_release(struct ia_lock *l)
{
        if (l->fd >= 0) {
                if (ftruncate(l->fd, 0) < 0) {
                        /* the kernel lock is what matters; stale text is only a hint */
                }
                close(l->fd);
        }
        l->fd = -1;
        free(l->path);
        l->path = NULL;
}
