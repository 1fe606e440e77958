/*
 * Fuzz target: open and map one image held in memory.
 *
 * The first input byte picks the driver (its index in the table; values past
 * the table mean "probe"), the rest is the image.  References to other files
 * are refused, so the target exercises exactly one layer: header parsing,
 * table decoding and block status, through the same core as `imgaudit map`.
 * The map stops after a bounded number of entries so that a huge virtual
 * size is not mistaken for a hang.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "chain.h"
#include "drivers.h"
#include "map.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ENTRIES 4096

static int refuse(const struct ia_resolver *r, const struct ia_file *from, const char *name,
                  enum ia_ref_kind kind, struct ia_file **out, struct ia_error *err)
{
        (void)r;
        (void)from;
        (void)kind;
        (void)out;
        return ia_error_set(err, IA_ERR_REFUSED, "fuzzing: '%s' is not followed", name);
}

static int count(void *opaque, const struct ia_map_entry *e, bool last, struct ia_error *err)
{
        size_t *n = opaque;

        (void)last;
        if (e->length == 0 && !last)
                abort(); /* the core never passes an empty entry but the placeholder */
        if (++*n >= MAX_ENTRIES)
                return ia_error_set(err, IA_ERR_LIMIT, "enough entries");
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const struct ia_resolver resolver = {.open = refuse};
        /* true_map: dmg keeps and checks its chunk tables (the coarse answer reads the same). */
        const struct ia_open_ctx ctx = {
            .resolver = &resolver, .compat = IA_DEFAULT_COMPAT, .true_map = true};
        struct ia_map_opts opts = {.max_len = IA_MAP_NO_MAX, .flags = IA_MAP_MERGE_COMPRESSED};
        const char *fmt = NULL;
        struct ia_source *src;
        struct ia_file *file;
        struct ia_image *img;
        struct ia_error err;
        size_t ndrivers = 0, entries = 0;

        if (size < 1)
                return 0;
        while (ia_drivers[ndrivers])
                ndrivers++;
        if (data[0] < ndrivers)
                fmt = ia_drivers[data[0]]->name;
        src = ia_source_memory(data + 1, size - 1, false, &err);
        if (!src)
                return 0;
        file = ia_file_new(src, "fuzz.img", &err);
        if (!file)
                return 0;
        if (ia_image_open(&ctx, file, fmt, &img, &err) < 0)
                return 0;
        (void)ia_map(img, &opts, count, &entries, &err);
        ia_image_free(img);
        return 0;
}
