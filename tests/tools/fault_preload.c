/*
 * fault_preload: a transient read error for the real binary (LD_PRELOAD).
 * The Nth pread() of a file whose name ends in NAME fails once with EIO; the
 * reads before and after it succeed.  Lets test_faults.sh ask what imgaudit
 * itself (scan and map, not only the library) does with a flaky disk: an
 * error for that image, never a wrong map.
 *
 * Configured by the file fault_preload.conf in the working directory, one
 * line "NAME N" (N = 0: count only); every read of NAME adds a line to
 * fault_preload.log: "read K" or "read K failed" (so the test knows how many
 * reads there were and that the fault fired).  Without the file, nothing
 * changes.  Test-only: never linked into imgaudit.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "banned.h"

typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pread_fn real_pread;
static char target[256];
static unsigned long fail_at, reads;
static int log_fd = -1;

static void init(void)
{
        FILE *f;

        real_pread = (pread_fn)dlsym(RTLD_NEXT, "pread64");
        f = fopen("fault_preload.conf", "r");
        if (!f)
                return;
        if (fscanf(f, "%255s %lu", target, &fail_at) != 2)
                target[0] = '\0';
        fclose(f);
        if (target[0])
                log_fd = open("fault_preload.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static int is_target(int fd)
{
        char link[64], path[4096];
        ssize_t n;
        size_t tl = strlen(target);

        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, path, sizeof(path) - 1);
        if (n < 0 || (size_t)n < tl)
                return 0;
        path[n] = '\0';
        return strcmp(path + n - tl, target) == 0 && (n == (ssize_t)tl || path[n - tl - 1] == '/');
}

static ssize_t faulty(int fd, void *buf, size_t len, off_t off)
{
        int fail = 0;

        pthread_once(&once, init);
        if (!real_pread) {
                errno = ENOSYS;
                return -1;
        }
        if (target[0] && is_target(fd)) {
                char line[64];
                int n;

                pthread_mutex_lock(&lock);
                ++reads;
                fail = fail_at && reads == fail_at;
                n = snprintf(line, sizeof(line), "read %lu%s\n", reads, fail ? " failed" : "");
                if (log_fd >= 0 && write(log_fd, line, (size_t)n) != n) {
                        /* the log is best effort; the test notices a short one */
                }
                pthread_mutex_unlock(&lock);
        }
        if (fail) {
                errno = EIO;
                return -1;
        }
        return real_pread(fd, buf, len, off);
}

/* The build has _FILE_OFFSET_BITS=64: every pread() of the binary is pread64(). */
ssize_t pread64(int fd, void *buf, size_t len, off_t off)
{
        return faulty(fd, buf, len, off);
}
