/*
 * cloop: the compressed loop images of Knoppix and other live CDs
 * (create_compressed_fs), mapped the way qemu 7.2's cloop driver sees them.
 *
 * Layout in brief: a 128-byte shell-script preamble starting "#!/bin/sh",
 * "#V2.0 Format" and a modprobe line; then, big-endian, the block size (a
 * multiple of 512) at 128 and the block count N at 132; then N + 1 64-bit
 * file offsets at 136: block i is the zlib stream [offset[i], offset[i+1]).
 *
 * qemu has no block status for cloop (block/cloop.c has no
 * bdrv_co_block_status; qemu's block/io.c then answers "data, allocated" without an
 * offset): its map is one data entry without a host offset for the whole
 * disk (the human layout fails on it), and that is what we print by default.
 *
 * The true map (ctx->true_map, `imgaudit map --true-map`): every block is
 * data stored compressed (IA_BS_COMPRESSED, like qcow2's compressed
 * clusters: no host offset, as qemu prints none for compressed data; the
 * JSON of 8.2+ says "compressed": true).  V2.0 has no special blocks (the
 * later cloop versions' uncompressed, zero and repeated blocks are not read
 * by qemu), but a block whose compressed length is 0 (offset[i + 1] ==
 * offset[i], as every offset past the end of the file reads) is one qemu
 * cannot read (inflate has no input: an I/O error): the true map refuses
 * it (`corrupt`), as dmg's refuses chunks it cannot tell.  The two offsets
 * of a block are read for each answer.  The driver checks what qemu's open checks (the offsets
 * must not decrease, a block is at most 128 MiB compressed) reading the
 * table through a small window, and sets the size as qemu does: N times the
 * sectors per block, computed in 32 bits (qemu's product wraps).
 *
 * Not supported: nothing qemu reads (qemu knows only the V2.0 format).
 */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "image.h"
#include "banned.h"

#define CLOOP_MAX_BLOCK   (64u * 1024 * 1024)
#define CLOOP_MAX_OFFSETS (512u * 1024 * 1024) /* bytes of offset table qemu accepts */
#define CLOOP_TABLE_OFF   136u
#define CLOOP_WINDOW      1024u /* offsets read at once */

/* What the true map needs (ctx->true_map only). */
struct cloop {
        uint32_t block_size;
};

static const char cloop_magic[] = "#!/bin/sh\n"
                                  "#V2.0 Format\n"
                                  "modprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n";

/*
 * qemu compares the whole magic with its zero-filled 2048-byte probe buffer,
 * so a file shorter than the magic is not cloop.  qemu's score is the
 * lowest of all (2): anything else that claims the bytes wins.
 */
static int cloop_probe(const struct ia_probe *p)
{
        size_t n = sizeof(cloop_magic) - 1;

        if (p->size == 0 || p->head_len < n || memcmp(p->head, cloop_magic, n) != 0)
                return 0;
        return 2;
}

/* Read len bytes at off; past the end of the file reads as zeroes (as in qemu). */
static int read_zfill(struct ia_file *f, void *buf, size_t len, uint64_t off, const char *what,
                      struct ia_error *err)
{
        int64_t n = ia_read_upto(f->src, buf, len, off, err);

        if (n < 0) {
                ia_error_prefix(err, "cloop: reading the %s of '%s'", what, f->name);
                return -1;
        }
        memset((uint8_t *)buf + n, 0, len - (size_t)n);
        return 0;
}

/*
 * qemu's checks of the offset table, entry by entry.  Entries past the end
 * of the file read as zero: once there, every later entry is zero too, so
 * the walk stops at the end of the file.
 */
static int check_offsets(struct ia_file *f, uint32_t n_blocks, struct ia_error *err)
{
        uint8_t raw[CLOOP_WINDOW * 8];
        uint64_t count = (uint64_t)n_blocks + 1, prev = 0, i = 0;
        uint64_t size = f->src->size;

        while (i < count) {
                uint64_t off = CLOOP_TABLE_OFF + i * 8;
                uint64_t chunk = ia_min_u64(CLOOP_WINDOW, count - i), j;

                if (off >= size) {
                        /* The rest reads as zeroes. */
                        if (i > 0 && prev != 0)
                                return ia_error_set(err, IA_ERR_CORRUPT,
                                                    "cloop: offset %llu of '%s' (past the end "
                                                    "of the file: 0) is below the previous one "
                                                    "(%llu)",
                                                    (unsigned long long)i, f->name,
                                                    (unsigned long long)prev);
                        return 0;
                }
                if (read_zfill(f, raw, (size_t)chunk * 8, off, "offset table", err) < 0)
                        return -1;
                for (j = 0; j < chunk; j++, i++) {
                        uint64_t o = ia_be64(raw + 8 * j);

                        if (i > 0) {
                                if (o < prev)
                                        return ia_error_set(
                                            err, IA_ERR_CORRUPT,
                                            "cloop: offset %llu of '%s' (%llu) is below the "
                                            "previous one (%llu)",
                                            (unsigned long long)i, f->name, (unsigned long long)o,
                                            (unsigned long long)prev);
                                if (o - prev > 2ull * CLOOP_MAX_BLOCK)
                                        return ia_error_set(
                                            err, IA_ERR_CORRUPT,
                                            "cloop: block %llu of '%s' is %llu bytes compressed "
                                            "(at most %u)",
                                            (unsigned long long)(i - 1), f->name,
                                            (unsigned long long)(o - prev), 2u * CLOOP_MAX_BLOCK);
                        }
                        prev = o;
                }
        }
        return 0;
}

static int cloop_open(struct ia_image *img, struct ia_error *err)
{
        struct ia_file *f = img->file;
        uint8_t h[8];
        uint32_t block_size, n_blocks, sectors;

        if (read_zfill(f, h, sizeof(h), 128, "header", err) < 0)
                return -1;
        block_size = ia_be32(h);
        n_blocks = ia_be32(h + 4);
        if (block_size % 512 != 0 || block_size == 0 || block_size > CLOOP_MAX_BLOCK)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "cloop: block size %u of '%s' is not a non-zero multiple of "
                                    "512 up to %u",
                                    block_size, f->name, CLOOP_MAX_BLOCK);
        if ((uint64_t)n_blocks + 1 > CLOOP_MAX_OFFSETS / 8)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "cloop: %u blocks in '%s' need more than %u bytes of offsets",
                                    n_blocks, f->name, CLOOP_MAX_OFFSETS);
        if (check_offsets(f, n_blocks, err) < 0)
                return -1;
        /* qemu multiplies two 32-bit numbers: the product wraps. */
        sectors = n_blocks * (block_size / 512);
        img->size = (uint64_t)sectors * 512;
        img->cluster_size = 0;
        img->cow = false;
        if (img->ctx && img->ctx->true_map) {
                struct cloop *s = calloc(1, sizeof(*s));

                if (!s)
                        return ia_error_set(err, IA_ERR_NOMEM, "cloop: out of memory");
                s->block_size = block_size;
                img->priv = s;
        }
        return 0;
}

/* The true map: one block per answer, data stored compressed; the core merges. */
static int cloop_block_status(struct ia_image *img, uint64_t off, uint64_t len,
                              struct ia_bstatus *st, struct ia_error *err)
{
        struct cloop *s = img->priv;
        uint8_t raw[16];
        uint64_t block, lo, hi;

        (void)len;
        if (!s) {
                ia_bs_coarse(img, off, st);
                return 0;
        }
        block = off / s->block_size;
        if (read_zfill(img->file, raw, sizeof(raw), CLOOP_TABLE_OFF + 8 * block, "offset table",
                       err) < 0)
                return -1;
        lo = ia_be64(raw);
        hi = ia_be64(raw + 8);
        if (hi == lo)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "cloop: block %llu of '%s' is 0 bytes compressed "
                                    "(offset %llu): it cannot be read",
                                    (unsigned long long)block, img->file->name,
                                    (unsigned long long)lo);
        st->len = (block + 1) * s->block_size - off;
        st->flags = IA_BS_DATA | IA_BS_COMPRESSED;
        return 0;
}

const struct ia_driver ia_drv_cloop = {
    .name = "cloop",
    .flags = 0,
    .probe = cloop_probe,
    .open = cloop_open,
    .block_status = cloop_block_status, /* qemu has none: its answer unless true_map */
    .close = ia_close_priv,
};
