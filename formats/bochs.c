/*
 * bochs: the "growing" redolog disks of the Bochs emulator (bximage), mapped
 * the way qemu 7.2's bochs driver sees them.
 *
 * Layout in brief: a 512-byte little-endian header (magic "Bochs Virtual HD
 * Image", type "Redolog", subtype "Growing", version 1.0 or 2.0, the header
 * size, which is also the catalog's offset, the catalog's entry count, the
 * bitmap and extent sizes in bytes, the disk size in bytes: at 84 in version
 * 1.0, at 88 in version 2.0), then the catalog (one 32-bit extent number per
 * extent, 0xffffffff unallocated), then the extents, each a sector bitmap
 * followed by its data.
 *
 * qemu has no block status for bochs (block/bochs.c has no
 * bdrv_co_block_status; qemu's block/io.c then answers "data, allocated" without an
 * offset for a format driver): its map is one data entry without a host
 * offset for the whole disk (the human layout fails on it), and that is what
 * we print by default.  Then the driver only checks the header as qemu's open
 * does and sets the size; the catalog is not read.
 *
 * The true map (ctx->true_map, `imgaudit map --true-map`) tells what qemu's
 * read gives, sector by sector.  qemu reads sector s of extent i as: catalog
 * entry 0xffffffff: zeroes; else the extent's bitmap starts at
 *   data = header + 4 * catalog entries (32-bit, as qemu), blocks =
 *   ceil(bitmap / 512) + ceil(extent / 512) (32-bit: a bitmap size of 0 is
 *   2^23 sectors), bitmap = data + 512 * entry * blocks,
 * bit (s % 8) of its byte s / 8 set: the sector is at bitmap + 512 *
 * (ceil(bitmap / 512) + s); clear: zeroes.  Bytes past the end of the file
 * (catalog, bitmap) read as zero, as in qemu.  So unallocated extents and
 * sectors whose bit is clear are zero (not data), allocated sectors are data
 * at their host offset; a sector whose data lies past the end of the file
 * reads as zero in qemu and gets the core's data-past-eof finding.  The
 * catalog is read whole at open (at most 2^20 entries, 4 MiB); the bitmap of
 * one extent (at most 2 KiB) per answer.
 *
 * Not supported: nothing qemu reads.  Like qemu, the "Undoable" and
 * "Volatile" subtypes are not bochs images (they probe as raw).
 */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "image.h"
#include "banned.h"

#define BOCHS_HEADER_LEN  512u
#define BOCHS_V1          0x00010000u
#define BOCHS_V2          0x00020000u
#define BOCHS_MAX_CATALOG 0x100000u /* qemu: the largest bximage makes (~8 TB) */
#define BOCHS_MAX_EXTENT  0x800000u
#define BOCHS_MIN_EXTENT  512u
#define BOCHS_UNALLOCATED 0xffffffffu /* catalog entry of an extent never written */

/* What the true map needs (ctx->true_map only); the 32-bit fields as qemu keeps them. */
struct bochs {
        uint32_t *catalog;
        uint32_t catalog_size;
        uint32_t data_offset;   /* header + 4 * catalog_size */
        uint32_t bitmap_blocks; /* sectors of bitmap before each extent's data */
        uint32_t extent_blocks; /* sectors of data per extent */
        uint32_t extent_size;   /* bytes */
};

/*
 * Is the fixed C string s at off, its NUL included?  qemu compares the
 * fields with strcmp(), which is equal exactly when these bytes match.
 */
static bool has_string(const uint8_t *h, size_t off, const char *s)
{
        return memcmp(h + off, s, strlen(s) + 1) == 0;
}

/* The header checks of qemu's bochs_probe() and bochs_open(). */
static bool header_ok(const uint8_t *h)
{
        uint32_t version = ia_le32(h + 64);

        return has_string(h, 0, "Bochs Virtual HD Image") && has_string(h, 32, "Redolog") &&
               has_string(h, 48, "Growing") && (version == BOCHS_V1 || version == BOCHS_V2);
}

/* qemu probes a zero-filled 2048-byte buffer, so a short file is padded with zeroes. */
static int bochs_probe(const struct ia_probe *p)
{
        uint8_t h[BOCHS_HEADER_LEN] = {0};

        if (p->size == 0)
                return 0;
        memcpy(h, p->head, p->head_len < sizeof(h) ? p->head_len : sizeof(h));
        return header_ok(h) ? 100 : 0;
}

static int read_catalog(struct ia_image *img, const uint8_t *h, uint32_t catalog, uint32_t extent,
                        struct ia_error *err);

static int bochs_open(struct ia_image *img, struct ia_error *err)
{
        struct ia_file *f = img->file;
        uint8_t h[BOCHS_HEADER_LEN] = {0};
        uint64_t disk, sectors, per_extent, need;
        uint32_t catalog, extent;
        int64_t n;

        /* Past the end of the file reads as zeroes, as in qemu. */
        n = ia_read_upto(f->src, h, sizeof(h), 0, err);
        if (n < 0) {
                ia_error_prefix(err, "bochs: reading the header of '%s'", f->name);
                return -1;
        }
        if (!header_ok(h))
                return ia_error_set(err, IA_ERR_CORRUPT, "bochs: '%s' is not a bochs image",
                                    f->name);
        disk = ia_le64(h + (ia_le32(h + 64) == BOCHS_V1 ? 84 : 88));
        catalog = ia_le32(h + 72);
        extent = ia_le32(h + 80);
        if (catalog > BOCHS_MAX_CATALOG)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "bochs: catalog of %u entries in '%s' exceeds %u entries",
                                    catalog, f->name, BOCHS_MAX_CATALOG);
        if (extent < BOCHS_MIN_EXTENT || (extent & (extent - 1)) != 0 || extent > BOCHS_MAX_EXTENT)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "bochs: extent size %u in '%s' is not a power of two "
                                    "between %u and %u",
                                    extent, f->name, BOCHS_MIN_EXTENT, BOCHS_MAX_EXTENT);
        sectors = disk / 512;
        per_extent = extent / 512;
        need = sectors / per_extent + (sectors % per_extent != 0);
        if (catalog < need)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "bochs: catalog of %u entries in '%s' is too small for a disk "
                                    "of %llu bytes (%llu extents of %u bytes)",
                                    catalog, f->name, (unsigned long long)disk,
                                    (unsigned long long)need, extent);
        /* At most 2^20 extents of 8 MiB: 8 TiB, far below any limit. */
        img->size = sectors * 512;
        img->cluster_size = 0;
        img->cow = false;
        if (img->ctx && img->ctx->true_map)
                return read_catalog(img, h, catalog, extent, err);
        return 0;
}

/* The catalog and qemu's derived numbers, for the true map. */
static int read_catalog(struct ia_image *img, const uint8_t *h, uint32_t catalog, uint32_t extent,
                        struct ia_error *err)
{
        struct ia_file *f = img->file;
        uint32_t header = ia_le32(h + 68);
        struct bochs *s;
        uint8_t *raw;
        int64_t n;

        s = calloc(1, sizeof(*s));
        raw = malloc(catalog ? (size_t)catalog * 4 : 1);
        if (!s || !raw) {
                free(s);
                free(raw);
                return ia_error_set(err, IA_ERR_NOMEM, "bochs: out of memory for the catalog");
        }
        /* A catalog past the end of the file reads as zeroes (extent 0), as in qemu. */
        n = ia_read_upto(f->src, raw, (size_t)catalog * 4, header, err);
        if (n < 0) {
                ia_error_prefix(err, "bochs: reading the catalog of '%s'", f->name);
                free(raw);
                free(s);
                return -1;
        }
        memset(raw + n, 0, (size_t)catalog * 4 - (size_t)n);
        /* In place: entry i's 4 bytes become catalog[i]. */
        s->catalog = (uint32_t *)(void *)raw;
        for (uint32_t i = 0; i < catalog; i++)
                s->catalog[i] = ia_le32(raw + 4 * (size_t)i);
        s->catalog_size = catalog;
        s->data_offset = header + catalog * 4;
        s->bitmap_blocks = 1 + (ia_le32(h + 76) - 1) / 512;
        s->extent_blocks = 1 + (extent - 1) / 512;
        s->extent_size = extent;
        img->priv = s;
        return 0;
}

/* The true map: one run of sectors whose bitmap bits agree, inside one extent. */
static int bochs_block_status(struct ia_image *img, uint64_t off, uint64_t len,
                              struct ia_bstatus *st, struct ia_error *err)
{
        struct bochs *s = img->priv;
        uint8_t bits[BOCHS_MAX_EXTENT / 512 / 8];
        uint64_t idx, first, last, sec, bitmap, step;
        uint32_t entry;
        int64_t n;
        bool set;

        if (!s) {
                ia_bs_coarse(img, off, st);
                return 0;
        }
        idx = off / s->extent_size;
        first = (off % s->extent_size) / 512;
        last = ia_min_u64(s->extent_size - off % s->extent_size, len);
        last = first + (last + 511) / 512; /* one past the last sector asked */
        entry = s->catalog[idx];           /* idx < catalog size: checked at open */
        if (entry == BOCHS_UNALLOCATED) {
                st->len = (last - first) * 512;
                st->flags = IA_BS_ZERO;
                return 0;
        }
        step = (uint64_t)(uint32_t)(s->extent_blocks + s->bitmap_blocks) * 512;
        if (!ia_mul_ok(step, entry, &bitmap) || !ia_add_ok(bitmap, s->data_offset, &bitmap) ||
            bitmap > INT64_MAX - (uint64_t)s->bitmap_blocks * 512 - s->extent_size)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "bochs: extent %llu of '%s' (catalog entry %u) lies past "
                                    "2^63 bytes",
                                    (unsigned long long)idx, img->file->name, entry);
        n = ia_read_upto(img->file->src, bits + first / 8, (size_t)((last - 1) / 8 - first / 8 + 1),
                         bitmap + first / 8, err);
        if (n < 0) {
                ia_error_prefix(err, "bochs: reading the bitmap of extent %llu of '%s'",
                                (unsigned long long)idx, img->file->name);
                return -1;
        }
        /* Past the end of the file the bitmap reads as zero: unallocated. */
        memset(bits + first / 8 + n, 0, (size_t)((last - 1) / 8 - first / 8 + 1 - (uint64_t)n));
        set = (bits[first / 8] >> (first % 8)) & 1;
        for (sec = first + 1; sec < last; sec++)
                if (((bits[sec / 8] >> (sec % 8)) & 1) != set)
                        break;
        st->len = (sec - first) * 512;
        if (set) {
                st->flags = IA_BS_DATA | IA_BS_OFFSET;
                st->host_off = bitmap + 512 * ((uint64_t)s->bitmap_blocks + first);
                st->file = img->file;
        } else {
                st->flags = IA_BS_ZERO;
        }
        return 0;
}

static void bochs_close(struct ia_image *img)
{
        struct bochs *s = img->priv;

        if (s) {
                free(s->catalog);
                free(s);
        }
        img->priv = NULL;
}

const struct ia_driver ia_drv_bochs = {
    .name = "bochs",
    .flags = 0,
    .probe = bochs_probe,
    .open = bochs_open,
    .block_status = bochs_block_status, /* qemu has none: its answer unless true_map */
    .close = bochs_close,
};
