/*
 * The sharing section: what each backing image shares with its overlays, and
 * what deleting an image would free.
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

/* The per-base gauges of the sharing section. */
static uint64_t base_children(const struct ia_rpt_image *m)
{
        return m->nchildren;
}

static uint64_t base_descendants(const struct ia_rpt_image *m)
{
        return m->ndesc;
}

static uint64_t base_visible(const struct ia_rpt_image *m)
{
        return m->visible;
}

static uint64_t base_dead(const struct ia_rpt_image *m)
{
        return m->dead;
}

static const struct {
        const char *name, *help;
        uint64_t (*get)(const struct ia_rpt_image *m);
} base_metrics[] = {
    {"imgaudit_base_children", "Direct children of a backing image.", base_children},
    {"imgaudit_base_descendants", "Transitive children of a backing image.", base_descendants},
    {"imgaudit_base_visible_bytes",
     "Own data of a backing image still read through at least one descendant.", base_visible},
    {"imgaudit_base_dead_bytes", "Own data of a backing image shadowed in every descendant.",
     base_dead},
};

int ia_sec_sharing(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        static const struct ia_col cols[] = {
            {"kind", "kind", IA_COL_TEXT},
            {"image", "image", IA_COL_TEXT},
            {"base", "base", IA_COL_TEXT},
            {"depth", "depth", IA_COL_INT},
            {"children", "children", IA_COL_INT},
            {"descendants", "desc", IA_COL_INT},
            {"own_data_bytes", "own data", IA_COL_BYTES},
            {"visible_bytes", "visible", IA_COL_BYTES},
            {"dead_bytes", "dead", IA_COL_BYTES},
            {"reads_from_base_bytes", "from base", IA_COL_BYTES},
            {"allocated_bytes", "on disk", IA_COL_BYTES},
            {"freed_if_deleted_bytes", "freed if deleted", IA_COL_BYTES},
            {"breaks_images", "breaks", IA_COL_INT},
        };
        struct ia_table *t =
            ia_sec_table(o, "sharing", "Sharing per backing image", cols, NCOLS(cols));
        struct ia_jw *w = &o->jw;
        struct rpt_ws {
                uint64_t reads;
        } *ws = NULL;
        size_t *dimg = NULL;
        int *ddepth = NULL;
        uint64_t *dreads = NULL;
        struct ia_rbuf *p = &o->prom;
        int ret = -1;

        if (NO_TABLE(o, t)) {
                NOMEM(err);
                goto out;
        }
        for (size_t i = 0; i < r->nimg; i++)
                ia_compute_freed(r, i);
        ws = calloc(r->nimg + 1, sizeof(*ws));
        dimg = calloc(r->nimg + 1, sizeof(*dimg));
        ddepth = calloc(r->nimg + 1, sizeof(*ddepth));
        dreads = calloc(r->nimg + 1, sizeof(*dreads));
        if (!ws || !dimg || !ddepth || !dreads) {
                NOMEM(err);
                goto out;
        }
        ia_jw_open(w, '{');
        ia_jw_key(w, "bases");
        ia_jw_open(w, '[');
        for (size_t b = 0; b < r->nimg; b++) {
                struct ia_rpt_image *base = &r->img[b];
                json_object *e, *jov, *jch;
                struct ia_walk *d;
                size_t nd;

                if (base->nchildren == 0)
                        continue;
                d = ia_descendants(r, b, &nd);
                if (!d) {
                        NOMEM(err);
                        goto out;
                }
                for (size_t k = 0; k < nd; k++) {
                        dimg[k] = d[k].img;
                        ddepth[k] = d[k].depth;
                }
                if (ia_rpt_share(r, b, dimg, ddepth, nd, &base->visible, dreads, err) < 0) {
                        free(d);
                        goto out;
                }
                for (size_t k = 0; k < nd; k++)
                        ws[d[k].img].reads = dreads[k];
                base->dead =
                    base->sp.own_data > base->visible ? base->sp.own_data - base->visible : 0;
                base->sharing_done = true;

                ia_table_row(t, 0);
                ia_table_text(t, "base");
                ia_table_text(t, base->name);
                ia_table_text(t, base->name);
                ia_table_int(t, 0);
                ia_table_int(t, (int64_t)base->nchildren);
                ia_table_int(t, (int64_t)base->ndesc);
                ia_table_bytes(t, base->sp.own_data);
                ia_table_bytes(t, base->visible);
                ia_table_bytes(t, base->dead);
                ia_table_null(t);
                ia_table_bytes(t, base->allocated);
                ia_table_bytes(t, base->freed);
                ia_table_int(t, (int64_t)base->ndesc);

                e = json_object_new_object();
                jset(e, "name", jstr(base->name));
                jset(e, "format", jstr(base->format));
                jset(e, "children", ju(base->nchildren));
                jset(e, "descendants", ju(base->ndesc));
                jset(e, "own_data_bytes", ju(base->sp.own_data));
                jset(e, "visible_bytes", ju(base->visible));
                jset(e, "dead_bytes", ju(base->dead));
                jset(e, "allocated_bytes", ju(base->allocated));
                jch = json_object_new_array();
                for (size_t k = 0; k < base->nchildren; k++)
                        json_object_array_add(jch, jstr(r->img[base->children[k]].name));
                jset(e, "direct_children", jch);
                jov = json_object_new_array();
                for (size_t k = 0; k < nd; k++) {
                        const struct ia_rpt_image *m = &r->img[d[k].img];
                        json_object *x = json_object_new_object();

                        ia_table_row(t, (unsigned)d[k].depth);
                        ia_table_text(t, "overlay");
                        ia_table_text(t, m->name);
                        ia_table_text(t, base->name);
                        ia_table_int(t, d[k].depth);
                        ia_table_int(t, (int64_t)m->nchildren);
                        ia_table_int(t, (int64_t)m->ndesc);
                        ia_table_bytes(t, m->sp.own_data);
                        ia_table_null(t);
                        ia_table_null(t);
                        ia_table_bytes(t, ws[d[k].img].reads);
                        ia_table_bytes(t, m->allocated);
                        ia_table_bytes(t, m->freed);
                        ia_table_int(t, (int64_t)m->ndesc);

                        jset(x, "name", jstr(m->name));
                        jset(x, "depth", ji(d[k].depth));
                        jset(x, "unique_bytes", ju(m->sp.own_data));
                        jset(x, "reads_from_base_bytes", ju(ws[d[k].img].reads));
                        jset(x, "allocated_bytes", ju(m->allocated));
                        jset(x, "freed_if_deleted_bytes", ju(m->freed));
                        json_object_array_add(jov, x);
                }
                jset(e, "overlays", jov);
                ia_jw_value(w, e);
                free(d);
        }
        ia_jw_close(w, ']');
        ia_jw_key(w, "deletion");
        ia_jw_open(w, '[');
        for (size_t i = 0; w->out && i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                json_object *x = json_object_new_object();

                jset(x, "name", jstr(m->name));
                jset(x, "allocated_bytes", ju(m->allocated));
                jset(x, "freed_bytes", ju(m->freed));
                jset(x, "orphaned_bases", ju(m->orphaned));
                jset(x, "breaks_images", ju(m->ndesc));
                ia_jw_value(w, x);
        }
        ia_jw_close(w, ']');
        ia_jw_close(w, '}');
        o->have_sharing = true;

        for (size_t k = 0; o->prom_per_image && k < NCOLS(base_metrics); k++) {
                ia_prom_head(p, base_metrics[k].name, "gauge", base_metrics[k].help);
                for (size_t i = 0; i < r->nimg; i++)
                        if (r->img[i].sharing_done)
                                ia_prom_u(p, base_metrics[k].name, "base", r->img[i].name,
                                          base_metrics[k].get(&r->img[i]));
        }
        if (o->prom_per_image) {
                ia_prom_head(
                    p, "imgaudit_image_freed_if_deleted_bytes", "gauge",
                    "Bytes freed by deleting the image: its own plus bases left orphaned.");
                for (size_t i = 0; i < r->nimg; i++)
                        ia_prom_u(p, "imgaudit_image_freed_if_deleted_bytes", "image",
                                  r->img[i].name, r->img[i].freed);
        }
        ret = 0;
out:
        free(ws);
        free(dimg);
        free(ddepth);
        free(dreads);
        return ret;
}
