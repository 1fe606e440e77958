/*
 * Archives as containers of images: tar (ustar, pax, GNU incl. sparse),
 * OVA (a tar with an OVF descriptor), zip, and gzip/xz/zstd/bzip2-compressed
 * tars, read through libarchive.
 *
 * Opening an archive makes one pass over it and records every member.  A
 * regular member gets a byte source: a window over the archive file where the
 * member's bytes are stored as is (uncompressed tar, stored zip), or a spool
 * (memory, then an unlinked temporary file) holding the decompressed bytes,
 * under a total byte budget.  Member names are data, never paths to write to.
 * Links, FIFOs and devices are recorded, never followed or opened.
 *
 * Window or spool: a member gets a window only when libarchive's first data
 * block for it is byte-for-byte what the archive file holds at the computed
 * offset; anything else is spooled.  A GNU sparse member of an uncompressed
 * tar gets a source that maps its sparse map onto the archive file (holes
 * read as zeros and show as holes through SEEK_HOLE); in a compressed tar it
 * is spooled like any member.
 *
 * Nesting is the caller's job: a member that is itself an archive is opened
 * with ia_archive_open() on the member's source.  Member sources carry their
 * depth, so that open refuses an archive nested deeper than max_nesting
 * (IA_ERR_LIMIT); the outermost archive is at depth 0.
 *
 * Bounds: member count, total spooled bytes (logical member sizes, checked
 * against the header's size before decompressing), total decompressed bytes
 * and the ratio of decompressed bytes to archive bytes read, past a 1 MiB
 * slack (bombs stop at the cap within the cap's worth of work; zero blocks
 * never reach the disk).  The default ratio cap is high (100000:1) because a
 * gzip'ed, mostly empty disk image compresses past 1000:1 and xz/zstd ones
 * far more: the spool budget and the decompressed-bytes cap are what bound a
 * bomb's cost.  A problem met
 * after the first member (truncated stream, a cap reached) stops the walk but
 * not the open: the members recorded before it stay usable and the problem is
 * reported by ia_archive_error().
 */
#ifndef IA_ARCHIVE_H
#define IA_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "source.h"

enum ia_member_type {
        IA_MEMBER_FILE,
        IA_MEMBER_DIR,
        IA_MEMBER_SYMLINK,
        IA_MEMBER_HARDLINK,
        IA_MEMBER_FIFO,
        IA_MEMBER_DEVICE,
        IA_MEMBER_OTHER,
};

/* Member flags: things an audit reports about a member. */
#define IA_MEMBER_TRAVERSAL 0x1u  /* name has a ".." component ('/' or '\\' separated) */
#define IA_MEMBER_ABSOLUTE  0x2u  /* name starts with '/' (or '\\') */
#define IA_MEMBER_DUPLICATE 0x4u  /* an earlier member has the same name */
#define IA_MEMBER_SPOOLED   0x8u  /* bytes were decompressed into a spool */
#define IA_MEMBER_SPARSE    0x10u /* a sparse tar member */
#define IA_MEMBER_TRUNCATED 0x20u /* the archive ended inside this member */
#define IA_MEMBER_DEFERRED  0x40u /* only its head was kept: the rest is read again on demand */

/*
 * The bytes of a member's head read before it is spooled, for the wanted
 * callback: enough for every probe (a driver's IA_PROBE_HEAD, a tar header,
 * the signatures of raw disks up to btrfs's at 64 KiB + 64).
 */
#define IA_ARCHIVE_HEAD (72u << 10)

/* The bytes of a deferred member's head that are kept (IA_PROBE_HEAD). */
#define IA_ARCHIVE_KEPT 4096u

struct ia_archive_member {
        char *name; /* as stored, byte-exact (NUL-terminated) */
        enum ia_member_type type;
        unsigned flags; /* IA_MEMBER_* */
        uint64_t size;  /* bytes of the member's content */
        int64_t mtime;
        char *link_target;     /* for links: the target as stored, else NULL */
        struct ia_source *src; /* regular members that could be read, else NULL */
        struct ia_error error; /* why src is NULL for a regular member */
};

struct ia_archive_limits {
        uint64_t max_members;      /* default 100000 */
        uint64_t spool_budget;     /* total decompressed bytes kept, default 4 GiB */
        uint64_t spool_memory;     /* bytes kept in memory before spilling, default 64 MiB */
        uint64_t max_ratio;        /* decompressed / compressed cap (bombs), default 100000 */
        unsigned max_nesting;      /* archives inside archives, default 2 */
        const char *tmpdir;        /* where spools spill, default $TMPDIR or /tmp */
        uint64_t max_decompressed; /* bytes decompressed in one walk, default 4 x spool_budget */
        uint64_t max_name;         /* bytes in one member name or link target, default 4096 */
        uint64_t name_budget;      /* bytes of all member and link names, default 32 MiB */
        uint64_t max_header;       /* bytes of one member's headers (pax, GNU sparse map),
                                      default 4 MiB */
        /*
         * Probe before spooling: for a member that would be spooled and is
         * longer than IA_ARCHIVE_HEAD, called with its name and a source over
         * it whose first IA_ARCHIVE_HEAD bytes can be read (reads past them
         * fail while the walk runs).  true: spool it whole, as without a
         * callback; false: it cannot be an image, so only its first
         * IA_ARCHIVE_KEPT bytes are kept and the rest is decompressed no
         * further than skipping it takes (IA_MEMBER_DEFERRED).  Its source
         * stays complete all the same: a read past those bytes walks the
         * archive again to spool it (one pass per member, under the same caps
         * and spool budget).  A member named by the OVF descriptor, or whose
         * name ends in ".ovf", is always spooled; so is every member once the
         * kept heads pass spool_memory.  NULL: every member is spooled.
         */
        bool (*wanted)(void *opaque, const char *name, struct ia_source *head);
        void *wanted_opaque;
};
/* A zero field (or a NULL limits pointer) takes the default. */

/* An OVF <File>/<Disk> reference found in an OVA descriptor. */
struct ia_ovf_disk {
        char *href; /* the file it names */
        char *disk_id;
        uint64_t capacity;  /* bytes (capacity * capacityAllocationUnits) */
        char *format;       /* the ovf:format URI, or NULL */
        char *file_id;      /* the ovf:fileRef of the <Disk>, or NULL (a blank disk) */
        uint64_t file_size; /* the ovf:size of the <File>, 0 when absent */
};

struct ia_archive;

/*
 * Does this look like an archive libarchive can read (tar, zip, compressed)?
 * Pure.  A tar header is checked by its checksum, so pass at least 512 bytes.
 * Any gzip/xz/zstd/bzip2 stream answers true; open tells whether a tar is
 * inside.
 */
bool ia_archive_probe(const uint8_t *head, size_t len);

/*
 * Open an archive over src (a reference is taken).  name is for messages.
 * Fails (-1) only when nothing could be read: not an archive, nested too
 * deep, no memory, or the first header unreadable.
 */
int ia_archive_open(struct ia_source *src, const char *name, const struct ia_archive_limits *lim,
                    struct ia_archive **out, struct ia_error *err);

size_t ia_archive_count(const struct ia_archive *a);
const struct ia_archive_member *ia_archive_member(const struct ia_archive *a, size_t i);

/*
 * The member called name (after "./" and duplicate-slash normalisation), or
 * NULL.  With duplicates, the last one: what extracting the archive would leave.
 */
const struct ia_archive_member *ia_archive_find(const struct ia_archive *a, const char *name);

/*
 * OVF disk references, when the archive holds a .ovf descriptor (the first
 * one).  Data for the audit: never trusted as paths.
 */
size_t ia_archive_ovf_count(const struct ia_archive *a);
const struct ia_ovf_disk *ia_archive_ovf_disk(const struct ia_archive *a, size_t i);

/*
 * A problem with the archive as a whole, or NULL: a truncated or corrupt
 * stream or a cap that stopped the walk (the members recorded before it stay
 * usable), or a bad value in the OVF descriptor.
 */
const struct ia_error *ia_archive_error(const struct ia_archive *a);

/*
 * NULL-safe.  A member source the caller took a reference on (ia_source_ref)
 * stays valid after this: it holds the archive source, or the spool's
 * temporary file (one per archive, open while any spooled member lives).
 */
void ia_archive_free(struct ia_archive *a);

/*
 * A member name made lexical ("./a//b/" -> "a/b": empty and "." components
 * dropped), the one rule for the archive's index and for names that
 * resolve to members.  The index keeps ".." (a traversal member is flagged,
 * never resolved) and a leading '/'; a name to resolve (resolve_dotdot) has
 * ".." applied and no leading '/', and is NULL when it leaves the top.
 */
char *ia_name_normalise(const char *name, bool resolve_dotdot);

#endif
