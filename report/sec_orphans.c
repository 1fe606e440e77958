/*
 * The orphans section: images nothing uses, by class (report only).
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

/* An orphan: nothing backs onto it, no OVF or VM names it, no image keeps data in it. */
static bool is_orphan(const struct ia_rpt_image *m)
{
        return m->nchildren == 0 && !m->used_by_ovf && !m->used_as_data && !m->used_by_vm;
}

/*
 * What deleting an unused image would mean: a base no image uses (it was a
 * backing file in an earlier scan, or lies where bases are kept: a _base/
 * directory, a base-* name) is a true orphan; a standalone disk or a leaf
 * overlay no VM uses is one only when VM definitions were read, else it is
 * presumed in use (the disk a VM runs on).
 */
static const char *orphan_class(const struct ia_rpt *r, const struct ia_rpt_image *m)
{
        const char *base = strrchr(m->path, '/');

        base = base ? base + 1 : m->path;
        if (m->was_base || strstr(m->path, "/_base/") || strncmp(m->path, "_base/", 6) == 0 ||
            strncmp(base, "base-", 5) == 0)
                return "base";
        if (!r->vm_defs)
                return "presumed-in-use";
        return m->has_backing ? "leaf" : "standalone";
}

static bool reclaimable(const char *cls)
{
        return strcmp(cls, "presumed-in-use") != 0;
}

/* The orphans by class, and the reclaimable ones' count and sum (computing their freed bytes). */
struct orphan_counts {
        uint64_t total;
        size_t n, nbase, nstand, nleaf, npres;
};

static void orphan_count(struct ia_rpt *r, struct orphan_counts *c)
{
        for (size_t i = 0; i < r->nimg; i++) {
                const char *cls;

                if (!is_orphan(&r->img[i]))
                        continue;
                cls = orphan_class(r, &r->img[i]);
                if (strcmp(cls, "base") == 0)
                        c->nbase++;
                else if (strcmp(cls, "leaf") == 0)
                        c->nleaf++;
                else if (strcmp(cls, "standalone") == 0)
                        c->nstand++;
                else
                        c->npres++;
                if (!reclaimable(cls))
                        continue;
                ia_compute_freed(r, i);
                c->total += r->img[i].freed;
                c->n++;
        }
}

/* One orphan's row: in the table and, as it is made, in the JSON array. */
static void orphan_row(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_table *t,
                       const struct ia_rpt_image *m)
{
        const char *kind = !m->has_backing ? "standalone" : m->backing_ok ? "overlay" : "broken";
        const char *cls = orphan_class(r, m);
        uint64_t freed = reclaimable(cls) ? m->freed : 0;
        char mt[32];
        int64_t age = 0;

        if (m->has_mtime) {
                int64_t s = m->mtime_ns / 1000000000;
                age = r->now > s ? (r->now - s) / 86400 : 0;
                ia_iso_time(s, mt, sizeof(mt));
        }
        ia_table_row(t, 0);
        ia_table_text(t, m->name);
        ia_table_text(t, cls);
        ia_table_text(t, kind);
        ia_table_text(t, m->format);
        ia_table_text(t, m->status);
        ia_table_text(t, m->has_mtime ? mt : NULL);
        if (m->has_mtime)
                ia_table_int(t, age);
        else
                ia_table_null(t);
        ia_table_bytes(t, m->allocated);
        ia_table_bytes(t, freed);
        if (o->jw.out) {
                json_object *e = json_object_new_object();

                jset(e, "name", jstr(m->name));
                jset(e, "class", jstr(cls));
                jset(e, "reclaimable", json_object_new_boolean(reclaimable(cls)));
                jset(e, "kind", jstr(kind));
                jset(e, "format", jstr(m->format));
                jset(e, "status", jstr(m->status));
                jset(e, "modified", m->has_mtime ? jstr(mt) : NULL);
                jset(e, "age_days", m->has_mtime ? ji(age) : NULL);
                jset(e, "allocated_bytes", ju(m->allocated));
                jset(e, "reclaimable_bytes", ju(freed));
                ia_jw_value(&o->jw, e);
        }
}

static void orphan_prom(struct ia_rbuf *p, const struct orphan_counts *c)
{
        ia_prom_head(p, "imgaudit_orphans", "gauge",
                     "Reclaimable orphans: bases no image uses, and disks no image or VM uses "
                     "when VM definitions were read.");
        ia_prom_u(p, "imgaudit_orphans", NULL, NULL, c->n);
        ia_prom_head(p, "imgaudit_orphans_by_class", "gauge",
                     "Images no image uses, by class (presumed-in-use: no VM definitions read).");
        ia_prom_u(p, "imgaudit_orphans_by_class", "class", "base", c->nbase);
        ia_prom_u(p, "imgaudit_orphans_by_class", "class", "standalone", c->nstand);
        ia_prom_u(p, "imgaudit_orphans_by_class", "class", "leaf", c->nleaf);
        ia_prom_u(p, "imgaudit_orphans_by_class", "class", "presumed-in-use", c->npres);
        ia_prom_head(p, "imgaudit_orphan_reclaimable_bytes", "gauge",
                     "Sum of the reclaimable orphans' reclaimable bytes, each deleted alone.");
        ia_prom_u(p, "imgaudit_orphan_reclaimable_bytes", NULL, NULL, c->total);
}

int ia_sec_orphans(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        static const struct ia_col cols[] = {
            {"image", "image", IA_COL_TEXT},
            {"class", "class", IA_COL_TEXT},
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
        struct orphan_counts c = {0};

        if (NO_TABLE(o, t))
                return NOMEM(err);
        /* the counts and the sum come first in the document: one pass for them */
        orphan_count(r, &c);
        ia_jw_open(w, '{');
        ia_jw_kv(w, "count", ju(c.n));
        ia_jw_kv(w, "reclaimable_bytes", ju(c.total));
        ia_jw_kv(w, "vm_definitions_read", json_object_new_boolean(r->vm_defs));
        ia_jw_kv(w, "bases", ju(c.nbase));
        ia_jw_kv(w, "standalone_disks", ju(c.nstand));
        ia_jw_kv(w, "leaves", ju(c.nleaf));
        ia_jw_kv(w, "presumed_in_use", ju(c.npres));
        ia_jw_key(w, "images");
        ia_jw_open(w, '[');
        for (size_t i = 0; i < r->nimg; i++)
                if (is_orphan(&r->img[i]))
                        orphan_row(r, o, t, &r->img[i]);
        ia_jw_close(w, ']');
        ia_jw_close(w, '}');
        if (t && !r->vm_defs)
                ia_table_note(
                    t, "No VM definitions were read (scan --vm-config DIR, or keep them "
                       "in a ROOT): leaves and disks without a backing file that no image uses are "
                       "presumed in use; only bases are counted as reclaimable.");
        o->norphans = c.n;
        orphan_prom(&o->prom, &c);
        return 0;
}
