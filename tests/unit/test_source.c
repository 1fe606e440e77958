/*
 * Byte sources and the one read wrapper: bounds, short reads, windows,
 * files with holes, fault injection, refusal of non-regular files.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "image.h"
#include "path.h"
#include "source.h"

static uint8_t pattern[8192];

static int setup(void **state)
{
        (void)state;
        for (size_t i = 0; i < sizeof(pattern); i++)
                pattern[i] = (uint8_t)(i * 7 + 3);
        return 0;
}

/* A source that returns at most one byte per pread: ia_read must loop. */
struct trickle {
        struct ia_source base;
        const uint8_t *buf;
};

static int64_t trickle_pread(struct ia_source *src, void *buf, size_t len, uint64_t off,
                             struct ia_error *err)
{
        struct trickle *t = (struct trickle *)src;

        (void)err;
        if (off >= src->size || len == 0)
                return 0;
        memcpy(buf, t->buf + off, 1);
        return 1;
}

static void trickle_destroy(struct ia_source *src)
{
        free(src);
}

static const struct ia_source_ops trickle_ops = {
    .pread = trickle_pread,
    .destroy = trickle_destroy,
};

static void test_read_bounds(void **state)
{
        struct ia_error err;
        struct ia_source *src;
        uint8_t buf[64];

        (void)state;
        src = ia_source_memory(pattern, 1000, false, &err);
        assert_non_null(src);
        assert_int_equal(src->size, 1000);
        assert_int_equal(ia_read(src, buf, 64, 936, "tail", &err), 0);
        assert_memory_equal(buf, pattern + 936, 64);
        assert_int_equal(ia_read(src, buf, 64, 937, "tail", &err), -1);
        assert_int_equal(err.cat, IA_ERR_TRUNCATED);
        assert_non_null(strstr(err.msg, "tail"));
        /* Overflowing offsets are refused, not wrapped. */
        assert_int_equal(ia_read(src, buf, 64, UINT64_MAX - 10, "x", &err), -1);
        assert_int_equal(err.cat, IA_ERR_TRUNCATED);
        assert_int_equal(ia_read_upto(src, buf, 64, 990, &err), 10);
        assert_int_equal(ia_read_upto(src, buf, 64, 5000, &err), 0);
        ia_source_unref(src);
}

static void test_short_reads_loop(void **state)
{
        struct trickle *t = calloc(1, sizeof(*t));
        struct ia_error err;
        uint8_t buf[300];

        (void)state;
        ia_source_init(&t->base, &trickle_ops, sizeof(pattern));
        t->buf = pattern;
        assert_int_equal(ia_read(&t->base, buf, sizeof(buf), 100, "x", &err), 0);
        assert_memory_equal(buf, pattern + 100, sizeof(buf));
        ia_source_unref(&t->base);
}

static void test_window(void **state)
{
        struct ia_error err;
        struct ia_source *base, *w;
        uint8_t buf[16];

        (void)state;
        base = ia_source_memory(pattern, sizeof(pattern), true, &err);
        assert_non_null(base);
        w = ia_source_window(base, 1000, 100, &err);
        assert_non_null(w);
        ia_source_unref(base); /* the window keeps its own reference */
        assert_int_equal(w->size, 100);
        assert_int_equal(ia_read(w, buf, 16, 84, "x", &err), 0);
        assert_memory_equal(buf, pattern + 1084, 16);
        assert_int_equal(ia_read(w, buf, 16, 85, "x", &err), -1);
        assert_null(ia_source_window(w, 50, 51, &err));
        assert_int_equal(err.cat, IA_ERR_TRUNCATED);
        ia_source_unref(w);
}

static void test_faulty(void **state)
{
        struct ia_error err;
        struct ia_source *base, *f;
        uint64_t count = 0;
        uint8_t buf[8];

        (void)state;
        base = ia_source_memory(pattern, sizeof(pattern), false, &err);
        f = ia_source_faulty(base, 3, &count, &err);
        ia_source_unref(base);
        assert_int_equal(ia_read(f, buf, 8, 0, "a", &err), 0);
        assert_int_equal(ia_read(f, buf, 8, 8, "b", &err), 0);
        assert_int_equal(ia_read(f, buf, 8, 16, "c", &err), -1);
        assert_int_equal(err.cat, IA_ERR_IO);
        assert_int_equal(count, 3);
        ia_source_unref(f);
}

static char tmpdir[64];

static void test_file_holes(void **state)
{
        char path[128];
        struct ia_error err;
        struct ia_source *src;
        struct ia_file *f;
        struct ia_bstatus st;
        int fd;

        (void)state;
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ia-src-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
        snprintf(path, sizeof(path), "%s/holes.raw", tmpdir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, 1000000), 0);
        assert_int_equal(pwrite(fd, pattern, 4096, 65536), 4096);
        close(fd);

        src = ia_source_open_file(AT_FDCWD, path, 0, &err);
        assert_non_null(src);
        f = ia_file_new(src, path, &err);
        assert_non_null(f);
        assert_int_equal(f->len, 1000448); /* rounded up to 512 */

        assert_int_equal(ia_file_status(f, 0, f->len, &st, &err), 0);
        assert_int_equal(st.flags & (IA_BS_DATA | IA_BS_ZERO | IA_BS_OFFSET),
                         IA_BS_ZERO | IA_BS_OFFSET);
        assert_int_equal(st.len, 65536);
        assert_int_equal(ia_file_status(f, 65536, f->len - 65536, &st, &err), 0);
        assert_true(st.flags & IA_BS_DATA);
        assert_int_equal(st.len, 4096);
        assert_int_equal(st.host_off, 65536);
        /* Inside the cached data extent: same answer. */
        assert_int_equal(ia_file_status(f, 66000, 100000, &st, &err), 0);
        assert_true(st.flags & IA_BS_DATA);
        assert_int_equal(st.len, 69632 - 66000);
        assert_int_equal(ia_file_status(f, 69632, f->len - 69632, &st, &err), 0);
        assert_true(st.flags & IA_BS_ZERO);
        assert_int_equal(st.len, f->len - 69632);
        assert_true(st.eof);
        /* At or past the end: an empty answer flagged eof. */
        assert_int_equal(ia_file_status(f, f->len, 512, &st, &err), 0);
        assert_int_equal(st.len, 0);
        assert_true(st.eof);
        ia_file_free(f);
        unlink(path);
}

static void test_refuses_non_regular(void **state)
{
        char path[128];
        struct ia_error err;

        (void)state;
        snprintf(path, sizeof(path), "%s/fifo", tmpdir);
        assert_int_equal(mkfifo(path, 0600), 0);
        /* Must neither block nor succeed. */
        assert_null(ia_source_open_file(AT_FDCWD, path, 0, &err));
        assert_int_equal(err.cat, IA_ERR_REFUSED);
        assert_string_equal(err.reason, "not-regular");
        unlink(path);
        assert_null(ia_source_open_file(AT_FDCWD, tmpdir, 0, &err));
        assert_int_equal(err.cat, IA_ERR_REFUSED);
        snprintf(path, sizeof(path), "%s/none", tmpdir);
        assert_null(ia_source_open_file(AT_FDCWD, path, 0, &err));
        assert_int_equal(err.cat, IA_ERR_MISSING);
        assert_null(ia_source_open_file(AT_FDCWD, "/dev/null", 0, &err));
        assert_int_equal(err.cat, IA_ERR_REFUSED);
}

/* The component walk behind ia_source_open_beneath() for long names: RESOLVE_BENEATH's rules. */
static void test_beneath_walk(void **state)
{
        char p[200];
        struct stat a, b;
        int rootfd, fd;

        (void)state;
        snprintf(p, sizeof(p), "%s/w", tmpdir);
        assert_int_equal(mkdir(p, 0700), 0);
        snprintf(p, sizeof(p), "%s/w/sub", tmpdir);
        assert_int_equal(mkdir(p, 0700), 0);
        snprintf(p, sizeof(p), "%s/w/in.raw", tmpdir);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(stat(p, &a), 0);
        snprintf(p, sizeof(p), "%s/w/sub/up", tmpdir);
        assert_int_equal(symlink("../in.raw", p), 0);
        snprintf(p, sizeof(p), "%s/w/abs", tmpdir);
        assert_int_equal(symlink("/etc/hostname", p), 0);
        snprintf(p, sizeof(p), "%s/w/loop", tmpdir);
        assert_int_equal(symlink("loop", p), 0);
        snprintf(p, sizeof(p), "%s/w", tmpdir);
        rootfd = open(p, O_PATH | O_DIRECTORY);
        assert_true(rootfd >= 0);

        const char *same[] = {"in.raw", "./in.raw", "sub/../in.raw", "sub//up", "sub/./../sub/up"};
        for (size_t i = 0; i < sizeof(same) / sizeof(*same); i++) {
                fd = ia_open_beneath_walk(rootfd, same[i], 0);
                assert_true(fd >= 0);
                assert_int_equal(fstat(fd, &b), 0);
                assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
                close(fd);
        }
        fd = ia_open_beneath_walk(rootfd, "sub/..", 0);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(ia_open_beneath_walk(rootfd, "..", 0), -1);
        assert_int_equal(errno, EXDEV);
        assert_int_equal(ia_open_beneath_walk(rootfd, "sub/../../w/in.raw", 0), -1);
        assert_int_equal(errno, EXDEV);
        assert_int_equal(ia_open_beneath_walk(rootfd, "abs", 0), -1);
        assert_int_equal(errno, EXDEV);
        assert_int_equal(ia_open_beneath_walk(rootfd, "/etc/hostname", 0), -1);
        assert_int_equal(errno, EXDEV);
        assert_int_equal(ia_open_beneath_walk(rootfd, "loop", 0), -1);
        assert_int_equal(errno, ELOOP);
        assert_int_equal(ia_open_beneath_walk(rootfd, "in.raw/x", 0), -1);
        assert_int_equal(errno, ENOTDIR);
        assert_int_equal(ia_open_beneath_walk(rootfd, "nothing", 0), -1);
        assert_int_equal(errno, ENOENT);
        /* nofollow: no symlink, no ".." */
        assert_int_equal(ia_open_beneath_walk(rootfd, "sub/up", 1), -1);
        assert_int_equal(errno, ELOOP);
        assert_int_equal(ia_open_beneath_walk(rootfd, "sub/../in.raw", 1), -1);
        assert_int_equal(errno, EXDEV);
        close(rootfd);
        for (const char *n = "w/sub/up\0w/abs\0w/loop\0w/in.raw\0"; *n; n += strlen(n) + 1) {
                snprintf(p, sizeof(p), "%s/%s", tmpdir, n);
                unlink(p);
        }
        snprintf(p, sizeof(p), "%s/w/sub", tmpdir);
        rmdir(p);
        snprintf(p, sizeof(p), "%s/w", tmpdir);
        rmdir(p);
}

static void test_path_lexical(void **state)
{
        const char *cases[][2] = {
            {"/a/b/../c/./d//", "/a/c/d"}, {"/", "/"}, {"/..", "/"}, {"//x/", "/x"}, {"/a/..", "/"},
            {"/a/b/c/../../..", "/"},
        };
        char *r, *cwd;

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                r = ia_path_lexical(cases[i][0]);
                assert_non_null(r);
                assert_string_equal(r, cases[i][1]);
                free(r);
        }
        cwd = getcwd(NULL, 0);
        r = ia_path_lexical("./x/../y/");
        assert_non_null(r);
        assert_int_equal(strncmp(r, cwd, strlen(cwd)), 0);
        assert_string_equal(r + strlen(cwd), strcmp(cwd, "/") == 0 ? "y" : "/y");
        free(r);
        free(cwd);
}

/* Messages are never cut; a struct ia_error stays a value. */
static void test_error_whole(void **state)
{
        char *name = malloc(20001);
        struct ia_error err, copy;
        const char *m;

        (void)state;
        memset(name, 'n', 20000);
        name[20000] = '\0';
        ia_error_errno(&err, IA_ERR_IO, EACCES, "cannot open '%s'", name);
        m = ia_error_msg(&err);
        assert_int_equal(strlen(m),
                         strlen("cannot open ''") + 20000 + strlen(": Permission denied"));
        assert_non_null(strstr(m, "': Permission denied"));
        assert_int_equal(strlen(err.msg), IA_ERROR_MSG_MAX - 1);
        copy = err;
        ia_error_prefix(&copy, "backing file of '%s'", name);
        assert_int_equal(strlen(ia_error_msg(&copy)),
                         strlen(m) + 20000 + strlen("backing file of '': "));
        assert_string_equal(ia_error_msg(&err), m); /* the original is unchanged */
        assert_string_equal(ia_error_msg(&copy) + 20000 + strlen("backing file of '': "), m);
        ia_error_set(&copy, IA_ERR_IO, "short");
        assert_string_equal(ia_error_msg(&copy), "short");
        assert_null(copy.full);
        ia_error_set(&err, IA_ERR_IO, "'%s'", name);
        assert_ptr_equal(ia_error_msg(&err), ia_error_keep(ia_error_msg(&err), 20002));
        ia_error_clear(&err);
        assert_string_equal(ia_error_msg(&err), "");
        /* a prefix on a short message stays inline */
        ia_error_set(&err, IA_ERR_IO, "cause");
        ia_error_prefix(&err, "%s", "what");
        assert_string_equal(err.msg, "what: cause");
        assert_null(err.full);
        free(name);
}

static void test_beneath(void **state)
{
        char path[160], link[160];
        struct ia_error err;
        struct ia_source *src;
        int rootfd, fd;

        (void)state;
        snprintf(path, sizeof(path), "%s/in.raw", tmpdir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        close(fd);
        snprintf(link, sizeof(link), "%s/out-link", tmpdir);
        assert_int_equal(symlink("/etc/hostname", link), 0);
        rootfd = open(tmpdir, O_PATH | O_DIRECTORY);
        assert_true(rootfd >= 0);
        src = ia_source_open_beneath(rootfd, "in.raw", NULL, &err);
        assert_non_null(src);
        ia_source_unref(src);
        assert_null(ia_source_open_beneath(rootfd, "../etc/hostname", NULL, &err));
        assert_string_equal(err.reason, "outside-roots");
        assert_null(ia_source_open_beneath(rootfd, "out-link", "the link", &err));
        assert_string_equal(err.reason, "outside-roots");
        assert_non_null(strstr(err.msg, "'the link'"));
        assert_null(ia_source_open_beneath(rootfd, "/etc/hostname", NULL, &err));
        assert_string_equal(err.reason, "outside-roots");
        /* The fallback for kernels without openat2 refuses every symlink and "..". */
        fd = ia_open_beneath_by_components(rootfd, "in.raw");
        assert_true(fd >= 0);
        close(fd);
        fd = ia_open_beneath_by_components(rootfd, "./in.raw");
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(ia_open_beneath_by_components(rootfd, "out-link"), -1);
        assert_int_equal(errno, ELOOP);
        assert_int_equal(ia_open_beneath_by_components(rootfd, "../etc/hostname"), -1);
        assert_int_equal(errno, EXDEV);
        assert_int_equal(ia_open_beneath_by_components(rootfd, "/etc/hostname"), -1);
        assert_int_equal(errno, EXDEV);
        assert_int_equal(ia_open_beneath_by_components(rootfd, "in.raw/x"), -1);
        close(rootfd);
        unlink(link);
        unlink(path);
        rmdir(tmpdir);
}

/* Is the file system of path a tmpfs (its pages are the file: never out of memory)? */
static bool on_tmpfs(const char *path)
{
        struct statfs fs;

        return statfs(path, &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

/*
 * ia_read_nowait: the bytes when they are in memory; IA_NOT_IN_MEMORY when
 * the page cache had to drop them (POSIX_FADV_DONTNEED of a clean file),
 * and then the bytes by an ordinary read; a source without the method (a
 * window) is read as always; the end of the source bounds it.
 */
static void test_read_nowait(void **state)
{
        char path[128];
        uint8_t buf[8192];
        struct ia_error err;
        struct ia_source *src, *win;
        int fd;

        (void)state;
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/ia-src-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
        snprintf(path, sizeof(path), "%s/cold.bin", tmpdir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, pattern, 6000, 0), 6000);
        assert_int_equal(fdatasync(fd), 0); /* clean pages: the kernel may drop them */
        close(fd);

        src = ia_source_open_file(AT_FDCWD, path, 0, &err);
        assert_non_null(src);
        /* just written: in memory */
        assert_int_equal(ia_read_nowait(src, buf, 4096, 0, &err), 4096);
        assert_memory_equal(buf, pattern, 4096);
        /* short at the end only, nothing past it */
        assert_int_equal(ia_read_nowait(src, buf, sizeof(buf), 4096, &err), 6000 - 4096);
        assert_memory_equal(buf, pattern + 4096, 6000 - 4096);
        assert_int_equal(ia_read_nowait(src, buf, sizeof(buf), 6000, &err), 0);
        assert_int_equal(ia_read_nowait(src, buf, sizeof(buf), UINT64_MAX, &err), 0);

        /*
         * Dropped from the page cache: not in memory, then read as always.
         * POSIX_FADV_DONTNEED drops no page still in another CPU's batch of
         * pages not yet on the LRU lists (seen under a parallel ctest): asked
         * again until the read finds the page gone, 100 times at most.
         */
        if (!on_tmpfs(path)) {
                int64_t got = 0;

                for (int tries = 0; tries < 100 && got != IA_NOT_IN_MEMORY; tries++) {
                        fd = open(path, O_RDONLY);
                        assert_true(fd >= 0);
                        assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
                        close(fd);
                        got = ia_read_nowait(src, buf, 4096, 0, &err);
                        if (got != IA_NOT_IN_MEMORY)
                                usleep(10000);
                }
                assert_int_equal(got, IA_NOT_IN_MEMORY);
                memset(buf, 0, sizeof(buf));
                assert_int_equal(ia_read_upto(src, buf, 4096, 0, &err), 4096);
                assert_memory_equal(buf, pattern, 4096);
        }
        assert_int_equal(ia_read_nowait(src, buf, 4096, 0, &err), 4096);
        assert_memory_equal(buf, pattern, 4096);

        /* a window has no such method: ia_read_upto's answer, bounded by the window */
        win = ia_source_window(src, 100, 50, &err);
        assert_non_null(win);
        assert_int_equal(ia_read_nowait(win, buf, sizeof(buf), 10, &err), 40);
        assert_memory_equal(buf, pattern + 110, 40);
        ia_source_unref(win);
        ia_source_unref(src);
        unlink(path);
        rmdir(tmpdir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_read_bounds),  cmocka_unit_test(test_short_reads_loop),
            cmocka_unit_test(test_window),       cmocka_unit_test(test_faulty),
            cmocka_unit_test(test_file_holes),   cmocka_unit_test(test_refuses_non_regular),
            cmocka_unit_test(test_beneath_walk), cmocka_unit_test(test_path_lexical),
            cmocka_unit_test(test_error_whole),  cmocka_unit_test(test_beneath),
            cmocka_unit_test(test_read_nowait),
        };
        return cmocka_run_group_tests(tests, setup, NULL);
}
