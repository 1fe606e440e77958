/*
 * vpc: Microsoft Virtual PC / Hyper-V VHD images (fixed, dynamic, differencing).
 *
 * Why: VHD is qemu's "vpc" driver; map must match qemu-img 7.2 byte for byte
 * for fixed and dynamic disks, and give the true map of differencing disks.
 *
 * Layout (all big-endian, from the published VHD specification):
 *   footer (512 bytes): "conectix" cookie, data offset (dynamic header, or
 *     all ones for fixed), creator application, current size, CHS geometry,
 *     disk type (2 fixed, 3 dynamic, 4 differencing), one's-complement
 *     checksum.  A fixed disk is the guest data followed by the footer; a
 *     dynamic disk has a copy of the footer at offset 0.
 *   dynamic header (1024 bytes, "cxsparse"): BAT offset, BAT entry count,
 *     block size, parent name (UTF-16BE) and eight parent locators.
 *   BAT: one 32-bit sector number per block, 0xffffffff = not allocated.
 *     An allocated block is a sector bitmap (one bit per sector, MSB first,
 *     padded to 512 bytes) followed by the block's data.
 *
 * How qemu (and so this driver) reads it: the footer is looked for at offset
 * 0 and otherwise at the end (then it must say fixed); type 2 is fixed and
 * every other type dynamic.  Probing recognises only the cookie
 * at offset 0, so a fixed VHD probes as raw.  Dynamic: allocated blocks are
 * data, unallocated blocks read as zero (qemu's vpc has no backing files),
 * the sector bitmap is ignored.  The virtual size follows qemu's CHS versus
 * current_size rule, which changed in qemu 10.0 (ctx->compat selects it).
 *
 * Differences from qemu, on purpose: a differencing disk (type 4) gets its
 * parent from the parent locators and is mapped truly: unallocated blocks
 * and sectors whose bitmap bit is clear defer to the parent; qemu 7.2 and
 * 10.2 ignore the parent and map it like a dynamic disk, which is wrong.
 * The child's Parent Unique ID must be the parent's footer Unique Id (ident,
 * compared by the chain opener); the Parent Time Stamp is only shown.
 *
 * Not supported: the "force_size_calc" open option; Mac alias locators
 * ("Mac "); writing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "text.h"
#include "image.h"
#include "window.h"
#include "banned.h"

#define VPC_FOOTER_SIZE  512
#define VPC_DYNHDR_SIZE  1024
#define VPC_TYPE_FIXED   2
#define VPC_TYPE_DYNAMIC 3
#define VPC_TYPE_DIFF    4
#define VPC_UNALLOCATED  0xffffffffu
#define VPC_MAX_SECTORS  0xff000000ull /* qemu: 2040 GiB */
#define VPC_MAX_GEOMETRY (65535ull * 16 * 255)
#define VPC_BAT_SLICE    1024 /* BAT entries cached at a time */
#define VPC_SCAN_CHUNK   16384
#define VPC_MAX_LOCATOR  65536 /* bytes of one parent locator we read */
#define VPC_LOCATORS     8
#define VPC_BITMAP_SLICE 512 /* bytes of a block bitmap read at a time */

struct vpc_state {
        bool fixed;
        bool diff;
        uint32_t block_size;
        uint32_t bitmap_size; /* as qemu computes it: 0 for blocks under 4 KiB */
        uint32_t diff_bitmap; /* as the specification says: at least one sector */
        uint32_t entries;
        uint64_t bat_off;
        struct ia_window bat; /* the BAT, read in aligned slices */
        /* The cached bitmap slice of a differencing disk. */
        uint8_t bmp[VPC_BITMAP_SLICE];
        uint64_t bmp_host; /* file offset of bmp[0] */
        bool bmp_valid;
};

static int vpc_probe(const struct ia_probe *p)
{
        if (p->head_len >= 8 && memcmp(p->head, "conectix", 8) == 0)
                return 100;
        return 0;
}

static uint32_t vpc_checksum(const uint8_t *buf, size_t len)
{
        uint32_t sum = 0;

        for (size_t i = 0; i < len; i++)
                if (i < 64 || i >= 68)
                        sum += buf[i];
        return ~sum;
}

/*
 * Pick the parent's name from the locators (relative first, then absolute,
 * then a MacX file URL), else the parent unicode name of the header.
 */
static int vpc_read_parent(struct ia_image *img, const uint8_t *dh, struct ia_error *err)
{
        static const uint32_t order[] = {
            0x57327275, /* W2ru: UTF-16LE relative path */
            0x57326b75, /* W2ku: UTF-16LE absolute path */
            0x4d616358, /* MacX: UTF-8 file URL */
            0x57693272, /* Wi2r: deprecated, bytes */
            0x5769326b, /* Wi2k: deprecated, bytes */
        };
        uint8_t *raw = NULL;
        char *name = NULL;
        int ret = -1;

        raw = malloc(VPC_MAX_LOCATOR);
        name = malloc(VPC_MAX_LOCATOR * 2 + 1);
        if (!raw || !name) {
                ia_error_set(err, IA_ERR_NOMEM, "vpc: out of memory for a parent locator");
                goto out;
        }
        for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
                for (unsigned i = 0; i < VPC_LOCATORS; i++) {
                        const uint8_t *e = dh + 576 + 24 * i;
                        uint32_t code = ia_be32(e), len = ia_be32(e + 8);
                        uint64_t off = ia_be64(e + 16);
                        long n;

                        if (code != order[k] || len == 0)
                                continue;
                        if (len > VPC_MAX_LOCATOR) {
                                ia_error_set(
                                    err, IA_ERR_LIMIT,
                                    "vpc: parent locator %u length %u exceeds the limit of %u "
                                    "bytes",
                                    i, len, VPC_MAX_LOCATOR);
                                goto out;
                        }
                        if (!ia_range_in(off, len, img->file->src->size)) {
                                ia_error_set(err, IA_ERR_CORRUPT,
                                             "vpc: parent locator %u data at %llu (+%u) lies past "
                                             "the end of the file (%llu bytes)",
                                             i, (unsigned long long)off, len,
                                             (unsigned long long)img->file->src->size);
                                goto out;
                        }
                        if (ia_read(img->file->src, raw, len, off, "vpc parent locator", err) < 0)
                                goto out;
                        if (code == 0x57327275 || code == 0x57326b75) {
                                n = ia_utf16_to_utf8(raw, len, false, name,
                                                     VPC_MAX_LOCATOR * 2 + 1);
                        } else {
                                memcpy(name, raw, len);
                                name[len] = '\0';
                                n = (long)strlen(name);
                        }
                        if (n <= 0)
                                continue;
                        if (code == 0x4d616358) {
                                char *p = name;

                                if (strncmp(p, "file://", 7) == 0)
                                        p += 7;
                                if (strncmp(p, "localhost/", 10) == 0)
                                        p += 9;
                                n -= (long)(p - name);
                                memmove(name, p, (size_t)n + 1);
                        } else if (code == 0x57327275 || code == 0x57693272) {
                                n = (long)ia_windows_relative_path(name, (size_t)n);
                        }
                        if (n <= 0)
                                continue;
                        ret = ia_image_set_backing(img, name, (size_t)n, "vpc", err);
                        goto out;
                }
        }
        /* No locator: the parent's file name, UTF-16BE, in the header. */
        {
                long n = ia_utf16_to_utf8(dh + 64, 512, true, name, VPC_MAX_LOCATOR * 2 + 1);

                ret = n > 0 ? ia_image_set_backing(img, name, (size_t)n, "vpc", err) : 0;
        }
out:
        free(raw);
        free(name);
        return ret;
}

/* The BAT entry of block idx, through the slice cache. */
static int vpc_bat(struct ia_image *img, uint32_t idx, uint32_t *val, struct ia_error *err)
{
        struct vpc_state *s = img->priv;
        const uint8_t *p = ia_window_entry(&s->bat, idx, err);

        if (!p)
                return -1;
        *val = ia_be32(p);
        return 0;
}

static unsigned vpc_compat(const struct ia_image *img)
{
        if (img->ctx && img->ctx->compat)
                return img->ctx->compat;
        return IA_DEFAULT_COMPAT;
}

/* qemu's virtual size: CHS geometry or current_size, by creator and version. */
static uint64_t vpc_sectors(const struct ia_image *img, const uint8_t *f)
{
        const uint8_t *app = f + 28;
        uint64_t chs = (uint64_t)ia_be16(f + 56) * f[58] * f[59];
        bool use_chs;

        if (vpc_compat(img) < 1000)
                use_chs = memcmp(app, "win ", 4) && memcmp(app, "qem2", 4) &&
                          memcmp(app, "d2v ", 4) && memcmp(app, "CTXS", 4) &&
                          memcmp(app, "tap\0", 4);
        else
                use_chs = !memcmp(app, "vpc ", 4) || !memcmp(app, "qemu", 4);
        if (!use_chs || chs == VPC_MAX_GEOMETRY)
                return ia_be64(f + 48) / 512;
        return chs;
}

/* A VHD identity: the 16-byte unique id u, with its timestamp as a note. */
static void vpc_ident(char *out, const uint8_t *u, uint32_t ts)
{
        snprintf(out, IA_IDENT_LEN,
                 "uuid %02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x "
                 "(timestamp %u)",
                 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
                 u[13], u[14], u[15], ts);
}

/* The dynamic header and the BAT, checked as qemu checks them. */
static int vpc_open_dynamic(struct ia_image *img, struct vpc_state *s, const uint8_t *f,
                            struct ia_error *err)
{
        uint64_t flen = img->file->len, dh_off = ia_be64(f + 16), end, bat_bytes;
        uint8_t dh[VPC_DYNHDR_SIZE];
        uint8_t *buf;

        if (!ia_range_in(dh_off, VPC_DYNHDR_SIZE, img->file->src->size))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vpc: dynamic header offset %llu lies past the end of the "
                                    "file (%llu bytes)",
                                    (unsigned long long)dh_off,
                                    (unsigned long long)img->file->src->size);
        if (ia_read(img->file->src, dh, sizeof(dh), dh_off, "vpc dynamic header", err) < 0)
                return -1;
        if (memcmp(dh, "cxsparse", 8) != 0)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vpc: dynamic header at %llu lacks the 'cxsparse' cookie",
                                    (unsigned long long)dh_off);
        s->block_size = ia_be32(dh + 32);
        if (s->block_size < 512 || (s->block_size & (s->block_size - 1)))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vpc: block size %u is not a power of two of at least 512",
                                    s->block_size);
        s->bitmap_size = (s->block_size / (8 * 512) + 511) & ~511u;
        s->diff_bitmap = (uint32_t)ia_round_up(ia_round_up(s->block_size / 512, 8) / 8, 512);
        s->entries = ia_be32(dh + 28);
        s->bat_off = ia_be64(dh + 16);
        if (img->size / s->block_size > 0xffffffffull)
                return ia_error_set(err, IA_ERR_CORRUPT, "vpc: too many blocks for %llu bytes",
                                    (unsigned long long)img->size);
        if ((uint64_t)s->entries * s->block_size < img->size)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vpc: block allocation table of %u entries of %u bytes is "
                                    "smaller than the disk (%llu bytes)",
                                    s->entries, s->block_size, (unsigned long long)img->size);
        if (s->entries > 0x7fffffffu / 4)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "vpc: block allocation table entry count %u exceeds the "
                                    "limit of %u",
                                    s->entries, 0x7fffffffu / 4);
        bat_bytes = (uint64_t)s->entries * 4;
        /* qemu: nothing may lie past the end of the file, the BAT included. */
        if (!ia_add_ok(s->bat_off, bat_bytes, &end) || ia_round_up(end, 512) > flen)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vpc: block allocation table at %llu (%llu bytes) lies past "
                                    "the end of the file (%llu bytes)",
                                    (unsigned long long)s->bat_off, (unsigned long long)bat_bytes,
                                    (unsigned long long)flen);
        /* Not ia_window_fits: qemu's test above lets the BAT end in the last partial sector. */
        ia_window_init(&s->bat, img->file->src, s->bat_off, s->entries, 4, VPC_BAT_SLICE,
                       IA_WINDOW_ALIGNED, "vpc block allocation table");
        buf = malloc(VPC_SCAN_CHUNK * 4);
        if (!buf)
                return ia_error_set(err, IA_ERR_NOMEM, "vpc: out of memory for the BAT");
        for (uint32_t i = 0; i < s->entries; i += VPC_SCAN_CHUNK) {
                uint32_t n = ia_min_u64(VPC_SCAN_CHUNK, s->entries - i);

                if (ia_read(img->file->src, buf, (size_t)n * 4, s->bat_off + (uint64_t)i * 4,
                            "vpc block allocation table", err) < 0) {
                        free(buf);
                        return -1;
                }
                for (uint32_t j = 0; j < n; j++) {
                        uint32_t e = ia_be32(buf + 4 * j);

                        if (e == VPC_UNALLOCATED)
                                continue;
                        end = (uint64_t)e * 512 + s->bitmap_size + s->block_size;
                        if (end > flen) {
                                free(buf);
                                return ia_error_set(err, IA_ERR_CORRUPT,
                                                    "vpc: block %u at sector %u ends at %llu, past "
                                                    "the end of the file (%llu bytes)",
                                                    i + j, e, (unsigned long long)end,
                                                    (unsigned long long)flen);
                        }
                }
        }
        free(buf);
        if (s->diff) {
                static const uint8_t none[16];

                img->cow = true;
                /* Parent Unique ID and Parent Time Stamp; an all-zero id names nothing. */
                if (memcmp(dh + 40, none, 16) != 0)
                        vpc_ident(img->parent_ident[0], dh + 40, ia_be32(dh + 56));
                return vpc_read_parent(img, dh, err);
        }
        return 0;
}

static int vpc_open(struct ia_image *img, struct ia_error *err)
{
        struct ia_source *src = img->file->src;
        uint8_t f[VPC_FOOTER_SIZE];
        struct vpc_state *s;
        uint64_t sectors;
        uint32_t type;

        if (src->size < VPC_FOOTER_SIZE)
                return ia_error_set(err, IA_ERR_TRUNCATED,
                                    "vpc: file of %llu bytes is too short for a footer",
                                    (unsigned long long)src->size);
        s = calloc(1, sizeof(*s));
        if (!s)
                return ia_error_set(err, IA_ERR_NOMEM, "vpc: out of memory");
        if (ia_read(src, f, sizeof(f), 0, "vpc footer", err) < 0)
                goto fail;
        if (memcmp(f, "conectix", 8) != 0) {
                /*
                 * Only a fixed disk has its footer at the end alone.  Like
                 * qemu, look in the last 512 bytes of the file's length
                 * rounded up to sectors, reading zeroes past the end.
                 */
                memset(f, 0, sizeof(f));
                if (ia_read_upto(src, f, sizeof(f), img->file->len - VPC_FOOTER_SIZE, err) < 0)
                        goto fail;
                if (memcmp(f, "conectix", 8) != 0 || ia_be32(f + 60) != VPC_TYPE_FIXED) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "vpc: no 'conectix' footer of a fixed disk at the end of the "
                                     "file");
                        goto fail;
                }
        }
        if (vpc_checksum(f, sizeof(f)) != ia_be32(f + 64)) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "vpc: footer checksum 0x%08x does not match the computed 0x%08x",
                             ia_be32(f + 64), vpc_checksum(f, sizeof(f)));
                goto fail;
        }
        sectors = vpc_sectors(img, f);
        if (sectors > VPC_MAX_SECTORS) {
                ia_error_set(err, IA_ERR_LIMIT,
                             "vpc: disk size of %llu sectors exceeds the limit of %llu",
                             (unsigned long long)sectors, VPC_MAX_SECTORS);
                goto fail;
        }
        img->size = sectors * 512;
        vpc_ident(img->ident, f + 68, ia_be32(f + 24));
        /* As qemu: the type field alone decides fixed versus dynamic. */
        type = ia_be32(f + 60);
        s->fixed = type == VPC_TYPE_FIXED;
        s->diff = type == VPC_TYPE_DIFF;
        img->priv = s;
        if (!s->fixed) {
                if (vpc_open_dynamic(img, s, f, err) < 0)
                        goto fail;
                img->cluster_size = s->block_size;
        }
        return 0;
fail:
        free(img->backing);
        img->backing = NULL;
        img->priv = NULL;
        free(s);
        return -1;
}

/* The bitmap bit of sector sec in the block whose bitmap starts at host. */
static int vpc_bit(struct ia_image *img, uint64_t host, uint64_t sec, bool *bit,
                   struct ia_error *err)
{
        struct vpc_state *s = img->priv;
        uint64_t byte = host + sec / 8;

        if (!s->bmp_valid || byte < s->bmp_host || byte - s->bmp_host >= VPC_BITMAP_SLICE) {
                uint64_t at = byte - (byte - host) % VPC_BITMAP_SLICE;
                uint64_t n = ia_min_u64(VPC_BITMAP_SLICE, host + s->diff_bitmap - at);

                if (ia_read(img->file->src, s->bmp, (size_t)n, at, "vpc sector bitmap", err) < 0)
                        return -1;
                s->bmp_host = at;
                s->bmp_valid = true;
        }
        *bit = (s->bmp[byte - s->bmp_host] >> (7 - sec % 8)) & 1;
        return 0;
}

static int vpc_block_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                            struct ia_error *err)
{
        struct vpc_state *s = img->priv;
        uint64_t bs, idx, in, run;
        uint32_t e;

        if (s->fixed) {
                st->len = len;
                st->flags = IA_BS_DATA | IA_BS_OFFSET | IA_BS_RECURSE;
                st->host_off = off;
                st->file = img->file;
                return 0;
        }
        bs = s->block_size;
        idx = off / bs;
        in = off % bs;
        if (vpc_bat(img, (uint32_t)idx, &e, err) < 0)
                return -1;
        if (e == VPC_UNALLOCATED) {
                /* A run of unallocated blocks. */
                run = bs - in;
                while (run < len) {
                        if (vpc_bat(img, (uint32_t)(idx + 1), &e, err) < 0)
                                return -1;
                        if (e != VPC_UNALLOCATED)
                                break;
                        idx++;
                        run += bs;
                }
                st->len = ia_min_u64(run, len);
                st->flags = s->diff ? 0 : IA_BS_ZERO;
                return 0;
        }
        st->len = ia_min_u64(bs - in, len);
        st->flags = IA_BS_DATA | IA_BS_OFFSET;
        st->host_off = (uint64_t)e * 512 + s->bitmap_size + in;
        st->file = img->file;
        if (s->diff) {
                /* The true map: a clear bit means "read the parent". */
                uint64_t host = (uint64_t)e * 512, sec = in / 512, last;
                uint64_t nsec = bs / 512;
                bool first, bit;

                st->host_off = host + s->diff_bitmap + in;

                if (vpc_bit(img, host, sec, &first, err) < 0)
                        return -1;
                last = (in + st->len - 1) / 512;
                for (sec++; sec <= last && sec < nsec; sec++) {
                        if (vpc_bit(img, host, sec, &bit, err) < 0)
                                return -1;
                        if (bit != first)
                                break;
                }
                st->len = ia_min_u64(sec * 512 - in, st->len);
                if (!first)
                        st->flags = 0;
        }
        return 0;
}

static void vpc_close(struct ia_image *img)
{
        free(img->priv);
        img->priv = NULL;
}

const struct ia_driver ia_drv_vpc = {
    .name = "vpc",
    .flags = 0,
    .probe = vpc_probe,
    .open = vpc_open,
    .block_status = vpc_block_status,
    .close = vpc_close,
};
