/*
 * Tests of the archive reader's limits (scanner/archive_io.c, archive_walk.c): truncated
 * archives, decompression bombs, the spool budget, member, name and header caps.
 * Archives are built at test time; missing tools fail the test with the package to install.
 */
#define _GNU_SOURCE
#include "archtest.h"

static void test_truncated(void **state)
{
        struct ia_archive *a;
        const struct ia_error *e;
        const struct ia_archive_member *m;
        uint8_t *p1 = pattern(100000, 11), *p2 = pattern(100000, 12);
        struct stat st;

        (void)state;
        need_tool("tar", "tar");
        need_tool("gzip", "gzip");
        sh("rm -rf '%s' && mkdir '%s'", path("tr"), path("tr"));
        write_file("tr/1.bin", p1, 100000);
        write_file("tr/2.bin", p2, 100000);
        write_file("tr/3.bin", p2, 100000);
        sh("tar --format=gnu -cf '%s' -C '%s' 1.bin 2.bin 3.bin", path("tr.tar"), path("tr"));
        sh("head -c 250000 '%s' > '%s'", path("tr.tar"), path("cut.tar"));
        a = open_archive("cut.tar", NULL);
        e = ia_archive_error(a);
        assert_non_null(e);
        assert_int_equal(e->cat, IA_ERR_TRUNCATED);
        check_bytes(must_find(a, "1.bin"), p1, 100000);
        check_bytes(must_find(a, "2.bin"), p2, 100000);
        m = must_find(a, "3.bin");
        assert_null(m->src);
        assert_true(m->flags & IA_MEMBER_TRUNCATED);
        assert_non_null(strstr(m->error.msg, "3.bin"));
        ia_archive_free(a);

        /* A truncated gzip stream: the members before the cut stay readable. */
        sh("gzip -c < '%s' > '%s'", path("tr.tar"), path("tr.tar.gz"));
        assert_int_equal(stat(path("tr.tar.gz"), &st), 0);
        /* Cut well inside 3.bin: libarchive drops the decompressed block the cut falls in. */
        sh("head -c %lld '%s' > '%s'", (long long)st.st_size - 30000, path("tr.tar.gz"),
           path("cut.tar.gz"));
        a = open_archive("cut.tar.gz", NULL);
        e = ia_archive_error(a);
        assert_non_null(e);
        assert_int_equal(e->cat, IA_ERR_TRUNCATED);
        check_bytes(must_find(a, "1.bin"), p1, 100000);
        check_bytes(must_find(a, "2.bin"), p2, 100000);
        m = must_find(a, "3.bin");
        assert_null(m->src);
        assert_true(m->flags & IA_MEMBER_TRUNCATED);
        ia_archive_free(a);
        free(p1);
        free(p2);
}

static double now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 1 GiB of zeros in a tar, as gzip (about 1 MB) and as zstd. */
static void make_bombs(void)
{
        struct stat st;

        if (stat(path("bomb.tar.gz"), &st) == 0)
                return;
        need_tool("tar", "tar");
        need_tool("gzip", "gzip");
        need_tool("zstd", "zstd");
        sh("rm -rf '%s' && mkdir '%s' && truncate -s 1G '%s'", path("b"), path("b"),
           path("b/zeros.img"));
        /* gzip members concatenate: compress 64 MiB of zeros once, repeat it. */
        sh("cd '%s' && tar --format=gnu -cf - zeros.img | head -c 512 | gzip -9 > hdr.gz && "
           "head -c 64M /dev/zero | gzip -9 > z64.gz && head -c 1024 /dev/zero | gzip -9 > "
           "end.gz && (cat hdr.gz; for i in $(seq 16); do cat z64.gz; done; cat end.gz) > "
           "'%s'",
           path("b"), path("bomb.tar.gz"));
        sh("cd '%s' && tar --format=gnu -cf - zeros.img | zstd -q -c > '%s'", path("b"),
           path("bomb.tar.zst"));
}

static void test_bomb(void **state)
{
        struct ia_archive_limits lim = {0};
        const struct ia_archive_member *m;
        const struct ia_error *e;
        struct ia_archive *a;
        double t;

        (void)state;
        make_bombs();

        /* Budget smaller than the member: refused at once, and skipping hits the ratio. */
        lim.spool_budget = 64u << 20;
        lim.max_ratio = 100;
        t = now();
        a = open_archive("bomb.tar.gz", &lim);
        t = now() - t;
        m = must_find(a, "zeros.img");
        assert_null(m->src);
        assert_int_equal(m->error.cat, IA_ERR_LIMIT);
        e = ia_archive_error(a);
        assert_non_null(e);
        assert_int_equal(e->cat, IA_ERR_LIMIT);
        assert_non_null(strstr(e->msg, "ratio"));
        assert_non_null(strstr(e->msg, "zeros.img"));
        assert_true(t < 5.0);
        ia_archive_free(a);

        /* Budget large enough: spooling starts and the ratio stops it. */
        lim.spool_budget = 0;
        t = now();
        a = open_archive("bomb.tar.gz", &lim);
        t = now() - t;
        m = must_find(a, "zeros.img");
        assert_null(m->src);
        assert_int_equal(m->error.cat, IA_ERR_LIMIT);
        assert_non_null(strstr(m->error.msg, "ratio"));
        assert_true(t < 5.0);
        ia_archive_free(a);

        /* A zstd bomb (ratio far beyond 1000:1) against a 1000:1 cap.  The default cap
         * is higher (real, mostly empty disk images compress past 1000:1 with gzip);
         * the spool budget and the decompressed-bytes cap bound the rest. */
        memset(&lim, 0, sizeof(lim));
        lim.max_ratio = 1000;
        t = now();
        a = open_archive("bomb.tar.zst", &lim);
        t = now() - t;
        m = must_find(a, "zeros.img");
        assert_null(m->src);
        assert_int_equal(m->error.cat, IA_ERR_LIMIT);
        assert_true(t < 5.0);
        ia_archive_free(a);

        /* The decompressed-bytes cap alone. */
        lim.max_ratio = 1u << 30;
        lim.max_decompressed = 32u << 20;
        a = open_archive("bomb.tar.zst", &lim);
        e = ia_archive_error(a);
        assert_non_null(e);
        assert_int_equal(e->cat, IA_ERR_LIMIT);
        assert_non_null(strstr(e->msg, "33554432"));
        ia_archive_free(a);
}

static void test_spool_budget(void **state)
{
        struct ia_archive_limits lim = {.spool_budget = (5u << 20) / 2};
        struct ia_archive *a;
        uint8_t *p = pattern(1 << 20, 13);

        (void)state;
        need_tool("tar", "tar");
        need_tool("gzip", "gzip");
        sh("rm -rf '%s' && mkdir '%s'", path("bu"), path("bu"));
        write_file("bu/1", p, 1 << 20);
        write_file("bu/2", p, 1 << 20);
        write_file("bu/3", p, 1 << 20);
        write_file("bu/4", "four", 4);
        sh("tar -cf - -C '%s' 1 2 3 4 | gzip -c > '%s'", path("bu"), path("bu.tar.gz"));
        a = open_archive("bu.tar.gz", &lim);
        check_bytes(must_find(a, "1"), p, 1 << 20);
        check_bytes(must_find(a, "2"), p, 1 << 20);
        assert_null(must_find(a, "3")->src);
        assert_int_equal(must_find(a, "3")->error.cat, IA_ERR_LIMIT);
        assert_non_null(strstr(must_find(a, "3")->error.msg, "2621440"));
        check_bytes(must_find(a, "4"), (const uint8_t *)"four", 4); /* the walk went on */
        assert_null(ia_archive_error(a));
        ia_archive_free(a);
        free(p);
}

static void test_member_cap(void **state)
{
        struct ia_archive_limits lim = {.max_members = 10};
        struct ia_archive *a;
        const struct ia_error *e;

        (void)state;
        need_tool("tar", "tar");
        sh("rm -rf '%s' && mkdir '%s' && cd '%s' && for i in $(seq 50); do echo $i > f$i; "
           "done && tar -cf ../many.tar f*",
           path("many"), path("many"), path("many"));
        a = open_archive("many.tar", &lim);
        assert_int_equal(ia_archive_count(a), 10);
        e = ia_archive_error(a);
        assert_non_null(e);
        assert_int_equal(e->cat, IA_ERR_LIMIT);
        assert_non_null(strstr(e->msg, "10"));
        ia_archive_free(a);
        a = open_archive("many.tar", NULL);
        assert_int_equal(ia_archive_count(a), 50);
        ia_archive_free(a);
}

/* A pax name of any length costs a few bytes compressed: names are capped. */
static void test_name_caps(void **state)
{
        struct ia_archive_limits lim = {.name_budget = 1000};
        struct ia_archive *a;
        const struct ia_error *e;

        (void)state;
        need_tool("python3", "python3");
        sh("cd '%s' && python3 -c '\n"
           "import tarfile\n"
           "with tarfile.open(\"longname.tar.gz\", \"w:gz\") as t:\n"
           "    for n in (\"short\", \"x\" * 4096, \"y\" * 4097, \"after\"):\n"
           "        t.addfile(tarfile.TarInfo(n))\n"
           "with tarfile.open(\"longlink.tar\", \"w\") as t:\n"
           "    t.addfile(tarfile.TarInfo(\"first\"))\n"
           "    i = tarfile.TarInfo(\"l\"); i.type = tarfile.SYMTYPE; i.linkname = \"z\" * 5000\n"
           "    t.addfile(i)\n"
           "with tarfile.open(\"names.tar\", \"w\") as t:\n"
           "    for n in range(100):\n"
           "        t.addfile(tarfile.TarInfo(\"%%02d-\" %% n + \"n\" * 95))\n"
           "'",
           tmp);
        a = open_archive("longname.tar.gz", NULL);
        assert_int_equal(ia_archive_count(a), 2); /* the walk stops at the long name */
        assert_non_null(ia_archive_find(a, "short"));
        e = ia_archive_error(a);
        assert_non_null(e);
        assert_int_equal(e->cat, IA_ERR_LIMIT);
        assert_non_null(strstr(e->msg, "member 3 has a name of 4097 bytes, over the cap of 4096"));
        ia_archive_free(a);

        a = open_archive("longlink.tar", NULL);
        assert_int_equal(ia_archive_count(a), 1);
        e = ia_archive_error(a);
        assert_non_null(e);
        assert_non_null(strstr(e->msg, "member 2 has a link target of 5000 bytes"));
        ia_archive_free(a);

        a = open_archive("names.tar", &lim);
        assert_int_equal(ia_archive_count(a), 10); /* 10 names of 98 bytes fit in 1000 */
        e = ia_archive_error(a);
        assert_non_null(e);
        assert_int_equal(e->cat, IA_ERR_LIMIT);
        assert_non_null(strstr(e->msg, "member names total more than 1000 bytes"));
        ia_archive_free(a);
        a = open_archive("names.tar", NULL);
        assert_int_equal(ia_archive_count(a), 100);
        assert_null(ia_archive_error(a));
        ia_archive_free(a);
}

/*
 * libarchive holds a GNU sparse map whole in memory before it returns the
 * header (48 bytes an entry, from as little as 4 bytes of map text), and a
 * compressed map of millions of entries is a few kilobytes: a member's
 * headers are capped, counted in decompressed bytes.
 */
static void test_header_cap(void **state)
{
        const char *variants[] = {"--format=gnu", "--format=pax --sparse-version=1.0"};
        const char *filters[] = {"cat", "gzip -c", "bzip2 -c"};
        struct ia_archive_limits lim = {.max_header = 64 << 10};
        const unsigned extents = 6000; /* about 100 KiB of map in either format */

        (void)state;
        need_tool("tar", "tar");
        /* a first member of 5 MiB: its data is not header bytes of the next */
        sh("rm -rf '%s' && mkdir '%s' && head -c 5M /dev/urandom > '%s' && echo after > '%s'",
           path("hc"), path("hc"), path("hc/first"), path("hc/after"));
        {
                int fd = open(path("hc/s.img"), O_WRONLY | O_CREAT | O_TRUNC, 0644);

                assert_true(fd >= 0);
                for (unsigned i = 0; i < extents; i++)
                        assert_int_equal(pwrite(fd, "x", 1, (off_t)i * 16384), 1);
                assert_int_equal(ftruncate(fd, (off_t)extents * 16384), 0);
                close(fd);
        }
        for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
                for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]); f++) {
                        const struct ia_archive_member *m;
                        const struct ia_error *e;
                        struct ia_archive *a;
                        struct ia_error err = {0};
                        uint8_t b = 0;

                        sh("tar %s --sparse -cf - -C '%s' first s.img after | %s > '%s'",
                           variants[v], path("hc"), filters[f], path("hc.tar"));
                        a = open_archive("hc.tar", &lim);
                        e = ia_archive_error(a);
                        if (!e)
                                fail_msg("%s | %s: no error", variants[v], filters[f]);
                        assert_int_equal(e->cat, IA_ERR_LIMIT);
                        assert_non_null(strstr(e->msg, "headers (pax, GNU sparse map) take more "
                                                       "than 65536 bytes"));
                        assert_int_equal(ia_archive_count(a), 1);
                        assert_non_null(ia_archive_find(a, "first"));
                        ia_archive_free(a);

                        /* under the default cap the member is whole */
                        a = open_archive("hc.tar", NULL);
                        assert_null(ia_archive_error(a));
                        assert_int_equal(ia_archive_count(a), 3);
                        m = must_find(a, "s.img");
                        assert_non_null(m->src);
                        assert_int_equal(m->size, (uint64_t)extents * 16384);
                        assert_int_equal(
                            ia_read(m->src, &b, 1, (uint64_t)(extents - 1) * 16384, "x", &err), 0);
                        assert_int_equal(b, 'x');
                        assert_int_equal(ia_read(m->src, &b, 1, 16383, "hole", &err), 0);
                        assert_int_equal(b, 0);
                        ia_archive_free(a);
                }
        }
        /*
         * zip seeks to its central directory and to each member: no count of
         * header bytes there (its headers are small), whatever lies between.
         */
        need_tool("zip", "zip");
        for (int level = 0; level <= 6; level += 6) {
                struct ia_archive *a;

                sh("cd '%s' && rm -f ../hc.zip && zip -q -%d ../hc.zip first s.img after",
                   path("hc"), level);
                a = open_archive("hc.zip", &lim);
                if (ia_archive_error(a))
                        fail_msg("zip -%d: %s", level, ia_archive_error(a)->msg);
                assert_int_equal(ia_archive_count(a), 3);
                assert_non_null(must_find(a, "after")->src);
                ia_archive_free(a);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_truncated),    cmocka_unit_test(test_bomb),
            cmocka_unit_test(test_spool_budget), cmocka_unit_test(test_member_cap),
            cmocka_unit_test(test_name_caps),    cmocka_unit_test(test_header_cap),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
