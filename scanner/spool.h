/*
 * Spools: where the decompressed bytes of archive members are kept.
 *
 * A compressed archive member cannot be read in place, so while an archive is
 * walked its members' bytes are written to a spool: first into memory, up to
 * an allowance shared by all members of the spool, then into one unlinked
 * temporary file (O_TMPFILE, or mkstemp + unlink), so nothing is left behind
 * whatever happens to the process.  All-zero 4 KiB blocks are not written to
 * the file: they stay holes, so a member of zeros costs no disk.  A member's
 * source reports as holes only what the archive leaves out (the gaps between
 * writes: a sparse member's holes, the tail), wherever it is kept, so its map
 * does not depend on the memory allowance.
 *
 * The spool enforces a total byte budget, counted in logical member bytes
 * (holes included), so that a hostile archive cannot fill memory or disk.
 *
 * Members are written one at a time: ia_spool_begin(), ia_spool_write() with
 * ascending offsets (gaps read as zeros), then ia_spool_end(), which hands
 * back a read-only source, or ia_spool_abort(), which gives the space back.
 * Sources outlive the spool: each keeps the temporary file open through a
 * reference.
 */
#ifndef IA_SPOOL_H
#define IA_SPOOL_H

#include <stdint.h>

#include "error.h"
#include "source.h"

struct ia_spool;

/*
 * A member's data as a list of extents, ascending and disjoint: what a
 * source answers SEEK_DATA/SEEK_HOLE from when its bytes are not a file of
 * their own (a spooled member: the ranges written; a sparse tar member: its
 * sparse map, phys telling where each extent lies in the archive).
 */
struct ia_extent {
        uint64_t lo, hi; /* [lo, hi) in the member */
        uint64_t phys;   /* in-place members: where lo lies in the archive */
};

/* The first of e[0..n) that ends after off, or n. */
size_t ia_extents_find(const struct ia_extent *e, size_t n, uint64_t off);

/* SEEK_DATA/SEEK_HOLE in a member of size bytes whose data is e[0..n). */
int ia_extents_seek(const struct ia_extent *e, size_t n, uint64_t size, uint64_t off,
                    enum ia_seek what, uint64_t *res, int *errnum);

/*
 * A new spool.  tmpdir: where the temporary file is created when memory runs
 * out (NULL: $TMPDIR, else /tmp); no file is created until it is needed.
 */
struct ia_spool *ia_spool_new(const char *tmpdir, uint64_t memory, uint64_t budget,
                              struct ia_error *err);
void ia_spool_free(struct ia_spool *sp); /* NULL-safe; sources made from it stay valid */

/* Start a member; name is for messages. */
int ia_spool_begin(struct ia_spool *sp, const char *name, struct ia_error *err);

/* Write len bytes at off of the current member; off must not go backwards. */
int ia_spool_write(struct ia_spool *sp, uint64_t off, const void *buf, size_t len,
                   struct ia_error *err);

/* Finish the current member at size bytes (a tail past the last write reads as zeros). */
struct ia_source *ia_spool_end(struct ia_spool *sp, uint64_t size, struct ia_error *err);

/* Drop the current member and give its bytes back to the budget. */
void ia_spool_abort(struct ia_spool *sp);

/* Bytes of the budget in use, and bytes held in memory. */
uint64_t ia_spool_used(const struct ia_spool *sp);
uint64_t ia_spool_memory_used(const struct ia_spool *sp);

/* Is src a spool member kept in the temporary file (not in memory)? */
int ia_spool_is_file(const struct ia_source *src);

#endif
