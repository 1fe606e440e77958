/*
 * The archive reader's private header: what its files share.  archives.h is
 * the contract; this says how the reader is cut up:
 *
 *   archives.c         the API: open (one walk), the member table, free
 *   archive_io.c       libarchive: the readers, our read/seek/skip callbacks, the
 *                      caps on what one walk may decompress and how
 *   archive_names.c    member names: flags, normalisation, the name index, name caps
 *   archive_walk.c     the member walk: one header after another, each regular member
 *                      given a window in place or a spool, or (probed first, wanted)
 *                      left with its head
 *   archive_sources.c  the byte sources members get (depth-carrying, sparse in place,
 *                      deferred: the head kept, the rest read by a second pass)
 *   archive_ovf.c      the OVF descriptor of an OVA
 *
 * Nothing here is for use outside those files.
 */
#ifndef IA_ARCHIVE_INT_H
#define IA_ARCHIVE_INT_H

#include <archive.h>
#include <archive_entry.h>
#include <stdbool.h>
#include <stdint.h>

#include "archives.h"
#include "spool.h"

#define DEFAULT_MAX_MEMBERS  100000u
#define DEFAULT_SPOOL_BUDGET (4ull << 30)
#define DEFAULT_SPOOL_MEMORY (64ull << 20)
#define DEFAULT_MAX_RATIO    100000u
#define DEFAULT_MAX_NESTING  2u
#define DEFAULT_MAX_NAME     4096u         /* bytes in one member or link name (PATH_MAX) */
#define DEFAULT_NAME_BUDGET  (32ull << 20) /* bytes of member and link names per archive */
#define DEFAULT_MAX_HEADER   (4ull << 20)  /* bytes of one member's headers */
#define RATIO_SLACK          (1ull << 20)  /* decompressed bytes before the ratio cap applies */
#define READ_BLOCK           (256u << 10)
#define VERIFY_MAX           (64u << 10)
#define OVF_MAX              (4u << 20)
#define SPARSE_MAX_EXTENTS   (1u << 20)
#define MAX_RETRIES          64u

struct ia_archive {
        char *name;
        struct ia_source *src;
        unsigned depth;
        struct ia_archive_member *members;
        char **norms; /* normalised names, parallel to members */
        size_t count, cap;
        uint64_t name_bytes; /* member and link names held, against lim.name_budget */
        size_t *index;       /* open addressing over norms: member index + 1, 0 = empty */
        size_t index_cap;
        struct ia_ovf_disk *ovf;
        size_t ovf_count;
        struct ia_error error;
};

/* One pass over the archive (archive_walk.c), read through libarchive (archive_io.c). */
struct walk {
        struct ia_archive *a;
        struct ia_archive_limits lim;
        struct archive *ar;  /* the format reader */
        struct archive *dec; /* with a compression filter: the decompressor feeding ar */
        struct ia_spool *spool;
        uint8_t *buf;
        uint64_t pos;      /* of the next read in the archive source */
        uint64_t raw_read; /* archive bytes read */
        uint64_t produced; /* member bytes read out of libarchive */
        bool eof_hit, io_failed;
        bool plain;            /* no compression filter: offsets in the stream are file offsets */
        bool in_header;        /* inside archive_read_next_header() */
        bool header_capped;    /* stopped there: a member's headers passed lim.max_header */
        bool header_seeks;     /* the format seeks for a header (zip's central directory) */
        uint64_t header_start; /* archive_filter_bytes(ar, 0) when it began */
        size_t check_member;   /* a tar member mapped in place whose end is checked, + 1 */
        uint64_t check_end;    /* where the next header must start after it */
        struct ia_error io_err;
        uint8_t *verify;        /* VERIFY_MAX bytes */
        size_t target;          /* a second pass: the member to spool, + 1 (0: every member) */
        struct arc_refetch *rf; /* made at the first deferred member */
        uint64_t kept;          /* bytes of deferred members' heads held */
        bool ovf_read;          /* the OVF descriptor's names are in ovf_names */
        char **ovf_names;       /* normalised hrefs of its <File>s */
        size_t n_ovf_names;
};

/* ---- archive_io.c ---- */

/* The limits asked for, zero fields (or no limits) taking the defaults. */
void arc_limits_resolve(const struct ia_archive_limits *in, struct ia_archive_limits *out);

/* A reader of w's archive source: formats and filters, or (raw) only the filters. */
struct archive *arc_la_new(struct walk *w, bool raw);
void arc_la_free(struct walk *w);
int arc_la_reopen_in_stages(struct walk *w);

bool arc_la_failed(int r);
const char *arc_la_msg(struct walk *w);
enum ia_errcat arc_la_cat(const struct walk *w);
bool arc_header_over_cap(struct walk *w);

/* The decompressed-bytes and ratio caps, checked after each data block. */
int arc_check_bomb(struct walk *w, struct ia_archive_member *m, struct ia_error *err);

/* ---- archive_names.c ---- */

unsigned arc_name_flags(const char *name);
const char *arc_entry_name(struct archive_entry *entry);
size_t arc_index_slot(const struct ia_archive *a, const char *norm);
int arc_index_grow(struct ia_archive *a);
int arc_check_names(struct walk *w, struct archive_entry *entry);

/* ---- archive_sources.c ---- */

/* Wrap under (whose reference is handed over) as a member at depth. */
struct ia_source *arc_member_new(struct ia_source *under, unsigned depth, struct ia_error *err);

/* The nesting depth of a member source, 0 for any other source. */
unsigned arc_source_depth(const struct ia_source *src);

/*
 * A sparse member of size bytes mapped in place: ext[0..n) (handed over) say
 * where each extent lies in under (a reference is taken); stored bytes in all.
 * NULL when out of memory (ext is still the caller's then).
 */
struct ia_source *arc_sparse_new(struct ia_source *under, struct ia_extent *ext, size_t n,
                                 uint64_t size, uint64_t stored);

/*
 * Deferred members (archives.h, wanted): what a second pass needs, shared by
 * the deferred members of one archive, and the members' sources.
 */
struct arc_refetch;

/* lim: resolved; its wanted callback is dropped, its tmpdir copied. */
struct arc_refetch *arc_refetch_new(struct ia_source *src, const char *name,
                                    const struct ia_archive_limits *lim);
void arc_refetch_unref(struct arc_refetch *rf); /* NULL-safe */

/* The spool bytes the first walk kept (what is left of the budget is for fetches). */
void arc_refetch_set_used(struct arc_refetch *rf, uint64_t used);

/*
 * A member of size bytes (ordinal in the walk) whose first head_len bytes
 * are head, borrowed: reads past them fail, until arc_deferred_keep() copies
 * the first IA_ARCHIVE_KEPT of them and lets a read past them fetch the member.
 */
struct ia_source *arc_deferred_new(struct arc_refetch *rf, size_t ordinal, const char *member,
                                   uint64_t size, const uint8_t *head, size_t head_len);
int arc_deferred_keep(struct ia_source *src);

/* ---- archives.c ---- */

/*
 * The second pass: walk src again (lim resolved, no wanted callback) up to
 * member ordinal, spool it and hand back its source, checked to be the
 * member called member of size bytes.
 */
struct ia_source *arc_fetch_member(struct ia_source *src, const char *name,
                                   const struct ia_archive_limits *lim, size_t ordinal,
                                   const char *member, uint64_t size, struct ia_error *err);

/* ---- archive_walk.c ---- */

/* Record a problem that stops the walk (the first one wins). */
void arc_walk_fail(struct walk *w, const struct ia_error *e);

/* Every member, until the end, a cap or an error (recorded in a->error). */
void arc_walk_members(struct walk *w);

/* ---- archive_ovf.c ---- */

/* Parse the first .ovf member that could be read, into a->ovf. */
void arc_ovf_read(struct ia_archive *a);

bool arc_ends_with_ovf(const char *name);

/*
 * During the walk: does the OVF descriptor, when one of the members before
 * the last is one, name the last member (by normalised name)?
 */
bool arc_ovf_names_member(struct walk *w);
void arc_ovf_names_free(struct walk *w);

#endif
