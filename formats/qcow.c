/*
 * qcow: version 1 of the QEMU copy-on-write format, mapped as qemu's qcow
 * driver maps it.
 *
 * Layout (big-endian): a 48-byte header (magic "QFI\xfb", version 1,
 * backing file name offset and length, mtime, size, cluster_bits, l2_bits,
 * crypt_method, L1 table offset), then an L1 table of 64-bit L2 table
 * offsets, and L2 tables of 1 << l2_bits 64-bit cluster offsets.  0 means
 * unallocated (read the backing file); bit 63 marks a compressed cluster
 * (its low bits hold the offset and the compressed length).  crypt_method 1
 * is AES-CBC over the whole image.
 *
 * Map: one cluster per answer, as qemu does.  Normal clusters are data with
 * an offset; compressed clusters, and every allocated cluster of an
 * encrypted image, are data without an offset.
 *
 * Not supported: decryption (never needed: the map does not read data; qemu
 * needs the passphrase to open an encrypted image, we do not).
 * Deliberately stricter than qemu: tables past the end of the file are
 * errors (qemu reads zeroes), and the L1 table is capped at 64 MiB (qemu
 * allows 2 GiB); it is read whole, L2 tables one at a time.
 */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "image.h"
#include "banned.h"

#define QCOW_MAGIC      0x514649fbu /* "QFI\xfb" */
#define QCOW_VERSION    1u
#define QCOW_HEADER_LEN 48u
#define QCOW_COMPRESSED (1ull << 63)
#define QCOW_CRYPT_AES  1u
#define QCOW_NAME_MAX   1023u
/* Our cap on the L1 table (qemu's is INT_MAX / 8 entries). */
#define QCOW_L1_MAX (64u << 20)

struct qcow {
        unsigned cluster_bits, l2_bits;
        uint64_t l1_entries;
        uint64_t *l1;
        bool encrypted;
        /* The last L2 table read, whole (at most 64 KiB). */
        uint64_t l2_cached;
        uint8_t *l2;
};

static int qcow_probe(const struct ia_probe *p)
{
        /* qemu probes a zero-padded buffer: only magic and version must be there. */
        if (p->head_len < 8)
                return 0;
        if (ia_be32(p->head) != QCOW_MAGIC || ia_be32(p->head + 4) != QCOW_VERSION)
                return 0;
        return 100;
}

static int qcow_open(struct ia_image *img, struct ia_error *err)
{
        struct ia_source *src = img->file->src;
        uint8_t h[QCOW_HEADER_LEN];
        uint64_t size, l1_off, name_off, l1_bytes, reach;
        uint32_t version, name_len, crypt;
        unsigned cluster_bits, l2_bits, shift;
        struct qcow *s;
        uint8_t *raw;
        char *name;

        if (ia_read(src, h, sizeof(h), 0, "qcow header", err) < 0)
                return -1;
        if (ia_be32(h) != QCOW_MAGIC)
                return ia_error_set(err, IA_ERR_CORRUPT, "qcow: bad magic 0x%08x", ia_be32(h));
        version = ia_be32(h + 4);
        if (version != QCOW_VERSION)
                return ia_error_set(err, IA_ERR_UNSUPPORTED, "qcow: version %u is not supported",
                                    version);
        name_off = ia_be64(h + 8);
        name_len = ia_be32(h + 16);
        size = ia_be64(h + 24);
        cluster_bits = h[32];
        l2_bits = h[33];
        crypt = ia_be32(h + 36);
        l1_off = ia_be64(h + 40);

        if (size <= 1)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow: image size %llu is too small (at least 2 bytes)",
                                    (unsigned long long)size);
        if (cluster_bits < 9 || cluster_bits > 16)
                return ia_error_set(err, IA_ERR_CORRUPT, "qcow: cluster_bits %u is not in [9, 16]",
                                    cluster_bits);
        if (l2_bits < 6 || l2_bits > 13)
                return ia_error_set(err, IA_ERR_CORRUPT, "qcow: l2_bits %u is not in [6, 13]",
                                    l2_bits);
        if (crypt > QCOW_CRYPT_AES)
                return ia_error_set(err, IA_ERR_UNSUPPORTED, "qcow: crypt_method %u is unknown",
                                    crypt);
        shift = cluster_bits + l2_bits;
        reach = (uint64_t)1 << shift;
        if (size > UINT64_MAX - reach || size / 512 > INT64_MAX / 512)
                return ia_error_set(err, IA_ERR_LIMIT, "qcow: image size %llu is too large",
                                    (unsigned long long)size);
        s = calloc(1, sizeof(*s));
        if (!s)
                return ia_error_set(err, IA_ERR_NOMEM, "qcow: out of memory");
        s->cluster_bits = cluster_bits;
        s->l2_bits = l2_bits;
        s->encrypted = crypt != 0;
        s->l1_entries = (size + reach - 1) >> shift;
        l1_bytes = s->l1_entries * 8;
        if (l1_bytes > QCOW_L1_MAX) {
                ia_error_set(err, IA_ERR_LIMIT,
                             "qcow: L1 table of %llu bytes exceeds the limit of %u",
                             (unsigned long long)l1_bytes, QCOW_L1_MAX);
                goto free_s;
        }
        if (!ia_range_in(l1_off, l1_bytes, src->size)) {
                ia_error_set(err, IA_ERR_TRUNCATED,
                             "qcow: L1 table at %llu (%llu bytes) lies past the end of the file "
                             "(%llu bytes)",
                             (unsigned long long)l1_off, (unsigned long long)l1_bytes,
                             (unsigned long long)src->size);
                goto free_s;
        }
        s->l1 = malloc(l1_bytes ? l1_bytes : 1);
        s->l2 = malloc((size_t)8 << l2_bits);
        if (!s->l1 || !s->l2) {
                ia_error_set(err, IA_ERR_NOMEM, "qcow: out of memory for the tables");
                goto free_tables;
        }
        raw = (uint8_t *)s->l1;
        if (ia_read(src, raw, l1_bytes, l1_off, "qcow L1 table", err) < 0)
                goto free_tables;
        for (uint64_t i = 0; i < s->l1_entries; i++)
                s->l1[i] = ia_be64(raw + i * 8);

        if (name_off > (uint64_t)INT64_MAX - name_len) {
                ia_error_set(err, IA_ERR_CORRUPT, "qcow: backing file name offset %llu is invalid",
                             (unsigned long long)name_off);
                goto free_tables;
        }
        if (name_off != 0 && name_len > QCOW_NAME_MAX) {
                ia_error_set(err, IA_ERR_LIMIT, "qcow: backing file name of %u bytes exceeds %u",
                             name_len, QCOW_NAME_MAX);
                goto free_tables;
        }
        /* An empty name is no backing file, as in qemu. */
        if (name_off != 0 && name_len > 0) {
                name = malloc(name_len + 1u);
                if (!name) {
                        ia_error_set(err, IA_ERR_NOMEM, "qcow: out of memory");
                        goto free_tables;
                }
                if (ia_read(src, name, name_len, name_off, "qcow backing file name", err) < 0 ||
                    ia_image_set_backing(img, name, name_len, NULL, err) < 0) {
                        free(name);
                        goto free_tables;
                }
                free(name);
        }
        if (s->encrypted)
                img->flags |= IA_IMG_ENCRYPTED;
        img->priv = s;
        img->size = size - size % 512;
        img->cluster_size = 1u << cluster_bits;
        return 0;

free_tables:
        free(s->l1);
        free(s->l2);
free_s:
        free(s);
        return -1;
}

static int qcow_block_status(struct ia_image *img, uint64_t off, uint64_t len,
                             struct ia_bstatus *st, struct ia_error *err)
{
        struct qcow *s = img->priv;
        uint64_t csize = (uint64_t)1 << s->cluster_bits;
        uint64_t in_cluster = off & (csize - 1);
        uint64_t l1_index = off >> (s->cluster_bits + s->l2_bits);
        uint64_t l2_index = (off >> s->cluster_bits) & (((uint64_t)1 << s->l2_bits) - 1);
        uint64_t l2, cluster;

        st->len = ia_min_u64(csize - in_cluster, len);
        st->flags = 0;
        if (l1_index >= s->l1_entries)
                return ia_error_set(err, IA_ERR_INTERNAL, "qcow: L1 index %llu out of range",
                                    (unsigned long long)l1_index);
        l2 = s->l1[l1_index];
        if (l2 == 0) {
                /* No L2 table: the whole of its coverage is unallocated. */
                uint64_t cover = (uint64_t)1 << (s->cluster_bits + s->l2_bits);

                st->len = ia_min_u64(cover - (off & (cover - 1)), len);
                return 0;
        }
        if (!s->l2_cached || s->l2_cached != l2) {
                s->l2_cached = 0;
                if (ia_read(img->file->src, s->l2, (size_t)8 << s->l2_bits, l2, "qcow L2 table",
                            err) < 0)
                        return -1;
                s->l2_cached = l2;
        }
        cluster = ia_be64(s->l2 + l2_index * 8);
        if (cluster == 0) {
                /* A run of unallocated clusters in this table answers alike. */
                uint64_t i = l2_index + 1, n = (uint64_t)1 << s->l2_bits;

                while (i < n && st->len < len && ia_be64(s->l2 + i * 8) == 0) {
                        st->len = ia_min_u64(st->len + csize, len);
                        i++;
                }
                return 0;
        }
        st->flags = IA_BS_DATA;
        if (cluster & QCOW_COMPRESSED) {
                st->flags |= IA_BS_COMPRESSED;
                return 0;
        }
        if (s->encrypted)
                return 0;
        st->flags |= IA_BS_OFFSET;
        st->host_off = cluster | in_cluster;
        st->file = img->file;
        return 0;
}

static void qcow_close(struct ia_image *img)
{
        struct qcow *s = img->priv;

        if (s) {
                free(s->l1);
                free(s->l2);
                free(s);
        }
        img->priv = NULL;
}

const struct ia_driver ia_drv_qcow = {
    .name = "qcow",
    .flags = IA_DRV_BACKING,
    .probe = qcow_probe,
    .open = qcow_open,
    .block_status = qcow_block_status,
    .close = qcow_close,
};
