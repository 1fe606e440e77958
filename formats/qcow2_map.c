/*
 * qcow2 block status: the guest offset through the L1 table (read through a
 * window) to one cached slice of an L2 table, the (sub)cluster types of the
 * entries found there, and the findings an entry can raise.  See qcow2.c for
 * the format and qemu's rules this follows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_int.h"
#include "banned.h"

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

/*
 * Where the L2 table for L1 index l1_idx lies (*l2_off, 0: unallocated);
 * reserved L1 bits are a finding, reported once.
 */
static int l2_table_at(struct ia_image *img, struct qcow2 *q, uint64_t l1_idx, uint64_t *l2_off,
                       struct ia_error *err)
{
        uint64_t l1e;

        if (qcow2_l1_entry(q, l1_idx, &l1e, err) < 0)
                return -1;
        *l2_off = l1e & QCOW2_L1_OFFSET_MASK;
        if ((l1e & QCOW2_L1_RESERVED) && !q->found_reserved) {
                q->found_reserved = true;
                ia_image_finding(img, "reserved-bits",
                                 "L1 entry %#llx (index %#llx) has reserved bits set: %#llx",
                                 (unsigned long long)l1e, (unsigned long long)l1_idx,
                                 (unsigned long long)(l1e & QCOW2_L1_RESERVED));
        }
        if (*l2_off & (q->cluster_size - 1))
                return corrupt(
                    q, err, "qcow2: L2 table offset %#llx is not cluster aligned (L1 index %#llx)",
                    (unsigned long long)*l2_off, (unsigned long long)l1_idx);
        return 0;
}

/*
 * The first entry of an answer (guest offset off, oic bytes into its
 * cluster) must be possible in this image: a fatal corruption otherwise.
 * *host: where its data lies, for types with a host cluster.
 */
static int check_first(struct qcow2 *q, uint64_t entry, enum qcow2_type type, uint64_t off,
                       uint64_t oic, uint64_t l2_off, uint64_t l2_idx, uint64_t *host,
                       struct ia_error *err)
{
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

                *host = hc + oic;
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
        return 0;
}

/*
 * *count: how many subclusters, from subcluster sc_idx of entry l2_idx on
 * and through at most nb entries, answer like the first (of type type): of
 * one type and, for types with a host cluster, host-contiguous; a
 * compressed cluster alone.  Audits each entry it takes.
 */
static int run_length(struct ia_image *img, struct qcow2 *q, uint64_t l2_off, uint64_t l2_idx,
                      unsigned sc_idx, uint64_t nb, enum qcow2_type type, uint64_t *count,
                      struct ia_error *err)
{
        uint64_t entry, bitmap, expect = 0;
        enum qcow2_type t;

        *count = 0;
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
                                *count = (uint64_t)n;
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
                *count += (uint64_t)n;
                if (first + (unsigned)n < q->sc_per)
                        break;
        }
        return 0;
}

/* The answer: len bytes of type type, at host offset host where it has one. */
static void fill_status(struct ia_image *img, const struct qcow2 *q, enum qcow2_type type,
                        uint64_t host, uint64_t len, struct ia_bstatus *st)
{
        unsigned flags = 0;

        memset(st, 0, sizeof(*st));
        st->len = len;
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
}

int qcow2_block_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                       struct ia_error *err)
{
        struct qcow2 *q = img->priv;
        uint64_t oic = off & (q->cluster_size - 1);
        uint64_t l2_idx = (off >> q->cluster_bits) & (q->l2_entries - 1);
        uint64_t l1_idx = off >> (q->cluster_bits + q->l2_bits);
        uint64_t needed, avail, l2_off = 0, entry, bitmap, host = 0, count;
        unsigned sc_idx = (unsigned)((off >> q->sc_bits) & (q->sc_per - 1));
        enum qcow2_type type = QT_UNALLOC_PLAIN;

        if (q->dead)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: the image was found corrupt by an earlier query");
        if (q->prealloc < 0) {
                int p = qcow2_detect_prealloc(img, q, err);

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

        if (l1_idx < q->l1_size && l2_table_at(img, q, l1_idx, &l2_off, err) < 0)
                return -1;
        if (l2_off) {
                if (l2_load(img, q, l2_off, l2_idx, err) < 0)
                        return -1;
                /* no further than the cached slice */
                if (needed > (q->l2_first + q->l2_slice_entries - l2_idx) << q->cluster_bits)
                        needed = (q->l2_first + q->l2_slice_entries - l2_idx) << q->cluster_bits;
                entry = l2_get(q, l2_idx, &bitmap);
                type = cluster_type(q, entry, bitmap, sc_idx);
                if (check_first(q, entry, type, off, oic, l2_off, l2_idx, &host, err) < 0)
                        return -1;
                if (run_length(img, q, l2_off, l2_idx, sc_idx,
                               (needed + q->cluster_size - 1) >> q->cluster_bits, type, &count,
                               err) < 0)
                        return -1;
                avail = (count + sc_idx) << q->sc_bits;
        }
        if (avail > needed)
                avail = needed;
        fill_status(img, q, type, host, avail - oic, st);
        return 0;
}

/* Every L2 table the L1 table names must lie inside the file (aligned ones). */
int qcow2_check_l1(struct ia_image *img, struct qcow2 *q, struct ia_error *err)
{
        uint64_t size = img->file->src->size;

        for (uint64_t i = 0; i < q->l1_size; i++) {
                uint64_t e, l2;

                if (qcow2_l1_entry(q, i, &e, err) < 0)
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
