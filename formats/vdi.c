/*
 * vdi: VirtualBox disk images, mapped as qemu's vdi driver maps them.
 *
 * Layout (little-endian): a 64-byte text banner, then the header proper
 * (signature 0xbeda107f at byte 64, version 1.1, image type 1 = dynamic,
 * 2 = static, block map offset and data offset, disk size, block size,
 * block count, UUIDs).  The block map is one 32-bit entry per block: the
 * index of the block in the data area, 0xffffffff for "never written" and
 * 0xfffffffe for "discarded" (both read as zeroes).  A block lives at
 * data offset + index * block size.
 *
 * Map: one answer per block.  Allocated blocks are data with an offset;
 * others are zero (and allocated: a normal or static vdi has no backing
 * file).  Static images ask the core to look at holes in the host file
 * (qemu's RECURSE).
 *
 * Differencing images (type 4, which qemu refuses) are mapped as a true
 * map: the header's uuidLinkage (byte 424) is the uuidCreate (byte 392) of
 * the parent, uuidParentModify (byte 440) the parent's uuidModify (byte
 * 408) when the child was made.  The parent is named "uuid:UUID" with
 * img->backing_by_id set: the chain opener asks the resolver's open_id()
 * for the VDI whose uuidCreate is UUID (see ia_vdi_read_ids()), and
 * compares the modification UUIDs (parent-mismatch).  A block never
 * written in a differencing image (0xffffffff) reads through to the parent;
 * a discarded one (0xfffffffe) reads as zeroes, as VirtualBox reads them.
 *
 * Not supported, as in qemu: block sizes other than 1 MiB, sector sizes
 * other than 512, a non-differencing image with a non-null link or parent
 * UUID, and versions other than 1.1.  Any type but 4 is mapped as a normal
 * image (2 as a static one), as qemu maps it: it does not look at the type.
 * Deliberately stricter than qemu: a block map that does not fit in the
 * file is an error (qemu reads zeroes past EOF).
 */
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "bytes.h"
#include "image.h"
#include "vdi.h"
#include "window.h"
#include "banned.h"

#define VDI_SIGNATURE       0xbeda107fu
#define VDI_VERSION_1_1     0x00010001u
#define VDI_TYPE_DYNAMIC    1u
#define VDI_TYPE_STATIC     2u
#define VDI_TYPE_UNDO       3u
#define VDI_TYPE_DIFF       4u
#define VDI_OFF_UUID_CREATE 392u
#define VDI_OFF_UUID_MODIFY 408u
#define VDI_OFF_UUID_LINK   424u
#define VDI_OFF_UUID_PARENT 440u
#define VDI_UNALLOCATED     0xffffffffu
#define VDI_DISCARDED       0xfffffffeu
#define VDI_SECTOR          512u
#define VDI_BLOCK_SIZE      (1u << 20) /* the only block size qemu accepts */
#define VDI_HEADER_LEN      512u       /* banner + header as read by qemu */
/* qemu's limit on the block count (a map of under 2 GiB, in whole sectors). */
#define VDI_BLOCKS_MAX    0x1fffff80u
#define VDI_SLICE_ENTRIES 1024u

struct vdi {
        uint32_t type;
        uint32_t blocks;
        uint32_t block_size;
        uint64_t data_off;
        struct ia_window bmap; /* the block map, read in slices */
};

static bool uuid_is_null(const uint8_t *p)
{
        for (int i = 0; i < 16; i++)
                if (p[i])
                        return false;
        return true;
}

/* A UUID as VirtualBox prints it: the first three fields little-endian. */
static void uuid_text(char out[IA_VDI_UUID_LEN], const uint8_t *u)
{
        if (uuid_is_null(u)) {
                out[0] = '\0';
                return;
        }
        snprintf(out, IA_VDI_UUID_LEN,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[3], u[2],
                 u[1], u[0], u[5], u[4], u[7], u[6], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                 u[15]);
}

int ia_vdi_read_ids(struct ia_source *src, struct ia_vdi_ids *ids, struct ia_error *err)
{
        uint8_t h[VDI_HEADER_LEN];

        memset(ids, 0, sizeof(*ids));
        if (ia_read(src, h, sizeof(h), 0, "vdi header", err) < 0)
                return -1;
        if (ia_le32(h + 64) != VDI_SIGNATURE)
                return ia_error_set(err, IA_ERR_CORRUPT, "not a vdi image (bad signature)");
        ids->type = ia_le32(h + 76);
        uuid_text(ids->create, h + VDI_OFF_UUID_CREATE);
        uuid_text(ids->modify, h + VDI_OFF_UUID_MODIFY);
        uuid_text(ids->link, h + VDI_OFF_UUID_LINK);
        uuid_text(ids->parent_modify, h + VDI_OFF_UUID_PARENT);
        return 0;
}

static int vdi_probe(const struct ia_probe *p)
{
        /*
         * qemu looks at the signature alone, in a 2 KiB buffer padded with
         * zeroes: a file shorter than the header is still a vdi to it.
         */
        if (p->head_len < 68)
                return 0;
        return ia_le32(p->head + 64) == VDI_SIGNATURE ? 100 : 0;
}

static int vdi_open(struct ia_image *img, struct ia_error *err)
{
        struct ia_source *src = img->file->src;
        uint8_t h[VDI_HEADER_LEN];
        uint64_t disk_size;
        uint32_t version, bmap_off, data_off, sector_size, block_size, blocks, type;
        struct vdi *s;
        char u[IA_VDI_UUID_LEN];

        if (ia_read(src, h, sizeof(h), 0, "vdi header", err) < 0)
                return -1;
        if (ia_le32(h + 64) != VDI_SIGNATURE)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vdi: bad signature 0x%08x (expected 0x%08x)", ia_le32(h + 64),
                                    VDI_SIGNATURE);
        version = ia_le32(h + 68);
        if (version != VDI_VERSION_1_1)
                return ia_error_set(err, IA_ERR_UNSUPPORTED, "vdi: version %u.%u is not supported",
                                    version >> 16, version & 0xffff);
        bmap_off = ia_le32(h + 340);
        data_off = ia_le32(h + 344);
        sector_size = ia_le32(h + 360);
        disk_size = ia_le64(h + 368);
        block_size = ia_le32(h + 376);
        blocks = ia_le32(h + 384);

        /* qemu rounds a fractional last sector up ("VBoxManage convert" makes those). */
        if (disk_size > UINT64_MAX - VDI_SECTOR)
                return ia_error_set(err, IA_ERR_CORRUPT, "vdi: disk size %llu is too large",
                                    (unsigned long long)disk_size);
        disk_size = ia_round_up(disk_size, VDI_SECTOR);
        if (bmap_off % VDI_SECTOR)
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "vdi: block map offset 0x%x is not sector aligned", bmap_off);
        if (data_off % VDI_SECTOR)
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "vdi: data offset 0x%x is not sector aligned", data_off);
        if (sector_size != VDI_SECTOR)
                return ia_error_set(err, IA_ERR_UNSUPPORTED, "vdi: sector size %u is not %u",
                                    sector_size, VDI_SECTOR);
        if (block_size != VDI_BLOCK_SIZE)
                return ia_error_set(err, IA_ERR_UNSUPPORTED, "vdi: block size %u is not %u",
                                    block_size, VDI_BLOCK_SIZE);
        if (disk_size > (uint64_t)blocks * block_size)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "vdi: disk size %llu exceeds the %u blocks of the block map",
                                    (unsigned long long)disk_size, blocks);
        type = ia_le32(h + 76);
        if (type == VDI_TYPE_DIFF) {
                if (uuid_is_null(h + VDI_OFF_UUID_LINK))
                        return ia_error_set(err, IA_ERR_CORRUPT,
                                            "vdi: differencing image with a null parent uuid "
                                            "(uuidLinkage)");
        } else if (!uuid_is_null(h + VDI_OFF_UUID_LINK)) {
                return ia_error_set(
                    err, IA_ERR_UNSUPPORTED,
                    "vdi: a non-differencing image with a non-null link uuid is not supported");
        } else if (!uuid_is_null(h + VDI_OFF_UUID_PARENT)) {
                return ia_error_set(
                    err, IA_ERR_UNSUPPORTED,
                    "vdi: a non-differencing image with a non-null parent uuid is not supported");
        }
        if (blocks > VDI_BLOCKS_MAX)
                return ia_error_set(err, IA_ERR_CORRUPT, "vdi: block count %u exceeds %u", blocks,
                                    VDI_BLOCKS_MAX);
        s = calloc(1, sizeof(*s));
        if (!s)
                return ia_error_set(err, IA_ERR_NOMEM, "vdi: out of memory");
        /* The count is checked before the map is touched; the map is read in slices. */
        ia_window_init(&s->bmap, src, bmap_off, blocks, 4, VDI_SLICE_ENTRIES, 0, "vdi block map");
        if (!ia_window_fits(&s->bmap)) {
                ia_error_set(err, IA_ERR_TRUNCATED,
                             "vdi: block map at %u (%llu bytes) lies past the end of the file "
                             "(%llu bytes)",
                             bmap_off, (unsigned long long)ia_window_bytes(&s->bmap),
                             (unsigned long long)src->size);
                free(s);
                return -1;
        }
        s->type = type;
        s->blocks = blocks;
        s->block_size = block_size;
        s->data_off = data_off;
        img->priv = s;
        img->size = disk_size;
        img->cluster_size = block_size;
        img->cow = false;
        /* What a child records of this image: its modification uuid. */
        uuid_text(u, h + VDI_OFF_UUID_MODIFY);
        if (u[0])
                snprintf(img->ident, sizeof(img->ident), "vdi-modify %s", u);
        if (type == VDI_TYPE_DIFF) {
                char name[IA_VDI_UUID_LEN + 8];

                uuid_text(u, h + VDI_OFF_UUID_LINK);
                snprintf(name, sizeof(name), "uuid:%s", u);
                if (ia_image_set_backing(img, name, strlen(name), "vdi", err) < 0) {
                        free(s);
                        img->priv = NULL;
                        return -1;
                }
                img->backing_by_id = true;
                img->cow = true;
                uuid_text(u, h + VDI_OFF_UUID_PARENT);
                if (u[0])
                        snprintf(img->parent_ident[0], sizeof(img->parent_ident[0]),
                                 "vdi-modify %s", u);
        }
        return 0;
}

static int vdi_block_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                            struct ia_error *err)
{
        struct vdi *s = img->priv;
        uint64_t index = off / s->block_size, in_block = off % s->block_size;
        const uint8_t *p;
        uint32_t entry;

        if (index >= s->blocks)
                return ia_error_set(err, IA_ERR_INTERNAL, "vdi: block %llu beyond the block map",
                                    (unsigned long long)index);
        p = ia_window_entry(&s->bmap, index, err);
        if (!p)
                return -1;
        entry = ia_le32(p);
        st->len = ia_min_u64(s->block_size - in_block, len);
        if (entry == VDI_UNALLOCATED && s->type == VDI_TYPE_DIFF) {
                st->flags = 0; /* not written here: read through to the parent */
                return 0;
        }
        if (entry == VDI_UNALLOCATED || entry == VDI_DISCARDED) {
                st->flags = IA_BS_ZERO;
                return 0;
        }
        st->flags = IA_BS_DATA | IA_BS_OFFSET;
        if (s->type == VDI_TYPE_STATIC)
                st->flags |= IA_BS_RECURSE;
        st->host_off = s->data_off + (uint64_t)entry * s->block_size + in_block;
        st->file = img->file;
        return 0;
}

const struct ia_driver ia_drv_vdi = {
    .name = "vdi",
    .flags = 0,
    .probe = vdi_probe,
    .open = vdi_open,
    .block_status = vdi_block_status,
    .close = ia_close_priv,
};
