/*
 * The allocation map of an image through its backing chain, with the
 * semantics of qemu-img map: one BlockDeviceMapEntry per merged run.
 *
 * Entries go to a callback one by one; no map is ever held in memory.
 */
#ifndef IA_MAP_H
#define IA_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"

struct ia_map_entry {
        uint64_t start;
        uint64_t length;
        uint32_t depth;
        bool present;
        bool zero;
        bool data;
        bool compressed;
        bool has_offset;
        uint64_t offset;            /* with has_offset */
        const struct ia_file *file; /* with has_offset: the file offset points into (live) */
        int64_t file_id;            /* with has_offset: its store id (cached layers), else 0 */
};

/* ia_map() flags */
#define IA_MAP_HUMAN_COALESCE                                                                      \
        0x1u                         /* qemu's human mode: after an entry is printed, a            \
                                        following non-data entry becomes zero so more merge */
#define IA_MAP_MERGE_COMPRESSED 0x2u /* entries merge only if "compressed" matches (8.2+) */

struct ia_map_opts {
        uint64_t start;   /* first guest byte (qemu: --start-offset); <= INT64_MAX */
        uint64_t max_len; /* qemu: --max-length; <= INT64_MAX, or IA_MAP_NO_MAX */
        unsigned flags;
};

#define IA_MAP_NO_MAX UINT64_MAX

/*
 * Called once per merged entry, in ascending order.  last is true for the
 * final call.  When nothing is examined (empty image, start beyond the end)
 * the single call carries the placeholder entry {start, length 0, all false},
 * as qemu prints it.  Return 0 to go on, -1 (with *err set) to stop.
 */
typedef int (*ia_map_fn)(void *opaque, const struct ia_map_entry *e, bool last,
                         struct ia_error *err);

/*
 * Map top through its chain.  On a metadata error mid-way the entries already
 * complete have been passed to fn (qemu prints them too) and -1 is returned.
 */
int ia_map(struct ia_image *top, const struct ia_map_opts *opts, ia_map_fn fn, void *opaque,
           struct ia_error *err);

/*
 * One layer's own status after the block layer's generic rules: ALLOCATED and
 * the RECURSE refinement, but not the zero that a layer with backing support
 * reports where it has no backing (that depends on the chain).  off < size.
 * The scanner maps each distinct layer once with this and composes chains.
 */
int ia_layer_status_own(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                        struct ia_error *err);

struct ia_layer_view;

/* The views of top's opened chain (top first), allocated: free() them. */
int ia_live_views(struct ia_image *top, struct ia_layer_view **out, size_t *n,
                  struct ia_error *err);

/* qemu's entry_mergeable(). */
bool ia_map_mergeable(const struct ia_map_entry *curr, const struct ia_map_entry *next,
                      unsigned flags);

#endif
