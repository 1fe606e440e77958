/*
 * Printing map entries exactly as qemu-img map prints them: the JSON stream
 * and the human table.  Used by `imgaudit map`.
 */
#ifndef IA_MAPOUT_H
#define IA_MAPOUT_H

#include <stdbool.h>

#include "map.h"
#include "out.h"

enum ia_mapout_mode { IA_MAPOUT_HUMAN, IA_MAPOUT_JSON };

struct ia_mapout {
        struct ia_out *out;
        enum ia_mapout_mode mode;
        bool compressed_key; /* print "compressed" (qemu >= 8.2) */
        const char *image;   /* the image name, for messages */
};

/* The header line or the opening bracket. */
void ia_mapout_begin(struct ia_mapout *m);
/* An ia_map_fn: print one entry (human: only data that is not zero). */
int ia_mapout_entry(void *opaque, const struct ia_map_entry *e, bool last, struct ia_error *err);
/* The closing bracket (JSON). */
void ia_mapout_end(struct ia_mapout *m);

#endif
