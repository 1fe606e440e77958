/*
 * The findings section: findings, bad images and bad links by category.
 * See sections.h, and imgaudit(1) "REPORT FIGURES" for every figure.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "sec_emit.h"
#include "banned.h"

int ia_sec_findings(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        static const struct ia_col cols[] = {
            {"category", "category", IA_COL_TEXT},
            {"source", "source", IA_COL_TEXT},
            {"image", "image", IA_COL_TEXT},
            {"message", "message", IA_COL_TEXT},
        };
        struct ia_table *t = ia_sec_table(o, "findings", "Findings", cols, NCOLS(cols));
        struct ia_jw *w = &o->jw;

        if (NO_TABLE(o, t))
                return NOMEM(err);
        ia_jw_open(w, '{');
        ia_jw_kv(w, "count", ju(r->nfindings));
        ia_jw_key(w, "categories");
        ia_jw_open(w, '[');
        /* findings are sorted by category: one object per run of a category */
        for (size_t i = 0, end; i < r->nfindings; i = end) {
                const char *cat = r->findings[i].category;

                for (end = i + 1; end < r->nfindings; end++)
                        if (strcmp(r->findings[end].category, cat) != 0)
                                break;
                ia_jw_open(w, '{');
                ia_jw_kv(w, "category", jstr(cat));
                ia_jw_kv(w, "count", ju(end - i));
                ia_jw_key(w, "items");
                ia_jw_open(w, '[');
                for (size_t k = i; k < end; k++) {
                        const struct ia_rpt_finding *f = &r->findings[k];

                        if (w->out) {
                                json_object *e = json_object_new_object();

                                jset(e, "source", jstr(f->source));
                                jset(e, "image", jstr(f->name));
                                jset(e, "message", jstr(f->message));
                                ia_jw_value(w, e);
                        }
                        ia_table_row(t, 0);
                        ia_table_text(t, f->category);
                        ia_table_text(t, f->source);
                        ia_table_text(t, f->name);
                        ia_table_text(t, f->message);
                }
                ia_jw_close(w, ']');
                ia_jw_close(w, '}');
        }
        ia_jw_close(w, ']');
        ia_jw_close(w, '}');
        o->nfindings = r->nfindings;
        return 0;
}
