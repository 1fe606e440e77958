/*
 * vhdx driver on images built in memory: header choice by sequence number
 * and CRC-32C, the region table fallback, metadata items, BAT states
 * (dynamic and differencing with a sector bitmap), the parent locator, a
 * pending log replayed in memory (data and zero descriptors, the active
 * sequence, damaged entries, limits), malformed structures (each must fail with a sensible
 * category), and read failures injected at every read.
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
#include "vhdxlog.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

/*
 * Layout: identifier at 0, headers at 64/128 KiB, region tables at 192/256
 * KiB, metadata at 1 MiB (items at +64 KiB), BAT at 2 MiB, payload blocks
 * (1 MiB each) at 3 and 4 MiB; differencing adds block 1 at 5 MiB and the
 * sector bitmap block at 6 MiB.  Virtual size 4 MiB: 4 blocks.
 */
#define IMG_LEN  (7 * MIB)
#define META     (1 * MIB)
#define BAT      (2 * MIB)
#define SB_ENTRY 4096 /* chunk ratio with 512-byte sectors and 1 MiB blocks */

static const struct ia_open_ctx ctx = {.compat = 702};

static uint32_t crc32c(const uint8_t *p, size_t len)
{
        uint32_t c = 0xffffffffu;

        for (size_t i = 0; i < len; i++) {
                c ^= p[i];
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        }
        return ~c;
}

static void fix_crc(uint8_t *p, size_t len)
{
        put_le32(p + 4, 0);
        put_le32(p + 4, crc32c(p, len));
}

static void put_guid(uint8_t *p, uint32_t d1, uint16_t d2, uint16_t d3, uint64_t d4)
{
        put_le32(p, d1);
        put_le16(p + 4, d2);
        put_le16(p + 6, d3);
        for (int i = 0; i < 8; i++)
                p[8 + i] = (uint8_t)(d4 >> (56 - 8 * i));
}

static void header_build(uint8_t *b, uint32_t off, uint64_t seq, bool log)
{
        uint8_t *h = b + off;

        memset(h, 0, 4 * KIB);
        memcpy(h, "head", 4);
        put_le64(h + 8, seq);
        if (log)
                memset(h + 48, 0x11, 16);
        put_le16(h + 66, 1);
        put_le32(h + 68, MIB);
        put_le64(h + 72, MIB);
        fix_crc(h, 4 * KIB);
}

static void region_build(uint8_t *b, uint32_t off)
{
        uint8_t *r = b + off;

        memset(r, 0, 64 * KIB);
        memcpy(r, "regi", 4);
        put_le32(r + 8, 2);
        put_guid(r + 16, 0x2dc27766, 0xf623, 0x4200, 0x9d64115e9bfd4a08ull);
        put_le64(r + 32, BAT);
        put_le32(r + 40, MIB);
        put_le32(r + 44, 1);
        put_guid(r + 48, 0x8b7ca206, 0x4790, 0x4b9a, 0xb8fe575f050f886eull);
        put_le64(r + 64, META);
        put_le32(r + 72, MIB);
        put_le32(r + 76, 1);
        fix_crc(r, 64 * KIB);
}

static void meta_entry(uint8_t *b, int i, uint32_t d1, uint16_t d2, uint16_t d3, uint64_t d4,
                       uint32_t off, uint32_t len)
{
        uint8_t *e = b + META + 32 + 32 * i;

        put_guid(e, d1, d2, d3, d4);
        put_le32(e + 16, off);
        put_le32(e + 20, len);
        put_le32(e + 24, 4);
}

static void bat_set(uint8_t *b, uint32_t idx, unsigned state, uint64_t mb)
{
        put_le64(b + BAT + 8 * idx, mb << 20 | state);
}

/* The parent locator item at META + 64 KiB + 64; its length. */
static uint32_t locator_build(uint8_t *b)
{
        static const char *const kv[][2] = {
            {"parent_linkage", "{x}"},
            {"absolute_win32_path", "C:\\p.vhdx"},
            {"relative_path", ".\\sub\\p.vhdx"},
        };
        uint8_t *l = b + META + 64 * KIB + 64;
        uint32_t pos = 20 + 12 * 3;

        put_guid(l, 0xb04aefb7, 0xd19e, 0x4a81, 0xb78925b8e9445913ull);
        put_le16(l + 18, 3);
        for (int i = 0; i < 3; i++) {
                uint8_t *e = l + 20 + 12 * i;
                uint16_t kl = (uint16_t)(2 * strlen(kv[i][0])),
                         vl = (uint16_t)(2 * strlen(kv[i][1]));

                put_le32(e, pos);
                put_utf16le(l + pos, kv[i][0]);
                pos += kl;
                put_le32(e + 4, pos);
                put_utf16le(l + pos, kv[i][1]);
                pos += vl;
                put_le16(e + 8, kl);
                put_le16(e + 10, vl);
        }
        return pos;
}

static uint8_t *image_build(bool diff)
{
        uint8_t *b = calloc(1, IMG_LEN);
        uint8_t *items = b + META + 64 * KIB;

        assert_non_null(b);
        memcpy(b, "vhdxfile", 8);
        header_build(b, 64 * KIB, 1, false);
        header_build(b, 128 * KIB, 2, false);
        region_build(b, 192 * KIB);
        region_build(b, 256 * KIB);
        memcpy(b + META, "metadata", 8);
        put_le16(b + META + 10, diff ? 5 : 4);
        meta_entry(b, 0, 0xcaa16737, 0xfa36, 0x4d43, 0xb3b633f0aa44e76bull, 64 * KIB, 8);
        meta_entry(b, 1, 0x2fa54224, 0xcd1b, 0x4876, 0xb2115dbed83bf4b8ull, 64 * KIB + 8, 8);
        meta_entry(b, 2, 0x8141bf1d, 0xa96f, 0x4709, 0xba47f233a8faab5full, 64 * KIB + 16, 4);
        meta_entry(b, 3, 0xcda348c7, 0x445d, 0x4471, 0x9cc9e9885251c556ull, 64 * KIB + 20, 4);
        put_le32(items, MIB);
        put_le32(items + 4, diff ? 2 : 0);
        put_le64(items + 8, 4 * MIB);
        put_le32(items + 16, 512);
        put_le32(items + 20, 4096);
        if (diff)
                meta_entry(b, 4, 0xa8d35f2d, 0xb30b, 0x454d, 0xabf7d3d84834ab0cull, 64 * KIB + 64,
                           locator_build(b));
        bat_set(b, 0, 6, 3);
        bat_set(b, 1, 0, 0);
        bat_set(b, 2, 2, 0);
        bat_set(b, 3, 6, 4);
        if (diff) {
                bat_set(b, 1, 7, 5);
                bat_set(b, SB_ENTRY, 6, 6);
                /* block 1 = sectors 2048..4095 of the chunk: 2048..2055 present */
                b[6 * MIB + 2048 / 8] = 0xff;
                b[6 * MIB + 4095 / 8] = 0x80; /* and the last one */
        }
        return b;
}

static int open_mem(const uint8_t *buf, size_t len, struct ia_image **img, struct ia_error *err)
{
        struct ia_source *src;
        struct ia_file *file;

        ia_error_clear(err);
        src = ia_source_memory(buf, len, false, err);
        assert_non_null(src);
        file = ia_file_new(src, "mem", err);
        assert_non_null(file);
        return ia_image_open(&ctx, file, NULL, img, err);
}

static struct ia_image *open_ok(const uint8_t *buf, size_t len)
{
        struct ia_image *img = NULL;
        struct ia_error err;

        if (open_mem(buf, len, &img, &err) < 0)
                fail_msg("open failed: %s", err.msg);
        assert_ptr_equal(img->drv, &ia_drv_vhdx);
        return img;
}

static void expect_open_fail(const uint8_t *buf, size_t len, enum ia_errcat cat)
{
        imgtest_expect_open_fail(&ctx, buf, len, "vhdx", cat);
}

#define DATA (IA_BS_DATA | IA_BS_OFFSET | IA_BS_RECURSE)

static void test_probe(void **state)
{
        uint8_t h[16] = "vhdxfile";
        struct ia_probe p = {.head = h, .head_len = 16, .size = 16};

        (void)state;
        assert_int_equal(ia_drv_vhdx.probe(&p), 100);
        p.head_len = 7;
        assert_int_equal(ia_drv_vhdx.probe(&p), 0);
}

static void test_dynamic(void **state)
{
        uint8_t *b = image_build(false);
        struct ia_image *img = open_ok(b, IMG_LEN);

        (void)state;
        assert_int_equal(img->size, 4 * MIB);
        assert_int_equal(img->cluster_size, MIB);
        assert_false(img->cow);
        assert_null(img->backing);
        assert_int_equal(img->flags & IA_IMG_PENDING_LOG, 0);
        imgtest_expect_status(img, 0, MIB, DATA, 3 * MIB);
        imgtest_expect_status(img, 5000, MIB - 5000, DATA, 3 * MIB + 5000);
        /* not present and zero blocks are alike here: one run */
        imgtest_expect_status(img, MIB, 2 * MIB, IA_BS_ZERO, 0);
        imgtest_expect_status(img, 3 * MIB, MIB, DATA, 4 * MIB);
        ia_image_free(img);
        /* UNDEFINED and UNMAPPED read as zero too, one run with the rest. */
        bat_set(b, 1, 1, 0);
        bat_set(b, 2, 3, 0);
        img = open_ok(b, IMG_LEN);
        imgtest_expect_status(img, MIB, 2 * MIB, IA_BS_ZERO, 0);
        imgtest_expect_status(img, 2 * MIB + 7, MIB - 7, IA_BS_ZERO, 0);
        ia_image_free(img);
        free(b);
}

static void test_differencing(void **state)
{
        uint8_t *b = image_build(true);
        struct ia_image *img = open_ok(b, IMG_LEN);

        (void)state;
        assert_true(img->cow);
        assert_string_equal(img->backing, "sub/p.vhdx");
        assert_string_equal(img->backing_fmt, "vhdx");
        /* parent_linkage, compared by the chain opener with the parent's data write GUID */
        assert_string_equal(img->parent_ident[0], "guid {x}");
        assert_string_equal(img->parent_ident[1], "");
        assert_string_equal(img->ident, "guid {00000000-0000-0000-0000-000000000000}");
        imgtest_expect_status(img, 0, MIB, DATA, 3 * MIB);
        imgtest_expect_status(img, MIB, 8 * 512, DATA, 5 * MIB);
        imgtest_expect_status(img, MIB + 100, 8 * 512 - 100, DATA, 5 * MIB + 100);
        imgtest_expect_status(img, MIB + 4096, MIB - 4096 - 512, 0, 0);
        imgtest_expect_status(img, 2 * MIB - 512, 512, DATA, 6 * MIB - 512);
        imgtest_expect_status(img, 2 * MIB, MIB, IA_BS_ZERO, 0);
        ia_image_free(img);

        /* Not present in a differencing image: the parent decides. */
        bat_set(b, 2, 0, 0);
        img = open_ok(b, IMG_LEN);
        imgtest_expect_status(img, 2 * MIB, MIB, 0, 0);
        ia_image_free(img);
        /* UNDEFINED defers to the parent as well; UNMAPPED reads as zero. */
        bat_set(b, 2, 1, 0);
        img = open_ok(b, IMG_LEN);
        imgtest_expect_status(img, 2 * MIB, MIB, 0, 0);
        ia_image_free(img);
        bat_set(b, 2, 3, 0);
        img = open_ok(b, IMG_LEN);
        imgtest_expect_status(img, 2 * MIB, MIB, IA_BS_ZERO, 0);
        ia_image_free(img);

        /* Only an absolute path: kept as recorded. */
        memset(b + META + 64 * KIB + 64 + 20 + 24, 0, 12);
        img = open_ok(b, IMG_LEN);
        assert_string_equal(img->backing, "C:\\p.vhdx");
        ia_image_free(img);

        /* A partially present block whose bitmap block is missing. */
        free(b);
        b = image_build(true);
        bat_set(b, SB_ENTRY, 0, 0);
        expect_open_fail(b, IMG_LEN, IA_ERR_CORRUPT);
        /* HasParent without a locator. */
        free(b);
        b = image_build(true);
        put_le16(b + META + 10, 4);
        expect_open_fail(b, IMG_LEN, IA_ERR_CORRUPT);
        /* A locator of another type, or with entries outside it. */
        free(b);
        b = image_build(true);
        b[META + 64 * KIB + 64] ^= 1;
        expect_open_fail(b, IMG_LEN, IA_ERR_UNSUPPORTED);
        free(b);
        b = image_build(true);
        put_le32(b + META + 64 * KIB + 64 + 20 + 24 + 4, 0xfffffff0);
        expect_open_fail(b, IMG_LEN, IA_ERR_CORRUPT);
        free(b);
        b = image_build(true);
        put_le16(b + META + 64 * KIB + 64 + 18, 60000);
        expect_open_fail(b, IMG_LEN, IA_ERR_CORRUPT);
        free(b);
}

static void test_headers(void **state)
{
        uint8_t *b = image_build(false);
        struct ia_image *img;

        (void)state;
        /* Header 1 has a log but header 2 is newer: no pending log. */
        header_build(b, 64 * KIB, 1, true);
        img = open_ok(b, IMG_LEN);
        assert_int_equal(img->flags & IA_IMG_PENDING_LOG, 0);
        ia_image_free(img);
        /* Header 1 newer: its log is pending; mapped all the same. */
        header_build(b, 64 * KIB, 3, true);
        img = open_ok(b, IMG_LEN);
        assert_true(img->flags & IA_IMG_PENDING_LOG);
        imgtest_expect_status(img, 0, MIB, DATA, 3 * MIB);
        ia_image_free(img);
        /* Header 1 newer but damaged: header 2 rules. */
        b[64 * KIB + 100] ^= 1;
        img = open_ok(b, IMG_LEN);
        assert_int_equal(img->flags & IA_IMG_PENDING_LOG, 0);
        ia_image_free(img);
        /* Both damaged. */
        b[128 * KIB + 100] ^= 1;
        expect_open_fail(b, IMG_LEN, IA_ERR_CORRUPT);
        /* Equal sequence numbers: fine if identical, else corrupt. */
        header_build(b, 64 * KIB, 2, false);
        header_build(b, 128 * KIB, 2, false);
        img = open_ok(b, IMG_LEN);
        ia_image_free(img);
        header_build(b, 64 * KIB, 2, true);
        expect_open_fail(b, IMG_LEN, IA_ERR_CORRUPT);
        /* Version 2 is not a valid header. */
        header_build(b, 64 * KIB, 1, false);
        put_le16(b + 128 * KIB + 66, 2);
        fix_crc(b + 128 * KIB, 4 * KIB);
        img = open_ok(b, IMG_LEN);
        ia_image_free(img);
        /* Region table 1 damaged: table 2 is used. */
        b[192 * KIB + 100] ^= 1;
        img = open_ok(b, IMG_LEN);
        ia_image_free(img);
        b[256 * KIB + 100] ^= 1;
        expect_open_fail(b, IMG_LEN, IA_ERR_CORRUPT);
        free(b);
}

/* Rebuild, apply one change, expect the open to fail with cat. */
#define MALFORMED(change, cat)                                                                     \
        do {                                                                                       \
                uint8_t *m = image_build(false);                                                   \
                change;                                                                            \
                expect_open_fail(m, IMG_LEN, cat);                                                 \
                free(m);                                                                           \
        } while (0)

static void test_malformed(void **state)
{
        (void)state;
        MALFORMED(m[0] = 'X', IA_ERR_CORRUPT);
        /* region table: too many entries, BAT past the end, unaligned, missing */
        MALFORMED((put_le32(m + 192 * KIB + 8, 5000), fix_crc(m + 192 * KIB, 64 * KIB),
                   put_le32(m + 256 * KIB + 8, 5000), fix_crc(m + 256 * KIB, 64 * KIB)),
                  IA_ERR_CORRUPT);
        MALFORMED((put_le64(m + 192 * KIB + 32, 1ull << 40), fix_crc(m + 192 * KIB, 64 * KIB)),
                  IA_ERR_CORRUPT);
        MALFORMED((put_le64(m + 192 * KIB + 32, MIB + 4096), fix_crc(m + 192 * KIB, 64 * KIB)),
                  IA_ERR_CORRUPT);
        MALFORMED((put_le32(m + 192 * KIB + 8, 1), fix_crc(m + 192 * KIB, 64 * KIB)),
                  IA_ERR_CORRUPT);
        MALFORMED((m[192 * KIB + 48] ^= 1, put_le32(m + 192 * KIB + 76, 1),
                   fix_crc(m + 192 * KIB, 64 * KIB)),
                  IA_ERR_UNSUPPORTED);
        /* metadata */
        MALFORMED(m[META] = 'X', IA_ERR_CORRUPT);
        MALFORMED(put_le16(m + META + 10, 60000), IA_ERR_CORRUPT);
        MALFORMED(put_le16(m + META + 10, 3), IA_ERR_CORRUPT);
        MALFORMED(put_le32(m + META + 64 * KIB, 0), IA_ERR_CORRUPT);
        MALFORMED(put_le32(m + META + 64 * KIB, 3 * MIB), IA_ERR_CORRUPT);
        MALFORMED(put_le32(m + META + 64 * KIB, 512 * MIB), IA_ERR_CORRUPT);
        MALFORMED(put_le64(m + META + 64 * KIB + 8, 0), IA_ERR_CORRUPT);
        MALFORMED(put_le64(m + META + 64 * KIB + 8, 1ull << 50), IA_ERR_CORRUPT);
        MALFORMED(put_le64(m + META + 64 * KIB + 8, 1ull << 40), IA_ERR_CORRUPT);
        MALFORMED(put_le64(m + META + 64 * KIB + 8, 1000), IA_ERR_CORRUPT);
        MALFORMED(put_le32(m + META + 64 * KIB + 16, 1000), IA_ERR_CORRUPT);
        MALFORMED(put_le32(m + META + 64 * KIB + 20, 0), IA_ERR_CORRUPT);
        MALFORMED(put_le32(m + META + 32 + 16, 100), IA_ERR_CORRUPT);
        MALFORMED(put_le32(m + META + 32 + 16, 0xfffffff0), IA_ERR_CORRUPT);
        MALFORMED(put_le32(m + META + 32 + 20, 4), IA_ERR_CORRUPT);
        MALFORMED(memcpy(m + META + 64, m + META + 32, 16), IA_ERR_CORRUPT);
        MALFORMED((m[META + 32 + 32 * 3] ^= 1), IA_ERR_UNSUPPORTED);
        /* BAT */
        MALFORMED(bat_set(m, 0, 4, 3), IA_ERR_CORRUPT);
        MALFORMED(bat_set(m, 0, 7, 3), IA_ERR_CORRUPT);
        MALFORMED(bat_set(m, 0, 6, 100), IA_ERR_CORRUPT);
        MALFORMED(bat_set(m, 0, 6, 0), IA_ERR_CORRUPT);
        MALFORMED(bat_set(m, 3, 6, 0xfffffffffffull), IA_ERR_CORRUPT);
}

static void test_truncated(void **state)
{
        uint8_t *b = image_build(false);
        static const size_t lens[] = {0,         7,          100,         70 * KIB, 150 * KIB,
                                      200 * KIB, MIB + 1000, 2 * MIB + 4, 3 * MIB,  4 * MIB + 1};

        (void)state;
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
                struct ia_image *img = NULL;
                struct ia_error err;
                struct ia_source *src;
                struct ia_file *file;

                ia_error_clear(&err);
                src = ia_source_memory(b, lens[i], false, &err);
                file = ia_file_new(src, "mem", &err);
                if (ia_image_open(&ctx, file, "vhdx", &img, &err) == 0)
                        fail_msg("a file cut at %zu opened", lens[i]);
                assert_true(err.cat == IA_ERR_TRUNCATED || err.cat == IA_ERR_CORRUPT);
        }
        free(b);
}

static void test_faults(void **state)
{
        uint8_t *b = image_build(true);

        (void)state;
        imgtest_fault_walk(&ctx, b, IMG_LEN, "vhdx", 20, 256 * KIB);
        free(b);
}

/*
 * Log replay.  The image gets 2 more MiB: the log (1 MiB) at 7 MiB, and
 * block 1's payload at 5 MiB (which only the log's BAT update allocates).
 */
#define LOG_IMG_LEN (8 * MIB)
#define LOG_AT      (7 * MIB)

struct tdesc {
        bool zero;
        uint64_t off, zlen; /* file offset; zero: length */
        uint8_t fill;       /* data: every byte of the sector, or 0: the BAT sector */
};

/* A 4 KiB sector the log writes: the BAT's first sector with block 1 at 5 MiB
 * and block 2 at 8 MiB (past the file's end), or a filled sector. */
static void sector_content(const uint8_t *img, const struct tdesc *d, uint8_t *out)
{
        if (d->fill) {
                memset(out, d->fill, 4096);
                return;
        }
        memcpy(out, img + BAT, 4096);
        put_le64(out + 8, 5ull << 20 | 6);
        put_le64(out + 16, 8ull << 20 | 6);
}

/* Write a log entry at log offset at; its length in bytes. */
static uint32_t log_entry(uint8_t *b, uint32_t at, uint64_t seq, uint32_t tail, uint64_t last,
                          const struct tdesc *d, uint32_t n)
{
        uint8_t *e = b + LOG_AT + at, sector[4096];
        uint32_t ds = (n * 32 + 64 + 4095) / 4096, ndata = 0, len;

        for (uint32_t i = 0; i < n; i++)
                ndata += !d[i].zero;
        len = (ds + ndata) * 4096;
        memset(e, 0, len);
        memcpy(e, "loge", 4);
        put_le32(e + 8, len);
        put_le32(e + 12, tail);
        put_le64(e + 16, seq);
        put_le32(e + 24, n);
        memset(e + 32, 0x11, 16);
        put_le64(e + 48, 4 * MIB);
        put_le64(e + 56, last);
        ndata = 0;
        for (uint32_t i = 0; i < n; i++) {
                uint8_t *p = e + 64 + 32 * i, *s;

                put_le64(p + 16, d[i].off);
                put_le64(p + 24, seq);
                if (d[i].zero) {
                        memcpy(p, "zero", 4);
                        put_le64(p + 8, d[i].zlen);
                        continue;
                }
                memcpy(p, "desc", 4);
                sector_content(b, &d[i], sector);
                memcpy(p + 4, sector + 4092, 4);
                memcpy(p + 8, sector, 8);
                s = e + (ds + ndata++) * 4096;
                memcpy(s, "data", 4);
                put_le32(s + 4, (uint32_t)(seq >> 32));
                memcpy(s + 8, sector + 8, 4084);
                put_le32(s + 4092, (uint32_t)seq);
        }
        fix_crc(e, len);
        return len;
}

/* A dynamic image whose newer header names the log at 7 MiB, with two
 * entries: the BAT update and block 1's first sector (0xab), a zero range in
 * block 0, a sector past the file's end; then block 1's first sector again
 * (0xcd). */
static uint8_t *log_image_build(uint32_t *second)
{
        static const struct tdesc e1[] = {
            {false, BAT, 0, 0},
            {false, 5 * MIB, 0, 0xab},
            {true, 3 * MIB + 64 * KIB, 8 * KIB, 0},
            {false, 8 * MIB + 4 * KIB, 0, 0xee},
        };
        static const struct tdesc e2[] = {{false, 5 * MIB, 0, 0xcd}};
        uint8_t *b = calloc(1, LOG_IMG_LEN), *img = image_build(false);
        uint32_t len;

        assert_non_null(b);
        memcpy(b, img, IMG_LEN);
        free(img);
        memset(b + 3 * MIB, 0x33, MIB);
        memset(b + 5 * MIB, 0x55, MIB);
        header_build(b, 64 * KIB, 3, true);
        put_le64(b + 64 * KIB + 72, LOG_AT);
        fix_crc(b + 64 * KIB, 4 * KIB);
        len = log_entry(b, 0, 10, 0, 9 * MIB - 100, e1, 4);
        *second = len;
        log_entry(b, len, 11, 0, 8 * MIB, e2, 1);
        return b;
}

static void expect_bytes(struct ia_source *src, uint64_t off, uint8_t v, size_t n)
{
        uint8_t buf[8192];
        struct ia_error err;

        assert_true(n <= sizeof(buf));
        if (ia_read(src, buf, n, off, "test", &err) < 0)
                fail_msg("read at %llu: %s", (unsigned long long)off, err.msg);
        for (size_t i = 0; i < n; i++)
                if (buf[i] != v)
                        fail_msg("byte %llu is 0x%02x, expected 0x%02x",
                                 (unsigned long long)(off + i), buf[i], v);
}

static void test_log_replay(void **state)
{
        uint32_t second;
        uint8_t *b = log_image_build(&second);
        uint8_t orig[4096];
        struct ia_image *img;
        struct ia_source *mem, *ov;
        struct ia_vhdx_log_info info;
        struct ia_error err;
        uint64_t run;

        (void)state;
        memcpy(orig, b + BAT, sizeof(orig));
        /* The overlay itself: bytes and kinds. */
        mem = ia_source_memory(b, LOG_IMG_LEN, false, &err);
        assert_non_null(mem);
        assert_int_equal(ia_vhdx_log_replay(mem, b + 64 * KIB, &ov, &info, &err), 0);
        assert_true(info.replayed);
        assert_int_equal(info.entries, 2);
        assert_int_equal(info.first_seq, 10);
        assert_int_equal(info.last_seq, 11);
        assert_int_equal(info.data_sectors, 4);
        assert_int_equal(info.zero_ranges, 1);
        assert_int_equal(ov->size, 9 * MIB);
        expect_bytes(ov, 5 * MIB, 0xcd, 4096);
        expect_bytes(ov, 5 * MIB + 4096, 0x55, 4096);
        expect_bytes(ov, 3 * MIB + 60 * KIB, 0x33, 4096);
        expect_bytes(ov, 3 * MIB + 64 * KIB, 0, 8192);
        expect_bytes(ov, 3 * MIB + 72 * KIB, 0x33, 4096);
        expect_bytes(ov, 8 * MIB, 0, 4096);
        expect_bytes(ov, 8 * MIB + 4096, 0xee, 4096);
        expect_bytes(ov, 9 * MIB - 4096, 0, 4096);
        assert_int_equal(ia_vhdx_log_kind(ov, 0, &run), IA_VHDX_FILE);
        assert_int_equal(run, BAT);
        assert_int_equal(ia_vhdx_log_kind(ov, BAT + 100, &run), IA_VHDX_LOGDATA);
        assert_int_equal(run, 4096 - 100);
        assert_int_equal(ia_vhdx_log_kind(ov, 3 * MIB + 64 * KIB, &run), IA_VHDX_ZERO);
        assert_int_equal(run, 8 * KIB);
        assert_int_equal(ia_vhdx_log_kind(ov, 8 * MIB, &run), IA_VHDX_ZERO);
        assert_int_equal(run, 4096);
        assert_int_equal(ia_vhdx_log_kind(ov, 8 * MIB + 8192, &run), IA_VHDX_ZERO);
        assert_int_equal(run, MIB - 8192);
        ia_source_unref(ov);
        ia_source_unref(mem);
        /* The file itself is never written. */
        assert_memory_equal(orig, b + BAT, sizeof(orig));

        /* The driver maps the replayed view. */
        img = open_ok(b, LOG_IMG_LEN);
        assert_true(img->flags & IA_IMG_PENDING_LOG);
        imgtest_expect_status(img, 0, 64 * KIB, DATA, 3 * MIB);
        imgtest_expect_status(img, 64 * KIB, 8 * KIB, IA_BS_DATA | IA_BS_ZERO, 0);
        imgtest_expect_status(img, 72 * KIB, MIB - 72 * KIB, DATA, 3 * MIB + 72 * KIB);
        imgtest_expect_status(img, MIB, 4096, IA_BS_DATA, 0);
        imgtest_expect_status(img, MIB + 4096, MIB - 4096, DATA, 5 * MIB + 4096);
        imgtest_expect_status(img, 2 * MIB, 4096, IA_BS_DATA | IA_BS_ZERO, 0);
        imgtest_expect_status(img, 2 * MIB + 4096, 4096, IA_BS_DATA, 0);
        imgtest_expect_status(img, 2 * MIB + 8192, MIB - 8192, IA_BS_DATA | IA_BS_ZERO, 0);
        imgtest_expect_status(img, 3 * MIB, MIB, DATA, 4 * MIB);
        ia_image_free(img);

        /* The second entry damaged: the sequence is the first entry alone. */
        b[LOG_AT + second + 4096 + 100] ^= 1;
        mem = ia_source_memory(b, LOG_IMG_LEN, false, &err);
        assert_int_equal(ia_vhdx_log_replay(mem, b + 64 * KIB, &ov, &info, &err), 0);
        assert_int_equal(info.entries, 1);
        expect_bytes(ov, 5 * MIB, 0xab, 4096);
        ia_source_unref(ov);
        ia_source_unref(mem);
        b[LOG_AT + second + 4096 + 100] ^= 1;

        /* A second entry whose Tail points at itself is a sequence of its
         * own, with the higher sequence number: the first is not replayed. */
        put_le32(b + LOG_AT + second + 12, second);
        fix_crc(b + LOG_AT + second, 2 * 4096);
        mem = ia_source_memory(b, LOG_IMG_LEN, false, &err);
        assert_int_equal(ia_vhdx_log_replay(mem, b + 64 * KIB, &ov, &info, &err), 0);
        assert_int_equal(info.entries, 1);
        assert_int_equal(info.first_seq, 11);
        assert_int_equal(ov->size, LOG_IMG_LEN);
        expect_bytes(ov, 3 * MIB + 64 * KIB, 0x33, 4096);
        ia_source_unref(ov);
        ia_source_unref(mem);
        put_le32(b + LOG_AT + second + 12, 0);
        fix_crc(b + LOG_AT + second, 2 * 4096);

        /* No valid entry at all: nothing to replay, mapped as it lies. */
        b[LOG_AT] = 'X';
        b[LOG_AT + second] = 'X';
        img = open_ok(b, LOG_IMG_LEN);
        assert_true(img->flags & IA_IMG_PENDING_LOG);
        imgtest_expect_status(img, MIB, 2 * MIB, IA_BS_ZERO, 0);
        ia_image_free(img);
        free(b);
}

static void test_log_malformed(void **state)
{
        uint32_t second;
        uint8_t *b;

        (void)state;
        /* A log over the replay limit. */
        b = log_image_build(&second);
        put_le32(b + 64 * KIB + 68, 64 * MIB);
        fix_crc(b + 64 * KIB, 4 * KIB);
        imgtest_expect_open_fail(&ctx, b, LOG_IMG_LEN, "vhdx", IA_ERR_LIMIT);
        free(b);
        /* A log past the end of the file, or not aligned. */
        b = log_image_build(&second);
        put_le64(b + 64 * KIB + 72, 8 * MIB);
        fix_crc(b + 64 * KIB, 4 * KIB);
        imgtest_expect_open_fail(&ctx, b, LOG_IMG_LEN, "vhdx", IA_ERR_CORRUPT);
        put_le64(b + 64 * KIB + 72, LOG_AT + 4096);
        fix_crc(b + 64 * KIB, 4 * KIB);
        imgtest_expect_open_fail(&ctx, b, LOG_IMG_LEN, "vhdx", IA_ERR_CORRUPT);
        free(b);
        /* An entry that needs a longer file than there is (truncated). */
        b = log_image_build(&second);
        put_le64(b + LOG_AT + 48, 100 * MIB);
        fix_crc(b + LOG_AT, second);
        imgtest_expect_open_fail(&ctx, b, LOG_IMG_LEN, "vhdx", IA_ERR_CORRUPT);
        free(b);
        /* Every sector the start of a log-long entry: the checksums would read
         * the log hundreds of times over; refused (limit), not a hang. */
        b = log_image_build(&second);
        for (uint32_t at = 0; at < MIB; at += 4096) {
                uint8_t *e = b + LOG_AT + at;

                memset(e, 0, 64);
                memcpy(e, "loge", 4);
                put_le32(e + 8, MIB);
                put_le64(e + 16, 1);
                memset(e + 32, 0x11, 16);
        }
        imgtest_expect_open_fail(&ctx, b, LOG_IMG_LEN, "vhdx", IA_ERR_LIMIT);
        free(b);
        /* A write far past any VHDX's end. */
        b = log_image_build(&second);
        put_le64(b + LOG_AT + 64 + 96 + 16, 1ull << 50);
        fix_crc(b + LOG_AT, second);
        imgtest_expect_open_fail(&ctx, b, LOG_IMG_LEN, "vhdx", IA_ERR_CORRUPT);
        free(b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_probe),         cmocka_unit_test(test_dynamic),
            cmocka_unit_test(test_differencing),  cmocka_unit_test(test_headers),
            cmocka_unit_test(test_malformed),     cmocka_unit_test(test_truncated),
            cmocka_unit_test(test_faults),        cmocka_unit_test(test_log_replay),
            cmocka_unit_test(test_log_malformed),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
