/*
 * qed: the QEMU Enhanced Disk format, mapped as qemu's qed driver maps it.
 *
 * Layout (little-endian, docs/interop/qed_spec.txt): a 64-byte header
 * (magic "QED\0", cluster size, table size in clusters, header size in
 * clusters, feature bits, L1 table offset, image size, backing file name
 * offset and length), then clusters.  Two levels of tables, each
 * table_size clusters of 64-bit entries: L1 entries point at L2 tables, L2
 * entries at data clusters; 0 is "unallocated" (read the backing file) and
 * 1 is "zero cluster".  Feature bits: backing file, "needs check" (not
 * closed cleanly; read-only opens ignore it, as qemu does) and "backing
 * format is raw, do not probe".
 *
 * Map: one answer covers at most one L2 table's reach and counts the
 * contiguous clusters of one kind: data clusters with consecutive host
 * offsets, zero clusters, or unallocated clusters.
 *
 * Not supported: nothing that qemu maps.  Tables are read in small slices,
 * never whole (a table may be 1 GiB).  Deliberately stricter than qemu:
 * table reads past the end of the file are errors (qemu reads zeroes).
 */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "image.h"
#include "window.h"
#include "banned.h"

#define QED_MAGIC            0x00444551u /* "QED\0" */
#define QED_HEADER_LEN       64u
#define QED_F_BACKING_FILE   0x01u
#define QED_F_NEED_CHECK     0x02u
#define QED_F_BACKING_NOPROB 0x04u
#define QED_FEATURES         (QED_F_BACKING_FILE | QED_F_NEED_CHECK | QED_F_BACKING_NOPROB)
#define QED_MIN_CLUSTER      (4u << 10)
#define QED_MAX_CLUSTER      (64u << 20)
#define QED_MAX_TABLE        16u
#define QED_ZERO_CLUSTER     1u
#define QED_NAME_MAX         4096u /* qemu's PATH_MAX buffer, NUL included */
#define QED_SLICE_ENTRIES    1024u

struct qed {
        uint32_t cluster_size;
        unsigned cluster_bits;
        unsigned l1_shift;     /* log2 of the guest bytes one L2 table covers */
        uint64_t nelems;       /* entries per table */
        uint64_t header_bytes; /* header_size * cluster_size */
        uint64_t file_size;    /* qemu's view: file length rounded down to a cluster */
        uint64_t table_bytes;
        uint64_t l1_off;
        struct ia_window l2; /* a slice of one L2 table (moved from table to table) */
};

static bool is_pow2(uint64_t v)
{
        return v && !(v & (v - 1));
}

static unsigned log2_u64(uint64_t v)
{
        unsigned n = 0;

        while (v > 1) {
                v >>= 1;
                n++;
        }
        return n;
}

static int qed_probe(const struct ia_probe *p)
{
        /* qemu probes a zero-padded buffer: only the magic must be there. */
        if (p->head_len < 4)
                return 0;
        return ia_le32(p->head) == QED_MAGIC ? 100 : 0;
}

/* qemu's validity test for a cluster offset in the file. */
static bool qed_offset_ok(const struct qed *s, uint64_t off)
{
        if (off & (s->cluster_size - 1))
                return false;
        return off >= s->header_bytes && off < s->file_size;
}

/*
 * qemu's validity test for a table: its first and last clusters.  qemu's
 * overflow test also rejects every table of one cluster (its last cluster
 * is its first): kept, since qemu refuses such images.
 */
static bool qed_table_ok(const struct qed *s, uint64_t off)
{
        uint64_t last;

        if (!ia_add_ok(off, s->table_bytes - s->cluster_size, &last) || last <= off)
                return false;
        return qed_offset_ok(s, off) && qed_offset_ok(s, last);
}

static int qed_open(struct ia_image *img, struct ia_error *err)
{
        struct ia_source *src = img->file->src;
        uint8_t h[QED_HEADER_LEN];
        uint32_t cluster_size, table_size, header_size, name_off, name_len;
        uint64_t features, image_size, max_size, l2_reach;
        struct qed *s;
        char *name = NULL;

        if (ia_read(src, h, sizeof(h), 0, "qed header", err) < 0)
                return -1;
        if (ia_le32(h) != QED_MAGIC)
                return ia_error_set(err, IA_ERR_CORRUPT, "qed: bad magic 0x%08x", ia_le32(h));
        cluster_size = ia_le32(h + 4);
        table_size = ia_le32(h + 8);
        header_size = ia_le32(h + 12);
        features = ia_le64(h + 16);
        image_size = ia_le64(h + 48);
        name_off = ia_le32(h + 56);
        name_len = ia_le32(h + 60);

        if (features & ~(uint64_t)QED_FEATURES)
                return ia_error_set(err, IA_ERR_UNSUPPORTED, "qed: unsupported feature bits 0x%llx",
                                    (unsigned long long)(features & ~(uint64_t)QED_FEATURES));
        if (!is_pow2(cluster_size) || cluster_size < QED_MIN_CLUSTER ||
            cluster_size > QED_MAX_CLUSTER)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qed: cluster size %u is not a power of two in [%u, %u]",
                                    cluster_size, QED_MIN_CLUSTER, QED_MAX_CLUSTER);
        if (!is_pow2(table_size) || table_size > QED_MAX_TABLE)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qed: table size %u is not a power of two in [1, %u]",
                                    table_size, QED_MAX_TABLE);

        s = calloc(1, sizeof(*s));
        if (!s)
                return ia_error_set(err, IA_ERR_NOMEM, "qed: out of memory");
        s->cluster_size = cluster_size;
        s->cluster_bits = log2_u64(cluster_size);
        s->table_bytes = (uint64_t)table_size * cluster_size;
        s->nelems = s->table_bytes / 8;
        s->l1_shift = s->cluster_bits + log2_u64(s->nelems);
        s->header_bytes = (uint64_t)header_size * cluster_size;
        s->file_size = img->file->len & ~(uint64_t)(cluster_size - 1);
        s->l1_off = ia_le64(h + 40);
        /* Offset 0 is never a valid table: the first lookup moves the window. */
        ia_window_init(&s->l2, src, 0, s->nelems, 8, QED_SLICE_ENTRIES, 0, "qed L2 table");

        /* nelems * nelems * cluster_size, saturated: at most 2^80. */
        l2_reach = (uint64_t)1 << s->l1_shift;
        if (!ia_mul_ok(l2_reach, s->nelems, &max_size))
                max_size = UINT64_MAX;
        if (image_size % 512 || image_size > max_size || image_size > INT64_MAX) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qed: image size %llu is not a multiple of 512 or exceeds %llu",
                             (unsigned long long)image_size, (unsigned long long)max_size);
                goto free_s;
        }
        if (!qed_table_ok(s, s->l1_off)) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "qed: L1 table offset %llu (%llu bytes) is unaligned or outside the "
                             "file (%llu bytes)",
                             (unsigned long long)s->l1_off, (unsigned long long)s->table_bytes,
                             (unsigned long long)s->file_size);
                goto free_s;
        }

        if (features & QED_F_NEED_CHECK)
                img->flags |= IA_IMG_DIRTY;
        if (features & QED_F_BACKING_FILE) {
                if ((uint64_t)name_off + name_len > s->header_bytes) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "qed: backing file name at %u (%u bytes) lies outside the "
                                     "header (%llu bytes)",
                                     name_off, name_len, (unsigned long long)s->header_bytes);
                        goto free_s;
                }
                if (name_len >= QED_NAME_MAX) {
                        ia_error_set(err, IA_ERR_LIMIT,
                                     "qed: backing file name of %u bytes exceeds %u", name_len,
                                     QED_NAME_MAX - 1);
                        goto free_s;
                }
                name = malloc(name_len + 1u);
                if (!name) {
                        ia_error_set(err, IA_ERR_NOMEM, "qed: out of memory");
                        goto free_s;
                }
                /* An empty name (no backing file, as in qemu) is read as such. */
                if (name_len > 0 &&
                    ia_read(src, name, name_len, name_off, "qed backing file name", err) < 0)
                        goto free_name;
                if (ia_image_set_backing(img, name, name_len,
                                         (features & QED_F_BACKING_NOPROB) ? "raw" : NULL, err) < 0)
                        goto free_name;
                free(name);
        }

        img->priv = s;
        img->size = image_size;
        img->cluster_size = cluster_size;
        return 0;

free_name:
        free(name);
free_s:
        free(s);
        return -1;
}

/* Entry index of the L2 table at table; reads through the slice cache. */
static int qed_l2_entry(struct ia_image *img, uint64_t table, uint64_t index, uint64_t *entry,
                        struct ia_error *err)
{
        struct qed *s = img->priv;
        const uint8_t *p;

        ia_window_move(&s->l2, table);
        p = ia_window_entry(&s->l2, index, err);
        if (!p)
                return -1;
        *entry = ia_le64(p);
        return 0;
}

static int qed_block_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                            struct ia_error *err)
{
        struct qed *s = img->priv;
        uint64_t l1_index = off >> s->l1_shift;
        uint64_t in_cluster = off & (s->cluster_size - 1);
        uint64_t reach_end = (l1_index + 1) << s->l1_shift;
        uint64_t l2, first, last, e, index, end, n;
        uint8_t buf[8];

        len = ia_min_u64(len, reach_end - off);
        st->len = len;
        st->flags = 0;
        if (ia_read(img->file->src, buf, 8, s->l1_off + l1_index * 8, "qed L1 table", err) < 0)
                return -1;
        l2 = ia_le64(buf);
        if (l2 == 0)
                return 0;
        if (!qed_table_ok(s, l2))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qed: L2 table offset %llu (L1 index %llu) is unaligned or "
                                    "outside the file (%llu bytes)",
                                    (unsigned long long)l2, (unsigned long long)l1_index,
                                    (unsigned long long)s->file_size);

        index = (off >> s->cluster_bits) & (s->nelems - 1);
        n = (in_cluster + len + s->cluster_size - 1) >> s->cluster_bits;
        end = ia_min_u64(index + n, s->nelems);
        if (qed_l2_entry(img, l2, index, &first, err) < 0)
                return -1;
        last = first;
        for (e = index + 1; e < end; e++) {
                uint64_t v;

                if (qed_l2_entry(img, l2, e, &v, err) < 0)
                        return -1;
                if (last == 0 || last == QED_ZERO_CLUSTER) {
                        if (v != last)
                                break;
                } else {
                        if (v != last + s->cluster_size)
                                break;
                        last = v;
                }
        }
        n = e - index;
        st->len = ia_min_u64(len, (n << s->cluster_bits) - in_cluster);

        if (first == 0)
                return 0;
        if (first == QED_ZERO_CLUSTER) {
                st->flags = IA_BS_ZERO;
                return 0;
        }
        if (!qed_offset_ok(s, first))
                return ia_error_set(
                    err, IA_ERR_CORRUPT,
                    "qed: data cluster offset %llu (guest offset %llu) is unaligned "
                    "or outside the file (%llu bytes)",
                    (unsigned long long)first, (unsigned long long)off,
                    (unsigned long long)s->file_size);
        st->flags = IA_BS_DATA | IA_BS_OFFSET;
        st->host_off = first | in_cluster;
        st->file = img->file;
        return 0;
}

const struct ia_driver ia_drv_qed = {
    .name = "qed",
    .flags = IA_DRV_BACKING,
    .probe = qed_probe,
    .open = qed_open,
    .block_status = qed_block_status,
    .close = ia_close_priv,
};
