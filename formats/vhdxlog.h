/*
 * VHDX log replay in memory, for the vhdx driver (formats/vhdx*.c) only.
 *
 * A VHDX file whose current header names a log must have that log replayed
 * before anything else is read: the log holds metadata, BAT and payload
 * sectors that were written there first and may never have reached their
 * place in the file.  qemu and Hyper-V replay it by writing the file; an
 * audit never writes, so the replay here builds an overlay instead: a byte
 * source that reads as the file would read after replay, the file itself
 * left untouched.
 */
#ifndef IA_VHDXLOG_H
#define IA_VHDXLOG_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "source.h"

/* The largest log replayed (bytes): the log is read whole into memory. */
#define IA_VHDX_LOG_MAX (32ull * 1024 * 1024)

/* CRC-32C (Castagnoli) of p[0..len), as the VHDX specification uses it. */
uint32_t ia_vhdx_crc32c(const uint8_t *p, size_t len);

/* What a replay found. */
struct ia_vhdx_log_info {
        bool replayed;      /* an active sequence was found and applied */
        uint32_t entries;   /* entries of the active sequence */
        uint64_t first_seq; /* sequence numbers of its tail and head entries */
        uint64_t last_seq;
        uint64_t data_sectors;     /* data descriptors applied */
        uint64_t zero_ranges;      /* zero descriptors applied */
        uint64_t log_off, log_len; /* where the log lies */
};

/*
 * Replay the log the current header hdr (its 4 KiB) names, over src, in
 * memory.  On success *out is a new source that reads as src would after
 * the replay (the file extended where the log says so); when the log holds
 * no active sequence, *out is a new reference to src and info->replayed is
 * false.  Malformed logs are errors (IA_ERR_CORRUPT), a log over
 * IA_VHDX_LOG_MAX bytes is IA_ERR_LIMIT.
 */
int ia_vhdx_log_replay(struct ia_source *src, const uint8_t *hdr, struct ia_source **out,
                       struct ia_vhdx_log_info *info, struct ia_error *err);

/* Where the bytes of a replayed source come from. */
enum ia_vhdx_kind {
        IA_VHDX_FILE,    /* the file's own bytes, at the same offset */
        IA_VHDX_LOGDATA, /* a sector the log wrote: in the log only */
        IA_VHDX_ZERO,    /* zeroes the log wrote, or the file's extension */
};

/*
 * What the replayed source ov (from ia_vhdx_log_replay() with
 * info->replayed set) holds at off: the kind, and in *run the number of
 * bytes from off of that kind (> 0 while off < ov->size).
 */
enum ia_vhdx_kind ia_vhdx_log_kind(struct ia_source *ov, uint64_t off, uint64_t *run);

#endif
