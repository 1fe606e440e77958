/*
 * raw: the image is the file.
 *
 * Transparent, as qemu's raw driver is: the map is the host file's own
 * layout (SEEK_DATA/SEEK_HOLE, see ia_file_status()), every entry with an
 * identity offset.  The virtual size is the file size rounded up to 512, and
 * the tail past the real end reads as a hole.  raw never probes: it is what
 * a file is when no other driver recognises it.
 *
 * Not supported: qemu's "offset" and "size" runtime options.
 */
#include <stdlib.h>

#include "image.h"
#include "banned.h"

static int raw_open(struct ia_image *img, struct ia_error *err)
{
        (void)err;
        img->size = img->file->len;
        return 0;
}

static int raw_block_status(struct ia_image *img, uint64_t off, uint64_t len, struct ia_bstatus *st,
                            struct ia_error *err)
{
        return ia_file_status(img->file, off, len, st, err);
}

const struct ia_driver ia_drv_raw = {
    .name = "raw",
    .flags = 0,
    .probe = NULL,
    .open = raw_open,
    .block_status = raw_block_status,
    .close = ia_close_priv,
};
