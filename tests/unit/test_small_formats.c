/*
 * vdi, qed, qcow (v1), parallels and luks drivers on images built in memory:
 * header parsing, block status answers, probing, and malformed headers (each
 * must fail with a sensible category, never crash), plus read failures
 * injected at every read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "bytes_build.h"
#include "imgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "drivers.h"
#include "map.h"

static const struct ia_open_ctx ctx = {.compat = 702};

/* Open buf as fmt; 0 or -1 with *err. */
static int open_mem(const uint8_t *buf, size_t len, const char *fmt, struct ia_image **img,
                    struct ia_error *err)
{
        return imgtest_open(&ctx, buf, len, fmt, img, err);
}

static void expect_open_fail(const uint8_t *buf, size_t len, const char *fmt, enum ia_errcat cat)
{
        imgtest_expect_open_fail(&ctx, buf, len, fmt, cat);
}
static void expect_status_fail(struct ia_image *img, uint64_t off, enum ia_errcat cat)
{
        imgtest_expect_status_fail(img, off, cat, false);
}

static void fault_sweep(const uint8_t *buf, size_t len, const char *fmt, uint64_t probe_off)
{
        imgtest_fault_sweep(&ctx, buf, len, fmt, probe_off);
}

/* ---------------------------------------------------------------- vdi */

#define VDI_LEN (512 + 4 * 4)

static void vdi_build(uint8_t *b, uint32_t type)
{
        memset(b, 0, VDI_LEN);
        memcpy(b, "<<< QEMU VM Virtual Disk Image >>>\n", 35);
        put_le32(b + 64, 0xbeda107f);
        put_le32(b + 68, 0x00010001);
        put_le32(b + 72, 0x180);
        put_le32(b + 76, type);
        put_le32(b + 340, 512);  /* block map */
        put_le32(b + 344, 1024); /* data */
        put_le32(b + 360, 512);
        put_le64(b + 368, 4 << 20);
        put_le32(b + 376, 1 << 20);
        put_le32(b + 384, 4);
        put_le32(b + 512, 0);
        put_le32(b + 516, 0xffffffff);
        put_le32(b + 520, 1);
        put_le32(b + 524, 0xfffffffe);
}

static void test_vdi_map(void **state)
{
        uint8_t b[VDI_LEN];
        struct ia_image *img;
        struct ia_error err;

        (void)state;
        vdi_build(b, 1);
        assert_int_equal(open_mem(b, sizeof(b), "vdi", &img, &err), 0);
        assert_int_equal(img->size, 4 << 20);
        assert_false(img->cow);
        imgtest_expect_status(img, 0, 1 << 20, IA_BS_DATA | IA_BS_OFFSET, 1024);
        imgtest_expect_status(img, (1 << 20) + 5, (1 << 20) - 5, IA_BS_ZERO, 0);
        imgtest_expect_status(img, (2 << 20) + 100, (1 << 20) - 100, IA_BS_DATA | IA_BS_OFFSET,
                              1024 + (1 << 20) + 100);
        imgtest_expect_status(img, 3 << 20, 1 << 20, IA_BS_ZERO, 0);
        ia_image_free(img);

        vdi_build(b, 2);
        assert_int_equal(open_mem(b, sizeof(b), "vdi", &img, &err), 0);
        imgtest_expect_status(img, 0, 1 << 20, IA_BS_DATA | IA_BS_OFFSET | IA_BS_RECURSE, 1024);
        ia_image_free(img);

        /* A fractional last sector is rounded up, as qemu does. */
        vdi_build(b, 1);
        put_le64(b + 368, (4 << 20) - 1000);
        assert_int_equal(open_mem(b, sizeof(b), NULL, &img, &err), 0);
        assert_string_equal(img->drv->name, "vdi");
        assert_int_equal(img->size, (4 << 20) - 512);
        ia_image_free(img);
        fault_sweep(b, sizeof(b), "vdi", 2 << 20);
}

/* A differencing image (type 4): the parent named by uuid, blocks never written read through. */
static void test_vdi_diff(void **state)
{
        uint8_t b[VDI_LEN];
        struct ia_image *img;
        struct ia_error err;
        static const uint8_t link[16] = {0x44, 0x33, 0x22, 0x11, 0x66, 0x55, 0x88, 0x77,
                                         0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01};

        (void)state;
        vdi_build(b, 4);
        memcpy(b + 424, link, 16);
        b[408] = 0x0a; /* its own uuidModify */
        b[440] = 0x0b; /* the parent's, when it was made */
        assert_int_equal(open_mem(b, sizeof(b), "vdi", &img, &err), 0);
        assert_true(img->cow);
        assert_true(img->backing_by_id);
        assert_string_equal(img->backing, "uuid:11223344-5566-7788-99aa-bbccddeeff01");
        assert_string_equal(img->backing_fmt, "vdi");
        assert_string_equal(img->ident, "vdi-modify 0000000a-0000-0000-0000-000000000000");
        assert_string_equal(img->parent_ident[0],
                            "vdi-modify 0000000b-0000-0000-0000-000000000000");
        imgtest_expect_status(img, 0, 1 << 20, IA_BS_DATA | IA_BS_OFFSET, 1024);
        imgtest_expect_status(img, 1 << 20, 1 << 20, 0, 0);          /* never written: parent */
        imgtest_expect_status(img, 3 << 20, 1 << 20, IA_BS_ZERO, 0); /* discarded: zeroes */
        ia_image_free(img);
        /* no parent named: corrupt; a normal image naming one: unsupported, as qemu */
        vdi_build(b, 4);
        expect_open_fail(b, sizeof(b), "vdi", IA_ERR_CORRUPT);
        vdi_build(b, 1);
        memcpy(b + 424, link, 16);
        expect_open_fail(b, sizeof(b), "vdi", IA_ERR_UNSUPPORTED);
        /* another type (undo, 3) maps as a normal image, as qemu maps it */
        vdi_build(b, 3);
        assert_int_equal(open_mem(b, sizeof(b), "vdi", &img, &err), 0);
        assert_false(img->cow);
        ia_image_free(img);
        vdi_build(b, 4);
        memcpy(b + 424, link, 16);
        fault_sweep(b, sizeof(b), "vdi", 2 << 20);
}

static void test_vdi_malformed(void **state)
{
        uint8_t b[VDI_LEN];

        (void)state;
        vdi_build(b, 1);
        put_le32(b + 376, 0);
        expect_open_fail(b, sizeof(b), "vdi", IA_ERR_UNSUPPORTED);
        vdi_build(b, 1);
        put_le32(b + 68, 0x00010000);
        expect_open_fail(b, sizeof(b), "vdi", IA_ERR_UNSUPPORTED);
        vdi_build(b, 1);
        put_le32(b + 64, 0x12345678);
        expect_open_fail(b, sizeof(b), "vdi", IA_ERR_CORRUPT);
        vdi_build(b, 1);
        put_le32(b + 384, 3); /* the map cannot hold the disk */
        expect_open_fail(b, sizeof(b), "vdi", IA_ERR_CORRUPT);
        vdi_build(b, 1);
        put_le32(b + 384, 0x3fffffff);
        expect_open_fail(b, sizeof(b), "vdi", IA_ERR_CORRUPT);
        vdi_build(b, 1);
        put_le32(b + 384, 0x1fffff80); /* qemu's largest map: 2 GiB, past EOF */
        put_le64(b + 368, 1 << 20);
        expect_open_fail(b, sizeof(b), "vdi", IA_ERR_TRUNCATED);
        vdi_build(b, 1);
        put_le32(b + 384, 8); /* the map runs past EOF */
        expect_open_fail(b, sizeof(b), "vdi", IA_ERR_TRUNCATED);
        vdi_build(b, 1);
        put_le32(b + 340, 0xfffffe00);
        expect_open_fail(b, sizeof(b), "vdi", IA_ERR_TRUNCATED);
        vdi_build(b, 1);
        put_le32(b + 360, 4096);
        expect_open_fail(b, sizeof(b), "vdi", IA_ERR_UNSUPPORTED);
        vdi_build(b, 1);
        b[440] = 1; /* a parent UUID */
        expect_open_fail(b, sizeof(b), "vdi", IA_ERR_UNSUPPORTED);
        vdi_build(b, 1);
        put_le64(b + 368, UINT64_MAX);
        expect_open_fail(b, sizeof(b), "vdi", IA_ERR_CORRUPT);
        vdi_build(b, 1);
        expect_open_fail(b, 300, "vdi", IA_ERR_TRUNCATED);
}

/* ---------------------------------------------------------------- qed */

#define QED_LEN 32768

static void qed_build(uint8_t *b)
{
        memset(b, 0, QED_LEN);
        put_le32(b, 0x00444551);
        put_le32(b + 4, 4096);      /* cluster */
        put_le32(b + 8, 2);         /* table: 2 clusters, 1024 entries */
        put_le32(b + 12, 1);        /* header: 1 cluster */
        put_le64(b + 40, 4096);     /* L1 */
        put_le64(b + 48, 16 << 20); /* 4 L1 entries of 4 MiB */
        put_le64(b + 4096, 12288);  /* L1[0] -> L2 */
        put_le64(b + 12288 + 0 * 8, 20480);
        put_le64(b + 12288 + 1 * 8, 24576);
        put_le64(b + 12288 + 2 * 8, 1);
        put_le64(b + 12288 + 3 * 8, 1);
        put_le64(b + 12288 + 5 * 8, 28672);
}

static void test_qed_map(void **state)
{
        uint8_t *b = malloc(QED_LEN);
        struct ia_image *img;
        struct ia_error err;

        (void)state;
        assert_non_null(b);
        qed_build(b);
        assert_int_equal(open_mem(b, QED_LEN, NULL, &img, &err), 0);
        assert_string_equal(img->drv->name, "qed");
        assert_int_equal(img->size, 16 << 20);
        assert_true(img->cow);
        assert_null(img->backing);
        imgtest_expect_status(img, 0, 8192, IA_BS_DATA | IA_BS_OFFSET, 20480);
        imgtest_expect_status(img, 100, 8092, IA_BS_DATA | IA_BS_OFFSET, 20580);
        imgtest_expect_status(img, 8192, 8192, IA_BS_ZERO, 0);
        imgtest_expect_status(img, 16384, 4096, 0, 0);
        imgtest_expect_status(img, 20480, 4096, IA_BS_DATA | IA_BS_OFFSET, 28672);
        imgtest_expect_status(img, 24576, (4 << 20) - 24576, 0, 0);
        imgtest_expect_status(img, 5 << 20, 3 << 20, 0, 0); /* L1[1] unallocated: to the L2 reach */
        ia_image_free(img);
        fault_sweep(b, QED_LEN, "qed", 0);

        /* Backing file name in the header cluster; "raw, no probing". */
        qed_build(b);
        put_le64(b + 16, 0x1);
        put_le32(b + 56, 64);
        put_le32(b + 60, 8);
        memcpy(b + 64, "base.img", 8);
        assert_int_equal(open_mem(b, QED_LEN, "qed", &img, &err), 0);
        assert_string_equal(img->backing, "base.img");
        assert_string_equal(img->backing_fmt, "");
        ia_image_free(img);
        put_le64(b + 16, 0x7);
        assert_int_equal(open_mem(b, QED_LEN, "qed", &img, &err), 0);
        assert_string_equal(img->backing_fmt, "raw");
        assert_true(img->flags & IA_IMG_DIRTY);
        ia_image_free(img);

        /* Bad L2 and data cluster offsets fail the query, as in qemu. */
        qed_build(b);
        put_le64(b + 12288, 20480 + 512);
        assert_int_equal(open_mem(b, QED_LEN, "qed", &img, &err), 0);
        expect_status_fail(img, 0, IA_ERR_CORRUPT);
        ia_image_free(img);
        qed_build(b);
        put_le64(b + 12288, QED_LEN);
        assert_int_equal(open_mem(b, QED_LEN, "qed", &img, &err), 0);
        expect_status_fail(img, 0, IA_ERR_CORRUPT);
        ia_image_free(img);
        qed_build(b);
        put_le64(b + 4096, 0); /* an L2 table inside the header cluster */
        put_le64(b + 4096 + 8, 2048);
        assert_int_equal(open_mem(b, QED_LEN, "qed", &img, &err), 0);
        expect_status_fail(img, 4 << 20, IA_ERR_CORRUPT);
        ia_image_free(img);
        free(b);
}

static void test_qed_malformed(void **state)
{
        uint8_t *b = malloc(QED_LEN);

        (void)state;
        assert_non_null(b);
        qed_build(b);
        put_le32(b + 4, 3000);
        expect_open_fail(b, QED_LEN, "qed", IA_ERR_CORRUPT);
        qed_build(b);
        put_le32(b + 4, 0);
        expect_open_fail(b, QED_LEN, "qed", IA_ERR_CORRUPT);
        qed_build(b);
        put_le32(b + 8, 1); /* qemu refuses one-cluster tables */
        expect_open_fail(b, QED_LEN, "qed", IA_ERR_CORRUPT);
        qed_build(b);
        put_le32(b + 8, 0x40000000);
        expect_open_fail(b, QED_LEN, "qed", IA_ERR_CORRUPT);
        qed_build(b);
        put_le64(b + 40, 1ull << 40);
        expect_open_fail(b, QED_LEN, "qed", IA_ERR_CORRUPT);
        qed_build(b);
        put_le64(b + 40, UINT64_MAX - 4095);
        expect_open_fail(b, QED_LEN, "qed", IA_ERR_CORRUPT);
        qed_build(b);
        put_le64(b + 16, 0x8);
        expect_open_fail(b, QED_LEN, "qed", IA_ERR_UNSUPPORTED);
        qed_build(b);
        put_le64(b + 48, 1000);
        expect_open_fail(b, QED_LEN, "qed", IA_ERR_CORRUPT);
        qed_build(b);
        put_le64(b + 48, 1ull << 62);
        expect_open_fail(b, QED_LEN, "qed", IA_ERR_CORRUPT);
        qed_build(b);
        put_le64(b + 16, 0x1);
        put_le32(b + 56, 4000);
        put_le32(b + 60, 200);
        expect_open_fail(b, QED_LEN, "qed", IA_ERR_CORRUPT);
        qed_build(b); /* a huge header and a huge name: refused before any allocation */
        put_le32(b + 12, 0x100000);
        put_le64(b + 40, 8192);
        put_le64(b + 16, 0x1);
        put_le32(b + 56, 0);
        put_le32(b + 60, 0xffffffff);
        expect_open_fail(b, QED_LEN, "qed", IA_ERR_CORRUPT);
        put_le32(b + 12, 1);
        put_le64(b + 40, 4096);
        put_le32(b + 60, 5000); /* longer than the header cluster */
        expect_open_fail(b, QED_LEN, "qed", IA_ERR_CORRUPT);
        put_le32(b + 12, 2);
        put_le64(b + 40, 8192);
        put_le32(b + 60, 4096); /* longer than qemu's name buffer */
        expect_open_fail(b, QED_LEN, "qed", IA_ERR_LIMIT);
        qed_build(b);
        expect_open_fail(b, 40, "qed", IA_ERR_TRUNCATED);
        free(b);
}

/* ---------------------------------------------------------------- qcow */

#define QCOW_LEN 8192

static void qcow_build(uint8_t *b)
{
        memset(b, 0, QCOW_LEN);
        put_be32(b, 0x514649fb);
        put_be32(b + 4, 1);
        put_be64(b + 8, 48); /* backing name */
        put_be32(b + 16, 6);
        memcpy(b + 48, "b.qcow", 6);
        put_be64(b + 24, 4 << 20);
        b[32] = 12; /* 4 KiB clusters */
        b[33] = 9;  /* 512 entries: 2 MiB per L2 table */
        put_be64(b + 40, 64);
        put_be64(b + 64, 4096); /* L1[0] */
        put_be64(b + 4096 + 0 * 8, 8192);
        put_be64(b + 4096 + 1 * 8, (1ull << 63) | (3ull << 54) | 9000);
        put_be64(b + 4096 + 3 * 8, 12288);
}

static void test_qcow_map(void **state)
{
        uint8_t b[QCOW_LEN];
        struct ia_image *img;
        struct ia_error err;

        (void)state;
        qcow_build(b);
        assert_int_equal(open_mem(b, sizeof(b), NULL, &img, &err), 0);
        assert_string_equal(img->drv->name, "qcow");
        assert_int_equal(img->size, 4 << 20);
        assert_string_equal(img->backing, "b.qcow");
        assert_true(img->cow);
        imgtest_expect_status(img, 0, 4096, IA_BS_DATA | IA_BS_OFFSET, 8192);
        imgtest_expect_status(img, 10, 4086, IA_BS_DATA | IA_BS_OFFSET, 8202);
        imgtest_expect_status(img, 4096, 4096, IA_BS_DATA | IA_BS_COMPRESSED, 0);
        imgtest_expect_status(img, 8192, 4096, 0, 0);
        imgtest_expect_status(img, 12288 + 1, 4095, IA_BS_DATA | IA_BS_OFFSET, 12289);
        /* Unallocated runs are answered whole: to the next allocated entry,
         * to the end of the L2 table, or all of an absent table's coverage. */
        imgtest_expect_status(img, 16384 + 5, (2 << 20) - 16384 - 5, 0, 0);
        imgtest_expect_status(img, 2 << 20, 2 << 20, 0, 0); /* L1[1] = 0 */
        imgtest_expect_status(img, (3 << 20) + 7, (1 << 20) - 7, 0, 0);
        ia_image_free(img);
        fault_sweep(b, sizeof(b), "qcow", 0);

        /* Encrypted: every allocated cluster is data without an offset. */
        put_be32(b + 36, 1);
        assert_int_equal(open_mem(b, sizeof(b), "qcow", &img, &err), 0);
        assert_true(img->flags & IA_IMG_ENCRYPTED);
        imgtest_expect_status(img, 0, 4096, IA_BS_DATA, 0);
        imgtest_expect_status(img, 8192, 4096, 0, 0);
        ia_image_free(img);

        /* A size that is not a multiple of 512 is cut down, as qemu does. */
        qcow_build(b);
        put_be64(b + 24, 1000000);
        assert_int_equal(open_mem(b, sizeof(b), "qcow", &img, &err), 0);
        assert_int_equal(img->size, 999936);
        ia_image_free(img);

        /* An L2 table past EOF fails the query. */
        qcow_build(b);
        put_be64(b + 64, 1 << 20);
        assert_int_equal(open_mem(b, sizeof(b), "qcow", &img, &err), 0);
        expect_status_fail(img, 0, IA_ERR_TRUNCATED);
        ia_image_free(img);
}

static void test_qcow_malformed(void **state)
{
        uint8_t b[QCOW_LEN];

        (void)state;
        qcow_build(b);
        put_be32(b + 4, 2);
        expect_open_fail(b, sizeof(b), "qcow", IA_ERR_UNSUPPORTED);
        qcow_build(b);
        b[32] = 8;
        expect_open_fail(b, sizeof(b), "qcow", IA_ERR_CORRUPT);
        qcow_build(b);
        b[32] = 17;
        expect_open_fail(b, sizeof(b), "qcow", IA_ERR_CORRUPT);
        qcow_build(b);
        b[33] = 14;
        expect_open_fail(b, sizeof(b), "qcow", IA_ERR_CORRUPT);
        qcow_build(b);
        b[33] = 5;
        expect_open_fail(b, sizeof(b), "qcow", IA_ERR_CORRUPT);
        qcow_build(b);
        put_be64(b + 24, 1);
        expect_open_fail(b, sizeof(b), "qcow", IA_ERR_CORRUPT);
        qcow_build(b);
        put_be64(b + 24, UINT64_MAX - 10);
        expect_open_fail(b, sizeof(b), "qcow", IA_ERR_LIMIT);
        qcow_build(b);
        put_be64(b + 24, 1ull << 50);
        expect_open_fail(b, sizeof(b), "qcow", IA_ERR_LIMIT);
        qcow_build(b);
        put_be32(b + 36, 2);
        expect_open_fail(b, sizeof(b), "qcow", IA_ERR_UNSUPPORTED);
        qcow_build(b);
        put_be64(b + 40, 1ull << 40);
        expect_open_fail(b, sizeof(b), "qcow", IA_ERR_TRUNCATED);
        qcow_build(b);
        put_be64(b + 40, UINT64_MAX - 7);
        expect_open_fail(b, sizeof(b), "qcow", IA_ERR_TRUNCATED);
        qcow_build(b);
        put_be32(b + 16, 2000);
        expect_open_fail(b, sizeof(b), "qcow", IA_ERR_LIMIT);
        qcow_build(b);
        put_be64(b + 8, QCOW_LEN - 2);
        expect_open_fail(b, sizeof(b), "qcow", IA_ERR_TRUNCATED);
        qcow_build(b);
        expect_open_fail(b, 20, "qcow", IA_ERR_TRUNCATED);
}

/* ---------------------------------------------------------------- parallels */

#define PRL_LEN 24576

static void prl_build(uint8_t *b, bool v1)
{
        memset(b, 0, PRL_LEN);
        memcpy(b, v1 ? "WithoutFreeSpace" : "WithouFreSpacExt", 16);
        put_le32(b + 16, 2);
        put_le32(b + 28, 8); /* 4 KiB clusters */
        put_le32(b + 32, 4);
        put_le64(b + 36, 40); /* 20 KiB: cluster 4 lies past the BAT */
        put_le32(b + 48, 16);
        put_le32(b + 64, v1 ? 16 : 2);
        put_le32(b + 68, v1 ? 24 : 3);
        put_le32(b + 72, 0);
        put_le32(b + 76, v1 ? 40 : 5);
}

static void test_parallels_map(void **state)
{
        uint8_t b[PRL_LEN];
        struct ia_image *img;
        struct ia_error err;

        (void)state;
        for (int v1 = 0; v1 < 2; v1++) {
                prl_build(b, v1);
                assert_int_equal(open_mem(b, sizeof(b), NULL, &img, &err), 0);
                assert_string_equal(img->drv->name, "parallels");
                assert_int_equal(img->size, 40 * 512);
                assert_int_equal(img->cluster_size, 4096);
                assert_true(img->cow);
                imgtest_expect_status(img, 0, 8192, IA_BS_DATA | IA_BS_OFFSET, 8192);
                imgtest_expect_status(img, 5000, 3192, IA_BS_DATA | IA_BS_OFFSET, 13192);
                imgtest_expect_status(img, 100, 8092, IA_BS_DATA | IA_BS_OFFSET, 8292);
                imgtest_expect_status(img, 8192, 4096, 0, 0);
                imgtest_expect_status(img, 12288, 4096, IA_BS_DATA | IA_BS_OFFSET, 20480);
                imgtest_expect_status(img, 16384, 4096, 0, 0);
                ia_image_free(img);
        }
        /* The old magic keeps 32 bits of the sector count. */
        prl_build(b, true);
        put_le64(b + 36, (1ull << 32) | 40);
        assert_int_equal(open_mem(b, sizeof(b), "parallels", &img, &err), 0);
        assert_int_equal(img->size, 40 * 512);
        ia_image_free(img);
        prl_build(b, false);
        fault_sweep(b, sizeof(b), "parallels", 0);
}

static void test_parallels_malformed(void **state)
{
        uint8_t b[PRL_LEN];

        (void)state;
        prl_build(b, false);
        put_le32(b + 16, 3);
        expect_open_fail(b, sizeof(b), "parallels", IA_ERR_UNSUPPORTED);
        prl_build(b, false);
        memcpy(b, "WithoutFreeSpacX", 16);
        expect_open_fail(b, sizeof(b), "parallels", IA_ERR_CORRUPT);
        prl_build(b, false);
        put_le32(b + 28, 0);
        expect_open_fail(b, sizeof(b), "parallels", IA_ERR_CORRUPT);
        prl_build(b, false);
        put_le32(b + 28, 0x7fffffff);
        expect_open_fail(b, sizeof(b), "parallels", IA_ERR_CORRUPT);
        prl_build(b, false);
        put_le32(b + 32, 0x100000); /* 4 MiB of BAT in a 24 KiB file */
        expect_open_fail(b, sizeof(b), "parallels", IA_ERR_TRUNCATED);
        prl_build(b, false);
        put_le32(b + 32, 0xffffffff);
        expect_open_fail(b, sizeof(b), "parallels", IA_ERR_LIMIT);
        prl_build(b, false);
        put_le64(b + 36, UINT64_MAX);
        expect_open_fail(b, sizeof(b), "parallels", IA_ERR_LIMIT);
        prl_build(b, false);
        expect_open_fail(b, 50, "parallels", IA_ERR_TRUNCATED);
}

/* ---------------------------------------------------------------- luks */

#define LUKS1_PAYLOAD_SECTORS 4096u
#define LUKS1_LEN             ((LUKS1_PAYLOAD_SECTORS * 512u) + (64u << 10) + 100u)

static uint8_t *luks1_build(void)
{
        uint8_t *b = calloc(1, LUKS1_LEN);

        assert_non_null(b);
        memcpy(b, "LUKS\xba\xbe", 6);
        put_be16(b + 6, 1);
        memcpy(b + 8, "aes", 3);
        memcpy(b + 40, "xts-plain64", 11);
        memcpy(b + 72, "sha256", 6);
        put_be32(b + 104, LUKS1_PAYLOAD_SECTORS);
        put_be32(b + 108, 32);
        for (unsigned i = 0; i < 8; i++) {
                uint8_t *k = b + 208 + 48 * i;

                put_be32(k, i == 0 ? 0x00ac71f3 : 0x0000dead);
                put_be32(k + 4, 1000);
                put_be32(k + 40, 8 + 256 * i); /* 32 * 4000 bytes: 250 sectors, aligned to 8 */
                put_be32(k + 44, 4000);
        }
        return b;
}

static void test_luks1(void **state)
{
        uint8_t *b = luks1_build();
        struct ia_image *img;
        struct ia_error err;

        (void)state;
        assert_int_equal(open_mem(b, LUKS1_LEN, NULL, &img, &err), 0);
        assert_string_equal(img->drv->name, "luks");
        assert_null(img->drv->block_status);
        assert_int_equal(img->size, (64 << 10) + 512);
        assert_true(img->flags & IA_IMG_ENCRYPTED);
        assert_false(img->cow);
        ia_image_free(img);
        fault_sweep(b, LUKS1_LEN, "luks", 0);

        /* Payload exactly at EOF: an empty disk. */
        assert_int_equal(open_mem(b, LUKS1_PAYLOAD_SECTORS * 512, "luks", &img, &err), 0);
        assert_int_equal(img->size, 0);
        ia_image_free(img);

        put_be32(b + 208 + 44, 3999);
        expect_open_fail(b, LUKS1_LEN, "luks", IA_ERR_CORRUPT);
        put_be32(b + 208 + 44, 4000);
        put_be32(b + 208, 0x1234);
        expect_open_fail(b, LUKS1_LEN, "luks", IA_ERR_CORRUPT);
        put_be32(b + 208, 0x00ac71f3);
        put_be32(b + 208 + 48 + 40, 100); /* slot 1 overlaps slot 0 */
        expect_open_fail(b, LUKS1_LEN, "luks", IA_ERR_CORRUPT);
        put_be32(b + 208 + 48 + 40, 264);
        put_be32(b + 208 + 40, 0); /* slot 0 overlaps the header */
        expect_open_fail(b, LUKS1_LEN, "luks", IA_ERR_CORRUPT);
        put_be32(b + 208 + 40, 8);
        put_be32(b + 104, 100); /* slots overlap the payload */
        expect_open_fail(b, LUKS1_LEN, "luks", IA_ERR_CORRUPT);
        put_be32(b + 104, 0xffffffff); /* payload past EOF */
        put_be32(b + 208 + 40, 8);
        expect_open_fail(b, LUKS1_LEN, "luks", IA_ERR_TRUNCATED);
        put_be32(b + 104, LUKS1_PAYLOAD_SECTORS);
        memset(b + 8, 'a', 32);
        expect_open_fail(b, LUKS1_LEN, "luks", IA_ERR_CORRUPT);
        memset(b + 8, 0, 32);
        put_be16(b + 6, 3);
        expect_open_fail(b, LUKS1_LEN, "luks", IA_ERR_UNSUPPORTED);
        put_be16(b + 6, 1);
        expect_open_fail(b, 300, "luks", IA_ERR_TRUNCATED);
        free(b);
}

#define LUKS2_JSON_OFF 4096u
#define LUKS2_HDR      16384u
#define LUKS2_LEN      (32768u + 4196u)

static uint8_t *luks2_build(const char *json)
{
        uint8_t *b = calloc(1, LUKS2_LEN);

        assert_non_null(b);
        assert_true(strlen(json) < LUKS2_HDR - LUKS2_JSON_OFF);
        memcpy(b, "LUKS\xba\xbe", 6);
        put_be16(b + 6, 2);
        put_be64(b + 8, LUKS2_HDR);
        memcpy(b + LUKS2_JSON_OFF, json, strlen(json));
        return b;
}

static void luks2_expect(const char *json, int ok, uint64_t size, enum ia_errcat cat)
{
        uint8_t *b = luks2_build(json);
        struct ia_image *img;
        struct ia_error err;

        if (ok) {
                if (open_mem(b, LUKS2_LEN, "luks", &img, &err) < 0)
                        fail_msg("%s: %s", json, err.msg);
                assert_int_equal(img->size, size);
                ia_image_free(img);
        } else {
                expect_open_fail(b, LUKS2_LEN, "luks", cat);
        }
        free(b);
}

static void test_luks2(void **state)
{
        struct ia_probe p;
        uint8_t *b;

        (void)state;
        /* qemu 7.2 does not recognise LUKS2: probing leaves it to raw. */
        b = luks2_build("{}");
        memset(&p, 0, sizeof(p));
        p.head = b;
        p.head_len = 4096;
        p.size = LUKS2_LEN;
        assert_string_equal(ia_driver_probe_bytes(&p)->name, "raw");
        free(b);

        luks2_expect("{\"keyslots\":{\"0\":{\"type\":\"luks2\",\"area\":{\"offset\":\"32768\","
                     "\"size\":\"258048\"}}},\"tokens\":{},\"segments\":{\"0\":{\"type\":"
                     "\"crypt\",\"offset\":\"32768\",\"size\":\"dynamic\",\"iv_tweak\":\"0\","
                     "\"encryption\":\"aes-xts-plain64\",\"sector_size\":512}},\"digests\":{},"
                     "\"config\":{\"json_size\":\"12288\",\"keyslots_size\":\"16744448\"}}",
                     1, 4608, IA_ERR_NONE);
        luks2_expect(
            " { \"segments\" : { \"1\" : {\"offset\":\"33280\",\"size\":\"dynamic\"},"
            " \"0\": {\"flags\":[\"a\",[1,2,{}]],\"offset\":\"32768\",\"size\":\"1000\"}}}",
            1, 1024, IA_ERR_NONE);
        luks2_expect("{\"segments\":{}}", 0, 0, IA_ERR_CORRUPT);
        luks2_expect("{\"keyslots\":{}}", 0, 0, IA_ERR_CORRUPT);
        luks2_expect("{\"segments\":{\"0\":{\"offset\":32768,\"size\":\"dynamic\"}}}", 0, 0,
                     IA_ERR_CORRUPT);
        luks2_expect("{\"segments\":{\"0\":{\"offset\":\"99999999999\",\"size\":\"dynamic\"}}}", 0,
                     0, IA_ERR_TRUNCATED);
        luks2_expect("{\"segments\":{\"0\":{\"offset\":\"99999999999999999999\",\"size\":\"1\"}}}",
                     0, 0, IA_ERR_CORRUPT);
        luks2_expect("{\"segments\":{\"0\":{\"offset\":\"1\",\"size\":\"dynamic\"", 0, 0,
                     IA_ERR_CORRUPT);
        luks2_expect("{\"a\":\"\\", 0, 0, IA_ERR_CORRUPT);
        luks2_expect("", 0, 0, IA_ERR_CORRUPT);
        {
                /* Deep nesting is refused, not recursed into. */
                char deep[2100];
                size_t n = 0;

                n += (size_t)snprintf(deep, sizeof(deep), "{\"x\":");
                for (int i = 0; i < 1000; i++)
                        deep[n++] = '[';
                for (int i = 0; i < 1000; i++)
                        deep[n++] = ']';
                deep[n++] = '}';
                deep[n] = '\0';
                luks2_expect(deep, 0, 0, IA_ERR_CORRUPT);
        }
        b = luks2_build("{}");
        put_be64(b + 8, 1ull << 40);
        expect_open_fail(b, LUKS2_LEN, "luks", IA_ERR_CORRUPT);
        put_be64(b + 8, 4096);
        expect_open_fail(b, LUKS2_LEN, "luks", IA_ERR_CORRUPT);
        put_be64(b + 8, LUKS2_HDR);
        expect_open_fail(b, 8000, "luks", IA_ERR_TRUNCATED);
        free(b);
}

/* Probing: each format by its magic, through the whole table. */
static void test_probe(void **state)
{
        uint8_t *b = calloc(1, 65536);
        struct ia_probe p = {.head = b, .head_len = 4096, .size = 65536};

        (void)state;
        assert_non_null(b);
        vdi_build(b, 1);
        assert_string_equal(ia_driver_probe_bytes(&p)->name, "vdi");
        qed_build(b);
        assert_string_equal(ia_driver_probe_bytes(&p)->name, "qed");
        qcow_build(b);
        assert_string_equal(ia_driver_probe_bytes(&p)->name, "qcow");
        put_be32(b + 4, 2);
        assert_string_not_equal(ia_driver_probe_bytes(&p)->name, "qcow");
        prl_build(b, true);
        assert_string_equal(ia_driver_probe_bytes(&p)->name, "parallels");
        put_le32(b + 16, 1);
        assert_string_equal(ia_driver_probe_bytes(&p)->name, "raw");
        free(b);
        b = luks1_build();
        p.head = b;
        assert_string_equal(ia_driver_probe_bytes(&p)->name, "luks");
        /* qemu probes a zero-padded buffer: a short file is still recognised. */
        p.head_len = 8;
        assert_string_equal(ia_driver_probe_bytes(&p)->name, "luks");
        p.head_len = 5;
        assert_string_equal(ia_driver_probe_bytes(&p)->name, "raw");
        free(b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_vdi_map),
            cmocka_unit_test(test_vdi_malformed),
            cmocka_unit_test(test_vdi_diff),
            cmocka_unit_test(test_qed_map),
            cmocka_unit_test(test_qed_malformed),
            cmocka_unit_test(test_qcow_map),
            cmocka_unit_test(test_qcow_malformed),
            cmocka_unit_test(test_parallels_map),
            cmocka_unit_test(test_parallels_malformed),
            cmocka_unit_test(test_luks1),
            cmocka_unit_test(test_luks2),
            cmocka_unit_test(test_probe),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
