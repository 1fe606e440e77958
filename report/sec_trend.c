/*
 * The trend section: growth since an earlier scan, top growers, history.
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

struct pkey {
        const char *path, *member;
        size_t path_len, member_len;
        size_t idx;
        bool matched;
};

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
        int c = memcmp(a, b, an < bn ? an : bn);

        return c ? c : (an < bn ? -1 : an > bn);
}

static int cmp_pkey(const void *a, const void *b)
{
        const struct pkey *x = a, *y = b;
        int c = cmp_bytes(x->path, x->path_len, y->path, y->path_len);

        if (c)
                return c;
        if (!x->member || !y->member)
                return (x->member != NULL) - (y->member != NULL);
        return cmp_bytes(x->member, x->member_len, y->member, y->member_len);
}

struct growth {
        char *name;
        bool has_before, has_after;
        uint64_t before, after;
};

static int64_t delta(uint64_t before, uint64_t after)
{
        return after >= before ? (int64_t)(after - before) : -(int64_t)(before - after);
}

static const char *change_of(const struct growth *g)
{
        return !g->has_before         ? "new"
               : !g->has_after        ? "removed"
               : g->after > g->before ? "grown"
               : g->after < g->before ? "shrunk"
                                      : "same";
}

/* One row of growth in the table, only when it changed (or unchanged is
 * NULL), else counted in *unchanged. */
static void trend_row(struct ia_table *t, const char *scope, const struct growth *g,
                      size_t *unchanged)
{
        if (unchanged && g->has_before && g->has_after && g->before == g->after) {
                (*unchanged)++;
                return;
        }
        ia_table_row(t, 0);
        ia_table_text(t, scope);
        ia_table_text(t, g->name);
        ia_table_text(t, change_of(g));
        if (g->has_before)
                ia_table_bytes(t, g->before);
        else
                ia_table_null(t);
        if (g->has_after)
                ia_table_bytes(t, g->after);
        else
                ia_table_null(t);
        ia_table_delta(t, delta(g->before, g->after));
}

/* The same row in JSON: always. */
static void trend_json(struct ia_jw *w, const struct growth *g)
{
        json_object *e;

        if (!w->out)
                return;
        e = json_object_new_object();
        jset(e, "name", jstr(g->name));
        jset(e, "change", jstr(change_of(g)));
        jset(e, "before_bytes", g->has_before ? ju(g->before) : NULL);
        jset(e, "after_bytes", g->has_after ? ju(g->after) : NULL);
        jset(e, "delta_bytes", ji(delta(g->before, g->after)));
        ia_jw_value(w, e);
}

static int cmp_growth_name(const void *a, const void *b)
{
        return strcmp(((const struct growth *)a)->name, ((const struct growth *)b)->name);
}

static int cmp_growth_delta(const void *a, const void *b)
{
        const struct growth *x = a, *y = b;
        int64_t dx = delta(x->before, x->after), dy = delta(y->before, y->after);

        if (dx != dy)
                return dx > dy ? -1 : 1;
        return strcmp(x->name, y->name);
}

static struct growth *dir_slot(struct growth *v, size_t *n, const char *name)
{
        for (size_t i = 0; i < *n; i++)
                if (strcmp(v[i].name, name) == 0)
                        return &v[i];
        v[*n].name = strdup(name);
        if (!v[*n].name)
                return NULL;
        return &v[(*n)++];
}

/* The growth of base b and all its descendants (keys: the earlier scan, sorted). */
static int base_growth(const struct ia_rpt *r, const struct pkey *keys, size_t b, struct growth *g)
{
        struct ia_walk *d;
        size_t nd;

        *g = (struct growth){.name = r->img[b].name, .has_after = true};
        d = ia_descendants(r, b, &nd);
        if (!d)
                return -1;
        for (size_t k = 0; k <= nd; k++) {
                const struct ia_rpt_image *m = &r->img[k < nd ? d[k].img : b];
                struct pkey key = {m->path, m->member, m->path_len, m->member_len, 0, false};
                struct pkey *hit = bsearch(&key, keys, r->nprev, sizeof(*keys), cmp_pkey);

                g->after += m->allocated;
                if (hit) {
                        g->has_before = true;
                        g->before += r->prev[hit->idx].allocated;
                }
        }
        free(d);
        return 0;
}

/* The trend's JSON up to its top growers: the scans, the total, then images, bases,
 * directories (-1: out of memory). */
static int trend_doc(const struct ia_rpt *r, struct ia_jw *w, const struct growth *tot,
                     const struct growth *imgs, size_t nimgs, const struct growth *dirs,
                     size_t ndirs, const struct pkey *keys)
{
        json_object *x;

        /* JSON: the scans and the total first, then images, bases, directories */
        x = json_object_new_object();
        jset(x, "id", ji(r->scan.id));
        jset(x, "started_at", jstr(r->scan.started_at));
        ia_jw_open(w, '{');
        ia_jw_kv(w, "to_scan", x);
        if (r->has_prev) {
                x = json_object_new_object();
                jset(x, "id", ji(r->prev_scan.id));
                jset(x, "started_at", jstr(r->prev_scan.started_at));
                ia_jw_kv(w, "from_scan", x);
                x = json_object_new_object();
                jset(x, "before_bytes", ju(tot->before));
                jset(x, "after_bytes", ju(tot->after));
                jset(x, "delta_bytes", ji(delta(tot->before, tot->after)));
                ia_jw_kv(w, "total", x);
        } else {
                ia_jw_kv(w, "from_scan", NULL);
                ia_jw_kv(w, "total", NULL);
        }
        ia_jw_key(w, "images");
        ia_jw_open(w, '[');
        for (size_t i = 0; r->has_prev && i < nimgs; i++)
                trend_json(w, &imgs[i]);
        ia_jw_close(w, ']');
        ia_jw_key(w, "bases");
        ia_jw_open(w, '[');
        for (size_t b = 0; r->has_prev && w->out && b < r->nimg; b++) {
                struct growth g;

                if (r->img[b].nchildren == 0)
                        continue;
                if (base_growth(r, keys, b, &g) < 0)
                        return -1;
                trend_json(w, &g);
        }
        ia_jw_close(w, ']');
        ia_jw_key(w, "directories");
        ia_jw_open(w, '[');
        for (size_t i = 0; r->has_prev && i < ndirs; i++)
                trend_json(w, &dirs[i]);
        ia_jw_close(w, ']');
        return 0;
}

int ia_sec_trend(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        static const struct ia_col cols[] = {
            {"scope", "scope", IA_COL_TEXT},        {"name", "name", IA_COL_TEXT},
            {"change", "change", IA_COL_TEXT},      {"before_bytes", "before", IA_COL_BYTES},
            {"after_bytes", "after", IA_COL_BYTES}, {"delta_bytes", "growth", IA_COL_DELTA},
        };
        static const struct ia_col tcols[] = {
            {"rank", "rank", IA_COL_INT},
            {"image", "image", IA_COL_TEXT},
            {"delta_bytes", "growth", IA_COL_DELTA},
            {"after_bytes", "now", IA_COL_BYTES},
        };
        static const struct ia_col hcols[] = {
            {"scan", "scan", IA_COL_INT},
            {"started_at", "started", IA_COL_TEXT},
            {"images", "images", IA_COL_INT},
            {"virtual_bytes", "virtual", IA_COL_BYTES},
            {"allocated_bytes", "on disk", IA_COL_BYTES},
        };
        struct ia_table *t =
            ia_sec_table(o, "trend", "Growth (bytes allocated on disk)", cols, NCOLS(cols));
        struct ia_table *tt = ia_sec_table(o, "top_growers", "Top growers", tcols, NCOLS(tcols));
        struct ia_table *th = ia_sec_table(o, "history", "Scan history", hcols, NCOLS(hcols));
        struct ia_jw *w = &o->jw;
        struct pkey *keys = NULL;
        struct growth *imgs = NULL, *dirs = NULL, tot = {.name = (char *)"all"};
        size_t nimgs = 0, ndirs = 0, unchanged = 0;
        struct ia_rbuf *p = &o->prom;
        int ret = -1;
        char note[192];

        if (NO_TABLE(o, t) || NO_TABLE(o, tt) || NO_TABLE(o, th))
                goto nomem;
        keys = calloc(r->nprev + 1, sizeof(*keys));
        imgs = calloc(r->nimg + r->nprev + 1, sizeof(*imgs));
        dirs = calloc(r->nimg + r->nprev + 1, sizeof(*dirs));
        if (!keys || !imgs || !dirs)
                goto nomem;
        for (size_t i = 0; i < r->nprev; i++)
                keys[i] = (struct pkey){r->prev[i].path,
                                        r->prev[i].member,
                                        r->prev[i].path_len,
                                        r->prev[i].member_len,
                                        i,
                                        false};
        qsort(keys, r->nprev, sizeof(*keys), cmp_pkey);
        tot.has_before = r->has_prev;
        tot.has_after = true;
        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                struct pkey k = {m->path, m->member, m->path_len, m->member_len, 0, false};
                struct pkey *hit = bsearch(&k, keys, r->nprev, sizeof(*keys), cmp_pkey);
                struct growth *g = &imgs[nimgs++], *d;

                g->name = strdup(m->name);
                if (!g->name)
                        goto nomem;
                g->has_after = true;
                g->after = m->allocated;
                if (hit) {
                        hit->matched = true;
                        g->has_before = true;
                        g->before = r->prev[hit->idx].allocated;
                }
                d = dir_slot(dirs, &ndirs, m->dir);
                if (!d)
                        goto nomem;
                d->has_after = true;
                d->after += m->allocated;
                if (hit) {
                        d->has_before = true;
                        d->before += g->before;
                }
                tot.after += m->allocated;
        }
        for (size_t k = 0; k < r->nprev; k++) {
                const struct ia_rpt_prev *pv = &r->prev[keys[k].idx];
                struct growth *g, *d;

                tot.before += pv->allocated;
                d = dir_slot(dirs, &ndirs, pv->dir);
                if (!d)
                        goto nomem;
                if (keys[k].matched)
                        continue;
                d->has_before = true;
                d->before += pv->allocated;
                g = &imgs[nimgs++];
                g->name = strdup(pv->name);
                if (!g->name)
                        goto nomem;
                g->has_before = true;
                g->before = pv->allocated;
        }
        qsort(imgs, nimgs, sizeof(*imgs), cmp_growth_name);
        qsort(dirs, ndirs, sizeof(*dirs), cmp_growth_name);
        if (trend_doc(r, w, &tot, imgs, nimgs, dirs, ndirs, keys) < 0)
                goto nomem;
        ia_jw_key(w, "top_growers");
        ia_jw_open(w, '[');
        if (r->has_prev) {
                /* the table: total, bases, directories, images */
                trend_row(t, "total", &tot, NULL);
                for (size_t b = 0; t && b < r->nimg; b++) {
                        struct growth g;

                        if (r->img[b].nchildren == 0)
                                continue;
                        if (base_growth(r, keys, b, &g) < 0)
                                goto nomem;
                        trend_row(t, "base", &g, &unchanged);
                }
                for (size_t i = 0; i < ndirs; i++)
                        trend_row(t, "directory", &dirs[i], &unchanged);
                for (size_t i = 0; i < nimgs; i++)
                        trend_row(t, "image", &imgs[i], &unchanged);
                /* top growers: the ten largest positive deltas */
                qsort(imgs, nimgs, sizeof(*imgs), cmp_growth_delta);
                for (size_t i = 0; i < nimgs && i < 10; i++) {
                        int64_t dl = delta(imgs[i].before, imgs[i].after);
                        json_object *e;

                        if (dl <= 0)
                                break;
                        ia_table_row(tt, 0);
                        ia_table_int(tt, (int64_t)i + 1);
                        ia_table_text(tt, imgs[i].name);
                        ia_table_delta(tt, dl);
                        ia_table_bytes(tt, imgs[i].after);
                        e = json_object_new_object();
                        jset(e, "name", jstr(imgs[i].name));
                        jset(e, "delta_bytes", ji(dl));
                        jset(e, "after_bytes", ju(imgs[i].after));
                        ia_jw_value(w, e);
                }
                snprintf(note, sizeof(note),
                         "from scan %" PRId64 " (%s) to scan %" PRId64
                         " (%s); %zu unchanged rows not listed",
                         r->prev_scan.id, r->prev_scan.started_at, r->scan.id, r->scan.started_at,
                         unchanged);
        } else {
                snprintf(note, sizeof(note),
                         "no earlier complete scan to compare scan %" PRId64 " with", r->scan.id);
        }
        ia_jw_close(w, ']');
        ia_table_note(t, note);
        ia_jw_key(w, "history");
        ia_jw_open(w, '[');
        for (size_t i = 0; i < r->nhist; i++) {
                const struct ia_rpt_hist *h = &r->hist[i];
                json_object *e = json_object_new_object();

                ia_table_row(th, 0);
                ia_table_int(th, h->id);
                ia_table_text(th, h->started_at);
                ia_table_int(th, (int64_t)h->images);
                ia_table_bytes(th, h->virtual_size);
                ia_table_bytes(th, h->allocated);
                jset(e, "scan", ji(h->id));
                jset(e, "started_at", jstr(h->started_at));
                jset(e, "images", ju(h->images));
                jset(e, "virtual_bytes", ju(h->virtual_size));
                jset(e, "allocated_bytes", ju(h->allocated));
                ia_jw_value(w, e);
        }
        ia_jw_close(w, ']');
        ia_jw_close(w, '}');
        o->have_trend = true;
        if (r->has_prev) {
                ia_prom_head(p, "imgaudit_trend_from_scan", "gauge",
                             "The earlier scan growth is measured from.");
                ia_rbuf_addf(p, "imgaudit_trend_from_scan %" PRId64 "\n", r->prev_scan.id);
                ia_prom_head(p, "imgaudit_store_growth_bytes", "gauge",
                             "Growth of bytes allocated on disk since the earlier scan.");
                ia_rbuf_addf(p, "imgaudit_store_growth_bytes %" PRId64 "\n",
                             delta(tot.before, tot.after));
                if (o->prom_per_image)
                        ia_prom_head(p, "imgaudit_directory_growth_bytes", "gauge",
                                     "Growth of bytes allocated on disk per directory.");
                for (size_t i = 0; o->prom_per_image && i < ndirs; i++) {
                        ia_rbuf_adds(p, "imgaudit_directory_growth_bytes{directory=\"");
                        ia_prom_label(p, dirs[i].name);
                        ia_rbuf_addf(p, "\"} %" PRId64 "\n", delta(dirs[i].before, dirs[i].after));
                }
        }
        ret = 0;
        goto out;
nomem:
        NOMEM(err);
out:
        for (size_t i = 0; imgs && i < nimgs; i++)
                free(imgs[i].name);
        for (size_t i = 0; dirs && i < ndirs; i++)
                free(dirs[i].name);
        free(imgs);
        free(dirs);
        free(keys);
        return ret;
}
