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
 *
 * The driver is split in files named after what they own: see qcow2_int.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_int.h"
#include "banned.h"

#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_ENTRIES   (32u * 1024 * 1024 / 8) /* qemu: 32 MiB of L1 table */
#define QCOW2_MAX_REFTABLE     (8u * 1024 * 1024)      /* bytes of refcount table */
#define QCOW2_MAX_SNAPSHOTS    65536u
#define QCOW2_MAX_BITMAP_DIR   (1024ull * 65535) /* bytes of bitmap directory (qemu) */
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

#define QCOW2_SUBCLUSTERS 32u

/* How many L1 or refcount-table entries one window holds (4 KiB). */
#define QCOW2_WINDOW 512u

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

/* qemu's validate_table_offset(): aligned, and the table's end fits in int64. */
static bool table_offset_ok(const struct qcow2 *q, uint64_t off, uint64_t entries, uint64_t esize)
{
        if (entries > (uint64_t)INT64_MAX / esize)
                return false;
        if ((uint64_t)INT64_MAX - entries * esize < off)
                return false;
        return (off & (q->cluster_size - 1)) == 0;
}

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

/* The header fields open() needs beyond what struct qcow2 keeps. */
struct qcow2_hdr {
        uint64_t size;        /* virtual size */
        uint64_t hdr_len;     /* header_length (72 in version 2) */
        uint64_t incompat;    /* incompatible feature bits */
        uint64_t autoclear;   /* autoclear feature bits */
        uint64_t backing_off; /* backing file name offset, 0: none */
        uint32_t backing_len;
        uint32_t crypt;       /* encryption method: 0 none, 1 AES, 2 LUKS */
        uint64_t rt_clusters; /* clusters of refcount table */
        uint32_t nb_snap;     /* internal snapshots */
        uint64_t snap_off;    /* the snapshot table */
        uint8_t compression;  /* compression type (header byte 104) */
};

/* The fixed part of the header (72 bytes in version 2, 104 in version 3). */
static int read_fixed_header(struct ia_source *src, struct qcow2 *q, struct qcow2_hdr *h,
                             struct ia_error *err)
{
        uint8_t fixed[QCOW2_V3_HEADER];
        uint32_t version, cbits;
        int64_t got;

        got = ia_read_upto(src, fixed, sizeof(fixed), 0, err);
        if (got < 0)
                return -1;
        if (got < (int64_t)QCOW2_V2_HEADER)
                return ia_error_set(err, IA_ERR_TRUNCATED,
                                    "qcow2: the file (%lld bytes) is shorter than a qcow2 header "
                                    "(%u bytes)",
                                    (long long)got, QCOW2_V2_HEADER);
        if (ia_be32(fixed) != QCOW2_MAGIC)
                return ia_error_set(err, IA_ERR_CORRUPT, "qcow2: bad magic %#x", ia_be32(fixed));
        version = ia_be32(fixed + 4);
        if (version < 2 || version > 3)
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "qcow2: version %u is not supported (2 and 3 are)", version);
        cbits = ia_be32(fixed + 20);
        if (cbits < QCOW2_MIN_CLUSTER_BITS || cbits > QCOW2_MAX_CLUSTER_BITS)
                return ia_error_set(err, IA_ERR_CORRUPT, "qcow2: cluster_bits %u is outside %u..%u",
                                    cbits, QCOW2_MIN_CLUSTER_BITS, QCOW2_MAX_CLUSTER_BITS);
        q->version = version;
        q->cluster_bits = cbits;
        q->cluster_size = 1ull << cbits;
        h->backing_off = ia_be64(fixed + 8);
        h->backing_len = ia_be32(fixed + 16);
        h->size = ia_be64(fixed + 24);
        h->crypt = ia_be32(fixed + 32);
        q->l1_size = ia_be32(fixed + 36);
        q->l1_offset = ia_be64(fixed + 40);
        q->rt_offset = ia_be64(fixed + 48);
        h->rt_clusters = ia_be32(fixed + 56);
        h->nb_snap = ia_be32(fixed + 60);
        h->snap_off = ia_be64(fixed + 64);
        h->hdr_len = QCOW2_V2_HEADER;
        q->refcount_order = 4;
        if (version < 3)
                return 0;
        if (got < (int64_t)QCOW2_V3_HEADER)
                return ia_error_set(err, IA_ERR_TRUNCATED,
                                    "qcow2: the file (%lld bytes) is shorter than a "
                                    "version 3 header (%u bytes)",
                                    (long long)got, QCOW2_V3_HEADER);
        h->incompat = ia_be64(fixed + 72);
        h->autoclear = ia_be64(fixed + 88);
        q->refcount_order = ia_be32(fixed + 96);
        h->hdr_len = ia_be32(fixed + 100);
        if (h->hdr_len < QCOW2_V3_HEADER)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: header_length %llu is shorter than %u",
                                    (unsigned long long)h->hdr_len, QCOW2_V3_HEADER);
        if (h->hdr_len > q->cluster_size)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: header_length %llu exceeds the cluster size "
                                    "%llu",
                                    (unsigned long long)h->hdr_len,
                                    (unsigned long long)q->cluster_size);
        return 0;
}

/*
 * The whole first cluster into *hdr (header, extensions, backing name;
 * zeroes past the end of the file), and the features it asks for.
 */
static int read_header_area(struct ia_source *src, const struct qcow2 *q, struct qcow2_hdr *h,
                            uint8_t **hdr, struct ia_error *err)
{
        int64_t got;

        /* not calloc: only what the file does not fill is zeroed (a whole
         * cluster of zeroes cost more than the rest of an overlay's open) */
        *hdr = malloc((size_t)q->cluster_size);
        if (!*hdr)
                return ia_error_set(err, IA_ERR_NOMEM,
                                    "qcow2: out of memory for the header cluster");
        got = ia_read_upto(src, *hdr, (size_t)q->cluster_size, 0, err);
        if (got < 0)
                return -1;
        memset(*hdr + got, 0, (size_t)q->cluster_size - (size_t)got);
        if ((uint64_t)got < h->hdr_len)
                return ia_error_set(err, IA_ERR_TRUNCATED,
                                    "qcow2: the file (%lld bytes) is shorter than its "
                                    "header_length (%llu)",
                                    (long long)got, (unsigned long long)h->hdr_len);
        if (h->hdr_len > QCOW2_V3_HEADER)
                h->compression = (*hdr)[104];

        if (h->backing_off > q->cluster_size)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: backing file name offset %llu lies beyond the first "
                                    "cluster (%llu bytes)",
                                    (unsigned long long)h->backing_off,
                                    (unsigned long long)q->cluster_size);
        if (h->incompat & ~QCOW2_INCOMPAT_KNOWN)
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "qcow2: unsupported incompatible feature bits %#llx",
                                    (unsigned long long)(h->incompat & ~QCOW2_INCOMPAT_KNOWN));
        if (q->refcount_order > 6)
                return ia_error_set(
                    err, IA_ERR_CORRUPT,
                    "qcow2: refcount_order %u is too large (at most 6: 64-bit counts)",
                    q->refcount_order);
        if (h->compression > 1)
                return ia_error_set(err, IA_ERR_UNSUPPORTED, "qcow2: unknown compression type %u",
                                    h->compression);
        if ((h->compression != 0) != !!(h->incompat & QCOW2_INCOMPAT_COMPRESSION))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: compression type %u does not agree with incompatible "
                                    "feature bit 3",
                                    h->compression);
        return 0;
}

/* Encryption and the L2 geometry: standard or extended (subcluster) entries. */
static int set_geometry(struct qcow2 *q, const struct qcow2_hdr *h, struct ia_error *err)
{
        unsigned cbits = q->cluster_bits;

        if (h->crypt > 2)
                return ia_error_set(err, IA_ERR_UNSUPPORTED, "qcow2: unknown encryption method %u",
                                    h->crypt);
        q->encrypted = h->crypt != 0;

        q->ext_l2 = (h->incompat & QCOW2_INCOMPAT_EXTL2) != 0;
        q->sc_per = q->ext_l2 ? QCOW2_SUBCLUSTERS : 1;
        q->sc_bits = q->ext_l2 ? cbits - 5 : cbits;
        q->l2_esize = q->ext_l2 ? 16 : 8;
        q->l2_bits = cbits - (q->ext_l2 ? 4 : 3);
        q->l2_entries = 1ull << q->l2_bits;
        if (q->ext_l2 && q->sc_bits < QCOW2_MIN_CLUSTER_BITS)
                return ia_error_set(
                    err, IA_ERR_CORRUPT,
                    "qcow2: extended L2 entries need clusters of at least 16384 bytes, "
                    "not %llu",
                    (unsigned long long)q->cluster_size);
        if (h->size > (uint64_t)INT64_MAX)
                return ia_error_set(err, IA_ERR_LIMIT, "qcow2: virtual size %llu is too large",
                                    (unsigned long long)h->size);
        return 0;
}

/* The refcount and snapshot tables: sizes, offsets; the refcount table's window. */
static int open_refcount_table(struct ia_source *src, struct qcow2 *q, const struct qcow2_hdr *h,
                               struct ia_error *err)
{
        unsigned cbits = q->cluster_bits;

        if (h->rt_clusters == 0)
                return ia_error_set(err, IA_ERR_CORRUPT, "qcow2: the image has no refcount table");
        if (h->rt_clusters > QCOW2_MAX_REFTABLE >> cbits)
                return ia_error_set(
                    err, IA_ERR_LIMIT,
                    "qcow2: refcount table of %llu clusters is too large (limit %u)",
                    (unsigned long long)h->rt_clusters, QCOW2_MAX_REFTABLE >> cbits);
        q->rt_entries = h->rt_clusters << (cbits - 3);
        if (!table_offset_ok(q, q->rt_offset, h->rt_clusters << cbits, 1))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: refcount table offset %llu is invalid (unaligned or "
                                    "too large)",
                                    (unsigned long long)q->rt_offset);
        ia_window_init(&q->rt, src, q->rt_offset, q->rt_entries, 8, QCOW2_WINDOW, IA_WINDOW_ALIGNED,
                       "qcow2 refcount table");
        if (!ia_window_fits(&q->rt))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: refcount table at offset %llu (%llu bytes) lies past "
                                    "the end of the file (%llu bytes)",
                                    (unsigned long long)q->rt_offset,
                                    (unsigned long long)(h->rt_clusters << cbits),
                                    (unsigned long long)src->size);
        if (h->nb_snap > QCOW2_MAX_SNAPSHOTS)
                return ia_error_set(err, IA_ERR_LIMIT, "qcow2: %u snapshots is too many (limit %u)",
                                    h->nb_snap, QCOW2_MAX_SNAPSHOTS);
        if (!table_offset_ok(q, h->snap_off, h->nb_snap, QCOW2_SNAPSHOT_HDR))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: snapshot table offset %llu is invalid (unaligned or "
                                    "too large)",
                                    (unsigned long long)h->snap_off);
        return 0;
}

/* The active L1 table: large enough for the virtual size, inside the file; its window. */
static int open_l1_table(struct ia_source *src, struct qcow2 *q, const struct qcow2_hdr *h,
                         struct ia_error *err)
{
        unsigned shift = q->cluster_bits + q->l2_bits; /* at most 39 */
        uint64_t l1_cover;

        if (q->l1_size > QCOW2_MAX_L1_ENTRIES)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "qcow2: active L1 table too large: %u entries (limit %u)",
                                    q->l1_size, QCOW2_MAX_L1_ENTRIES);
        l1_cover = (h->size >> shift) + ((h->size & ((1ull << shift) - 1)) != 0);
        if (l1_cover > QCOW2_INT_MAX)
                return ia_error_set(err, IA_ERR_LIMIT, "qcow2: virtual size %llu is too large",
                                    (unsigned long long)h->size);
        if (q->l1_size < l1_cover)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: L1 table of %u entries is too small for the virtual "
                                    "size %llu (%llu needed)",
                                    q->l1_size, (unsigned long long)h->size,
                                    (unsigned long long)l1_cover);
        if (!table_offset_ok(q, q->l1_offset, q->l1_size, 8))
                return ia_error_set(
                    err, IA_ERR_CORRUPT,
                    "qcow2: L1 table offset %llu is invalid (unaligned or too large)",
                    (unsigned long long)q->l1_offset);
        ia_window_init(&q->l1, src, q->l1_offset, q->l1_size, 8, QCOW2_WINDOW, IA_WINDOW_ALIGNED,
                       "qcow2 L1 table");
        if (q->l1_size && !ia_window_fits(&q->l1))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: L1 table at offset %llu (%u entries) lies past the "
                                    "end of the file (%llu bytes)",
                                    (unsigned long long)q->l1_offset, q->l1_size,
                                    (unsigned long long)src->size);
        return 0;
}

/* The backing file name (at most 1023 bytes, inside the first cluster) and format. */
static int set_backing(struct ia_image *img, const struct qcow2 *q, const struct qcow2_hdr *h,
                       const uint8_t *hdr, const struct qcow2_exts *x, struct ia_error *err)
{
        uint64_t lim = q->cluster_size - h->backing_off;

        if (!h->backing_off)
                return 0;
        if (lim > QCOW2_MAX_BACKING_NAME)
                lim = QCOW2_MAX_BACKING_NAME;
        if (h->backing_len > lim)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: backing file name of %u bytes is too long (limit %llu)",
                                    h->backing_len, (unsigned long long)lim);
        if (h->backing_len && hdr[h->backing_off] != '\0' &&
            ia_image_set_backing(img, (const char *)hdr + h->backing_off, h->backing_len,
                                 x->has_backing_fmt ? x->backing_fmt : NULL, err) < 0)
                return -1;
        return 0;
}

/* The external data file the image needs, opened through the resolver. */
static int open_data_file(struct ia_image *img, struct qcow2 *q, const struct qcow2_hdr *h,
                          const struct qcow2_exts *x, struct ia_error *err)
{
        char *name;
        int rc;

        if (!(h->incompat & QCOW2_INCOMPAT_DATA_FILE)) {
                if (h->autoclear & QCOW2_AUTOCLEAR_DATA_FILE_RAW)
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "qcow2: data_file_raw is set but the image has no "
                                            "external data file");
                return 0;
        }
        if (!x->has_data_file)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: the image needs an external data file but names none");
        name = malloc(x->data_file_len + 1);
        if (!name)
                return ia_error_set(err, IA_ERR_NOMEM, "qcow2: out of memory");
        memcpy(name, x->data_file, x->data_file_len);
        name[x->data_file_len] = '\0';
        rc = ia_image_open_ref(img, name, IA_REF_DATA_FILE, &q->data_file, err);
        free(name);
        if (rc < 0)
                return -1;
        img->flags |= IA_IMG_EXTERNAL_DATA;
        return 0;
}

static int qcow2_open(struct ia_image *img, struct ia_error *err)
{
        struct ia_source *src = img->file->src;
        struct qcow2_exts x = {0};
        struct qcow2_hdr h = {0};
        uint8_t *hdr = NULL;
        struct qcow2 *q;

        q = calloc(1, sizeof(*q));
        if (!q)
                return ia_error_set(err, IA_ERR_NOMEM, "qcow2: out of memory");
        q->prealloc = -1;

        if (read_fixed_header(src, q, &h, err) < 0 || read_header_area(src, q, &h, &hdr, err) < 0 ||
            read_extensions(q, hdr, h.hdr_len, h.backing_off ? h.backing_off : q->cluster_size,
                            h.crypt, h.autoclear, &x, err) < 0 ||
            set_geometry(q, &h, err) < 0 || open_refcount_table(src, q, &h, err) < 0 ||
            open_l1_table(src, q, &h, err) < 0 || set_backing(img, q, &h, hdr, &x, err) < 0)
                goto fail;

        if (qcow2_check_snapshots(src, h.snap_off, h.nb_snap, err) < 0 ||
            qcow2_check_bitmaps(src, q, &x, h.size / 512 * 512, err) < 0 ||
            qcow2_check_l1(img, q, err) < 0)
                goto fail_backing;

        q->l2_slice_entries = ia_min_u64(q->l2_entries, QCOW2_L2_SLICE / q->l2_esize);
        q->l2 = malloc((size_t)(q->l2_slice_entries * q->l2_esize));
        if (!q->l2) {
                ia_error_set(err, IA_ERR_NOMEM, "qcow2: out of memory for an L2 table");
                goto fail_backing;
        }
        if (open_data_file(img, q, &h, &x, err) < 0)
                goto fail_l2;

        if (h.incompat & QCOW2_INCOMPAT_DIRTY)
                img->flags |= IA_IMG_DIRTY;
        if (h.incompat & QCOW2_INCOMPAT_CORRUPT)
                img->flags |= IA_IMG_CORRUPT;
        if (q->encrypted)
                img->flags |= IA_IMG_ENCRYPTED;
        if (h.nb_snap)
                img->flags |= IA_IMG_SNAPSHOTS;
        img->size = h.size / 512 * 512;
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
