/*
 * VHDX log replay in memory: see vhdxlog.h for why.
 *
 * Layout (little-endian, from the published VHDX specification, "Log"):
 *   The log is a circular buffer of 4 KiB sectors at LogOffset (1 MiB
 *   aligned, LogLength a multiple of 1 MiB).  An entry starts on a sector:
 *     header (64 bytes): "loge", CRC-32C over the whole entry (this field
 *       taken as zero), EntryLength (a multiple of 4 KiB), Tail (offset in
 *       the log of the entry that begins the sequence this one ends),
 *       SequenceNumber (non-zero), DescriptorCount, reserved, LogGuid (must
 *       equal the header's), FlushedFileOffset (the file must be at least
 *       this long), LastFileOffset (the file's length when it was written);
 *     descriptors (32 bytes each, following the header, as many sectors as
 *       they need): "zero" (ZeroLength, FileOffset, SequenceNumber: that
 *       range of the file becomes zero) or "desc" (TrailingBytes,
 *       LeadingBytes, FileOffset, SequenceNumber: one 4 KiB sector of the
 *       file, whose 4084 middle bytes are the next data sector);
 *     data sectors: "data", SequenceHigh, 4084 bytes, SequenceLow.
 *   Every sequence number inside an entry equals the entry's.
 *
 * The active sequence: the run of valid entries, each directly following
 * the previous one in the buffer with the next sequence number, that starts
 * where its last entry's Tail points, with the highest last sequence number.
 * Its entries are applied in order; later writes win.
 *
 * The overlay is a sorted list of disjoint segments (zero, or bytes from
 * the log); everything else reads from the file (zero past its end).  Its
 * memory is bounded by the log size (IA_VHDX_LOG_MAX).
 */
#include "vhdxlog.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "banned.h"

#define SECTOR      4096u
#define MIB         (1024ull * 1024)
#define MAX_FILEOFF (1ull << 48) /* 256 TiB: past any VHDX (64 TiB disks) */

static uint32_t crc32c_update(uint32_t crc, const uint8_t *p, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                crc ^= p[i];
                for (int k = 0; k < 8; k++)
                        crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
        }
        return crc;
}

uint32_t ia_vhdx_crc32c(const uint8_t *p, size_t len)
{
        return ~crc32c_update(0xffffffffu, p, len);
}

/* One write the log makes: [off, end), bytes (SECTOR of them) or NULL for zeroes. */
struct patch {
        uint64_t off, end;
        const uint8_t *bytes;
};

/* A segment of the overlay; bytes points at the byte for off, NULL: zeroes. */
struct seg {
        uint64_t off, end;
        const uint8_t *bytes;
};

struct overlay {
        struct ia_source base;
        struct ia_source *file;
        uint64_t file_size;
        struct seg *segs;
        size_t nsegs;
        uint8_t *sectors; /* the data sectors, rebuilt whole (4 KiB each) */
};

/* A valid entry starting at a log sector. */
struct entry {
        bool valid;
        uint32_t sectors; /* EntryLength / SECTOR */
        uint32_t tail;    /* Tail / SECTOR */
        uint32_t ndesc;
        uint64_t seq;
        uint64_t flushed, last;
};

struct log {
        const uint8_t *buf; /* the whole log */
        uint32_t nsec;
        const uint8_t *guid;
        uint64_t len;
        uint32_t crc_table[256];
        /* Bytes the entry checksums may still cover: a hostile log can make every
         * sector look like the start of a log-long entry. */
        uint64_t crc_budget;
        bool over_budget;
};

#define CRC_BUDGET_PER_LOG_BYTE 8

static void crc_table_init(uint32_t *t)
{
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;

                for (int k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
                t[i] = c;
        }
}

static uint32_t crc_fast(const uint32_t *t, uint32_t crc, const uint8_t *p, size_t len)
{
        for (size_t i = 0; i < len; i++)
                crc = t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
        return crc;
}

static const uint8_t *log_sector(const struct log *l, uint64_t first, uint64_t k)
{
        return l->buf + ((first + k) % l->nsec) * SECTOR;
}

/* Descriptor d of the entry at sector first (32 bytes, never across sectors). */
static const uint8_t *log_desc(const struct log *l, uint32_t first, uint32_t d)
{
        uint64_t at = 64 + 32ull * d;

        return log_sector(l, first, at / SECTOR) + at % SECTOR;
}

static uint32_t desc_sectors(uint32_t ndesc)
{
        return (uint32_t)(((uint64_t)ndesc * 32 + 64 + SECTOR - 1) / SECTOR);
}

/* Is there a valid entry at sector i?  Everything the specification checks. */
static void check_entry(struct log *l, uint32_t i, struct entry *e)
{
        const uint8_t *h = log_sector(l, i, 0);
        uint8_t first[SECTOR];
        uint32_t len = ia_le32(h + 8), crc, ds, ndata = 0;

        memset(e, 0, sizeof(*e));
        if (memcmp(h, "loge", 4) != 0 || len == 0 || len % SECTOR || len > l->len)
                return;
        e->sectors = len / SECTOR;
        e->tail = ia_le32(h + 12);
        e->seq = ia_le64(h + 16);
        e->ndesc = ia_le32(h + 24);
        e->flushed = ia_le64(h + 48);
        e->last = ia_le64(h + 56);
        if (e->seq == 0 || e->tail % SECTOR || e->tail >= l->len || memcmp(h + 32, l->guid, 16))
                return;
        e->tail /= SECTOR;
        if ((uint64_t)e->ndesc * 32 + 64 > (uint64_t)len)
                return;
        ds = desc_sectors(e->ndesc);
        for (uint32_t d = 0; d < e->ndesc; d++) {
                const uint8_t *p = log_desc(l, i, d);

                if (ia_le64(p + 24) != e->seq || ia_le64(p + 16) % SECTOR)
                        return;
                if (memcmp(p, "zero", 4) == 0) {
                        if (ia_le64(p + 8) % SECTOR)
                                return;
                } else if (memcmp(p, "desc", 4) == 0) {
                        const uint8_t *s;

                        if (ds + ndata >= e->sectors)
                                return;
                        s = log_sector(l, i, ds + ndata);
                        if (memcmp(s, "data", 4) != 0 ||
                            ia_le32(s + 4) != (uint32_t)(e->seq >> 32) ||
                            ia_le32(s + SECTOR - 4) != (uint32_t)e->seq)
                                return;
                        ndata++;
                } else {
                        return;
                }
        }
        if (l->crc_budget < len) {
                l->over_budget = true;
                return;
        }
        l->crc_budget -= len;
        memcpy(first, h, SECTOR);
        memset(first + 4, 0, 4);
        crc = crc_fast(l->crc_table, 0xffffffffu, first, SECTOR);
        for (uint32_t k = 1; k < e->sectors; k++)
                crc = crc_fast(l->crc_table, crc, log_sector(l, i, k), SECTOR);
        if (~crc != ia_le32(h + 4))
                return;
        e->valid = true;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

/* Index of v in the sorted unique b[0..n). */
static size_t bound_index(const uint64_t *b, size_t n, uint64_t v)
{
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (b[mid] < v)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static size_t dsu_find(size_t *next, size_t k)
{
        size_t r = k;

        while (next[r] != r)
                r = next[r];
        while (next[k] != r) {
                size_t up = next[k];

                next[k] = r;
                k = up;
        }
        return r;
}

/*
 * Turn the patches (in the order they apply) into disjoint sorted segments,
 * the latest patch winning: elementary intervals between patch boundaries,
 * each painted by the last patch covering it (patches taken newest first,
 * a union-find skipping intervals already painted).
 */
static int build_segments(struct overlay *ov, const struct patch *p, size_t n, struct ia_error *err)
{
        uint64_t *b = NULL;
        size_t nb = 0, *next = NULL, *paint = NULL, nsegs = 0;
        struct seg *segs = NULL;
        int ret = -1;

        if (n == 0)
                return 0;
        b = malloc(2 * n * sizeof(*b));
        next = malloc((2 * n + 1) * sizeof(*next));
        paint = malloc(2 * n * sizeof(*paint));
        segs = malloc(2 * n * sizeof(*segs));
        if (!b || !next || !paint || !segs) {
                ia_error_set(err, IA_ERR_NOMEM, "vhdx: out of memory for the log replay");
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                b[nb++] = p[i].off;
                b[nb++] = p[i].end;
        }
        qsort(b, nb, sizeof(*b), cmp_u64);
        {
                size_t u = 0;

                for (size_t i = 0; i < nb; i++)
                        if (u == 0 || b[u - 1] != b[i])
                                b[u++] = b[i];
                nb = u;
        }
        for (size_t k = 0; k <= nb; k++)
                next[k] = k;
        for (size_t k = 0; k < nb; k++)
                paint[k] = SIZE_MAX;
        for (size_t i = n; i-- > 0;) {
                size_t lo = bound_index(b, nb, p[i].off), hi = bound_index(b, nb, p[i].end);

                for (size_t k = dsu_find(next, lo); k < hi; k = dsu_find(next, k + 1)) {
                        paint[k] = i;
                        next[k] = k + 1;
                }
        }
        for (size_t k = 0; k + 1 < nb; k++) {
                const struct patch *w;
                struct seg s;

                if (paint[k] == SIZE_MAX)
                        continue;
                w = &p[paint[k]];
                s.off = b[k];
                s.end = b[k + 1];
                s.bytes = w->bytes ? w->bytes + (s.off - w->off) : NULL;
                if (nsegs && !s.bytes && !segs[nsegs - 1].bytes && segs[nsegs - 1].end == s.off)
                        segs[nsegs - 1].end = s.end;
                else
                        segs[nsegs++] = s;
        }
        ov->segs = segs;
        ov->nsegs = nsegs;
        segs = NULL;
        ret = 0;
out:
        free(b);
        free(next);
        free(paint);
        free(segs);
        return ret;
}

/* The first segment that ends after off (nsegs if none). */
static size_t seg_at(const struct overlay *ov, uint64_t off)
{
        size_t lo = 0, hi = ov->nsegs;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (ov->segs[mid].end <= off)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static int64_t overlay_pread(struct ia_source *src, void *buf, size_t len, uint64_t off,
                             struct ia_error *err)
{
        struct overlay *ov = (struct overlay *)src;
        uint8_t *out = buf;
        uint64_t pos, stop;

        if (off >= src->size)
                return 0;
        if (len > src->size - off)
                len = (size_t)(src->size - off);
        pos = off;
        stop = off + len;
        while (pos < stop) {
                size_t k = seg_at(ov, pos);
                uint64_t upto;

                if (k < ov->nsegs && ov->segs[k].off <= pos) {
                        const struct seg *s = &ov->segs[k];

                        upto = ia_min_u64(s->end, stop);
                        if (s->bytes)
                                memcpy(out + (pos - off), s->bytes + (pos - s->off), upto - pos);
                        else
                                memset(out + (pos - off), 0, upto - pos);
                } else {
                        upto = k < ov->nsegs ? ia_min_u64(ov->segs[k].off, stop) : stop;
                        if (pos < ov->file_size) {
                                upto = ia_min_u64(upto, ov->file_size);
                                if (ia_read(ov->file, out + (pos - off), upto - pos, pos,
                                            "vhdx file under the log", err) < 0)
                                        return -1;
                        } else {
                                memset(out + (pos - off), 0, upto - pos);
                        }
                }
                pos = upto;
        }
        return (int64_t)len;
}

static void overlay_destroy(struct ia_source *src)
{
        struct overlay *ov = (struct overlay *)src;

        ia_source_unref(ov->file);
        free(ov->segs);
        free(ov->sectors);
        free(ov);
}

static const struct ia_source_ops overlay_ops = {
    .pread = overlay_pread,
    .seek = NULL,
    .destroy = overlay_destroy,
};

enum ia_vhdx_kind ia_vhdx_log_kind(struct ia_source *src, uint64_t off, uint64_t *run)
{
        struct overlay *ov = (struct overlay *)src;
        size_t k = seg_at(ov, off);
        uint64_t end;

        if (k < ov->nsegs && ov->segs[k].off <= off) {
                bool zero = !ov->segs[k].bytes;

                end = ov->segs[k].end;
                while (k + 1 < ov->nsegs && ov->segs[k + 1].off == end &&
                       !ov->segs[k + 1].bytes == zero)
                        end = ov->segs[++k].end;
                if (zero && k + 1 >= ov->nsegs && end >= ov->file_size)
                        end = src->size; /* the zero extension beyond */
                *run = end > off ? end - off : 1;
                return zero ? IA_VHDX_ZERO : IA_VHDX_LOGDATA;
        }
        end = k < ov->nsegs ? ov->segs[k].off : src->size;
        if (off < ov->file_size) {
                end = ia_min_u64(end, ov->file_size);
                *run = end - off;
                return IA_VHDX_FILE;
        }
        *run = end > off ? end - off : 1;
        return IA_VHDX_ZERO;
}

/* Find the active sequence: its first sector and entry count; false if none. */
static bool find_active(const struct log *l, const struct entry *ents, uint32_t *tail,
                        uint32_t *count)
{
        bool found = false;
        uint64_t best = 0;

        for (uint32_t i = 0; i < l->nsec; i++) {
                uint32_t pos = i, n = 1;
                uint64_t walked;

                if (!ents[i].valid)
                        continue;
                walked = ents[i].sectors;
                for (;;) {
                        const struct entry *e = &ents[pos];
                        uint32_t nx;

                        if (e->tail == i && (!found || e->seq > best)) {
                                found = true;
                                best = e->seq;
                                *tail = i;
                                *count = n;
                        }
                        nx = (uint32_t)((pos + e->sectors) % l->nsec);
                        if (!ents[nx].valid || ents[nx].seq != e->seq + 1 ||
                            walked + ents[nx].sectors > l->nsec)
                                break;
                        walked += ents[nx].sectors;
                        pos = nx;
                        n++;
                }
        }
        return found;
}

/*
 * Where the header says the log lies: version 0, 1 MiB-aligned, within the
 * replay limit and inside the file.  1 when there is no log (length 0).
 */
static int check_log_place(const struct ia_source *src, const uint8_t *hdr,
                           struct ia_vhdx_log_info *info, struct ia_error *err)
{
        info->log_off = ia_le64(hdr + 72);
        info->log_len = ia_le32(hdr + 68);
        if (ia_le16(hdr + 64) != 0)
                return ia_error_set(err, IA_ERR_UNSUPPORTED, "vhdx: log version %u is not 0",
                                    ia_le16(hdr + 64));
        if (info->log_len == 0)
                return 1;
        if (info->log_off < MIB || info->log_off % MIB || info->log_len % MIB)
                return ia_error_set(
                    err, IA_ERR_CORRUPT, "vhdx: log at %llu (%llu bytes) is not aligned to 1 MiB",
                    (unsigned long long)info->log_off, (unsigned long long)info->log_len);
        if (info->log_len > IA_VHDX_LOG_MAX)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "vhdx: log of %llu bytes exceeds the replay limit of %llu",
                                    (unsigned long long)info->log_len, IA_VHDX_LOG_MAX);
        if (!ia_range_in(info->log_off, info->log_len, src->size))
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vhdx: log at %llu (%llu bytes) lies past the end of the "
                                    "file (%llu bytes)",
                                    (unsigned long long)info->log_off,
                                    (unsigned long long)info->log_len,
                                    (unsigned long long)src->size);
        return 0;
}

/*
 * The count entries of the active sequence from sector tail on: the file
 * must be as long as each one's FlushedFileOffset; *maxpatch: how many
 * descriptors (writes) they hold in all.
 */
static int count_writes(const struct log *l, const struct entry *ents, uint32_t tail,
                        uint32_t count, const struct ia_source *src, uint64_t *maxpatch,
                        struct ia_error *err)
{
        uint32_t pos = tail;

        for (uint32_t n = 0; n < count; n++) {
                const struct entry *e = &ents[pos];

                if (e->flushed > src->size)
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "vhdx: log entry %llu needs a file of at least %llu "
                                            "bytes (FlushedFileOffset), the file has %llu",
                                            (unsigned long long)e->seq,
                                            (unsigned long long)e->flushed,
                                            (unsigned long long)src->size);
                *maxpatch += e->ndesc;
                pos = (uint32_t)((pos + e->sectors) % l->nsec);
        }
        return 0;
}

/*
 * The writes of the active sequence, in log order, into patches[*npatch..]:
 * a zero range, or a data sector rebuilt into ov->sectors (its first and
 * last bytes are kept in the descriptor).  *size grows to what the file's
 * size is after the replay; info counts what was found.
 */
static int collect_patches(const struct log *l, const struct entry *ents, uint32_t tail,
                           uint32_t count, struct overlay *ov, struct patch *patches,
                           uint64_t *npatch, uint64_t *size, struct ia_vhdx_log_info *info,
                           struct ia_error *err)
{
        uint64_t nsectors = 0;
        uint32_t pos = tail;

        for (uint32_t n = 0; n < count; n++) {
                const struct entry *e = &ents[pos];
                uint32_t ds = desc_sectors(e->ndesc), ndata = 0;

                for (uint32_t d = 0; d < e->ndesc; d++) {
                        const uint8_t *p = log_desc(l, pos, d);
                        struct patch *w = &patches[*npatch];

                        w->off = ia_le64(p + 16);
                        if (memcmp(p, "zero", 4) == 0) {
                                if (ia_le64(p + 8) == 0)
                                        continue;
                                w->bytes = NULL;
                                if (!ia_add_ok(w->off, ia_le64(p + 8), &w->end))
                                        w->end = UINT64_MAX;
                                info->zero_ranges++;
                        } else {
                                uint8_t *s = ov->sectors + nsectors * SECTOR;

                                memcpy(s, p + 8, 8);
                                memcpy(s + 8, log_sector(l, pos, ds + ndata) + 8, 4084);
                                memcpy(s + 4092, p + 4, 4);
                                w->bytes = s;
                                w->end = w->off + SECTOR;
                                nsectors++;
                                ndata++;
                                info->data_sectors++;
                        }
                        if (w->end > MAX_FILEOFF)
                                return ia_error_set(err, IA_ERR_CORRUPT,
                                                    "vhdx: log entry %llu writes file bytes up to "
                                                    "%llu, past the limit of %llu",
                                                    (unsigned long long)e->seq,
                                                    (unsigned long long)w->end, MAX_FILEOFF);
                        if (w->end > *size)
                                *size = w->end;
                        (*npatch)++;
                }
                /* The file grows to LastFileOffset, rounded up to 1 MiB. */
                if (e->last > *size && e->last <= MAX_FILEOFF)
                        *size = ia_round_up(e->last, MIB);
                if (n == 0)
                        info->first_seq = e->seq;
                info->last_seq = e->seq;
                pos = (uint32_t)((pos + e->sectors) % l->nsec);
        }
        return 0;
}

int ia_vhdx_log_replay(struct ia_source *src, const uint8_t *hdr, struct ia_source **out,
                       struct ia_vhdx_log_info *info, struct ia_error *err)
{
        struct log l = {0};
        struct entry *ents = NULL;
        struct patch *patches = NULL;
        struct overlay *ov = NULL;
        uint8_t *buf = NULL;
        uint64_t npatch = 0, maxpatch = 0, size;
        uint32_t tail = 0, count = 0;
        int ret = -1, r;

        memset(info, 0, sizeof(*info));
        l.guid = hdr + 48;
        r = check_log_place(src, hdr, info, err);
        if (r < 0)
                return -1;
        if (r > 0) {
                *out = ia_source_ref(src);
                return 0;
        }
        l.len = info->log_len;
        l.nsec = (uint32_t)(info->log_len / SECTOR);
        buf = malloc(info->log_len);
        ents = calloc(l.nsec, sizeof(*ents));
        if (!buf || !ents) {
                ia_error_set(err, IA_ERR_NOMEM, "vhdx: out of memory for the log");
                goto out;
        }
        if (ia_read(src, buf, info->log_len, info->log_off, "vhdx log", err) < 0)
                goto out;
        l.buf = buf;
        crc_table_init(l.crc_table);
        l.crc_budget = CRC_BUDGET_PER_LOG_BYTE * info->log_len;
        for (uint32_t i = 0; i < l.nsec && !l.over_budget; i++)
                check_entry(&l, i, &ents[i]);
        if (l.over_budget) {
                ia_error_set(err, IA_ERR_LIMIT,
                             "vhdx: the log's candidate entries overlap: checking them would "
                             "checksum more than %u times the log's %llu bytes",
                             CRC_BUDGET_PER_LOG_BYTE, (unsigned long long)info->log_len);
                goto out;
        }
        if (!find_active(&l, ents, &tail, &count)) {
                *out = ia_source_ref(src);
                ret = 0;
                goto out;
        }
        if (count_writes(&l, ents, tail, count, src, &maxpatch, err) < 0)
                goto out;
        ov = calloc(1, sizeof(*ov));
        patches = malloc((maxpatch ? maxpatch : 1) * sizeof(*patches));
        if (!ov || !patches) {
                ia_error_set(err, IA_ERR_NOMEM, "vhdx: out of memory for the log replay");
                goto out;
        }
        ov->sectors = malloc((maxpatch ? maxpatch : 1) * SECTOR);
        if (!ov->sectors) {
                ia_error_set(err, IA_ERR_NOMEM, "vhdx: out of memory for the log replay");
                goto out;
        }
        size = src->size;
        if (collect_patches(&l, ents, tail, count, ov, patches, &npatch, &size, info, err) < 0)
                goto out;
        info->entries = count;
        info->replayed = true;
        ia_source_init(&ov->base, &overlay_ops, size);
        ov->base.allocated = src->allocated;
        ov->base.dev = src->dev;
        ov->base.ino = src->ino;
        ov->file = ia_source_ref(src);
        ov->file_size = src->size;
        if (build_segments(ov, patches, npatch, err) < 0) {
                ia_source_unref(&ov->base);
                ov = NULL;
                goto out;
        }
        *out = &ov->base;
        ov = NULL;
        ret = 0;
out:
        if (ov) {
                free(ov->sectors);
                free(ov);
        }
        free(patches);
        free(ents);
        free(buf);
        return ret;
}
