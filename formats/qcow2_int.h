/*
 * The qcow2 driver's private header: its constants, its state and the calls
 * between its files.  Only formats/qcow2*.c include it.
 *
 *   qcow2.c          probing, the header and its extensions, open and close
 *   qcow2_map.c      the L1 and L2 tables, cluster types, block status
 *   qcow2_refcount.c the refcount table and qemu's preallocation heuristic
 *   qcow2_check.c    what qemu checks at open but the map does not need:
 *                    the snapshot table and the persistent bitmaps
 */
#ifndef IA_QCOW2_INT_H
#define IA_QCOW2_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "image.h"
#include "window.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */

#define QCOW2_L2_SLICE     (64u * 1024)  /* bytes of an L2 table cached at a time */
#define QCOW2_SNAPSHOT_HDR 40u           /* bytes of a snapshot table entry before its extra data */
#define QCOW2_INT_MAX      2147483647ull /* qemu's INT_MAX: bytes per query, L1 entries needed */

/* Table entries. */
#define QCOW2_L1_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_L2_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_RT_OFFSET_MASK 0xfffffffffffffe00ull
#define QCOW2_L2_COPIED      (1ull << 63)
#define QCOW2_L2_COMPRESSED  (1ull << 62)
#define QCOW2_L2_ZERO        1ull
/* Bits the specification reserves (must be zero) in L1 and standard L2 entries. */
#define QCOW2_L1_RESERVED 0x7f000000000001ffull
#define QCOW2_L2_RESERVED 0x3f000000000001feull

/* Bytes of one refcount block read at a time. */
#define QCOW2_RB_CHUNK 4096u

enum qcow2_type {
        QT_NORMAL,
        QT_COMPRESSED,
        QT_ZERO_PLAIN,
        QT_ZERO_ALLOC,
        QT_UNALLOC_PLAIN,
        QT_UNALLOC_ALLOC,
        QT_INVALID,
};

struct qcow2 {
        unsigned version;
        unsigned cluster_bits;
        uint64_t cluster_size;
        bool ext_l2;
        unsigned sc_bits;    /* log2 of the subcluster size */
        unsigned sc_per;     /* subclusters per cluster: 32 or 1 */
        unsigned l2_esize;   /* bytes per L2 entry: 8 or 16 */
        uint64_t l2_entries; /* entries per L2 table */
        unsigned l2_bits;    /* log2(l2_entries) */
        uint64_t l1_offset;
        uint32_t l1_size;
        bool encrypted;
        struct ia_file *data_file; /* external data file, or NULL */

        struct ia_window l1; /* a window of the L1 table */

        /*
         * One cached slice of an L2 table: a chain of 2 MiB-cluster layers
         * must not hold 2 MiB per layer (the depth cap times that is a lot).
         */
        uint8_t *l2;
        uint64_t l2_off;           /* table of the cached slice; 0: nothing cached */
        uint64_t l2_first;         /* index of the slice's first entry */
        uint64_t l2_slice_entries; /* entries per slice (a power of two) */

        /* The refcount table and blocks, for the preallocation heuristic. */
        uint64_t rt_offset;
        uint64_t rt_entries;
        unsigned refcount_order;
        struct ia_window rt; /* a window of the refcount table */
        uint8_t rb[QCOW2_RB_CHUNK];
        uint64_t rb_off; /* file offset of the cached chunk; 0: none */

        int prealloc; /* -1: not yet computed */
        /* qemu makes the image unusable after a fatal corruption: later queries fail. */
        bool dead;
        bool dead_after_next;

        /* Findings already reported for this image (each once). */
        bool found_reserved, found_overlap;
};

/* The extension data file name, backing format: what the header area holds. */
struct qcow2_exts {
        char backing_fmt[16];
        bool has_backing_fmt;
        const uint8_t *data_file;
        size_t data_file_len;
        bool has_data_file;
        uint32_t nb_bitmaps; /* from the bitmaps extension, when qemu heeds it */
        uint64_t bitmap_dir_size;
        uint64_t bitmap_dir_off;
};

/* Read an L1 entry through the window. */
static inline int qcow2_l1_entry(struct qcow2 *q, uint64_t idx, uint64_t *out, struct ia_error *err)
{
        const uint8_t *p = ia_window_entry(&q->l1, idx, err);

        if (!p)
                return -1;
        *out = ia_be64(p);
        return 0;
}

/* qcow2_map.c */
int qcow2_block_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                       struct ia_error *err);
int qcow2_check_l1(struct ia_image *img, struct qcow2 *q, struct ia_error *err);

/* qcow2_refcount.c */
int qcow2_detect_prealloc(struct ia_image *img, struct qcow2 *q, struct ia_error *err);

/* qcow2_check.c */
int qcow2_check_snapshots(struct ia_source *src, uint64_t table, uint32_t nb, struct ia_error *err);
int qcow2_check_bitmaps(struct ia_source *src, const struct qcow2 *q, const struct qcow2_exts *x,
                        uint64_t vsize, struct ia_error *err);

#endif
