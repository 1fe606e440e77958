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
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
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

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_read_bounds), cmocka_unit_test(test_short_reads_loop),
            cmocka_unit_test(test_window),      cmocka_unit_test(test_faulty),
            cmocka_unit_test(test_file_holes),  cmocka_unit_test(test_refuses_non_regular),
            cmocka_unit_test(test_beneath),
        };
        return cmocka_run_group_tests(tests, setup, NULL);
}
