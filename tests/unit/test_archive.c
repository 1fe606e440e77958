/*
 * Tests of the archive reader (scanner/archives.h, scanner/archive*.c): archives built at test time
 * (tar, gzip, xz, zstd, bzip2, zip command-line tools, and libarchive's write API for hostile names
 * and special members), read back through member sources and compared with the bytes that went in.
 * Missing tools fail the test with the package to install; nothing is skipped silently.
 */
#define _GNU_SOURCE
#include "archtest.h"

static void test_tar_windows(void **state)
{
        const char *formats[] = {"gnu", "pax", "ustar", "oldgnu", "posix"};

        (void)state;
        need_tool("tar", "tar");
        make_tree();
        for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
                struct ia_archive *a;

                sh("tar --format=%s -cf '%s' -C '%s' a.bin b.txt empty sub", formats[i],
                   path("t.tar"), path("in"));
                a = open_archive("t.tar", NULL);
                check_tree(a, false);
                ia_archive_free(a);
        }
}

static void test_compressed_spool(void **state)
{
        static const struct {
                const char *tool, *package, *ext;
        } comp[] = {{"gzip", "gzip", "gz"},
                    {"xz", "xz-utils", "xz"},
                    {"zstd", "zstd", "zst"},
                    {"bzip2", "bzip2", "bz2"}};

        (void)state;
        need_tool("tar", "tar");
        make_tree();
        sh("tar --format=pax -cf '%s' -C '%s' a.bin b.txt empty sub", path("c.tar"), path("in"));
        for (size_t i = 0; i < sizeof(comp) / sizeof(comp[0]); i++) {
                struct ia_archive_limits lim = {0};
                struct ia_archive *a;
                char name[64];

                need_tool(comp[i].tool, comp[i].package);
                snprintf(name, sizeof(name), "c.tar.%s", comp[i].ext);
                sh("%s -c < '%s' > '%s'", comp[i].tool, path("c.tar"), path(name));
                a = open_archive(name, NULL);
                check_tree(a, true);
                ia_archive_free(a);
                /* Tiny memory allowance: members spill to the temporary file. */
                lim.spool_memory = 4096;
                a = open_archive(name, &lim);
                check_tree(a, true);
                ia_archive_free(a);
        }
}

/* Where a spooled member's data is, as seek reports it; the end of its first data run in *hole. */
static uint64_t spooled_data(const char *archive, uint64_t memory, uint64_t *hole)
{
        /* A mostly empty image compresses past 1000:1: raise the ratio cap for it. */
        struct ia_archive_limits lim = {.spool_memory = memory, .max_ratio = 100000};
        const struct ia_archive_member *m;
        struct ia_archive *a;
        uint64_t r = 0;
        int en = 0;

        a = open_archive(archive, &lim);
        m = must_find(a, "z.img");
        if (!m->src)
                fail_msg("%s", m->error.msg);
        assert_true(m->flags & IA_MEMBER_SPOOLED);
        assert_int_equal(ia_source_seek(m->src, 0, IA_SEEK_DATA, &r, &en), 0);
        assert_int_equal(ia_source_seek(m->src, r, IA_SEEK_HOLE, hole, &en), 0);
        ia_archive_free(a);
        return r;
}

static void test_spool_holes(void **state)
{
        uint64_t data, hole;

        (void)state;
        need_tool("tar", "tar");
        need_tool("gzip", "gzip");
        sh("rm -rf '%s' && mkdir '%s' && truncate -s 8M '%s'", path("h"), path("h"),
           path("h/z.img"));
        sh("printf 'data' | dd of='%s' bs=1 seek=%d conv=notrunc status=none", path("h/z.img"),
           6 << 20);
        sh("tar -cf - -C '%s' z.img | gzip -c > '%s'", path("h"), path("h.tar.gz"));
        sh("tar --format=gnu -S -cf - -C '%s' z.img | gzip -c > '%s'", path("h"),
           path("hs.tar.gz"));
        /*
         * A member stored whole is data from end to end, zeros included, as in
         * place in an uncompressed tar, whether the spool keeps it in its file
         * (a memory allowance of 1 byte; zero blocks are holes on disk there)
         * or in memory (the default allowance).
         */
        for (int i = 0; i < 2; i++) {
                data = spooled_data("h.tar.gz", i ? 0 : 1, &hole);
                assert_int_equal(data, 0);
                assert_int_equal(hole, 8 << 20);
        }
        /* A sparse member's holes are holes, in memory and in the file alike. */
        for (int i = 0; i < 2; i++) {
                data = spooled_data("hs.tar.gz", i ? 0 : 1, &hole);
                assert_int_equal(data, 6 << 20);
                assert_true(hole > (6u << 20) + 3 && hole <= (6u << 20) + 4096);
        }
}

static void test_sparse_members(void **state)
{
        const char *variants[] = {"--format=gnu", "--format=pax --sparse-version=0.0",
                                  "--format=pax --sparse-version=0.1",
                                  "--format=pax --sparse-version=1.0"};
        uint8_t *d1 = pattern(10000, 3), *d2 = pattern(70000, 4);
        const uint64_t size = 64ull << 20, off2 = 32ull << 20;

        (void)state;
        need_tool("tar", "tar");
        sh("rm -rf '%s' && mkdir '%s' && truncate -s %llu '%s'", path("sp"), path("sp"),
           (unsigned long long)size, path("sp/s.img"));
        {
                int fd = open(path("sp/s.img"), O_WRONLY);

                assert_true(fd >= 0);
                assert_int_equal(pwrite(fd, d1, 10000, 0), 10000);
                assert_int_equal(pwrite(fd, d2, 70000, (off_t)off2), 70000);
                close(fd);
        }
        for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
                const struct ia_archive_member *m;
                struct ia_archive *a;
                struct ia_error err = {0};
                uint8_t *buf = malloc(70000);
                uint64_t r = 0;
                int en = 0;

                sh("tar %s --sparse -cf '%s' -C '%s' s.img", variants[v], path("sp.tar"),
                   path("sp"));
                a = open_archive("sp.tar", NULL);
                m = must_find(a, "s.img");
                if (!m->src)
                        fail_msg("%s: %s", variants[v], m->error.msg);
                assert_int_equal(m->size, size);
                assert_true(m->flags & IA_MEMBER_SPARSE);
                assert_false(m->flags & IA_MEMBER_SPOOLED);
                assert_int_equal(ia_read(m->src, buf, 10000, 0, "d1", &err), 0);
                assert_memory_equal(buf, d1, 10000);
                assert_int_equal(ia_read(m->src, buf, 70000, off2, "d2", &err), 0);
                assert_memory_equal(buf, d2, 70000);
                assert_int_equal(ia_read(m->src, buf, 4096, 1 << 20, "hole", &err), 0);
                for (size_t i = 0; i < 4096; i++)
                        assert_int_equal(buf[i], 0);
                assert_int_equal(ia_source_seek(m->src, 0, IA_SEEK_HOLE, &r, &en), 0);
                assert_true(r >= 10000 && r < off2);
                assert_int_equal(ia_source_seek(m->src, r, IA_SEEK_DATA, &r, &en), 0);
                assert_true(r <= off2 && r > (1 << 20));
                assert_int_equal(ia_source_seek(m->src, off2 + 70000 + 8192, IA_SEEK_DATA, &r, &en),
                                 -1);
                assert_int_equal(en, ENXIO);
                ia_archive_free(a);

                /* The same member in a compressed tar is spooled, sparse or not. */
                sh("gzip -c < '%s' > '%s'", path("sp.tar"), path("sp.tar.gz"));
                a = open_archive("sp.tar.gz", NULL);
                m = must_find(a, "s.img");
                assert_non_null(m->src);
                assert_true(m->flags & IA_MEMBER_SPOOLED);
                assert_int_equal(ia_read(m->src, buf, 70000, off2, "d2", &err), 0);
                assert_memory_equal(buf, d2, 70000);
                ia_archive_free(a);
                free(buf);
        }
        free(d1);
        free(d2);
}

/* An uncompressed member's window shows the archive file's holes. */
static void test_window_seek_data(void **state)
{
        const struct ia_archive_member *m;
        struct ia_archive *a;
        uint8_t *d = pattern(1 << 20, 5);
        uint64_t hole = 0, data = 0;
        int en = 0;
        struct stat st;

        (void)state;
        need_tool("tar", "tar");
        sh("rm -rf '%s' && mkdir '%s'", path("w"), path("w"));
        sh("head -c 16M /dev/zero > '%s'", path("w/f.img")); /* stored as zeros, no --sparse */
        {
                int fd = open(path("w/f.img"), O_WRONLY);

                assert_int_equal(pwrite(fd, d, 1 << 20, 0), 1 << 20);
                assert_int_equal(pwrite(fd, d, 1 << 20, 15 << 20), 1 << 20);
                close(fd);
        }
        sh("tar --format=gnu -cf - -C '%s' f.img | cp --sparse=always /dev/stdin '%s'", path("w"),
           path("w.tar"));
        assert_int_equal(stat(path("w.tar"), &st), 0);
        if ((uint64_t)st.st_blocks * 512 >= 8u << 20)
                fail_msg("the test directory's filesystem keeps no holes (%s)", tmp);
        a = open_archive("w.tar", NULL);
        m = must_find(a, "f.img");
        assert_non_null(m->src);
        assert_false(m->flags & (IA_MEMBER_SPOOLED | IA_MEMBER_SPARSE));
        assert_int_equal(ia_source_seek(m->src, 0, IA_SEEK_HOLE, &hole, &en), 0);
        assert_true(hole >= 1 << 20 && hole < (1 << 20) + 8192);
        assert_int_equal(ia_source_seek(m->src, hole, IA_SEEK_DATA, &data, &en), 0);
        assert_true(data <= 15 << 20 && data > (15 << 20) - 8192);
        ia_archive_free(a);
        free(d);
}

/* Hostile names and special members, written with libarchive. */

static void test_flags(void **state)
{
        struct archive *w = archive_write_new();
        const struct ia_archive_member *m;
        struct ia_archive *a;
        size_t n, dups = 0;

        (void)state;
        archive_write_set_format_pax_restricted(w);
        assert_int_equal(archive_write_open_filename(w, path("flags.tar")), ARCHIVE_OK);
        add_entry(w, "../evil", AE_IFREG, NULL, NULL, "x", 1);
        add_entry(w, "/abs/path", AE_IFREG, NULL, NULL, "y", 1);
        add_entry(w, "a/../../b", AE_IFREG, NULL, NULL, "z", 1);
        add_entry(w, "ok..name", AE_IFREG, NULL, NULL, "o", 1);
        add_entry(w, "win\\..\\x", AE_IFREG, NULL, NULL, "w", 1);
        add_entry(w, "dup.txt", AE_IFREG, NULL, NULL, "first", 5);
        add_entry(w, "./dup.txt", AE_IFREG, NULL, NULL, "second", 6);
        add_entry(w, "sl", AE_IFLNK, "/etc/passwd", NULL, NULL, 0);
        add_entry(w, "hl", AE_IFREG, NULL, "dup.txt", NULL, 0);
        add_entry(w, "fifo", AE_IFIFO, NULL, NULL, NULL, 0);
        add_entry(w, "dev", AE_IFCHR, NULL, NULL, NULL, 0);
        add_entry(w, "new\nline", AE_IFREG, NULL, NULL, "n", 1);
        add_entry(w, "bad\xff\xfe-utf8", AE_IFREG, NULL, NULL, "u", 1);
        assert_int_equal(archive_write_close(w), ARCHIVE_OK);
        archive_write_free(w);

        a = open_archive("flags.tar", NULL);
        assert_null(ia_archive_error(a));
        assert_int_equal(ia_archive_count(a), 13);
        assert_true(must_find(a, "win\\..\\x")->flags & IA_MEMBER_TRAVERSAL);
        assert_true(must_find(a, "../evil")->flags & IA_MEMBER_TRAVERSAL);
        assert_true(must_find(a, "/abs/path")->flags & IA_MEMBER_ABSOLUTE);
        assert_false(must_find(a, "/abs/path")->flags & IA_MEMBER_TRAVERSAL);
        assert_true(must_find(a, "a/../../b")->flags & IA_MEMBER_TRAVERSAL);
        assert_int_equal(must_find(a, "ok..name")->flags & (IA_MEMBER_TRAVERSAL | 2), 0);
        m = must_find(a, "dup.txt");
        assert_true(m->flags & IA_MEMBER_DUPLICATE);
        check_bytes(m, (const uint8_t *)"second", 6); /* the last one, as extraction leaves */
        for (size_t i = 0; i < ia_archive_count(a); i++)
                dups += (ia_archive_member(a, i)->flags & IA_MEMBER_DUPLICATE) != 0;
        assert_int_equal(dups, 1);
        m = must_find(a, "sl");
        assert_int_equal(m->type, IA_MEMBER_SYMLINK);
        assert_string_equal(m->link_target, "/etc/passwd");
        assert_null(m->src);
        m = must_find(a, "hl");
        assert_int_equal(m->type, IA_MEMBER_HARDLINK);
        assert_string_equal(m->link_target, "dup.txt");
        assert_null(m->src);
        assert_int_equal(must_find(a, "fifo")->type, IA_MEMBER_FIFO);
        assert_null(must_find(a, "fifo")->src);
        assert_int_equal(must_find(a, "dev")->type, IA_MEMBER_DEVICE);
        check_bytes(must_find(a, "new\nline"), (const uint8_t *)"n", 1);
        check_bytes(must_find(a, "bad\xff\xfe-utf8"), (const uint8_t *)"u", 1);
        n = ia_archive_count(a);
        assert_string_equal(ia_archive_member(a, n - 2)->name, "new\nline");
        ia_archive_free(a);
}

static void test_zip(void **state)
{
        uint8_t *big = pattern(200000, 7);
        struct ia_archive *a;
        const struct ia_archive_member *m;

        (void)state;
        need_tool("zip", "zip");
        sh("rm -rf '%s' && mkdir '%s'", path("z"), path("z"));
        write_file("z/big.bin", big, 200000);
        sh("head -c 300000 /dev/zero > '%s'", path("z/zeros.bin"));
        write_file("z/small.txt", "tiny", 4);
        sh("cd '%s' && rm -f ../s.zip && zip -q -0 ../s.zip big.bin small.txt && zip -q -9 "
           "../s.zip zeros.bin",
           path("z"));
        a = open_archive("s.zip", NULL);
        assert_null(ia_archive_error(a));
        m = must_find(a, "big.bin");
        check_bytes(m, big, 200000);
        assert_false(m->flags & IA_MEMBER_SPOOLED); /* stored: a window */
        m = must_find(a, "small.txt");
        check_bytes(m, (const uint8_t *)"tiny", 4);
        assert_false(m->flags & IA_MEMBER_SPOOLED);
        m = must_find(a, "zeros.bin");
        assert_true(m->flags & IA_MEMBER_SPOOLED); /* deflated: spooled */
        {
                uint8_t *z = calloc(1, 300000);

                check_bytes(m, z, 300000);
                free(z);
        }
        ia_archive_free(a);
        free(big);
}

/* Probe before spooling (limits.wanted): which members the walk asked about. */
static int wanted_calls;

static bool wanted_keep_only(void *opaque, const char *name, struct ia_source *head)
{
        uint8_t *buf = malloc(IA_ARCHIVE_HEAD);
        struct ia_error err = {0};

        (void)opaque;
        assert_non_null(buf);
        wanted_calls++;
        /* the whole head can be read, nothing past it while the walk runs */
        assert_int_equal(ia_read(head, buf, IA_ARCHIVE_HEAD, 0, "head", &err), 0);
        assert_true(ia_read(head, buf, 16, IA_ARCHIVE_HEAD, "past", &err) < 0);
        free(buf);
        return strncmp(name, "keep", 4) == 0;
}

/*
 * A member the caller does not want is left with its head: not spooled, yet
 * its source reads all of it (a second pass), even after the archive is
 * freed, within what is left of the spool budget.
 */
static void test_deferred(void **state)
{
        const size_t len = 300000;
        uint8_t *big = pattern(len, 21), *keep = pattern(len, 22);
        const char *names[] = {"d.tar.gz", "d.zip"};

        (void)state;
        need_tool("tar", "tar");
        need_tool("zip", "zip");
        sh("rm -rf '%s' && mkdir '%s'", path("de"), path("de"));
        write_file("de/big.bin", big, len);
        write_file("de/keep.bin", keep, len);
        write_file("de/small.txt", "small", 5);
        sh("tar -czf '%s' -C '%s' big.bin keep.bin small.txt", path("d.tar.gz"), path("de"));
        sh("cd '%s' && rm -f ../d.zip && zip -q -6 ../d.zip big.bin keep.bin small.txt",
           path("de"));
        for (size_t i = 0; i < 2; i++) {
                struct ia_archive_limits lim = {.wanted = wanted_keep_only};
                struct ia_archive *a;
                const struct ia_archive_member *m;
                struct ia_source *src;
                struct ia_error err = {0};
                uint8_t *buf = malloc(len);
                uint64_t r = 0;
                int en = 0;

                wanted_calls = 0;
                a = open_archive(names[i], &lim);
                assert_null(ia_archive_error(a));
                assert_int_equal(wanted_calls, 2); /* small.txt is shorter than a head */
                m = must_find(a, "keep.bin");
                assert_true(m->flags & IA_MEMBER_SPOOLED);
                check_bytes(m, keep, len);
                m = must_find(a, "small.txt");
                assert_false(m->flags & IA_MEMBER_DEFERRED);
                check_bytes(m, (const uint8_t *)"small", 5);
                m = must_find(a, "big.bin");
                assert_false(m->flags & IA_MEMBER_SPOOLED);
                assert_true(m->flags & IA_MEMBER_DEFERRED);
                assert_non_null(m->src);
                assert_int_equal(m->src->size, len);
                src = ia_source_ref(m->src);
                ia_archive_free(a);
                assert_int_equal(ia_read(src, buf, 4096, 0, "head", &err), 0);
                assert_memory_equal(buf, big, 4096);
                assert_int_equal(ia_read(src, buf, len, 0, "all", &err), 0); /* second pass */
                assert_memory_equal(buf, big, len);
                assert_int_equal(ia_source_seek(src, 0, IA_SEEK_DATA, &r, &en), 0);
                assert_int_equal(r, 0);
                ia_source_unref(src);

                /* The second pass has what the first left of the spool budget. */
                lim.spool_budget = len + len / 2;
                a = open_archive(names[i], &lim);
                m = must_find(a, "big.bin");
                assert_true(m->flags & IA_MEMBER_DEFERRED);
                assert_int_equal(ia_read(m->src, buf, 4096, 0, "head", &err), 0);
                assert_true(ia_read(m->src, buf, len, 0, "all", &err) < 0);
                assert_int_equal(err.cat, IA_ERR_LIMIT);
                assert_non_null(strstr(err.msg, "spool budget"));
                ia_archive_free(a);

                /* Without the callback every member is spooled. */
                a = open_archive(names[i], NULL);
                assert_true(must_find(a, "big.bin")->flags & IA_MEMBER_SPOOLED);
                check_bytes(must_find(a, "big.bin"), big, len);
                ia_archive_free(a);
                free(buf);
        }
        free(big);
        free(keep);
}

static const char ovf_text[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<!-- <File ovf:href=\"commented-out.vmdk\" ovf:id=\"file1\"/> -->\n"
    "<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" "
    "xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\">\n"
    "  <References>\n"
    "    <File ovf:href=\"disk1.vmdk\" ovf:id=\"file1\" ovf:size=\"1024\"/>\n"
    "    <File ovf:id='file2' ovf:href='../etc/a&amp;b.vmdk' ovf:size=\"77\"/>\n"
    "  </References>\n"
    "  <DiskSection>\n"
    "    <Info>Virtual disk information</Info>\n"
    "    <Disk ovf:capacity=\"16\" ovf:capacityAllocationUnits=\"byte * 2^30\" "
    "ovf:diskId=\"vmdisk1\" ovf:fileRef=\"file1\" "
    "ovf:format=\"http://www.vmware.com/interfaces/specifications/"
    "vmdk.html#streamOptimized\"/>\n"
    "    <ovf:Disk ovf:capacity=\"1000000\" ovf:diskId=\"vmdisk2\" ovf:fileRef=\"file2\"/>\n"
    "    <Disk ovf:capacity=\"3\" ovf:capacityAllocationUnits=\"byte*10^3\" "
    "ovf:diskId=\"blank\"></Disk>\n"
    "  </DiskSection>\n"
    "</Envelope>\n";

static void test_ova(void **state)
{
        struct ia_archive *a;
        const struct ia_ovf_disk *d;

        (void)state;
        need_tool("tar", "tar");
        sh("rm -rf '%s' && mkdir '%s'", path("ova"), path("ova"));
        write_file("ova/vm.ovf", ovf_text, sizeof(ovf_text) - 1);
        write_file("ova/disk1.vmdk", "KDMV", 4);
        sh("tar --format=ustar -cf '%s' -C '%s' vm.ovf disk1.vmdk", path("vm.ova"), path("ova"));
        a = open_archive("vm.ova", NULL);
        assert_null(ia_archive_error(a));
        assert_int_equal(ia_archive_ovf_count(a), 3);
        d = ia_archive_ovf_disk(a, 0);
        assert_string_equal(d->disk_id, "vmdisk1");
        assert_string_equal(d->href, "disk1.vmdk");
        assert_string_equal(d->file_id, "file1");
        assert_int_equal(d->capacity, 16ull << 30);
        assert_int_equal(d->file_size, 1024);
        assert_non_null(strstr(d->format, "streamOptimized"));
        d = ia_archive_ovf_disk(a, 1);
        assert_string_equal(d->disk_id, "vmdisk2");
        assert_string_equal(d->href, "../etc/a&b.vmdk"); /* data, never a path */
        assert_int_equal(d->capacity, 1000000);
        assert_int_equal(d->file_size, 77);
        assert_null(d->format);
        d = ia_archive_ovf_disk(a, 2);
        assert_string_equal(d->disk_id, "blank");
        assert_null(d->href);
        assert_int_equal(d->capacity, 3000);
        assert_null(ia_archive_ovf_disk(a, 3));
        ia_archive_free(a);
}

static void test_ovf_hostile(void **state)
{
        static const char bad[] =
            "<Envelope><Disk ovf:capacity=\"99999999999\" "
            "ovf:capacityAllocationUnits=\"byte * 2^40\" ovf:diskId=\"x\"/>"
            "<Disk ovf:capacity=\"1\" ovf:capacityAllocationUnits=\"furlongs\""
            " ovf:diskId=\"y\"/><Disk ovf:diskId=\"unterminated";
        struct ia_archive *a;
        const struct ia_error *e;

        (void)state;
        need_tool("tar", "tar");
        sh("rm -rf '%s' && mkdir '%s'", path("ovb"), path("ovb"));
        write_file("ovb/bad.ovf", bad, sizeof(bad) - 1);
        sh("tar -cf '%s' -C '%s' bad.ovf", path("bad.ova"), path("ovb"));
        a = open_archive("bad.ova", NULL);
        e = ia_archive_error(a);
        assert_non_null(e);
        assert_int_equal(e->cat, IA_ERR_LIMIT);
        assert_non_null(strstr(e->msg, "99999999999"));
        assert_true(ia_archive_ovf_count(a) >= 2);
        assert_int_equal(ia_archive_ovf_disk(a, 0)->capacity, 0);
        ia_archive_free(a);
}

static void test_nesting(void **state)
{
        struct ia_archive_limits lim = {.max_nesting = 1};
        struct ia_archive *outer, *mid, *inner;
        struct ia_error err = {0};
        const struct ia_archive_member *m;

        (void)state;
        need_tool("tar", "tar");
        need_tool("gzip", "gzip");
        sh("rm -rf '%s' && mkdir '%s' && cd '%s' && echo leaf > x.bin && tar -cf inner.tar "
           "x.bin && tar -czf mid.tar.gz inner.tar && tar -cf ../outer.tar mid.tar.gz",
           path("n"), path("n"), path("n"));
        outer = open_archive("outer.tar", NULL);
        m = must_find(outer, "mid.tar.gz");
        assert_non_null(m->src);
        assert_true(ia_archive_probe((const uint8_t *)"\x1f\x8b\x08", 3));
        assert_int_equal(ia_archive_open(m->src, "outer.tar!mid.tar.gz", NULL, &mid, &err), 0);
        m = must_find(mid, "inner.tar");
        assert_true(m->flags & IA_MEMBER_SPOOLED);
        assert_int_equal(ia_archive_open(m->src, "inner.tar", NULL, &inner, &err), 0);
        check_bytes(must_find(inner, "x.bin"), (const uint8_t *)"leaf\n", 5);
        /* Depth 3 is past the default cap of 2. */
        {
                struct ia_archive *deeper = NULL;
                m = must_find(inner, "x.bin");
                assert_int_equal(ia_archive_open(m->src, "x.bin", NULL, &deeper, &err), -1);
                assert_int_equal(err.cat, IA_ERR_LIMIT);
                assert_non_null(strstr(err.msg, "nested 3"));
        }
        ia_archive_free(inner);
        /* With a cap of 1, the second level is refused. */
        m = must_find(mid, "inner.tar");
        assert_int_equal(ia_archive_open(m->src, "inner.tar", &lim, &inner, &err), -1);
        assert_int_equal(err.cat, IA_ERR_LIMIT);
        ia_archive_free(mid);
        ia_archive_free(outer);
}

static void test_probe_and_refusal(void **state)
{
        uint8_t buf[1024] = {0};
        struct ia_error err = {0};
        int fd;

        (void)state;
        need_tool("tar", "tar");
        make_tree();
        sh("tar -cf '%s' -C '%s' b.txt", path("p.tar"), path("in"));
        fd = open(path("p.tar"), O_RDONLY);
        assert_int_equal(read(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
        close(fd);
        assert_true(ia_archive_probe(buf, sizeof(buf)));
        assert_false(ia_archive_probe(buf, 100));
        buf[148] ^= 1; /* checksum broken */
        assert_false(ia_archive_probe(buf, sizeof(buf)));
        assert_true(ia_archive_probe((const uint8_t *)"PK\3\4", 4));
        assert_true(ia_archive_probe((const uint8_t *)"\xfd"
                                                      "7zXZ\0",
                                     6));
        assert_true(ia_archive_probe((const uint8_t *)"\x28\xb5\x2f\xfd", 4));
        assert_false(ia_archive_probe((const uint8_t *)"QFI\xfb\0\0\0\3", 8));
        memset(buf, 0, sizeof(buf));
        assert_false(ia_archive_probe(buf, sizeof(buf)));

        fill(buf, sizeof(buf), 99);
        write_file("random.bin", buf, sizeof(buf));
        assert_int_equal(open_archive_err("random.bin", NULL, &err), -1);
        assert_int_equal(err.cat, IA_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, "random.bin"));
}

/* Every read failing in turn: no crash, no leak, a clean error. */
static void test_faults(void **state)
{
        struct ia_error err = {0};
        struct ia_source *file;
        uint64_t calls = 0;

        (void)state;
        need_tool("tar", "tar");
        need_tool("gzip", "gzip");
        make_tree();
        sh("tar -cf '%s' -C '%s' a.bin b.txt sub && gzip -c < '%s' > '%s'", path("f.tar"),
           path("in"), path("f.tar"), path("f.tar.gz"));
        for (int k = 0; k < 2; k++) {
                file = ia_source_open_file(AT_FDCWD, path(k ? "f.tar.gz" : "f.tar"), 0, &err);
                assert_non_null(file);
                for (uint64_t n = 1;; n++) {
                        struct ia_source *f;
                        struct ia_archive *a = NULL;
                        int r;

                        calls = 0; /* the counter is the caller's and is never reset */
                        f = ia_source_faulty(file, n, &calls, &err);
                        assert_non_null(f);
                        r = ia_archive_open(f, "faulty", NULL, &a, &err);

                        if (r < 0) {
                                assert_true(calls >= n);
                                assert_true(err.cat == IA_ERR_IO || err.cat == IA_ERR_CORRUPT ||
                                            err.cat == IA_ERR_UNSUPPORTED);
                        } else {
                                struct ia_error rerr = {0};

                                /* Reads through member windows may fail too: never crash. */
                                for (size_t i = 0; i < ia_archive_count(a); i++) {
                                        const struct ia_archive_member *m = ia_archive_member(a, i);
                                        uint8_t b[16];

                                        if (m->src && m->src->size >= 16)
                                                (void)ia_read(m->src, b, 16, 0, "m", &rerr);
                                }
                                ia_archive_free(a);
                                if (calls < n) {
                                        ia_source_unref(f);
                                        break; /* no read failed: done */
                                }
                        }
                        ia_source_unref(f);
                        if (n >= 10000)
                                fail_msg("still failing at read %llu (%llu reads)",
                                         (unsigned long long)n, (unsigned long long)calls);
                }
                ia_source_unref(file);
        }
}

/* The one member-name rule, in its two uses: the archive's index and names to resolve. */
static void norm_is(const char *name, bool resolve, const char *want)
{
        char *got = ia_name_normalise(name, resolve);

        if (!want) {
                assert_null(got);
                return;
        }
        assert_non_null(got);
        assert_string_equal(got, want);
        free(got);
}

static void test_name_normalise(void **state)
{
        (void)state;
        norm_is("./a//b/", false, "a/b");
        norm_is("/a/./b", false, "/a/b");
        norm_is("a/../b", false, "a/../b"); /* the index keeps "..": a traversal is flagged */
        norm_is("../x", false, "../x");
        norm_is("", false, "");
        norm_is("./a//b/", true, "a/b");
        norm_is("/a/./b", true, "a/b");
        norm_is("a/../b", true, "b");
        norm_is("a/b/../../c", true, "c");
        norm_is("a/..", true, "");
        norm_is("../x", true, NULL);
        norm_is("a/../../x", true, NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_name_normalise),
            cmocka_unit_test(test_tar_windows),
            cmocka_unit_test(test_compressed_spool),
            cmocka_unit_test(test_spool_holes),
            cmocka_unit_test(test_sparse_members),
            cmocka_unit_test(test_window_seek_data),
            cmocka_unit_test(test_flags),
            cmocka_unit_test(test_zip),
            cmocka_unit_test(test_deferred),
            cmocka_unit_test(test_ova),
            cmocka_unit_test(test_ovf_hostile),
            cmocka_unit_test(test_nesting),
            cmocka_unit_test(test_probe_and_refusal),
            cmocka_unit_test(test_faults),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
