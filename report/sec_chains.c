/*
 * The chains section: backing trees, the depth histogram, broken links.
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

static const char *link_state(const struct ia_rpt *r, size_t i)
{
        const struct ia_rpt_image *m = &r->img[i];

        if (m->parent >= 0)
                return "ok";
        if (!m->has_backing)
                return "";
        if (m->backing_ok)
                return "ok (outside the scan)";
        for (size_t k = 0; k < r->nlinks; k++)
                if (r->links[k].image == (long)i && strcmp(r->links[k].kind, "backing") == 0)
                        return r->links[k].status;
        return "unresolved";
}

static json_object *chain_node(const struct ia_rpt *r, struct ia_table *t, size_t i, unsigned depth)
{
        const struct ia_rpt_image *m = &r->img[i];
        json_object *e = json_object_new_object(), *ch = json_object_new_array();

        ia_table_row(t, depth);
        ia_table_text(t, m->name);
        ia_table_text(t, m->format);
        ia_table_text(t, m->status);
        ia_table_text(t, link_state(r, i));
        ia_table_int(t, m->chain_depth);
        ia_table_bytes(t, m->virtual_size);
        ia_table_bytes(t, m->allocated);
        ia_table_bytes(t, m->sp.own_data);
        jset(e, "name", jstr(m->name));
        jset(e, "format", jstr(m->format));
        jset(e, "status", jstr(m->status));
        jset(e, "link", jstr(link_state(r, i)));
        jset(e, "chain_depth", ji(m->chain_depth));
        jset(e, "allocated_bytes", ju(m->allocated));
        if (depth < 4096)
                for (size_t k = 0; k < m->nchildren; k++)
                        json_object_array_add(ch, chain_node(r, t, m->children[k], depth + 1));
        jset(e, "children", ch);
        return e;
}

int ia_sec_chains(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        static const struct ia_col cols[] = {
            {"image", "image", IA_COL_TEXT},
            {"format", "format", IA_COL_TEXT},
            {"status", "status", IA_COL_TEXT},
            {"backing_link", "link", IA_COL_TEXT},
            {"chain_depth", "depth", IA_COL_INT},
            {"virtual_bytes", "virtual", IA_COL_BYTES},
            {"allocated_bytes", "on disk", IA_COL_BYTES},
            {"own_data_bytes", "own data", IA_COL_BYTES},
        };
        static const struct ia_col hcols[] = {
            {"chain_depth", "depth", IA_COL_INT},
            {"images", "images", IA_COL_INT},
        };
        static const struct ia_col bcols[] = {
            {"image", "image", IA_COL_TEXT},   {"kind", "kind", IA_COL_TEXT},
            {"name", "name", IA_COL_TEXT},     {"target", "target", IA_COL_TEXT},
            {"status", "status", IA_COL_TEXT}, {"reason", "reason", IA_COL_TEXT},
        };
        struct ia_table *t = ia_sec_table(o, "chains", "Backing chains", cols, NCOLS(cols));
        struct ia_table *th =
            ia_sec_table(o, "chain_depths", "Chain depth histogram", hcols, NCOLS(hcols));
        struct ia_table *tb = ia_sec_table(o, "broken_links", "Broken links", bcols, NCOLS(bcols));
        struct ia_jw *w = &o->jw;
        json_object *jh;
        struct ia_rbuf *p = &o->prom;
        unsigned maxd = 0;
        uint64_t *hist;

        if (NO_TABLE(o, t) || NO_TABLE(o, th) || NO_TABLE(o, tb))
                return NOMEM(err);
        ia_jw_open(w, '{');
        ia_jw_key(w, "trees");
        ia_jw_open(w, '[');
        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];

                if (m->parent < 0 && (m->nchildren > 0 || m->has_backing))
                        ia_jw_value(w, chain_node(r, t, i, 0));
                if (m->chain_depth > maxd && m->chain_depth < 4096)
                        maxd = m->chain_depth;
        }
        ia_jw_close(w, ']');
        hist = calloc(maxd + 1, sizeof(*hist));
        jh = json_object_new_array();
        if (!hist || !jh) {
                free(hist);
                json_object_put(jh);
                return NOMEM(err);
        }
        for (size_t i = 0; i < r->nimg; i++)
                if (r->img[i].chain_depth <= maxd)
                        hist[r->img[i].chain_depth]++;
        ia_prom_head(p, "imgaudit_chain_depth_images", "gauge", "Images by backing chain depth.");
        for (unsigned d = 0; d <= maxd && r->nimg; d++) {
                json_object *e = json_object_new_object();
                char lbl[16];

                jset(e, "depth", ji(d));
                jset(e, "images", ju(hist[d]));
                json_object_array_add(jh, e);
                ia_table_row(th, 0);
                ia_table_int(th, d);
                ia_table_int(th, (int64_t)hist[d]);
                snprintf(lbl, sizeof(lbl), "%u", d);
                ia_prom_u(p, "imgaudit_chain_depth_images", "depth", lbl, hist[d]);
        }
        free(hist);
        ia_jw_kv(w, "depth_histogram", jh);
        ia_jw_key(w, "broken_links");
        ia_jw_open(w, '[');
        for (size_t k = 0; k < r->nlinks; k++) {
                const struct ia_rpt_link *l = &r->links[k];
                json_object *e = json_object_new_object();

                ia_table_row(tb, 0);
                ia_table_text(tb, l->holder);
                ia_table_text(tb, l->kind);
                ia_table_text(tb, l->name);
                ia_table_text(tb, l->target);
                ia_table_text(tb, l->status);
                ia_table_text(tb, l->error);
                jset(e, "image", jstr(l->holder));
                jset(e, "kind", jstr(l->kind));
                jset(e, "name", jstr(l->name));
                jset(e, "target", jstr(l->target));
                jset(e, "status", jstr(l->status));
                jset(e, "reason", jstr(l->error));
                ia_jw_value(w, e);
        }
        ia_jw_close(w, ']');
        ia_jw_close(w, '}');
        o->nbroken = r->nlinks;
        return 0;
}
