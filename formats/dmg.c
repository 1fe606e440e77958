/*
 * dmg: Apple UDIF disk images (hdiutil's .dmg), opened as qemu's dmg driver
 * opens them.
 *
 * Why: qemu reads dmg images, so a store may hold them.  qemu's driver has no
 * block status: qemu-img map prints one data entry without offset for the
 * whole disk (the human layout fails), and so do we by default.  With
 * ctx->true_map (`imgaudit map --true-map`) we print the map the chunk tables
 * describe instead, read without decompressing anything.
 *
 * Recognition, as qemu: by name only.  qemu's probe scores 2 for a name
 * ending in ".dmg" (case-sensitive, longer than the suffix) and looks at no
 * byte, so any other driver that recognises the content wins (but cloop,
 * which loses the tie), raw never does, and a .dmg file without a trailer
 * is an error, not a raw disk.
 *
 * Layout (big-endian):
 *   koly trailer, 512 bytes, the last thing in the file.  qemu looks for the
 *     magic "koly" in a 515-byte window that ends 512 bytes before the file
 *     size rounded up to 512 (zeroes past the end), taking the first match.
 *     0x18 data fork offset, 0x28/0x30 resource fork offset and length,
 *     0xd8/0xe0 XML plist offset and length, 0x1ec sector count (the disk's
 *     size in 512-byte sectors).
 *   blkx tables ("mish" blocks), found in the resource fork (when its length
 *     is non-zero: u32 data offset at its start, u32 data length at +8, then
 *     resources as u32 length + bytes), else in the XML plist (qemu takes
 *     every <data>...</data> element, base64-decodes it and keeps those that
 *     start with "mish" and hold at least 244 bytes; the plist is at most
 *     16 MiB).  A mish block: 0x08 first sector, 0x18 data offset (relative
 *     to the data fork), chunk entries of 40 bytes from byte 204: type,
 *     comment, sector number, sector count (relative to the block), data
 *     offset (relative to the block's), data length.
 *   Chunk types: 0 zero, 1 raw, 2 ignore (reads as zero), 0x80000004 ADC,
 *     0x80000005 zlib, 0x80000006 bzip2, 0x80000007 lzfse, 0x7ffffffe
 *     comment, 0xffffffff terminator.
 *
 * What qemu refuses at open, and so do we: no trailer; a data fork, resource
 * fork or plist that does not end before the trailer; a negative sector
 * count; neither a resource fork nor a plist; a damaged resource fork; a
 * <data> without </data>; a plist over 16 MiB; a chunk (other than zero and
 * ignore) of more than 131072 sectors, or any chunk longer than 64 MiB.
 * qemu drops chunks of types it cannot read (ADC, unknown types) without
 * checking them; it checks bzip2 and lzfse chunks when its dmg-bz2 and
 * dmg-lzfse modules are installed (qemu-block-extra), and so do we.
 * Stricter than qemu: a sector count whose byte size overflows 2^63 (qemu
 * fails later, "Failed to get size").
 *
 * The true map: zero and ignore chunks are zero (present); raw chunks data
 * at their file offset; compressed chunks (zlib, bzip2, lzfse, ADC) data
 * without offset, compressed.  It is refused when chunks overlap, leave
 * sectors of the disk in no chunk, are of an unknown type, when a raw chunk
 * holds fewer bytes than its sectors, or beyond 1 Mi chunks (a memory cap:
 * 32 MiB of table).  Not supported: encrypted images (their header is at the
 * start, "encrcdsa": no trailer is found, as in qemu), segmented images.
 */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "image.h"
#include "banned.h"

#define DMG_SECTOR      512u
#define DMG_TRAILER     512u
#define DMG_KOLY_WINDOW 515u
#define DMG_XML_MAX     (16u << 20) /* qemu's cap on the plist */
#define DMG_LENGTH_MAX  (64u << 20) /* qemu's cap on a chunk's data length */
#define DMG_SECTORS_MAX (DMG_LENGTH_MAX / DMG_SECTOR)
#define DMG_MISH_MIN    244u /* header (204 bytes) and one chunk entry */
#define DMG_MISH_HEADER 204u
#define DMG_ENTRY       40u
#define DMG_ENTRY_BATCH 256u
#define DMG_CHUNKS_MAX  (1u << 20) /* true map only */

#define DMG_ZERO       0x00000000u
#define DMG_RAW        0x00000001u
#define DMG_IGNORE     0x00000002u
#define DMG_ADC        0x80000004u
#define DMG_ZLIB       0x80000005u
#define DMG_BZIP2      0x80000006u
#define DMG_LZFSE      0x80000007u
#define DMG_COMMENT    0x7ffffffeu
#define DMG_TERMINATOR 0xffffffffu

struct dmg_chunk {
        uint64_t sector; /* first guest sector */
        uint64_t count;  /* sectors */
        uint64_t off;    /* data offset in the file */
        uint32_t type;
};

struct dmg {
        struct dmg_chunk *chunks; /* true map only: sorted by sector */
        size_t n, cap;
};

/* What the table walk needs besides the image. */
struct dmg_parse {
        struct ia_image *img;
        struct dmg *s;
        uint64_t data_fork; /* the data fork's offset */
        bool keep;          /* keep the chunks (true map) */
};

/*
 * qemu scores 2 for the name and ranks: every format it recognises by
 * content scores more, except cloop, which also scores 2 and loses the tie
 * (a cloop image named x.dmg is opened as dmg).  Our cloop probe scores 2,
 * as qemu's: 55 keeps qemu's order (under every content score but cloop's).
 */
#define DMG_PROBE_SCORE 55

static int dmg_probe(const struct ia_probe *p)
{
        size_t len;

        if (!p->name)
                return 0;
        len = strlen(p->name);
        return len > 4 && strcmp(p->name + len - 4, ".dmg") == 0 ? DMG_PROBE_SCORE : 0;
}

/* Read len bytes at off, zeroes past the end of the source (as qemu reads). */
static int read_zf(struct ia_source *src, void *buf, size_t len, uint64_t off, struct ia_error *err)
{
        int64_t n = 0;

        if (off < src->size)
                n = ia_read_upto(src, buf, len, off, err);
        if (n < 0)
                return -1;
        memset((uint8_t *)buf + n, 0, len - (size_t)n);
        return 0;
}

static bool type_known(uint32_t type)
{
        switch (type) {
        case DMG_ZERO:
        case DMG_RAW:
        case DMG_IGNORE:
        case DMG_ZLIB:
        case DMG_BZIP2:
        case DMG_LZFSE:
                return true;
        default:
                return false;
        }
}

static int keep_chunk(struct dmg_parse *ps, const struct dmg_chunk *c, struct ia_error *err)
{
        struct dmg *s = ps->s;

        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 64;
                struct dmg_chunk *nc;

                if (s->n >= DMG_CHUNKS_MAX)
                        return ia_error_set(err, IA_ERR_LIMIT, "dmg: more than %u chunks",
                                            DMG_CHUNKS_MAX);
                if (cap > DMG_CHUNKS_MAX)
                        cap = DMG_CHUNKS_MAX;
                nc = realloc(s->chunks, cap * sizeof(*nc));
                if (!nc)
                        return ia_error_set(err, IA_ERR_NOMEM, "dmg: out of memory");
                s->chunks = nc;
                s->cap = cap;
        }
        s->chunks[s->n++] = *c;
        return 0;
}

/* One chunk entry of a mish block whose sectors start at first and data at data. */
static int parse_entry(struct dmg_parse *ps, const uint8_t *e, uint64_t first, uint64_t data,
                       struct ia_error *err)
{
        struct dmg_chunk c;
        uint64_t length;

        c.type = ia_be32(e);
        if (c.type == DMG_COMMENT || c.type == DMG_TERMINATOR)
                return 0;
        /* Offsets wrap as qemu's do; the true map checks what it uses. */
        c.sector = ia_be64(e + 8) + first;
        c.count = ia_be64(e + 16);
        c.off = ia_be64(e + 24) + data;
        length = ia_be64(e + 32);
        if (!type_known(c.type)) {
                /* qemu drops the chunk (reading it fails); ADC we can map. */
                if (!ps->keep)
                        return 0;
                if (c.type != DMG_ADC)
                        return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                            "dmg: chunk type 0x%08x at sector %llu is unknown",
                                            c.type, (unsigned long long)c.sector);
                return c.count ? keep_chunk(ps, &c, err) : 0;
        }
        if (c.type != DMG_ZERO && c.type != DMG_IGNORE && c.count > DMG_SECTORS_MAX)
                return ia_error_set(err, IA_ERR_CORRUPT, "dmg: chunk sector count %llu exceeds %u",
                                    (unsigned long long)c.count, DMG_SECTORS_MAX);
        if (length > DMG_LENGTH_MAX)
                return ia_error_set(err, IA_ERR_CORRUPT, "dmg: chunk data length %llu exceeds %u",
                                    (unsigned long long)length, DMG_LENGTH_MAX);
        if (!ps->keep || c.count == 0)
                return 0;
        if (c.type == DMG_RAW && length < c.count * DMG_SECTOR)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "dmg: raw chunk at sector %llu holds %llu bytes for %llu "
                                    "sectors",
                                    (unsigned long long)c.sector, (unsigned long long)length,
                                    (unsigned long long)c.count);
        return keep_chunk(ps, &c, err);
}

/* A blkx table of count bytes at off in src (the file, or a decoded plist element). */
static int parse_mish(struct dmg_parse *ps, struct ia_source *src, uint64_t off, uint64_t count,
                      struct ia_error *err)
{
        uint8_t h[DMG_MISH_HEADER];
        uint8_t batch[DMG_ENTRY_BATCH * DMG_ENTRY];
        uint64_t first, data, n, done = 0;

        if (count < DMG_MISH_MIN)
                return 0; /* not a blkx table: qemu skips it */
        if (read_zf(src, h, sizeof(h), off, err) < 0)
                return -1;
        if (ia_be32(h) != 0x6d697368u) /* "mish" */
                return 0;
        first = ia_be64(h + 8);
        data = ps->data_fork + ia_be64(h + 24);
        n = (count - DMG_MISH_HEADER) / DMG_ENTRY;
        off += DMG_MISH_HEADER;
        while (done < n) {
                size_t k = (size_t)ia_min_u64(n - done, DMG_ENTRY_BATCH);

                if (read_zf(src, batch, k * DMG_ENTRY, off + done * DMG_ENTRY, err) < 0)
                        return -1;
                for (size_t i = 0; i < k; i++)
                        if (parse_entry(ps, batch + i * DMG_ENTRY, first, data, err) < 0)
                                return -1;
                done += k;
        }
        return 0;
}

static int parse_rsrc(struct dmg_parse *ps, uint64_t begin, uint64_t length, struct ia_error *err)
{
        struct ia_source *src = ps->img->file->src;
        uint8_t b[12];
        uint64_t data_off, data_len, off, end;

        if (read_zf(src, b, sizeof(b), begin, err) < 0)
                return -1;
        data_off = ia_be32(b);
        data_len = ia_be32(b + 8);
        if (data_off > length)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "dmg: resource data offset %llu exceeds the resource fork "
                                    "(%llu bytes)",
                                    (unsigned long long)data_off, (unsigned long long)length);
        if (data_len == 0 || data_off + data_len > length)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "dmg: resource data length %llu at %llu does not fit the "
                                    "resource fork (%llu bytes)",
                                    (unsigned long long)data_len, (unsigned long long)data_off,
                                    (unsigned long long)length);
        off = begin + data_off;
        end = off + data_len;
        while (off < end) {
                uint64_t count;

                if (read_zf(src, b, 4, off, err) < 0)
                        return -1;
                count = ia_be32(b);
                if (count == 0 || count > end - off)
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "dmg: resource length %llu at %llu runs past the "
                                            "resource data",
                                            (unsigned long long)count, (unsigned long long)off);
                off += 4;
                if (parse_mish(ps, src, off, count, err) < 0)
                        return -1;
                off += count;
        }
        return 0;
}

/*
 * Decode base64 text in place, as glib's g_base64_decode does: characters
 * outside the alphabet are skipped, '=' counts as a zero digit that drops
 * output bytes, an incomplete last group is dropped.  Returns the length.
 */
static size_t base64_decode_inplace(char *text, size_t len)
{
        uint8_t *out = (uint8_t *)text;
        size_t o = 0;
        uint32_t v = 0;
        unsigned i = 0;
        char last0 = 0, last1 = 0;

        for (size_t k = 0; k < len; k++) {
                char c = text[k];
                int rank;

                if (c >= 'A' && c <= 'Z')
                        rank = c - 'A';
                else if (c >= 'a' && c <= 'z')
                        rank = c - 'a' + 26;
                else if (c >= '0' && c <= '9')
                        rank = c - '0' + 52;
                else if (c == '+')
                        rank = 62;
                else if (c == '/')
                        rank = 63;
                else if (c == '=')
                        rank = 0;
                else
                        continue;
                last1 = last0;
                last0 = c;
                v = v << 6 | (uint32_t)rank;
                if (++i == 4) {
                        /* o <= k - 3: the output never overtakes the input */
                        out[o++] = (uint8_t)(v >> 16);
                        if (last1 != '=')
                                out[o++] = (uint8_t)(v >> 8);
                        if (last0 != '=')
                                out[o++] = (uint8_t)v;
                        i = 0;
                }
        }
        return o;
}

static int parse_xml(struct dmg_parse *ps, uint64_t begin, uint64_t length, struct ia_error *err)
{
        struct ia_source *src = ps->img->file->src;
        char *buf, *p, *end;
        int rc = -1;

        if (length > DMG_XML_MAX)
                return ia_error_set(err, IA_ERR_LIMIT, "dmg: XML plist of %llu bytes exceeds %u",
                                    (unsigned long long)length, DMG_XML_MAX);
        buf = malloc(length + 1);
        if (!buf)
                return ia_error_set(err, IA_ERR_NOMEM, "dmg: out of memory");
        if (read_zf(src, buf, length, begin, err) < 0)
                goto free_buf;
        buf[length] = '\0';
        /* qemu searches the text as a C string: a NUL byte ends it. */
        end = buf + strlen(buf);
        p = buf;
        while ((p = strstr(p, "<data>")) != NULL) {
                char *close, *text = p + 6;
                struct ia_source *mem;
                size_t n;

                close = strstr(text, "</data>");
                if (!close) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "dmg: XML plist: <data> at byte %zu has no </data>",
                                     (size_t)(p - buf));
                        goto free_buf;
                }
                n = base64_decode_inplace(text, (size_t)(close - text));
                mem = ia_source_memory(text, n, false, err);
                if (!mem)
                        goto free_buf;
                if (parse_mish(ps, mem, 0, n, err) < 0) {
                        ia_source_unref(mem);
                        goto free_buf;
                }
                ia_source_unref(mem);
                p = close + 1;
                if (p >= end)
                        break;
        }
        rc = 0;
free_buf:
        free(buf);
        return rc;
}

static int chunk_cmp(const void *a, const void *b)
{
        const struct dmg_chunk *x = a, *y = b;

        return x->sector < y->sector ? -1 : x->sector > y->sector;
}

/* The true map: chunks sorted, disjoint, covering the disk, raw data in the file. */
static int check_chunks(struct ia_image *img, struct dmg *s, struct ia_error *err)
{
        uint64_t sectors = img->size / DMG_SECTOR, pos = 0;

        if (s->n)
                qsort(s->chunks, s->n, sizeof(*s->chunks), chunk_cmp);
        for (size_t i = 0; i < s->n; i++) {
                const struct dmg_chunk *c = &s->chunks[i];
                uint64_t end;

                if (c->sector >= sectors) {
                        s->n = i; /* past the disk: never looked up */
                        break;
                }
                if (!ia_add_ok(c->sector, c->count, &end) || end > UINT64_MAX / DMG_SECTOR)
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "dmg: chunk at sector %llu of %llu sectors overflows",
                                            (unsigned long long)c->sector,
                                            (unsigned long long)c->count);
                if (c->sector < pos)
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "dmg: chunk at sector %llu overlaps the chunk "
                                            "before it (which ends at sector %llu)",
                                            (unsigned long long)c->sector, (unsigned long long)pos);
                if (c->sector > pos)
                        return ia_error_set(
                            err, IA_ERR_CORRUPT, "dmg: sectors %llu to %llu are in no chunk",
                            (unsigned long long)pos, (unsigned long long)c->sector - 1);
                if (c->type == DMG_RAW && !ia_add_ok(c->off, c->count * DMG_SECTOR, &end))
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "dmg: raw chunk at sector %llu: data offset %llu "
                                            "overflows",
                                            (unsigned long long)c->sector,
                                            (unsigned long long)c->off);
                pos = c->sector + c->count;
        }
        if (pos < sectors)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "dmg: sectors %llu to %llu are in no chunk",
                                    (unsigned long long)pos, (unsigned long long)sectors - 1);
        return 0;
}

static int dmg_open(struct ia_image *img, struct ia_error *err)
{
        struct ia_source *src = img->file->src;
        uint64_t len, win, koly, rsrc_off, rsrc_len, xml_off, xml_len, sectors;
        uint8_t w[DMG_KOLY_WINDOW], t[DMG_TRAILER];
        struct dmg_parse ps;
        struct dmg *s;
        size_t wlen, i;

        if (src->size > UINT64_MAX - DMG_SECTOR)
                return ia_error_set(err, IA_ERR_CORRUPT, "dmg: file size overflows");
        /* qemu's window: 515 bytes from 1023 before the size rounded up to 512 */
        len = ia_round_up(src->size, DMG_SECTOR);
        win = len > DMG_TRAILER + 511 ? len - DMG_TRAILER - 511 : 0;
        wlen = (size_t)ia_min_u64(len, DMG_KOLY_WINDOW);
        if (len < DMG_TRAILER)
                return ia_error_set(err, IA_ERR_TRUNCATED,
                                    "dmg: the file is empty (a dmg ends with a %u-byte trailer)",
                                    DMG_TRAILER);
        if (read_zf(src, w, wlen, win, err) < 0)
                return -1;
        for (i = 0; i + 3 < wlen; i++)
                if (memcmp(w + i, "koly", 4) == 0)
                        break;
        if (i + 3 >= wlen)
                return ia_error_set(
                    err, IA_ERR_CORRUPT,
                    "dmg: no koly trailer at the end of the file (none starts 512 to "
                    "1023 bytes before its size rounded up to 512)");
        koly = win + i;
        if (read_zf(src, t, sizeof(t), koly, err) < 0)
                return -1;
        memset(&ps, 0, sizeof(ps));
        ps.img = img;
        ps.data_fork = ia_be64(t + 0x18);
        rsrc_off = ia_be64(t + 0x28);
        rsrc_len = ia_be64(t + 0x30);
        xml_off = ia_be64(t + 0xd8);
        xml_len = ia_be64(t + 0xe0);
        sectors = ia_be64(t + 0x1ec);
        if (ps.data_fork > koly)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "dmg: data fork offset %llu is past the trailer at %llu",
                                    (unsigned long long)ps.data_fork, (unsigned long long)koly);
        if (rsrc_off >= koly || rsrc_len > koly - rsrc_off)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "dmg: resource fork at %llu (%llu bytes) does not end before "
                                    "the trailer at %llu",
                                    (unsigned long long)rsrc_off, (unsigned long long)rsrc_len,
                                    (unsigned long long)koly);
        if (xml_off >= koly || xml_len > koly - xml_off)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "dmg: XML plist at %llu (%llu bytes) does not end before the "
                                    "trailer at %llu",
                                    (unsigned long long)xml_off, (unsigned long long)xml_len,
                                    (unsigned long long)koly);
        if (sectors > INT64_MAX / DMG_SECTOR)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "dmg: sector count %llu overflows a 63-bit byte size",
                                    (unsigned long long)sectors);
        if (rsrc_len == 0 && xml_len == 0)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "dmg: the trailer names neither a resource fork nor an XML "
                                    "plist");

        s = calloc(1, sizeof(*s));
        if (!s)
                return ia_error_set(err, IA_ERR_NOMEM, "dmg: out of memory");
        ps.s = s;
        ps.keep = img->ctx && img->ctx->true_map;
        img->size = sectors * DMG_SECTOR;
        if ((rsrc_len ? parse_rsrc(&ps, rsrc_off, rsrc_len, err)
                      : parse_xml(&ps, xml_off, xml_len, err)) < 0)
                goto free_s;
        if (ps.keep && check_chunks(img, s, err) < 0)
                goto free_s;
        img->priv = s;
        img->cow = false;
        img->cluster_size = 0;
        return 0;

free_s:
        free(s->chunks);
        free(s);
        return -1;
}

/* The true map (ctx->true_map): one chunk per answer; the core merges. */
static int dmg_block_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                            struct ia_error *err)
{
        struct dmg *s = img->priv;
        uint64_t sector = off / DMG_SECTOR;
        size_t lo = 0, hi = s->n;
        const struct dmg_chunk *c;
        uint64_t start, end;

        (void)len;
        if (!img->ctx || !img->ctx->true_map) {
                ia_bs_coarse(img, off, st);
                return 0;
        }
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (s->chunks[mid].sector + s->chunks[mid].count <= sector)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == s->n || s->chunks[lo].sector > sector)
                return ia_error_set(err, IA_ERR_INTERNAL, "dmg: sector %llu is in no chunk",
                                    (unsigned long long)sector);
        c = &s->chunks[lo];
        start = c->sector * DMG_SECTOR;
        end = (c->sector + c->count) * DMG_SECTOR;
        st->len = end - off;
        switch (c->type) {
        case DMG_ZERO:
        case DMG_IGNORE:
                st->flags = IA_BS_ZERO;
                break;
        case DMG_RAW:
                st->flags = IA_BS_DATA | IA_BS_OFFSET;
                st->host_off = c->off + (off - start);
                st->file = img->file;
                break;
        default:
                st->flags = IA_BS_DATA | IA_BS_COMPRESSED;
                break;
        }
        return 0;
}

static void dmg_close(struct ia_image *img)
{
        struct dmg *s = img->priv;

        if (s) {
                free(s->chunks);
                free(s);
        }
        img->priv = NULL;
}

const struct ia_driver ia_drv_dmg = {
    .name = "dmg",
    .flags = 0,
    .probe = dmg_probe,
    .open = dmg_open,
    .block_status = dmg_block_status,
    .close = dmg_close,
};
