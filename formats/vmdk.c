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
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "image.h"
#include "banned.h"

#define VMDK4_MAGIC        0x4b444d56u /* "KDMV" read big-endian */
#define VMDK3_MAGIC        0x434f5744u /* "COWD" */
#define VMDK4_GD_AT_END    0xffffffffffffffffull
#define VMDK4_FLAG_RGD     0x2u
#define VMDK4_FLAG_ZEROGRN 0x4u
#define VMDK4_DEFLATE      1u
#define VMDK_MARKER_EOS    0u
#define VMDK_MARKER_FOOTER 3u
#define VMDK_GTE_ZEROED    1u

#define SESPARSE_CONST_MAGIC    0xcafebabeull
#define SESPARSE_VOLATILE_MAGIC 0xcafecafeull
#define SESPARSE_VERSION        0x200000001ull
#define SESPARSE_GRAIN_SECT     8u
#define SESPARSE_GT_SECT        64u
#define SESPARSE_GT_ENTRIES     (SESPARSE_GT_SECT * 512 / 8)

#define VMDK_HDR4_LEN        75u              /* the VMDK 4 header after the magic */
#define VMDK_HDR3_LEN        40u              /* the VMDK 3 header after the magic */
#define VMDK_DESC_MAX        ((1u << 20) - 1) /* qemu reads at most this much descriptor */
#define VMDK_DESC_SIZE       10240u           /* qemu looks for CID and parent in this much */
#define VMDK_MAX_GRAIN_SECT  0x200000u        /* 1 GiB grains */
#define VMDK_MAX_GD_ENTRIES  (32u * 1024 * 1024)
#define VMDK4_MAX_GT_ENTRIES 512u
#define VMDK3_GT_ENTRIES     4096u
#define VMDK_CTYPE_MAX       128u
#define VMDK_FNAME_MAX       511u
#define VMDK_PARENT_MAX      4095u
#define VMDK_MAX_NEST        4u
/* qemu's BDRV_MAX_LENGTH: a read beyond it fails. */
#define VMDK_BDRV_MAX_LEN (((uint64_t)INT64_MAX) & ~((uint64_t)(1u << 30) - 1))

#define IA_VMDK_MAX_EXTENTS 4096u
#define VMDK_GD_SLICE       1024u  /* grain directory entries cached at once */
#define VMDK_EXTEND_MAX     65536u /* grains looked at per block_status answer */

struct vmdk_extent {
        struct ia_file *file; /* borrowed: img->file or one of vmdk_state.files */
        uint64_t start;       /* first guest sector */
        uint64_t sectors;
        bool flat;
        bool compressed;
        bool zero_grain;
        bool sesparse;          /* 64-bit GD and GT entries of their own kinds */
        uint8_t entry_size;     /* sparse: bytes per GD and GT entry (4, or 8 for seSparse) */
        uint64_t se_gt_off;     /* seSparse: first sector of the grain tables */
        uint64_t se_grains_off; /* seSparse: first sector of the grains */
        uint64_t flat_off;      /* flat: byte offset of the extent in file */
        uint64_t gd_off;        /* sparse: byte offset of the grain directory */
        uint32_t gd_entries;    /* sparse: qemu's l1_size */
        uint32_t gt_entries;    /* sparse: entries per grain table */
        uint64_t grain_sectors; /* sparse: sectors per grain (> 0) */
};

struct vmdk_ref {
        char *name; /* the name as written in the descriptor */
        struct ia_file *file;
};

struct vmdk_state {
        struct vmdk_extent *ext;
        size_t n_ext, cap_ext;
        struct vmdk_ref *refs; /* extent files, one per distinct name (owned) */
        size_t n_refs, cap_refs;
        /* One slice of one grain directory. */
        const struct vmdk_extent *gd_ext;
        uint64_t gd_first;
        uint64_t gd_buf[VMDK_GD_SLICE];
        /* One grain table. */
        const struct vmdk_extent *gt_ext;
        uint32_t gt_sector;
        uint64_t gt_buf[VMDK3_GT_ENTRIES];
        uint8_t raw[VMDK3_GT_ENTRIES * 8]; /* the bytes of a table being loaded */
        bool reported_eof;                 /* the table-beyond-eof finding was made */
};

/* Read len bytes at off; what lies past the end of the file reads as zeroes (as in qemu). */
static int read_zfill(struct ia_file *f, void *buf, size_t len, uint64_t off, const char *what,
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

/* Would qemu's bdrv_pread() refuse [off, off+len) as an impossible request? */
static bool bdrv_range_bad(uint64_t off, uint64_t len)
{
        return off > VMDK_BDRV_MAX_LEN || len > VMDK_BDRV_MAX_LEN - off;
}

/*
 * Read a descriptor as qemu's vmdk_read_desc() does: as many bytes as the
 * file has (rounded up to 512), at most VMDK_DESC_MAX, from off; NUL-terminated.
 */
static char *read_desc(struct ia_file *f, uint64_t off, struct ia_error *err)
{
        size_t len;
        char *buf;

        if (f->len < 4) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vmdk: '%s' is too small (%llu bytes) to be a VMDK image", f->name,
                             (unsigned long long)f->src->size);
                return NULL;
        }
        len = (size_t)ia_min_u64(f->len, VMDK_DESC_MAX);
        if (bdrv_range_bad(off, len)) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vmdk: descriptor offset %llu in '%s' is beyond any file",
                             (unsigned long long)off, f->name);
                return NULL;
        }
        buf = malloc(len + 1);
        if (!buf) {
                ia_error_set(err, IA_ERR_NOMEM, "vmdk: out of memory for a %zu-byte descriptor",
                             len);
                return NULL;
        }
        if (read_zfill(f, buf, len, off, "descriptor", err) < 0) {
                free(buf);
                return NULL;
        }
        buf[len] = '\0';
        return buf;
}

static int add_extent(struct vmdk_state *s, const struct vmdk_extent *e, struct ia_error *err)
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
        if (bdrv_range_bad(e->gd_off, (uint64_t)e->gd_entries * e->entry_size))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: grain directory offset %llu in '%s' is beyond any file",
                                    (unsigned long long)e->gd_off, e->file->name);
        if (rgd_off && bdrv_range_bad(rgd_off, (uint64_t)e->gd_entries * e->entry_size))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: redundant grain directory offset %llu in '%s' is beyond "
                                    "any file",
                                    (unsigned long long)rgd_off, e->file->name);
        return add_extent(s, e, err);
}

static int open_desc(struct ia_image *img, const char *desc, unsigned depth, struct ia_error *err);

static int open_vmdk3(struct ia_image *img, struct ia_file *f, struct ia_error *err)
{
        struct vmdk_extent e = {.file = f};
        uint8_t h[VMDK_HDR3_LEN];

        if (read_zfill(f, h, sizeof(h), 4, "VMDK 3 header", err) < 0)
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

        if (read_zfill(f, h, sizeof(h), 4, "VMDK 4 header", err) < 0)
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
                desc = read_desc(f, desc_off << 9, err);
                if (!desc)
                        return -1;
                r = open_desc(img, desc, depth + 1, err);
                free(desc);
                return r;
        }
        if (ia_le64(h + 52) == VMDK4_GD_AT_END) {
                /* The footer (marker, header copy, end-of-stream marker) wins. */
                if (f->len < sizeof(foot))
                        return ia_error_set(err, IA_ERR_TRUNCATED,
                                            "vmdk: '%s' (%llu bytes) is too short for a footer",
                                            f->name, (unsigned long long)f->src->size);
                if (read_zfill(f, foot, sizeof(foot), f->len - sizeof(foot), "footer", err) < 0)
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
static int open_sparse(struct ia_image *img, struct ia_file *f, unsigned depth,
                       struct ia_error *err)
{
        uint8_t m[4];

        if (f->len < 4)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: '%s' is too small (%llu bytes) to be a VMDK image",
                                    f->name, (unsigned long long)f->src->size);
        if (read_zfill(f, m, sizeof(m), 0, "magic", err) < 0)
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
static int open_sesparse(struct ia_image *img, struct ia_file *f, struct ia_error *err)
{
        static const char *const names[] = {"flags", "reserved word 1", "reserved word 2",
                                            "reserved word 3", "reserved word 4"};
        struct vmdk_extent e = {.file = f, .sesparse = true, .entry_size = 8};
        uint8_t h[512], v[512];
        uint64_t x, vh_off, gd_size;

        if (read_zfill(f, h, sizeof(h), 0, "seSparse constant header", err) < 0)
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
        if (bdrv_range_bad(vh_off, sizeof(v)))
                return ia_error_set(err, IA_ERR_IO,
                                    "vmdk: seSparse volatile header offset %llu in '%s' is "
                                    "beyond any file",
                                    (unsigned long long)vh_off, f->name);
        if (read_zfill(f, v, sizeof(v), vh_off, "seSparse volatile header", err) < 0)
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

/*
 * A scanner for the one sscanf() format qemu reads extent lines with:
 * "%10s %lld %10s \"%511[^\n\r\"]\" %lld".  Whitespace skipping crosses line
 * ends, as sscanf's does; runs of whitespace are remembered so that a
 * descriptor of blank lines costs linear time.
 */
struct ws_memo {
        const char *from, *to; /* [from, to) is whitespace, *to is not */
};

static bool c_space(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static const char *skip_ws(const char *s, struct ws_memo *m)
{
        const char *t = s;

        if (m->from && s >= m->from && s <= m->to)
                return m->to;
        while (c_space(*t))
                t++;
        m->from = s;
        m->to = t;
        return t;
}

static const char *scan_str(const char *s, char *out, size_t width, struct ws_memo *m)
{
        size_t n = 0;

        s = skip_ws(s, m);
        while (*s && !c_space(*s) && n < width)
                out[n++] = *s++;
        out[n] = '\0';
        return n ? s : NULL;
}

static const char *scan_i64(const char *s, int64_t *out, struct ws_memo *m)
{
        bool neg = false;
        uint64_t v = 0;
        bool big = false;
        const char *d;

        s = skip_ws(s, m);
        if (*s == '+' || *s == '-')
                neg = *s++ == '-';
        for (d = s; *d >= '0' && *d <= '9'; d++) {
                if (v > (UINT64_MAX - 9) / 10)
                        big = true;
                else
                        v = v * 10 + (uint64_t)(*d - '0');
        }
        if (d == s)
                return NULL;
        /* glibc clamps like strtoll() */
        if (neg)
                *out = big || v > (uint64_t)INT64_MAX + 1 ? INT64_MIN : (int64_t)(0 - v);
        else
                *out = big || v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
        return d;
}

struct extent_line {
        char access[11], type[11], fname[VMDK_FNAME_MAX + 1];
        int64_t sectors, flat_off;
};

/*
 * memo[0] serves the skip at the start of a line (runs of blank lines),
 * memo[1] the skips between fields.
 */
static int scan_line(const char *p, struct extent_line *l, struct ws_memo memo[2])
{
        struct ws_memo *m = &memo[1];
        size_t n = 0;

        if (!(p = scan_str(p, l->access, 10, &memo[0])))
                return 0;
        if (!(p = scan_i64(p, &l->sectors, m)))
                return 1;
        if (!(p = scan_str(p, l->type, 10, m)))
                return 2;
        p = skip_ws(p, m);
        if (*p != '"')
                return 3;
        p++;
        while (*p && *p != '\n' && *p != '\r' && *p != '"' && n < VMDK_FNAME_MAX)
                l->fname[n++] = *p++;
        l->fname[n] = '\0';
        if (!n)
                return 3;
        if (*p != '"')
                return 4;
        if (!scan_i64(p + 1, &l->flat_off, m))
                return 4;
        return 5;
}

/* Open (or reuse: one file per distinct name) the extent file called name. */
static int open_extent_file(struct ia_image *img, const char *name, struct ia_file **out,
                            struct ia_error *err)
{
        struct vmdk_state *s = img->priv;
        struct vmdk_ref *r;

        for (size_t i = 0; i < s->n_refs; i++) {
                if (strcmp(s->refs[i].name, name) == 0) {
                        *out = s->refs[i].file;
                        return 0;
                }
        }
        if (s->n_refs == s->cap_refs) {
                size_t cap = s->cap_refs ? s->cap_refs * 2 : 8;

                r = realloc(s->refs, cap * sizeof(*r));
                if (!r)
                        return ia_error_set(err, IA_ERR_NOMEM, "vmdk: out of memory for extents");
                s->refs = r;
                s->cap_refs = cap;
        }
        r = &s->refs[s->n_refs];
        r->name = strdup(name);
        if (!r->name)
                return ia_error_set(err, IA_ERR_NOMEM, "vmdk: out of memory for an extent name");
        if (ia_image_open_ref(img, name, IA_REF_EXTENT, &r->file, err) < 0) {
                free(r->name);
                ia_error_prefix(err, "vmdk: extent '%s'", name);
                return -1;
        }
        s->n_refs++;
        *out = r->file;
        return 0;
}

static int invalid_line(const char *p, struct ia_error *err)
{
        size_t n = strcspn(p, "\n");

        return ia_error_set(err, IA_ERR_CORRUPT, "vmdk: invalid extent line: %.*s",
                            (int)(n > 200 ? 200 : n), p);
}

/* qemu's vmdk_parse_extents(). */
static int parse_extents(struct ia_image *img, const char *desc, unsigned depth,
                         struct ia_error *err)
{
        struct ws_memo memo[2] = {{0}};
        struct extent_line l;
        const char *p, *nl;

        for (p = desc; *p; p = nl ? nl + 1 : p + strlen(p)) {
                struct vmdk_extent e = {0};
                struct ia_file *f = NULL;
                int n;

                nl = strchr(p, '\n');
                l.flat_off = -1;
                n = scan_line(p, &l, memo);
                if (n < 4 || strcmp(l.access, "RW") != 0)
                        continue;
                if (strcmp(l.type, "FLAT") == 0) {
                        if (n != 5 || l.flat_off < 0)
                                return invalid_line(p, err);
                } else if (strcmp(l.type, "VMFS") == 0) {
                        if (n != 4)
                                return invalid_line(p, err);
                        l.flat_off = 0;
                } else if (n != 4) {
                        return invalid_line(p, err);
                }
                if (l.sectors <= 0)
                        continue;
                if (strcmp(l.type, "FLAT") != 0 && strcmp(l.type, "VMFS") != 0 &&
                    strcmp(l.type, "SPARSE") != 0 && strcmp(l.type, "VMFSSPARSE") != 0 &&
                    strcmp(l.type, "SESPARSE") != 0)
                        continue;
                if (((struct vmdk_state *)img->priv)->n_ext >= IA_VMDK_MAX_EXTENTS)
                        return ia_error_set(err, IA_ERR_LIMIT,
                                            "vmdk: more than %u extents in the descriptor: over "
                                            "the limit",
                                            IA_VMDK_MAX_EXTENTS);
                if (open_extent_file(img, l.fname, &f, err) < 0)
                        return -1;
                if (l.type[0] == 'F' || strcmp(l.type, "VMFS") == 0) {
                        if ((uint64_t)l.flat_off > (uint64_t)INT64_MAX / 512 ||
                            (uint64_t)l.sectors > (uint64_t)INT64_MAX / 512 ||
                            (uint64_t)l.flat_off * 512 >
                                (uint64_t)INT64_MAX - (uint64_t)l.sectors * 512)
                                return ia_error_set(err, IA_ERR_LIMIT,
                                                    "vmdk: flat extent '%s' at sector %lld of %lld "
                                                    "sectors lies beyond 2^63 bytes",
                                                    l.fname, (long long)l.flat_off,
                                                    (long long)l.sectors);
                        e.file = f;
                        e.flat = true;
                        e.sectors = (uint64_t)l.sectors;
                        e.flat_off = (uint64_t)l.flat_off * 512;
                        if (add_extent(img->priv, &e, err) < 0)
                                return -1;
                } else if (strcmp(l.type, "SESPARSE") == 0) {
                        if (open_sesparse(img, f, err) < 0)
                                return -1;
                } else if (open_sparse(img, f, depth, err) < 0) {
                        return -1;
                }
        }
        return 0;
}

static const char *const vmdk_desc_types[] = {
    "monolithicFlat",     "vmfs", "vmfsSparse", "seSparse", "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat", NULL,
};

/* qemu's vmdk_open_desc_file(): check createType, then read the extents. */
static int open_desc(struct ia_image *img, const char *desc, unsigned depth, struct ia_error *err)
{
        const char *end = desc + strlen(desc), *p, *q;
        char ct[VMDK_CTYPE_MAX];
        size_t i;

        p = strstr(desc, "createType");
        if (!p || (size_t)(end - p) <= strlen("createType") + 2)
                return ia_error_set(err, IA_ERR_CORRUPT, "vmdk: invalid descriptor: no createType");
        p += strlen("createType") + 2;
        q = memchr(p, '"', (size_t)(end - p));
        if (!q || (size_t)(q - p) + 1 > sizeof(ct))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vmdk: invalid descriptor: createType unterminated or longer "
                                    "than %zu bytes",
                                    sizeof(ct) - 1);
        memcpy(ct, p, (size_t)(q - p));
        ct[q - p] = '\0';
        for (i = 0; vmdk_desc_types[i]; i++)
                if (strcmp(ct, vmdk_desc_types[i]) == 0)
                        break;
        if (!vmdk_desc_types[i])
                return ia_error_set(err, IA_ERR_UNSUPPORTED, "vmdk: unsupported image type '%s'",
                                    ct);
        return parse_extents(img, desc, depth, err);
}

/* Does s hold a hex number after optional whitespace and sign, as sscanf("%x") wants? */
static bool scan_hex_ok(const char *s)
{
        while (c_space(*s))
                s++;
        if (*s == '+' || *s == '-')
                s++;
        return (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F');
}

/* qemu's vmdk_parent_open() and vmdk_read_cid(): the descriptor at desc_off. */
static int read_parent_and_cid(struct ia_image *img, uint64_t desc_off, struct ia_error *err)
{
        char *d, *p, *q;
        int r = -1;

        d = malloc(VMDK_DESC_SIZE + 1);
        if (!d)
                return ia_error_set(err, IA_ERR_NOMEM, "vmdk: out of memory for the descriptor");
        if (read_zfill(img->file, d, VMDK_DESC_SIZE, desc_off, "descriptor", err) < 0)
                goto out;
        d[VMDK_DESC_SIZE] = '\0';
        p = strstr(d, "parentFileNameHint");
        if (p) {
                p += strlen("parentFileNameHint") + 2;
                q = p <= d + VMDK_DESC_SIZE ? strchr(p, '"') : NULL;
                if (!q) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "vmdk: parentFileNameHint in '%s' has no closing quote",
                                     img->file->name);
                        goto out;
                }
                if ((size_t)(q - p) > VMDK_PARENT_MAX) {
                        ia_error_set(
                            err, IA_ERR_LIMIT,
                            "vmdk: parentFileNameHint in '%s' is %zu bytes long (at most %u)",
                            img->file->name, (size_t)(q - p), VMDK_PARENT_MAX);
                        goto out;
                }
                /* qemu opens the parent as VMDK, never probed. */
                if (q > p && ia_image_set_backing(img, p, (size_t)(q - p), "vmdk", err) < 0)
                        goto out;
        }
        d[VMDK_DESC_SIZE - 1] = '\0';
        p = strstr(d, "CID");
        q = strstr(d, "parentCID");
        if (!p || !scan_hex_ok(p + 4) || !q || !scan_hex_ok(q + 10)) {
                ia_error_set(err, IA_ERR_CORRUPT, "vmdk: the descriptor of '%s' lacks a %s",
                             img->file->name, !p || !scan_hex_ok(p + 4) ? "CID" : "parentCID");
                goto out;
        }
        /* Read as qemu reads them (the first "CID" may be parentCID's); a
         * parentCID of ffffffff names no parent. */
        snprintf(img->ident, IA_IDENT_LEN, "cid %08lx", strtoul(p + 4, NULL, 16) & 0xffffffffu);
        if (img->backing && (strtoul(q + 10, NULL, 16) & 0xffffffffu) != 0xffffffffu)
                snprintf(img->parent_ident[0], IA_IDENT_LEN, "cid %08lx",
                         strtoul(q + 10, NULL, 16) & 0xffffffffu);
        r = 0;
out:
        free(d);
        return r;
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
        desc = read_desc(img->file, 0, err);
        if (!desc)
                goto fail;
        magic = ia_be32((const uint8_t *)desc);
        if (magic == VMDK3_MAGIC || magic == VMDK4_MAGIC) {
                r = open_sparse(img, img->file, 0, err);
                desc_off = 0x200;
        } else {
                r = open_desc(img, desc, 0, err);
        }
        free(desc);
        if (r < 0 || read_parent_and_cid(img, desc_off, err) < 0)
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
        if (read_zfill(e->file, s->raw, (size_t)len, off, "grain directory", err) < 0)
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
        if (read_zfill(e->file, s->raw, (size_t)len, (uint64_t)gt_sect * 512, "grain table", err) <
            0)
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

static int vmdk_block_status(struct ia_image *img, uint64_t off, uint64_t len,
                             struct ia_bstatus *st, struct ia_error *err)
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
