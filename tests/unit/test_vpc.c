/*
 * vpc (VHD) driver on images built in memory: probing, the virtual size
 * rules of qemu 7.2 and 10.x, dynamic and fixed block status, the true map
 * of differencing disks (parent locators, sector bitmaps), malformed
 * footers and headers (each must fail with a sensible category), and read
 * failures injected at every read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "bytes_build.h"
#include "imgtest.h"

#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "drivers.h"

static const struct ia_open_ctx ctx72 = {.compat = 702};
static const struct ia_open_ctx ctx102 = {.compat = 1002};

/*
 * A dynamic disk of 4 blocks of 4 KiB: footer copy, dynamic header at 512,
 * BAT at 1536, block 0 at 2048 and block 2 at 6656 (each a 512-byte bitmap
 * and 4 KiB of data), footer at the end.
 */
#define BS       4096
#define DYN_LEN  (6656 + 512 + BS + 512)
#define FOOT_END (DYN_LEN - 512)
#define LOC_OFF  1600 /* parent locator data, inside the BAT sector's slack */

static void footer_sum(uint8_t *f)
{
        uint32_t sum = 0;

        put_be32(f + 64, 0);
        for (int i = 0; i < 512; i++)
                sum += f[i];
        put_be32(f + 64, ~sum);
}

static void footer_build(uint8_t *f, uint32_t type, uint64_t data_off, const char *creator,
                         uint64_t size)
{
        memset(f, 0, 512);
        memcpy(f, "conectix", 8);
        put_be32(f + 8, 2);
        put_be32(f + 12, 0x10000);
        put_be64(f + 16, data_off);
        memcpy(f + 28, creator, 4);
        put_be64(f + 40, size);
        put_be64(f + 48, size);
        put_be16(f + 56, 1); /* CHS 1/2/3: 3072 bytes */
        f[58] = 2;
        f[59] = 3;
        put_be32(f + 60, type);
        footer_sum(f);
}

/* Copy the footer at 0 to the end (after patching it). */
static void footer_sync(uint8_t *b)
{
        footer_sum(b);
        memcpy(b + FOOT_END, b, 512);
}

static void dyn_build(uint8_t *b, uint32_t type)
{
        uint8_t *dh = b + 512;

        memset(b, 0, DYN_LEN);
        footer_build(b, type, 512, "qem2", 4 * BS);
        memcpy(dh, "cxsparse", 8);
        memset(dh + 8, 0xff, 8);
        put_be64(dh + 16, 1536);
        put_be32(dh + 24, 0x10000);
        put_be32(dh + 28, 4);
        put_be32(dh + 32, BS);
        memset(b + 1536, 0xff, 16);
        put_be32(b + 1536, 2048 / 512);
        put_be32(b + 1536 + 8, 6656 / 512);
        b[2048] = 0xf0; /* block 0: sectors 0-3 present */
        memset(b + 6656, 0xff, 512);
        memcpy(b + FOOT_END, b, 512);
}

static int open_ctx(const struct ia_open_ctx *c, const uint8_t *buf, size_t len, const char *fmt,
                    struct ia_image **img, struct ia_error *err)
{
        return imgtest_open(c, buf, len, fmt, img, err);
}

static struct ia_image *open_ok(const struct ia_open_ctx *c, const uint8_t *buf, size_t len,
                                const char *fmt)
{
        struct ia_image *img = NULL;
        struct ia_error err;

        if (open_ctx(c, buf, len, fmt, &img, &err) < 0)
                fail_msg("open failed: %s", err.msg);
        return img;
}

static void expect_open_fail(const uint8_t *buf, size_t len, const char *fmt, enum ia_errcat cat)
{
        imgtest_expect_open_fail(&ctx72, buf, len, fmt, cat);
}

static void test_probe(void **state)
{
        uint8_t b[DYN_LEN];
        struct ia_probe p = {.head = b, .head_len = 512, .size = DYN_LEN};

        (void)state;
        dyn_build(b, 3);
        assert_int_equal(ia_drv_vpc.probe(&p), 100);
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_vpc);
        p.head_len = 7;
        assert_int_equal(ia_drv_vpc.probe(&p), 0);
        /* A fixed disk (footer only at the end) is not recognised, as in qemu. */
        memset(b, 0, 512);
        p.head_len = 512;
        assert_int_equal(ia_drv_vpc.probe(&p), 0);
}

static void test_dynamic(void **state)
{
        static uint8_t b[DYN_LEN];
        struct ia_image *img;

        (void)state;
        dyn_build(b, 3);
        img = open_ok(&ctx72, b, sizeof(b), NULL);
        assert_ptr_equal(img->drv, &ia_drv_vpc);
        assert_int_equal(img->size, 4 * BS);
        assert_false(img->cow);
        assert_null(img->backing);
        assert_int_equal(img->cluster_size, BS);
        imgtest_expect_status(img, 0, BS, IA_BS_DATA | IA_BS_OFFSET, 2560);
        imgtest_expect_status(img, 100, BS - 100, IA_BS_DATA | IA_BS_OFFSET, 2660);
        imgtest_expect_status(img, BS, BS, IA_BS_ZERO, 0);
        imgtest_expect_status(img, 2 * BS + 512, BS - 512, IA_BS_DATA | IA_BS_OFFSET, 7168 + 512);
        imgtest_expect_status(img, 3 * BS, BS, IA_BS_ZERO, 0);
        ia_image_free(img);
}

static void test_size_rules(void **state)
{
        static uint8_t b[DYN_LEN];
        struct ia_image *img;

        (void)state;
        dyn_build(b, 3);
        /* An unknown creator: CHS in 7.2, current_size from 10.0 on. */
        memcpy(b + 28, "wa\0\0", 4);
        footer_sync(b);
        img = open_ok(&ctx72, b, sizeof(b), "vpc");
        assert_int_equal(img->size, 3072);
        ia_image_free(img);
        img = open_ok(&ctx102, b, sizeof(b), "vpc");
        assert_int_equal(img->size, 4 * BS);
        ia_image_free(img);
        /* "qemu": CHS in both. */
        memcpy(b + 28, "qemu", 4);
        footer_sync(b);
        img = open_ok(&ctx102, b, sizeof(b), "vpc");
        assert_int_equal(img->size, 3072);
        ia_image_free(img);
        /* The maximum geometry always means current_size. */
        put_be16(b + 56, 65535);
        b[58] = 16;
        b[59] = 255;
        footer_sync(b);
        img = open_ok(&ctx72, b, sizeof(b), "vpc");
        assert_int_equal(img->size, 4 * BS);
        ia_image_free(img);
        /* current_size is floored to sectors. */
        memcpy(b + 28, "win ", 4);
        put_be64(b + 48, 4 * BS - 1);
        footer_sync(b);
        img = open_ok(&ctx72, b, sizeof(b), "vpc");
        assert_int_equal(img->size, 4 * BS - 512);
        ia_image_free(img);
}

static void test_differencing(void **state)
{
        static uint8_t b[DYN_LEN];
        const char *rel = "..\\dir\\p.vhd";
        struct ia_image *img;

        (void)state;
        dyn_build(b, 4);
        /* Locator 2: W2ku (absolute), locator 5: W2ru (relative, preferred). */
        put_be32(b + 512 + 576 + 48, 0x57326b75);
        put_be32(b + 512 + 576 + 48 + 8, 12);
        put_be64(b + 512 + 576 + 48 + 16, LOC_OFF + 100);
        put_utf16le(b + LOC_OFF + 100, "C:\\a");
        put_be32(b + 512 + 576 + 120, 0x57327275);
        put_be32(b + 512 + 576 + 120 + 8, (uint32_t)strlen(rel) * 2);
        put_be64(b + 512 + 576 + 120 + 16, LOC_OFF);
        put_utf16le(b + LOC_OFF, rel);
        footer_sync(b);
        img = open_ok(&ctx72, b, sizeof(b), NULL);
        assert_true(img->cow);
        assert_string_equal(img->backing, "../dir/p.vhd");
        assert_string_equal(img->backing_fmt, "vpc");
        imgtest_expect_status(img, 0, 2048, IA_BS_DATA | IA_BS_OFFSET, 2560);
        imgtest_expect_status(img, 1000, 1048, IA_BS_DATA | IA_BS_OFFSET, 3560);
        imgtest_expect_status(img, 2048, 2048, 0, 0);
        imgtest_expect_status(img, BS, BS, 0, 0);
        imgtest_expect_status(img, 2 * BS, BS, IA_BS_DATA | IA_BS_OFFSET, 7168);
        ia_image_free(img);

        /* Only the absolute locator: kept as recorded. */
        put_be32(b + 512 + 576 + 120, 0);
        img = open_ok(&ctx72, b, sizeof(b), NULL);
        assert_string_equal(img->backing, "C:\\a");
        ia_image_free(img);

        /* No locator: the parent unicode name (UTF-16BE) of the header. */
        put_be32(b + 512 + 576 + 48, 0);
        b[512 + 65] = 'q';
        b[512 + 67] = 0xe9; /* U+00E9 */
        img = open_ok(&ctx72, b, sizeof(b), NULL);
        assert_string_equal(img->backing, "q\xc3\xa9");
        ia_image_free(img);

        /* Nothing at all: no backing, still copy-on-write. */
        b[512 + 65] = 0;
        b[512 + 67] = 0;
        img = open_ok(&ctx72, b, sizeof(b), NULL);
        assert_null(img->backing);
        assert_true(img->cow);
        ia_image_free(img);
}

static void test_fixed(void **state)
{
        static uint8_t b[4 * BS + 512];
        struct ia_image *img;

        (void)state;
        memset(b, 0, sizeof(b));
        footer_build(b + 4 * BS, 2, UINT64_MAX, "qem2", 4 * BS);
        img = open_ok(&ctx72, b, sizeof(b), NULL);
        assert_ptr_equal(img->drv, &ia_drv_raw); /* never probed */
        ia_image_free(img);
        img = open_ok(&ctx72, b, sizeof(b), "vpc");
        assert_int_equal(img->size, 4 * BS);
        imgtest_expect_status(img, 0, 4 * BS, IA_BS_DATA | IA_BS_OFFSET | IA_BS_RECURSE, 0);
        imgtest_expect_status(img, 777, 4 * BS - 777, IA_BS_DATA | IA_BS_OFFSET | IA_BS_RECURSE,
                              777);
        ia_image_free(img);
        /* The footer at the end must say fixed. */
        put_be32(b + 4 * BS + 60, 3);
        footer_sum(b + 4 * BS);
        expect_open_fail(b, sizeof(b), "vpc", IA_ERR_CORRUPT);
        /* A footer at 0 saying fixed is fixed, whatever follows. */
        dyn_build(b, 2);
        img = open_ok(&ctx72, b, DYN_LEN, "vpc");
        imgtest_expect_status(img, 0, 4 * BS, IA_BS_DATA | IA_BS_OFFSET | IA_BS_RECURSE, 0);
        ia_image_free(img);
}

static void test_malformed(void **state)
{
        static uint8_t b[DYN_LEN];
        uint8_t *dh = b + 512;

        (void)state;
        dyn_build(b, 3);
        b[64] ^= 1;
        expect_open_fail(b, sizeof(b), "vpc", IA_ERR_CORRUPT);

        dyn_build(b, 3);
        expect_open_fail(b, 100, "vpc", IA_ERR_TRUNCATED);
        expect_open_fail(b, 0, "vpc", IA_ERR_TRUNCATED);
        expect_open_fail(b, 1000, "vpc", IA_ERR_CORRUPT); /* header past the end */
        expect_open_fail(b, 3000, "vpc", IA_ERR_CORRUPT); /* blocks past the end */

        static const uint32_t bad_bs[] = {0, 256, 3000, 0x80000001u};
        for (size_t i = 0; i < sizeof(bad_bs) / sizeof(bad_bs[0]); i++) {
                dyn_build(b, 3);
                put_be32(dh + 32, bad_bs[i]);
                expect_open_fail(b, sizeof(b), "vpc", IA_ERR_CORRUPT);
        }

        dyn_build(b, 3);
        dh[0] = 'X';
        expect_open_fail(b, sizeof(b), "vpc", IA_ERR_CORRUPT);

        dyn_build(b, 3);
        put_be64(dh + 16, UINT64_MAX - 8); /* BAT offset overflows */
        expect_open_fail(b, sizeof(b), "vpc", IA_ERR_CORRUPT);

        dyn_build(b, 3);
        put_be64(dh + 16, 1ull << 40);
        expect_open_fail(b, sizeof(b), "vpc", IA_ERR_CORRUPT);

        dyn_build(b, 3);
        put_be32(dh + 28, 0x7fffffff);
        expect_open_fail(b, sizeof(b), "vpc", IA_ERR_LIMIT);

        dyn_build(b, 3);
        put_be32(dh + 28, 3); /* BAT smaller than the disk */
        expect_open_fail(b, sizeof(b), "vpc", IA_ERR_CORRUPT);

        dyn_build(b, 3);
        put_be32(b + 1536 + 4, 0x10000000); /* block 1 far past the end */
        expect_open_fail(b, sizeof(b), "vpc", IA_ERR_CORRUPT);

        dyn_build(b, 3);
        put_be64(b + 48, 1ull << 50); /* 1 PiB: beyond qemu's 2040 GiB */
        footer_sync(b);
        expect_open_fail(b, sizeof(b), "vpc", IA_ERR_LIMIT);

        dyn_build(b, 3);
        put_be64(b + 16, UINT64_MAX); /* dynamic type, no dynamic header */
        footer_sync(b);
        expect_open_fail(b, sizeof(b), "vpc", IA_ERR_CORRUPT);

        /* Differencing: locators too long or outside the file. */
        dyn_build(b, 4);
        put_be32(dh + 576, 0x57327275);
        put_be32(dh + 576 + 8, 0x7fffffff);
        put_be64(dh + 576 + 16, LOC_OFF);
        expect_open_fail(b, sizeof(b), "vpc", IA_ERR_LIMIT);
        put_be32(dh + 576 + 8, 64);
        put_be64(dh + 576 + 16, UINT64_MAX - 10);
        expect_open_fail(b, sizeof(b), "vpc", IA_ERR_CORRUPT);
}

static void test_faults(void **state)
{
        static uint8_t b[DYN_LEN];

        (void)state;
        dyn_build(b, 4);
        imgtest_fault_walk(&ctx72, b, sizeof(b), "vpc", 16, 1024);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_probe),      cmocka_unit_test(test_dynamic),
            cmocka_unit_test(test_size_rules), cmocka_unit_test(test_differencing),
            cmocka_unit_test(test_fixed),      cmocka_unit_test(test_malformed),
            cmocka_unit_test(test_faults),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
