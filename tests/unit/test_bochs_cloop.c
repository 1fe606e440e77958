/*
 * bochs and cloop drivers on images built in memory: the sizes qemu gives
 * them, the one data entry without offset qemu maps them as, and every
 * header check qemu's open makes (each malformed header must fail with a
 * message, never crash), plus read failures injected at every read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "imgtest.h"

#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "drivers.h"
#include "map.h"

static const struct ia_open_ctx ctx = {.compat = 702};
/* `imgaudit map --true-map` */
static const struct ia_open_ctx true_ctx = {.compat = 1002, .true_map = true};

static void put_le32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static void put_be32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
        put_be32(p, (uint32_t)(v >> 32));
        put_be32(p + 4, (uint32_t)v);
}

struct entries {
        struct ia_map_entry e[8];
        size_t n;
};

static int collect(void *opaque, const struct ia_map_entry *e, bool last, struct ia_error *err)
{
        struct entries *c = opaque;

        (void)last;
        (void)err;
        assert_true(c->n < 8);
        c->e[c->n++] = *e;
        return 0;
}

/* The whole map of img is qemu's answer for a driver without block status. */
static void expect_one_data_entry(struct ia_image *img)
{
        struct ia_map_opts o = {.start = 0, .max_len = IA_MAP_NO_MAX};
        struct entries c = {.n = 0};
        struct ia_error err;

        assert_int_equal(ia_map(img, &o, collect, &c, &err), 0);
        assert_int_equal(c.n, 1);
        assert_int_equal(c.e[0].start, 0);
        assert_int_equal(c.e[0].length, img->size);
        assert_true(c.e[0].data && c.e[0].present);
        assert_false(c.e[0].zero || c.e[0].has_offset || c.e[0].compressed);
        assert_int_equal(c.e[0].depth, 0);
}

/* The whole merged map of img under flags. */
static void map_all(struct ia_image *img, unsigned flags, struct entries *c)
{
        struct ia_map_opts o = {.start = 0, .max_len = IA_MAP_NO_MAX, .flags = flags};
        struct ia_error err;

        c->n = 0;
        if (ia_map(img, &o, collect, c, &err) < 0)
                fail_msg("map failed: %s", err.msg);
}

/* Entry i is [start, start+len) with data/zero and, for data, the host offset (or none: -1). */
static void expect_entry(const struct entries *c, size_t i, uint64_t start, uint64_t len, bool data,
                         int64_t host)
{
        const struct ia_map_entry *e = &c->e[i];

        assert_true(i < c->n);
        if (e->start != start || e->length != len || e->data != data || e->zero == data ||
            !e->present || e->has_offset != (host >= 0) ||
            (host >= 0 && e->offset != (uint64_t)host))
                fail_msg("entry %zu: got %llu+%llu data %d zero %d offset %d:%llu, expected "
                         "%llu+%llu data %d offset %lld",
                         i, (unsigned long long)e->start, (unsigned long long)e->length, e->data,
                         e->zero, e->has_offset, (unsigned long long)e->offset,
                         (unsigned long long)start, (unsigned long long)len, data, (long long)host);
}

static void fault_sweep_ctx(const struct ia_open_ctx *c, const uint8_t *buf, size_t len,
                            const char *fmt)
{
        for (uint64_t n = 1; n < 8; n++) {
                struct ia_error err;
                struct ia_source *mem, *bad;
                struct ia_file *file;
                struct ia_image *img = NULL;
                uint64_t count = 0;

                ia_error_clear(&err);
                mem = ia_source_memory(buf, len, false, &err);
                assert_non_null(mem);
                bad = ia_source_faulty(mem, n, &count, &err);
                assert_non_null(bad);
                ia_source_unref(mem);
                file = ia_file_new(bad, "faulty", &err);
                assert_non_null(file);
                if (ia_image_open(c, file, fmt, &img, &err) < 0) {
                        assert_int_equal(err.cat, IA_ERR_IO);
                        continue;
                }
                if (c->true_map) {
                        struct ia_map_opts o = {.start = 0, .max_len = IA_MAP_NO_MAX};
                        struct entries got = {.n = 0};

                        if (ia_map(img, &o, collect, &got, &err) < 0)
                                assert_true(err.cat == IA_ERR_IO || err.cat == IA_ERR_CORRUPT);
                }
                ia_image_free(img);
        }
}

static void fault_sweep(const uint8_t *buf, size_t len, const char *fmt)
{
        fault_sweep_ctx(&ctx, buf, len, fmt);
        fault_sweep_ctx(&true_ctx, buf, len, fmt);
}

/* ---------------------------------------------------------------- bochs */

#define BOCHS_LEN (512 + 4 * 4)

/* A version 2.0 growing redolog of 4 extents of 4 KiB, 16 KiB - 100 bytes of disk. */
static void bochs_build(uint8_t *b, uint32_t version)
{
        memset(b, 0, BOCHS_LEN);
        memcpy(b, "Bochs Virtual HD Image", 23);
        memcpy(b + 32, "Redolog", 8);
        memcpy(b + 48, "Growing", 8);
        put_le32(b + 64, version);
        put_le32(b + 68, 512);  /* header size: the catalog follows */
        put_le32(b + 72, 4);    /* catalog entries */
        put_le32(b + 76, 512);  /* bitmap */
        put_le32(b + 80, 4096); /* extent */
        put_le64(b + (version == 0x10000 ? 84 : 88), 16384 - 100);
        for (int i = 0; i < 4; i++)
                put_le32(b + 512 + 4 * i, 0xffffffff);
}

static void test_bochs_map(void **state)
{
        uint8_t b[BOCHS_LEN];
        struct ia_image *img;
        struct ia_error err;

        (void)state;
        bochs_build(b, 0x20000);
        assert_int_equal(imgtest_open(&ctx, b, sizeof(b), NULL, &img, &err), 0);
        assert_string_equal(img->drv->name, "bochs");
        /* qemu counts whole sectors of the disk size. */
        assert_int_equal(img->size, 16384 - 512);
        assert_false(img->cow);
        assert_null(img->backing);
        expect_one_data_entry(img);
        ia_image_free(img);

        bochs_build(b, 0x10000);
        assert_int_equal(imgtest_open(&ctx, b, sizeof(b), "bochs", &img, &err), 0);
        assert_int_equal(img->size, 16384 - 512);
        ia_image_free(img);

        /* The catalog is not needed for the map: a file cut after the header opens
         * (qemu reads the missing catalog as zeroes). */
        bochs_build(b, 0x20000);
        assert_int_equal(imgtest_open(&ctx, b, 100, NULL, &img, &err), 0);
        ia_image_free(img);

        /* An empty disk. */
        put_le64(b + 88, 0);
        assert_int_equal(imgtest_open(&ctx, b, sizeof(b), NULL, &img, &err), 0);
        assert_int_equal(img->size, 0);
        ia_image_free(img);

        bochs_build(b, 0x20000);
        fault_sweep(b, sizeof(b), NULL);
        fault_sweep(b, sizeof(b), "bochs");
}

/*
 * The true map.  Catalog {unallocated, 0, unallocated, 1}: the data start at
 * 512 + 4 * 4 = 528, each extent is 1 sector of bitmap and 8 of data (4608
 * bytes), so extent 0 of the file has its bitmap at 528 and its data at 1040,
 * extent 1 at 5136 and 5648.  Guest extent 1 (file extent 0): sectors 0-2
 * and 4-7 written; guest extent 3 (file extent 1, 7 sectors of disk):
 * sectors 0-3.
 */
#define BOCHS_TRUE_LEN (528 + 2 * 4608)

static void bochs_build_true(uint8_t *b)
{
        memset(b, 0, BOCHS_TRUE_LEN);
        bochs_build(b, 0x20000);
        put_le32(b + 512 + 4, 0);
        put_le32(b + 512 + 12, 1);
        b[528] = 0xf7; /* sectors 0-2, 4-7 */
        b[5136] = 0x0f;
        for (size_t i = 1040; i < 1040 + 4096; i++)
                b[i] = (uint8_t)(i % 251 + 1);
}

static void test_bochs_true_map(void **state)
{
        uint8_t *b = calloc(1, BOCHS_TRUE_LEN);
        struct entries c;
        struct ia_image *img;
        struct ia_error err;

        (void)state;
        assert_non_null(b);
        bochs_build_true(b);
        /* Without --true-map: qemu's answer, whatever the catalog says. */
        assert_int_equal(imgtest_open(&ctx, b, BOCHS_TRUE_LEN, NULL, &img, &err), 0);
        assert_null(img->priv);
        expect_one_data_entry(img);
        ia_image_free(img);

        assert_int_equal(imgtest_open(&true_ctx, b, BOCHS_TRUE_LEN, NULL, &img, &err), 0);
        assert_int_equal(img->size, 15872);
        /* The driver alone: one run of equal bits, never past its extent. */
        imgtest_expect_status(img, 0, 4096, IA_BS_ZERO, 0);
        imgtest_expect_status(img, 4096, 1536, IA_BS_DATA | IA_BS_OFFSET, 1040);
        imgtest_expect_status(img, 4096 + 512, 1024, IA_BS_DATA | IA_BS_OFFSET, 1040 + 512);
        imgtest_expect_status(img, 5632, 512, IA_BS_ZERO, 0);
        imgtest_expect_status(img, 6144, 2048, IA_BS_DATA | IA_BS_OFFSET, 1040 + 2048);
        imgtest_expect_status(img, 12288, 2048, IA_BS_DATA | IA_BS_OFFSET, 5648);
        imgtest_expect_status(img, 14336, 1536, IA_BS_ZERO, 0);
        map_all(img, IA_MAP_MERGE_COMPRESSED, &c);
        assert_int_equal(c.n, 7);
        expect_entry(&c, 0, 0, 4096, false, -1);
        expect_entry(&c, 1, 4096, 1536, true, 1040);
        expect_entry(&c, 2, 5632, 512, false, -1);
        expect_entry(&c, 3, 6144, 2048, true, 1040 + 2048);
        expect_entry(&c, 4, 8192, 4096, false, -1);
        expect_entry(&c, 5, 12288, 2048, true, 5648);
        expect_entry(&c, 6, 14336, 1536, false, -1);
        ia_image_free(img);

        /* A bitmap past the end of the file reads as zero: unallocated. */
        assert_int_equal(imgtest_open(&true_ctx, b, 5136, NULL, &img, &err), 0);
        imgtest_expect_status(img, 12288, 3584, IA_BS_ZERO, 0);
        ia_image_free(img);
        /* A catalog past the end: entries read 0, extent 0 of the file, whose
         * bitmap is past the end too: all zero. */
        assert_int_equal(imgtest_open(&true_ctx, b, 516, NULL, &img, &err), 0);
        map_all(img, 0, &c);
        assert_int_equal(c.n, 1);
        expect_entry(&c, 0, 0, 15872, false, -1);
        ia_image_free(img);
        /* Data past the end of the file (qemu reads zeroes there): still the
         * sectors the bitmap names, found past EOF by the core. */
        assert_int_equal(imgtest_open(&true_ctx, b, 5137, NULL, &img, &err), 0);
        imgtest_expect_status(img, 12288, 2048, IA_BS_DATA | IA_BS_OFFSET, 5648);
        ia_image_free(img);

        /* An extent whose place overflows 2^63: a bitmap size of 0 is 2^23
         * sectors in qemu, times entry 0xfffffffe. */
        put_le32(b + 76, 0);
        put_le32(b + 512 + 12, 0xfffffffeu);
        assert_int_equal(imgtest_open(&true_ctx, b, BOCHS_TRUE_LEN, NULL, &img, &err), 0);
        {
                struct ia_map_opts o = {.start = 0, .max_len = IA_MAP_NO_MAX};
                struct entries got = {.n = 0};

                assert_int_equal(ia_map(img, &o, collect, &got, &err), -1);
                assert_int_equal(err.cat, IA_ERR_CORRUPT);
        }
        ia_image_free(img);

        bochs_build_true(b);
        fault_sweep(b, BOCHS_TRUE_LEN, "bochs");
        free(b);
}

static void test_bochs_malformed(void **state)
{
        uint8_t b[BOCHS_LEN];

        (void)state;
        /* Not bochs at all, with -f bochs. */
        memset(b, 0, sizeof(b));
        imgtest_expect_open_fail(&ctx, b, sizeof(b), "bochs", IA_ERR_CORRUPT);
        imgtest_expect_open_fail(&ctx, b, 0, "bochs", IA_ERR_CORRUPT);
        bochs_build(b, 0x30000);
        imgtest_expect_open_fail(&ctx, b, sizeof(b), "bochs", IA_ERR_CORRUPT);
        bochs_build(b, 0x20000);
        memcpy(b + 48, "Undoable", 9);
        imgtest_expect_open_fail(&ctx, b, sizeof(b), "bochs", IA_ERR_CORRUPT);

        /* The catalog, over qemu's cap of 2^20 entries. */
        bochs_build(b, 0x20000);
        put_le32(b + 72, 0x100001);
        imgtest_expect_open_fail(&ctx, b, sizeof(b), NULL, IA_ERR_CORRUPT);
        put_le32(b + 72, 0xffffffff);
        imgtest_expect_open_fail(&ctx, b, sizeof(b), NULL, IA_ERR_CORRUPT);

        /* Extent sizes: below 512, not a power of two, over 8 MiB. */
        static const uint32_t bad_extents[] = {0, 256, 511, 4095, 4097, 0x1000000, 0x80000000u};
        for (size_t i = 0; i < sizeof(bad_extents) / sizeof(bad_extents[0]); i++) {
                bochs_build(b, 0x20000);
                put_le32(b + 80, bad_extents[i]);
                imgtest_expect_open_fail(&ctx, b, sizeof(b), NULL, IA_ERR_CORRUPT);
        }

        /* A catalog too small for the disk, and a huge disk. */
        bochs_build(b, 0x20000);
        put_le64(b + 88, 16384 + 512);
        imgtest_expect_open_fail(&ctx, b, sizeof(b), NULL, IA_ERR_CORRUPT);
        put_le64(b + 88, UINT64_MAX);
        imgtest_expect_open_fail(&ctx, b, sizeof(b), NULL, IA_ERR_CORRUPT);
        /* The largest disk the caps allow: 2^20 extents of 8 MiB. */
        put_le32(b + 72, 0x100000);
        put_le32(b + 80, 0x800000);
        put_le64(b + 88, (uint64_t)0x100000 * 0x800000);
        {
                struct ia_image *img;
                struct ia_error err;

                assert_int_equal(imgtest_open(&ctx, b, sizeof(b), NULL, &img, &err), 0);
                assert_int_equal(img->size, (uint64_t)0x100000 * 0x800000);
                expect_one_data_entry(img);
                ia_image_free(img);
        }
}

/* ---------------------------------------------------------------- cloop */

static const char cloop_magic[] = "#!/bin/sh\n"
                                  "#V2.0 Format\n"
                                  "modprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n";

#define CLOOP_LEN 4096

/* n blocks of bs bytes, each compressed to 100 bytes (not real zlib: never read). */
static void cloop_build(uint8_t *b, uint32_t bs, uint32_t n)
{
        memset(b, 0, CLOOP_LEN);
        memcpy(b, cloop_magic, sizeof(cloop_magic) - 1);
        put_be32(b + 128, bs);
        put_be32(b + 132, n);
        for (uint32_t i = 0; i <= n && 136 + 8 * i + 8 <= CLOOP_LEN; i++)
                put_be64(b + 136 + 8 * i, 1024 + 100 * (uint64_t)i);
}

static void test_cloop_map(void **state)
{
        uint8_t *b = calloc(1, CLOOP_LEN);
        struct ia_image *img;
        struct ia_error err;

        (void)state;
        assert_non_null(b);
        cloop_build(b, 65536, 16);
        assert_int_equal(imgtest_open(&ctx, b, CLOOP_LEN, NULL, &img, &err), 0);
        assert_string_equal(img->drv->name, "cloop");
        assert_int_equal(img->size, 16 * 65536);
        assert_false(img->cow);
        expect_one_data_entry(img);
        ia_image_free(img);

        /* No blocks at all: an empty disk. */
        cloop_build(b, 512, 0);
        assert_int_equal(imgtest_open(&ctx, b, CLOOP_LEN, "cloop", &img, &err), 0);
        assert_int_equal(img->size, 0);
        ia_image_free(img);

        /* Offsets past the end of the file read as zeroes: all zero is valid. */
        memset(b + 136, 0, CLOOP_LEN - 136);
        put_be32(b + 132, 1000000);
        assert_int_equal(imgtest_open(&ctx, b, CLOOP_LEN, NULL, &img, &err), 0);
        assert_int_equal(img->size, 1000000ull * 512);
        ia_image_free(img);

        /* qemu's size is a 32-bit product: 2^24 blocks of 64 MiB wrap to 0 sectors,
         * 2^24 - 1 blocks of 64 MiB to 2^32 - 2^17 sectors. */
        cloop_build(b, 64u << 20, 1u << 24);
        memset(b + 136, 0, CLOOP_LEN - 136);
        assert_int_equal(imgtest_open(&ctx, b, CLOOP_LEN, NULL, &img, &err), 0);
        assert_int_equal(img->size, 0);
        ia_image_free(img);
        put_be32(b + 132, (1u << 24) - 1);
        assert_int_equal(imgtest_open(&ctx, b, CLOOP_LEN, NULL, &img, &err), 0);
        assert_int_equal(img->size, (uint64_t)(uint32_t)(((1u << 24) - 1) * (1u << 17)) * 512);
        ia_image_free(img);

        cloop_build(b, 65536, 16);
        fault_sweep(b, CLOOP_LEN, NULL);
        fault_sweep(b, CLOOP_LEN, "cloop");
        free(b);
}

/* The true map: every block compressed data without offset; an empty block is refused. */
static void test_cloop_true_map(void **state)
{
        uint8_t *b = calloc(1, CLOOP_LEN);
        struct entries c;
        struct ia_image *img;
        struct ia_error err;

        (void)state;
        assert_non_null(b);
        cloop_build(b, 65536, 16);
        assert_int_equal(imgtest_open(&true_ctx, b, CLOOP_LEN, NULL, &img, &err), 0);
        imgtest_expect_status(img, 0, 65536, IA_BS_DATA | IA_BS_COMPRESSED, 0);
        imgtest_expect_status(img, 3 * 65536 + 512, 65536 - 512, IA_BS_DATA | IA_BS_COMPRESSED, 0);
        map_all(img, IA_MAP_MERGE_COMPRESSED, &c);
        assert_int_equal(c.n, 1);
        expect_entry(&c, 0, 0, 16 * 65536, true, -1);
        assert_true(c.e[0].compressed);
        ia_image_free(img);

        /* Block 5 of 0 bytes: qemu cannot inflate it. */
        put_be64(b + 136 + 8 * 6, 1024 + 500);
        assert_int_equal(imgtest_open(&ctx, b, CLOOP_LEN, NULL, &img, &err), 0);
        expect_one_data_entry(img);
        ia_image_free(img);
        assert_int_equal(imgtest_open(&true_ctx, b, CLOOP_LEN, NULL, &img, &err), 0);
        imgtest_expect_status(img, 4 * 65536, 65536, IA_BS_DATA | IA_BS_COMPRESSED, 0);
        {
                struct ia_map_opts o = {.start = 0, .max_len = IA_MAP_NO_MAX};
                struct entries got = {.n = 0};

                assert_int_equal(ia_map(img, &o, collect, &got, &err), -1);
                assert_int_equal(err.cat, IA_ERR_CORRUPT);
                assert_non_null(strstr(err.msg, "block 5"));
        }
        ia_image_free(img);
        free(b);
}

static void test_cloop_malformed(void **state)
{
        uint8_t *b = calloc(1, CLOOP_LEN);

        (void)state;
        assert_non_null(b);
        /* Block sizes: zero, not a multiple of 512, over 64 MiB. */
        static const uint32_t bad_sizes[] = {0, 511, 1000, (64u << 20) + 512, 0xffffffffu};
        for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
                cloop_build(b, bad_sizes[i], 4);
                imgtest_expect_open_fail(&ctx, b, CLOOP_LEN, NULL, IA_ERR_CORRUPT);
        }
        /* A file holding only the magic: the block size reads as zero. */
        imgtest_expect_open_fail(&ctx, b, sizeof(cloop_magic) - 1, NULL, IA_ERR_CORRUPT);
        imgtest_expect_open_fail(&ctx, b, 0, "cloop", IA_ERR_CORRUPT);

        /* Too many blocks: more than 512 MiB of offsets. */
        cloop_build(b, 65536, 1u << 26);
        memset(b + 136, 0, CLOOP_LEN - 136);
        imgtest_expect_open_fail(&ctx, b, CLOOP_LEN, NULL, IA_ERR_CORRUPT);
        put_be32(b + 132, 0xffffffffu);
        imgtest_expect_open_fail(&ctx, b, CLOOP_LEN, NULL, IA_ERR_CORRUPT);
        /* The largest count accepted. */
        put_be32(b + 132, (1u << 26) - 1);
        {
                struct ia_image *img;
                struct ia_error err;

                assert_int_equal(imgtest_open(&ctx, b, CLOOP_LEN, NULL, &img, &err), 0);
                ia_image_free(img);
        }

        /* Decreasing offsets. */
        cloop_build(b, 65536, 16);
        put_be64(b + 136 + 8 * 5, 10);
        imgtest_expect_open_fail(&ctx, b, CLOOP_LEN, NULL, IA_ERR_CORRUPT);
        /* A block of more than 128 MiB compressed. */
        cloop_build(b, 65536, 2);
        put_be64(b + 136 + 16, 1124 + (128u << 20) + 1);
        imgtest_expect_open_fail(&ctx, b, CLOOP_LEN, NULL, IA_ERR_CORRUPT);
        put_be64(b + 136 + 16, 1124 + (128u << 20));
        {
                struct ia_image *img;
                struct ia_error err;

                assert_int_equal(imgtest_open(&ctx, b, CLOOP_LEN, NULL, &img, &err), 0);
                ia_image_free(img);
        }
        /* Offsets that run past the end of the file read as zero there: below the
         * last offset in the file. */
        cloop_build(b, 65536, 1000);
        imgtest_expect_open_fail(&ctx, b, CLOOP_LEN, NULL, IA_ERR_CORRUPT);
        imgtest_expect_open_fail(&ctx, b, 136 + 8 * 3 + 4, NULL, IA_ERR_CORRUPT);
        free(b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_bochs_map),       cmocka_unit_test(test_bochs_true_map),
            cmocka_unit_test(test_bochs_malformed), cmocka_unit_test(test_cloop_map),
            cmocka_unit_test(test_cloop_true_map),  cmocka_unit_test(test_cloop_malformed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
