/*
 * The qcow2 driver on images built in memory: header parsing, cluster types
 * and run lengths, extended L2 bitmaps, corruption found mid-map, the
 * preallocation heuristic, external data files, and malformed headers, which
 * must fail cleanly with a sensible category (also under read faults).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bytes_build.h"
#include "chain.h"
#include "drivers.h"
#include "imgtest.h"

#define CB 9 /* 512-byte clusters keep images small */
#define C  (1u << CB)

/*
 * Layout: 0 header, 1 refcount table, 2 refcount block, 3 L1 table,
 * 4 L2 table (or 4-5 with extended L2: the table is one cluster), 6.. data.
 */
struct builder {
        uint8_t buf[8u << 14];
        size_t len;
        unsigned cbits;
        bool ext_l2;
};

static void build_cb(struct builder *b, unsigned version, uint64_t size, bool ext_l2,
                     unsigned cbits)
{
        memset(b, 0, sizeof(*b));
        b->cbits = cbits;
        b->ext_l2 = ext_l2;
        put_be32(b->buf, 0x514649fb);
        put_be32(b->buf + 4, version);
        put_be32(b->buf + 20, b->cbits);
        put_be64(b->buf + 24, size);
        put_be32(b->buf + 36, 1);                /* l1_size */
        put_be64(b->buf + 40, 3ull << b->cbits); /* l1 */
        put_be64(b->buf + 48, 1ull << b->cbits); /* refcount table */
        put_be32(b->buf + 56, 1);
        if (version >= 3) {
                put_be64(b->buf + 72, ext_l2 ? 1u << 4 : 0);
                put_be32(b->buf + 96, 4);
                put_be32(b->buf + 100, 104);
        }
        b->len = 16u << cbits < sizeof(b->buf) ? 16u << cbits : sizeof(b->buf);
}

/* Extended L2 needs clusters of at least 16 KiB. */
static void build(struct builder *b, unsigned version, uint64_t size, bool ext_l2)
{
        build_cb(b, version, size, ext_l2, ext_l2 ? 14 : CB);
}

/* Point L1[0] at the L2 table and refcount the metadata clusters. */
static void link_l2(struct builder *b)
{
        uint64_t cs = 1ull << b->cbits;

        put_be64(b->buf + 3 * cs, (1ull << 63) | 4 * cs);
        put_be64(b->buf + cs, 2 * cs);
        for (int i = 0; i < 5; i++)
                b->buf[2 * cs + 2 * i + 1] = 1; /* 16-bit refcounts */
}

static void set_l2(struct builder *b, unsigned idx, uint64_t entry, uint64_t bitmap)
{
        uint64_t cs = 1ull << b->cbits;
        unsigned es = b->ext_l2 ? 16 : 8;

        put_be64(b->buf + 4 * cs + idx * es, entry);
        if (b->ext_l2)
                put_be64(b->buf + 4 * cs + idx * es + 8, bitmap);
}

struct memres {
        struct builder *data; /* what the data file holds */
};

static int mem_open(const struct ia_resolver *r, const struct ia_file *from, const char *name,
                    enum ia_ref_kind kind, struct ia_file **out, struct ia_error *err)
{
        const struct memres *m = r->opaque;
        struct ia_source *src;

        (void)from;
        if (kind != IA_REF_DATA_FILE || !m || !m->data || strcmp(name, "d.raw") != 0)
                return ia_error_set(err, IA_ERR_MISSING, "no file '%s'", name);
        src = ia_source_memory(m->data->buf, m->data->len, false, err);
        if (!src)
                return -1;
        *out = ia_file_new(src, name, err);
        return *out ? 0 : -1;
}

static struct memres no_files;
static const struct ia_resolver resolver = {.open = mem_open, .opaque = &no_files};
static const struct ia_open_ctx ctx = {.resolver = &resolver, .compat = 702};

static int open_buf(const struct ia_open_ctx *c, const void *buf, size_t len, uint64_t allocated,
                    struct ia_image **img, struct ia_error *err)
{
        const struct imgtest_mem how = {
            .name = "mem.qcow2", .fmt = "qcow2", .allocated = allocated};

        return imgtest_open_mem(c, buf, len, &how, img, err);
}

static const struct imgtest_mem qcow2_mem = {.name = "mem.qcow2", .fmt = "qcow2"};

/* Open b; allocated = the whole buffer. */
static struct ia_image *must_open(struct builder *b)
{
        return imgtest_must_open(&ctx, b->buf, b->len, &qcow2_mem);
}

static enum ia_errcat open_fails(struct builder *b)
{
        return imgtest_open_fails(&ctx, b->buf, b->len, &qcow2_mem);
}

static void status(struct ia_image *img, uint64_t off, struct ia_bstatus *st)
{
        imgtest_status(img, off, st, 0xa5);
}

static void test_types_and_runs(void **state)
{
        struct builder *b = malloc(sizeof(*b));
        struct ia_image *img;
        struct ia_bstatus st;

        (void)state;
        build(b, 3, 16 * C + 300, false);
        link_l2(b);
        set_l2(b, 0, (1ull << 63) | 6 * C, 0); /* normal, contiguous with the next */
        set_l2(b, 1, (1ull << 63) | 7 * C, 0);
        set_l2(b, 2, (1ull << 63) | 9 * C, 0); /* normal, not contiguous */
        set_l2(b, 3, 1, 0);                    /* zero, plain */
        set_l2(b, 4, 1, 0);
        set_l2(b, 5, 10 * C | 1, 0);          /* zero, allocated */
        set_l2(b, 6, 1ull << 62 | 11 * C, 0); /* compressed */
        set_l2(b, 7, 1ull << 62 | 12 * C, 0);
        img = must_open(b);
        assert_int_equal(img->size, 16 * C); /* rounded down to 512 */
        assert_int_equal(img->cluster_size, C);
        assert_true(img->cow);

        status(img, 0, &st);
        assert_int_equal(st.len, 2 * C);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET);
        assert_int_equal(st.host_off, 6 * C);
        assert_ptr_equal(st.file, img->file);
        status(img, 100, &st);
        assert_int_equal(st.len, 2 * C - 100);
        assert_int_equal(st.host_off, 6 * C + 100);
        status(img, 2 * C, &st);
        assert_int_equal(st.len, C);
        assert_int_equal(st.host_off, 9 * C);
        status(img, 3 * C + 7, &st);
        assert_int_equal(st.len, 2 * C - 7);
        assert_int_equal(st.flags, IA_BS_ZERO);
        status(img, 5 * C, &st);
        assert_int_equal(st.len, C);
        assert_int_equal(st.flags, IA_BS_ZERO | IA_BS_OFFSET);
        assert_int_equal(st.host_off, 10 * C);
        status(img, 6 * C, &st);
        assert_int_equal(st.len, C); /* compressed: one at a time */
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_COMPRESSED);
        status(img, 8 * C, &st);
        assert_int_equal(st.len, 8 * C);
        assert_int_equal(st.flags, 0);
        ia_image_free(img);
        free(b);
}

static void test_unallocated_l1(void **state)
{
        struct builder *b = malloc(sizeof(*b));
        struct ia_image *img;
        struct ia_bstatus st;

        (void)state;
        /* 512-byte clusters: one L2 table covers 64 clusters = 32 KiB. */
        build(b, 3, 100 * 1024, false);
        put_be32(b->buf + 36, 4);
        link_l2(b);
        put_be64(b->buf + 3 * C, 0); /* L1[0] empty */
        put_be64(b->buf + 3 * C + 8, 4 * C);
        set_l2(b, 0, 6 * C, 0);
        img = must_open(b);
        status(img, 1000, &st);
        assert_int_equal(st.len, 32 * 1024 - 1000); /* to the end of the L2 coverage */
        assert_int_equal(st.flags, 0);
        status(img, 32 * 1024, &st);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET);
        assert_int_equal(st.len, C);
        ia_image_free(img);
        free(b);
}

static void test_v2_zero_is_corrupt(void **state)
{
        struct builder *b = malloc(sizeof(*b));
        struct ia_image *img;
        struct ia_bstatus st;
        struct ia_error err;

        (void)state;
        build(b, 2, 8 * C, false);
        link_l2(b);
        set_l2(b, 0, 6 * C, 0);
        set_l2(b, 2, 1, 0);
        img = must_open(b);
        status(img, 0, &st);
        assert_int_equal(st.len, C);
        status(img, C, &st);
        assert_int_equal(st.len, C);
        assert_int_equal(img->drv->block_status(img, 2 * C, 6 * C, &st, &err), -1);
        assert_int_equal(err.cat, IA_ERR_CORRUPT);
        /* qemu makes the image unusable after that */
        assert_int_equal(img->drv->block_status(img, 0, 8 * C, &st, &err), -1);
        ia_image_free(img);
        free(b);
}

static void test_unaligned_offsets(void **state)
{
        struct builder *b = malloc(sizeof(*b));
        struct ia_image *img;
        struct ia_bstatus st;
        struct ia_error err;

        (void)state;
        /* 4 KiB clusters: offsets can be 512-aligned but not cluster-aligned */
        build_cb(b, 3, 8 * 4096, false, 12);
        link_l2(b);
        set_l2(b, 0, 6 * 4096 + 512, 0);
        img = must_open(b);
        assert_int_equal(img->drv->block_status(img, 0, 8 * 4096, &st, &err), -1);
        assert_int_equal(err.cat, IA_ERR_CORRUPT);
        ia_image_free(img);

        build_cb(b, 3, 8 * 4096, false, 12);
        link_l2(b);
        put_be64(b->buf + 3 * 4096, 4 * 4096 + 1024);
        img = must_open(b); /* found when used, as qemu does */
        assert_int_equal(img->drv->block_status(img, 0, 8 * 4096, &st, &err), -1);
        assert_int_equal(err.cat, IA_ERR_CORRUPT);
        ia_image_free(img);
        free(b);
}

static void test_extended_l2(void **state)
{
        struct builder *b = malloc(sizeof(*b));
        struct ia_image *img;
        struct ia_bstatus st;
        struct ia_error err;
        uint64_t cs = 1u << 14, sc = cs / 32;

        (void)state;
        build(b, 3, 4 * cs, true);
        b->len = 8 * cs;
        link_l2(b);
        /* cluster 0 at 6: subclusters 0-1 unallocated, 2-4 data, 5 zero, rest unallocated */
        set_l2(b, 0, (1ull << 63) | 6 * cs, (1ull << 37) | 0x1c);
        /* cluster 1 unallocated with zero subclusters 0-31 */
        set_l2(b, 1, 0, 0xffffffffull << 32);
        img = must_open(b);
        status(img, 0, &st);
        assert_int_equal(st.len, 2 * sc);
        assert_int_equal(st.flags, IA_BS_OFFSET);
        assert_int_equal(st.host_off, 6 * cs);
        status(img, 2 * sc + 5, &st);
        assert_int_equal(st.len, 3 * sc - 5);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET);
        assert_int_equal(st.host_off, 6 * cs + 2 * sc + 5);
        status(img, 5 * sc, &st);
        assert_int_equal(st.len, sc);
        assert_int_equal(st.flags, IA_BS_ZERO | IA_BS_OFFSET);
        status(img, 6 * sc, &st);
        assert_int_equal(st.len, 26 * sc);
        assert_int_equal(st.flags, IA_BS_OFFSET);
        status(img, cs, &st);
        assert_int_equal(st.len, cs);
        assert_int_equal(st.flags, IA_BS_ZERO);
        ia_image_free(img);

        /* the same subcluster allocated and zero: invalid */
        set_l2(b, 1, (1ull << 63) | 7 * cs, (1ull << 32) | 1);
        img = must_open(b);
        status(img, 0, &st); /* the run ends inside cluster 0: cluster 1 unseen */
        assert_int_equal(st.len, 2 * sc);
        assert_int_equal(img->drv->block_status(img, cs, 3 * cs, &st, &err), -1);
        assert_int_equal(err.cat, IA_ERR_CORRUPT);
        ia_image_free(img);
        /* a run through a whole cluster meets the invalid one next to it */
        set_l2(b, 0, (1ull << 63) | 6 * cs, 0xffffffffull);
        img = must_open(b);
        assert_int_equal(img->drv->block_status(img, 0, 4 * cs, &st, &err), -1);
        assert_int_equal(err.cat, IA_ERR_CORRUPT);
        ia_image_free(img);
        free(b);
}

static void test_prealloc_heuristic(void **state)
{
        struct builder *b = malloc(sizeof(*b));
        struct ia_image *img = NULL;
        struct ia_bstatus st;
        struct ia_error err;

        (void)state;
        build(b, 3, 8 * C, false);
        link_l2(b);
        set_l2(b, 0, 6 * C, 0);
        /* Few blocks in the file, five refcounted clusters: detected. */
        assert_int_equal(open_buf(&ctx, b->buf, b->len, 2 * C, &img, &err), 0);
        status(img, 0, &st);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET | IA_BS_RECURSE);
        ia_image_free(img);
        /* The whole file allocated: not detected. */
        img = must_open(b);
        status(img, 0, &st);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET);
        ia_image_free(img);
        free(b);
}

static void test_header_fields(void **state)
{
        struct builder *b = malloc(sizeof(*b));
        struct ia_image *img;
        const char name[] = "base.qcow2";

        (void)state;
        build(b, 3, 8 * C, false);
        link_l2(b);
        /* backing format extension, then the end marker; the name after them */
        put_be32(b->buf + 104, 0xe2792aca);
        put_be32(b->buf + 108, 5);
        memcpy(b->buf + 112, "qcow2", 5);
        put_be64(b->buf + 8, 200);
        put_be32(b->buf + 16, sizeof(name) - 1);
        memcpy(b->buf + 200, name, sizeof(name) - 1);
        put_be64(b->buf + 72, 3); /* dirty, corrupt */
        put_be32(b->buf + 60, 2); /* snapshots */
        img = must_open(b);
        assert_string_equal(img->backing, "base.qcow2");
        assert_string_equal(img->backing_fmt, "qcow2");
        assert_int_equal(img->flags, IA_IMG_DIRTY | IA_IMG_CORRUPT | IA_IMG_SNAPSHOTS);
        ia_image_free(img);

        put_be32(b->buf + 32, 2); /* LUKS: no offsets */
        put_be64(b->buf + 72, 0);
        set_l2(b, 0, 6 * C, 0);
        img = must_open(b);
        {
                struct ia_bstatus st;

                status(img, 0, &st);
                assert_int_equal(st.flags, IA_BS_DATA);
        }
        assert_true(img->flags & IA_IMG_ENCRYPTED);
        ia_image_free(img);
        free(b);
}

/* put_snap: a snapshot table entry header at off; returns where the next starts. */
static size_t put_snap(uint8_t *buf, size_t off, uint32_t extra, uint16_t id, uint16_t name)
{
        off = (off + 7) & ~(size_t)7;
        memset(buf + off, 0, 40);
        buf[off + 12] = (uint8_t)(id >> 8);
        buf[off + 13] = (uint8_t)id;
        buf[off + 14] = (uint8_t)(name >> 8);
        buf[off + 15] = (uint8_t)name;
        put_be32(buf + off + 36, extra);
        return off + 40 + extra + id + name;
}

/*
 * The snapshot table is never mapped, but qemu refuses an image whose table
 * has an entry with more than 1 KiB of extra data, or grows past 64 MiB
 * (entries 8-aligned; bytes past the end of the file read as zeroes).
 */
static void test_snapshot_table(void **state)
{
        struct builder *b = malloc(sizeof(*b));
        const size_t table = 8 * C, big = 80u << 20;
        uint8_t *m;
        size_t off;
        unsigned n;
        struct ia_image *img = NULL;
        struct ia_error err;

        (void)state;
        build(b, 3, 8 * C, false);
        link_l2(b);
        put_be32(b->buf + 60, 2);
        put_be64(b->buf + 64, table);
        off = put_snap(b->buf, table, 1024, 1, 3);
        put_snap(b->buf, off, 16, 1, 0);
        img = must_open(b);
        assert_true(img->flags & IA_IMG_SNAPSHOTS);
        ia_image_free(img);
        put_snap(b->buf, off, 1025, 1, 0); /* the second entry: too much extra data */
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);

        /* 64 MiB: entries of 40 + 0xffff + 0xfff0 bytes (131111 with padding) */
        m = calloc(1, big);
        assert_non_null(m);
        memcpy(m, b->buf, 8 * C);
        off = table;
        for (n = 0; n < 511; n++)
                off = put_snap(m, off, 0, 0xffff, 0xfff0);
        /* the file ends there: 2970 more entries of zeroes (40 bytes each) still fit, 2971
         * do not (qemu 7.2 agrees) */
        put_be32(m + 60, 511 + 2970);
        assert_int_equal(open_buf(&ctx, m, off, off, &img, &err), 0);
        ia_image_free(img);
        img = NULL;
        put_be32(m + 60, 511 + 2971);
        ia_error_clear(&err);
        assert_int_equal(open_buf(&ctx, m, off, off, &img, &err), -1);
        assert_int_equal(err.cat, IA_ERR_CORRUPT);
        assert_null(img);
        /* a 512th entry in the file crosses 64 MiB by itself */
        put_snap(m, off, 0, 0xffff, 0xfff0);
        put_be32(m + 60, 512);
        ia_error_clear(&err);
        assert_int_equal(open_buf(&ctx, m, big, big, &img, &err), -1);
        assert_int_equal(err.cat, IA_ERR_CORRUPT);
        put_be32(m + 60, 511);
        assert_int_equal(open_buf(&ctx, m, big, big, &img, &err), 0);
        ia_image_free(img);
        free(m);
        free(b);
}

/* put_bitmap: directory entry i (32 bytes each) naming a 1-entry table at tab. */
static void put_bitmap(struct builder *b, unsigned i, uint64_t tab, uint32_t flags, const char *nm)
{
        uint8_t *e = b->buf + 8 * C + 32 * i;

        memset(e, 0, 32);
        put_be64(e, tab);
        put_be32(e + 8, 1);
        put_be32(e + 12, flags);
        e[16] = 1;  /* dirty tracking */
        e[17] = 16; /* granularity 64 KiB */
        e[19] = 2;  /* name size */
        memcpy(e + 24, nm, 2);
}

/*
 * Persistent bitmaps are not mapped, but qemu loads them at open: a broken
 * directory, a bitmap breaking the constraints, two usable bitmaps of one
 * name or a malformed table entry make it refuse the image.
 */
static void test_bitmap_directory(void **state)
{
        struct builder *b = malloc(sizeof(*b));
        struct ia_image *img;

        (void)state;
#define BITMAPS(n)                                                                                 \
        do {                                                                                       \
                build(b, 3, 8 * C, false);                                                         \
                link_l2(b);                                                                        \
                put_be64(b->buf + 88, 1); /* autoclear: bitmaps */                                 \
                put_be32(b->buf + 104, 0x23852875);                                                \
                put_be32(b->buf + 108, 24);                                                        \
                put_be32(b->buf + 112, n);                                                         \
                put_be64(b->buf + 120, 32 * (n));                                                  \
                put_be64(b->buf + 128, 8 * C);                                                     \
                put_bitmap(b, 0, 9 * C, 0, "aa");                                                  \
                put_bitmap(b, 1, 10 * C, 0, "ab");                                                 \
        } while (0)

        BITMAPS(2);
        img = must_open(b);
        ia_image_free(img);
        BITMAPS(1); /* more entries than listed */
        put_be64(b->buf + 120, 64);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        BITMAPS(2); /* fewer */
        put_be64(b->buf + 120, 32);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        BITMAPS(2); /* an entry cut by the directory's end */
        put_be64(b->buf + 120, 60);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        BITMAPS(2);
        put_be64(b->buf + 120, 0);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        BITMAPS(2);
        put_bitmap(b, 1, 10 * C, 0, "aa"); /* same name, both usable */
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        put_bitmap(b, 1, 10 * C, 1, "aa"); /* the second in use: qemu skips it */
        img = must_open(b);
        ia_image_free(img);
        BITMAPS(2);
        b->buf[8 * C + 17] = 8; /* granularity below 512 */
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        BITMAPS(2);
        put_be64(b->buf + 9 * C, 11 * C | 2); /* reserved bit in a table entry */
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        put_bitmap(b, 0, 9 * C, 1, "aa"); /* in use: its table is never read */
        img = must_open(b);
        ia_image_free(img);
        BITMAPS(2);
        put_be64(b->buf + 9 * C, 11 * C + 8); /* unaligned data cluster */
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        BITMAPS(2);
        put_be64(b->buf + 88, 0); /* autoclear bit clear: qemu ignores the bitmaps */
        put_be64(b->buf + 9 * C, 11 * C | 2);
        img = must_open(b);
        ia_image_free(img);
#undef BITMAPS
        free(b);
}

static void test_data_file(void **state)
{
        struct builder *b = malloc(sizeof(*b)), *d = malloc(sizeof(*d));
        struct memres res = {.data = d};
        struct ia_resolver r = {.open = mem_open, .opaque = &res};
        struct ia_open_ctx c = {.resolver = &r, .compat = 702};
        struct ia_image *img = NULL;
        struct ia_bstatus st;
        struct ia_error err;

        (void)state;
        memset(d, 0, sizeof(*d));
        d->len = 8 * C;
        build(b, 3, 8 * C, false);
        link_l2(b);
        put_be64(b->buf + 72, 1u << 2);
        put_be32(b->buf + 104, 0x44415441);
        put_be32(b->buf + 108, 5);
        memcpy(b->buf + 112, "d.raw", 5);
        set_l2(b, 0, 1ull << 63, 0); /* offset 0, COPIED: allocated */
        set_l2(b, 1, 0, 0);          /* offset 0: unallocated */
        set_l2(b, 2, 1ull << 63 | 2 * C, 0);
        set_l2(b, 3, 1ull << 63 | 5 * C, 0); /* host != guest */
        assert_int_equal(open_buf(&c, b->buf, b->len, b->len, &img, &err), 0);
        assert_true(img->flags & IA_IMG_EXTERNAL_DATA);
        status(img, 0, &st);
        assert_int_equal(st.flags, IA_BS_DATA | IA_BS_OFFSET);
        assert_int_equal(st.len, C);
        assert_int_equal(st.host_off, 0);
        assert_string_equal(st.file->name, "d.raw");
        status(img, C, &st);
        assert_int_equal(st.flags, 0);
        status(img, 2 * C, &st);
        assert_int_equal(st.host_off, 2 * C);
        assert_int_equal(img->drv->block_status(img, 3 * C, 5 * C, &st, &err), -1);
        ia_image_free(img);

        /* the file cannot be opened: the image cannot */
        img = NULL;
        assert_int_equal(open_buf(&ctx, b->buf, b->len, b->len, &img, &err), -1);
        assert_int_equal(err.cat, IA_ERR_MISSING);
        /* data file bit without a name */
        put_be32(b->buf + 104, 0);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        free(b);
        free(d);
}

static void test_malformed(void **state)
{
        struct builder *b = malloc(sizeof(*b));

        (void)state;
#define RESET()                                                                                    \
        do {                                                                                       \
                build(b, 3, 8 * C, false);                                                         \
                link_l2(b);                                                                        \
        } while (0)

        RESET();
        b->len = 50;
        assert_int_equal(open_fails(b), IA_ERR_TRUNCATED);
        RESET();
        b->len = 90;
        assert_int_equal(open_fails(b), IA_ERR_TRUNCATED);
        RESET();
        b->buf[3] = 0xfa;
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be32(b->buf + 4, 4);
        assert_int_equal(open_fails(b), IA_ERR_UNSUPPORTED);
        RESET();
        put_be32(b->buf + 20, 8);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be32(b->buf + 20, 22);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be32(b->buf + 36, 0xffffffff);
        assert_int_equal(open_fails(b), IA_ERR_LIMIT);
        RESET();
        put_be64(b->buf + 24, 1ull << 40); /* L1 too small for the size */
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be64(b->buf + 24, UINT64_MAX);
        assert_int_equal(open_fails(b), IA_ERR_LIMIT);
        RESET();
        put_be64(b->buf + 40, 1ull << 30); /* L1 past EOF */
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be64(b->buf + 40, 3 * C + 8); /* L1 unaligned */
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be64(b->buf + 3 * C, 1ull << 30); /* L2 past EOF */
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be64(b->buf + 48, 1ull << 30); /* refcount table past EOF */
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be32(b->buf + 56, 0);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be32(b->buf + 104, 0x12345678); /* extension running off the cluster */
        put_be32(b->buf + 108, C);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be32(b->buf + 104, 0xe2792aca); /* backing format too long */
        put_be32(b->buf + 108, 16);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be64(b->buf + 8, 500); /* extension area ends inside an extension header */
        put_be32(b->buf + 104, 0x12345678);
        put_be32(b->buf + 108, 384);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be64(b->buf + 72, 1u << 5);
        assert_int_equal(open_fails(b), IA_ERR_UNSUPPORTED);
        RESET();
        put_be32(b->buf + 96, 7);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be32(b->buf + 100, 100);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be32(b->buf + 100, C + 8);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be64(b->buf + 8, 400); /* backing name longer than the cluster allows */
        put_be32(b->buf + 16, 200);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be64(b->buf + 8, C + 1);
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be32(b->buf + 32, 3);
        assert_int_equal(open_fails(b), IA_ERR_UNSUPPORTED);
        RESET();
        put_be64(b->buf + 72, 1u << 4); /* extended L2 with 512-byte clusters */
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be32(b->buf + 100, 112);
        b->buf[104] = 1; /* zstd without the incompatible bit */
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be64(b->buf + 88, 2); /* data_file_raw without a data file */
        assert_int_equal(open_fails(b), IA_ERR_CORRUPT);
        RESET();
        put_be32(b->buf + 60, 70000);
        assert_int_equal(open_fails(b), IA_ERR_LIMIT);
#undef RESET
        free(b);
}

/* Every read failing in turn: open or map fails cleanly, never crashes. */
static void test_read_faults(void **state)
{
        struct builder *b = malloc(sizeof(*b));

        (void)state;
        build(b, 3, 8 * C, false);
        link_l2(b);
        set_l2(b, 0, 6 * C, 0);
        set_l2(b, 1, 1, 0);
        for (uint64_t n = 1; n < 20; n++) {
                struct ia_error err;
                struct ia_source *mem = ia_source_memory(b->buf, b->len, false, &err);
                struct ia_source *src = ia_source_faulty(mem, n, NULL, &err);
                struct ia_image *img = NULL;
                struct ia_file *f;
                struct ia_bstatus st;
                uint64_t off = 0;

                ia_source_unref(mem);
                assert_non_null(src);
                f = ia_file_new(src, "faulty.qcow2", &err);
                assert_non_null(f);
                if (ia_image_open(&ctx, f, "qcow2", &img, &err) < 0) {
                        assert_true(err.cat == IA_ERR_IO || err.cat == IA_ERR_TRUNCATED);
                        continue;
                }
                while (off < img->size) {
                        if (img->drv->block_status(img, off, img->size - off, &st, &err) < 0)
                                break;
                        assert_true(st.len > 0);
                        off += st.len;
                }
                ia_image_free(img);
        }
        free(b);
}

static void test_probe(void **state)
{
        uint8_t h[512] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 2};
        struct ia_probe p = {.head = h, .head_len = sizeof(h), .size = 1 << 20};

        (void)state;
        assert_int_equal(ia_drv_qcow2.probe(&p), 100);
        h[7] = 1; /* qcow v1 */
        assert_int_equal(ia_drv_qcow2.probe(&p), 0);
        h[7] = 3;
        p.head_len = 7;
        assert_int_equal(ia_drv_qcow2.probe(&p), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_types_and_runs),
            cmocka_unit_test(test_unallocated_l1),
            cmocka_unit_test(test_v2_zero_is_corrupt),
            cmocka_unit_test(test_unaligned_offsets),
            cmocka_unit_test(test_extended_l2),
            cmocka_unit_test(test_prealloc_heuristic),
            cmocka_unit_test(test_header_fields),
            cmocka_unit_test(test_snapshot_table),
            cmocka_unit_test(test_bitmap_directory),
            cmocka_unit_test(test_data_file),
            cmocka_unit_test(test_malformed),
            cmocka_unit_test(test_read_faults),
            cmocka_unit_test(test_probe),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
