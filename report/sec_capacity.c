/*
 * The capacity section: every figure per image, directory, root and in total.
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

static const struct ia_col cap_cols[] = {
    {"scope", "scope", IA_COL_TEXT},
    {"name", "name", IA_COL_TEXT},
    {"images", "images", IA_COL_INT},
    {"virtual_bytes", "virtual", IA_COL_BYTES},
    {"file_bytes", "file", IA_COL_BYTES},
    {"allocated_bytes", "on disk", IA_COL_BYTES},
    {"own_data_bytes", "own data", IA_COL_BYTES},
    {"backing_data_bytes", "backing", IA_COL_BYTES},
    {"zero_bytes", "zero", IA_COL_BYTES},
    {"unallocated_bytes", "unalloc", IA_COL_BYTES},
    {"unknown_bytes", "unknown", IA_COL_BYTES},
    {"compressed_bytes", "compr", IA_COL_BYTES},
    {"flattened_bytes", "flattened", IA_COL_BYTES},
    {"metadata_overhead_bytes", "overhead", IA_COL_BYTES},
};

static void cap_row(struct ia_table *t, const char *scope, const struct ia_rpt_agg *a)
{
        ia_table_row(t, 0);
        ia_table_text(t, scope);
        ia_table_text(t, a->name);
        ia_table_int(t, (int64_t)a->images);
        ia_table_bytes(t, a->virtual_size);
        ia_table_bytes(t, a->file_size);
        ia_table_bytes(t, a->allocated);
        ia_table_bytes(t, a->own_data);
        ia_table_bytes(t, a->backing_data);
        ia_table_bytes(t, a->zero);
        ia_table_bytes(t, a->unallocated);
        ia_table_bytes(t, a->unknown);
        ia_table_bytes(t, a->compressed);
        ia_table_bytes(t, a->flattened);
        ia_table_bytes(t, a->overhead);
}

static void cap_json(json_object *e, const struct ia_rpt_agg *a, bool with_count)
{
        if (with_count)
                jset(e, "images", ju(a->images));
        jset(e, "virtual_bytes", ju(a->virtual_size));
        jset(e, "file_bytes", ju(a->file_size));
        jset(e, "allocated_bytes", ju(a->allocated));
        jset(e, "own_data_bytes", ju(a->own_data));
        jset(e, "backing_data_bytes", ju(a->backing_data));
        jset(e, "zero_bytes", ju(a->zero));
        jset(e, "unallocated_bytes", ju(a->unallocated));
        jset(e, "unknown_bytes", ju(a->unknown));
        jset(e, "compressed_bytes", ju(a->compressed));
        jset(e, "flattened_bytes", ju(a->flattened));
        jset(e, "metadata_overhead_bytes", ju(a->overhead));
        jset(e, "unmapped_bytes", ju(a->unmapped));
}

static int cmp_agg(const void *a, const void *b)
{
        return strcmp(((const struct ia_rpt_agg *)a)->name, ((const struct ia_rpt_agg *)b)->name);
}

/* A capacity row of scope "directory" or "root" in JSON: its name, then the figures. */
static json_object *cap_group_json(const struct ia_rpt_agg *a)
{
        json_object *e = json_object_new_object();

        jset(e, "name", jstr(a->name));
        cap_json(e, a, true);
        return e;
}

/* A capacity row of scope "image" in JSON: where it is, then its figures. */
static json_object *cap_image_json(const struct ia_rpt *r, const struct ia_rpt_image *m,
                                   const struct ia_rpt_agg *a)
{
        json_object *e = json_object_new_object();

        jset(e, "name", jstr(m->name));
        jset(e, "path", jpath(m->path, m->path_len));
        jset(e, "member", m->member ? jpath(m->member, m->member_len) : NULL);
        jset(e, "directory", jstr(m->dir));
        jset(e, "root", m->root >= 0 ? jstr(r->scan.roots[m->root]) : NULL);
        jset(e, "format", jstr(m->format));
        jset(e, "status", jstr(m->status));
        cap_json(e, a, false);
        return e;
}

/*
 * The images: each one's row (JSON, written as it is made, and the table),
 * and the sums by directory (o->dirs), root and in total.
 */
static int cap_images(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_table *t,
                      struct ia_rpt_agg *imgs, struct ia_rpt_agg *roots, struct ia_rpt_agg *total)
{
        struct ia_jw *w = &o->jw;

        ia_jw_key(w, "images");
        ia_jw_open(w, '[');
        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                size_t d;

                imgs[i].name = m->name;
                ia_agg_add(&imgs[i], m);
                ia_agg_add(total, m);
                if (m->root >= 0)
                        ia_agg_add(&roots[m->root], m);
                for (d = 0; d < o->ndirs; d++)
                        if (strcmp(o->dirs[d].name, m->dir) == 0)
                                break;
                if (d == o->ndirs) {
                        o->dirs[d].name = strdup(m->dir);
                        if (!o->dirs[d].name)
                                return -1;
                        o->ndirs++;
                }
                ia_agg_add(&o->dirs[d], m);
                if (w->out)
                        ia_jw_value(w, cap_image_json(r, m, &imgs[i]));
                cap_row(t, "image", &imgs[i]);
        }
        ia_jw_close(w, ']');
        return 0;
}

/* The directories (sorted by name) and the roots (in the scan's order). */
static void cap_groups(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_table *t,
                       struct ia_rpt_agg *roots)
{
        struct ia_jw *w = &o->jw;

        qsort(o->dirs, o->ndirs, sizeof(*o->dirs), cmp_agg);
        ia_jw_key(w, "directories");
        ia_jw_open(w, '[');
        for (size_t d = 0; d < o->ndirs; d++) {
                if (w->out)
                        ia_jw_value(w, cap_group_json(&o->dirs[d]));
                cap_row(t, "directory", &o->dirs[d]);
        }
        ia_jw_close(w, ']');
        ia_jw_key(w, "roots");
        ia_jw_open(w, '[');
        for (size_t k = 0; k < r->scan.nroots; k++) {
                roots[k].name = r->scan.roots[k];
                if (w->out)
                        ia_jw_value(w, cap_group_json(&roots[k]));
                cap_row(t, "root", &roots[k]);
        }
        ia_jw_close(w, ']');
}

/* The total row, the totals and the overcommit ratio (JSON and the table's note). */
static void cap_totals(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_table *t,
                       const struct ia_rpt_agg *total)
{
        struct ia_jw *w = &o->jw;
        char note[256];
        bool ok;
        double ratio;

        cap_row(t, "total", total);
        ratio = ia_overcommit(total, &ok);
        if (w->out) {
                json_object *jt = json_object_new_object(), *jo;

                cap_json(jt, total, true);
                ia_jw_kv(w, "totals", jt);
                jo = json_object_new_object();
                jset(jo, "ratio", ok ? jratio(ratio) : NULL);
                jset(jo, "leaf_virtual_bytes", ju(total->leaf_virtual));
                jset(jo, "allocated_bytes", ju(total->allocated));
                ia_jw_kv(w, "overcommit", jo);
        }
        ia_jw_close(w, '}');
        snprintf(note, sizeof(note), "overcommit ratio: - (nothing allocated)");
        if (ok) {
                size_t leaves = 0;
                for (size_t i = 0; i < r->nimg; i++)
                        leaves += ia_is_leaf(&r->img[i]);
                snprintf(note, sizeof(note),
                         "overcommit ratio %.2f (virtual size of the %zu leaf images / bytes "
                         "allocated by all %" PRIu64 " images)",
                         ratio, leaves, total->images);
        }
        ia_table_note(t, note);
}

/* --prometheus-per-image: the series that grow with the store (its totals: ia_prom_store). */
static void cap_prom(struct ia_rpt *r, struct ia_rpt_out *o, const struct ia_rpt_agg *imgs)
{
        struct ia_rbuf *p = &o->prom;
        char metric[96];

        for (size_t k = 0; o->prom_per_image && k < IA_NFIGURES; k++) {
                snprintf(metric, sizeof(metric), "imgaudit_image_%s_bytes", ia_figures[k].name);
                ia_prom_head(p, metric, "gauge", ia_figures[k].help);
                for (size_t i = 0; i < r->nimg; i++) {
                        ia_prom_u(p, metric, "image", imgs[i].name, ia_fig(&imgs[i], k));
                        ia_prom_spill(o);
                }
        }
        for (size_t k = 0; o->prom_per_image && k < IA_NFIGURES; k++) {
                snprintf(metric, sizeof(metric), "imgaudit_directory_%s_bytes", ia_figures[k].name);
                ia_prom_head(p, metric, "gauge", ia_figures[k].help);
                for (size_t d = 0; d < o->ndirs; d++) {
                        ia_prom_u(p, metric, "directory", o->dirs[d].name, ia_fig(&o->dirs[d], k));
                        ia_prom_spill(o);
                }
        }
}

int ia_sec_capacity(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        struct ia_rpt_agg *imgs = calloc(r->nimg + 1, sizeof(*imgs));
        struct ia_rpt_agg *roots = calloc(r->scan.nroots + 1, sizeof(*roots));
        struct ia_rpt_agg total = {.name = (char *)"all"};
        struct ia_table *t = ia_sec_table(o, "capacity", "Capacity", cap_cols, NCOLS(cap_cols));
        int ret = -1;

        if (!imgs || !roots || NO_TABLE(o, t))
                goto out;
        o->dirs = calloc(r->nimg + 1, sizeof(*o->dirs));
        if (!o->dirs)
                goto out;
        ia_jw_open(&o->jw, '{');
        if (cap_images(r, o, t, imgs, roots, &total) < 0)
                goto out;
        cap_groups(r, o, t, roots);
        cap_totals(r, o, t, &total);
        o->total = total;
        o->total.name = NULL;
        o->have_capacity = true;
        cap_prom(r, o, imgs);
        ret = 0;
out:
        free(imgs);
        free(roots);
        return ret < 0 ? NOMEM(err) : 0;
}
