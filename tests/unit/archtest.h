/*
 * Helpers of the archive reader's unit tests (test_archive.c, test_archive_limits.c):
 * a temporary directory per test, shell commands, patterned bytes, archives opened
 * with given limits, and the tree both files archive.
 */
#ifndef IA_ARCHTEST_H
#define IA_ARCHTEST_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>

#include "archives.h"

static char tmp[256];

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void sh(const char *fmt, ...)
{
        char cmd[4096];
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        assert_true(r > 0 && (size_t)r < sizeof(cmd));
        r = system(cmd);
        if (r != 0)
                fail_msg("command failed (%d): %s", r, cmd);
}

static inline void need_tool(const char *tool, const char *package)
{
        char cmd[256];

        snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
        if (system(cmd) != 0)
                fail_msg("the '%s' command is missing: install the '%s' package (tests/setup.sh)",
                         tool, package);
}

static char *path(const char *name)
{
        static char buf[4][512];
        static int k;
        char *p = buf[k++ % 4];

        snprintf(p, 512, "%s/%s", tmp, name);
        return p;
}

/* Deterministic, incompressible bytes. */
static inline void fill(uint8_t *p, size_t len, uint32_t seed)
{
        uint32_t x = seed * 2654435761u + 1;

        for (size_t i = 0; i < len; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                p[i] = (uint8_t)x;
        }
}

static inline void write_file(const char *name, const void *buf, size_t len)
{
        int fd = open(path(name), O_WRONLY | O_CREAT | O_TRUNC, 0644);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, buf, len), (ssize_t)len);
        close(fd);
}

static uint8_t *pattern(size_t len, uint32_t seed)
{
        uint8_t *p = malloc(len ? len : 1);

        assert_non_null(p);
        fill(p, len, seed);
        return p;
}

static struct ia_archive *open_archive(const char *name, const struct ia_archive_limits *lim)
{
        struct ia_error err = {0};
        struct ia_source *src = ia_source_open_file(AT_FDCWD, path(name), 0, &err);
        struct ia_archive *a = NULL;

        if (!src)
                fail_msg("open %s: %s", name, err.msg);
        if (ia_archive_open(src, name, lim, &a, &err) < 0)
                fail_msg("archive open %s: %s", name, err.msg);
        ia_source_unref(src);
        return a;
}

static inline int open_archive_err(const char *name, const struct ia_archive_limits *lim,
                                   struct ia_error *err)
{
        struct ia_source *src = ia_source_open_file(AT_FDCWD, path(name), 0, err);
        struct ia_archive *a = NULL;
        int r;

        assert_non_null(src);
        r = ia_archive_open(src, name, lim, &a, err);
        ia_source_unref(src);
        ia_archive_free(a);
        return r;
}

static const struct ia_archive_member *must_find(const struct ia_archive *a, const char *name)
{
        const struct ia_archive_member *m = ia_archive_find(a, name);

        if (!m)
                fail_msg("member '%s' not found", name);
        return m;
}

/* The member's bytes equal want. */
static inline void check_bytes(const struct ia_archive_member *m, const uint8_t *want, size_t len)
{
        struct ia_error err = {0};
        uint8_t *got;

        if (!m->src)
                fail_msg("member '%s' has no source: %s", m->name, m->error.msg);
        assert_int_equal(m->src->size, len);
        got = malloc(len ? len : 1);
        assert_non_null(got);
        if (ia_read(m->src, got, len, 0, "member", &err) < 0)
                fail_msg("reading '%s': %s", m->name, err.msg);
        assert_memory_equal(got, want, len);
        free(got);
}

static inline int setup(void **state)
{
        const char *t = getenv("TMPDIR");

        (void)state;
        snprintf(tmp, sizeof(tmp), "%s/ia-archive-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmp))
                return -1;
        return 0;
}

static inline int teardown(void **state)
{
        char cmd[512];

        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
        return system(cmd) == 0 ? 0 : -1;
}

/* A tree: in/a.bin (300 KiB), in/b.txt, in/empty, in/sub/<long name> */
#define A_LEN (300u * 1024 + 17)
#define LONGNAME                                                                                   \
        "sub/a-name-well-past-the-one-hundred-bytes-of-a-ustar-name-field/"                        \
        "and-then-some-more-to-need-a-prefix.bin"

static inline void make_tree(void)
{
        uint8_t *a = pattern(A_LEN, 1);

        sh("rm -rf '%s' && mkdir -p '%s/sub/a-name-well-past-the-one-hundred-bytes-of-a-ustar-"
           "name-field'",
           path("in"), path("in"));
        write_file("in/a.bin", a, A_LEN);
        write_file("in/b.txt", "hello, archive\n", 15);
        write_file("in/empty", "", 0);
        write_file("in/" LONGNAME, a, 5000);
        free(a);
}

static inline void check_tree(struct ia_archive *a, bool spooled)
{
        uint8_t *want = pattern(A_LEN, 1);
        const char *names[] = {"a.bin", "b.txt", "empty", LONGNAME};

        check_bytes(must_find(a, "a.bin"), want, A_LEN);
        check_bytes(must_find(a, "./b.txt"), (const uint8_t *)"hello, archive\n", 15);
        check_bytes(must_find(a, "empty"), (const uint8_t *)"", 0);
        check_bytes(must_find(a, LONGNAME), want, 5000);
        for (size_t i = 0; i < 4; i++) {
                const struct ia_archive_member *m = must_find(a, names[i]);

                assert_int_equal(m->type, IA_MEMBER_FILE);
                if (spooled && m->size > 0)
                        assert_true(m->flags & IA_MEMBER_SPOOLED);
                if (!spooled)
                        assert_false(m->flags & IA_MEMBER_SPOOLED);
        }
        assert_int_equal(must_find(a, "sub")->type, IA_MEMBER_DIR);
        assert_null(ia_archive_error(a));
        free(want);
}

static inline void add_entry(struct archive *w, const char *name, unsigned type, const char *link,
                             const char *hardlink, const void *data, size_t len)
{
        struct archive_entry *e = archive_entry_new();

        archive_entry_copy_pathname(e, name);
        archive_entry_set_filetype(e, type);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, (la_int64_t)len);
        if (link)
                archive_entry_copy_symlink(e, link);
        if (hardlink)
                archive_entry_copy_hardlink(e, hardlink);
        if (type == AE_IFCHR)
                archive_entry_set_rdev(e, 0x0103);
        assert_true(archive_write_header(w, e) >= ARCHIVE_WARN);
        if (len)
                assert_int_equal(archive_write_data(w, data, len), (la_ssize_t)len);
        archive_entry_free(e);
}

#endif
