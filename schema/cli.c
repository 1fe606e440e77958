/*
 * The command-line conventions every subcommand shares (see cli.h): the
 * usage-error style, and naming the cause when a database cannot be opened.
 */
#define _GNU_SOURCE
#include "cli.h"

#include "escape.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "banned.h"

int ia_usage_error(const char *cmd, int status, const char *fmt, ...)
{
        char prefix[64];
        va_list ap;

        /* escaped like every message: an argument may hold control characters */
        snprintf(prefix, sizeof(prefix), "imgaudit %s", cmd);
        va_start(ap, fmt);
        ia_vdiag(prefix, fmt, ap);
        va_end(ap);
        fprintf(stderr, "Try 'imgaudit help %s'.\n", cmd);
        return status;
}

int ia_getopt_error(const char *cmd, int status, int c, char **argv)
{
        const char *arg = argv[optind - 1];
        char opt[3] = {'-', (char)optopt, 0};
        /* a long option is the argument getopt_long just passed over; a short one (even
         * inside a cluster such as -qx) is optopt */
        const char *name = strncmp(arg, "--", 2) != 0 && optopt > ' ' && optopt < 127 ? opt : arg;

        if (c == ':')
                return ia_usage_error(cmd, status, "option '%s' needs a value", name);
        return ia_usage_error(cmd, status, "unknown option '%s'", name);
}

static bool dir_writable(const char *dir)
{
        /* AT_EACCESS: the effective ids and capabilities, those open() uses */
        return faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == 0;
}

const char *ia_db_problem(const char *path, bool for_write, char *buf, size_t n)
{
        static const char magic[16] = "SQLite format 3";
        char *copy = strdup(path), *dir;
        const char *ret = buf;
        struct stat st;
        char head[16];
        ssize_t got;
        int fd;

        if (!copy)
                return NULL;
        dir = dirname(copy);
        if (stat(dir, &st) < 0) {
                if (errno == ENOENT || errno == ENOTDIR)
                        snprintf(buf, n, "no such directory '%s'", dir);
                else if (errno == EACCES)
                        snprintf(buf, n, "permission denied: cannot reach the directory '%s'", dir);
                else
                        snprintf(buf, n, "directory '%s': %s", dir, strerror(errno));
                goto out;
        }
        if (!S_ISDIR(st.st_mode)) {
                snprintf(buf, n, "'%s' is not a directory", dir);
                goto out;
        }
        if (stat(path, &st) < 0) {
                if (errno == EACCES)
                        snprintf(buf, n, "permission denied: cannot reach '%s'", path);
                else if (errno == ENOENT && !for_write)
                        snprintf(buf, n, "no such file (run 'imgaudit scan' first)");
                else if (errno == ENOENT && !dir_writable(dir))
                        snprintf(buf, n, "permission denied: cannot create files in '%s'", dir);
                else
                        ret = NULL;
                goto out;
        }
        if (S_ISDIR(st.st_mode)) {
                snprintf(buf, n, "is a directory, not a database file");
                goto out;
        }
        if (!S_ISREG(st.st_mode)) {
                snprintf(buf, n, "not a regular file");
                goto out;
        }
        fd = open(path, (for_write ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                if (errno == EACCES || errno == EPERM)
                        snprintf(buf, n, "permission denied: cannot %s it",
                                 for_write ? "write" : "read");
                else
                        snprintf(buf, n, "%s", strerror(errno));
                goto out;
        }
        got = pread(fd, head, sizeof(head), 0);
        close(fd);
        if (got > 0 && (got < (ssize_t)sizeof(head) || memcmp(head, magic, sizeof(magic)) != 0)) {
                snprintf(buf, n, "not an SQLite database");
                goto out;
        }
        if (for_write && !dir_writable(dir)) {
                snprintf(buf, n,
                         "permission denied: cannot create the lock and journal files in '%s'",
                         dir);
                goto out;
        }
        ret = NULL;
out:
        free(copy);
        return ret;
}
