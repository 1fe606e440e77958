/*
 * The VMDK extent list and the headers of sparse extents: VMDK 3 ("COWD"),
 * VMDK 4 ("KDMV": monolithicSparse and streamOptimized, whose header may be
 * in a footer at the end of the file, or a descriptor in a binary container)
 * and seSparse (ESXi snapshots; the layout is described in vmdk.c).  Each
 * ends as an entry of vmdk_state.ext, checked as qemu checks it.
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

int vmdk_add_extent(struct vmdk_state *s, const struct vmdk_extent *e, struct ia_error *err)
{
        struct vmdk_extent *n;
        uint64_t start = 0;

        if (s->n_ext >= IA_VMDK_MAX_EXTENTS)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "vmdk: more than %u extents (%zu read so far): over the limit",
                                    IA_VMDK_MAX_EXTENTS, s->n_ext);
        if (s->n_ext) {
                const struct vmdk_extent *last = &s->ext[s->n_ext - 1];

                start = last->start + last->sectors;
        }
        if (!ia_add_ok(start, e->sectors, &start) || start > (uint64_t)INT64_MAX / 512)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "vmdk: extent #%zu of %llu sectors makes the disk larger than "
                                    "%llu sectors",
                                    s->n_ext, (unsigned long long)e->sectors,
                                    (unsigned long long)INT64_MAX / 512);
        if (s->n_ext == s->cap_ext) {
                size_t cap = s->cap_ext ? s->cap_ext * 2 : 8;

                n = realloc(s->ext, cap * sizeof(*n));
                if (!n)
                        return ia_error_set(err, IA_ERR_NOMEM, "vmdk: out of memory for extents");
                s->ext = n;
                s->cap_ext = cap;
        }
        n = &s->ext[s->n_ext];
        *n = *e;
        n->start = start - e->sectors;
        s->n_ext++;
        return 0;
}

/* The common part of qemu's vmdk_add_extent() and vmdk_init_tables() checks for sparse extents. */
static int add_sparse(struct vmdk_state *s, struct vmdk_extent *e, uint64_t rgd_off,
                      struct ia_error *err)
{
        if (e->grain_sectors > VMDK_MAX_GRAIN_SECT)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: grain size of %llu sectors in '%s' exceeds %u sectors",
                                    (unsigned long long)e->grain_sectors, e->file->name,
                                    VMDK_MAX_GRAIN_SECT);
        if (e->gd_entries > VMDK_MAX_GD_ENTRIES)
                return ia_error_set(
                    err, IA_ERR_CORRUPT,
                    "vmdk: grain directory of %u entries in '%s' exceeds %u entries", e->gd_entries,
                    e->file->name, VMDK_MAX_GD_ENTRIES);
        if (e->grain_sectors == 0 && e->sectors)
                return ia_error_set(err, IA_ERR_CORRUPT, "vmdk: grain size 0 in '%s'",
                                    e->file->name);
        if (e->entry_size == 0)
                e->entry_size = 4;
        if (vmdk_bdrv_range_bad(e->gd_off, (uint64_t)e->gd_entries * e->entry_size))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: grain directory offset %llu in '%s' is beyond any file",
                                    (unsigned long long)e->gd_off, e->file->name);
        if (rgd_off && vmdk_bdrv_range_bad(rgd_off, (uint64_t)e->gd_entries * e->entry_size))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: redundant grain directory offset %llu in '%s' is beyond "
                                    "any file",
                                    (unsigned long long)rgd_off, e->file->name);
        return vmdk_add_extent(s, e, err);
}

static int open_vmdk3(struct ia_image *img, struct ia_file *f, struct ia_error *err)
{
        struct vmdk_extent e = {.file = f};
        uint8_t h[VMDK_HDR3_LEN];

        if (vmdk_read_zfill(f, h, sizeof(h), 4, "VMDK 3 header", err) < 0)
                return -1;
        e.sectors = ia_le32(h + 8);
        e.grain_sectors = ia_le32(h + 12);
        e.gd_off = (uint64_t)ia_le32(h + 16) << 9;
        e.gd_entries = ia_le32(h + 20);
        e.gt_entries = VMDK3_GT_ENTRIES;
        return add_sparse(img->priv, &e, 0, err);
}

static int open_vmdk4(struct ia_image *img, struct ia_file *f, unsigned depth, struct ia_error *err)
{
        struct vmdk_extent e = {.file = f};
        uint8_t h[VMDK_HDR4_LEN], foot[1536];
        uint64_t capacity, grain, desc_off, gd_off, rgd_off = 0, grain_off, l1e;
        uint32_t version, flags, gtes;

        if (vmdk_read_zfill(f, h, sizeof(h), 4, "VMDK 4 header", err) < 0)
                return -1;
        capacity = ia_le64(h + 8);
        desc_off = ia_le64(h + 24);
        if (capacity == 0 && desc_off != 0) {
                /* Only a descriptor inside a binary container. */
                char *desc;
                int r;

                if (depth >= VMDK_MAX_NEST)
                        return ia_error_set(err, IA_ERR_LIMIT,
                                            "vmdk: descriptors nested more than %u deep in '%s'",
                                            VMDK_MAX_NEST, f->name);
                desc = vmdk_read_desc(f, desc_off << 9, err);
                if (!desc)
                        return -1;
                r = vmdk_open_desc(img, desc, depth + 1, err);
                free(desc);
                return r;
        }
        if (ia_le64(h + 52) == VMDK4_GD_AT_END) {
                /* The footer (marker, header copy, end-of-stream marker) wins. */
                if (f->len < sizeof(foot))
                        return ia_error_set(err, IA_ERR_TRUNCATED,
                                            "vmdk: '%s' (%llu bytes) is too short for a footer",
                                            f->name, (unsigned long long)f->src->size);
                if (vmdk_read_zfill(f, foot, sizeof(foot), f->len - sizeof(foot), "footer", err) <
                    0)
                        return -1;
                if (ia_be32(foot + 512) != VMDK4_MAGIC || ia_le32(foot + 8) != 0 ||
                    ia_le32(foot + 12) != VMDK_MARKER_FOOTER || ia_le64(foot + 1024) != 0 ||
                    ia_le32(foot + 1032) != 0 || ia_le32(foot + 1036) != VMDK_MARKER_EOS)
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "vmdk: invalid footer at offset %llu in '%s'",
                                            (unsigned long long)(f->len - sizeof(foot)), f->name);
                memcpy(h, foot + 516, sizeof(h));
        }
        version = ia_le32(h + 0);
        flags = ia_le32(h + 4);
        capacity = ia_le64(h + 8);
        grain = ia_le64(h + 16);
        gtes = ia_le32(h + 40);
        gd_off = ia_le64(h + 52);
        grain_off = ia_le64(h + 60);
        if (version > 3)
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "vmdk: version %u of '%s' is not supported (at most 3)",
                                    version, f->name);
        if (gtes > VMDK4_MAX_GT_ENTRIES)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: grain tables of %u entries in '%s' exceed %u entries",
                                    gtes, f->name, VMDK4_MAX_GT_ENTRIES);
        /* qemu computes these in 32 bits. */
        l1e = (uint32_t)(gtes * grain);
        if (l1e == 0)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: grain size %llu times %u grain table entries in '%s' is "
                                    "zero",
                                    (unsigned long long)grain, gtes, f->name);
        e.gd_entries = (uint32_t)((capacity + l1e - 1) / l1e);
        if (flags & VMDK4_FLAG_RGD)
                rgd_off = ia_le64(h + 44) << 9;
        if (f->len / 512 < grain_off)
                return ia_error_set(err, IA_ERR_TRUNCATED,
                                    "vmdk: '%s' is truncated: %llu bytes, the grains start at "
                                    "sector %llu",
                                    f->name, (unsigned long long)f->src->size,
                                    (unsigned long long)grain_off);
        e.sectors = capacity;
        e.gd_off = gd_off << 9;
        e.gt_entries = gtes;
        e.grain_sectors = grain;
        e.compressed = ia_le16(h + 73) == VMDK4_DEFLATE;
        e.zero_grain = flags & VMDK4_FLAG_ZEROGRN;
        return add_sparse(img->priv, &e, rgd_off, err);
}

/* qemu's vmdk_open_sparse(): a "KDMV" or "COWD" file. */
int vmdk_open_sparse(struct ia_image *img, struct ia_file *f, unsigned depth, struct ia_error *err)
{
        uint8_t m[4];

        if (f->len < 4)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: '%s' is too small (%llu bytes) to be a VMDK image",
                                    f->name, (unsigned long long)f->src->size);
        if (vmdk_read_zfill(f, m, sizeof(m), 0, "magic", err) < 0)
                return -1;
        switch (ia_be32(m)) {
        case VMDK3_MAGIC:
                return open_vmdk3(img, f, err);
        case VMDK4_MAGIC:
                return open_vmdk4(img, f, depth, err);
        }
        return ia_error_set(err, IA_ERR_CORRUPT, "vmdk: sparse extent '%s' is not in VMDK format",
                            f->name);
}

static bool all_zero(const uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

/*
 * qemu's vmdk_open_se_sparse(): the constant header, the volatile header,
 * then the extent (its size is the header's capacity, not the descriptor's).
 */
int vmdk_open_sesparse(struct ia_image *img, struct ia_file *f, struct ia_error *err)
{
        static const char *const names[] = {"flags", "reserved word 1", "reserved word 2",
                                            "reserved word 3", "reserved word 4"};
        struct vmdk_extent e = {.file = f, .sesparse = true, .entry_size = 8};
        uint8_t h[512], v[512];
        uint64_t x, vh_off, gd_size;

        if (vmdk_read_zfill(f, h, sizeof(h), 0, "seSparse constant header", err) < 0)
                return -1;
        if ((x = ia_le64(h)) != SESPARSE_CONST_MAGIC)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: seSparse extent '%s' has constant header magic "
                                    "0x%016llx (expected 0x%016llx)",
                                    f->name, (unsigned long long)x, SESPARSE_CONST_MAGIC);
        if ((x = ia_le64(h + 8)) != SESPARSE_VERSION)
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "vmdk: seSparse extent '%s' has version 0x%016llx (only "
                                    "0x%016llx is supported)",
                                    f->name, (unsigned long long)x, SESPARSE_VERSION);
        if ((x = ia_le64(h + 24)) != SESPARSE_GRAIN_SECT)
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "vmdk: seSparse extent '%s' has grains of %llu sectors (only "
                                    "%u is supported)",
                                    f->name, (unsigned long long)x, SESPARSE_GRAIN_SECT);
        if ((x = ia_le64(h + 32)) != SESPARSE_GT_SECT)
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "vmdk: seSparse extent '%s' has grain tables of %llu sectors "
                                    "(only %u is supported)",
                                    f->name, (unsigned long long)x, SESPARSE_GT_SECT);
        for (unsigned i = 0; i < 5; i++)
                if ((x = ia_le64(h + 40 + 8 * i)) != 0)
                        return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                            "vmdk: seSparse extent '%s' has %s 0x%016llx (only 0 "
                                            "is supported)",
                                            f->name, names[i], (unsigned long long)x);
        if (!all_zero(h + 208, 304))
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "vmdk: seSparse extent '%s' has a constant header with "
                                    "non-zero padding",
                                    f->name);
        /* qemu multiplies in 64 bits; an offset it cannot read fails its open too. */
        vh_off = ia_le64(h + 80) * 512;
        if (vmdk_bdrv_range_bad(vh_off, sizeof(v)))
                return ia_error_set(err, IA_ERR_IO,
                                    "vmdk: seSparse volatile header offset %llu in '%s' is "
                                    "beyond any file",
                                    (unsigned long long)vh_off, f->name);
        if (vmdk_read_zfill(f, v, sizeof(v), vh_off, "seSparse volatile header", err) < 0)
                return -1;
        if ((x = ia_le64(v)) != SESPARSE_VOLATILE_MAGIC)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: seSparse extent '%s' has volatile header magic "
                                    "0x%016llx at offset %llu (expected 0x%016llx)",
                                    f->name, (unsigned long long)x, (unsigned long long)vh_off,
                                    SESPARSE_VOLATILE_MAGIC);
        if (ia_le64(v + 24) != 0)
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "vmdk: seSparse extent '%s' is dirty: its journal needs a "
                                    "replay, which is not supported",
                                    f->name);
        if (!all_zero(v + 32, 480))
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "vmdk: seSparse extent '%s' has a volatile header with "
                                    "non-zero padding",
                                    f->name);
        e.sectors = ia_le64(h + 16);
        e.grain_sectors = SESPARSE_GRAIN_SECT;
        e.gt_entries = SESPARSE_GT_ENTRIES;
        /* As qemu computes them: 64-bit products, the entry count cut to 32 bits. */
        e.gd_off = ia_le64(h + 128) * 512;
        gd_size = ia_le64(h + 136);
        e.gd_entries = (uint32_t)(gd_size * 512 / 8);
        e.se_gt_off = ia_le64(h + 144);
        e.se_grains_off = ia_le64(h + 192);
        return add_sparse(img->priv, &e, 0, err);
}
