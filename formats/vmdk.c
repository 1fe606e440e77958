/*
 * VMDK: VMware virtual disks, mapped the way qemu 7.2's vmdk driver sees them.
 *
 * Layout in brief.  A VMDK disk is a list of extents laid end to end in the
 * guest, described by a text descriptor:
 *   - either the image file is the descriptor (monolithicFlat, vmfs,
 *     vmfsSparse, twoGbMaxExtentSparse/Flat, hand-written ones): lines
 *     `RW <sectors> FLAT "<file>" <offset>`, `RW <sectors> SPARSE "<file>"`,
 *     `RW <sectors> VMFS "<file>"`, `RW <sectors> VMFSSPARSE "<file>"`;
 *   - or the image file is one sparse extent ("KDMV" header, VMDK 4, with the
 *     descriptor embedded in it: monolithicSparse, streamOptimized; or "COWD",
 *     the older VMDK 3 sparse format).
 * A sparse extent maps grains (clusters) through a grain directory (GD,
 * 32-bit sector numbers of grain tables) and grain tables (GT, 32-bit sector
 * numbers of grains; 0 = unallocated, 1 = zeroed grain when the header says
 * so).  streamOptimized extents hold deflate-compressed grains: their data
 * has no host offset; when the header's GD offset is "at end" the footer copy
 * of the header near the end of the file is used.  A parent is named by the
 * descriptor's parentFileNameHint and is always opened as VMDK.
 *
 * seSparse extents (`RW <sectors> SESPARSE "<file>"`, ESXi snapshots on
 * VMFS 6) have their own little-endian layout, which VMware does not
 * document; we read what qemu 7.2 reads and check it as strictly: a 512-byte
 * constant header (magic 0xcafebabe, version 0x200000001, 4 KiB grains
 * (8 sectors), 64-sector grain tables of 4096 64-bit entries, flags and
 * reserved words 0, zero padding; the offsets and sizes, in sectors, of the
 * volatile header, journal, GD, GT area and grains), a volatile header
 * (magic 0xcafecafe, no journal to replay, zero padding), a GD of 64-bit
 * entries (0: no table; 0x10000000_iiiiiiii: table i of the GT area) and GTs
 * of 64-bit entries (0: unallocated; top nibble 1 (unmapped) or 2: zero;
 * 3: allocated, its grain number split in two fields; anything else is an
 * error, as is a table beyond 2^32 sectors).  The journal is never read.
 *
 * qemu quirks reproduced on purpose (verified against qemu-img 7.2): extent
 * lines are read with sscanf, so leading blank lines repeat the next extent
 * and only `RW` lines count (RDONLY/NOACCESS/ZERO lines are skipped, which
 * shortens the disk); a SPARSE extent's size comes from its header, not from
 * the descriptor; the descriptor must name a CID and a parentCID; grain
 * directories and tables past the end of the file read as zeroes; the last
 * grain of a sparse extent may run past the extent's end.
 *
 * Deliberate limits: at most IA_VMDK_MAX_EXTENTS (4096) extents, nested
 * descriptors at most VMDK_MAX_NEST (4) deep, virtual sizes and flat offsets
 * must fit in 63 bits, and so must a seSparse grain's host offset (qemu
 * prints a negative one).
 *
 * The driver is split in files named after what they own: see vmdk_int.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmdk_int.h"
#include "banned.h"

/* Read len bytes at off; what lies past the end of the file reads as zeroes (as in qemu). */
int vmdk_read_zfill(struct ia_file *f, void *buf, size_t len, uint64_t off, const char *what,
                    struct ia_error *err)
{
        int64_t n;

        n = ia_read_upto(f->src, buf, len, off, err);
        if (n < 0) {
                ia_error_prefix(err, "vmdk: reading %s in '%s'", what, f->name);
                return -1;
        }
        memset((uint8_t *)buf + n, 0, len - (size_t)n);
        return 0;
}

static void vmdk_state_free(struct vmdk_state *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->n_refs; i++) {
                ia_file_free(s->refs[i].file);
                free(s->refs[i].name);
        }
        free(s->refs);
        free(s->ext);
        free(s);
}

static int vmdk_open(struct ia_image *img, struct ia_error *err)
{
        struct vmdk_state *s;
        uint64_t desc_off = 0;
        uint32_t magic;
        char *desc;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return ia_error_set(err, IA_ERR_NOMEM, "vmdk: out of memory");
        img->priv = s;
        desc = vmdk_read_desc(img->file, 0, err);
        if (!desc)
                goto fail;
        magic = ia_be32((const uint8_t *)desc);
        if (magic == VMDK3_MAGIC || magic == VMDK4_MAGIC) {
                r = vmdk_open_sparse(img, img->file, 0, err);
                desc_off = 0x200;
        } else {
                r = vmdk_open_desc(img, desc, 0, err);
        }
        free(desc);
        if (r < 0 || vmdk_read_parent_and_cid(img, desc_off, err) < 0)
                goto fail;
        if (s->n_ext) {
                const struct vmdk_extent *last = &s->ext[s->n_ext - 1];

                img->size = (last->start + last->sectors) * 512;
                /* qemu's bdrv_refresh_total_sectors(): a disk larger than
                 * BDRV_MAX_LENGTH fails to open ("File too large"). */
                if (img->size > VMDK_BDRV_MAX_LEN) {
                        ia_error_set(err, IA_ERR_LIMIT,
                                     "vmdk: disk size %llu (the sum of the extents) exceeds "
                                     "the limit of %llu bytes",
                                     (unsigned long long)img->size,
                                     (unsigned long long)VMDK_BDRV_MAX_LEN);
                        goto fail;
                }
        }
        for (size_t i = 0; i < s->n_ext; i++) {
                if (!s->ext[i].flat && s->ext[i].grain_sectors < 0x80000000u &&
                    (img->cluster_size == 0 || s->ext[i].grain_sectors * 512 < img->cluster_size))
                        img->cluster_size = (uint32_t)(s->ext[i].grain_sectors * 512);
        }
        img->cow = true;
        return 0;

fail:
        free(img->backing);
        img->backing = NULL;
        vmdk_state_free(s);
        img->priv = NULL;
        return -1;
}

static void vmdk_close(struct ia_image *img)
{
        vmdk_state_free(img->priv);
        img->priv = NULL;
}

/*
 * qemu's vmdk_probe(): a sparse magic, or a text descriptor whose first
 * line that is neither a comment nor blank (blank lines must hold spaces)
 * is "version=1", "=2" or "=3".  qemu probes 2048 bytes, zero-filled.
 */
static int vmdk_probe(const struct ia_probe *pr)
{
        uint8_t buf[2048] = {0};
        const char *p = (const char *)buf, *end = p + sizeof(buf);
        uint32_t magic;

        memcpy(buf, pr->head, pr->head_len < sizeof(buf) ? pr->head_len : sizeof(buf));
        magic = ia_be32(buf);
        if (magic == VMDK3_MAGIC || magic == VMDK4_MAGIC)
                return 100;
        while (p < end) {
                if (*p == '#') {
                        while (p < end && *p != '\n')
                                p++;
                        p++;
                        continue;
                }
                if (*p == ' ') {
                        while (p < end && *p == ' ')
                                p++;
                        if (p < end && *p == '\r')
                                p++;
                        if (p == end || *p != '\n')
                                return 0;
                        p++;
                        continue;
                }
                if (end - p >= 10 && memcmp(p, "version=", 8) == 0 && p[8] >= '1' && p[8] <= '3' &&
                    (p[9] == '\n' || (end - p >= 11 && p[9] == '\r' && p[10] == '\n')))
                        return 100;
                return 0;
        }
        return 0;
}

const struct ia_driver ia_drv_vmdk = {
    .name = "vmdk",
    .flags = IA_DRV_BACKING,
    .probe = vmdk_probe,
    .open = vmdk_open,
    .block_status = vmdk_block_status,
    .close = vmdk_close,
};
