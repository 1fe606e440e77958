/*
 * The orphans section: images nothing references (report only).
 * See sections.h, and imgaudit(1) "REPORT FIGURES" for every figure.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "sec_emit.h"

/* An orphan: nothing backs onto it, no OVF names it, no image keeps data in it. */
static bool is_orphan(const struct ia_rpt_image *m)
{
        return m->nchildren == 0 && !m->used_by_ovf && !m->used_as_data;
}

int ia_sec_orphans(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        static const struct ia_col cols[] = {
            {"image", "image", IA_COL_TEXT},
            {"kind", "kind", IA_COL_TEXT},
            {"format", "format", IA_COL_TEXT},
            {"status", "status", IA_COL_TEXT},
            {"modified", "modified", IA_COL_TEXT},
            {"age_days", "age (days)", IA_COL_INT},
            {"allocated_bytes", "on disk", IA_COL_BYTES},
            {"reclaimable_bytes", "reclaimable", IA_COL_BYTES},
        };
        struct ia_table *t = ia_sec_table(o, "orphans", "Orphans (report only: nothing is deleted)",
                                          cols, NCOLS(cols));
        struct ia_jw *w = &o->jw;
        struct ia_rbuf *p = &o->prom;
        uint64_t total = 0;
        size_t n = 0;

        if (NO_TABLE(o, t))
                return NOMEM(err);
        /* the count and the sum come first in the document: one pass for them */
        for (size_t i = 0; i < r->nimg; i++) {
                if (!is_orphan(&r->img[i]))
                        continue;
                ia_compute_freed(r, i);
                total += r->img[i].freed;
                n++;
        }
        ia_jw_open(w, '{');
        ia_jw_kv(w, "count", ju(n));
        ia_jw_kv(w, "reclaimable_bytes", ju(total));
        ia_jw_key(w, "images");
        ia_jw_open(w, '[');
        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                const char *kind;
                char mt[32];
                int64_t age = 0;

                if (!is_orphan(m))
                        continue;
                kind = !m->has_backing ? "standalone" : m->backing_ok ? "overlay" : "broken";
                if (m->has_mtime) {
                        int64_t s = m->mtime_ns / 1000000000;
                        age = r->now > s ? (r->now - s) / 86400 : 0;
                        ia_iso_time(s, mt, sizeof(mt));
                }
                ia_table_row(t, 0);
                ia_table_text(t, m->name);
                ia_table_text(t, kind);
                ia_table_text(t, m->format);
                ia_table_text(t, m->status);
                ia_table_text(t, m->has_mtime ? mt : NULL);
                if (m->has_mtime)
                        ia_table_int(t, age);
                else
                        ia_table_null(t);
                ia_table_bytes(t, m->allocated);
                ia_table_bytes(t, m->freed);
                if (w->out) {
                        json_object *e = json_object_new_object();

                        jset(e, "name", jstr(m->name));
                        jset(e, "kind", jstr(kind));
                        jset(e, "format", jstr(m->format));
                        jset(e, "status", jstr(m->status));
                        jset(e, "modified", m->has_mtime ? jstr(mt) : NULL);
                        jset(e, "age_days", m->has_mtime ? ji(age) : NULL);
                        jset(e, "allocated_bytes", ju(m->allocated));
                        jset(e, "reclaimable_bytes", ju(m->freed));
                        ia_jw_value(w, e);
                }
        }
        ia_jw_close(w, ']');
        ia_jw_close(w, '}');
        o->norphans = n;
        ia_prom_head(p, "imgaudit_orphans", "gauge", "Images no other image or OVF references.");
        ia_prom_u(p, "imgaudit_orphans", NULL, NULL, n);
        ia_prom_head(p, "imgaudit_orphan_reclaimable_bytes", "gauge",
                     "Sum of the orphans' reclaimable bytes, each deleted alone.");
        ia_prom_u(p, "imgaudit_orphan_reclaimable_bytes", NULL, NULL, total);
        return 0;
}
