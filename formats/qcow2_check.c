/*
 * What qemu checks when it opens a qcow2 image although the map does not
 * need it: the internal snapshot table and the persistent dirty bitmaps.
 * qemu refuses an image where these are broken, and so does the driver.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_int.h"
#include "banned.h"

#define QCOW2_MAX_SNAP_EXTRA 1024u                 /* bytes of extra data per entry */
#define QCOW2_MAX_SNAP_TABLE (64ull * 1024 * 1024) /* bytes of snapshot table */
#define QCOW2_BITMAP_ENTRY   24u
#define QCOW2_BM_MAX_TABLE   0x8000000u  /* bitmap table entries */
#define QCOW2_BM_MAX_PHYS    0x20000000u /* bytes of bitmap data */
#define QCOW2_BM_IN_USE      1u
/* Not on disk: our mark, in a bitmap's flags, for a duplicate that qemu skips
   (its table is never read).  Bit 31 is reserved on disk (qemu refuses a
   bitmap with unknown flags before this is set). */
#define QCOW2_BM_SKIPPED      (1u << 31)
#define QCOW2_BM_FLAGS_KNOWN  3u /* in use, auto */
#define QCOW2_BM_TABLE_RSVD   0xff000000000001feull
#define QCOW2_BM_CHECK_BUDGET (256ull << 20) /* bitmap table bytes read at open */
#define QCOW2_BM_OFFSET_MASK  0x00fffffffffffe00ull
#define QEMU_MAX_IO_END       0x7fffffffc0000000ull /* qemu's BDRV_MAX_LENGTH */

/*
 * The internal snapshot table is not needed for the map (only the active L1
 * table is mapped), but qemu reads it when it opens the image and refuses two
 * things found there: an entry with more than 1 KiB of extra data, and a
 * table that grows past 64 MiB.  Walk it as qemu does: entries 8-aligned, a
 * 40-byte header then extra data, id and name; bytes past the end of the
 * file read as zeroes.  Only the headers are read.
 */
int qcow2_check_snapshots(struct ia_source *src, uint64_t table, uint32_t nb, struct ia_error *err)
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

/* One entry of the bitmap directory, decoded. */
struct bm_entry {
        uint64_t toff;  /* bitmap table offset */
        uint32_t tsize; /* bitmap table entries */
        uint32_t flags;
        uint64_t esize; /* bytes of the entry in the directory: header, name, padding */
        size_t clen;    /* bytes of the name, up to a NUL */
};

/*
 * Read the directory entry at pos (the count-th, from 1) into *b and its
 * name into name (1024 bytes), checking the format's constraints: -1 with
 * err set, 1 when the entry runs past the directory (broken), else 0.
 */
static int read_bitmap_entry(struct ia_source *src, const struct qcow2 *q,
                             const struct qcow2_exts *x, uint64_t vsize, uint64_t pos,
                             uint32_t count, struct bm_entry *b, uint8_t *name,
                             struct ia_error *err)
{
        uint8_t e[QCOW2_BITMAP_ENTRY];
        uint64_t phys;
        uint32_t extra;
        unsigned gran;
        uint16_t nlen;

        if (read_zero_fill(src, e, sizeof(e), x->bitmap_dir_off + pos, err) < 0)
                return -1;
        b->toff = ia_be64(e);
        b->tsize = ia_be32(e + 8);
        b->flags = ia_be32(e + 12);
        gran = e[17];
        nlen = ia_be16(e + 18);
        extra = ia_be32(e + 20);
        b->esize = (QCOW2_BITMAP_ENTRY + (uint64_t)nlen + extra + 7) & ~7ull;
        if (b->esize > x->bitmap_dir_size - pos)
                return 1;
        if (extra != 0)
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "qcow2: bitmap %u has extra data, which qemu does not "
                                    "support",
                                    count - 1);
        phys = (uint64_t)b->tsize * q->cluster_size;
        if (b->tsize == 0 || b->toff == 0 || (b->toff & (q->cluster_size - 1)) ||
            b->tsize > QCOW2_BM_MAX_TABLE || gran > 31 || gran < 9 ||
            (b->flags & ~QCOW2_BM_FLAGS_KNOWN) || nlen > 1023 || e[16] != 1 ||
            phys > QCOW2_BM_MAX_PHYS ||
            (!(b->flags & QCOW2_BM_IN_USE) && vsize > ((phys * 8) << gran)))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "qcow2: bitmap %u (directory offset %llu) breaks the "
                                    "format's constraints",
                                    count - 1, (unsigned long long)pos);
        if (read_zero_fill(src, name, nlen, x->bitmap_dir_off + pos + QCOW2_BITMAP_ENTRY, err) < 0)
                return -1;
        {
                /* qemu cuts the name at a NUL */
                const uint8_t *z = memchr(name, 0, nlen);

                b->clen = z ? (size_t)(z - name) : nlen;
        }
        return 0;
}

/*
 * Enter the name of bitmap *b (at name_off in the file) in the table of
 * names seen (cap slots).  A second bitmap of the same name: qemu skips it
 * when it is in use (marked QCOW2_BM_SKIPPED), and cannot create it
 * otherwise (an error).  Names are compared by reading the earlier one again.
 */
static int note_name(struct ia_source *src, struct bm_seen *seen, uint64_t cap, const uint8_t *name,
                     uint64_t name_off, struct bm_entry *b, struct ia_error *err)
{
        uint8_t other[1024];
        uint64_t h = name_hash(name, b->clen);

        for (uint64_t slot = h & (cap - 1);; slot = (slot + 1) & (cap - 1)) {
                struct bm_seen *sl = &seen[slot];

                if (!sl->hash) {
                        sl->hash = h;
                        sl->name_off = name_off;
                        sl->name_len = (uint32_t)b->clen;
                        return 0;
                }
                if (sl->hash != h || sl->name_len != b->clen)
                        continue;
                if (read_zero_fill(src, other, b->clen, sl->name_off, err) < 0)
                        return -1;
                if (memcmp(other, name, b->clen) != 0)
                        continue;
                if (!(b->flags & QCOW2_BM_IN_USE))
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "qcow2: two bitmaps are named '%.*s'", (int)b->clen,
                                            (const char *)name);
                b->flags |= QCOW2_BM_SKIPPED;
                return 0;
        }
}

/*
 * Persistent dirty bitmaps are not part of the map, but qemu loads them when
 * it opens the image and refuses the image when the bitmap directory is
 * broken, an entry breaks the format's constraints, two usable bitmaps share
 * a name, or a bitmap table entry is malformed.  Check the same things,
 * streaming: one entry, one name and one 4 KiB slice of a table at a time.
 */
int qcow2_check_bitmaps(struct ia_source *src, const struct qcow2 *q, const struct qcow2_exts *x,
                        uint64_t vsize, struct ia_error *err)
{
        uint64_t pos = 0, budget = QCOW2_BM_CHECK_BUDGET, cap = 1;
        struct bm_seen *seen;
        uint8_t name[1024];
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
                struct bm_entry b = {0};
                int r;

                if (x->bitmap_dir_size - pos < QCOW2_BITMAP_ENTRY)
                        goto broken;
                if (++count > x->nb_bitmaps) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "qcow2: the bitmap directory holds more than the %u bitmaps "
                                     "its extension lists",
                                     x->nb_bitmaps);
                        goto out;
                }
                r = read_bitmap_entry(src, q, x, vsize, pos, count, &b, name, err);
                if (r < 0)
                        goto out;
                if (r > 0)
                        goto broken;
                if (note_name(src, seen, cap, name, x->bitmap_dir_off + pos + QCOW2_BITMAP_ENTRY,
                              &b, err) < 0)
                        goto out;
                if (!(b.flags & (QCOW2_BM_IN_USE | QCOW2_BM_SKIPPED)) &&
                    check_bitmap_table(src, q, b.toff, b.tsize, &budget, err) < 0)
                        goto out;
                pos += b.esize;
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
