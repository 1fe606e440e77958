/*
 * Bounded windows over on-disk tables.
 *
 * Many formats keep a table of fixed-size entries at a file offset (a block
 * map, a BAT, an L2 table) that may be far too large to read whole.  A
 * window caches a run of consecutive entries of one such table: a lookup
 * outside the cached run reads the next run (at most cap entries, never
 * past the table's last entry) through ia_read(), which bounds every read
 * by the end of the source.  The window hands back the raw bytes of an
 * entry; decoding them (width, endianness, flag bits) is the driver's.
 *
 * The table's extent can be checked against the source once, when it is
 * opened (ia_window_fits()); the driver words the error, as each format
 * names its table.  A driver whose tables move (qed's L2 tables) points the
 * window at another table of the same shape with ia_window_move().
 */
#ifndef IA_WINDOW_H
#define IA_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "source.h"

#define IA_WINDOW_BYTES 8192u /* the most one window caches */

/* ia_window_init() flags */
#define IA_WINDOW_ALIGNED 1u /* runs start at multiples of cap, not at the entry asked for */

struct ia_window {
        struct ia_source *src; /* not referenced: the image's file owns it */
        const char *what;      /* the table in read errors: "vdi block map" */
        uint64_t off;          /* file offset of entry 0 */
        uint64_t count;        /* entries in the table */
        uint32_t entry_size;   /* bytes an entry */
        uint32_t cap;          /* entries one read brings in */
        unsigned flags;        /* IA_WINDOW_* */
        uint64_t first, n;     /* cached: entries [first, first + n) */
        uint8_t buf[IA_WINDOW_BYTES];
};

/*
 * Set w up over count entries of entry_size bytes at off in src, caching
 * up to cap entries at a time (cap * entry_size <= IA_WINDOW_BYTES; a
 * larger cap is cut to fit).  A run read starts at the entry looked up, or
 * with IA_WINDOW_ALIGNED at the multiple of cap below it.  Reads nothing.
 */
void ia_window_init(struct ia_window *w, struct ia_source *src, uint64_t off, uint64_t count,
                    uint32_t entry_size, uint32_t cap, unsigned flags, const char *what);

/* Whether the whole table lies within the source (overflow-checked). */
bool ia_window_fits(const struct ia_window *w);

/* The table's size in bytes (count * entry_size, saturated). */
uint64_t ia_window_bytes(const struct ia_window *w);

/* Point w at another table of the same shape at off; drops the cache. */
void ia_window_move(struct ia_window *w, uint64_t off);

/*
 * The entry_size bytes of entry index, valid until the next call on w; NULL
 * with *err filled on a read error, or (IA_ERR_INTERNAL) for an index past
 * the table.
 */
const uint8_t *ia_window_entry(struct ia_window *w, uint64_t index, struct ia_error *err);

#endif
