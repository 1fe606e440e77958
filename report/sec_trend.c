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
        const char *name; /* borrowed from the loaded report */
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

/* Sort v by name and fold entries of one name into one (n: its new length). */
static size_t fold_by_name(struct growth *v, size_t n)
{
        size_t out = 0;

        qsort(v, n, sizeof(*v), cmp_growth_name);
        for (size_t i = 0; i < n; i++) {
                struct growth *d = out ? &v[out - 1] : NULL;

                if (d && strcmp(d->name, v[i].name) == 0) {
                        d->has_before |= v[i].has_before;
                        d->has_after |= v[i].has_after;
                        d->before += v[i].before;
                        d->after += v[i].after;
                } else {
                        v[out++] = v[i];
                }
        }
        return out;
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

/* What the trend compares: every image and directory now and in the earlier
 * scan, and the total. */
struct trend {
        struct pkey *keys; /* the earlier scan's images, sorted */
        struct growth *imgs, *dirs, tot;
        size_t nimgs, ndirs;
};

/* Match every image with the earlier scan and add up directories and the total
 * (-1: out of memory). */
static int trend_collect(const struct ia_rpt *r, struct trend *tr)
{
        size_t cap = r->nimg + r->nprev + 1;

        tr->tot = (struct growth){.name = "all", .has_before = r->has_prev, .has_after = true};
        tr->keys = calloc(r->nprev + 1, sizeof(*tr->keys));
        tr->imgs = calloc(cap, sizeof(*tr->imgs));
        tr->dirs = calloc(cap, sizeof(*tr->dirs));
        if (!tr->keys || !tr->imgs || !tr->dirs)
                return -1;
        for (size_t i = 0; i < r->nprev; i++)
                tr->keys[i] = (struct pkey){r->prev[i].path,
                                            r->prev[i].member,
                                            r->prev[i].path_len,
                                            r->prev[i].member_len,
                                            i,
                                            false};
        qsort(tr->keys, r->nprev, sizeof(*tr->keys), cmp_pkey);
        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                struct pkey k = {m->path, m->member, m->path_len, m->member_len, 0, false};
                struct pkey *hit = bsearch(&k, tr->keys, r->nprev, sizeof(*tr->keys), cmp_pkey);
                struct growth *g = &tr->imgs[tr->nimgs++];

                *g = (struct growth){.name = m->name, .has_after = true, .after = m->allocated};
                if (hit) {
                        hit->matched = true;
                        g->has_before = true;
                        g->before = r->prev[hit->idx].allocated;
                }
                tr->dirs[tr->ndirs] = *g;
                tr->dirs[tr->ndirs++].name = m->dir;
                tr->tot.after += m->allocated;
        }
        for (size_t k = 0; k < r->nprev; k++) {
                const struct ia_rpt_prev *pv = &r->prev[tr->keys[k].idx];

                tr->tot.before += pv->allocated;
                if (tr->keys[k].matched) {
                        /* its directory was counted with the image now */
                        continue;
                }
                tr->imgs[tr->nimgs++] =
                    (struct growth){.name = pv->name, .has_before = true, .before = pv->allocated};
                tr->dirs[tr->ndirs++] =
                    (struct growth){.name = pv->dir, .has_before = true, .before = pv->allocated};
        }
        qsort(tr->imgs, tr->nimgs, sizeof(*tr->imgs), cmp_growth_name);
        tr->ndirs = fold_by_name(tr->dirs, tr->ndirs);
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

/* The table's rows (total, bases, directories, images: changed ones only) and
 * the ten largest positive growths, in the table and the JSON (-1: out of memory). */
static int trend_rows(const struct ia_rpt *r, struct ia_rpt_out *o, struct trend *tr,
                      struct ia_table *t, struct ia_table *tt, size_t *unchanged)
{
        trend_row(t, "total", &tr->tot, NULL);
        for (size_t b = 0; t && b < r->nimg; b++) {
                struct growth g;

                if (r->img[b].nchildren == 0)
                        continue;
                if (base_growth(r, tr->keys, b, &g) < 0)
                        return -1;
                trend_row(t, "base", &g, unchanged);
        }
        for (size_t i = 0; i < tr->ndirs; i++)
                trend_row(t, "directory", &tr->dirs[i], unchanged);
        for (size_t i = 0; i < tr->nimgs; i++)
                trend_row(t, "image", &tr->imgs[i], unchanged);
        qsort(tr->imgs, tr->nimgs, sizeof(*tr->imgs), cmp_growth_delta);
        for (size_t i = 0; i < tr->nimgs && i < 10; i++) {
                const struct growth *g = &tr->imgs[i];
                int64_t dl = delta(g->before, g->after);
                json_object *e;

                if (dl <= 0)
                        break;
                ia_table_row(tt, 0);
                ia_table_int(tt, (int64_t)i + 1);
                ia_table_text(tt, g->name);
                ia_table_delta(tt, dl);
                ia_table_bytes(tt, g->after);
                e = json_object_new_object();
                jset(e, "name", jstr(g->name));
                jset(e, "delta_bytes", ji(dl));
                jset(e, "after_bytes", ju(g->after));
                ia_jw_value(&o->jw, e);
        }
        return 0;
}

/* Every scan's figures, oldest first. */
static void trend_history(const struct ia_rpt *r, struct ia_rpt_out *o, struct ia_table *th)
{
        struct ia_jw *w = &o->jw;

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
}

static void trend_prom(const struct ia_rpt *r, struct ia_rpt_out *o, const struct trend *tr)
{
        struct ia_rbuf *p = &o->prom;

        if (!r->has_prev)
                return;
        ia_prom_head(p, "imgaudit_trend_from_scan", "gauge",
                     "The earlier scan growth is measured from.");
        ia_rbuf_addf(p, "imgaudit_trend_from_scan %" PRId64 "\n", r->prev_scan.id);
        ia_prom_head(p, "imgaudit_store_growth_bytes", "gauge",
                     "Growth of bytes allocated on disk since the earlier scan.");
        ia_rbuf_addf(p, "imgaudit_store_growth_bytes %" PRId64 "\n",
                     delta(tr->tot.before, tr->tot.after));
        if (!o->prom_per_image)
                return;
        ia_prom_head(p, "imgaudit_directory_growth_bytes", "gauge",
                     "Growth of bytes allocated on disk per directory.");
        for (size_t i = 0; i < tr->ndirs; i++) {
                ia_rbuf_adds(p, "imgaudit_directory_growth_bytes{directory=\"");
                ia_prom_label(p, tr->dirs[i].name);
                ia_rbuf_addf(p, "\"} %" PRId64 "\n", delta(tr->dirs[i].before, tr->dirs[i].after));
        }
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
        struct trend tr = {0};
        size_t unchanged = 0;
        int ret = -1;
        char note[192];

        if (NO_TABLE(o, t) || NO_TABLE(o, tt) || NO_TABLE(o, th) || trend_collect(r, &tr) < 0)
                goto nomem;
        if (trend_doc(r, w, &tr.tot, tr.imgs, tr.nimgs, tr.dirs, tr.ndirs, tr.keys) < 0)
                goto nomem;
        ia_jw_key(w, "top_growers");
        ia_jw_open(w, '[');
        if (r->has_prev) {
                if (trend_rows(r, o, &tr, t, tt, &unchanged) < 0)
                        goto nomem;
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
        trend_history(r, o, th);
        ia_jw_close(w, '}');
        o->have_trend = true;
        trend_prom(r, o, &tr);
        ret = 0;
        goto out;
nomem:
        NOMEM(err);
out:
        free(tr.imgs);
        free(tr.dirs);
        free(tr.keys);
        return ret;
}
