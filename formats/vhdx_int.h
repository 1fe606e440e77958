/*
 * The vhdx driver's private header: its constants, its state and the calls
 * between its files.  Only formats/vhdx*.c include it (vhdxlog.h is the log
 * replay's own header).
 *
 *   vhdx.c      the driver: probing, the two headers, open (after the log
 *               replay, vhdxlog.c), identities, close
 *   vhdx_meta.c the region table, the metadata table and its items, the
 *               parent locator
 *   vhdx_map.c  the BAT (checked at open, then read through a window), the
 *               sector bitmaps of differencing disks, block status
 */
#ifndef IA_VHDX_INT_H
#define IA_VHDX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "image.h"
#include "window.h"

#define KIB 1024ull
#define MIB (1024ull * 1024)

#define VHDX_HEADER1_OFF   (64 * KIB)
#define VHDX_HEADER2_OFF   (128 * KIB)
#define VHDX_HEADER_SIZE   (4 * KIB)
#define VHDX_REGION1_OFF   (192 * KIB)
#define VHDX_REGION2_OFF   (256 * KIB)
#define VHDX_REGION_SIZE   (64 * KIB)
#define VHDX_MAX_REGIONS   2047
#define VHDX_META_TBL_SIZE (64 * KIB)
#define VHDX_MAX_META      2047
#define VHDX_MAX_LOCATOR   (64 * KIB)
#define VHDX_MAX_SIZE      (64ull * 1024 * 1024 * MIB) /* 64 TiB */
#define VHDX_BAT_SLICE     1024
#define VHDX_SCAN_CHUNK    8192
#define VHDX_BITMAP_SLICE  512

/* Payload block states. */
#define VHDX_NOT_PRESENT 0
#define VHDX_UNDEFINED   1
#define VHDX_ZERO        2
#define VHDX_UNMAPPED    3
#define VHDX_FULLY       6
#define VHDX_PARTIALLY   7
/* States 4 and 5 are reserved (neither the spec nor qemu defines them). */
#define VHDX_RESERVED4 4
#define VHDX_RESERVED5 5
/* Sector bitmap block state. */
#define VHDX_SB_PRESENT 6

/* The metadata items found (the seen bits of vhdx_read_metadata, vhdx_meta.c). */
#define VHDX_M_PARAMS   0x01u /* file parameters */
#define VHDX_M_SIZE     0x02u /* virtual disk size */
#define VHDX_M_LSS      0x04u /* logical sector size */
#define VHDX_M_PSS      0x08u /* physical sector size */
#define VHDX_M_LOCATOR  0x10u /* parent locator */
#define VHDX_M_DISKID   0x20u /* virtual disk id */
#define VHDX_M_REQUIRED (VHDX_M_PARAMS | VHDX_M_SIZE | VHDX_M_LSS | VHDX_M_PSS)

/* Flags of entries and items. */
#define VHDX_REGION_REQUIRED 0x1u /* region table entry: must be understood */
#define VHDX_META_REQUIRED   0x4u /* metadata table entry: IsRequired */
#define VHDX_HAS_PARENT      0x2u /* file parameters: a differencing disk */

struct vhdx_state {
        uint64_t bat_off;     /* file offset of the BAT */
        uint64_t bat_entries; /* entries the disk needs */
        uint32_t block_size;
        uint32_t lss;         /* logical sector size */
        uint64_t chunk_ratio; /* payload blocks per sector bitmap block */
        uint64_t disk_size;   /* virtual disk size from the metadata */
        bool diff;
        /* What the driver reads: the file, or the file as the log replay leaves it. */
        struct ia_source *src;
        bool replayed;
        struct ia_window bat; /* the BAT, read in aligned slices */
        /* Cached sector bitmap bytes. */
        uint8_t bmp[VHDX_BITMAP_SLICE];
        uint64_t bmp_host;
        bool bmp_valid;
};

struct vhdx_meta {
        uint32_t block_size, flags, lss, pss;
        uint64_t size;
        uint32_t loc_off, loc_len;
        bool have_loc;
};

/* vhdx_meta.c */
bool vhdx_crc_ok(uint8_t *buf, size_t len);
int vhdx_read_regions(struct ia_source *src, uint64_t *bat_off, uint64_t *bat_len,
                      uint64_t *meta_off, uint64_t *meta_len, struct ia_error *err);
int vhdx_read_item(struct ia_source *src, uint64_t meta_off, uint64_t meta_len, uint32_t off,
                   uint32_t len, void *buf, const char *what, struct ia_error *err);
int vhdx_read_metadata(struct ia_source *src, uint64_t meta_off, uint64_t meta_len,
                       struct vhdx_meta *m, struct ia_error *err);
int vhdx_parse_locator(struct ia_image *img, const uint8_t *loc, uint32_t len,
                       struct ia_error *err);

/* vhdx_map.c */
int vhdx_scan_bat(struct vhdx_state *s, struct ia_error *err);
int vhdx_block_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                      struct ia_error *err);

#endif
