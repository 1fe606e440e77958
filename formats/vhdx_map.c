/*
 * The VHDX BAT and block status: every BAT entry the disk uses is checked
 * at open; lookups go through a window of the BAT; a partially present
 * block of a differencing disk is answered sector by sector from its
 * chunk's sector bitmap block; after a log replay, data the log wrote has
 * no offset in the file.  See vhdx.c for what each state maps to.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vhdxlog.h"
#include "vhdx_int.h"
#include "banned.h"

/* Check every BAT entry the disk uses: known states, blocks inside the file. */
int vhdx_scan_bat(struct vhdx_state *s, struct ia_error *err)
{
        uint64_t flen = ia_round_up(s->src->size, 512);
        bool partial = false; /* the current chunk has a partially present block */
        uint8_t *buf;
        int ret = -1;

        buf = malloc(VHDX_SCAN_CHUNK * 8);
        if (!buf)
                return ia_error_set(err, IA_ERR_NOMEM, "vhdx: out of memory for the BAT");
        for (uint64_t i = 0; i < s->bat_entries; i += VHDX_SCAN_CHUNK) {
                uint64_t n = ia_min_u64(VHDX_SCAN_CHUNK, s->bat_entries - i);

                if (ia_read(s->src, buf, n * 8, s->bat_off + i * 8, "vhdx block allocation table",
                            err) < 0)
                        goto out;
                for (uint64_t j = 0; j < n; j++) {
                        uint64_t idx = i + j, e = ia_le64(buf + 8 * j);
                        unsigned state = e & 7;
                        uint64_t off = (e >> 20) * MIB, need, pos;
                        bool bitmap = idx % (s->chunk_ratio + 1) == s->chunk_ratio;

                        if (bitmap && partial && state != VHDX_SB_PRESENT) {
                                ia_error_set(err, IA_ERR_CORRUPT,
                                             "vhdx: chunk %llu has partially present blocks but "
                                             "its sector bitmap block is not present",
                                             (unsigned long long)(idx / (s->chunk_ratio + 1)));
                                goto out;
                        }
                        if (bitmap) {
                                partial = false;
                                if (state != VHDX_NOT_PRESENT && state != VHDX_SB_PRESENT) {
                                        ia_error_set(err, IA_ERR_CORRUPT,
                                                     "vhdx: sector bitmap BAT entry %llu has the "
                                                     "invalid state %u",
                                                     (unsigned long long)idx, state);
                                        goto out;
                                }
                                if (state != VHDX_SB_PRESENT || !s->diff)
                                        continue;
                                need = MIB;
                        } else {
                                if (state == VHDX_RESERVED4 || state == VHDX_RESERVED5 ||
                                    (state == VHDX_PARTIALLY && !s->diff)) {
                                        ia_error_set(err, IA_ERR_CORRUPT,
                                                     "vhdx: payload BAT entry %llu has the "
                                                     "invalid state %u",
                                                     (unsigned long long)idx, state);
                                        goto out;
                                }
                                if (state == VHDX_PARTIALLY)
                                        partial = true;
                                if (state != VHDX_FULLY && state != VHDX_PARTIALLY)
                                        continue;
                                /* The last block of a disk whose size is not a
                                 * multiple of the block size need only hold
                                 * the disk's tail (qemu allocates no more);
                                 * entries past the disk are never read. */
                                pos = (idx - idx / (s->chunk_ratio + 1)) * s->block_size;
                                if (pos >= s->disk_size)
                                        continue;
                                need = ia_min_u64(s->block_size, s->disk_size - pos);
                        }
                        if (off == 0 || off > flen || need > flen - off) {
                                ia_error_set(
                                    err, IA_ERR_CORRUPT,
                                    "vhdx: BAT entry %llu points at %llu (+%llu), past the "
                                    "end of the file (%llu bytes)",
                                    (unsigned long long)idx, (unsigned long long)off,
                                    (unsigned long long)need, (unsigned long long)flen);
                                goto out;
                        }
                }
        }
        ret = 0;
out:
        free(buf);
        return ret;
}

/* BAT entry idx, through the slice cache. */
static int vhdx_bat(struct ia_image *img, uint64_t idx, uint64_t *val, struct ia_error *err)
{
        struct vhdx_state *s = img->priv;
        const uint8_t *p = ia_window_entry(&s->bat, idx, err);

        if (!p)
                return -1;
        *val = ia_le64(p);
        return 0;
}

/* The flags a payload block state gives, for states without an offset. */
static unsigned vhdx_flags_of(const struct vhdx_state *s, unsigned state)
{
        if (state == VHDX_ZERO || state == VHDX_UNMAPPED)
                return IA_BS_ZERO;
        return s->diff ? 0 : IA_BS_ZERO;
}

/* Sector bit sec (within the chunk) of the bitmap block at host. */
static int vhdx_bit(struct ia_image *img, uint64_t host, uint64_t sec, bool *bit,
                    struct ia_error *err)
{
        struct vhdx_state *s = img->priv;
        uint64_t byte = host + sec / 8;

        if (!s->bmp_valid || byte < s->bmp_host || byte - s->bmp_host >= VHDX_BITMAP_SLICE) {
                uint64_t at = byte - (byte - host) % VHDX_BITMAP_SLICE;

                if (ia_read(s->src, s->bmp, VHDX_BITMAP_SLICE, at, "vhdx sector bitmap", err) < 0)
                        return -1;
                s->bmp_host = at;
                s->bmp_valid = true;
        }
        *bit = (s->bmp[byte - s->bmp_host] >> (sec % 8)) & 1;
        return 0;
}

/*
 * Data at st->host_off after a replay: the file's own bytes keep their
 * offset; a sector the log wrote has no offset in the file that holds the
 * guest's bytes (they lie in the log, split around a header), so it is data
 * without offset; zeroes the log wrote (or the file's extension) are data
 * that reads as zero, without offset either.
 */
static void vhdx_replayed_status(struct vhdx_state *s, struct ia_bstatus *st)
{
        uint64_t run;

        switch (ia_vhdx_log_kind(s->src, st->host_off, &run)) {
        case IA_VHDX_FILE:
                break;
        case IA_VHDX_LOGDATA:
                st->flags = IA_BS_DATA;
                break;
        case IA_VHDX_ZERO:
                st->flags = IA_BS_DATA | IA_BS_ZERO;
                break;
        }
        if (run < st->len)
                st->len = run;
        if (!(st->flags & IA_BS_OFFSET)) {
                st->host_off = 0;
                st->file = NULL;
        }
}

int vhdx_block_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                      struct ia_error *err)
{
        struct vhdx_state *s = img->priv;
        uint64_t bs = s->block_size, blk = off / bs, in = off % bs, e, run;
        unsigned state, flags;

        if (vhdx_bat(img, blk + blk / s->chunk_ratio, &e, err) < 0)
                return -1;
        state = e & 7;
        if (state == VHDX_FULLY || state == VHDX_PARTIALLY) {
                st->len = ia_min_u64(bs - in, len);
                st->flags = IA_BS_DATA | IA_BS_OFFSET | IA_BS_RECURSE;
                st->host_off = (e >> 20) * MIB + in;
                st->file = img->file;
                if (state == VHDX_PARTIALLY) {
                        uint64_t c = blk / s->chunk_ratio, sb, host, sec, last;
                        bool first, bit;

                        if (vhdx_bat(img, c * (s->chunk_ratio + 1) + s->chunk_ratio, &sb, err) < 0)
                                return -1;
                        if ((sb & 7) != VHDX_SB_PRESENT)
                                return ia_error_set(err, IA_ERR_CORRUPT,
                                                    "vhdx: block %llu is partially present but its "
                                                    "sector bitmap block is not",
                                                    (unsigned long long)blk);
                        host = (sb >> 20) * MIB;
                        sec = ((blk % s->chunk_ratio) * bs + in) / s->lss;
                        last = ((blk % s->chunk_ratio) * bs + in + st->len - 1) / s->lss;
                        if (vhdx_bit(img, host, sec, &first, err) < 0)
                                return -1;
                        for (sec++; sec <= last; sec++) {
                                if (vhdx_bit(img, host, sec, &bit, err) < 0)
                                        return -1;
                                if (bit != first)
                                        break;
                        }
                        st->len =
                            ia_min_u64(sec * s->lss - (blk % s->chunk_ratio) * bs - in, st->len);
                        if (!first)
                                st->flags = 0;
                }
                if (s->replayed && (st->flags & IA_BS_DATA))
                        vhdx_replayed_status(s, st);
                return 0;
        }
        /* A run of blocks without data that answer alike. */
        flags = vhdx_flags_of(s, state);
        run = bs - in;
        while (run < len) {
                uint64_t b = blk + 1;

                if (vhdx_bat(img, b + b / s->chunk_ratio, &e, err) < 0)
                        return -1;
                state = e & 7;
                if (state == VHDX_FULLY || state == VHDX_PARTIALLY ||
                    vhdx_flags_of(s, state) != flags)
                        break;
                blk = b;
                run += bs;
        }
        st->len = ia_min_u64(run, len);
        st->flags = flags;
        return 0;
}
