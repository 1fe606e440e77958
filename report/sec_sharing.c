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

/* Scratch arrays of one report's sharing analysis, one slot per image. */
struct share_ws {
        uint64_t *reads; /* what each image reads from the base being analysed */
        size_t *dimg;
        int *ddepth;
        uint64_t *dreads;
};

/* The base's table row and JSON object, with its overlays. */
static void sharing_emit(const struct ia_rpt *r, struct ia_rpt_out *o, struct ia_table *t,
                         const struct ia_rpt_image *base, const struct ia_walk *d, size_t nd,
                         const struct share_ws *ws)
{
        json_object *e, *jov, *jch;

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
                ia_table_bytes(t, ws->reads[d[k].img]);
                ia_table_bytes(t, m->allocated);
                ia_table_bytes(t, m->freed);
                ia_table_int(t, (int64_t)m->ndesc);

                jset(x, "name", jstr(m->name));
                jset(x, "depth", ji(d[k].depth));
                jset(x, "unique_bytes", ju(m->sp.own_data));
                jset(x, "reads_from_base_bytes", ju(ws->reads[d[k].img]));
                jset(x, "allocated_bytes", ju(m->allocated));
                jset(x, "freed_if_deleted_bytes", ju(m->freed));
                json_object_array_add(jov, x);
        }
        jset(e, "overlays", jov);
        ia_jw_value(&o->jw, e);
}

/* Analyse base b (what its descendants read of it, its visible and dead bytes)
 * and emit it (-1: error set). */
static int sharing_base(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_table *t, size_t b,
                        struct share_ws *ws, struct ia_error *err)
{
        struct ia_rpt_image *base = &r->img[b];
        struct ia_walk *d;
        size_t nd;

        d = ia_descendants(r, b, &nd);
        if (!d) {
                NOMEM(err);
                return -1;
        }
        for (size_t k = 0; k < nd; k++) {
                ws->dimg[k] = d[k].img;
                ws->ddepth[k] = d[k].depth;
        }
        if (ia_rpt_share(r, b, ws->dimg, ws->ddepth, nd, &base->visible, ws->dreads, err) < 0) {
                free(d);
                return -1;
        }
        for (size_t k = 0; k < nd; k++)
                ws->reads[d[k].img] = ws->dreads[k];
        base->dead = base->sp.own_data > base->visible ? base->sp.own_data - base->visible : 0;
        base->sharing_done = true;
        sharing_emit(r, o, t, base, d, nd, ws);
        free(d);
        return 0;
}

/* What deleting each image would free (JSON only: the table has it per row). */
static void sharing_deletion(const struct ia_rpt *r, struct ia_jw *w)
{
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
}

static void sharing_prom(const struct ia_rpt *r, struct ia_rpt_out *o)
{
        struct ia_rbuf *p = &o->prom;

        if (!o->prom_per_image)
                return;
        for (size_t k = 0; k < NCOLS(base_metrics); k++) {
                ia_prom_head(p, base_metrics[k].name, "gauge", base_metrics[k].help);
                for (size_t i = 0; i < r->nimg; i++) {
                        if (r->img[i].sharing_done)
                                ia_prom_u(p, base_metrics[k].name, "base", r->img[i].name,
                                          base_metrics[k].get(&r->img[i]));
                        ia_prom_spill(o);
                }
        }
        ia_prom_head(p, "imgaudit_image_freed_if_deleted_bytes", "gauge",
                     "Bytes freed by deleting the image: its own plus bases left orphaned.");
        for (size_t i = 0; i < r->nimg; i++) {
                ia_prom_u(p, "imgaudit_image_freed_if_deleted_bytes", "image", r->img[i].name,
                          r->img[i].freed);
                ia_prom_spill(o);
        }
}

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
        struct share_ws ws = {0};
        int ret = -1;

        if (NO_TABLE(o, t)) {
                NOMEM(err);
                goto out;
        }
        for (size_t i = 0; i < r->nimg; i++)
                ia_compute_freed(r, i);
        ws.reads = calloc(r->nimg + 1, sizeof(*ws.reads));
        ws.dimg = calloc(r->nimg + 1, sizeof(*ws.dimg));
        ws.ddepth = calloc(r->nimg + 1, sizeof(*ws.ddepth));
        ws.dreads = calloc(r->nimg + 1, sizeof(*ws.dreads));
        if (!ws.reads || !ws.dimg || !ws.ddepth || !ws.dreads) {
                NOMEM(err);
                goto out;
        }
        ia_jw_open(w, '{');
        ia_jw_key(w, "bases");
        ia_jw_open(w, '[');
        for (size_t b = 0; b < r->nimg; b++)
                if (r->img[b].nchildren != 0 && sharing_base(r, o, t, b, &ws, err) < 0)
                        goto out;
        ia_jw_close(w, ']');
        sharing_deletion(r, w);
        ia_jw_close(w, '}');
        o->have_sharing = true;
        sharing_prom(r, o);
        ret = 0;
out:
        free(ws.reads);
        free(ws.dimg);
        free(ws.ddepth);
        free(ws.dreads);
        return ret;
}
