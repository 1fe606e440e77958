/*
 * VMDK seSparse extents on images built in memory: the constant and
 * volatile headers, grain directory and grain table entries of every kind,
 * and hostile variants (entries out of range or of no known kind, huge or
 * wrapping sizes and offsets), which must fail cleanly with a category and a
 * message, never crash, also under read faults.
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
#include "imgtest.h"

#include "chain.h"
#include "drivers.h"
#include "map.h"

#define SECT 512u
#define GT0  0x1000000000000000ull /* GD entry: table 0 */

/*
 * An extent: 0 constant header, 1 volatile header, 8-9 GD (128 entries),
 * 16.. GT area (tables of 64 sectors), grains from sector 16 + 4 * 64 = 272.
 * Capacity 131072 sectors (64 MiB: 4 GD entries).
 */
#define SE_GD     8u
#define SE_GT     16u
#define SE_GRAINS 272u
#define SE_LEN    ((SE_GRAINS + 64) * SECT)

struct se {
        uint8_t buf[SE_LEN];
        size_t len;
};

static struct se ext;

static void se_build(struct se *s)
{
        memset(s, 0, sizeof(*s));
        put_le64(s->buf, 0xcafebabe);
        put_le64(s->buf + 8, 0x200000001ull);
        put_le64(s->buf + 16, 131072); /* capacity */
        put_le64(s->buf + 24, 8);      /* grain size */
        put_le64(s->buf + 32, 64);     /* grain table size */
        put_le64(s->buf + 80, 1);      /* volatile header */
        put_le64(s->buf + 88, 1);
        put_le64(s->buf + 128, SE_GD); /* GD */
        put_le64(s->buf + 136, 2);     /* GD size: 128 entries */
        put_le64(s->buf + 144, SE_GT); /* GT area */
        put_le64(s->buf + 152, 4 * 64);
        put_le64(s->buf + 192, SE_GRAINS); /* grains */
        put_le64(s->buf + 200, 1024);
        put_le64(s->buf + SECT, 0xcafecafe);
        s->len = SE_LEN;
}

static void se_gde(struct se *s, unsigned i, uint64_t v)
{
        put_le64(s->buf + SE_GD * SECT + 8 * i, v);
}

static void se_gte(struct se *s, unsigned t, unsigned i, uint64_t v)
{
        put_le64(s->buf + (SE_GT + 64 * t) * SECT + 8 * i, v);
}

/* An allocated-grain entry for grain number n (its low 12 bits at bit 48). */
static uint64_t se_alloc(uint64_t n)
{
        return 0x3000000000000000ull | (n & 0xfff) << 48 | (n >> 12);
}

static const char desc_fmt[] =
    "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n"
    "createType=\"seSparse\"\nRW %u SESPARSE \"x.se\"\n";

static char desc[256];

/* Fault injection: when fault_at is set, the extent's reads count into fault_count too. */
static uint64_t fault_at, *fault_count;

static int mem_open(const struct ia_resolver *r, const struct ia_file *from, const char *name,
                    enum ia_ref_kind kind, struct ia_file **out, struct ia_error *err)
{
        const struct imgtest_memfile extent = {"x.se", ext.buf, ext.len, fault_at, fault_count};

        (void)r;
        (void)from;
        (void)kind;
        return imgtest_memfile_open(&extent, 1, name, out, err);
}

static const struct ia_resolver resolver = {.open = mem_open};
static const struct ia_open_ctx ctx = {.resolver = &resolver, .compat = 702};

static int open_desc(unsigned sectors, struct ia_image **img, struct ia_error *err)
{
        snprintf(desc, sizeof(desc), desc_fmt, sectors);
        return imgtest_open(&ctx, (const uint8_t *)desc, strlen(desc), NULL, img, err);
}

static void expect_open_fail(enum ia_errcat cat)
{
        snprintf(desc, sizeof(desc), desc_fmt, 131072u);
        imgtest_expect_open_fail(&ctx, (const uint8_t *)desc, strlen(desc), NULL, cat);
}

/* The extent's own answer at off: len, flags, host offset. */
static void expect_status(struct ia_image *img, uint64_t off, uint64_t len, unsigned flags,
                          uint64_t host)
{
        struct ia_bstatus st;
        struct ia_error err;

        memset(&st, 0, sizeof(st));
        if (img->drv->block_status(img, off, img->size - off, &st, &err) < 0)
                fail_msg("block status at %llu failed: %s", (unsigned long long)off, err.msg);
        if (st.len != len || st.flags != flags)
                fail_msg("at %llu: got len %llu flags 0x%x, expected len %llu flags 0x%x",
                         (unsigned long long)off, (unsigned long long)st.len, st.flags,
                         (unsigned long long)len, flags);
        if (flags & IA_BS_OFFSET)
                assert_int_equal(st.host_off, host);
}

static void expect_status_fail(struct ia_image *img, uint64_t off, enum ia_errcat cat)
{
        imgtest_expect_status_fail(img, off, cat, true);
}

#define G 4096u /* grain bytes */
#define D (IA_BS_DATA | IA_BS_OFFSET)

static void test_grains(void **state)
{
        struct ia_image *img;
        struct ia_error err;

        (void)state;
        se_build(&ext);
        se_gde(&ext, 0, GT0);
        se_gte(&ext, 0, 0, se_alloc(0));
        se_gte(&ext, 0, 1, se_alloc(1));
        se_gte(&ext, 0, 2, se_alloc(5));           /* not contiguous with grain 1 */
        se_gte(&ext, 0, 3, 0x1000000000000000ull); /* unmapped: zero */
        se_gte(&ext, 0, 4, 0x2fffffffffffffffull); /* zero, whatever the low bits */
        se_gte(&ext, 0, 6, se_alloc(0x1234));      /* both halves of the grain number */
        se_gde(&ext, 2, GT0 | 1);
        se_gte(&ext, 1, 4095, se_alloc(2));
        assert_int_equal(open_desc(100, &img, &err), 0);
        /* The size is the header's capacity, not the descriptor's 100 sectors. */
        assert_int_equal(img->size, 131072ull * SECT);
        assert_int_equal(img->cluster_size, G);
        expect_status(img, 0, 2 * G, D, SE_GRAINS * SECT);
        expect_status(img, 100, 2 * G - 100, D, SE_GRAINS * SECT + 100);
        expect_status(img, 2 * G, G, D, SE_GRAINS * SECT + 5 * G);
        expect_status(img, 3 * G, 2 * G, IA_BS_ZERO, 0);
        expect_status(img, 5 * G, G, 0, 0);
        expect_status(img, 6 * G, G, D, SE_GRAINS * SECT + 0x1234ull * G);
        /* The rest of table 0, then GD entry 1 (no table), up to table 1's last grain. */
        expect_status(img, 7 * G, (2 * 4096 + 4095 - 7) * (uint64_t)G, 0, 0);
        expect_status(img, (2 * 4096 + 4095) * (uint64_t)G, G, D, SE_GRAINS * SECT + 2 * G);
        expect_status(img, 3 * 4096 * (uint64_t)G, 4096 * (uint64_t)G, 0, 0);
        ia_image_free(img);

        /* A grain numbered so that its sector is 0 is unallocated (qemu's test). */
        put_le64(ext.buf + 192, 0);
        assert_int_equal(open_desc(131072, &img, &err), 0);
        expect_status(img, 0, G, 0, 0);
        expect_status(img, G, G, D, G);
        ia_image_free(img);

        /* A GD entry whose table would be at sector 0 (the GT area at 0). */
        se_build(&ext);
        put_le64(ext.buf + 144, 0);
        se_gde(&ext, 0, GT0);
        assert_int_equal(open_desc(131072, &img, &err), 0);
        expect_status(img, 0, 4096 * (uint64_t)G * 4, 0, 0);
        ia_image_free(img);

        /* Tables past the end of the file read as zeroes: unallocated. */
        se_build(&ext);
        se_gde(&ext, 0, GT0 | 3);
        ext.len = (SE_GT + 64 * 3 + 10) * SECT;
        assert_int_equal(open_desc(131072, &img, &err), 0);
        expect_status(img, 0, 4096 * (uint64_t)G * 4, 0, 0);
        ia_image_free(img);
        se_gde(&ext, 0, GT0 | 0xffffff); /* wholly past the end */
        assert_int_equal(open_desc(131072, &img, &err), 0);
        expect_status(img, 0, 4096 * (uint64_t)G * 4, 0, 0);
        ia_image_free(img);
}

static void test_hostile_entries(void **state)
{
        struct ia_image *img;
        struct ia_error err;

        (void)state;
        /* GD entries that are not tables: an error at that entry only. */
        static const uint64_t bad_gde[] = {0x2000000000000000ull, 0x1000000100000000ull,
                                           0x0000000000000001ull, 0xffffffffffffffffull};
        for (size_t i = 0; i < sizeof(bad_gde) / sizeof(bad_gde[0]); i++) {
                se_build(&ext);
                se_gde(&ext, 1, bad_gde[i]);
                assert_int_equal(open_desc(131072, &img, &err), 0);
                /* Table 0 is unallocated up to the bad entry. */
                expect_status(img, 0, 4096 * (uint64_t)G, 0, 0);
                expect_status_fail(img, 4096 * (uint64_t)G, IA_ERR_CORRUPT);
                ia_image_free(img);
        }
        /* A table beyond 2^32 sectors: the GT area near the limit, and table numbers
         * that wrap the 64-bit sum to sector 0 (no table). */
        se_build(&ext);
        put_le64(ext.buf + 144, 0xffffffc0ull);
        se_gde(&ext, 0, GT0 | 1);
        se_gde(&ext, 1, GT0);
        assert_int_equal(open_desc(131072, &img, &err), 0);
        expect_status_fail(img, 0, IA_ERR_CORRUPT);
        expect_status(img, 4096 * (uint64_t)G, 4096 * (uint64_t)G * 3, 0, 0); /* past EOF */
        ia_image_free(img);
        put_le64(ext.buf + 144, 0xffffffffffffffc0ull);
        assert_int_equal(open_desc(131072, &img, &err), 0);
        expect_status(img, 0, 4096 * (uint64_t)G, 0, 0);
        expect_status_fail(img, 4096 * (uint64_t)G, IA_ERR_CORRUPT);
        ia_image_free(img);

        /* GT entries of no known kind. */
        static const uint64_t bad_gte[] = {0x0000000000000005ull, 0x4000000000000000ull,
                                           0x8000000000000000ull, 0xf000000000000000ull};
        for (size_t i = 0; i < sizeof(bad_gte) / sizeof(bad_gte[0]); i++) {
                se_build(&ext);
                se_gde(&ext, 0, GT0);
                se_gte(&ext, 0, 0, se_alloc(0));
                se_gte(&ext, 0, 1, bad_gte[i]);
                assert_int_equal(open_desc(131072, &img, &err), 0);
                /* The good grain before the bad one is answered alone. */
                expect_status(img, 0, G, D, SE_GRAINS * SECT);
                expect_status_fail(img, G, IA_ERR_CORRUPT);
                ia_image_free(img);
        }

        /* Grain numbers that run far past the file, or wrap: as qemu computes them;
         * a host offset beyond 2^63 is refused (qemu prints it negative). */
        se_build(&ext);
        se_gde(&ext, 0, GT0);
        se_gte(&ext, 0, 0, 0x3fff00ffffffffffull);
        assert_int_equal(open_desc(131072, &img, &err), 0);
        {
                uint64_t n = 0xfffull | 0xffffffffffull << 12;
                uint64_t host = (SE_GRAINS + n * 8) * SECT;

                expect_status(img, 0, G, D, host);
        }
        ia_image_free(img);
        put_le64(ext.buf + 192, 0x0fffffffffffffffull);
        se_gte(&ext, 0, 0, se_alloc(0));
        assert_int_equal(open_desc(131072, &img, &err), 0);
        expect_status_fail(img, 0, IA_ERR_LIMIT);
        ia_image_free(img);

        /* A capacity beyond what the GD covers: an error past its last entry. */
        se_build(&ext);
        put_le64(ext.buf + 136, 1); /* 64 entries: 1 GiB */
        put_le64(ext.buf + 16, 4u << 21);
        assert_int_equal(open_desc(131072, &img, &err), 0);
        assert_int_equal(img->size, 4ull << 30);
        expect_status(img, (1ull << 30) - G, G, 0, 0);
        expect_status_fail(img, 1ull << 30, IA_ERR_CORRUPT);
        ia_image_free(img);
}

static void test_hostile_headers(void **state)
{
        struct ia_image *img;
        struct ia_error err;

        (void)state;
        /* Each constant header field qemu checks. */
        static const struct {
                unsigned off;
                uint64_t v;
                enum ia_errcat cat;
        } bad[] = {
            {0, 0xcafebabf, IA_ERR_CORRUPT},
            {8, 0x100000001ull, IA_ERR_UNSUPPORTED},
            {24, 16, IA_ERR_UNSUPPORTED},
            {24, 0, IA_ERR_UNSUPPORTED},
            {32, 128, IA_ERR_UNSUPPORTED},
            {40, 1, IA_ERR_UNSUPPORTED},
            {48, 1, IA_ERR_UNSUPPORTED},
            {72, 1ull << 63, IA_ERR_UNSUPPORTED},
            {300, 0x100, IA_ERR_UNSUPPORTED},
            {504, 1, IA_ERR_UNSUPPORTED},
            {80, 100000, IA_ERR_CORRUPT},              /* volatile header past EOF: zeroes */
            {80, 0x40000000000000ull, IA_ERR_IO},      /* beyond any file */
            {80, 0x80000000000000ull, IA_ERR_CORRUPT}, /* wraps to 0: the constant header */
            {SECT, 0xcafecaff, IA_ERR_CORRUPT},
            {SECT + 24, 1, IA_ERR_UNSUPPORTED},
            {SECT + 200, 1, IA_ERR_UNSUPPORTED},
            {136, 0x80001, IA_ERR_CORRUPT},
            {128, 0x40000000000000ull, IA_ERR_CORRUPT},
            {16, 0x7fffffffffffffffull, IA_ERR_LIMIT},
            {16, UINT64_MAX, IA_ERR_LIMIT},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                se_build(&ext);
                if (bad[i].off == 300 || bad[i].off == SECT + 200)
                        ext.buf[bad[i].off] = 1;
                else
                        put_le64(ext.buf + bad[i].off, bad[i].v);
                snprintf(desc, sizeof(desc), desc_fmt, 131072u);
                img = NULL;
                if (imgtest_open(&ctx, (const uint8_t *)desc, strlen(desc), NULL, &img, &err) == 0)
                        fail_msg("case %zu (offset %u): opened", i, bad[i].off);
                assert_null(img);
                if (err.cat != bad[i].cat)
                        fail_msg("case %zu (offset %u): category %s: %s", i, bad[i].off,
                                 ia_errcat_name(err.cat), err.msg);
        }

        /* A GD size whose byte count wraps: 2^58 + 1 sectors are 64 entries to qemu. */
        se_build(&ext);
        put_le64(ext.buf + 136, (1ull << 58) + 1);
        put_le64(ext.buf + 16, 4u << 21);
        assert_int_equal(open_desc(131072, &img, &err), 0);
        expect_status(img, (1ull << 30) - G, G, 0, 0);
        expect_status_fail(img, 1ull << 30, IA_ERR_CORRUPT);
        ia_image_free(img);
        /* The GD at offset 0 (its sector count times 512 wraps): the constant header
         * is read as GD entries, and 0xcafebabe is not a table. */
        se_build(&ext);
        put_le64(ext.buf + 128, 0x80000000000000ull);
        assert_int_equal(open_desc(131072, &img, &err), 0);
        expect_status_fail(img, 0, IA_ERR_CORRUPT);
        ia_image_free(img);
        /* Capacity 0: an empty disk. */
        se_build(&ext);
        put_le64(ext.buf + 16, 0);
        assert_int_equal(open_desc(131072, &img, &err), 0);
        assert_int_equal(img->size, 0);
        ia_image_free(img);
        /* A truncated extent: the headers read as zeroes. */
        se_build(&ext);
        ext.len = 100;
        expect_open_fail(IA_ERR_CORRUPT);
        ext.len = SECT + 2;
        expect_open_fail(IA_ERR_CORRUPT);
        ext.len = SECT + 8; /* the volatile magic whole, the rest zero: valid */
        assert_int_equal(open_desc(131072, &img, &err), 0);
        ia_image_free(img);
}

static void test_faults(void **state)
{
        (void)state;
        se_build(&ext);
        se_gde(&ext, 0, GT0);
        se_gte(&ext, 0, 0, se_alloc(0));
        snprintf(desc, sizeof(desc), desc_fmt, 131072u);
        for (uint64_t n = 1; n < 12; n++) {
                struct ia_error err;
                struct ia_source *mem, *bad;
                struct ia_file *file;
                struct ia_image *img = NULL;
                struct ia_bstatus st;
                uint64_t count = 0;

                ia_error_clear(&err);
                mem = ia_source_memory(desc, strlen(desc), false, &err);
                assert_non_null(mem);
                bad = ia_source_faulty(mem, n, &count, &err);
                assert_non_null(bad);
                ia_source_unref(mem);
                file = ia_file_new(bad, "faulty", &err);
                assert_non_null(file);
                fault_at = n;
                fault_count = &count;
                if (ia_image_open(&ctx, file, "vmdk", &img, &err) < 0) {
                        assert_int_equal(err.cat, IA_ERR_IO);
                        continue;
                }
                memset(&st, 0, sizeof(st));
                if (img->drv->block_status(img, 0, img->size, &st, &err) < 0)
                        assert_int_equal(err.cat, IA_ERR_IO);
                else
                        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET);
                ia_image_free(img);
        }
        fault_at = 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_grains),
            cmocka_unit_test(test_hostile_entries),
            cmocka_unit_test(test_hostile_headers),
            cmocka_unit_test(test_faults),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
