/*
 * The one chain walk: qemu-img's walk down a backing chain (get_block_status)
 * and its merge rule (entry_mergeable), over layer views, and the one extent
 * sink every map output goes through.
 *
 * A layer view is what a chain needs of one layer: its size, whether its
 * unallocated ranges read through to a backing file (cow), and its own status
 * at an offset (what the layer says about itself, before the chain's rules).
 * A live image provides one (ia_layer_status_own(), formats/map.c), and so
 * does a layer's runs cached or stored by the scanner (scanner/compose.c).
 * ia_map() and the scan's composition are the two users of this walk, so
 * their rows are equal by construction (tests/unit/test_compose.c checks it).
 *
 * The extent sink takes entries one by one, refuses any that does not start
 * where the previous ended (an internal error: output is ascending and
 * contiguous), merges what qemu merges and passes each merged entry on.
 */
#ifndef IA_LAYERWALK_H
#define IA_LAYERWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"

/* One layer's own status at an offset (struct ia_bstatus, with a store id). */
struct ia_view_status {
        uint64_t len;               /* > 0, at most the length asked */
        uint64_t host_off;          /* with IA_BS_OFFSET */
        const struct ia_file *file; /* with IA_BS_OFFSET, live views */
        int64_t file_id;            /* with IA_BS_OFFSET, cached views (0 for live ones) */
        unsigned flags;             /* IA_BS_DATA, ZERO, OFFSET, ALLOCATED, COMPRESSED */
};

struct ia_layer_view;

/* The layer's own status at off (< v->size), at most len long. */
typedef int (*ia_view_status_fn)(struct ia_layer_view *v, uint64_t off, uint64_t len,
                                 struct ia_view_status *st, struct ia_error *err);

/*
 * The first span of [off, end) where the layer says neither data nor zero
 * (*us = *ue = end when there is none).  Optional: ia_walk_pieces() derives
 * it from status calls when a view has none.
 */
typedef int (*ia_view_undecided_fn)(struct ia_layer_view *v, uint64_t off, uint64_t end,
                                    uint64_t *us, uint64_t *ue, struct ia_error *err);

struct ia_layer_view {
        uint64_t size;
        bool cow;    /* unallocated ranges read through to a backing file */
        bool broken; /* (last layer only) its backing file could not be opened */
        ia_view_status_fn status;
        ia_view_undecided_fn undecided; /* NULL: from status */
        void *priv;
        size_t hint; /* the view's cursor (cached views: a run or span index, checked before use) */
};

/*
 * The status of [off, off+len) through chain[0..n) (chain[i + 1] is the
 * backing layer of chain[i]): qemu-img's get_block_status.  The entry's depth
 * is the layer that decides, its file or file_id whatever that view gives.
 */
int ia_walk_status(struct ia_layer_view *chain, size_t n, uint64_t off, uint64_t len,
                   struct ia_map_entry *e, struct ia_error *err);

/*
 * The map of the chain from start to end through a sink: entries as ia_map()
 * passes them to fn (flags: IA_MAP_*), the last one with last = true.
 */
int ia_walk_map(struct ia_layer_view *chain, size_t n, uint64_t start, uint64_t end, unsigned flags,
                ia_map_fn fn, void *opaque, struct ia_error *err);

/* The extent sink. */
struct ia_extent_sink {
        struct ia_map_entry curr; /* pending: merged, not yet passed on */
        unsigned flags;           /* IA_MAP_* */
        ia_map_fn fn;
        void *opaque;
};

/* A sink whose output starts at start. */
void ia_extent_sink_init(struct ia_extent_sink *s, uint64_t start, unsigned flags, ia_map_fn fn,
                         void *opaque);

/* The end of what the sink has been given. */
static inline uint64_t ia_extent_sink_end(const struct ia_extent_sink *s)
{
        return s->curr.start + s->curr.length;
}

/* Add e (non-empty, starting at ia_extent_sink_end()); merged entries go to fn. */
int ia_extent_sink_add(struct ia_extent_sink *s, const struct ia_map_entry *e,
                       struct ia_error *err);

/* Pass the pending entry on with last = true (the placeholder if none was added). */
int ia_extent_sink_finish(struct ia_extent_sink *s, struct ia_error *err);

/*
 * A piece of a chain's map: a maximal guest range decided at one depth, by
 * that layer's own status (LAYER: an unallocated run there reads as zero),
 * or by no layer: END, unallocated through the whole chain (the placeholder
 * of an empty image is an END piece of length 0), or UNKNOWN, reading
 * through to a backing file that could not be opened (depth: the missing
 * layer's).
 */
enum ia_piece_kind { IA_PIECE_LAYER, IA_PIECE_END, IA_PIECE_UNKNOWN };

struct ia_piece {
        uint64_t start, len;
        uint32_t depth;
        enum ia_piece_kind kind;
};

typedef int (*ia_piece_fn)(void *opaque, const struct ia_piece *p, struct ia_error *err);

/*
 * The pieces of the chain's map, ascending, each once (adjacent pieces of
 * one depth and kind are one): the decisions of ia_walk_status(), taken span
 * by span, so a layer's decided ranges cost nothing below it.
 */
int ia_walk_pieces(struct ia_layer_view *chain, size_t n, ia_piece_fn fn, void *opaque,
                   struct ia_error *err);

#endif
