/*
 * parallels: Parallels (Virtuozzo) expanding disk images, mapped as qemu's
 * parallels driver maps them.
 *
 * Layout (little-endian, docs/interop/parallels.txt): a 64-byte header
 * (16-byte magic "WithoutFreeSpace" or "WithouFreSpacExt", version 2,
 * heads, cylinders, tracks = sectors per cluster, BAT entry count, sector
 * count, "in use" marker, data offset, flags, extension offset), then the
 * block allocation table at byte 64: one 32-bit entry per cluster, 0 for
 * unallocated.  With the old magic an entry is a sector offset; with the
 * new one it is counted in clusters (tracks sectors).  The old magic keeps
 * only the low 32 bits of the sector count.
 *
 * Map: runs of clusters whose host offsets continue each other are data
 * with an offset; runs of unallocated clusters are "not here" (the driver
 * supports backing files in qemu, so the core synthesises zeroes).
 *
 * Not supported: the format extension (dirty bitmaps), not needed to map;
 * only its magic is checked, as qemu refuses an image whose magic is wrong.
 * Deliberately stricter than qemu: a BAT that does not fit in the file is
 * an error (qemu reads zeroes); a BAT entry pointing past the end of the
 * file is reported as a finding but mapped as qemu maps it.
 */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "image.h"
#include "window.h"
#include "banned.h"

#define PRL_MAGIC_V1   "WithoutFreeSpace"
#define PRL_MAGIC_V2   "WithouFreSpacExt"
#define PRL_VERSION    2u
#define PRL_HEADER_LEN 64u
#define PRL_TRACKS_MAX (INT32_MAX / 513)
/* qemu's cap on the BAT: INT_MAX / 4 entries (the BAT is read in slices). */
#define PRL_BAT_MAX       (INT32_MAX / 4)
#define PRL_EXT_MAGIC     0xab234cef23dcea87ull
#define PRL_SLICE_ENTRIES 1024u

struct parallels {
        uint64_t cluster;    /* bytes */
        uint64_t multiplier; /* sectors per BAT unit */
        uint32_t bat_entries;
        bool reported;        /* a BAT entry past EOF was reported */
        struct ia_window bat; /* the BAT at byte 64, read in slices */
};

static int parallels_probe(const struct ia_probe *p)
{
        /* qemu probes a zero-padded buffer: only magic and version must be there. */
        if (p->head_len < 20)
                return 0;
        if (memcmp(p->head, PRL_MAGIC_V1, 16) && memcmp(p->head, PRL_MAGIC_V2, 16))
                return 0;
        return ia_le32(p->head + 16) == PRL_VERSION ? 100 : 0;
}

static int parallels_open(struct ia_image *img, struct ia_error *err)
{
        struct ia_source *src = img->file->src;
        uint8_t h[PRL_HEADER_LEN];
        uint64_t sectors, ext_off;
        uint32_t tracks, bat_entries;
        struct parallels *s;
        bool v1;

        if (ia_read(src, h, sizeof(h), 0, "parallels header", err) < 0)
                return -1;
        if (ia_le32(h + 16) != PRL_VERSION)
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "parallels: version %u is not supported", ia_le32(h + 16));
        if (!memcmp(h, PRL_MAGIC_V1, 16))
                v1 = true;
        else if (!memcmp(h, PRL_MAGIC_V2, 16))
                v1 = false;
        else
                return ia_error_set(err, IA_ERR_CORRUPT, "parallels: bad magic");
        tracks = ia_le32(h + 28);
        bat_entries = ia_le32(h + 32);
        sectors = ia_le64(h + 36);
        ext_off = ia_le64(h + 56);
        if (v1)
                sectors &= 0xffffffffu;
        if (tracks == 0)
                return ia_error_set(err, IA_ERR_CORRUPT, "parallels: zero sectors per cluster");
        if (tracks > PRL_TRACKS_MAX)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "parallels: %u sectors per cluster exceeds %u", tracks,
                                    PRL_TRACKS_MAX);
        if (sectors > INT64_MAX / 512)
                return ia_error_set(err, IA_ERR_LIMIT, "parallels: sector count %llu is too large",
                                    (unsigned long long)sectors);
        if (bat_entries > PRL_BAT_MAX)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "parallels: BAT of %u entries exceeds the limit of %u",
                                    bat_entries, PRL_BAT_MAX);

        s = calloc(1, sizeof(*s));
        if (!s)
                return ia_error_set(err, IA_ERR_NOMEM, "parallels: out of memory");
        ia_window_init(&s->bat, src, PRL_HEADER_LEN, bat_entries, 4, PRL_SLICE_ENTRIES, 0,
                       "parallels BAT");
        if (!ia_window_fits(&s->bat)) {
                ia_error_set(err, IA_ERR_TRUNCATED,
                             "parallels: BAT of %u entries lies past the end of the file "
                             "(%llu bytes)",
                             bat_entries, (unsigned long long)src->size);
                goto free_s;
        }
        s->cluster = (uint64_t)tracks * 512;
        s->multiplier = v1 ? 1 : tracks;
        s->bat_entries = bat_entries;
        if (ext_off) {
                /*
                 * qemu reads the format extension on read-only opens and
                 * refuses the image when its magic is wrong.
                 */
                uint8_t magic[8];

                if (ext_off > INT64_MAX / 512) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "parallels: format extension offset %llu is too large",
                                     (unsigned long long)ext_off);
                        goto free_s;
                }
                if (ia_read(src, magic, sizeof(magic), ext_off * 512, "parallels format extension",
                            err) < 0)
                        goto free_s;
                if (ia_le64(magic) != PRL_EXT_MAGIC) {
                        ia_error_set(err, IA_ERR_CORRUPT,
                                     "parallels: format extension magic 0x%llx is not 0x%llx",
                                     (unsigned long long)ia_le64(magic),
                                     (unsigned long long)PRL_EXT_MAGIC);
                        goto free_s;
                }
        }
        img->priv = s;
        img->size = sectors * 512;
        img->cluster_size = (uint32_t)s->cluster;
        if (ia_le32(h + 44) == 0x746f6e59u) /* "Ynot": not closed cleanly */
                img->flags |= IA_IMG_DIRTY;
        return 0;

free_s:
        free(s);
        return -1;
}

/* The host byte offset of cluster index, or 0 when it is unallocated. */
static int parallels_host(struct ia_image *img, uint64_t index, uint64_t *host,
                          struct ia_error *err)
{
        struct parallels *s = img->priv;
        const uint8_t *p;
        uint32_t e;

        *host = 0;
        if (index >= s->bat_entries)
                return 0;
        p = ia_window_entry(&s->bat, index, err);
        if (!p)
                return -1;
        e = ia_le32(p);
        /* At most 2^32 * (2^31 / 513) sectors: no overflow in 64 bits. */
        *host = (uint64_t)e * s->multiplier * 512;
        if (e && *host >= img->file->len && !s->reported) {
                s->reported = true;
                ia_image_finding(img, "bat-beyond-eof",
                                 "parallels: BAT entry %llu points at %llu, past the end of the "
                                 "file (%llu bytes)",
                                 (unsigned long long)index, (unsigned long long)*host,
                                 (unsigned long long)img->file->len);
        }
        return 0;
}

static int parallels_block_status(struct ia_image *img, uint64_t off, uint64_t len,
                                  struct ia_bstatus *st, struct ia_error *err)
{
        struct parallels *s = img->priv;
        uint64_t index = off / s->cluster, in_cluster = off % s->cluster;
        uint64_t first, host, run;

        if (parallels_host(img, index, &first, err) < 0)
                return -1;
        run = ia_min_u64(s->cluster - in_cluster, len);
        while (run < len) {
                if (++index >= s->bat_entries) {
                        /* Past the BAT every cluster is unallocated. */
                        if (!first)
                                run = len;
                        break;
                }
                if (parallels_host(img, index, &host, err) < 0)
                        return -1;
                if (first ? host != first + in_cluster + run : host != 0)
                        break;
                run = ia_min_u64(run + s->cluster, len);
        }
        st->len = run;
        st->flags = 0;
        if (!first)
                return 0;
        st->flags = IA_BS_DATA | IA_BS_OFFSET;
        st->host_off = first + in_cluster;
        st->file = img->file;
        return 0;
}

const struct ia_driver ia_drv_parallels = {
    .name = "parallels",
    .flags = IA_DRV_BACKING,
    .probe = parallels_probe,
    .open = parallels_open,
    .block_status = parallels_block_status,
    .close = ia_close_priv,
};
