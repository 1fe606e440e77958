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
 * qemu has no block status for bochs: its map is one data entry without a
 * host offset for the whole disk (the human layout fails on it), and that is
 * what we print.  So the driver only checks the header as qemu's open does
 * and sets the size; the catalog is never needed for the map and is not read.
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
        return 0;
}

static void bochs_close(struct ia_image *img)
{
        (void)img;
}

const struct ia_driver ia_drv_bochs = {
    .name = "bochs",
    .flags = 0,
    .probe = bochs_probe,
    .open = bochs_open,
    .block_status = NULL, /* qemu has none: all data, no offset */
    .close = bochs_close,
};
