/*
 * VMDK block status: the extent that holds the offset; a flat extent
 * answers at once; a sparse one through one cached slice of its grain
 * directory and one cached grain table (seSparse entries decoded as qemu
 * does), answering runs of grains qemu would report alike.
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

/* The first extent that ends after sector (as qemu's find_extent()). */
static const struct vmdk_extent *find_extent(const struct vmdk_state *s, uint64_t sector)
{
        size_t lo = 0, hi = s->n_ext;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (s->ext[mid].start + s->ext[mid].sectors > sector)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return lo < s->n_ext ? &s->ext[lo] : NULL;
}

enum grain_kind { GRAIN_UNALLOC, GRAIN_ZERO, GRAIN_DATA };

/*
 * A grain directory or table read past the end of its file reads as zeros,
 * as in qemu, so the map says "unallocated" there; that answer comes from no
 * data at all, so the image gets a finding (once).
 */
static void check_table_eof(struct ia_image *img, const struct vmdk_extent *e, const char *what,
                            uint64_t off, uint64_t len)
{
        struct vmdk_state *s = img->priv;

        if (s->reported_eof || off + len <= e->file->src->size)
                return;
        s->reported_eof = true;
        ia_image_finding(img, "table-beyond-eof",
                         "vmdk: %s at offset %llu (%llu bytes) of '%s' lies past the end of the "
                         "file (%llu bytes); read as zeros",
                         what, (unsigned long long)off, (unsigned long long)len, e->file->name,
                         (unsigned long long)e->file->src->size);
}

/*
 * Loading a slice of the grain directory, or a grain table, into the cache
 * (through vmdk_state.raw, 32 KiB, not the stack).  Kept out of
 * grain_lookup() (noinline): the slow path of a function called per grain.
 */
static __attribute__((noinline)) int load_gd_slice(struct ia_image *img,
                                                   const struct vmdk_extent *e, uint64_t first,
                                                   struct ia_error *err)
{
        struct vmdk_state *s = img->priv;
        uint32_t n = (uint32_t)ia_min_u64(VMDK_GD_SLICE, e->gd_entries - first);
        uint64_t off = e->gd_off + first * e->entry_size, len = (uint64_t)n * e->entry_size;

        s->gd_ext = NULL;
        if (vmdk_read_zfill(e->file, s->raw, (size_t)len, off, "grain directory", err) < 0)
                return -1;
        check_table_eof(img, e, "grain directory", off, len);
        for (uint32_t i = 0; i < n; i++)
                s->gd_buf[i] =
                    e->entry_size == 8 ? ia_le64(s->raw + 8 * i) : ia_le32(s->raw + 4 * i);
        s->gd_ext = e;
        s->gd_first = first;
        return 0;
}

static __attribute__((noinline)) int load_gt(struct ia_image *img, const struct vmdk_extent *e,
                                             uint32_t gt_sect, struct ia_error *err)
{
        struct vmdk_state *s = img->priv;
        uint64_t len = (uint64_t)e->gt_entries * e->entry_size;

        s->gt_ext = NULL;
        if (vmdk_read_zfill(e->file, s->raw, (size_t)len, (uint64_t)gt_sect * 512, "grain table",
                            err) < 0)
                return -1;
        check_table_eof(img, e, "grain table", (uint64_t)gt_sect * 512, len);
        for (uint32_t i = 0; i < e->gt_entries; i++)
                s->gt_buf[i] =
                    e->entry_size == 8 ? ia_le64(s->raw + 8 * i) : ia_le32(s->raw + 4 * i);
        s->gt_ext = e;
        s->gt_sector = gt_sect;
        return 0;
}

/*
 * A seSparse GD entry: 0, or 0x10000000 in the top 32 bits and a table
 * number; the table's sector must fit in 32 bits (qemu's checks).
 */
static int se_table_sector(const struct vmdk_extent *e, uint32_t l1, uint64_t gde,
                           uint32_t *gt_sect, struct ia_error *err)
{
        uint64_t sect;

        if (gde == 0) {
                *gt_sect = 0;
                return 0;
        }
        if ((gde & 0xffffffff00000000ull) != 0x1000000000000000ull)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: grain directory entry %u of '%s' is 0x%016llx, not a "
                                    "seSparse grain table",
                                    l1, e->file->name, (unsigned long long)gde);
        sect = e->se_gt_off + (gde & 0xffffffffull) * SESPARSE_GT_SECT;
        if (sect > 0xffffffffull)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: grain table %llu of '%s' lies at sector %llu, beyond "
                                    "2^32 sectors",
                                    (unsigned long long)(gde & 0xffffffffull), e->file->name,
                                    (unsigned long long)sect);
        *gt_sect = (uint32_t)sect;
        return 0;
}

/* A seSparse GT entry, as qemu decodes it. */
static int se_grain(const struct vmdk_extent *e, uint64_t g, uint64_t gte, enum grain_kind *kind,
                    uint64_t *sector, struct ia_error *err)
{
        uint64_t n;

        switch (gte >> 60) {
        case 0:
                if (gte != 0)
                        break;
                *kind = GRAIN_UNALLOC;
                return 0;
        case 1: /* unmapped by the guest (SCSI UNMAP) */
        case 2:
                *kind = GRAIN_ZERO;
                return 0;
        case 3:
                /* The grain number: bits 48-59 are its low 12 bits, bits 0-47 the rest. */
                n = (gte & 0x0fff000000000000ull) >> 48 | (gte & 0x0000ffffffffffffull) << 12;
                *sector = e->se_grains_off + n * SESPARSE_GRAIN_SECT;
                /* Wrapping as in qemu, where a grain at sector 0 is unallocated. */
                *kind = *sector ? GRAIN_DATA : GRAIN_UNALLOC;
                return 0;
        }
        return ia_error_set(err, IA_ERR_CORRUPT,
                            "vmdk: grain table entry of grain %llu of '%s' is 0x%016llx, not a "
                            "seSparse grain",
                            (unsigned long long)g, e->file->name, (unsigned long long)gte);
}

/*
 * The state of grain g of sparse extent e (qemu's get_cluster_offset()):
 * its kind and, for data, its sector.  *gt_empty is set when the whole grain
 * table is unallocated.
 */
static int grain_lookup(struct ia_image *img, const struct vmdk_extent *e, uint64_t g,
                        enum grain_kind *kind, uint64_t *sector, bool *gt_empty,
                        struct ia_error *err)
{
        struct vmdk_state *s = img->priv;
        uint32_t l1 = (uint32_t)(g / e->gt_entries), gt_sect = 0;
        uint64_t first, gte;

        *gt_empty = false;
        if (l1 >= e->gd_entries)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: grain %llu of '%s' lies beyond its grain directory (%u "
                                    "entries)",
                                    (unsigned long long)g, e->file->name, e->gd_entries);
        first = l1 / VMDK_GD_SLICE * VMDK_GD_SLICE;
        if ((s->gd_ext != e || s->gd_first != first) && load_gd_slice(img, e, first, err) < 0)
                return -1;
        if (!e->sesparse)
                gt_sect = (uint32_t)s->gd_buf[l1 - first];
        else if (se_table_sector(e, l1, s->gd_buf[l1 - first], &gt_sect, err) < 0)
                return -1;
        if (gt_sect == 0) {
                *kind = GRAIN_UNALLOC;
                *gt_empty = true;
                return 0;
        }
        if ((uint64_t)gt_sect * 512 >= e->file->src->size) {
                /* Wholly past the end: it would read as zeros, so the whole table is
                 * unallocated; known without reading it, so runs skip it at once. */
                check_table_eof(img, e, "grain table", (uint64_t)gt_sect * 512,
                                (uint64_t)e->gt_entries * e->entry_size);
                *kind = GRAIN_UNALLOC;
                *gt_empty = true;
                return 0;
        }
        if ((s->gt_ext != e || s->gt_sector != gt_sect) && load_gt(img, e, gt_sect, err) < 0)
                return -1;
        gte = s->gt_buf[g % e->gt_entries];
        if (e->sesparse)
                return se_grain(e, g, gte, kind, sector, err);
        *sector = gte;
        if (e->zero_grain && gte == VMDK_GTE_ZEROED)
                *kind = GRAIN_ZERO;
        else
                *kind = gte ? GRAIN_DATA : GRAIN_UNALLOC;
        return 0;
}

int vmdk_block_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                      struct ia_error *err)
{
        struct vmdk_state *s = img->priv;
        const struct vmdk_extent *e = find_extent(s, off / 512);
        uint64_t begin, rel, gbytes, g, sector = 0, run, host, last_g, end;
        enum grain_kind kind, k2;
        bool empty;

        if (!e)
                return ia_error_set(err, IA_ERR_IO, "vmdk: no extent holds offset %llu",
                                    (unsigned long long)off);
        begin = e->start * 512;
        rel = off - begin;
        if (e->flat) {
                st->flags = IA_BS_DATA | IA_BS_OFFSET | IA_BS_RECURSE;
                st->host_off = e->flat_off + rel;
                st->file = e->file;
                st->len = ia_min_u64(e->sectors * 512 - rel, len);
                return 0;
        }
        gbytes = e->grain_sectors * 512;
        g = rel / gbytes;
        if (grain_lookup(img, e, g, &kind, &sector, &empty, err) < 0)
                return -1;
        run = gbytes - rel % gbytes;
        host = sector * 512 + rel % gbytes; /* wraps as qemu's does (seSparse) */
        if (kind == GRAIN_DATA && host > (uint64_t)INT64_MAX)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "vmdk: grain %llu of '%s' lies at host offset %llu, beyond "
                                    "2^63 (qemu prints it negative)",
                                    (unsigned long long)g, e->file->name, (unsigned long long)host);
        /*
         * qemu answers one grain per query; runs of grains that qemu would
         * report alike (and merge) are answered at once, stopping before any
         * grain whose lookup fails so that errors come where qemu's come.
         */
        last_g = (e->sectors * 512 - 1) / gbytes;
        end = off + ia_min_u64(len, (uint64_t)VMDK_EXTEND_MAX * gbytes);
        while (g < last_g && off + run < end) {
                struct ia_error ignored;
                uint64_t g2 = g + 1, sec2 = 0;
                bool empty2;

                if (grain_lookup(img, e, g2, &k2, &sec2, &empty2, &ignored) < 0 || k2 != kind)
                        break;
                if (kind == GRAIN_DATA && !e->compressed && sec2 * 512 != host + run)
                        break;
                if (empty2 && empty) {
                        /* A whole unallocated grain table: skip to its end. */
                        g2 = ia_min_u64(g2 + (e->gt_entries - 1 - g2 % e->gt_entries), last_g);
                }
                run += (g2 - g) * gbytes;
                g = g2;
                empty = empty2;
        }
        st->len = ia_min_u64(run, len);
        switch (kind) {
        case GRAIN_UNALLOC:
                st->flags = 0;
                break;
        case GRAIN_ZERO:
                st->flags = IA_BS_ZERO;
                break;
        case GRAIN_DATA:
                st->flags = IA_BS_DATA;
                st->file = e->file;
                if (e->compressed) {
                        st->flags |= IA_BS_COMPRESSED;
                } else {
                        st->flags |= IA_BS_OFFSET;
                        st->host_off = host;
                }
                break;
        }
        return 0;
}
