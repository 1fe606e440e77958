/*
 * qemu-img map's two output layouts, byte for byte.
 *
 * JSON: '[' ENTRY (",\n" ENTRY)* "]\n", each entry
 *   { "start": S, "length": L, "depth": D, "present": B, "zero": B, "data": B
 *   [, "compressed": B (8.2+)][, "offset": O]}
 * Human: a header, then one line per entry with data and not zero, numbers
 * as printf("%#-16" PRIx64): the table cannot show data without a host
 * offset, so such an entry stops the output with an error, as in qemu.
 */
#include "mapout.h"

#include <string.h>

#include "error.h"
#include "banned.h"

void ia_mapout_begin(struct ia_mapout *m)
{
        if (m->mode == IA_MAPOUT_HUMAN)
                ia_out_str(m->out, "Offset          Length          Mapped to       File\n");
        else
                ia_out_char(m->out, '[');
}

/* Appending to a line being built: literals have their length known at compile time. */
#define PUT_LIT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) += sizeof(lit) - 1)

static char *put_bool(char *p, bool v)
{
        if (v)
                PUT_LIT(p, "true");
        else
                PUT_LIT(p, "false");
        return p;
}

int ia_mapout_entry(void *opaque, const struct ia_map_entry *e, bool last, struct ia_error *err)
{
        struct ia_mapout *m = opaque;
        struct ia_out *o = m->out;

        if (m->mode == IA_MAPOUT_HUMAN) {
                if (e->data && !e->has_offset)
                        return ia_error_set(
                            err, IA_ERR_UNSUPPORTED,
                            "'%s': the data at guest offset %llu (%llu bytes) has no "
                            "host offset (compressed, encrypted or without block "
                            "status): the human layout cannot show it; use "
                            "--output=json",
                            m->image, (unsigned long long)e->start, (unsigned long long)e->length);
                if (e->data && !e->zero) {
                        ia_out_hex_padded(o, e->start, 16);
                        ia_out_hex_padded(o, e->length, 16);
                        ia_out_hex_padded(o, e->has_offset ? e->offset : 0, 16);
                        if (e->file)
                                ia_out_str(o, e->file->name);
                        ia_out_char(o, '\n');
                }
                return 0;
        }
        {
                /* One entry is at most ~200 bytes: build it, then write it once. */
                char line[256];
                char *p = line;

                PUT_LIT(p, "{ \"start\": ");
                p = ia_put_u64(p, e->start);
                PUT_LIT(p, ", \"length\": ");
                p = ia_put_u64(p, e->length);
                PUT_LIT(p, ", \"depth\": ");
                p = ia_put_u64(p, e->depth);
                PUT_LIT(p, ", \"present\": ");
                p = put_bool(p, e->present);
                PUT_LIT(p, ", \"zero\": ");
                p = put_bool(p, e->zero);
                PUT_LIT(p, ", \"data\": ");
                p = put_bool(p, e->data);
                if (m->compressed_key) {
                        PUT_LIT(p, ", \"compressed\": ");
                        p = put_bool(p, e->compressed);
                }
                if (e->has_offset) {
                        PUT_LIT(p, ", \"offset\": ");
                        p = ia_put_u64(p, e->offset);
                }
                *p++ = '}';
                if (!last)
                        PUT_LIT(p, ",\n");
                ia_out_write(o, line, (size_t)(p - line));
        }
        return 0;
}

void ia_mapout_end(struct ia_mapout *m)
{
        if (m->mode == IA_MAPOUT_JSON)
                ia_out_str(m->out, "]\n");
}
