/*
 * The vmdk driver's private header: its constants, its state and the calls
 * between its files.  Only formats/vmdk*.c include it.
 *
 *   vmdk.c        the driver: probing, open (descriptor or sparse file), close
 *   vmdk_desc.c   the text descriptor: createType, extent lines (qemu's
 *                 sscanf format), extent files, parentFileNameHint and CIDs
 *   vmdk_sparse.c the extent list; sparse extents' headers: VMDK 3 (COWD),
 *                 VMDK 4 (KDMV: monolithicSparse, streamOptimized and its
 *                 footer) and seSparse
 *   vmdk_map.c    block status: grain directories and tables, seSparse
 *                 entries, runs of grains
 */
#ifndef IA_VMDK_INT_H
#define IA_VMDK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "image.h"

#define VMDK4_MAGIC        0x4b444d56u /* "KDMV" read big-endian */
#define VMDK3_MAGIC        0x434f5744u /* "COWD" */
#define VMDK4_GD_AT_END    0xffffffffffffffffull
#define VMDK4_FLAG_RGD     0x2u
#define VMDK4_FLAG_ZEROGRN 0x4u
#define VMDK4_DEFLATE      1u
#define VMDK_MARKER_EOS    0u
#define VMDK_MARKER_FOOTER 3u
#define VMDK_GTE_ZEROED    1u

#define SESPARSE_CONST_MAGIC    0xcafebabeull
#define SESPARSE_VOLATILE_MAGIC 0xcafecafeull
#define SESPARSE_VERSION        0x200000001ull
#define SESPARSE_GRAIN_SECT     8u
#define SESPARSE_GT_SECT        64u
#define SESPARSE_GT_ENTRIES     (SESPARSE_GT_SECT * 512 / 8)

#define VMDK_HDR4_LEN        75u              /* the VMDK 4 header after the magic */
#define VMDK_HDR3_LEN        40u              /* the VMDK 3 header after the magic */
#define VMDK_DESC_MAX        ((1u << 20) - 1) /* qemu reads at most this much descriptor */
#define VMDK_DESC_SIZE       10240u           /* qemu looks for CID and parent in this much */
#define VMDK_MAX_GRAIN_SECT  0x200000u        /* 1 GiB grains */
#define VMDK_MAX_GD_ENTRIES  (32u * 1024 * 1024)
#define VMDK4_MAX_GT_ENTRIES 512u
#define VMDK3_GT_ENTRIES     4096u
#define VMDK_CTYPE_MAX       128u
#define VMDK_FNAME_MAX       511u
#define VMDK_PARENT_MAX      4095u
#define VMDK_MAX_NEST        4u
/* qemu's BDRV_MAX_LENGTH: a read beyond it fails. */
#define VMDK_BDRV_MAX_LEN (((uint64_t)INT64_MAX) & ~((uint64_t)(1u << 30) - 1))

#define IA_VMDK_MAX_EXTENTS 4096u
#define VMDK_GD_SLICE       1024u  /* grain directory entries cached at once */
#define VMDK_EXTEND_MAX     65536u /* grains looked at per block_status answer */

struct vmdk_extent {
        struct ia_file *file; /* borrowed: img->file or one of vmdk_state.files */
        uint64_t start;       /* first guest sector */
        uint64_t sectors;
        bool flat;
        bool compressed;
        bool zero_grain;
        bool sesparse;          /* 64-bit GD and GT entries of their own kinds */
        uint8_t entry_size;     /* sparse: bytes per GD and GT entry (4, or 8 for seSparse) */
        uint64_t se_gt_off;     /* seSparse: first sector of the grain tables */
        uint64_t se_grains_off; /* seSparse: first sector of the grains */
        uint64_t flat_off;      /* flat: byte offset of the extent in file */
        uint64_t gd_off;        /* sparse: byte offset of the grain directory */
        uint32_t gd_entries;    /* sparse: qemu's l1_size */
        uint32_t gt_entries;    /* sparse: entries per grain table */
        uint64_t grain_sectors; /* sparse: sectors per grain (> 0) */
};

struct vmdk_ref {
        char *name; /* the name as written in the descriptor */
        struct ia_file *file;
};

struct vmdk_state {
        struct vmdk_extent *ext;
        size_t n_ext, cap_ext;
        struct vmdk_ref *refs; /* extent files, one per distinct name (owned) */
        size_t n_refs, cap_refs;
        /* One slice of one grain directory. */
        const struct vmdk_extent *gd_ext;
        uint64_t gd_first;
        uint64_t gd_buf[VMDK_GD_SLICE];
        /* One grain table. */
        const struct vmdk_extent *gt_ext;
        uint32_t gt_sector;
        uint64_t gt_buf[VMDK3_GT_ENTRIES];
        uint8_t raw[VMDK3_GT_ENTRIES * 8]; /* the bytes of a table being loaded */
        bool reported_eof;                 /* the table-beyond-eof finding was made */
};

/* Would qemu's bdrv_pread() refuse [off, off+len) as an impossible request? */
static inline bool vmdk_bdrv_range_bad(uint64_t off, uint64_t len)
{
        return off > VMDK_BDRV_MAX_LEN || len > VMDK_BDRV_MAX_LEN - off;
}

/* vmdk.c */
int vmdk_read_zfill(struct ia_file *f, void *buf, size_t len, uint64_t off, const char *what,
                    struct ia_error *err);

/* vmdk_desc.c */
char *vmdk_read_desc(struct ia_file *f, uint64_t off, struct ia_error *err);
int vmdk_open_desc(struct ia_image *img, const char *desc, unsigned depth, struct ia_error *err);
int vmdk_read_parent_and_cid(struct ia_image *img, uint64_t desc_off, struct ia_error *err);

/* vmdk_sparse.c */
int vmdk_add_extent(struct vmdk_state *s, const struct vmdk_extent *e, struct ia_error *err);
int vmdk_open_sparse(struct ia_image *img, struct ia_file *f, unsigned depth, struct ia_error *err);
int vmdk_open_sesparse(struct ia_image *img, struct ia_file *f, struct ia_error *err);

/* vmdk_map.c */
int vmdk_block_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                      struct ia_error *err);

#endif
