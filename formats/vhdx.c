/*
 * vhdx: Microsoft Hyper-V VHDX images (fixed, dynamic, differencing).
 *
 * Why: qemu's vhdx driver has no block status, so qemu-img map prints one
 * data entry without offset for the whole disk.  We print the true map
 * instead, in every compat mode: this is a documented difference.
 *
 * Layout (little-endian, from the published VHDX specification):
 *   0       file type identifier, "vhdxfile" (64 KiB)
 *   64 KiB  header 1, 128 KiB header 2: "head", CRC-32C over 4 KiB, sequence
 *           number, log GUID (non-zero: a log must be replayed), version 1.
 *           The valid header with the higher sequence number is current.
 *   192 KiB region table 1, 256 KiB region table 2: "regi", CRC-32C over
 *           64 KiB, entries (GUID, file offset, length, required) locating
 *           the BAT and the metadata region.
 *   metadata region: a 64 KiB table ("metadata", entries of GUID, offset,
 *           length, flags) and the items: file parameters (block size,
 *           LeaveBlocksAllocated, HasParent), virtual disk size, logical and
 *           physical sector sizes, parent locator (UTF-16LE key/value pairs).
 *   BAT:    64-bit entries, state in bits 0-2, file offset in MiB in bits
 *           20-63; after every chunk ratio (2^23 * logical sector size /
 *           block size) payload entries comes one sector bitmap entry.
 *           A sector bitmap block (1 MiB) has one bit per logical sector,
 *           bit 0 of byte 0 first: set = the sector is in this file.
 *
 * What the map says (our decisions, qemu has no answer to follow):
 *   FULLY_PRESENT              data at the block's file offset, with RECURSE
 *                              (file holes in preallocated space show as
 *                              data+zero, as qemu does for vpc fixed, vdi
 *                              static and vmdk flat extents);
 *   PARTIALLY_PRESENT          per sector: bit set = data as above, bit clear
 *                              = not allocated here (the parent decides);
 *   NOT_PRESENT, UNDEFINED     differencing: not allocated here (parent);
 *                              otherwise zero, present (like vpc and vdi);
 *   ZERO, UNMAPPED             zero, present.
 * A pending log (non-zero log GUID) is replayed in memory (vhdxlog.c):
 * everything past the headers is read through an overlay that reads as the
 * file would after replay, never writing it; the image is flagged
 * IA_IMG_PENDING_LOG with a finding (qemu refuses to open such an image
 * read-only, and replays it when writable).  Data whose bytes the log wrote
 * has no offset in the file (data without offset); zeroes the log wrote, or
 * the file's extension, are data+zero without offset.
 *
 * The parent locator's parent_linkage (or parent_linkage2) must name the
 * parent's data write GUID: the chain opener compares them (ident).
 *
 * Not supported: writing.  LeaveBlocksAllocated does not change the map
 * (the BAT states say it all).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "text.h"
#include "image.h"
#include "window.h"
#include "vhdxlog.h"
#include "banned.h"

#define KIB 1024ull
#define MIB (1024ull * 1024)

#define VHDX_HEADER1_OFF   (64 * KIB)
#define VHDX_HEADER2_OFF   (128 * KIB)
#define VHDX_HEADER_SIZE   (4 * KIB)
#define VHDX_REGION1_OFF   (192 * KIB)
#define VHDX_REGION2_OFF   (256 * KIB)
#define VHDX_REGION_SIZE   (64 * KIB)
#define VHDX_MAX_REGIONS   2047
#define VHDX_META_TBL_SIZE (64 * KIB)
#define VHDX_MAX_META      2047
#define VHDX_MAX_LOCATOR   (64 * KIB)
#define VHDX_MAX_SIZE      (64ull * 1024 * 1024 * MIB) /* 64 TiB */
#define VHDX_BAT_SLICE     1024
#define VHDX_SCAN_CHUNK    8192
#define VHDX_BITMAP_SLICE  512

/* Payload block states. */
#define VHDX_NOT_PRESENT 0
#define VHDX_UNDEFINED   1
#define VHDX_ZERO        2
#define VHDX_UNMAPPED    3
#define VHDX_FULLY       6
#define VHDX_PARTIALLY   7
/* States 4 and 5 are reserved (neither the spec nor qemu defines them). */
#define VHDX_RESERVED4 4
#define VHDX_RESERVED5 5
/* Sector bitmap block state. */
#define VHDX_SB_PRESENT 6

/* The metadata items found (the seen bits of vhdx_read_meta). */
#define VHDX_M_PARAMS   0x01u /* file parameters */
#define VHDX_M_SIZE     0x02u /* virtual disk size */
#define VHDX_M_LSS      0x04u /* logical sector size */
#define VHDX_M_PSS      0x08u /* physical sector size */
#define VHDX_M_LOCATOR  0x10u /* parent locator */
#define VHDX_M_DISKID   0x20u /* virtual disk id */
#define VHDX_M_REQUIRED (VHDX_M_PARAMS | VHDX_M_SIZE | VHDX_M_LSS | VHDX_M_PSS)

/* Flags of entries and items. */
#define VHDX_REGION_REQUIRED 0x1u /* region table entry: must be understood */
#define VHDX_META_REQUIRED   0x4u /* metadata table entry: IsRequired */
#define VHDX_HAS_PARENT      0x2u /* file parameters: a differencing disk */

struct vhdx_guid {
        uint32_t d1;
        uint16_t d2, d3;
        uint8_t d4[8];
};

static const struct vhdx_guid vhdx_bat_guid = {
    0x2dc27766, 0xf623, 0x4200, {0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08}};
static const struct vhdx_guid vhdx_meta_guid = {
    0x8b7ca206, 0x4790, 0x4b9a, {0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e}};
static const struct vhdx_guid vhdx_params_guid = {
    0xcaa16737, 0xfa36, 0x4d43, {0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b}};
static const struct vhdx_guid vhdx_size_guid = {
    0x2fa54224, 0xcd1b, 0x4876, {0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8}};
static const struct vhdx_guid vhdx_lss_guid = {
    0x8141bf1d, 0xa96f, 0x4709, {0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f}};
static const struct vhdx_guid vhdx_pss_guid = {
    0xcda348c7, 0x445d, 0x4471, {0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56}};
static const struct vhdx_guid vhdx_diskid_guid = {
    0xbeca12ab, 0xb2e6, 0x4523, {0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46}};
static const struct vhdx_guid vhdx_locator_guid = {
    0xa8d35f2d, 0xb30b, 0x454d, {0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c}};
static const struct vhdx_guid vhdx_loctype_guid = {
    0xb04aefb7, 0xd19e, 0x4a81, {0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13}};

struct vhdx_state {
        uint64_t bat_off;     /* file offset of the BAT */
        uint64_t bat_entries; /* entries the disk needs */
        uint32_t block_size;
        uint32_t lss;         /* logical sector size */
        uint64_t chunk_ratio; /* payload blocks per sector bitmap block */
        uint64_t disk_size;   /* virtual disk size from the metadata */
        bool diff;
        /* What the driver reads: the file, or the file as the log replay leaves it. */
        struct ia_source *src;
        bool replayed;
        struct ia_window bat; /* the BAT, read in aligned slices */
        /* Cached sector bitmap bytes. */
        uint8_t bmp[VHDX_BITMAP_SLICE];
        uint64_t bmp_host;
        bool bmp_valid;
};

/* The checksum of buf with its 4-byte checksum field at 4 taken as zero. */
static bool vhdx_crc_ok(uint8_t *buf, size_t len)
{
        uint32_t want = ia_le32(buf + 4);
        bool ok;

        memset(buf + 4, 0, 4);
        ok = ia_vhdx_crc32c(buf, len) == want;
        buf[4] = (uint8_t)want;
        buf[5] = (uint8_t)(want >> 8);
        buf[6] = (uint8_t)(want >> 16);
        buf[7] = (uint8_t)(want >> 24);
        return ok;
}

static bool vhdx_guid_eq(const uint8_t *p, const struct vhdx_guid *g)
{
        return ia_le32(p) == g->d1 && ia_le16(p + 4) == g->d2 && ia_le16(p + 6) == g->d3 &&
               memcmp(p + 8, g->d4, 8) == 0;
}

static bool vhdx_zero(const uint8_t *p, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (p[i])
                        return false;
        return true;
}

static int vhdx_probe(const struct ia_probe *p)
{
        if (p->head_len >= 8 && memcmp(p->head, "vhdxfile", 8) == 0)
                return 100;
        return 0;
}

/* A VHDX identity: the data write GUID g as a child's parent_linkage spells it. */
static void vhdx_ident(char *out, const uint8_t *g)
{
        snprintf(out, IA_IDENT_LEN, "guid {%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}",
                 ia_le32(g), ia_le16(g + 4), ia_le16(g + 6), g[8], g[9], g[10], g[11], g[12], g[13],
                 g[14], g[15]);
}

/* Is the UTF-16LE key k[0..klen) the ASCII string s? */
static bool vhdx_key_is(const uint8_t *k, size_t klen, const char *s)
{
        size_t n = strlen(s);

        if (klen != 2 * n)
                return false;
        for (size_t i = 0; i < n; i++)
                if (ia_le16(k + 2 * i) != (uint8_t)s[i])
                        return false;
        return true;
}

/* The parent's name from a parent locator item loc[0..len). */
static int vhdx_parse_locator(struct ia_image *img, const uint8_t *loc, uint32_t len,
                              struct ia_error *err)
{
        static const char *const keys[] = {"relative_path", "absolute_win32_path", "volume_path"};
        unsigned count;
        char *name;
        int ret = 0;

        if (len < 20)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: parent locator of %u bytes is shorter than its header",
                                    len);
        if (!vhdx_guid_eq(loc, &vhdx_loctype_guid))
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "vhdx: parent locator type is not the VHDX locator type");
        count = ia_le16(loc + 18);
        if (20 + (uint64_t)count * 12 > len)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: parent locator key/value count %u overruns the "
                                    "locator (%u bytes)",
                                    count, len);
        name = malloc(VHDX_MAX_LOCATOR * 2 + 1);
        if (!name)
                return ia_error_set(err, IA_ERR_NOMEM, "vhdx: out of memory for a parent name");
        /* parent_linkage (and parent_linkage2): the parent's data write GUID. */
        for (unsigned i = 0; i < count; i++) {
                const uint8_t *e = loc + 20 + 12 * i;
                uint32_t ko = ia_le32(e), vo = ia_le32(e + 4);
                uint16_t kl = ia_le16(e + 8), vl = ia_le16(e + 10);
                int which;
                char v[IA_IDENT_LEN - 5];
                long n;

                if (!ia_range_in(ko, kl, len) || !ia_range_in(vo, vl, len))
                        continue; /* reported below */
                if (vhdx_key_is(loc + ko, kl, "parent_linkage"))
                        which = 0;
                else if (vhdx_key_is(loc + ko, kl, "parent_linkage2"))
                        which = 1;
                else
                        continue;
                n = ia_utf16_to_utf8(loc + vo, vl, false, v, sizeof(v));
                if (n <= 0)
                        continue;
                for (long c = 0; c < n; c++)
                        if (v[c] >= 'A' && v[c] <= 'Z')
                                v[c] = (char)(v[c] - 'A' + 'a');
                snprintf(img->parent_ident[which], IA_IDENT_LEN, "guid %.*s", (int)n, v);
        }
        if (!img->parent_ident[0][0] && img->parent_ident[1][0]) {
                memcpy(img->parent_ident[0], img->parent_ident[1], IA_IDENT_LEN);
                img->parent_ident[1][0] = '\0';
        }
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
                for (unsigned i = 0; i < count; i++) {
                        const uint8_t *e = loc + 20 + 12 * i;
                        uint32_t ko = ia_le32(e), vo = ia_le32(e + 4);
                        uint16_t kl = ia_le16(e + 8), vl = ia_le16(e + 10);
                        long n;

                        if (!ia_range_in(ko, kl, len) || !ia_range_in(vo, vl, len)) {
                                ret = ia_error_set(err, IA_ERR_CORRUPT,
                                                   "vhdx: parent locator entry %u lies outside the "
                                                   "locator (%u bytes)",
                                                   i, len);
                                goto out;
                        }
                        if (!vhdx_key_is(loc + ko, kl, keys[k]))
                                continue;
                        n = ia_utf16_to_utf8(loc + vo, vl, false, name, VHDX_MAX_LOCATOR * 2 + 1);
                        if (n <= 0)
                                continue;
                        if (k == 0) /* a Windows relative path: ".\dir\name" */
                                n = (long)ia_windows_relative_path(name, (size_t)n);
                        if (n <= 0)
                                continue;
                        ret = ia_image_set_backing(img, name, (size_t)n, "vhdx", err);
                        goto out;
                }
        }
        ret = ia_error_set(err, IA_ERR_CORRUPT, "vhdx: parent locator names no parent path");
out:
        free(name);
        return ret;
}

/* Read the current header (the valid one with the higher sequence number). */
static int vhdx_read_headers(struct ia_image *img, uint8_t *hdr, struct ia_error *err)
{
        bool valid[2];
        uint64_t seq[2];
        uint8_t *h;
        int cur, ret = -1;

        h = malloc(2 * VHDX_HEADER_SIZE);
        if (!h)
                return ia_error_set(err, IA_ERR_NOMEM, "vhdx: out of memory for the headers");
        for (int i = 0; i < 2; i++) {
                uint8_t *hi = h + i * VHDX_HEADER_SIZE;

                if (ia_read(img->file->src, hi, VHDX_HEADER_SIZE,
                            i ? VHDX_HEADER2_OFF : VHDX_HEADER1_OFF, "vhdx header", err) < 0)
                        goto out;
                valid[i] = memcmp(hi, "head", 4) == 0 && vhdx_crc_ok(hi, VHDX_HEADER_SIZE) &&
                           ia_le16(hi + 66) == 1;
                seq[i] = ia_le64(hi + 8);
        }
        if (!valid[0] && !valid[1]) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vhdx: neither header has a valid signature, checksum and version");
                goto out;
        }
        if (valid[0] && valid[1]) {
                if (seq[0] != seq[1]) {
                        cur = seq[0] > seq[1] ? 0 : 1;
                } else if (memcmp(h, h + VHDX_HEADER_SIZE, VHDX_HEADER_SIZE) == 0) {
                        cur = 0; /* identical copies, as Disk2VHD writes them */
                } else {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "vhdx: both headers have sequence number %llu but differ",
                                     (unsigned long long)seq[0]);
                        goto out;
                }
        } else {
                cur = valid[0] ? 0 : 1;
        }
        memcpy(hdr, h + cur * VHDX_HEADER_SIZE, VHDX_HEADER_SIZE);
        ret = 0;
out:
        free(h);
        return ret;
}

/* Find the BAT and the metadata region in a valid region table. */
static int vhdx_read_regions(struct ia_source *src, uint64_t *bat_off, uint64_t *bat_len,
                             uint64_t *meta_off, uint64_t *meta_len, struct ia_error *err)
{
        uint8_t *rt;
        uint32_t count;
        int ret = -1, which;
        bool have_bat = false, have_meta = false;

        rt = malloc(VHDX_REGION_SIZE);
        if (!rt)
                return ia_error_set(err, IA_ERR_NOMEM, "vhdx: out of memory for the region table");
        /* Table 1, or table 2 if table 1 is damaged. */
        for (which = 0; which < 2; which++) {
                if (ia_read(src, rt, VHDX_REGION_SIZE, which ? VHDX_REGION2_OFF : VHDX_REGION1_OFF,
                            "vhdx region table", err) < 0)
                        goto out;
                if (memcmp(rt, "regi", 4) == 0 && vhdx_crc_ok(rt, VHDX_REGION_SIZE))
                        break;
        }
        if (which == 2) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vhdx: neither region table has a valid signature and checksum");
                goto out;
        }
        count = ia_le32(rt + 8);
        if (count > VHDX_MAX_REGIONS) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vhdx: region table entry count %u exceeds the limit of %u", count,
                             VHDX_MAX_REGIONS);
                goto out;
        }
        for (uint32_t i = 0; i < count; i++) {
                const uint8_t *e = rt + 16 + 32 * i;
                uint64_t off = ia_le64(e + 16), len = ia_le32(e + 24);
                bool required = ia_le32(e + 28) & VHDX_REGION_REQUIRED;

                if (vhdx_guid_eq(e, &vhdx_bat_guid) || vhdx_guid_eq(e, &vhdx_meta_guid)) {
                        bool bat = vhdx_guid_eq(e, &vhdx_bat_guid);

                        if (bat ? have_bat : have_meta) {
                                ia_error_set(err, IA_ERR_CORRUPT,
                                             "vhdx: the %s region appears twice",
                                             bat ? "BAT" : "metadata");
                                goto out;
                        }
                        if (off < MIB || off % MIB || len % MIB || len == 0) {
                                ia_error_set(err, IA_ERR_CORRUPT,
                                             "vhdx: %s region at %llu (%llu bytes) is not aligned "
                                             "to 1 MiB",
                                             bat ? "BAT" : "metadata", (unsigned long long)off,
                                             (unsigned long long)len);
                                goto out;
                        }
                        if (bat) {
                                *bat_off = off;
                                *bat_len = len;
                                have_bat = true;
                        } else {
                                *meta_off = off;
                                *meta_len = len;
                                have_meta = true;
                        }
                } else if (required) {
                        ia_error_set(err, IA_ERR_UNSUPPORTED,
                                     "vhdx: region table entry %u is an unknown required region",
                                     i);
                        goto out;
                }
        }
        if (!have_bat || !have_meta) {
                ia_error_set(err, IA_ERR_CORRUPT, "vhdx: the region table lacks the %s region",
                             have_bat ? "metadata" : "BAT");
                goto out;
        }
        ret = 0;
out:
        free(rt);
        return ret;
}

/* Read metadata item bytes [off, off+len) of the region at meta_off. */
static int vhdx_read_item(struct ia_source *src, uint64_t meta_off, uint64_t meta_len, uint32_t off,
                          uint32_t len, void *buf, const char *what, struct ia_error *err)
{
        if (off < VHDX_META_TBL_SIZE || !ia_range_in(off, len, meta_len))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: metadata item %s at %u (%u bytes) lies outside the "
                                    "metadata region (%llu bytes)",
                                    what, off, len, (unsigned long long)meta_len);
        return ia_read(src, buf, len, meta_off + off, what, err);
}

struct vhdx_meta {
        uint32_t block_size, flags, lss, pss;
        uint64_t size;
        uint32_t loc_off, loc_len;
        bool have_loc;
};

static int vhdx_read_metadata(struct ia_source *src, uint64_t meta_off, uint64_t meta_len,
                              struct vhdx_meta *m, struct ia_error *err)
{
        uint8_t *tbl, b[8];
        unsigned count, seen = 0;
        int ret = -1;

        tbl = malloc(VHDX_META_TBL_SIZE);
        if (!tbl)
                return ia_error_set(err, IA_ERR_NOMEM,
                                    "vhdx: out of memory for the metadata table");
        if (ia_read(src, tbl, VHDX_META_TBL_SIZE, meta_off, "vhdx metadata table", err) < 0)
                goto out;
        if (memcmp(tbl, "metadata", 8) != 0) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vhdx: metadata table at %llu lacks the 'metadata' signature",
                             (unsigned long long)meta_off);
                goto out;
        }
        count = ia_le16(tbl + 10);
        if (count > VHDX_MAX_META) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vhdx: metadata entry count %u exceeds the limit of %u", count,
                             VHDX_MAX_META);
                goto out;
        }
        for (unsigned i = 0; i < count; i++) {
                const uint8_t *e = tbl + 32 + 32 * i;
                uint32_t off = ia_le32(e + 16), len = ia_le32(e + 20), fl = ia_le32(e + 24);
                unsigned bit;
                uint32_t need;
                const char *what;

                if (vhdx_guid_eq(e, &vhdx_params_guid)) {
                        bit = VHDX_M_PARAMS, need = 8, what = "file parameters";
                } else if (vhdx_guid_eq(e, &vhdx_size_guid)) {
                        bit = VHDX_M_SIZE, need = 8, what = "virtual disk size";
                } else if (vhdx_guid_eq(e, &vhdx_lss_guid)) {
                        bit = VHDX_M_LSS, need = 4, what = "logical sector size";
                } else if (vhdx_guid_eq(e, &vhdx_pss_guid)) {
                        bit = VHDX_M_PSS, need = 4, what = "physical sector size";
                } else if (vhdx_guid_eq(e, &vhdx_locator_guid)) {
                        bit = VHDX_M_LOCATOR, need = 0, what = "parent locator";
                } else if (vhdx_guid_eq(e, &vhdx_diskid_guid)) {
                        bit = VHDX_M_DISKID, need = 16, what = "virtual disk id";
                } else {
                        if (fl & VHDX_META_REQUIRED) {
                                ia_error_set(err, IA_ERR_UNSUPPORTED,
                                             "vhdx: metadata entry %u is an unknown required item",
                                             i);
                                goto out;
                        }
                        continue;
                }
                if (seen & bit) {
                        ia_error_set(err, IA_ERR_CORRUPT, "vhdx: metadata item %s appears twice",
                                     what);
                        goto out;
                }
                seen |= bit;
                if (len < need) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "vhdx: metadata item %s is %u bytes, less than %u", what, len,
                                     need);
                        goto out;
                }
                if (bit == VHDX_M_LOCATOR) {
                        if (off < VHDX_META_TBL_SIZE || !ia_range_in(off, len, meta_len)) {
                                ia_error_set(err, IA_ERR_CORRUPT,
                                             "vhdx: parent locator at %u (%u bytes) lies outside "
                                             "the metadata region (%llu bytes)",
                                             off, len, (unsigned long long)meta_len);
                                goto out;
                        }
                        m->loc_off = off;
                        m->loc_len = len;
                        m->have_loc = true;
                        continue;
                }
                if (bit == VHDX_M_DISKID)
                        continue;
                if (vhdx_read_item(src, meta_off, meta_len, off, need, b, what, err) < 0)
                        goto out;
                if (bit == VHDX_M_PARAMS) {
                        m->block_size = ia_le32(b);
                        m->flags = ia_le32(b + 4);
                } else if (bit == VHDX_M_SIZE) {
                        m->size = ia_le64(b);
                } else if (bit == VHDX_M_LSS) {
                        m->lss = ia_le32(b);
                } else {
                        m->pss = ia_le32(b);
                }
        }
        if ((seen & VHDX_M_REQUIRED) != VHDX_M_REQUIRED) {
                ia_error_set(err, IA_ERR_CORRUPT, "vhdx: the metadata lacks the %s item",
                             !(seen & VHDX_M_PARAMS) ? "file parameters"
                             : !(seen & VHDX_M_SIZE) ? "virtual disk size"
                             : !(seen & VHDX_M_LSS)  ? "logical sector size"
                                                     : "physical sector size");
                goto out;
        }
        ret = 0;
out:
        free(tbl);
        return ret;
}

/* Check every BAT entry the disk uses: known states, blocks inside the file. */
static int vhdx_scan_bat(struct vhdx_state *s, struct ia_error *err)
{
        uint64_t flen = ia_round_up(s->src->size, 512);
        bool partial = false; /* the current chunk has a partially present block */
        uint8_t *buf;
        int ret = -1;

        buf = malloc(VHDX_SCAN_CHUNK * 8);
        if (!buf)
                return ia_error_set(err, IA_ERR_NOMEM, "vhdx: out of memory for the BAT");
        for (uint64_t i = 0; i < s->bat_entries; i += VHDX_SCAN_CHUNK) {
                uint64_t n = ia_min_u64(VHDX_SCAN_CHUNK, s->bat_entries - i);

                if (ia_read(s->src, buf, n * 8, s->bat_off + i * 8, "vhdx block allocation table",
                            err) < 0)
                        goto out;
                for (uint64_t j = 0; j < n; j++) {
                        uint64_t idx = i + j, e = ia_le64(buf + 8 * j);
                        unsigned state = e & 7;
                        uint64_t off = (e >> 20) * MIB, need, pos;
                        bool bitmap = idx % (s->chunk_ratio + 1) == s->chunk_ratio;

                        if (bitmap && partial && state != VHDX_SB_PRESENT) {
                                ia_error_set(err, IA_ERR_CORRUPT,
                                             "vhdx: chunk %llu has partially present blocks but "
                                             "its sector bitmap block is not present",
                                             (unsigned long long)(idx / (s->chunk_ratio + 1)));
                                goto out;
                        }
                        if (bitmap) {
                                partial = false;
                                if (state != VHDX_NOT_PRESENT && state != VHDX_SB_PRESENT) {
                                        ia_error_set(err, IA_ERR_CORRUPT,
                                                     "vhdx: sector bitmap BAT entry %llu has the "
                                                     "invalid state %u",
                                                     (unsigned long long)idx, state);
                                        goto out;
                                }
                                if (state != VHDX_SB_PRESENT || !s->diff)
                                        continue;
                                need = MIB;
                        } else {
                                if (state == VHDX_RESERVED4 || state == VHDX_RESERVED5 ||
                                    (state == VHDX_PARTIALLY && !s->diff)) {
                                        ia_error_set(err, IA_ERR_CORRUPT,
                                                     "vhdx: payload BAT entry %llu has the "
                                                     "invalid state %u",
                                                     (unsigned long long)idx, state);
                                        goto out;
                                }
                                if (state == VHDX_PARTIALLY)
                                        partial = true;
                                if (state != VHDX_FULLY && state != VHDX_PARTIALLY)
                                        continue;
                                /* The last block of a disk whose size is not a
                                 * multiple of the block size need only hold
                                 * the disk's tail (qemu allocates no more);
                                 * entries past the disk are never read. */
                                pos = (idx - idx / (s->chunk_ratio + 1)) * s->block_size;
                                if (pos >= s->disk_size)
                                        continue;
                                need = ia_min_u64(s->block_size, s->disk_size - pos);
                        }
                        if (off == 0 || off > flen || need > flen - off) {
                                ia_error_set(
                                    err, IA_ERR_CORRUPT,
                                    "vhdx: BAT entry %llu points at %llu (+%llu), past the "
                                    "end of the file (%llu bytes)",
                                    (unsigned long long)idx, (unsigned long long)off,
                                    (unsigned long long)need, (unsigned long long)flen);
                                goto out;
                        }
                }
        }
        ret = 0;
out:
        free(buf);
        return ret;
}

/* The open after the log replay: everything is read from src (the file, or the overlay). */
static int vhdx_open_replayed(struct ia_image *img, struct ia_source *src, const uint8_t *hdr,
                              const struct ia_vhdx_log_info *log, struct ia_error *err)
{
        uint64_t bat_off = 0, bat_len = 0, meta_off = 0, meta_len = 0, blocks, chunks;
        struct vhdx_meta m = {0};
        struct vhdx_state *s;

        if (vhdx_read_regions(src, &bat_off, &bat_len, &meta_off, &meta_len, err) < 0)
                return -1;
        if (vhdx_read_metadata(src, meta_off, meta_len, &m, err) < 0)
                return -1;
        if (m.block_size < MIB || m.block_size > 256 * MIB || (m.block_size & (m.block_size - 1)))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: block size %u is not a power of two between 1 MiB "
                                    "and 256 MiB",
                                    m.block_size);
        if (m.lss != 512 && m.lss != 4096)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: logical sector size %u is neither 512 nor 4096", m.lss);
        if (m.pss != 512 && m.pss != 4096)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: physical sector size %u is neither 512 nor 4096", m.pss);
        if (m.size == 0 || m.size > VHDX_MAX_SIZE || m.size % m.lss)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: virtual disk size %llu is not a multiple of %u between "
                                    "1 and 64 TiB",
                                    (unsigned long long)m.size, m.lss);
        if ((m.flags & VHDX_HAS_PARENT) && !m.have_loc)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: HasParent is set but there is no parent locator");

        s = calloc(1, sizeof(*s));
        if (!s)
                return ia_error_set(err, IA_ERR_NOMEM, "vhdx: out of memory");
        s->block_size = m.block_size;
        s->lss = m.lss;
        s->disk_size = m.size;
        s->diff = (m.flags & VHDX_HAS_PARENT) != 0;
        s->chunk_ratio = ((uint64_t)1 << 23) * m.lss / m.block_size;
        s->bat_off = bat_off;
        s->src = ia_source_ref(src);
        s->replayed = log->replayed;
        blocks = (m.size + m.block_size - 1) / m.block_size;
        chunks = (blocks + s->chunk_ratio - 1) / s->chunk_ratio;
        s->bat_entries =
            s->diff ? chunks * (s->chunk_ratio + 1) : blocks + (blocks - 1) / s->chunk_ratio;
        if (s->bat_entries * 8 > bat_len) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vhdx: BAT region of %llu bytes is too small for %llu entries",
                             (unsigned long long)bat_len, (unsigned long long)s->bat_entries);
                goto fail;
        }
        ia_window_init(&s->bat, s->src, bat_off, s->bat_entries, 8, VHDX_BAT_SLICE,
                       IA_WINDOW_ALIGNED, "vhdx block allocation table");
        if (!ia_window_fits(&s->bat)) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vhdx: BAT at %llu (%llu bytes) lies past the end of the file "
                             "(%llu bytes)",
                             (unsigned long long)bat_off, (unsigned long long)(s->bat_entries * 8),
                             (unsigned long long)src->size);
                goto fail;
        }
        img->priv = s;
        if (vhdx_scan_bat(s, err) < 0)
                goto fail;
        if (s->diff) {
                uint8_t *loc;
                int r;

                if (m.loc_len > VHDX_MAX_LOCATOR) {
                        ia_error_set(err, IA_ERR_LIMIT,
                                     "vhdx: parent locator of %u bytes exceeds the limit of %llu",
                                     m.loc_len, VHDX_MAX_LOCATOR);
                        goto fail;
                }
                loc = malloc(m.loc_len ? m.loc_len : 1);
                if (!loc) {
                        ia_error_set(err, IA_ERR_NOMEM,
                                     "vhdx: out of memory for the parent locator");
                        goto fail;
                }
                r = vhdx_read_item(src, meta_off, meta_len, m.loc_off, m.loc_len, loc,
                                   "parent locator", err);
                if (r == 0)
                        r = vhdx_parse_locator(img, loc, m.loc_len, err);
                free(loc);
                if (r < 0)
                        goto fail;
                img->cow = true;
        } else {
                img->cow = false;
        }
        img->size = m.size / 512 * 512;
        img->cluster_size = m.block_size;
        vhdx_ident(img->ident, hdr + 32);
        if (!vhdx_zero(hdr + 48, 16)) {
                img->flags |= IA_IMG_PENDING_LOG | IA_IMG_DIRTY;
                if (log->replayed)
                        ia_image_finding(
                            img, "vhdx-pending-log",
                            "the log (%llu bytes at %llu) holds %u unreplayed entries (sequence "
                            "%llu..%llu: %llu data sectors, %llu zero ranges): replayed in memory, "
                            "the map shows the image as it reads after replay; the file is "
                            "unchanged",
                            (unsigned long long)log->log_len, (unsigned long long)log->log_off,
                            log->entries, (unsigned long long)log->first_seq,
                            (unsigned long long)log->last_seq,
                            (unsigned long long)log->data_sectors,
                            (unsigned long long)log->zero_ranges);
                else
                        ia_image_finding(img, "vhdx-pending-log",
                                         "the log GUID is set in the current header but the log "
                                         "(%llu bytes at %llu) holds no active sequence: nothing "
                                         "to replay",
                                         (unsigned long long)log->log_len,
                                         (unsigned long long)log->log_off);
        }
        return 0;
fail:
        free(img->backing);
        img->backing = NULL;
        img->priv = NULL;
        ia_source_unref(s->src);
        free(s);
        return -1;
}

static int vhdx_open(struct ia_image *img, struct ia_error *err)
{
        struct ia_vhdx_log_info log = {0};
        struct ia_source *src;
        uint8_t hdr[VHDX_HEADER_SIZE];
        int ret;

        if (ia_read(img->file->src, hdr, 8, 0, "vhdx file type identifier", err) < 0)
                return -1;
        if (memcmp(hdr, "vhdxfile", 8) != 0)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: no 'vhdxfile' signature at offset 0");
        if (vhdx_read_headers(img, hdr, err) < 0)
                return -1;
        if (vhdx_zero(hdr + 48, 16))
                src = ia_source_ref(img->file->src);
        else if (ia_vhdx_log_replay(img->file->src, hdr, &src, &log, err) < 0)
                return -1;
        ret = vhdx_open_replayed(img, src, hdr, &log, err);
        ia_source_unref(src);
        return ret;
}

/* BAT entry idx, through the slice cache. */
static int vhdx_bat(struct ia_image *img, uint64_t idx, uint64_t *val, struct ia_error *err)
{
        struct vhdx_state *s = img->priv;
        const uint8_t *p = ia_window_entry(&s->bat, idx, err);

        if (!p)
                return -1;
        *val = ia_le64(p);
        return 0;
}

/* The flags a payload block state gives, for states without an offset. */
static unsigned vhdx_flags_of(const struct vhdx_state *s, unsigned state)
{
        if (state == VHDX_ZERO || state == VHDX_UNMAPPED)
                return IA_BS_ZERO;
        return s->diff ? 0 : IA_BS_ZERO;
}

/* Sector bit sec (within the chunk) of the bitmap block at host. */
static int vhdx_bit(struct ia_image *img, uint64_t host, uint64_t sec, bool *bit,
                    struct ia_error *err)
{
        struct vhdx_state *s = img->priv;
        uint64_t byte = host + sec / 8;

        if (!s->bmp_valid || byte < s->bmp_host || byte - s->bmp_host >= VHDX_BITMAP_SLICE) {
                uint64_t at = byte - (byte - host) % VHDX_BITMAP_SLICE;

                if (ia_read(s->src, s->bmp, VHDX_BITMAP_SLICE, at, "vhdx sector bitmap", err) < 0)
                        return -1;
                s->bmp_host = at;
                s->bmp_valid = true;
        }
        *bit = (s->bmp[byte - s->bmp_host] >> (sec % 8)) & 1;
        return 0;
}

/*
 * Data at st->host_off after a replay: the file's own bytes keep their
 * offset; a sector the log wrote has no offset in the file that holds the
 * guest's bytes (they lie in the log, split around a header), so it is data
 * without offset; zeroes the log wrote (or the file's extension) are data
 * that reads as zero, without offset either.
 */
static void vhdx_replayed_status(struct vhdx_state *s, struct ia_bstatus *st)
{
        uint64_t run;

        switch (ia_vhdx_log_kind(s->src, st->host_off, &run)) {
        case IA_VHDX_FILE:
                break;
        case IA_VHDX_LOGDATA:
                st->flags = IA_BS_DATA;
                break;
        case IA_VHDX_ZERO:
                st->flags = IA_BS_DATA | IA_BS_ZERO;
                break;
        }
        if (run < st->len)
                st->len = run;
        if (!(st->flags & IA_BS_OFFSET)) {
                st->host_off = 0;
                st->file = NULL;
        }
}

static int vhdx_block_status(struct ia_image *img, uint64_t off, uint64_t len,
                             struct ia_bstatus *st, struct ia_error *err)
{
        struct vhdx_state *s = img->priv;
        uint64_t bs = s->block_size, blk = off / bs, in = off % bs, e, run;
        unsigned state, flags;

        if (vhdx_bat(img, blk + blk / s->chunk_ratio, &e, err) < 0)
                return -1;
        state = e & 7;
        if (state == VHDX_FULLY || state == VHDX_PARTIALLY) {
                st->len = ia_min_u64(bs - in, len);
                st->flags = IA_BS_DATA | IA_BS_OFFSET | IA_BS_RECURSE;
                st->host_off = (e >> 20) * MIB + in;
                st->file = img->file;
                if (state == VHDX_PARTIALLY) {
                        uint64_t c = blk / s->chunk_ratio, sb, host, sec, last;
                        bool first, bit;

                        if (vhdx_bat(img, c * (s->chunk_ratio + 1) + s->chunk_ratio, &sb, err) < 0)
                                return -1;
                        if ((sb & 7) != VHDX_SB_PRESENT)
                                return ia_error_set(err, IA_ERR_CORRUPT,
                                                    "vhdx: block %llu is partially present but its "
                                                    "sector bitmap block is not",
                                                    (unsigned long long)blk);
                        host = (sb >> 20) * MIB;
                        sec = ((blk % s->chunk_ratio) * bs + in) / s->lss;
                        last = ((blk % s->chunk_ratio) * bs + in + st->len - 1) / s->lss;
                        if (vhdx_bit(img, host, sec, &first, err) < 0)
                                return -1;
                        for (sec++; sec <= last; sec++) {
                                if (vhdx_bit(img, host, sec, &bit, err) < 0)
                                        return -1;
                                if (bit != first)
                                        break;
                        }
                        st->len =
                            ia_min_u64(sec * s->lss - (blk % s->chunk_ratio) * bs - in, st->len);
                        if (!first)
                                st->flags = 0;
                }
                if (s->replayed && (st->flags & IA_BS_DATA))
                        vhdx_replayed_status(s, st);
                return 0;
        }
        /* A run of blocks without data that answer alike. */
        flags = vhdx_flags_of(s, state);
        run = bs - in;
        while (run < len) {
                uint64_t b = blk + 1;

                if (vhdx_bat(img, b + b / s->chunk_ratio, &e, err) < 0)
                        return -1;
                state = e & 7;
                if (state == VHDX_FULLY || state == VHDX_PARTIALLY ||
                    vhdx_flags_of(s, state) != flags)
                        break;
                blk = b;
                run += bs;
        }
        st->len = ia_min_u64(run, len);
        st->flags = flags;
        return 0;
}

static void vhdx_close(struct ia_image *img)
{
        struct vhdx_state *s = img->priv;

        if (s)
                ia_source_unref(s->src);
        free(img->priv);
        img->priv = NULL;
}

const struct ia_driver ia_drv_vhdx = {
    .name = "vhdx",
    .flags = 0,
    .probe = vhdx_probe,
    .open = vhdx_open,
    .block_status = vhdx_block_status,
    .close = vhdx_close,
};
