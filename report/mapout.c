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

#include "error.h"

void ia_mapout_begin(struct ia_mapout *m)
{
        if (m->mode == IA_MAPOUT_HUMAN)
                ia_out_str(m->out, "Offset          Length          Mapped to       File\n");
        else
                ia_out_char(m->out, '[');
}

static void json_bool(struct ia_out *o, const char *key, bool v)
{
        ia_out_str(o, key);
        ia_out_str(o, v ? "true" : "false");
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
        ia_out_str(o, "{ \"start\": ");
        ia_out_u64(o, e->start);
        ia_out_str(o, ", \"length\": ");
        ia_out_u64(o, e->length);
        ia_out_str(o, ", \"depth\": ");
        ia_out_u64(o, e->depth);
        json_bool(o, ", \"present\": ", e->present);
        json_bool(o, ", \"zero\": ", e->zero);
        json_bool(o, ", \"data\": ", e->data);
        if (m->compressed_key)
                json_bool(o, ", \"compressed\": ", e->compressed);
        if (e->has_offset) {
                ia_out_str(o, ", \"offset\": ");
                ia_out_u64(o, e->offset);
        }
        ia_out_char(o, '}');
        if (!last)
                ia_out_str(o, ",\n");
        return 0;
}

void ia_mapout_end(struct ia_mapout *m)
{
        if (m->mode == IA_MAPOUT_JSON)
                ia_out_str(m->out, "]\n");
}
