/*
 * Map once, compose many: per-layer maps cached by file identity, and chain
 * maps composed from them with qemu-img map's exact rules.
 *
 * A layer's own status (ia_layer_status_own(): what the layer says about
 * itself, holes of its host file included) does not depend on the chain it
 * sits in, so the scanner maps every distinct layer once per scan and
 * composes each chain's map from the cached runs: a hundred overlays on one
 * base read the base's tables once.  ia_compose() is ia_map()'s walk with
 * IA_MAP_MERGE_COMPRESSED over the cached layers, so its rows equal
 * `imgaudit map --output=json`.
 *
 * Memory is bounded: the cache evicts least-recently-used layers past its
 * byte budget (they are re-mapped if needed again), and a layer whose runs
 * alone exceed the per-layer cap is not cached at all: chains through it are
 * mapped live with ia_map(), which streams.  Cached layers are layer views
 * (formats/layerwalk.h): ia_compose() and ia_compose_pieces() run the one chain
 * walk of formats/layerwalk.c over them, as ia_map() does over live images.  A layer whose own
 * status fails part-way keeps the runs before the failure and the error; chains that reach it are
 * mapped live too, so partial output and the error match ia_map().
 */
#ifndef IA_COMPOSE_H
#define IA_COMPOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "map.h"
#include "layerwalk.h"
#include "store.h"

/* One run of a layer's own status: [start, start+len) all alike. */
struct ia_layer_run {
        uint64_t start, len, host_off; /* host_off of start, with IA_BS_OFFSET */
        int64_t file_id;               /* with IA_BS_OFFSET: the file host_off points into */
        unsigned flags;                /* IA_BS_DATA, ZERO, OFFSET, ALLOCATED, COMPRESSED */
};

/* A layer's own map, complete or up to the point where it failed. */
struct ia_layer {
        uint64_t size;
        struct ia_layer_run *runs;
        size_t n, cap;
        /* the spans where the layer says neither data nor zero (ascending,
         * merged): what a chain reads through to the layer below */
        struct ia_span {
                uint64_t start, end;
        } * und;
        size_t nund;
        /* prefix sums: cum[i] sums runs [0, i) (n + 1 of them), so a piece's
         * space figures cost two binary searches (ia_piece_space()) */
        struct ia_run_sums {
                uint64_t data;       /* IA_BS_DATA */
                uint64_t zero;       /* not data, IA_BS_ALLOCATED */
                uint64_t compressed; /* data, IA_BS_COMPRESSED */
        } * cum;
        bool failed;  /* own status failed at fail_off: err says why */
        bool too_big; /* runs exceeded the per-layer cap: not kept */
        uint64_t fail_off;
        struct ia_error err;
        /* cache bookkeeping (compose.c) */
        struct ia_fid_key_drv {
                uint64_t dev, ino;
                char drv[16];
        } key;
        int state; /* 0 mapping, 1 ready */
        unsigned refs;
        struct ia_layer *lru_prev, *lru_next;
};

/* Which store file a host file is; 0 if it has none. */
typedef int64_t (*ia_file_id_fn)(void *opaque, const struct ia_file *f);

/*
 * Map img's own layer from 0 to its size into l (fresh, zeroed); stops at
 * max_bytes of runs with too_big set (0: no cap).  0, or -1 only on ENOMEM;
 * a status failure is recorded in l.
 */
int ia_layer_map(struct ia_image *img, struct ia_layer *l, size_t max_bytes, ia_file_id_fn fid,
                 void *opaque, struct ia_error *err);
void ia_layer_release(struct ia_layer *l);

struct ia_layer_cache;

/* A cache of at most budget bytes of runs; layers over max_layer bytes are not kept. */
struct ia_layer_cache *ia_layer_cache_new(size_t budget, size_t max_layer);
void ia_layer_cache_free(struct ia_layer_cache *c); /* NULL-safe */

/*
 * The layer of img (key: its file's (dev, ino) and its driver), mapped with
 * img by this thread if no other has mapped it yet (*mapped_now true).  The
 * result is referenced: give it back with ia_layer_cache_put().  Files without
 * an identity (archive members) are mapped into a private layer every time.
 */
int ia_layer_cache_get(struct ia_layer_cache *c, struct ia_image *img, ia_file_id_fn fid,
                       void *opaque, struct ia_layer **out, bool *mapped_now, struct ia_error *err);
void ia_layer_cache_put(struct ia_layer_cache *c, struct ia_layer *l);

/* One element of a chain to compose: the layer and what the chain says about it. */
struct ia_compose_layer {
        const struct ia_layer *layer;
        bool cow;    /* the image reads unallocated ranges through to a backing file */
        bool broken; /* (last layer only) it names a backing file that could not be opened */
};

typedef int (*ia_row_fn)(void *opaque, const struct ia_map_row *row, struct ia_error *err);

/*
 * Compose the map of a chain of n layers (chain[i + 1] is the opened backing
 * image of chain[i]) and pass every merged row to fn, like ia_map() with
 * IA_MAP_MERGE_COMPRESSED.  Returns 1 (nothing emitted) when a layer the walk
 * needs failed or is too big: map the chain live instead.
 */
int ia_compose(struct ia_compose_layer *chain, size_t n, ia_row_fn fn, void *opaque,
               struct ia_error *err);

/*
 * The pieces of a chain's map, ascending, each once (adjacent pieces of the
 * same depth and kind are one): for each, row_fn (if not NULL) gets its rows,
 * then piece_fn the piece.  Costs a binary search per piece and layer, plus
 * the runs inside the pieces when row_fn is given.  Returns 1 (nothing
 * emitted) when a layer failed or is too big, as ia_compose().
 */
int ia_compose_pieces(struct ia_compose_layer *chain, size_t n, ia_piece_fn piece_fn,
                      ia_row_fn row_fn, void *opaque, struct ia_error *err);

/* The rows of piece p (of a chain whose layer at p->depth is l; NULL unless LAYER). */
int ia_piece_rows(const struct ia_layer *l, const struct ia_piece *p, ia_row_fn fn, void *opaque,
                  struct ia_error *err);

/*
 * Add what ia_piece_rows() would pass to ia_space_add_row() for piece p to
 * sp, and the number of those rows to *rows, without visiting the runs.
 */
void ia_piece_space(const struct ia_layer *l, const struct ia_piece *p, struct ia_space *sp,
                    uint64_t *rows);

/* Add row to the space figures (the definition the pieces follow). */
void ia_space_add_row(struct ia_space *sp, const struct ia_map_row *row);

/* The stored form of an ia_map() entry. */
void ia_map_row_from_entry(const struct ia_map_entry *e, int64_t file_id, struct ia_map_row *row);

#endif
