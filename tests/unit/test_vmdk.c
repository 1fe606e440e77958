/*
 * The vmdk driver on images built in memory: sparse headers (VMDK 4 and 3),
 * grain lookups and run lengths, zeroed and compressed grains, the footer of
 * stream-optimized images, descriptors with several extents and qemu's
 * parsing quirks, the parent hint, and malformed images, which must fail
 * cleanly with a sensible category (also under read faults).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes_build.h"
#include "chain.h"
#include "drivers.h"
#include "imgtest.h"

#define SECT 512u

/*
 * A monolithicSparse image: 0 header, 1-2 descriptor, 3 GD (1 sector),
 * 4-7 GT (512 entries), 8.. grains of 8 sectors (4 KiB).  Capacity: 2 GTs
 * worth = 1024 grains = 4 MiB; GD[1] stays unallocated.
 */
#define GRAIN_S 8u
#define GRAIN_B (GRAIN_S * SECT)

struct sparse {
        uint8_t buf[64 * 1024];
        size_t len;
};

static void sparse_build(struct sparse *s, const char *desc_extra)
{
        char desc[1024];

        memset(s, 0, sizeof(*s));
        memcpy(s->buf, "KDMV", 4);
        put_le32(s->buf + 4, 1);               /* version */
        put_le32(s->buf + 8, 3);               /* flags: NL detect, RGD */
        put_le64(s->buf + 12, 1024 * GRAIN_S); /* capacity */
        put_le64(s->buf + 20, GRAIN_S);        /* granularity */
        put_le64(s->buf + 28, 1);              /* descriptor offset */
        put_le64(s->buf + 36, 2);              /* descriptor size */
        put_le32(s->buf + 44, 512);            /* GTEs per GT */
        put_le64(s->buf + 48, 3);              /* redundant GD: the same one */
        put_le64(s->buf + 56, 3);              /* GD */
        put_le64(s->buf + 64, 8);              /* grain offset */
        snprintf(desc, sizeof(desc),
                 "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n%s"
                 "createType=\"monolithicSparse\"\nRW 8192 SPARSE \"x.vmdk\"\n",
                 desc_extra);
        memcpy(s->buf + SECT, desc, strlen(desc));
        put_le32(s->buf + 3 * SECT, 4); /* GD[0] -> GT at sector 4 */
        s->len = 8 * SECT;
}

/* Set GTE i (of GT 0) to sector v; data sectors extend the file. */
static void sparse_gte(struct sparse *s, unsigned i, uint32_t v)
{
        put_le32(s->buf + 4 * SECT + 4 * i, v);
        if (v > 1 && (v + GRAIN_S) * SECT > s->len)
                s->len = (v + GRAIN_S) * SECT;
}

/* Files the resolver knows: name -> bytes. */
static struct imgtest_memfile files[8];

static int mem_open(const struct ia_resolver *r, const struct ia_file *from, const char *name,
                    enum ia_ref_kind kind, struct ia_file **out, struct ia_error *err)
{
        (void)r;
        (void)from;
        (void)kind;
        return imgtest_memfile_open(files, sizeof(files) / sizeof(files[0]), name, out, err);
}

static const struct ia_resolver resolver = {.open = mem_open};
static const struct ia_open_ctx ctx = {.resolver = &resolver, .compat = 702};

static int open_mem(const void *buf, size_t len, uint64_t fail_at, struct ia_image **img,
                    struct ia_error *err)
{
        const struct imgtest_mem how = {.name = "top.vmdk", .fmt = "vmdk", .fail_at = fail_at};

        return imgtest_open_mem(&ctx, buf, len, &how, img, err);
}

static const struct imgtest_mem vmdk_mem = {.name = "top.vmdk", .fmt = "vmdk"};

static struct ia_image *must_open(const void *buf, size_t len)
{
        return imgtest_must_open(&ctx, buf, len, &vmdk_mem);
}

static enum ia_errcat open_fails(const void *buf, size_t len)
{
        return imgtest_open_fails(&ctx, buf, len, &vmdk_mem);
}

static void status(struct ia_image *img, uint64_t off, struct ia_bstatus *st)
{
        imgtest_status(img, off, st, 0);
}

static void test_sparse_grains(void **state)
{
        struct sparse *s = malloc(sizeof(*s));
        struct ia_image *img;
        struct ia_bstatus st;

        (void)state;
        sparse_build(s, "");
        sparse_gte(s, 2, 8); /* grains 2, 3 host-contiguous */
        sparse_gte(s, 3, 16);
        sparse_gte(s, 4, 40); /* not contiguous */
        sparse_gte(s, 6, 1);  /* sector 1: without the zero-grain flag that is data */
        img = must_open(s->buf, s->len);
        assert_int_equal(img->size, 1024 * GRAIN_B);
        assert_true(img->cow);
        assert_null(img->backing);

        status(img, 0, &st); /* grains 0-1 unallocated */
        assert_int_equal(st.flags, 0);
        assert_int_equal(st.len, 2 * GRAIN_B);
        status(img, 2 * GRAIN_B + 100, &st);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET);
        assert_int_equal(st.host_off, 8 * SECT + 100);
        assert_int_equal(st.len, 2 * GRAIN_B - 100);
        assert_ptr_equal(st.file, img->file);
        status(img, 4 * GRAIN_B, &st);
        assert_int_equal(st.host_off, 40 * SECT);
        assert_int_equal(st.len, GRAIN_B);
        status(img, 6 * GRAIN_B, &st);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET);
        assert_int_equal(st.host_off, SECT);
        /* The rest, GT 1 included (GD[1] == 0), is one unallocated run. */
        status(img, 7 * GRAIN_B, &st);
        assert_int_equal(st.flags, 0);
        assert_int_equal(st.len, img->size - 7 * GRAIN_B);
        ia_image_free(img);

        /* With the zero-grain flag, GTE 1 reads as zeroes. */
        put_le32(s->buf + 8, 3 | 4);
        img = must_open(s->buf, s->len);
        status(img, 6 * GRAIN_B, &st);
        assert_int_equal(st.flags, IA_BS_ZERO);
        assert_int_equal(st.len, GRAIN_B);
        ia_image_free(img);

        /* Compressed grains: data without offset, consecutive ones in one run. */
        s->buf[77] = 1;
        img = must_open(s->buf, s->len);
        status(img, 2 * GRAIN_B, &st);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_COMPRESSED);
        assert_int_equal(st.len, 3 * GRAIN_B);
        ia_image_free(img);
        free(s);
}

static void test_sparse_parent(void **state)
{
        struct sparse *s = malloc(sizeof(*s));
        struct ia_image *img;

        (void)state;
        sparse_build(s, "parentFileNameHint=\"dir/base.vmdk\"\n");
        img = must_open(s->buf, s->len);
        assert_string_equal(img->backing, "dir/base.vmdk");
        assert_string_equal(img->backing_fmt, "vmdk");
        ia_image_free(img);

        sparse_build(s, "parentFileNameHint=\"\"\n");
        img = must_open(s->buf, s->len);
        assert_null(img->backing);
        ia_image_free(img);

        sparse_build(s, "");
        memset(s->buf + SECT, 0, 2 * SECT);
        memcpy(s->buf + SECT, "CID=1 parentCID=2 parentFileNameHint=\"abc", 40);
        assert_int_equal(open_fails(s->buf, s->len), IA_ERR_CORRUPT);
        free(s);
}

static void test_sparse_footer(void **state)
{
        struct sparse *s = malloc(sizeof(*s));
        struct ia_image *img;
        struct ia_bstatus st;
        uint8_t *foot;

        (void)state;
        sparse_build(s, "");
        sparse_gte(s, 0, 8);
        /* Header says "GD at end"; the footer holds the real header. */
        foot = s->buf + s->len;
        memcpy(foot + 512, s->buf, 512);
        put_le32(foot + 12, 3); /* footer marker */
        put_le64(s->buf + 56, UINT64_MAX);
        s->len += 1536;
        img = must_open(s->buf, s->len);
        status(img, 0, &st);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET);
        assert_int_equal(st.host_off, 8 * SECT);
        ia_image_free(img);

        put_le32(foot + 12, 2); /* not a footer marker */
        assert_int_equal(open_fails(s->buf, s->len), IA_ERR_CORRUPT);
        free(s);
}

static void test_sparse_malformed(void **state)
{
        struct sparse *s = malloc(sizeof(*s));
        struct ia_image *img;
        struct ia_bstatus st;

        (void)state;
        sparse_build(s, "");
        put_le32(s->buf + 4, 4);
        assert_int_equal(open_fails(s->buf, s->len), IA_ERR_UNSUPPORTED);

        sparse_build(s, "");
        put_le32(s->buf + 44, 513);
        assert_int_equal(open_fails(s->buf, s->len), IA_ERR_CORRUPT);

        sparse_build(s, "");
        put_le64(s->buf + 20, 0);
        assert_int_equal(open_fails(s->buf, s->len), IA_ERR_CORRUPT);

        sparse_build(s, "");
        put_le64(s->buf + 20, 0x400000); /* 2 GiB grains */
        assert_int_equal(open_fails(s->buf, s->len), IA_ERR_CORRUPT);

        sparse_build(s, "");
        put_le64(s->buf + 64, 1000); /* grains start past the end */
        assert_int_equal(open_fails(s->buf, s->len), IA_ERR_TRUNCATED);

        sparse_build(s, "");
        put_le64(s->buf + 56, 1ull << 54); /* GD at 2^63: qemu's read fails */
        assert_int_equal(open_fails(s->buf, s->len), IA_ERR_CORRUPT);

        sparse_build(s, "");
        put_le64(s->buf + 12, 1ull << 60); /* capacity: bytes beyond 2^63 */
        put_le32(s->buf + 44, 1);
        put_le64(s->buf + 20, 1ull << 20);
        assert_int_equal(open_fails(s->buf, s->len), IA_ERR_LIMIT);

        sparse_build(s, "");
        memset(s->buf + SECT, ' ', 2 * SECT); /* no CID */
        assert_int_equal(open_fails(s->buf, s->len), IA_ERR_CORRUPT);

        assert_int_equal(open_fails("KDM", 3), IA_ERR_CORRUPT);
        assert_int_equal(open_fails("KDMV", 4), IA_ERR_CORRUPT); /* GTEs per GT 0 */

        /* A GD past the end of the file reads as zeroes, as in qemu. */
        sparse_build(s, "");
        put_le64(s->buf + 56, 100000);
        img = must_open(s->buf, s->len);
        status(img, 0, &st);
        assert_int_equal(st.flags, 0);
        assert_int_equal(st.len, img->size);
        ia_image_free(img);

        free(s);
}

static void test_vmdk3(void **state)
{
        static uint8_t b[48 * SECT];
        struct ia_image *img;
        struct ia_bstatus st;
        struct ia_error err;

        (void)state;
        memset(b, 0, sizeof(b));
        memcpy(b, "COWD", 4);
        put_le32(b + 4, 1);
        put_le32(b + 12, 2048); /* sectors */
        put_le32(b + 16, 16);   /* granularity */
        put_le32(b + 20, 4);    /* GD sector */
        put_le32(b + 24, 1);    /* GD entries */
        memcpy(b + SECT, "CID=1\nparentCID=ffffffff\n", 25);
        put_le32(b + 4 * SECT, 5);
        put_le32(b + 5 * SECT + 4 * 3, 40);
        img = must_open(b, sizeof(b));
        assert_int_equal(img->size, 2048 * SECT);
        status(img, 3 * 16 * SECT, &st);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET);
        assert_int_equal(st.host_off, 40 * SECT);
        assert_int_equal(st.len, 16 * SECT);
        ia_image_free(img);

        /* A GD shorter than the disk: an error where it ends, not before. */
        put_le32(b + 12, 70000);
        img = must_open(b, sizeof(b));
        status(img, 4 * 16 * SECT, &st);
        assert_int_equal(st.flags, 0);
        assert_int_equal(st.len, (4096 - 4) * 16 * SECT);
        assert_int_equal(img->drv->block_status(img, 65536 * SECT, SECT, &st, &err), -1);
        assert_int_equal(err.cat, IA_ERR_CORRUPT);
        ia_image_free(img);

        put_le32(b + 16, 0);
        assert_int_equal(open_fails(b, sizeof(b)), IA_ERR_CORRUPT);
}

#define HDR "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\n"

static void test_descriptor(void **state)
{
        static uint8_t a[1 << 20];
        struct sparse *s = malloc(sizeof(*s));
        const char *d = HDR "createType=\"monolithicFlat\"\n\n"
                            "RW 10 FLAT \"a.bin\" 4\n"
                            "RDONLY 10 FLAT \"a.bin\" 0\n"
                            "NOACCESS 10 FLAT \"a.bin\" 0\n"
                            "RW 10 ZERO\n"
                            "RW 0 FLAT \"a.bin\" 0\n"
                            "RW 3 SPARSE \"s.vmdk\"\n"
                            "RW 20 VMFS \"a.bin\"\n";
        struct ia_image *img;
        struct ia_bstatus st;

        (void)state;
        sparse_build(s, "");
        sparse_gte(s, 0, 8);
        files[0] = (struct imgtest_memfile){.name = "a.bin", .buf = a, .len = sizeof(a)};
        files[1] = (struct imgtest_memfile){.name = "s.vmdk", .buf = s->buf, .len = s->len};
        img = must_open(d, strlen(d));
        /* The blank line repeats the first extent; the sparse one brings 8192 sectors. */
        assert_int_equal(img->size, (10 + 10 + 8192 + 20) * SECT);
        status(img, 0, &st);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET | IA_BS_RECURSE);
        assert_int_equal(st.host_off, 4 * SECT);
        assert_int_equal(st.len, 10 * SECT);
        assert_string_equal(st.file->name, "a.bin");
        status(img, 15 * SECT, &st);
        assert_int_equal(st.host_off, 9 * SECT);
        assert_int_equal(st.len, 5 * SECT);
        status(img, 20 * SECT + 1, &st);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET);
        assert_int_equal(st.host_off, 8 * SECT + 1);
        assert_string_equal(st.file->name, "s.vmdk");
        status(img, (20 + 8192) * SECT, &st);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET | IA_BS_RECURSE);
        assert_int_equal(st.host_off, 0);
        assert_int_equal(st.len, 20 * SECT);
        ia_image_free(img);

        /* No extents at all: an empty disk, as in qemu. */
        d = HDR "createType=\"twoGbMaxExtentFlat\"\n";
        img = must_open(d, strlen(d));
        assert_int_equal(img->size, 0);
        ia_image_free(img);
        memset(&files, 0, sizeof(files));
        free(s);
}

static void test_descriptor_errors(void **state)
{
        static uint8_t a[4096];
        static const struct {
                const char *text;
                enum ia_errcat cat;
        } cases[] = {
            {HDR "createType=\"custom\"\nRW 1 FLAT \"a.bin\" 0\n", IA_ERR_UNSUPPORTED},
            {HDR "createType=\"monolithicSparse\"\n", IA_ERR_UNSUPPORTED},
            {HDR "RW 1 FLAT \"a.bin\" 0\n", IA_ERR_CORRUPT},
            {HDR "createType=\"monolithicFlat\nRW 1 FLAT \"a.bin\" 0\n", IA_ERR_UNSUPPORTED},
            {HDR "createType=\"monolithicFlat\n", IA_ERR_CORRUPT},
            {HDR "createType=\"", IA_ERR_CORRUPT},
            {HDR "createType=\"monolithicFlat\"\nRW 1 FLAT \"a.bin\"\n", IA_ERR_CORRUPT},
            {HDR "createType=\"monolithicFlat\"\nRW 1 FLAT \"a.bin\" -2\n", IA_ERR_CORRUPT},
            {HDR "createType=\"vmfs\"\nRW 1 VMFS \"a.bin\" 2\n", IA_ERR_CORRUPT},
            {HDR "createType=\"vmfs\"\nRW 1 ZERO \"a.bin\" 2\n", IA_ERR_CORRUPT},
            {HDR "createType=\"vmfs\"\nRW 1 SPARSE \"a.bin\"\n", IA_ERR_CORRUPT},
            /* a.bin is not a seSparse extent: bad constant header magic */
            {HDR "createType=\"vmfs\"\nRW 1 SESPARSE \"a.bin\"\n", IA_ERR_CORRUPT},
            {HDR "createType=\"vmfs\"\nRW 1 FLAT \"nosuch\" 0\n", IA_ERR_MISSING},
            {HDR "createType=\"vmfs\"\nRW 9223372036854775807 FLAT \"a.bin\" 0\n", IA_ERR_LIMIT},
            {HDR "createType=\"vmfs\"\nRW 1 FLAT \"a.bin\" 99999999999999999999\n", IA_ERR_LIMIT},
            {"version=1\ncreateType=\"vmfs\"\nRW 1 FLAT \"a.bin\" 0\n", IA_ERR_CORRUPT},
        };

        (void)state;
        files[0] = (struct imgtest_memfile){.name = "a.bin", .buf = a, .len = sizeof(a)};
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                enum ia_errcat cat = open_fails(cases[i].text, strlen(cases[i].text));

                if (cat != cases[i].cat)
                        fail_msg("case %zu: category %s, expected %s", i, ia_errcat_name(cat),
                                 ia_errcat_name(cases[i].cat));
        }
        memset(&files, 0, sizeof(files));
}

static void test_too_many_extents(void **state)
{
        static uint8_t a[512];
        const char *line = "RW 1 FLAT \"a.bin\" 0\n";
        size_t n = 20000, len = strlen(HDR "createType=\"vmfs\"\n") + n * strlen(line);
        char *d = malloc(len + 1), *p = d;

        (void)state;
        files[0] = (struct imgtest_memfile){.name = "a.bin", .buf = a, .len = sizeof(a)};
        p += snprintf(p, len + 1, "%s", HDR "createType=\"vmfs\"\n");
        for (size_t i = 0; i < n; i++) {
                memcpy(p, line, strlen(line));
                p += strlen(line);
        }
        *p = '\0';
        assert_int_equal(open_fails(d, len), IA_ERR_LIMIT);
        /* Blank lines cost linear time (each one repeats the next extent). */
        memset(d, '\n', len);
        memcpy(d, HDR "createType=\"vmfs\"\n", strlen(HDR "createType=\"vmfs\"\n"));
        memcpy(d + len - strlen(line), line, strlen(line));
        assert_int_equal(open_fails(d, len), IA_ERR_LIMIT);
        free(d);
        memset(&files, 0, sizeof(files));
}

static void test_probe(void **state)
{
        static const char *yes[] = {
            "version=1\nCID=1\n",
            "# c\n  \n  \r\nversion=3\r\n",
            "KDMV",
            "COWD",
        };
        static const char *no[] = {
            "\nversion=1\n",
            "version=4\n",
            "version=1",
            "x=1\nversion=1\n",
        };
        struct ia_probe p = {0};

        (void)state;
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
                p.head = (const uint8_t *)yes[i];
                p.head_len = strlen(yes[i]);
                assert_int_equal(ia_drv_vmdk.probe(&p), 100);
        }
        for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
                p.head = (const uint8_t *)no[i];
                p.head_len = strlen(no[i]);
                assert_int_equal(ia_drv_vmdk.probe(&p), 0);
        }
}

/* Every read failing in turn: open or map fails cleanly, never crashes. */
static void test_read_faults(void **state)
{
        struct sparse *s = malloc(sizeof(*s));
        struct ia_error err;
        bool ok = false;

        (void)state;
        sparse_build(s, "parentFileNameHint=\"p.vmdk\"\n");
        sparse_gte(s, 0, 8);
        for (uint64_t n = 1; n < 64 && !ok; n++) {
                struct ia_image *img = NULL;
                struct ia_bstatus st;
                int r;

                ia_error_clear(&err);
                if (open_mem(s->buf, s->len, n, &img, &err) < 0) {
                        assert_null(img);
                        assert_int_equal(err.cat, IA_ERR_IO);
                        continue;
                }
                r = img->drv->block_status(img, 0, img->size, &st, &err);
                if (r == 0)
                        r = img->drv->block_status(img, 600 * GRAIN_B, GRAIN_B, &st, &err);
                if (r < 0)
                        assert_int_equal(err.cat, IA_ERR_IO);
                else
                        ok = true;
                ia_image_free(img);
        }
        assert_true(ok);
        free(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sparse_grains),
            cmocka_unit_test(test_sparse_parent),
            cmocka_unit_test(test_sparse_footer),
            cmocka_unit_test(test_sparse_malformed),
            cmocka_unit_test(test_vmdk3),
            cmocka_unit_test(test_descriptor),
            cmocka_unit_test(test_descriptor_errors),
            cmocka_unit_test(test_too_many_extents),
            cmocka_unit_test(test_probe),
            cmocka_unit_test(test_read_faults),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
