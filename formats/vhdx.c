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
 *
 * The driver is split in files named after what they own: see vhdx_int.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vhdxlog.h"
#include "vhdx_int.h"
#include "banned.h"

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

/* The metadata items must describe a disk the format allows. */
static int vhdx_check_meta(const struct vhdx_meta *m, struct ia_error *err)
{
        if (m->block_size < MIB || m->block_size > 256 * MIB ||
            (m->block_size & (m->block_size - 1)))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: block size %u is not a power of two between 1 MiB "
                                    "and 256 MiB",
                                    m->block_size);
        if (m->lss != 512 && m->lss != 4096)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: logical sector size %u is neither 512 nor 4096", m->lss);
        if (m->pss != 512 && m->pss != 4096)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: physical sector size %u is neither 512 nor 4096",
                                    m->pss);
        if (m->size == 0 || m->size > VHDX_MAX_SIZE || m->size % m->lss)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: virtual disk size %llu is not a multiple of %u between "
                                    "1 and 64 TiB",
                                    (unsigned long long)m->size, m->lss);
        if ((m->flags & VHDX_HAS_PARENT) && !m->have_loc)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: HasParent is set but there is no parent locator");
        return 0;
}

/* The BAT's geometry from the metadata, its window; it must fit its region and the file. */
static int vhdx_set_bat(struct vhdx_state *s, const struct vhdx_meta *m, uint64_t bat_off,
                        uint64_t bat_len, struct ia_error *err)
{
        uint64_t blocks, chunks;

        s->block_size = m->block_size;
        s->lss = m->lss;
        s->disk_size = m->size;
        s->diff = (m->flags & VHDX_HAS_PARENT) != 0;
        s->chunk_ratio = ((uint64_t)1 << 23) * m->lss / m->block_size;
        s->bat_off = bat_off;
        blocks = (m->size + m->block_size - 1) / m->block_size;
        chunks = (blocks + s->chunk_ratio - 1) / s->chunk_ratio;
        s->bat_entries =
            s->diff ? chunks * (s->chunk_ratio + 1) : blocks + (blocks - 1) / s->chunk_ratio;
        if (s->bat_entries * 8 > bat_len)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: BAT region of %llu bytes is too small for %llu entries",
                                    (unsigned long long)bat_len,
                                    (unsigned long long)s->bat_entries);
        ia_window_init(&s->bat, s->src, bat_off, s->bat_entries, 8, VHDX_BAT_SLICE,
                       IA_WINDOW_ALIGNED, "vhdx block allocation table");
        if (!ia_window_fits(&s->bat))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: BAT at %llu (%llu bytes) lies past the end of the file "
                                    "(%llu bytes)",
                                    (unsigned long long)bat_off,
                                    (unsigned long long)(s->bat_entries * 8),
                                    (unsigned long long)s->src->size);
        return 0;
}

/* A differencing disk's parent: the locator item read and parsed. */
static int vhdx_read_parent(struct ia_image *img, struct ia_source *src, uint64_t meta_off,
                            uint64_t meta_len, const struct vhdx_meta *m, struct ia_error *err)
{
        uint8_t *loc;
        int r;

        if (m->loc_len > VHDX_MAX_LOCATOR)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "vhdx: parent locator of %u bytes exceeds the limit of %llu",
                                    m->loc_len, VHDX_MAX_LOCATOR);
        loc = malloc(m->loc_len ? m->loc_len : 1);
        if (!loc)
                return ia_error_set(err, IA_ERR_NOMEM,
                                    "vhdx: out of memory for the parent locator");
        r = vhdx_read_item(src, meta_off, meta_len, m->loc_off, m->loc_len, loc, "parent locator",
                           err);
        if (r == 0)
                r = vhdx_parse_locator(img, loc, m->loc_len, err);
        free(loc);
        return r < 0 ? -1 : 0;
}

/* A header that names a log: the image is flagged, with a finding on what the replay found. */
static void vhdx_log_finding(struct ia_image *img, const struct ia_vhdx_log_info *log)
{
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
                    (unsigned long long)log->last_seq, (unsigned long long)log->data_sectors,
                    (unsigned long long)log->zero_ranges);
        else
                ia_image_finding(img, "vhdx-pending-log",
                                 "the log GUID is set in the current header but the log "
                                 "(%llu bytes at %llu) holds no active sequence: nothing "
                                 "to replay",
                                 (unsigned long long)log->log_len,
                                 (unsigned long long)log->log_off);
}

/* The open after the log replay: everything is read from src (the file, or the overlay). */
static int vhdx_open_replayed(struct ia_image *img, struct ia_source *src, const uint8_t *hdr,
                              const struct ia_vhdx_log_info *log, struct ia_error *err)
{
        uint64_t bat_off = 0, bat_len = 0, meta_off = 0, meta_len = 0;
        struct vhdx_meta m = {0};
        struct vhdx_state *s;

        if (vhdx_read_regions(src, &bat_off, &bat_len, &meta_off, &meta_len, err) < 0)
                return -1;
        if (vhdx_read_metadata(src, meta_off, meta_len, &m, err) < 0)
                return -1;
        if (vhdx_check_meta(&m, err) < 0)
                return -1;

        s = calloc(1, sizeof(*s));
        if (!s)
                return ia_error_set(err, IA_ERR_NOMEM, "vhdx: out of memory");
        s->src = ia_source_ref(src);
        s->replayed = log->replayed;
        if (vhdx_set_bat(s, &m, bat_off, bat_len, err) < 0)
                goto fail;
        img->priv = s;
        if (vhdx_scan_bat(s, err) < 0)
                goto fail;
        if (s->diff && vhdx_read_parent(img, src, meta_off, meta_len, &m, err) < 0)
                goto fail;
        img->cow = s->diff;
        img->size = m.size / 512 * 512;
        img->cluster_size = m.block_size;
        vhdx_ident(img->ident, hdr + 32);
        if (!vhdx_zero(hdr + 48, 16))
                vhdx_log_finding(img, log);
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
