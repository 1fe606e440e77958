/*
 * The HTML rendering of `imgaudit report`: one self-contained page.
 *
 * Inline CSS and inline SVG charts only: no script, no font, no image from
 * anywhere (a Content-Security-Policy meta tag forbids them too), so the
 * page can be mailed, archived or opened offline.  Every name reaching the
 * page was escaped by ia_escape_name() and is HTML-quoted on top.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "sections.h"

static const char css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}"
    "h1{font-size:1.5em;margin:0 0 .2em}h2{border-bottom:2px solid #3a6ea5;padding-bottom:.2em;"
    "margin-top:2em}h3{font-size:1.05em;margin:1.2em 0 .4em}"
    ".meta{color:#555}.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}"
    ".card{border:1px solid #ccd;border-radius:6px;padding:.5em .9em;min-width:9em;"
    "background:#f6f8fb}.card .v{font-size:1.4em;font-weight:600}.card .k{color:#555;"
    "font-size:.85em}table.t{border-collapse:collapse;margin:.3em 0 1em;font-size:13px}"
    "table.t th,table.t td{border:1px solid #dde;padding:2px 8px;text-align:left;"
    "white-space:nowrap}table.t th{background:#eef2f7}table.t td.n,table.t th.n{text-align:right;"
    "font-variant-numeric:tabular-nums}td.none{color:#777;font-style:italic}"
    ".note{color:#444;font-style:italic}svg{display:block;margin:.5em 0}"
    "svg text{font:12px system-ui,sans-serif;fill:#222}";

static void text(struct ia_rbuf *b, const char *s)
{
        ia_html_text(b, s ? s : "");
}

static void card(struct ia_rbuf *b, const char *id, const char *label, const char *value,
                 const char *exact)
{
        ia_rbuf_addf(b, "<div class=\"card\" id=\"k-%s\"", id);
        if (exact)
                ia_rbuf_addf(b, " title=\"%s\" data-value=\"%s\"", exact, exact);
        ia_rbuf_adds(b, "><div class=\"v\">");
        text(b, value);
        ia_rbuf_adds(b, "</div><div class=\"k\">");
        text(b, label);
        ia_rbuf_adds(b, "</div></div>\n");
}

static void card_bytes(struct ia_rbuf *b, const char *id, const char *label, uint64_t v)
{
        char h[32], e[32];

        ia_iec(h, sizeof(h), v);
        snprintf(e, sizeof(e), "%" PRIu64, v);
        card(b, id, label, h, e);
}

static void card_count(struct ia_rbuf *b, const char *id, const char *label, uint64_t v)
{
        char e[32];

        snprintf(e, sizeof(e), "%" PRIu64, v);
        card(b, id, label, e, e);
}

struct bar {
        const char *label;
        uint64_t a, b; /* two stacked parts */
};

/* Horizontal stacked bars, scaled to the largest a + b. */
static void bars(struct ia_rbuf *b, const char *id, const char *title, const struct bar *v,
                 size_t n, const char *la, const char *lb)
{
        const double lw = 330, bw = 420;
        uint64_t max = 1;
        double h = 22.0 * (double)n + 30;
        char s1[32], s2[32];

        for (size_t i = 0; i < n; i++)
                if (v[i].a + v[i].b > max)
                        max = v[i].a + v[i].b;
        ia_rbuf_addf(b,
                     "<svg id=\"%s\" role=\"img\" width=\"%.0f\" height=\"%.0f\" "
                     "xmlns=\"http://www.w3.org/2000/svg\"><title>",
                     id, lw + bw + 120, h);
        text(b, title);
        ia_rbuf_adds(b, "</title>\n");
        for (size_t i = 0; i < n; i++) {
                double y = 22.0 * (double)i;
                double wa = bw * (double)v[i].a / (double)max;
                double wb = bw * (double)v[i].b / (double)max;

                ia_iec(s1, sizeof(s1), v[i].a);
                ia_rbuf_addf(b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">", lw - 6, y + 15);
                text(b, v[i].label);
                ia_rbuf_addf(b,
                             "</text><rect x=\"%.0f\" y=\"%.0f\" width=\"%.1f\" height=\"16\" "
                             "fill=\"#3a6ea5\"><title>%s: %s</title></rect>",
                             lw, y + 3, wa, la, s1);
                if (lb) {
                        ia_iec(s2, sizeof(s2), v[i].b);
                        ia_rbuf_addf(b,
                                     "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"16\" "
                                     "fill=\"#d9534f\"><title>%s: %s</title></rect>",
                                     lw + wa, y + 3, wb, lb, s2);
                        ia_rbuf_addf(b, "<text x=\"%.1f\" y=\"%.0f\">%s / %s</text>\n",
                                     lw + wa + wb + 6, y + 15, s1, s2);
                } else {
                        ia_rbuf_addf(b, "<text x=\"%.1f\" y=\"%.0f\">%s</text>\n", lw + wa + 6,
                                     y + 15, s1);
                }
        }
        ia_rbuf_addf(b, "<text x=\"%.0f\" y=\"%.0f\">", lw, 22.0 * (double)n + 20);
        ia_rbuf_addf(b, "&#9632; %s", la);
        if (lb)
                ia_rbuf_addf(b, "  <tspan fill=\"#d9534f\">&#9632;</tspan> %s", lb);
        ia_rbuf_adds(b, "</text></svg>\n");
}

static int cmp_bar(const void *x, const void *y)
{
        const struct bar *a = x, *b = y;
        uint64_t sa = a->a + a->b, sb = b->a + b->b;

        if (sa != sb)
                return sa > sb ? -1 : 1;
        return strcmp(a->label, b->label);
}

static void chart_dirs(const struct ia_rpt_out *o, struct ia_rbuf *b)
{
        struct bar *v = calloc(o->ndirs + 1, sizeof(*v));
        size_t n = o->ndirs;

        if (!v) {
                b->nomem = true;
                return;
        }
        for (size_t i = 0; i < n; i++)
                v[i] = (struct bar){o->dirs[i].name, o->dirs[i].allocated, 0};
        qsort(v, n, sizeof(*v), cmp_bar);
        if (n > 20)
                n = 20;
        ia_rbuf_adds(b, "<h3>Bytes allocated on disk per directory</h3>\n");
        bars(b, "chart-capacity", "bytes allocated on disk per directory", v, n,
             "allocated on disk", NULL);
        free(v);
}

static void chart_bases(const struct ia_rpt *r, struct ia_rbuf *b)
{
        struct bar *v = calloc(r->nimg + 1, sizeof(*v));
        size_t n = 0;

        if (!v) {
                b->nomem = true;
                return;
        }
        for (size_t i = 0; i < r->nimg; i++)
                if (r->img[i].sharing_done)
                        v[n++] = (struct bar){r->img[i].name, r->img[i].visible, r->img[i].dead};
        qsort(v, n, sizeof(*v), cmp_bar);
        if (n > 20)
                n = 20;
        if (n) {
                ia_rbuf_adds(b, "<h3>Own data of each backing image</h3>\n");
                bars(b, "chart-sharing", "own data of each backing image: visible and dead", v, n,
                     "still visible through a child", "dead (shadowed in every child)");
        }
        free(v);
}

static void chart_history(const struct ia_rpt *r, struct ia_rbuf *b)
{
        const double w = 640, h = 220, l = 90, top = 15, bot = 40;
        uint64_t max = 1;
        char s[32];

        if (r->nhist < 1)
                return;
        for (size_t i = 0; i < r->nhist; i++)
                if (r->hist[i].allocated > max)
                        max = r->hist[i].allocated;
        ia_rbuf_adds(b, "<h3>Bytes allocated on disk over time</h3>\n");
        ia_rbuf_addf(b,
                     "<svg id=\"chart-trend\" role=\"img\" width=\"%.0f\" height=\"%.0f\" "
                     "xmlns=\"http://www.w3.org/2000/svg\"><title>bytes allocated on disk per "
                     "scan</title>\n",
                     w + l + 20, h);
        ia_rbuf_addf(b,
                     "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#888\"/>"
                     "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#888\"/>\n",
                     l, top, l, h - bot, l, h - bot, l + w, h - bot);
        ia_iec(s, sizeof(s), max);
        ia_rbuf_addf(b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">%s</text>", l - 4, top + 4,
                     s);
        ia_rbuf_addf(b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">0 B</text>\n", l - 4,
                     h - bot);
        ia_rbuf_adds(b, "<polyline fill=\"none\" stroke=\"#3a6ea5\" stroke-width=\"2\" points=\"");
        for (size_t i = 0; i < r->nhist; i++) {
                double x = l + (r->nhist > 1 ? w * (double)i / (double)(r->nhist - 1) : w / 2);
                double y = h - bot - (h - bot - top) * (double)r->hist[i].allocated / (double)max;
                ia_rbuf_addf(b, "%.1f,%.1f ", x, y);
        }
        ia_rbuf_adds(b, "\"/>\n");
        for (size_t i = 0; i < r->nhist; i++) {
                double x = l + (r->nhist > 1 ? w * (double)i / (double)(r->nhist - 1) : w / 2);
                double y = h - bot - (h - bot - top) * (double)r->hist[i].allocated / (double)max;

                ia_iec(s, sizeof(s), r->hist[i].allocated);
                ia_rbuf_addf(b,
                             "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#3a6ea5\"><title>scan "
                             "%" PRId64 ": %s</title></circle>"
                             "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%" PRId64
                             "</text>\n",
                             x, y, r->hist[i].id, s, x, h - bot + 16, r->hist[i].id);
        }
        ia_rbuf_addf(b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">scan</text></svg>\n",
                     l + w / 2, h - 4);
}

static const char *const titles[IA_SEC_COUNT] = {
    [IA_SEC_SUMMARY] = "Summary", [IA_SEC_CAPACITY] = "Capacity", [IA_SEC_SHARING] = "Sharing",
    [IA_SEC_CHAINS] = "Chains",   [IA_SEC_ORPHANS] = "Orphans",   [IA_SEC_FINDINGS] = "Findings",
    [IA_SEC_TREND] = "Trend",
};

void ia_html_render(const struct ia_rpt *r, const struct ia_rpt_out *o,
                    const bool sections[IA_SEC_COUNT], struct ia_rbuf *b)
{
        const struct ia_rpt_scan *s = &r->scan;
        char buf[64];
        uint64_t virt = 0, alloc = 0;

        for (size_t i = 0; i < r->nimg; i++) {
                virt += r->img[i].virtual_size;
                alloc += r->img[i].allocated;
        }
        ia_rbuf_adds(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
                        "'none'; style-src 'unsafe-inline'\">\n"
                        "<meta name=\"viewport\" content=\"width=device-width\">\n");
        ia_rbuf_addf(b, "<title>imgaudit report, scan %" PRId64 "</title>\n<style>%s</style>\n",
                     s->id, css);
        ia_rbuf_adds(b, "</head><body>\n<h1>imgaudit report</h1>\n<p class=\"meta\">");
        ia_rbuf_addf(b, "scan %" PRId64 " (%s), started ", s->id, s->status);
        text(b, s->started_at);
        ia_rbuf_adds(b, ", finished ");
        text(b, s->finished_at ? s->finished_at : "-");
        ia_rbuf_adds(b, " on ");
        text(b, s->host);
        ia_rbuf_adds(b, "; imgaudit " IMGAUDIT_VERSION "</p>\n<div class=\"cards\">\n");
        card_count(b, "images", "images", r->nimg);
        card_bytes(b, "virtual", "virtual size", virt);
        card_bytes(b, "allocated", "allocated on disk", alloc);
        if (o->have_capacity && o->total.allocated) {
                snprintf(buf, sizeof(buf), "%.2f",
                         (double)o->total.leaf_virtual / (double)o->total.allocated);
                card(b, "overcommit", "overcommit ratio", buf, buf);
        }
        card_count(b, "findings", "findings", r->nfindings);
        card_count(b, "broken", "broken links", r->nlinks);
        if (sections[IA_SEC_ORPHANS])
                card_count(b, "orphans", "orphans", o->norphans);
        ia_rbuf_adds(b, "</div>\n");
        for (int k = 0; k < IA_SEC_COUNT; k++) {
                const struct ia_table *t = o->sec_first[k];

                if (!sections[k])
                        continue;
                ia_rbuf_addf(b, "<section id=\"s-%s\"><h2>%s</h2>\n", ia_section_names[k],
                             titles[k]);
                if (k == IA_SEC_CAPACITY && o->have_capacity)
                        chart_dirs(o, b);
                if (k == IA_SEC_SHARING && o->have_sharing)
                        chart_bases(r, b);
                if (k == IA_SEC_TREND && o->have_trend)
                        chart_history(r, b);
                for (size_t i = 0; i < o->sec_ntables[k] && t; i++, t = t->next)
                        ia_table_html(t, b);
                ia_rbuf_adds(b, "</section>\n");
        }
        ia_rbuf_adds(b, "</body></html>\n");
}
