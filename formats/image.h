/*
 * Images, the files they live in, and the contract of a format driver.
 *
 * An image is one layer of a chain: a format driver over a host file.  A
 * driver answers only for its own layer ("data here, at this host offset in
 * this file", "zero here", "not allocated here: ask the backing file"); the
 * core (chain.c, map.c) walks the chain, counts depth, refines host ranges
 * against the file's holes and merges entries exactly as qemu-img does.
 *
 * Adding a driver: see formats/README.md.
 */
#ifndef IA_IMAGE_H
#define IA_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "source.h"

/* Block status flags of one layer's answer (struct ia_bstatus.flags). */
#define IA_BS_DATA       0x01u /* the bytes are read from a file */
#define IA_BS_ZERO       0x02u /* the bytes read as zeroes */
#define IA_BS_OFFSET     0x04u /* host_off and file are valid */
#define IA_BS_ALLOCATED  0x08u /* set by the core: this layer decides the range */
#define IA_BS_RECURSE    0x10u /* ask the host file about holes at host_off */
#define IA_BS_COMPRESSED 0x20u /* the data is stored compressed */

struct ia_file;

/* One layer's answer about the start of a guest range. */
struct ia_bstatus {
        uint64_t len;         /* length of the run the answer covers, > 0 */
        unsigned flags;       /* IA_BS_* */
        uint64_t host_off;    /* with IA_BS_OFFSET: byte offset in file */
        struct ia_file *file; /* with IA_BS_OFFSET: the file holding the bytes */
        bool eof;             /* set by ia_file_status(): the run reaches the end */
};

/*
 * A host file opened for one chain: a byte source and the name it is shown
 * by in human output (qemu composes it: the top image's name as given,
 * backing names joined to the referencing image's directory, ...).  Not
 * shared between threads: it carries a small cache of the last data extent.
 */
struct ia_file {
        struct ia_source *src;
        char *name;   /* display name, NUL-terminated; may hold any byte but NUL */
        uint64_t len; /* the block layer's length: the source size rounded up to 512 */
        /* What ia_file_status() learnt last: [data_start, data_end) is data. */
        uint64_t data_start, data_end;
        /* A SEEK_DATA answer not yet used: data begins at next_data. */
        uint64_t next_data;
        bool next_data_valid;
};

/* A new file over src (takes over the caller's reference); NULL on ENOMEM. */
struct ia_file *ia_file_new(struct ia_source *src, const char *name, struct ia_error *err);
void ia_file_free(struct ia_file *f); /* NULL-safe; drops the source reference */

/*
 * Block status of the host file itself, as qemu's file-posix driver answers
 * it: SEEK_DATA/SEEK_HOLE, ENXIO meaning a trailing hole, any other failure
 * meaning "no information: data".  The answer always carries IA_BS_OFFSET
 * with host_off = off and file = f.  At or beyond f->len: len 0, eof.
 */
int ia_file_status(struct ia_file *f, uint64_t off, uint64_t len, struct ia_bstatus *st,
                   struct ia_error *err);

/* What kind of reference one image makes to another file. */
enum ia_ref_kind {
        IA_REF_TOP,       /* the image asked for */
        IA_REF_BACKING,   /* backing file, VMDK parent, VHD/VHDX parent */
        IA_REF_DATA_FILE, /* qcow2 external data file */
        IA_REF_EXTENT,    /* VMDK extent file */
};

const char *ia_ref_kind_name(enum ia_ref_kind kind);

/*
 * How names are turned into files.  The engine never opens a referenced file
 * by itself: it asks the resolver, which applies the caller's policy
 * (allowed roots, no protocol names, regular files only, members of the same
 * archive, ...).  from is the file that holds the reference (NULL for the
 * top image).  On success *out is a new file with its display name set.
 */
struct ia_resolver {
        int (*open)(const struct ia_resolver *r, const struct ia_file *from, const char *name,
                    enum ia_ref_kind kind, struct ia_file **out, struct ia_error *err);
        /*
         * A parent named by identity, not by file name (a differencing VDI
         * names its parent "uuid:UUID", img->backing_by_id set): find the
         * file that is it, under the same policy.  NULL: such parents are
         * never found (reason "missing").
         */
        int (*open_id)(const struct ia_resolver *r, const struct ia_file *from, const char *id,
                       struct ia_file **out, struct ia_error *err);
        void *opaque;
};

struct ia_image;

/* Everything an open needs besides the file; shared by a whole chain. */
struct ia_open_ctx {
        const struct ia_resolver *resolver;
        /* qemu version whose behaviour to imitate where it changed: 702 = 7.2, 1002 = 10.2. */
        unsigned compat;
        unsigned max_depth; /* backing chain depth cap (0: IA_DEFAULT_MAX_DEPTH) */
        bool lenient;       /* a broken backing link ends the chain instead of failing */
        /* Where qemu's map of a format says nothing (one data entry for the
           whole disk) but the format could say more, print the true map
           (dmg).  VHDX gets its true map always. */
        bool true_map;
        /* ia_clock_ns() time after which block status fails with IA_ERR_LIMIT
           (reason "budget"); 0: no limit.  The scanner's per-image budget. */
        uint64_t deadline_ns;
        /* Optional observers, for the scanner: every reference and every finding. */
        void (*on_link)(void *opaque, const struct ia_image *from, const char *name,
                        enum ia_ref_kind kind, const struct ia_file *target,
                        const struct ia_error *status);
        void (*on_finding)(void *opaque, const struct ia_image *img, const char *code,
                           const char *msg);
        void *opaque;
};

#define IA_DEFAULT_MAX_DEPTH 256
#define IA_DEFAULT_COMPAT    1002

/* qemu releases whose map output changed (values of ia_open_ctx.compat). */
#define IA_QEMU_7_2  702  /* the oldest imitated ("present" key since 6.1) */
#define IA_QEMU_8_2  802  /* "compressed" key; entries merge only if it matches */
#define IA_QEMU_10_1 1001 /* every --output is checked as it is parsed */

/* Image flags (struct ia_image.flags): facts an audit wants to know. */
#define IA_IMG_DIRTY         0x01u /* qcow2 dirty bit, vhdx log, ... */
#define IA_IMG_CORRUPT       0x02u /* the format's own "corrupt" flag */
#define IA_IMG_ENCRYPTED     0x04u
#define IA_IMG_SNAPSHOTS     0x08u /* internal snapshots exist */
#define IA_IMG_EXTERNAL_DATA 0x10u /* guest data lives in another file */
#define IA_IMG_PENDING_LOG   0x20u /* a journal that was not replayed */

#define IA_IDENT_LEN 80

struct ia_image {
        const struct ia_driver *drv;
        const struct ia_open_ctx *ctx;
        struct ia_file *file; /* the image's own file (owned) */
        void *priv;           /* the driver's state */

        /* Set by the driver's open(). */
        uint64_t size;         /* virtual size in bytes, as qemu's block layer sees it */
        char *backing;         /* backing file name as recorded (malloc'd), or NULL */
        char backing_fmt[32];  /* backing format as recorded, "" if none */
        bool cow;              /* unallocated ranges defer to a backing file (preset from
                                  the driver's IA_DRV_BACKING; open() may change it) */
        bool backing_by_id;    /* backing is an identity ("uuid:UUID"), found by the
                                  resolver's open_id(), not a file name */
        unsigned flags;        /* IA_IMG_* */
        uint32_t cluster_size; /* allocation unit in bytes, 0 if none */
        /*
         * Identities, where the format records them ("" when not): ident is
         * what a child records to name this image as its parent (VHD unique
         * id, VHDX data write GUID, VMDK CID), parent_ident what this image
         * records of its parent (up to two accepted values: VHDX
         * parent_linkage and parent_linkage2).  Text "KIND VALUE", compared
         * up to the first " (": what follows is a note for messages (a VHD
         * timestamp).  The chain opener compares them (parent-mismatch).
         */
        char ident[IA_IDENT_LEN];
        char parent_ident[2][IA_IDENT_LEN];

        /* Set by the chain opener. */
        struct ia_image *backing_img; /* NULL at the bottom or where the link broke */
        struct ia_error backing_err;  /* why backing_img is NULL though backing is set */
        bool fmt_probed;              /* the format was found by probing */
        unsigned depth;               /* 0 for the top */

        /* Set by the core while mapping. */
        bool found_past_eof; /* "data-past-eof" was reported once already */
};

/*
 * The first bytes of a file, for probing.  Only the head, as qemu reads it:
 * on ext4 and xfs, reading a page of an unwritten (fallocated) extent makes
 * SEEK_DATA report it as data afterwards, so reading more (the tail, say)
 * would change the map of the very file being probed.
 */
#define IA_PROBE_HEAD 4096

struct ia_probe {
        const uint8_t *head; /* the first head_len bytes (head_len < IA_PROBE_HEAD at EOF) */
        size_t head_len;
        uint64_t size; /* file size */
        /* The file's name as qemu's probe sees it (the name given, or the
           backing name composed with its image's directory); NULL if none.
           Only dmg looks at it: qemu recognises dmg by a ".dmg" suffix. */
        const char *name;
};

/* Driver flags. */
#define IA_DRV_BACKING    0x1u /* unallocated ranges read through to a backing file */
#define IA_DRV_PROBE_ONLY 0x2u /* recognised (so never mistaken for raw), but not mapped */

struct ia_driver {
        const char *name; /* as given to -f */
        unsigned flags;   /* IA_DRV_* */
        /*
         * Pure: no I/O, no allocation.  0 if the bytes are not this format,
         * else a score that grows with what was verified (up to 100).
         */
        int (*probe)(const struct ia_probe *p);
        /*
         * Parse img->file; set img->size, img->priv and, where the format
         * records them, the backing name and format.  Either succeeds fully
         * or frees everything it allocated.
         */
        int (*open)(struct ia_image *img, struct ia_error *err);
        /*
         * The status of [off, off+len) in this layer alone; the core
         * guarantees len > 0 and off + len <= img->size.  Set st->len to the
         * length of the run (> 0; longer answers are trimmed) and st->flags
         * from IA_BS_DATA, ZERO, OFFSET, RECURSE, COMPRESSED; neither DATA
         * nor ZERO means "not allocated in this layer".  NULL means "all data,
         * no offset", as qemu does for drivers without block status.
         */
        int (*block_status)(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                            struct ia_error *err);
        /* Free img->priv and what it holds.  ia_close_priv where priv is one
           malloc'd block or NULL (most drivers). */
        void (*close)(struct ia_image *img);
};

/*
 * qemu's answer for a format without block status, from off to the end:
 * data, no offset.  For block_status() of a driver whose true map is
 * optional (ctx->true_map unset).
 */
void ia_bs_coarse(const struct ia_image *img, uint64_t off, struct ia_bstatus *st);

/* The default close: free(img->priv), img->priv = NULL. */
void ia_close_priv(struct ia_image *img);

/*
 * Open a file that img refers to (a VMDK extent, a qcow2 data file) through
 * the context's resolver; the link is reported to the on_link observer.
 */
int ia_image_open_ref(struct ia_image *img, const char *name, enum ia_ref_kind kind,
                      struct ia_file **out, struct ia_error *err);

/* A monotonic clock in nanoseconds, for deadlines. */
uint64_t ia_clock_ns(void);

/* Report a finding (an audit result, not an error) about img. */
void ia_image_finding(const struct ia_image *img, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set img->backing to a copy of name[0..len) (cut at the first NUL). */
int ia_image_set_backing(struct ia_image *img, const char *name, size_t len, const char *fmt,
                         struct ia_error *err);

#endif
