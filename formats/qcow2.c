/*
 * qcow2: QEMU's copy-on-write format, versions 2 (compat 0.10) and 3.
 *
 * Layout (all numbers big-endian): a header in cluster 0 (72 bytes in v2,
 * header_length bytes in v3) followed by header extensions (type, length,
 * data padded to 8 bytes) up to the end of the first cluster or up to the
 * backing file name.  Guest offsets are translated through a two-level table:
 * the L1 table (l1_size 8-byte entries) points to L2 tables of one cluster
 * each, whose entries (8 bytes, or 16 with extended L2: the entry plus a
 * 64-bit bitmap of 32 subclusters, low half "allocated", high half "zero")
 * give the host cluster, the "zero" flag or the "compressed" flag.  The
 * refcount table points to refcount blocks of refcount_order-bit counts.
 *
 * The driver answers block status exactly as qemu 7.2's qcow2 driver does:
 * one L2 table (qemu's "slice") at most per answer, runs of (sub)clusters of
 * one type and, for allocated types, host-contiguous clusters; compressed
 * clusters one at a time; encrypted images never expose a host offset; and
 * qemu's "metadata preallocation" heuristic, which asks the host file about
 * holes when more clusters carry a refcount than the file has blocks.
 *
 * Memory is bounded: the L1 and refcount tables are read through small
 * windows, one L2 table (one cluster, at most 2 MiB) is cached.
 *
 * Not supported, deliberately: decompression and decryption (never needed
 * for a map), internal snapshots other than the active L1 table, bitmaps.
 * The snapshot table and the persistent bitmaps are still checked at open,
 * because qemu reads them there and refuses an image when they are broken.
 * Stricter than qemu: an L1, L2 or refcount table that lies past the end of
 * the file is an error (qemu reads zeroes there), and a header extension
 * running past the end of the header area is an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "image.h"
#include "window.h"
#include "banned.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */

#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_ENTRIES   (32u * 1024 * 1024 / 8) /* qemu: 32 MiB of L1 table */
#define QCOW2_MAX_REFTABLE     (8u * 1024 * 1024)      /* bytes of refcount table */
#define QCOW2_MAX_SNAPSHOTS    65536u
#define QCOW2_L2_SLICE         (64u * 1024) /* bytes of an L2 table cached at a time */
#define QCOW2_SNAPSHOT_HDR     40u
#define QCOW2_MAX_SNAP_EXTRA   1024u                 /* bytes of extra data per entry */
#define QCOW2_MAX_SNAP_TABLE   (64ull * 1024 * 1024) /* bytes of snapshot table */
#define QCOW2_MAX_BITMAP_DIR   (1024ull * 65535)     /* bytes of bitmap directory (qemu) */
#define QCOW2_BITMAP_ENTRY     24u
#define QCOW2_BM_MAX_TABLE     0x8000000u  /* bitmap table entries */
#define QCOW2_BM_MAX_PHYS      0x20000000u /* bytes of bitmap data */
#define QCOW2_BM_IN_USE        1u
/* Not on disk: our mark, in a bitmap's flags, for a duplicate that qemu skips
   (its table is never read).  Bit 31 is reserved on disk (qemu refuses a
   bitmap with unknown flags before this is set). */
#define QCOW2_BM_SKIPPED       (1u << 31)
#define QCOW2_BM_FLAGS_KNOWN   3u /* in use, auto */
#define QCOW2_BM_TABLE_RSVD    0xff000000000001feull
#define QCOW2_BM_CHECK_BUDGET  (256ull << 20) /* bitmap table bytes read at open */
#define QCOW2_BM_OFFSET_MASK   0x00fffffffffffe00ull
#define QEMU_MAX_IO_END        0x7fffffffc0000000ull /* qemu's BDRV_MAX_LENGTH */
#define QCOW2_MAX_BACKING_NAME 1023u
#define QCOW2_V2_HEADER        72u
#define QCOW2_V3_HEADER        104u

/* Incompatible feature bits. */
#define QCOW2_INCOMPAT_DIRTY       (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT     (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2       (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN       0x1full

/* Autoclear feature bits. */
#define QCOW2_AUTOCLEAR_BITMAPS       (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ull << 1)

/* Header extension types. */
#define QCOW2_EXT_END         0x00000000u
#define QCOW2_EXT_BACKING_FMT 0xe2792acau
#define QCOW2_EXT_FEATURES    0x6803f857u
#define QCOW2_EXT_CRYPTO      0x0537be77u
#define QCOW2_EXT_BITMAPS     0x23852875u
#define QCOW2_EXT_DATA_FILE   0x44415441u

/* Table entries. */
#define QCOW2_L1_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_L2_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_RT_OFFSET_MASK 0xfffffffffffffe00ull
#define QCOW2_L2_COPIED      (1ull << 63)
#define QCOW2_L2_COMPRESSED  (1ull << 62)
#define QCOW2_L2_ZERO        1ull
/* Bits the specification reserves (must be zero) in L1 and standard L2 entries. */
#define QCOW2_L1_RESERVED 0x7f000000000001ffull
#define QCOW2_L2_RESERVED 0x3f000000000001feull

#define QCOW2_SUBCLUSTERS 32u

/* How many L1 or refcount-table entries one window holds (4 KiB). */
#define QCOW2_WINDOW 512u
/* Bytes of one refcount block read at a time. */
#define QCOW2_RB_CHUNK 4096u

#define QCOW2_INT_MAX 2147483647ull

enum qcow2_type {
        QT_NORMAL,
        QT_COMPRESSED,
        QT_ZERO_PLAIN,
        QT_ZERO_ALLOC,
        QT_UNALLOC_PLAIN,
        QT_UNALLOC_ALLOC,
        QT_INVALID,
};

struct qcow2 {
        unsigned version;
        unsigned cluster_bits;
        uint64_t cluster_size;
        bool ext_l2;
        unsigned sc_bits;    /* log2 of the subcluster size */
        unsigned sc_per;     /* subclusters per cluster: 32 or 1 */
        unsigned l2_esize;   /* bytes per L2 entry: 8 or 16 */
        uint64_t l2_entries; /* entries per L2 table */
        unsigned l2_bits;    /* log2(l2_entries) */
        uint64_t l1_offset;
        uint32_t l1_size;
        bool encrypted;
        struct ia_file *data_file; /* external data file, or NULL */

        struct ia_window l1; /* a window of the L1 table */

        /*
         * One cached slice of an L2 table: a chain of 2 MiB-cluster layers
         * must not hold 2 MiB per layer (the depth cap times that is a lot).
         */
        uint8_t *l2;
        uint64_t l2_off;           /* table of the cached slice; 0: nothing cached */
        uint64_t l2_first;         /* index of the slice's first entry */
        uint64_t l2_slice_entries; /* entries per slice (a power of two) */

        /* The refcount table and blocks, for the preallocation heuristic. */
        uint64_t rt_offset;
        uint64_t rt_entries;
        unsigned refcount_order;
        struct ia_window rt; /* a window of the refcount table */
        uint8_t rb[QCOW2_RB_CHUNK];
        uint64_t rb_off; /* file offset of the cached chunk; 0: none */

        int prealloc; /* -1: not yet computed */
        /* qemu makes the image unusable after a fatal corruption: later queries fail. */
        bool dead;
        bool dead_after_next;

        /* Findings already reported for this image (each once). */
        bool found_reserved, found_overlap;
};

static int qcow2_probe(const struct ia_probe *p)
{
        uint32_t version;

        if (p->head_len < 8 || ia_be32(p->head) != QCOW2_MAGIC)
                return 0;
        version = ia_be32(p->head + 4);
        if (version < 2)
                return 0; /* qcow v1 */
        /* qemu claims any version >= 2 (and then refuses the unknown ones). */
        return version <= 3 ? 100 : 60;
}

/* Read an L1 entry through the window. */
static int l1_entry(struct qcow2 *q, uint64_t idx, uint64_t *out, struct ia_error *err)
{
        const uint8_t *p = ia_window_entry(&q->l1, idx, err);

        if (!p)
                return -1;
        *out = ia_be64(p);
        return 0;
}

/* Load the slice of the L2 table at off that holds entry idx. */
static int l2_load(struct ia_image *img, struct qcow2 *q, uint64_t off, uint64_t idx,
                   struct ia_error *err)
{
        uint64_t first = idx & ~(q->l2_slice_entries - 1);

        if (q->l2_off == off && q->l2_first == first)
                return 0;
        q->l2_off = 0;
        if (!ia_range_in(off, q->cluster_size, img->file->src->size))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: L2 table at offset %llu lies past the end of the file "
                                    "(%llu bytes)",
                                    (unsigned long long)off,
                                    (unsigned long long)img->file->src->size);
        if (ia_read(img->file->src, q->l2, (size_t)(q->l2_slice_entries * q->l2_esize),
                    off + first * q->l2_esize, "qcow2 L2 table", err) < 0)
                return -1;
        q->l2_off = off;
        q->l2_first = first;
        return 0;
}

static uint64_t l2_get(const struct qcow2 *q, uint64_t idx, uint64_t *bitmap)
{
        const uint8_t *p = q->l2 + (idx - q->l2_first) * q->l2_esize;

        *bitmap = q->ext_l2 ? ia_be64(p + 8) : 0;
        return ia_be64(p);
}

static enum qcow2_type cluster_type(const struct qcow2 *q, uint64_t entry, uint64_t bitmap,
                                    unsigned sc)
{
        uint64_t off = entry & QCOW2_L2_OFFSET_MASK;
        bool normal;

        if (entry & QCOW2_L2_COMPRESSED)
                return QT_COMPRESSED;
        if ((entry & QCOW2_L2_ZERO) && !q->ext_l2)
                return off ? QT_ZERO_ALLOC : QT_ZERO_PLAIN;
        /* With a data file, offset 0 is a real offset; COPIED tells it apart. */
        normal = off != 0 || (q->data_file && (entry & QCOW2_L2_COPIED));
        if (!q->ext_l2)
                return normal ? QT_NORMAL : QT_UNALLOC_PLAIN;
        if (normal) {
                if ((bitmap >> 32) & bitmap & 0xffffffffull)
                        return QT_INVALID;
                if (bitmap & (1ull << (32 + sc)))
                        return QT_ZERO_ALLOC;
                if (bitmap & (1ull << sc))
                        return QT_NORMAL;
                return QT_UNALLOC_ALLOC;
        }
        if (bitmap & 0xffffffffull)
                return QT_INVALID;
        if (bitmap & (1ull << (32 + sc)))
                return QT_ZERO_PLAIN;
        return QT_UNALLOC_PLAIN;
}

static unsigned count_trailing_ones32(uint32_t v)
{
        return v == 0xffffffffu ? 32 : (unsigned)__builtin_ctz(~v);
}

static unsigned count_trailing_zeros32(uint32_t v)
{
        return v ? (unsigned)__builtin_ctz(v) : 32;
}

/*
 * The type at subcluster sc of one entry and how many subclusters from sc on
 * share it (-1 for an invalid entry).
 */
static int range_type(const struct qcow2 *q, uint64_t entry, uint64_t bitmap, unsigned sc,
                      enum qcow2_type *type)
{
        uint32_t below = sc ? (uint32_t)((1ull << sc) - 1) : 0;
        uint32_t v;

        *type = cluster_type(q, entry, bitmap, sc);
        if (*type == QT_INVALID)
                return -1;
        if (!q->ext_l2 || *type == QT_COMPRESSED)
                return (int)(q->sc_per - sc);
        switch (*type) {
        case QT_NORMAL:
                v = (uint32_t)bitmap | below;
                return (int)(count_trailing_ones32(v) - sc);
        case QT_ZERO_PLAIN:
        case QT_ZERO_ALLOC:
                v = (uint32_t)(bitmap >> 32) | below;
                return (int)(count_trailing_ones32(v) - sc);
        default:
                v = ((uint32_t)(bitmap >> 32) | (uint32_t)bitmap) & ~below;
                return (int)(count_trailing_zeros32(v) - sc);
        }
}

static bool type_has_host(enum qcow2_type t)
{
        return t == QT_NORMAL || t == QT_ZERO_ALLOC || t == QT_UNALLOC_ALLOC;
}

/* The refcount of cluster idx is non-zero?  -1 on error (the heuristic then says no). */
static int refcount_nonzero(struct ia_image *img, struct qcow2 *q, uint64_t idx,
                            struct ia_error *err)
{
        unsigned rb_bits = q->cluster_bits + 3 - q->refcount_order; /* log2 entries per block */
        uint64_t rt_idx = idx >> rb_bits, in_block = idx & ((1ull << rb_bits) - 1);
        uint64_t rb, bit, byte, chunk;
        unsigned width = 1u << q->refcount_order;
        const uint8_t *p;

        if (rt_idx >= q->rt_entries)
                return 0;
        p = ia_window_entry(&q->rt, rt_idx, err);
        if (!p)
                return -1;
        rb = ia_be64(p) & QCOW2_RT_OFFSET_MASK;
        if (!rb)
                return 0;
        if (rb & (q->cluster_size - 1)) {
                /* qemu: a fatal corruption; the query goes on, later ones fail. */
                q->dead_after_next = true;
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: refcount block offset %llu is not cluster aligned",
                                    (unsigned long long)rb);
        }
        bit = in_block * width;
        byte = bit / 8;
        chunk = byte / QCOW2_RB_CHUNK * QCOW2_RB_CHUNK;
        if (q->rb_off != rb + chunk) {
                int64_t n;

                q->rb_off = 0;
                memset(q->rb, 0, sizeof(q->rb));
                /* Past the end of the file qemu reads zeroes. */
                n = ia_read_upto(img->file->src, q->rb, sizeof(q->rb), rb + chunk, err);
                if (n < 0)
                        return -1;
                q->rb_off = rb + chunk;
        }
        byte -= chunk;
        if (width < 8)
                return (q->rb[byte] >> (bit % 8)) & ((1u << width) - 1) ? 1 : 0;
        for (unsigned i = 0; i < width / 8; i++)
                if (q->rb[byte + i])
                        return 1;
        return 0;
}

/*
 * qemu's metadata-preallocation heuristic: more refcounted clusters than file
 * blocks.  Like qemu, a damaged refcount structure means "no" (1 or 0); but a
 * read that failed is an error (-1), not a silently different map.
 */
static int detect_prealloc(struct ia_image *img, struct qcow2 *q, struct ia_error *err)
{
        uint64_t file_len = img->file->len;
        uint64_t real = img->file->src->allocated / q->cluster_size;
        uint64_t threshold = real * 10 / 9 > real + 2 ? real * 10 / 9 : real + 2;
        uint64_t end = (file_len + q->cluster_size - 1) >> q->cluster_bits;
        uint64_t count = 0;
        struct ia_error local;

        for (uint64_t i = 0; i < end && count < threshold; i++) {
                int r = refcount_nonzero(img, q, i, &local);

                if (r < 0 && local.cat == IA_ERR_IO) {
                        *err = local;
                        ia_error_prefix(err, "qcow2: reading the refcounts");
                        return -1;
                }
                if (r < 0)
                        return 0;
                count += (uint64_t)r;
        }
        return count >= threshold;
}

static int corrupt(struct qcow2 *q, struct ia_error *err, const char *fmt, unsigned long long a,
                   unsigned long long b)
{
        q->dead = true;
        return ia_error_set(err, IA_ERR_CORRUPT, fmt, a, b);
}

/*
 * What qemu maps without complaint but cannot be a sound image: reserved bits
 * set in a table entry, and guest data stored where the image keeps its own
 * metadata (the header cluster, the L1 or refcount table, the L2 table that
 * points at it).  Findings, reported once per image; the map is unchanged.
 */
static void audit_entry(struct ia_image *img, struct qcow2 *q, uint64_t entry, uint64_t l2_off,
                        uint64_t l2_idx, enum qcow2_type type)
{
        uint64_t hc = entry & QCOW2_L2_OFFSET_MASK;
        const char *what = NULL;

        if (!q->found_reserved && type != QT_COMPRESSED && (entry & QCOW2_L2_RESERVED)) {
                q->found_reserved = true;
                ia_image_finding(img, "reserved-bits",
                                 "L2 entry %#llx (table %#llx, index %#llx) has reserved bits "
                                 "set: %#llx",
                                 (unsigned long long)entry, (unsigned long long)l2_off,
                                 (unsigned long long)l2_idx,
                                 (unsigned long long)(entry & QCOW2_L2_RESERVED));
        }
        if (q->found_overlap || q->data_file || !type_has_host(type) || type == QT_UNALLOC_ALLOC)
                return;
        if (hc < q->cluster_size)
                what = "the header";
        else if (hc < q->l1_offset + (uint64_t)q->l1_size * 8 &&
                 hc + q->cluster_size > q->l1_offset)
                what = "the L1 table";
        else if (hc < q->rt_offset + q->rt_entries * 8 && hc + q->cluster_size > q->rt_offset)
                what = "the refcount table";
        else if (hc == l2_off)
                what = "its own L2 table";
        if (!what)
                return;
        q->found_overlap = true;
        ia_image_finding(img, "data-overlaps-metadata",
                         "guest data cluster at host offset %#llx (L2 table %#llx, index %#llx) "
                         "lies on %s",
                         (unsigned long long)hc, (unsigned long long)l2_off,
                         (unsigned long long)l2_idx, what);
}

static int qcow2_block_status(struct ia_image *img, uint64_t off, uint64_t len,
                              struct ia_bstatus *st, struct ia_error *err)
{
        struct qcow2 *q = img->priv;
        uint64_t oic = off & (q->cluster_size - 1);
        uint64_t l2_idx = (off >> q->cluster_bits) & (q->l2_entries - 1);
        uint64_t l1_idx = off >> (q->cluster_bits + q->l2_bits);
        uint64_t needed, avail, l1e, l2_off, entry, bitmap, host = 0, nb, expect = 0;
        unsigned sc_idx = (unsigned)((off >> q->sc_bits) & (q->sc_per - 1));
        enum qcow2_type type, t;
        uint64_t count = 0;
        unsigned flags = 0;

        if (q->dead)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: the image was found corrupt by an earlier query");
        if (q->prealloc < 0) {
                int p = detect_prealloc(img, q, err);

                if (p < 0)
                        return -1;
                q->prealloc = p;
                if (q->dead_after_next)
                        q->dead = true;
        }

        needed = ia_min_u64(len, QCOW2_INT_MAX) + oic;
        avail = (q->l2_entries - l2_idx) << q->cluster_bits;
        if (needed > avail)
                needed = avail;

        type = QT_UNALLOC_PLAIN;
        if (l1_idx >= q->l1_size)
                goto out;
        if (l1_entry(q, l1_idx, &l1e, err) < 0)
                return -1;
        l2_off = l1e & QCOW2_L1_OFFSET_MASK;
        if ((l1e & QCOW2_L1_RESERVED) && !q->found_reserved) {
                q->found_reserved = true;
                ia_image_finding(img, "reserved-bits",
                                 "L1 entry %#llx (index %#llx) has reserved bits set: %#llx",
                                 (unsigned long long)l1e, (unsigned long long)l1_idx,
                                 (unsigned long long)(l1e & QCOW2_L1_RESERVED));
        }
        if (!l2_off)
                goto out;
        if (l2_off & (q->cluster_size - 1))
                return corrupt(
                    q, err, "qcow2: L2 table offset %#llx is not cluster aligned (L1 index %#llx)",
                    (unsigned long long)l2_off, (unsigned long long)l1_idx);
        if (l2_load(img, q, l2_off, l2_idx, err) < 0)
                return -1;
        /* no further than the cached slice */
        if (needed > (q->l2_first + q->l2_slice_entries - l2_idx) << q->cluster_bits)
                needed = (q->l2_first + q->l2_slice_entries - l2_idx) << q->cluster_bits;

        entry = l2_get(q, l2_idx, &bitmap);
        nb = (needed + q->cluster_size - 1) >> q->cluster_bits;
        type = cluster_type(q, entry, bitmap, sc_idx);
        if (q->version < 3 && (type == QT_ZERO_PLAIN || type == QT_ZERO_ALLOC))
                return corrupt(
                    q, err,
                    "qcow2: zero cluster entry in a version 2 image (L2 table %#llx, index %#llx)",
                    (unsigned long long)l2_off, (unsigned long long)l2_idx);
        if (type == QT_COMPRESSED && q->data_file)
                return corrupt(q, err,
                               "qcow2: compressed cluster in an image with an external data file "
                               "(L2 table %#llx, index %#llx)",
                               (unsigned long long)l2_off, (unsigned long long)l2_idx);
        if (type_has_host(type)) {
                uint64_t hc = entry & QCOW2_L2_OFFSET_MASK;

                host = hc + oic;
                if (hc & (q->cluster_size - 1))
                        return corrupt(
                            q, err,
                            "qcow2: cluster offset %#llx is not cluster aligned (L2 index %#llx)",
                            (unsigned long long)hc, (unsigned long long)l2_idx);
                if (q->data_file && hc != off - oic)
                        return corrupt(q, err,
                                       "qcow2: data file cluster offset %#llx differs from the "
                                       "guest offset %#llx",
                                       (unsigned long long)hc, (unsigned long long)(off - oic));
        }

        for (uint64_t i = 0; i < nb; i++) {
                unsigned first = i == 0 ? sc_idx : 0;
                int n;

                entry = l2_get(q, l2_idx + i, &bitmap);
                n = range_type(q, entry, bitmap, first, &t);
                if (n < 0)
                        return corrupt(
                            q, err, "qcow2: invalid L2 entry (L2 table %#llx, index %#llx)",
                            (unsigned long long)l2_off, (unsigned long long)(l2_idx + i));
                if (i == 0) {
                        if (t == QT_COMPRESSED) {
                                count = (uint64_t)n;
                                break;
                        }
                        expect = entry & QCOW2_L2_OFFSET_MASK;
                } else if (t != type) {
                        break;
                } else if (type_has_host(type)) {
                        expect += q->cluster_size;
                        if (expect != (entry & QCOW2_L2_OFFSET_MASK))
                                break;
                }
                audit_entry(img, q, entry, l2_off, l2_idx + i, t);
                count += (uint64_t)n;
                if (first + (unsigned)n < q->sc_per)
                        break;
        }
        avail = (count + sc_idx) << q->sc_bits;

out:
        if (avail > needed)
                avail = needed;
        memset(st, 0, sizeof(*st));
        st->len = avail - oic;
        if (type_has_host(type) && !q->encrypted) {
                flags |= IA_BS_OFFSET;
                st->host_off = host;
                st->file = q->data_file ? q->data_file : img->file;
        }
        if (type == QT_ZERO_PLAIN || type == QT_ZERO_ALLOC)
                flags |= IA_BS_ZERO;
        else if (type != QT_UNALLOC_PLAIN && type != QT_UNALLOC_ALLOC)
                flags |= IA_BS_DATA;
        if (type == QT_COMPRESSED)
                flags |= IA_BS_COMPRESSED;
        if (q->prealloc > 0 && (flags & IA_BS_DATA) && (flags & IA_BS_OFFSET))
                flags |= IA_BS_RECURSE;
        st->flags = flags;
        return 0;
}

/* qemu's validate_table_offset(): aligned, and the table's end fits in int64. */
static bool table_offset_ok(const struct qcow2 *q, uint64_t off, uint64_t entries, uint64_t esize)
{
        if (entries > (uint64_t)INT64_MAX / esize)
                return false;
        if ((uint64_t)INT64_MAX - entries * esize < off)
                return false;
        return (off & (q->cluster_size - 1)) == 0;
}

/* The extension data file name, backing format: what the header area holds. */
struct qcow2_exts {
        char backing_fmt[16];
        bool has_backing_fmt;
        const uint8_t *data_file;
        size_t data_file_len;
        bool has_data_file;
        uint32_t nb_bitmaps; /* from the bitmaps extension, when qemu heeds it */
        uint64_t bitmap_dir_size;
        uint64_t bitmap_dir_off;
};

static int read_extensions(const struct qcow2 *q, const uint8_t *hdr, uint64_t start, uint64_t end,
                           uint32_t crypt, uint64_t autoclear, struct qcow2_exts *x,
                           struct ia_error *err)
{
        uint64_t off = start;

        while (off < end) {
                uint32_t type, len;

                if (end - off < 8)
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "qcow2: header extension at offset %llu runs past the "
                                            "end of the header area (%llu bytes)",
                                            (unsigned long long)off, (unsigned long long)end);
                type = ia_be32(hdr + off);
                len = ia_be32(hdr + off + 4);
                off += 8;
                if (len > end - off)
                        return ia_error_set(
                            err, IA_ERR_CORRUPT,
                            "qcow2: header extension %#x of %u bytes at offset %llu "
                            "runs past the end of the header area (%llu bytes)",
                            type, len, (unsigned long long)off - 8, (unsigned long long)end);
                switch (type) {
                case QCOW2_EXT_END:
                        return 0;
                case QCOW2_EXT_BACKING_FMT:
                        if (len >= sizeof(x->backing_fmt))
                                return ia_error_set(
                                    err, IA_ERR_CORRUPT,
                                    "qcow2: backing format extension of %u bytes is "
                                    "too long (limit %zu)",
                                    len, sizeof(x->backing_fmt) - 1);
                        memcpy(x->backing_fmt, hdr + off, len);
                        x->backing_fmt[len] = '\0';
                        x->has_backing_fmt = true;
                        break;
                case QCOW2_EXT_CRYPTO:
                        if (crypt != 2)
                                return ia_error_set(
                                    err, IA_ERR_CORRUPT,
                                    "qcow2: encryption header extension in an image "
                                    "whose encryption method is %u, not LUKS",
                                    crypt);
                        if (len != 16)
                                return ia_error_set(
                                    err, IA_ERR_CORRUPT,
                                    "qcow2: encryption header extension of %u bytes "
                                    "(expected 16)",
                                    len);
                        break;
                case QCOW2_EXT_BITMAPS:
                        if (len != 24)
                                return ia_error_set(
                                    err, IA_ERR_CORRUPT,
                                    "qcow2: bitmaps extension of %u bytes (expected 24)", len);
                        if (autoclear & QCOW2_AUTOCLEAR_BITMAPS) {
                                uint32_t nb = ia_be32(hdr + off);

                                if (nb == 0 || nb > 65535)
                                        return ia_error_set(err, IA_ERR_CORRUPT,
                                                            "qcow2: bitmaps extension lists %u "
                                                            "bitmaps (1 to 65535 allowed)",
                                                            nb);
                                if (ia_be32(hdr + off + 4) != 0)
                                        return ia_error_set(err, IA_ERR_CORRUPT,
                                                            "qcow2: bitmaps extension reserved "
                                                            "field is not zero");
                                if (ia_be64(hdr + off + 8) > QCOW2_MAX_BITMAP_DIR)
                                        return ia_error_set(
                                            err, IA_ERR_LIMIT,
                                            "qcow2: bitmap directory size %llu "
                                            "exceeds the limit (%llu)",
                                            (unsigned long long)ia_be64(hdr + off + 8),
                                            (unsigned long long)QCOW2_MAX_BITMAP_DIR);
                                if (ia_be64(hdr + off + 16) & (q->cluster_size - 1))
                                        return ia_error_set(
                                            err, IA_ERR_CORRUPT,
                                            "qcow2: bitmap directory offset %llu "
                                            "is not cluster aligned",
                                            (unsigned long long)ia_be64(hdr + off + 16));
                                x->nb_bitmaps = nb;
                                x->bitmap_dir_size = ia_be64(hdr + off + 8);
                                x->bitmap_dir_off = ia_be64(hdr + off + 16);
                        }
                        break;
                case QCOW2_EXT_DATA_FILE:
                        x->data_file = hdr + off;
                        x->data_file_len = len;
                        x->has_data_file = true;
                        break;
                default:
                        break; /* feature names, unknown extensions */
                }
                off += ((uint64_t)len + 7) & ~7ull;
        }
        return 0;
}

/*
 * The internal snapshot table is not needed for the map (only the active L1
 * table is mapped), but qemu reads it when it opens the image and refuses two
 * things found there: an entry with more than 1 KiB of extra data, and a
 * table that grows past 64 MiB.  Walk it as qemu does: entries 8-aligned, a
 * 40-byte header then extra data, id and name; bytes past the end of the
 * file read as zeroes.  Only the headers are read.
 */
static int check_snapshots(struct ia_source *src, uint64_t table, uint32_t nb, struct ia_error *err)
{
        uint64_t off = table;
        uint8_t h[QCOW2_SNAPSHOT_HDR];

        for (uint32_t i = 0; i < nb; i++) {
                uint32_t extra;
                int64_t n;

                off = (off + 7) & ~7ull;
                if (off >= src->size) {
                        /* Every remaining entry reads as zeroes: 40 bytes each. */
                        off += (uint64_t)(nb - i) * QCOW2_SNAPSHOT_HDR;
                        if (off - table > QCOW2_MAX_SNAP_TABLE)
                                goto too_big;
                        return 0;
                }
                n = ia_read_upto(src, h, sizeof(h), off, err);
                if (n < 0)
                        return -1;
                memset(h + n, 0, sizeof(h) - (size_t)n);
                extra = ia_be32(h + 36);
                if (extra > QCOW2_MAX_SNAP_EXTRA)
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "qcow2: snapshot table entry %u has %u bytes of extra "
                                            "data (limit %u)",
                                            i, extra, QCOW2_MAX_SNAP_EXTRA);
                off += QCOW2_SNAPSHOT_HDR + extra + ia_be16(h + 12) + ia_be16(h + 14);
                if (off - table > QCOW2_MAX_SNAP_TABLE)
                        goto too_big;
        }
        return 0;
too_big:
        return ia_error_set(err, IA_ERR_CORRUPT,
                            "qcow2: the snapshot table at offset %llu (%u entries) is larger than "
                            "64 MiB",
                            (unsigned long long)table, nb);
}

/* Read len bytes at off; bytes past the end of the file read as zeroes, as in qemu. */
static int read_zero_fill(struct ia_source *src, void *buf, size_t len, uint64_t off,
                          struct ia_error *err)
{
        int64_t n = 0;

        if (off < src->size) {
                n = ia_read_upto(src, buf, len, off, err);
                if (n < 0)
                        return -1;
        }
        memset((uint8_t *)buf + n, 0, len - (size_t)n);
        return 0;
}

struct bm_seen {
        uint64_t hash; /* 0: empty slot */
        uint64_t name_off;
        uint32_t name_len;
};

static uint64_t name_hash(const uint8_t *p, size_t n)
{
        uint64_t h = 0xcbf29ce484222325ull;

        for (size_t i = 0; i < n; i++)
                h = (h ^ p[i]) * 0x100000001b3ull;
        return h | 1;
}

/* The entries of one bitmap table must be well-formed (read only inside the file). */
static int check_bitmap_table(struct ia_source *src, const struct qcow2 *q, uint64_t off,
                              uint32_t size, uint64_t *budget, struct ia_error *err)
{
        uint8_t buf[4096];
        uint64_t end;

        if (off > QEMU_MAX_IO_END || (uint64_t)size * 8 > QEMU_MAX_IO_END - off)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: bitmap table offset %llu is out of range",
                                    (unsigned long long)off);
        /* Past the end of the file the table reads as zeroes: valid entries. */
        end = off + (uint64_t)size * 8;
        if (end > ((src->size + 7) & ~7ull))
                end = off < src->size ? (src->size + 7) & ~7ull : off;
        if (end - off > *budget)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "qcow2: the bitmap tables are too large to check (over %llu "
                                    "bytes)",
                                    (unsigned long long)QCOW2_BM_CHECK_BUDGET);
        *budget -= end - off;
        while (off < end) {
                size_t n = end - off < sizeof(buf) ? (size_t)(end - off) : sizeof(buf);

                if (read_zero_fill(src, buf, n, off, err) < 0)
                        return -1;
                for (size_t i = 0; i < n; i += 8) {
                        uint64_t e = ia_be64(buf + i), host = e & QCOW2_BM_OFFSET_MASK;

                        if ((e & QCOW2_BM_TABLE_RSVD) ||
                            (host && ((e & 1) || (host & (q->cluster_size - 1)))))
                                return ia_error_set(err, IA_ERR_CORRUPT,
                                                    "qcow2: bitmap table entry %#llx at offset "
                                                    "%llu is invalid",
                                                    (unsigned long long)e,
                                                    (unsigned long long)(off + i));
                }
                off += n;
        }
        return 0;
}

/*
 * Persistent dirty bitmaps are not part of the map, but qemu loads them when
 * it opens the image and refuses the image when the bitmap directory is
 * broken, an entry breaks the format's constraints, two usable bitmaps share
 * a name, or a bitmap table entry is malformed.  Check the same things,
 * streaming: one entry, one name and one 4 KiB slice of a table at a time.
 */
static int check_bitmaps(struct ia_source *src, const struct qcow2 *q, const struct qcow2_exts *x,
                         uint64_t vsize, struct ia_error *err)
{
        uint64_t pos = 0, budget = QCOW2_BM_CHECK_BUDGET, cap = 1;
        struct bm_seen *seen;
        uint8_t e[QCOW2_BITMAP_ENTRY], name[1024], other[1024];
        uint32_t count = 0;
        int rc = -1;

        if (!x->nb_bitmaps)
                return 0;
        if (x->bitmap_dir_size == 0)
                return ia_error_set(err, IA_ERR_CORRUPT, "qcow2: the bitmap directory is empty");
        if (x->bitmap_dir_off > QEMU_MAX_IO_END ||
            x->bitmap_dir_size > QEMU_MAX_IO_END - x->bitmap_dir_off)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: bitmap directory offset %llu is out of range",
                                    (unsigned long long)x->bitmap_dir_off);
        while (cap < 2ull * x->nb_bitmaps)
                cap <<= 1;
        seen = calloc(cap, sizeof(*seen));
        if (!seen)
                return ia_error_set(err, IA_ERR_NOMEM, "qcow2: out of memory");
        while (pos < x->bitmap_dir_size) {
                uint64_t toff, phys, esize, h, slot;
                uint32_t tsize, flags, extra;
                unsigned gran;
                uint16_t nlen;
                size_t clen;

                if (x->bitmap_dir_size - pos < QCOW2_BITMAP_ENTRY)
                        goto broken;
                if (++count > x->nb_bitmaps) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "qcow2: the bitmap directory holds more than the %u bitmaps "
                                     "its extension lists",
                                     x->nb_bitmaps);
                        goto out;
                }
                if (read_zero_fill(src, e, sizeof(e), x->bitmap_dir_off + pos, err) < 0)
                        goto out;
                toff = ia_be64(e);
                tsize = ia_be32(e + 8);
                flags = ia_be32(e + 12);
                gran = e[17];
                nlen = ia_be16(e + 18);
                extra = ia_be32(e + 20);
                esize = (QCOW2_BITMAP_ENTRY + (uint64_t)nlen + extra + 7) & ~7ull;
                if (esize > x->bitmap_dir_size - pos)
                        goto broken;
                if (extra != 0) {
                        ia_error_set(err, IA_ERR_UNSUPPORTED,
                                     "qcow2: bitmap %u has extra data, which qemu does not "
                                     "support",
                                     count - 1);
                        goto out;
                }
                phys = (uint64_t)tsize * q->cluster_size;
                if (tsize == 0 || toff == 0 || (toff & (q->cluster_size - 1)) ||
                    tsize > QCOW2_BM_MAX_TABLE || gran > 31 || gran < 9 ||
                    (flags & ~QCOW2_BM_FLAGS_KNOWN) || nlen > 1023 || e[16] != 1 ||
                    phys > QCOW2_BM_MAX_PHYS ||
                    (!(flags & QCOW2_BM_IN_USE) && vsize > ((phys * 8) << gran))) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "qcow2: bitmap %u (directory offset %llu) breaks the "
                                     "format's constraints",
                                     count - 1, (unsigned long long)pos);
                        goto out;
                }
                if (read_zero_fill(src, name, nlen, x->bitmap_dir_off + pos + QCOW2_BITMAP_ENTRY,
                                   err) < 0)
                        goto out;
                {
                        /* qemu cuts the name at a NUL */
                        const uint8_t *z = memchr(name, 0, nlen);

                        clen = z ? (size_t)(z - name) : nlen;
                }
                h = name_hash(name, clen);
                for (slot = h & (cap - 1);; slot = (slot + 1) & (cap - 1)) {
                        struct bm_seen *sl = &seen[slot];

                        if (!sl->hash) {
                                sl->hash = h;
                                sl->name_off = x->bitmap_dir_off + pos + QCOW2_BITMAP_ENTRY;
                                sl->name_len = (uint32_t)clen;
                                break;
                        }
                        if (sl->hash != h || sl->name_len != clen)
                                continue;
                        if (read_zero_fill(src, other, clen, sl->name_off, err) < 0)
                                goto out;
                        if (memcmp(other, name, clen) != 0)
                                continue;
                        /* A second bitmap of the same name: qemu skips it when it is
                         * in use, and cannot create it otherwise. */
                        if (!(flags & QCOW2_BM_IN_USE)) {
                                ia_error_set(err, IA_ERR_CORRUPT,
                                             "qcow2: two bitmaps are named '%.*s'", (int)clen,
                                             (const char *)name);
                                goto out;
                        }
                        flags |= QCOW2_BM_SKIPPED;
                        break;
                }
                if (!(flags & (QCOW2_BM_IN_USE | QCOW2_BM_SKIPPED)) &&
                    check_bitmap_table(src, q, toff, tsize, &budget, err) < 0)
                        goto out;
                pos += esize;
        }
        if (count != x->nb_bitmaps) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qcow2: the bitmap directory holds %u bitmaps, its extension lists "
                             "%u",
                             count, x->nb_bitmaps);
                goto out;
        }
        rc = 0;
        goto out;
broken:
        ia_error_set(err, IA_ERR_CORRUPT,
                     "qcow2: the bitmap directory at offset %llu (%llu bytes) is broken at byte "
                     "%llu",
                     (unsigned long long)x->bitmap_dir_off, (unsigned long long)x->bitmap_dir_size,
                     (unsigned long long)pos);
out:
        free(seen);
        return rc;
}

/* Every L2 table the L1 table names must lie inside the file (aligned ones). */
static int check_l1(struct ia_image *img, struct qcow2 *q, struct ia_error *err)
{
        uint64_t size = img->file->src->size;

        for (uint64_t i = 0; i < q->l1_size; i++) {
                uint64_t e, l2;

                if (l1_entry(q, i, &e, err) < 0)
                        return -1;
                l2 = e & QCOW2_L1_OFFSET_MASK;
                if (!l2 || (l2 & (q->cluster_size - 1)))
                        continue; /* unaligned: reported when it is used, as qemu does */
                if (!ia_range_in(l2, q->cluster_size, size))
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "qcow2: L2 table offset %llu (L1 index %llu) lies past "
                                            "the end of the file (%llu bytes)",
                                            (unsigned long long)l2, (unsigned long long)i,
                                            (unsigned long long)size);
        }
        return 0;
}

static int qcow2_open(struct ia_image *img, struct ia_error *err)
{
        struct ia_source *src = img->file->src;
        struct qcow2_exts x = {0};
        uint8_t *hdr = NULL;
        struct qcow2 *q;
        uint64_t incompat = 0, autoclear = 0, hdr_len, size, backing_off, rt_clusters;
        uint64_t l1_cover, snap_off, ext_end;
        uint32_t version, cbits, backing_len, crypt, nb_snap;
        int64_t got;
        uint8_t compression = 0;

        q = calloc(1, sizeof(*q));
        if (!q)
                return ia_error_set(err, IA_ERR_NOMEM, "qcow2: out of memory");
        q->prealloc = -1;

        {
                uint8_t fixed[QCOW2_V3_HEADER];

                got = ia_read_upto(src, fixed, sizeof(fixed), 0, err);
                if (got < 0)
                        goto fail;
                if (got < (int64_t)QCOW2_V2_HEADER) {
                        ia_error_set(err, IA_ERR_TRUNCATED,
                                     "qcow2: the file (%lld bytes) is shorter than a qcow2 header "
                                     "(%u bytes)",
                                     (long long)got, QCOW2_V2_HEADER);
                        goto fail;
                }
                if (ia_be32(fixed) != QCOW2_MAGIC) {
                        ia_error_set(err, IA_ERR_CORRUPT, "qcow2: bad magic %#x", ia_be32(fixed));
                        goto fail;
                }
                version = ia_be32(fixed + 4);
                if (version < 2 || version > 3) {
                        ia_error_set(err, IA_ERR_UNSUPPORTED,
                                     "qcow2: version %u is not supported (2 and 3 are)", version);
                        goto fail;
                }
                cbits = ia_be32(fixed + 20);
                if (cbits < QCOW2_MIN_CLUSTER_BITS || cbits > QCOW2_MAX_CLUSTER_BITS) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "qcow2: cluster_bits %u is outside %u..%u", cbits,
                                     QCOW2_MIN_CLUSTER_BITS, QCOW2_MAX_CLUSTER_BITS);
                        goto fail;
                }
                q->version = version;
                q->cluster_bits = cbits;
                q->cluster_size = 1ull << cbits;
                backing_off = ia_be64(fixed + 8);
                backing_len = ia_be32(fixed + 16);
                size = ia_be64(fixed + 24);
                crypt = ia_be32(fixed + 32);
                q->l1_size = ia_be32(fixed + 36);
                q->l1_offset = ia_be64(fixed + 40);
                q->rt_offset = ia_be64(fixed + 48);
                rt_clusters = ia_be32(fixed + 56);
                nb_snap = ia_be32(fixed + 60);
                snap_off = ia_be64(fixed + 64);
                hdr_len = QCOW2_V2_HEADER;
                q->refcount_order = 4;
                if (version >= 3) {
                        if (got < (int64_t)QCOW2_V3_HEADER) {
                                ia_error_set(err, IA_ERR_TRUNCATED,
                                             "qcow2: the file (%lld bytes) is shorter than a "
                                             "version 3 header (%u bytes)",
                                             (long long)got, QCOW2_V3_HEADER);
                                goto fail;
                        }
                        incompat = ia_be64(fixed + 72);
                        autoclear = ia_be64(fixed + 88);
                        q->refcount_order = ia_be32(fixed + 96);
                        hdr_len = ia_be32(fixed + 100);
                        if (hdr_len < QCOW2_V3_HEADER) {
                                ia_error_set(err, IA_ERR_CORRUPT,
                                             "qcow2: header_length %llu is shorter than %u",
                                             (unsigned long long)hdr_len, QCOW2_V3_HEADER);
                                goto fail;
                        }
                        if (hdr_len > q->cluster_size) {
                                ia_error_set(err, IA_ERR_CORRUPT,
                                             "qcow2: header_length %llu exceeds the cluster size "
                                             "%llu",
                                             (unsigned long long)hdr_len,
                                             (unsigned long long)q->cluster_size);
                                goto fail;
                        }
                }
        }

        /* The whole first cluster: header, extensions, backing name (zeroes past EOF). */
        hdr = calloc(1, (size_t)q->cluster_size);
        if (!hdr) {
                ia_error_set(err, IA_ERR_NOMEM, "qcow2: out of memory for the header cluster");
                goto fail;
        }
        got = ia_read_upto(src, hdr, (size_t)q->cluster_size, 0, err);
        if (got < 0)
                goto fail;
        if ((uint64_t)got < hdr_len) {
                ia_error_set(err, IA_ERR_TRUNCATED,
                             "qcow2: the file (%lld bytes) is shorter than its header_length "
                             "(%llu)",
                             (long long)got, (unsigned long long)hdr_len);
                goto fail;
        }
        if (hdr_len > QCOW2_V3_HEADER)
                compression = hdr[104];

        if (backing_off > q->cluster_size) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qcow2: backing file name offset %llu lies beyond the first cluster "
                             "(%llu bytes)",
                             (unsigned long long)backing_off, (unsigned long long)q->cluster_size);
                goto fail;
        }
        ext_end = backing_off ? backing_off : q->cluster_size;
        if (incompat & ~QCOW2_INCOMPAT_KNOWN) {
                ia_error_set(err, IA_ERR_UNSUPPORTED,
                             "qcow2: unsupported incompatible feature bits %#llx",
                             (unsigned long long)(incompat & ~QCOW2_INCOMPAT_KNOWN));
                goto fail;
        }
        if (q->refcount_order > 6) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qcow2: refcount_order %u is too large (at most 6: 64-bit counts)",
                             q->refcount_order);
                goto fail;
        }
        if (compression > 1) {
                ia_error_set(err, IA_ERR_UNSUPPORTED, "qcow2: unknown compression type %u",
                             compression);
                goto fail;
        }
        if ((compression != 0) != !!(incompat & QCOW2_INCOMPAT_COMPRESSION)) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qcow2: compression type %u does not agree with incompatible "
                             "feature bit 3",
                             compression);
                goto fail;
        }
        if (read_extensions(q, hdr, hdr_len, ext_end, crypt, autoclear, &x, err) < 0)
                goto fail;

        if (crypt > 2) {
                ia_error_set(err, IA_ERR_UNSUPPORTED, "qcow2: unknown encryption method %u", crypt);
                goto fail;
        }
        q->encrypted = crypt != 0;

        q->ext_l2 = (incompat & QCOW2_INCOMPAT_EXTL2) != 0;
        q->sc_per = q->ext_l2 ? QCOW2_SUBCLUSTERS : 1;
        q->sc_bits = q->ext_l2 ? cbits - 5 : cbits;
        q->l2_esize = q->ext_l2 ? 16 : 8;
        q->l2_bits = cbits - (q->ext_l2 ? 4 : 3);
        q->l2_entries = 1ull << q->l2_bits;
        if (q->ext_l2 && q->sc_bits < QCOW2_MIN_CLUSTER_BITS) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qcow2: extended L2 entries need clusters of at least 16384 bytes, "
                             "not %llu",
                             (unsigned long long)q->cluster_size);
                goto fail;
        }

        if (size > (uint64_t)INT64_MAX) {
                ia_error_set(err, IA_ERR_LIMIT, "qcow2: virtual size %llu is too large",
                             (unsigned long long)size);
                goto fail;
        }
        if (rt_clusters == 0) {
                ia_error_set(err, IA_ERR_CORRUPT, "qcow2: the image has no refcount table");
                goto fail;
        }
        if (rt_clusters > QCOW2_MAX_REFTABLE >> cbits) {
                ia_error_set(err, IA_ERR_LIMIT,
                             "qcow2: refcount table of %llu clusters is too large (limit %u)",
                             (unsigned long long)rt_clusters, QCOW2_MAX_REFTABLE >> cbits);
                goto fail;
        }
        q->rt_entries = rt_clusters << (cbits - 3);
        if (!table_offset_ok(q, q->rt_offset, rt_clusters << cbits, 1)) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qcow2: refcount table offset %llu is invalid (unaligned or too "
                             "large)",
                             (unsigned long long)q->rt_offset);
                goto fail;
        }
        ia_window_init(&q->rt, src, q->rt_offset, q->rt_entries, 8, QCOW2_WINDOW, IA_WINDOW_ALIGNED,
                       "qcow2 refcount table");
        if (!ia_window_fits(&q->rt)) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qcow2: refcount table at offset %llu (%llu bytes) lies past the end "
                             "of the file (%llu bytes)",
                             (unsigned long long)q->rt_offset,
                             (unsigned long long)(rt_clusters << cbits),
                             (unsigned long long)src->size);
                goto fail;
        }
        if (nb_snap > QCOW2_MAX_SNAPSHOTS) {
                ia_error_set(err, IA_ERR_LIMIT, "qcow2: %u snapshots is too many (limit %u)",
                             nb_snap, QCOW2_MAX_SNAPSHOTS);
                goto fail;
        }
        if (!table_offset_ok(q, snap_off, nb_snap, QCOW2_SNAPSHOT_HDR)) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qcow2: snapshot table offset %llu is invalid (unaligned or too "
                             "large)",
                             (unsigned long long)snap_off);
                goto fail;
        }

        if (q->l1_size > QCOW2_MAX_L1_ENTRIES) {
                ia_error_set(err, IA_ERR_LIMIT,
                             "qcow2: active L1 table too large: %u entries (limit %u)", q->l1_size,
                             QCOW2_MAX_L1_ENTRIES);
                goto fail;
        }
        {
                unsigned shift = cbits + q->l2_bits; /* at most 39 */

                l1_cover = (size >> shift) + ((size & ((1ull << shift) - 1)) != 0);
        }
        if (l1_cover > QCOW2_INT_MAX) {
                ia_error_set(err, IA_ERR_LIMIT, "qcow2: virtual size %llu is too large",
                             (unsigned long long)size);
                goto fail;
        }
        if (q->l1_size < l1_cover) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qcow2: L1 table of %u entries is too small for the virtual size "
                             "%llu (%llu needed)",
                             q->l1_size, (unsigned long long)size, (unsigned long long)l1_cover);
                goto fail;
        }
        if (!table_offset_ok(q, q->l1_offset, q->l1_size, 8)) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qcow2: L1 table offset %llu is invalid (unaligned or too large)",
                             (unsigned long long)q->l1_offset);
                goto fail;
        }
        ia_window_init(&q->l1, src, q->l1_offset, q->l1_size, 8, QCOW2_WINDOW, IA_WINDOW_ALIGNED,
                       "qcow2 L1 table");
        if (q->l1_size && !ia_window_fits(&q->l1)) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qcow2: L1 table at offset %llu (%u entries) lies past the end of the "
                             "file (%llu bytes)",
                             (unsigned long long)q->l1_offset, q->l1_size,
                             (unsigned long long)src->size);
                goto fail;
        }

        if (backing_off) {
                uint64_t lim = q->cluster_size - backing_off;

                if (lim > QCOW2_MAX_BACKING_NAME)
                        lim = QCOW2_MAX_BACKING_NAME;
                if (backing_len > lim) {
                        ia_error_set(
                            err, IA_ERR_CORRUPT,
                            "qcow2: backing file name of %u bytes is too long (limit %llu)",
                            backing_len, (unsigned long long)lim);
                        goto fail;
                }
                if (backing_len && hdr[backing_off] != '\0' &&
                    ia_image_set_backing(img, (const char *)hdr + backing_off, backing_len,
                                         x.has_backing_fmt ? x.backing_fmt : NULL, err) < 0)
                        goto fail;
        }

        if (check_snapshots(src, snap_off, nb_snap, err) < 0)
                goto fail_backing;
        if (check_bitmaps(src, q, &x, size / 512 * 512, err) < 0)
                goto fail_backing;
        if (check_l1(img, q, err) < 0)
                goto fail_backing;

        q->l2_slice_entries = ia_min_u64(q->l2_entries, QCOW2_L2_SLICE / q->l2_esize);
        q->l2 = malloc((size_t)(q->l2_slice_entries * q->l2_esize));
        if (!q->l2) {
                ia_error_set(err, IA_ERR_NOMEM, "qcow2: out of memory for an L2 table");
                goto fail_backing;
        }

        if (incompat & QCOW2_INCOMPAT_DATA_FILE) {
                char *name;

                if (!x.has_data_file) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "qcow2: the image needs an external data file but names none");
                        goto fail_l2;
                }
                name = malloc(x.data_file_len + 1);
                if (!name) {
                        ia_error_set(err, IA_ERR_NOMEM, "qcow2: out of memory");
                        goto fail_l2;
                }
                memcpy(name, x.data_file, x.data_file_len);
                name[x.data_file_len] = '\0';
                if (ia_image_open_ref(img, name, IA_REF_DATA_FILE, &q->data_file, err) < 0) {
                        free(name);
                        goto fail_l2;
                }
                free(name);
                img->flags |= IA_IMG_EXTERNAL_DATA;
        } else if (autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qcow2: data_file_raw is set but the image has no external data file");
                goto fail_l2;
        }

        if (incompat & QCOW2_INCOMPAT_DIRTY)
                img->flags |= IA_IMG_DIRTY;
        if (incompat & QCOW2_INCOMPAT_CORRUPT)
                img->flags |= IA_IMG_CORRUPT;
        if (q->encrypted)
                img->flags |= IA_IMG_ENCRYPTED;
        if (nb_snap)
                img->flags |= IA_IMG_SNAPSHOTS;
        img->size = size / 512 * 512;
        img->cluster_size = (uint32_t)q->cluster_size;
        img->priv = q;
        free(hdr);
        return 0;

fail_l2:
        free(q->l2);
fail_backing:
        free(img->backing);
        img->backing = NULL;
        img->backing_fmt[0] = '\0';
fail:
        free(hdr);
        free(q);
        return -1;
}

static void qcow2_close(struct ia_image *img)
{
        struct qcow2 *q = img->priv;

        if (!q)
                return;
        ia_file_free(q->data_file);
        free(q->l2);
        free(q);
        img->priv = NULL;
}

const struct ia_driver ia_drv_qcow2 = {
    .name = "qcow2",
    .flags = IA_DRV_BACKING,
    .probe = qcow2_probe,
    .open = qcow2_open,
    .block_status = qcow2_block_status,
    .close = qcow2_close,
};
