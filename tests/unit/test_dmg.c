/*
 * dmg driver on UDIF images built in memory: recognition by name, qemu's
 * coarse answer (one data entry), the true map of every chunk type, blkx
 * tables in the XML plist and in the resource fork, the koly search, and
 * malformed trailers and tables (each must fail with a sensible category:
 * where qemu refuses to open, and where only the true map cannot be told),
 * huge counts, and read failures injected at every read.
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

#define ZERO   0x00000000u
#define RAW    0x00000001u
#define IGNORE 0x00000002u
#define ADC    0x80000004u
#define ZLIB   0x80000005u
#define BZIP2  0x80000006u
#define LZFSE  0x80000007u
#define COMM   0x7ffffffeu
#define TERM   0xffffffffu

#define DATA_LEN 65536u /* the data fork: the first 64 KiB of every image built here */

static const struct ia_open_ctx coarse = {.compat = 702};
static const struct ia_open_ctx truemap = {.compat = 1002, .true_map = true};

struct ch {
        uint32_t type;
        uint64_t sector, count, off, len;
};

/* A blkx table: first sector, data offset, the chunks.  Returns its length. */
static size_t mish(uint8_t *out, uint64_t first, uint64_t data, const struct ch *c, size_t n)
{
        memset(out, 0, 204 + 40 * n);
        memcpy(out, "mish", 4);
        put_be32(out + 4, 1);
        put_be64(out + 8, first);
        put_be64(out + 24, data);
        put_be32(out + 200, (uint32_t)n);
        for (size_t i = 0; i < n; i++) {
                uint8_t *e = out + 204 + 40 * i;

                put_be32(e, c[i].type);
                put_be64(e + 8, c[i].sector);
                put_be64(e + 16, c[i].count);
                put_be64(e + 24, c[i].off);
                put_be64(e + 32, c[i].len);
        }
        return 204 + 40 * n;
}

/* Base64 with a line break every 52 characters, as hdiutil writes it. */
static size_t b64(char *out, const uint8_t *in, size_t n)
{
        static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t o = 0;

        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t)in[i] << 16;

                if (i + 1 < n)
                        v |= (uint32_t)in[i + 1] << 8;
                if (i + 2 < n)
                        v |= in[i + 2];
                out[o++] = a[v >> 18 & 63];
                out[o++] = a[v >> 12 & 63];
                out[o++] = i + 1 < n ? a[v >> 6 & 63] : '=';
                out[o++] = i + 2 < n ? a[v & 63] : '=';
                if (i % 39 == 36)
                        out[o++] = '\n';
        }
        return o;
}

struct img {
        uint8_t *buf;
        size_t len;
        size_t koly; /* where the trailer starts */
};

/* The trailer at t, naming the data fork, resource fork, plist, sector count. */
static void koly(uint8_t *t, uint64_t rsrc_off, uint64_t rsrc_len, uint64_t xml_off,
                 uint64_t xml_len, uint64_t sectors)
{
        memset(t, 0, 512);
        memcpy(t, "koly", 4);
        put_be32(t + 4, 4);
        put_be32(t + 8, 512);
        put_be64(t + 0x18, 0);
        put_be64(t + 0x20, DATA_LEN);
        put_be64(t + 0x28, rsrc_off);
        put_be64(t + 0x30, rsrc_len);
        put_be64(t + 0xd8, xml_off);
        put_be64(t + 0xe0, xml_len);
        put_be64(t + 0x1ec, sectors);
}

/* An image whose plist holds the text before, one <data> of the table, after. */
static struct img make_xml(const struct ch *c, size_t n, uint64_t sectors, const char *before,
                           const char *after)
{
        uint8_t *m = malloc(204 + 40 * n);
        size_t mlen = mish(m, 0, 0, c, n);
        size_t cap = DATA_LEN + strlen(before) + strlen(after) + mlen * 2 + 1024;
        struct img im = {.buf = calloc(1, cap)};
        size_t p = DATA_LEN;

        assert_non_null(m);
        assert_non_null(im.buf);
        for (size_t i = 0; i < DATA_LEN; i++)
                im.buf[i] = (uint8_t)(i * 7 + 1);
        memcpy(im.buf + p, before, strlen(before));
        p += strlen(before);
        p += b64((char *)im.buf + p, m, mlen);
        memcpy(im.buf + p, after, strlen(after));
        p += strlen(after);
        koly(im.buf + p, 0, 0, DATA_LEN, p - DATA_LEN, sectors);
        im.koly = p;
        im.len = p + 512;
        free(m);
        return im;
}

#define PL_BEFORE                                                                                  \
        "<plist><dict><key>resource-fork</key><dict><key>blkx</key><array><dict>"                  \
        "<key>Data</key>\n<data>\n"
#define PL_AFTER "\n</data></dict></array></dict></dict></plist>\n"

static struct img make(const struct ch *c, size_t n, uint64_t sectors)
{
        return make_xml(c, n, sectors, PL_BEFORE, PL_AFTER);
}

/* The same table in a resource fork: data offset 256, one resource. */
static struct img make_rsrc(const struct ch *c, size_t n, uint64_t sectors)
{
        size_t mlen = 204 + 40 * n, flen = 256 + 4 + mlen + 64;
        struct img im = {.buf = calloc(1, DATA_LEN + flen + 512)};
        uint8_t *f = im.buf + DATA_LEN;

        assert_non_null(im.buf);
        put_be32(f, 256);
        put_be32(f + 8, (uint32_t)(4 + mlen));
        put_be32(f + 256, (uint32_t)mlen);
        mish(f + 260, 0, 0, c, n);
        koly(f + flen, DATA_LEN, flen, 0, 0, sectors);
        im.koly = DATA_LEN + flen;
        im.len = im.koly + 512;
        return im;
}

static int open_named(const struct ia_open_ctx *ctx, const struct img *im, const char *fmt,
                      struct ia_image **img, struct ia_error *err)
{
        struct ia_source *src;
        struct ia_file *file;

        ia_error_clear(err);
        src = ia_source_memory(im->buf, im->len, false, err);
        assert_non_null(src);
        file = ia_file_new(src, "disk.dmg", err);
        assert_non_null(file);
        return ia_image_open(ctx, file, fmt, img, err);
}

static struct ia_image *open_ok(const struct ia_open_ctx *ctx, const struct img *im)
{
        struct ia_image *img = NULL;
        struct ia_error err;

        if (open_named(ctx, im, NULL, &img, &err) < 0)
                fail_msg("open failed: %s", err.msg);
        assert_string_equal(img->drv->name, "dmg");
        return img;
}

static void expect_fail(const struct ia_open_ctx *ctx, const struct img *im, enum ia_errcat cat,
                        const char *what)
{
        struct ia_image *img = NULL;
        struct ia_error err;

        if (open_named(ctx, im, "dmg", &img, &err) == 0)
                fail_msg("%s: the open succeeded", what);
        assert_null(img);
        if (err.cat != cat)
                fail_msg("%s: expected %s, got %s (%s)", what, ia_errcat_name(cat),
                         ia_errcat_name(err.cat), err.msg);
        assert_true(strncmp(err.msg, "dmg: ", 5) == 0);
}

static const struct ch every_type[] = {
    {RAW, 0, 4, 0, 2048},      /* sectors 0-3: data at 0 */
    {COMM, 4, 0, 0, 0},        /* no sectors */
    {ZERO, 4, 8, 0, 0},        /* 4-11 */
    {ZLIB, 12, 16, 2048, 100}, /* 12-27 */
    {IGNORE, 28, 4, 0, 0},     /* 28-31 */
    {BZIP2, 32, 2, 2148, 50},  /* 32-33 */
    {LZFSE, 34, 2, 2198, 50},  /* 34-35 */
    {ADC, 36, 2, 2248, 50},    /* 36-37 */
    {RAW, 38, 2, 4096, 1024},  /* 38-39: data at 4096 */
    {TERM, 40, 0, 0, 0},
};

static void test_probe(void **state)
{
        uint8_t zeros[512] = {0};
        struct ia_probe p = {.head = zeros, .head_len = sizeof(zeros), .size = 1 << 20};
        uint8_t q[512] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3};

        (void)state;
        p.name = "disk.dmg";
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_dmg);
        p.name = "dir/a.b.dmg";
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_dmg);
        /* qemu: case-sensitive, and the suffix alone is not a name */
        p.name = "disk.DMG";
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_raw);
        p.name = ".dmg";
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_raw);
        p.name = "disk.dmg.gz";
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_raw);
        p.name = NULL;
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_raw);
        /* content beats the name */
        p.head = q;
        p.name = "disk.dmg";
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_qcow2);
        q[7] = 4; /* a qcow2 version qemu cannot open still outranks the name */
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_qcow2);
        /* except cloop's: qemu scores both 2 and opens such a file as dmg */
        {
                static const char magic[] = "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && "
                                            "mount -r -t iso9660 /dev/cloop $1\n";

                memset(q, 0, sizeof(q));
                memcpy(q, magic, sizeof(magic) - 1);
        }
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_dmg);
        p.name = "disk.img";
        assert_ptr_equal(ia_driver_probe_bytes(&p), &ia_drv_cloop);
}

static void test_coarse(void **state)
{
        struct img im = make(every_type, 10, 40);
        struct ia_image *img = open_ok(&coarse, &im);

        (void)state;
        assert_int_equal(img->size, 40 * 512);
        assert_false(img->cow);
        imgtest_expect_status(img, 0, 40 * 512, IA_BS_DATA, 0);
        imgtest_expect_status(img, 4096, 40 * 512 - 4096, IA_BS_DATA, 0);
        ia_image_free(img);
        free(im.buf);
}

static void check_every_type(struct ia_image *img)
{
        assert_int_equal(img->size, 40 * 512);
        imgtest_expect_status(img, 0, 2048, IA_BS_DATA | IA_BS_OFFSET, 0);
        imgtest_expect_status(img, 1024, 1024, IA_BS_DATA | IA_BS_OFFSET, 1024);
        imgtest_expect_status(img, 2048, 4096, IA_BS_ZERO, 0);
        imgtest_expect_status(img, 12 * 512, 16 * 512, IA_BS_DATA | IA_BS_COMPRESSED, 0);
        imgtest_expect_status(img, 20 * 512, 8 * 512, IA_BS_DATA | IA_BS_COMPRESSED, 0);
        imgtest_expect_status(img, 28 * 512, 4 * 512, IA_BS_ZERO, 0);
        imgtest_expect_status(img, 32 * 512, 1024, IA_BS_DATA | IA_BS_COMPRESSED, 0);
        imgtest_expect_status(img, 34 * 512, 1024, IA_BS_DATA | IA_BS_COMPRESSED, 0);
        imgtest_expect_status(img, 36 * 512, 1024, IA_BS_DATA | IA_BS_COMPRESSED, 0);
        imgtest_expect_status(img, 38 * 512, 1024, IA_BS_DATA | IA_BS_OFFSET, 4096);
        imgtest_expect_status(img, 39 * 512, 512, IA_BS_DATA | IA_BS_OFFSET, 4608);
}

static void test_true_map(void **state)
{
        struct img im = make(every_type, 10, 40);
        struct img rs = make_rsrc(every_type, 10, 40);
        struct ia_image *img = open_ok(&truemap, &im);

        (void)state;
        check_every_type(img);
        ia_image_free(img);
        img = open_ok(&truemap, &rs);
        check_every_type(img);
        ia_image_free(img);
        free(im.buf);
        free(rs.buf);
}

static void test_table_order(void **state)
{
        /* Two tables (first sectors 0 and 8) in reverse order, out of order
         * within; chunks past the disk's end are ignored. */
        static const struct ch a[] = {{ZERO, 4, 4, 0, 0}, {RAW, 0, 4, 512, 2048}};
        static const struct ch b[] = {{RAW, 0, 8, 8192, 4096}, {ZERO, 8, 100, 0, 0}};
        uint8_t ma[204 + 80], mb[204 + 80];
        char text[2048];
        size_t n = 0;
        struct img im;
        struct ia_image *img;

        (void)state;
        mish(ma, 0, 0, a, 2);
        mish(mb, 8, 0, b, 2);
        n += (size_t)snprintf(text + n, sizeof(text) - n, "<array><dict><data>");
        n += b64(text + n, mb, sizeof(mb));
        n += (size_t)snprintf(text + n, sizeof(text) - n, "</data></dict><dict><data>");
        n += b64(text + n, ma, sizeof(ma));
        n += (size_t)snprintf(text + n, sizeof(text) - n, "</data></dict></array>");
        text[n] = '\0';
        im = make_xml(NULL, 0, 16, text, "");
        img = open_ok(&truemap, &im);
        imgtest_expect_status(img, 0, 2048, IA_BS_DATA | IA_BS_OFFSET, 512);
        imgtest_expect_status(img, 2048, 2048, IA_BS_ZERO, 0);
        imgtest_expect_status(img, 4096, 4096, IA_BS_DATA | IA_BS_OFFSET, 8192);
        ia_image_free(img);
        free(im.buf);
}

/* The every_type image padded so that its length is rem modulo 512, then extra zero bytes. */
static struct img make_padded(size_t rem, size_t extra)
{
        struct img im = make(every_type, 10, 40);
        size_t pad = (rem + 512 - im.len % 512) % 512;
        char *after = malloc(strlen(PL_AFTER) + pad + 1);
        struct img out;

        assert_non_null(after);
        memset(after, ' ', pad);
        memcpy(after + pad, PL_AFTER, sizeof(PL_AFTER));
        free(im.buf);
        im = make_xml(every_type, 10, 40, PL_BEFORE, after);
        free(after);
        assert_int_equal(im.len % 512, rem);
        out =
            (struct img){.buf = calloc(1, im.len + extra), .len = im.len + extra, .koly = im.koly};
        assert_non_null(out.buf);
        memcpy(out.buf, im.buf, im.len);
        free(im.buf);
        return out;
}

static void test_koly_search(void **state)
{
        /* qemu looks for "koly" in 515 bytes ending 512 bytes before the file
         * size rounded up to 512: a trailer ending on a sector boundary
         * allows nothing after it, an unaligned one a few bytes. */
        static const struct {
                size_t rem, extra;
                bool found;
        } cases[] = {
            {0, 0, true},    {0, 1, false},    {0, 3, false},     {100, 0, true},
            {100, 50, true}, {100, 412, true}, {100, 413, false}, {511, 0, true},
            {1, 0, true},    {1, 510, true},   {1, 511, true},    {1, 512, false},
        };

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct img im = make_padded(cases[i].rem, cases[i].extra);

                if (cases[i].found) {
                        struct ia_image *img = open_ok(&truemap, &im);

                        check_every_type(img);
                        ia_image_free(img);
                } else {
                        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "trailer out of the window");
                }
                free(im.buf);
        }
}

static void test_base64(void **state)
{
        /* Spaces, tabs and characters outside the alphabet are skipped, as glib does. */
        uint8_t m[204 + 40];
        char text[1024], enc[512];
        size_t n, k = 0;
        static const struct ch c[] = {{ZERO, 0, 8, 0, 0}};
        struct img im;
        struct ia_image *img;

        (void)state;
        n = b64(enc, m, mish(m, 0, 0, c, 1));
        k += (size_t)snprintf(text, sizeof(text), "<data>\t ");
        for (size_t i = 0; i < n; i++) {
                text[k++] = enc[i];
                if (i % 5 == 0)
                        text[k++] = i % 2 ? ' ' : '*';
        }
        k +=
            (size_t)snprintf(text + k, sizeof(text) - k, " \n</data><data>bm90IGEgbWlzaA==</data>");
        text[k] = '\0';
        im = make_xml(NULL, 0, 8, text, "");
        img = open_ok(&truemap, &im);
        imgtest_expect_status(img, 0, 4096, IA_BS_ZERO, 0);
        ia_image_free(img);
        free(im.buf);
}

static void test_malformed(void **state)
{
        static const struct ch big_zlib[] = {{ZLIB, 0, 131073, 0, 10}};
        static const struct ch big_zero[] = {{ZERO, 0, 1u << 30, 0, 0}};
        static const struct ch long_raw[] = {{RAW, 0, 8, 0, (64u << 20) + 1}};
        static const struct ch unknown[] = {{0x1234u, 0, 8, 0, 0}};
        static const struct ch overlap[] = {{ZERO, 0, 8, 0, 0}, {RAW, 4, 4, 0, 2048}};
        static const struct ch gap[] = {{ZERO, 0, 4, 0, 0}, {ZERO, 6, 2, 0, 0}};
        static const struct ch short_disk[] = {{ZERO, 0, 8, 0, 0}};
        static const struct ch short_raw[] = {{RAW, 0, 8, 0, 4095}};
        static const struct ch wrap[] = {{ZERO, 0, 4, 0, 0}, {ZERO, UINT64_MAX - 1, 4, 0, 0}};
        static const struct ch raw_off[] = {{RAW, 0, 8, UINT64_MAX - 100, 4096}};
        struct img im;
        struct ia_image *img;

        (void)state;
        /* empty and tiny files */
        im = (struct img){.buf = calloc(1, 1024), .len = 0};
        expect_fail(&coarse, &im, IA_ERR_TRUNCATED, "empty file");
        im.len = 100;
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "no trailer");
        free(im.buf);

        im = make(every_type, 10, 40);
        koly(im.buf + im.koly, 0, 0, DATA_LEN, im.koly - DATA_LEN, 40);
        put_be64(im.buf + im.koly + 0x18, im.koly + 1);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "data fork past the trailer");
        koly(im.buf + im.koly, 0, 0, DATA_LEN, im.koly - DATA_LEN + 1, 40);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "plist runs into the trailer");
        koly(im.buf + im.koly, 0, 0, im.koly, 0, 40);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "plist offset at the trailer");
        koly(im.buf + im.koly, 0, 0, DATA_LEN, UINT64_MAX, 40);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "plist length wraps");
        koly(im.buf + im.koly, DATA_LEN, UINT64_MAX - DATA_LEN + 2, DATA_LEN, 100, 40);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "resource fork wraps");
        koly(im.buf + im.koly, 0, 0, 0, 0, 40);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "neither fork nor plist");
        koly(im.buf + im.koly, 0, 0, DATA_LEN, im.koly - DATA_LEN, 1ull << 63);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "negative sector count");
        koly(im.buf + im.koly, 0, 0, DATA_LEN, im.koly - DATA_LEN, INT64_MAX / 512 + 1);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "byte size overflows");
        /* a zero sector count is a valid, empty disk */
        koly(im.buf + im.koly, 0, 0, DATA_LEN, im.koly - DATA_LEN, 0);
        img = open_ok(&truemap, &im);
        assert_int_equal(img->size, 0);
        ia_image_free(img);
        free(im.buf);

        /* <data> without </data> */
        im = make_xml(every_type, 10, 40, PL_BEFORE, "\n</dat></dict>");
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "unterminated <data>");
        free(im.buf);
        /* a NUL byte ends the text, as in qemu: the table is never seen */
        im = make(every_type, 10, 40);
        im.buf[DATA_LEN + 3] = '\0';
        img = open_ok(&coarse, &im);
        ia_image_free(img);
        expect_fail(&truemap, &im, IA_ERR_CORRUPT, "no chunk at all");
        free(im.buf);

        /* qemu's caps on a chunk, checked in both modes */
        im = make(big_zlib, 1, 131073);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "zlib chunk over 131072 sectors");
        free(im.buf);
        im = make(long_raw, 1, 8);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "chunk over 64 MiB");
        free(im.buf);
        im = make(big_zero, 1, 1u << 30);
        img = open_ok(&truemap, &im);
        imgtest_expect_status(img, 0, (uint64_t)1 << 39, IA_BS_ZERO, 0);
        ia_image_free(img);
        free(im.buf);

        /* only the true map refuses what qemu opens but cannot read */
        im = make(unknown, 1, 8);
        ia_image_free(open_ok(&coarse, &im));
        expect_fail(&truemap, &im, IA_ERR_UNSUPPORTED, "unknown chunk type");
        free(im.buf);
        im = make(overlap, 2, 8);
        ia_image_free(open_ok(&coarse, &im));
        expect_fail(&truemap, &im, IA_ERR_CORRUPT, "overlapping chunks");
        free(im.buf);
        im = make(gap, 2, 8);
        ia_image_free(open_ok(&coarse, &im));
        expect_fail(&truemap, &im, IA_ERR_CORRUPT, "sectors in no chunk");
        free(im.buf);
        im = make(short_disk, 1, 16);
        expect_fail(&truemap, &im, IA_ERR_CORRUPT, "disk longer than its chunks");
        free(im.buf);
        im = make(short_raw, 1, 8);
        ia_image_free(open_ok(&coarse, &im));
        expect_fail(&truemap, &im, IA_ERR_CORRUPT, "raw chunk shorter than its sectors");
        free(im.buf);
        im = make(wrap, 2, 4);
        img = open_ok(&truemap, &im); /* the second chunk lies past the disk */
        imgtest_expect_status(img, 0, 2048, IA_BS_ZERO, 0);
        ia_image_free(img);
        free(im.buf);
        im = make(raw_off, 1, 8);
        expect_fail(&truemap, &im, IA_ERR_CORRUPT, "raw data offset overflows");
        free(im.buf);
}

static void test_rsrc_malformed(void **state)
{
        struct img im = make_rsrc(every_type, 10, 40);
        uint8_t *f = im.buf + DATA_LEN;
        size_t flen = im.koly - DATA_LEN;

        (void)state;
        put_be32(f, (uint32_t)flen + 1);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "resource data offset past the fork");
        put_be32(f, 256);
        put_be32(f + 8, 0);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "empty resource data");
        put_be32(f + 8, (uint32_t)flen);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "resource data past the fork");
        put_be32(f + 8, 4 + 204 + 400);
        put_be32(f + 256, 0);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "empty resource");
        put_be32(f + 256, 0xffffffffu);
        expect_fail(&coarse, &im, IA_ERR_CORRUPT, "huge resource length");
        put_be32(f + 256, 204 + 400);
        ia_image_free(open_ok(&truemap, &im));
        /* a resource that is not a blkx table is skipped */
        memcpy(f + 260, "plst", 4);
        ia_image_free(open_ok(&coarse, &im));
        free(im.buf);
}

static void test_huge_counts(void **state)
{
        /* One resource of 1 Mi + 1 chunks: qemu's way to hold it, not ours. */
        size_t n = (1u << 20) + 1, mlen = 204 + 40 * n;
        size_t flen = 256 + 4 + mlen, len = DATA_LEN + flen + 512;
        struct img im = {.buf = calloc(1, len), .len = len, .koly = DATA_LEN + flen};
        uint8_t *f = im.buf + DATA_LEN, *m = f + 260;
        struct ia_image *img;

        (void)state;
        assert_non_null(im.buf);
        put_be32(f, 256);
        put_be32(f + 8, (uint32_t)(4 + mlen));
        put_be32(f + 256, (uint32_t)mlen);
        memcpy(m, "mish", 4);
        put_be32(m + 200, (uint32_t)n);
        for (size_t i = 0; i < n; i++) {
                uint8_t *e = m + 204 + 40 * i;

                put_be32(e, ZERO);
                put_be64(e + 8, i);
                put_be64(e + 16, 1);
        }
        koly(im.buf + im.koly, DATA_LEN, flen, 0, 0, n);
        img = open_ok(&coarse, &im); /* nothing kept: no cap */
        assert_int_equal(img->size, (uint64_t)n * 512);
        ia_image_free(img);
        expect_fail(&truemap, &im, IA_ERR_LIMIT, "more than 1 Mi chunks");
        free(im.buf);

        /* a plist over qemu's 16 MiB cap */
        len = (17u << 20) + 512;
        im = (struct img){.buf = calloc(1, len), .len = len, .koly = 17u << 20};
        assert_non_null(im.buf);
        koly(im.buf + im.koly, 0, 0, 0, (16u << 20) + 1, 8);
        expect_fail(&coarse, &im, IA_ERR_LIMIT, "plist over 16 MiB");
        free(im.buf);
}

static void test_faults(void **state)
{
        struct img im = make(every_type, 10, 40);
        struct img rs = make_rsrc(every_type, 10, 40);
        const struct img *all[] = {&im, &rs};

        (void)state;
        for (size_t k = 0; k < 2; k++) {
                for (uint64_t n = 1; n < 64; n++) {
                        struct ia_error err;
                        struct ia_source *mem =
                            ia_source_memory(all[k]->buf, all[k]->len, false, &err);
                        struct ia_source *bad = ia_source_faulty(mem, n, NULL, &err);
                        struct ia_file *file;
                        struct ia_image *img = NULL;

                        ia_source_unref(mem);
                        file = ia_file_new(bad, "faulty.dmg", &err);
                        if (ia_image_open(&truemap, file, NULL, &img, &err) < 0) {
                                assert_int_equal(err.cat, IA_ERR_IO);
                                continue;
                        }
                        check_every_type(img);
                        ia_image_free(img);
                }
        }
        free(im.buf);
        free(rs.buf);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_probe),       cmocka_unit_test(test_coarse),
            cmocka_unit_test(test_true_map),    cmocka_unit_test(test_table_order),
            cmocka_unit_test(test_koly_search), cmocka_unit_test(test_base64),
            cmocka_unit_test(test_malformed),   cmocka_unit_test(test_rsrc_malformed),
            cmocka_unit_test(test_huge_counts), cmocka_unit_test(test_faults),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
