/*
 * Formats qemu recognises but imgaudit does not map: bochs and cloop.
 *
 * Without a driver their files would be mapped as raw (the fallback), which
 * is not what qemu-img map prints for them.  These probe-only drivers make
 * them recognised by content and refused by name ("a bochs image, which
 * imgaudit does not map"), in `map` and in `scan` alike.
 *
 * bochs: a 512-byte header starting "Bochs Virtual HD Image", type "Redolog",
 * subtype "Growing" (also "Undoable", "Volatile"), version 1.0 or 2.0.
 * cloop: a compressed loop image whose header begins with a shell script line
 * "#!/bin/sh" and a "#V2.0 Format" line.
 */
#include <string.h>

#include "bytes.h"
#include "image.h"

static bool has_string(const struct ia_probe *p, size_t off, const char *s)
{
        size_t n = strlen(s) + 1; /* the NUL too: these are fixed C strings */

        return p->head_len >= off + n && memcmp(p->head + off, s, n) == 0;
}

static int bochs_probe(const struct ia_probe *p)
{
        uint32_t version;

        if (p->head_len < 512 || !has_string(p, 0, "Bochs Virtual HD Image") ||
            !has_string(p, 32, "Redolog"))
                return 0;
        if (!has_string(p, 48, "Growing") && !has_string(p, 48, "Undoable") &&
            !has_string(p, 48, "Volatile"))
                return 0;
        version = ia_le32(p->head + 64);
        return version == 0x20000 || version == 0x10000 ? 100 : 0;
}

static int cloop_probe(const struct ia_probe *p)
{
        static const char magic[] = "#!/bin/sh\n#V2.0 Format\n";

        if (p->head_len < sizeof(magic) - 1 || memcmp(p->head, magic, sizeof(magic) - 1) != 0)
                return 0;
        return 50;
}

static int unmapped_open(struct ia_image *img, struct ia_error *err)
{
        /* Never reached: the core refuses IA_DRV_PROBE_ONLY drivers before opening. */
        return ia_error_set(err, IA_ERR_UNSUPPORTED,
                            "'%s' is a %s image, which imgaudit does "
                            "not map",
                            img->file->name, img->drv->name);
}

static void unmapped_close(struct ia_image *img)
{
        (void)img;
}

const struct ia_driver ia_drv_bochs = {
    .name = "bochs",
    .flags = IA_DRV_PROBE_ONLY,
    .probe = bochs_probe,
    .open = unmapped_open,
    .block_status = NULL,
    .close = unmapped_close,
};

const struct ia_driver ia_drv_cloop = {
    .name = "cloop",
    .flags = IA_DRV_PROBE_ONLY,
    .probe = cloop_probe,
    .open = unmapped_open,
    .block_status = NULL,
    .close = unmapped_close,
};
