/*
 * The report's streaming JSON writer: see jsonw.h.
 */
#include "jsonw.h"

#include <string.h>

#include "sections.h"
#include "banned.h"

void ia_jw_init(struct ia_jw *w, struct ia_sink *out)
{
        memset(w, 0, sizeof(*w));
        w->out = out;
}

static void indent(struct ia_jw *w, int depth)
{
        ia_rbuf_pad(&w->out->b, ' ', (size_t)depth * 2);
}

/* Before a member: the separator and indentation, unless it follows its key. */
static void member(struct ia_jw *w)
{
        if (w->after_key) {
                w->after_key = false;
                return;
        }
        if (w->depth == 0)
                return;
        if (w->had[w->depth])
                ia_rbuf_adds(&w->out->b, ",\n");
        w->had[w->depth] = true;
        indent(w, w->depth);
}

void ia_jw_open(struct ia_jw *w, char bracket)
{
        if (!w->out)
                return;
        if (w->depth + 1 >= IA_JW_MAXDEPTH) {
                w->nomem = true;
                return;
        }
        member(w);
        ia_rbuf_addc(&w->out->b, bracket);
        ia_rbuf_addc(&w->out->b, '\n');
        w->had[++w->depth] = false;
}

void ia_jw_close(struct ia_jw *w, char bracket)
{
        if (!w->out || w->depth == 0)
                return;
        if (w->had[w->depth])
                ia_rbuf_addc(&w->out->b, '\n');
        w->depth--;
        indent(w, w->depth);
        ia_rbuf_addc(&w->out->b, bracket);
}

void ia_jw_key(struct ia_jw *w, const char *key)
{
        if (!w->out)
                return;
        member(w);
        /* keys are the report's own identifiers: nothing to escape */
        ia_rbuf_addc(&w->out->b, '"');
        ia_rbuf_adds(&w->out->b, key);
        ia_rbuf_adds(&w->out->b, "\": ");
        w->after_key = true;
}

void ia_jw_value(struct ia_jw *w, json_object *v)
{
        const char *s;

        if (!w->out) {
                json_object_put(v);
                return;
        }
        member(w);
        s = v ? json_object_to_json_string_ext(v, IA_JSON_FLAGS) : "null";
        if (!s) {
                w->nomem = true;
        } else {
                /* json-c indents from depth 0: every line after the first goes deeper */
                for (const char *p = s, *nl; *p; p = nl + 1) {
                        nl = strchr(p, '\n');
                        if (!nl) {
                                ia_rbuf_adds(&w->out->b, p);
                                break;
                        }
                        ia_rbuf_add(&w->out->b, p, (size_t)(nl - p + 1));
                        indent(w, w->depth);
                }
        }
        json_object_put(v);
        ia_sink_spill(w->out);
}

void ia_jw_kv(struct ia_jw *w, const char *key, json_object *v)
{
        if (!w->out) {
                json_object_put(v);
                return;
        }
        ia_jw_key(w, key);
        ia_jw_value(w, v);
}
