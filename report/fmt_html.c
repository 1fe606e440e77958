/*
 * The HTML rendering of `imgaudit report`: one self-contained page.
 *
 * Inline CSS and inline SVG charts only: no script, no font, no image from
 * anywhere (a Content-Security-Policy meta tag forbids them too), so the
 * page can be mailed, archived or opened offline.  Every name reaching the
 * page was escaped by ia_escape_name() and is HTML-quoted on top.
 *
 * Read in the morning on a laptop or a wide screen: a navigation bar and
 * one anchor per section, wide tables scroll inside their own box (never
 * the page), paths relative to the scan root, chart labels sized to fit
 * their SVG, dates on the trend axis, legends drawn in the marks' colours.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "sections.h"
#include "banned.h"

static const char css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5em 1.5em;color:#222;background:#fff}"
    "h1{font-size:1.5em;margin:.6em 0 .2em}h2{border-bottom:2px solid #3a6ea5;padding-bottom:.2em;"
    "margin-top:1.6em}h3{font-size:1.05em;margin:1.2em 0 .4em}h2 a,h3 a{color:inherit;"
    "text-decoration:none}"
    "nav.toc{position:sticky;top:0;z-index:1;background:#fff;border-bottom:1px solid #ccd;"
    "padding:.4em 0;display:flex;flex-wrap:wrap;gap:.3em 1.2em}nav.toc a{color:#3a6ea5;"
    "text-decoration:none;font-weight:600}section{scroll-margin-top:2.5em}"
    ".meta{color:#555}.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}"
    ".card{border:1px solid #ccd;border-radius:6px;padding:.5em .9em;min-width:9em;"
    "background:#f6f8fb}.card .v{font-size:1.4em;font-weight:600}.card .k{color:#555;"
    "font-size:.85em}.tw{overflow-x:auto;max-width:100%}"
    "table.t{border-collapse:collapse;margin:.3em 0 1em;font-size:13px}"
    "table.t th,table.t td{border:1px solid #dde;padding:2px 8px;text-align:left;"
    "white-space:nowrap}table.t td.w{white-space:normal;min-width:24em;max-width:48em}"
    "table.t th{background:#eef2f7}"
    "table.t td.n,table.t th.n{text-align:right;"
    "font-variant-numeric:tabular-nums}td.none{color:#777;font-style:italic}"
    ".note{color:#444;font-style:italic}svg{display:block;margin:.5em 0}"
    "svg text{font:12px system-ui,sans-serif;fill:#222}";

/* Colours of the chart marks; legends draw their swatches with the same ones. */
#define C_A "#3a6ea5"
#define C_B "#d9534f"

/* Average advance of a character at 12px (a generous estimate: labels must fit). */
#define CHAR_W 7.4
/* Labels longer than this are cut at the start (the end of a path names it). */
#define LABEL_MAX 44

static void text(struct ia_rbuf *b, const char *s)
{
        ia_html_text(b, s ? s : "");
}

/* Characters (not bytes) of UTF-8 s. */
static size_t nchars(const char *s)
{
        size_t n = 0;

        for (; *s; s++)
                n += ((unsigned char)*s & 0xc0) != 0x80;
        return n;
}

/* Its width in average characters: from U+1100 on (CJK, emoji, ...) two, to be safe. */
static double text_w(const char *s)
{
        double n = 0;

        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;

                if ((c & 0xc0) != 0x80)
                        n += c >= 0xe1 ? 2 : 1;
        }
        return CHAR_W * n;
}

/* s without its first characters so that at most max remain (after "…"). */
static const char *tail(const char *s, size_t max, bool *cut)
{
        size_t n = nchars(s);

        *cut = n > max;
        for (; n > max - 1 && *s && *cut; s++)
                if (((unsigned char)s[1] & 0xc0) != 0x80)
                        n--;
        return s;
}

/* The name shown for s: relative to base (see ia_table_html), else s. */
static const char *rel(const char *s, const char *base)
{
        size_t n = base ? strlen(base) : 0;

        if (n && strncmp(s, base, n) == 0 && s[n] == '/')
                return s + n + 1;
        return s;
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
        const char *label; /* the whole name (escaped) */
        uint64_t a, b;     /* two stacked parts */
        char value[96];    /* what the bar shows, printed after it */
};

/* A legend entry: a swatch of the marks' colour, then its meaning; returns the next x. */
static double legend(struct ia_rbuf *b, double x, double y, const char *colour, const char *what)
{
        ia_rbuf_addf(b,
                     "<rect class=\"swatch\" x=\"%.1f\" y=\"%.0f\" width=\"11\" height=\"11\" "
                     "fill=\"%s\"/><text x=\"%.1f\" y=\"%.0f\">",
                     x, y - 10, colour, x + 15, y);
        text(b, what);
        ia_rbuf_adds(b, "</text>");
        return x + 15 + text_w(what) + 18;
}

/*
 * Horizontal stacked bars, scaled to the largest a + b; the label column and
 * the right margin are as wide as their longest text, so nothing is clipped.
 */
static void bars(struct ia_rbuf *b, const char *id, const char *title, const struct bar *v,
                 size_t n, const char *la, const char *lb, const char *base)
{
        const double bw = 420;
        double lw = 40, rw = 40, h = 22.0 * (double)n + 34, w, lgw;
        uint64_t max = 1;
        bool cut;

        for (size_t i = 0; i < n; i++) {
                double tw = text_w(tail(rel(v[i].label, base), LABEL_MAX, &cut)) + 2 * CHAR_W;
                double vw = text_w(v[i].value);

                if (v[i].a + v[i].b > max)
                        max = v[i].a + v[i].b;
                if (tw + 12 > lw)
                        lw = tw + 12;
                if (vw + 12 > rw)
                        rw = vw + 12;
        }
        lgw = 15 + text_w(la) + 18;
        if (lb)
                lgw += 15 + text_w(lb);
        w = lw + bw + rw;
        if (lw + lgw + 10 > w)
                w = lw + lgw + 10;
        ia_rbuf_addf(b,
                     "<div class=\"tw\"><svg id=\"%s\" role=\"img\" width=\"%.0f\" height=\"%.0f\" "
                     "xmlns=\"http://www.w3.org/2000/svg\"><title>",
                     id, w, h);
        text(b, title);
        ia_rbuf_adds(b, "</title>\n");
        for (size_t i = 0; i < n; i++) {
                double y = 22.0 * (double)i;
                double wa = bw * (double)v[i].a / (double)max;
                double wb = bw * (double)v[i].b / (double)max;
                const char *shown = tail(rel(v[i].label, base), LABEL_MAX, &cut);
                char s1[32], s2[32];

                ia_iec(s1, sizeof(s1), v[i].a);
                ia_rbuf_addf(b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\"><title>", lw - 6,
                             y + 15);
                text(b, v[i].label);
                ia_rbuf_adds(b, "</title>");
                if (cut)
                        ia_rbuf_adds(b, "\xe2\x80\xa6"); /* … */
                text(b, shown);
                ia_rbuf_addf(b,
                             "</text><rect x=\"%.0f\" y=\"%.0f\" width=\"%.1f\" height=\"16\" "
                             "fill=\"" C_A "\"><title>%s: %s</title></rect>",
                             lw, y + 3, wa, la, s1);
                if (lb) {
                        ia_iec(s2, sizeof(s2), v[i].b);
                        ia_rbuf_addf(b,
                                     "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"16\" "
                                     "fill=\"" C_B "\"><title>%s: %s</title></rect>",
                                     lw + wa, y + 3, wb, lb, s2);
                }
                ia_rbuf_addf(b, "<text x=\"%.1f\" y=\"%.0f\">", lw + wa + wb + 6, y + 15);
                text(b, v[i].value);
                ia_rbuf_adds(b, "</text>\n");
        }
        {
                double y = 22.0 * (double)n + 22, x = legend(b, lw, y, C_A, la);

                if (lb)
                        legend(b, x, y, C_B, lb);
        }
        ia_rbuf_adds(b, "</svg></div>\n");
}

static int cmp_bar(const void *x, const void *y)
{
        const struct bar *a = x, *b = y;
        uint64_t sa = a->a + a->b, sb = b->a + b->b;

        if (sa != sb)
                return sa > sb ? -1 : 1;
        return strcmp(a->label, b->label);
}

static void chart_dirs(const struct ia_rpt_out *o, struct ia_rbuf *b, const char *base)
{
        struct bar *v = calloc(o->ndirs + 1, sizeof(*v));
        size_t n = o->ndirs;

        if (!v) {
                b->nomem = true;
                return;
        }
        for (size_t i = 0; i < n; i++) {
                v[i].label = o->dirs[i].name;
                v[i].a = o->dirs[i].allocated;
                ia_iec(v[i].value, sizeof(v[i].value), v[i].a);
        }
        qsort(v, n, sizeof(*v), cmp_bar);
        if (n > 20)
                n = 20;
        ia_rbuf_adds(b, "<h3>Bytes allocated on disk per directory</h3>\n");
        bars(b, "chart-capacity", "bytes allocated on disk per directory", v, n,
             "allocated on disk", NULL, base);
        free(v);
}

static void chart_bases(const struct ia_rpt *r, struct ia_rbuf *b, const char *base)
{
        struct bar *v = calloc(r->nimg + 1, sizeof(*v));
        size_t n = 0;

        if (!v) {
                b->nomem = true;
                return;
        }
        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                char s1[32], s2[32];

                if (!m->sharing_done)
                        continue;
                v[n].label = m->name;
                v[n].a = m->visible;
                v[n].b = m->dead;
                ia_iec(s1, sizeof(s1), m->visible);
                ia_iec(s2, sizeof(s2), m->dead);
                /* say what the bar is made of: only the parts it has */
                if (m->visible && m->dead)
                        snprintf(v[n].value, sizeof(v[n].value), "%s visible, %s dead", s1, s2);
                else if (m->dead)
                        snprintf(v[n].value, sizeof(v[n].value), "%s dead", s2);
                else
                        snprintf(v[n].value, sizeof(v[n].value), "%s visible", s1);
                snprintf(v[n].value + strlen(v[n].value), sizeof(v[n].value) - strlen(v[n].value),
                         " (%zu %s)", m->ndesc, m->ndesc == 1 ? "overlay" : "overlays");
                n++;
        }
        qsort(v, n, sizeof(*v), cmp_bar);
        if (n > 20)
                n = 20;
        if (n) {
                ia_rbuf_adds(b, "<h3>Own data of each backing image</h3>\n");
                bars(b, "chart-sharing", "own data of each backing image: visible and dead", v, n,
                     "still visible through an overlay", "dead (shadowed in every overlay)", base);
        }
        free(v);
}

/* The date (or date and time, when two scans share a day) a scan started. */
static void scan_date(const struct ia_rpt *r, size_t i, bool with_time, char *buf, size_t n)
{
        const char *s = r->hist[i].started_at ? r->hist[i].started_at : "";

        if (strlen(s) < 16)
                snprintf(buf, n, "%s", s);
        else if (with_time)
                snprintf(buf, n, "%.5s %.5s", s + 5, s + 11); /* MM-DD HH:MM */
        else
                snprintf(buf, n, "%.10s", s); /* YYYY-MM-DD */
}

static void chart_history(const struct ia_rpt *r, struct ia_rbuf *b)
{
        const double w = 640, h = 230, l = 90, rm = 30, top = 15, bot = 50;
        double last_x = -1e9;
        uint64_t max = 1;
        bool with_time = false;
        size_t step;
        char s[32];

        if (r->nhist < 1)
                return;
        for (size_t i = 0; i < r->nhist; i++) {
                if (r->hist[i].allocated > max)
                        max = r->hist[i].allocated;
                for (size_t j = 0; j < i && !with_time; j++)
                        if (r->hist[i].started_at && r->hist[j].started_at &&
                            strncmp(r->hist[i].started_at, r->hist[j].started_at, 10) == 0)
                                with_time = true;
        }
        /* at most one date label per 110 px */
        step = (r->nhist + 5) / 6;
        if (step == 0)
                step = 1;
        ia_rbuf_adds(b, "<h3>Bytes allocated on disk over time</h3>\n");
        ia_rbuf_addf(b,
                     "<div class=\"tw\"><svg id=\"chart-trend\" role=\"img\" width=\"%.0f\" "
                     "height=\"%.0f\" xmlns=\"http://www.w3.org/2000/svg\"><title>bytes allocated "
                     "on disk per scan, by the date it started</title>\n",
                     l + w + rm, h);
        ia_rbuf_addf(b,
                     "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#888\"/>"
                     "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#888\"/>\n",
                     l, top, l, h - bot, l, h - bot, l + w, h - bot);
        for (int k = 0; k <= 2; k++) {
                double y = h - bot - (h - bot - top) * k / 2.0;

                ia_iec(s, sizeof(s), max / 2 * (uint64_t)k + (k == 2 ? max % 2 : 0));
                ia_rbuf_addf(b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">%s</text>", l - 6,
                             y + 4, k ? s : "0 B");
        }
        ia_rbuf_adds(b,
                     "\n<polyline fill=\"none\" stroke=\"" C_A "\" stroke-width=\"2\" points=\"");
        for (size_t i = 0; i < r->nhist; i++) {
                double x = l + (r->nhist > 1 ? w * (double)i / (double)(r->nhist - 1) : w / 2);
                double y = h - bot - (h - bot - top) * (double)r->hist[i].allocated / (double)max;
                ia_rbuf_addf(b, "%.1f,%.1f ", x, y);
        }
        ia_rbuf_adds(b, "\"/>\n");
        for (size_t i = 0; i < r->nhist; i++) {
                double x = l + (r->nhist > 1 ? w * (double)i / (double)(r->nhist - 1) : w / 2);
                double y = h - bot - (h - bot - top) * (double)r->hist[i].allocated / (double)max;
                bool first = i == 0, lastp = i + 1 == r->nhist;
                char d[32];

                ia_iec(s, sizeof(s), r->hist[i].allocated);
                scan_date(r, i, with_time, d, sizeof(d));
                ia_rbuf_addf(b,
                             "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"" C_A
                             "\"><title>scan %" PRId64 ": %s</title></circle>\n",
                             x, y, r->hist[i].id, s);
                /* the last date always; the others every step, never crowding it */
                if (!lastp && (i % step != 0 || x - last_x < 110 || l + w - x < 110))
                        continue;
                if (r->nhist == 1)
                        first = lastp = false;
                ia_rbuf_addf(b,
                             "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" "
                             "stroke=\"#888\"/><text class=\"date\" x=\"%.1f\" y=\"%.0f\" "
                             "text-anchor=\"%s\">",
                             x, h - bot, x, h - bot + 4, x, h - bot + 18,
                             first   ? "start"
                             : lastp ? "end"
                                     : "middle");
                text(b, d);
                ia_rbuf_adds(b, "</text>\n");
                last_x = x;
        }
        ia_rbuf_addf(b,
                     "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">scan started (UTC)</text>"
                     "</svg></div>\n",
                     l + w / 2, h - 12);
}

static const char *const titles[IA_SEC_COUNT] = {
    [IA_SEC_SUMMARY] = "Summary", [IA_SEC_CAPACITY] = "Capacity", [IA_SEC_SHARING] = "Sharing",
    [IA_SEC_CHAINS] = "Chains",   [IA_SEC_ORPHANS] = "Orphans",   [IA_SEC_FINDINGS] = "Findings",
    [IA_SEC_TREND] = "Trend",
};

/*
 * The directory names are shown relative to: the scan root, or the deepest
 * directory holding every root; NULL when that is "/" or nothing.
 */
static char *common_base(const struct ia_rpt_scan *s)
{
        size_t n;
        char *base;

        if (s->nroots == 0 || !s->roots[0])
                return NULL;
        n = strlen(s->roots[0]);
        for (size_t k = 1; k < s->nroots; k++) {
                const char *x = s->roots[k];
                size_t m = 0;

                while (m < n && x[m] && x[m] == s->roots[0][m])
                        m++;
                /* back to a whole component: no "store" out of "store" and "store2" */
                if (!((m == n && (x[m] == '/' || x[m] == '\0')) ||
                      (x[m] == '\0' && m < n && s->roots[0][m] == '/'))) {
                        while (m > 0 && s->roots[0][m - 1] != '/')
                                m--;
                        if (m > 0)
                                m--;
                }
                n = m;
        }
        while (n > 0 && s->roots[0][n - 1] == '/')
                n--;
        if (n == 0)
                return NULL;
        base = strndup(s->roots[0], n);
        return base;
}

void ia_html_head(const struct ia_rpt *r, const struct ia_rpt_out *o,
                  const bool sections[IA_SEC_COUNT], struct ia_rbuf *b)
{
        const struct ia_rpt_scan *s = &r->scan;
        char buf[64], *base = common_base(s);
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
        ia_rbuf_adds(b, "</head><body>\n<nav class=\"toc\" id=\"toc\">");
        for (int k = 0; k < IA_SEC_COUNT; k++)
                if (sections[k])
                        ia_rbuf_addf(b, "<a href=\"#s-%s\">%s</a>", ia_section_names[k], titles[k]);
        ia_rbuf_adds(b, "</nav>\n<h1>imgaudit report</h1>\n<p class=\"meta\">");
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
        if (base) {
                ia_rbuf_adds(b, "<p class=\"meta\" id=\"base\">Paths are relative to <b>");
                text(b, base);
                ia_rbuf_addf(b, "</b>%s (the whole name shows when pointed at).</p>\n",
                             s->nroots > 1 ? ", the common directory of the scan roots" : "");
        }
        free(base);
}

void ia_html_section(const struct ia_rpt *r, const struct ia_rpt_out *o, enum ia_section k,
                     struct ia_rbuf *b)
{
        const struct ia_table *t = o->sec_first[k];
        char *base = common_base(&r->scan);

        ia_rbuf_addf(b, "<section id=\"s-%s\"><h2><a href=\"#s-%s\">%s</a></h2>\n",
                     ia_section_names[k], ia_section_names[k], titles[k]);
        if (k == IA_SEC_CAPACITY && o->have_capacity)
                chart_dirs(o, b, base);
        if (k == IA_SEC_SHARING && o->have_sharing)
                chart_bases(r, b, base);
        if (k == IA_SEC_TREND && o->have_trend)
                chart_history(r, b);
        for (size_t i = 0; i < o->sec_ntables[k] && t; i++, t = t->next)
                ia_table_html(t, b, base);
        ia_rbuf_adds(b, "</section>\n");
        free(base);
}

void ia_html_foot(struct ia_rbuf *b)
{
        ia_rbuf_adds(b, "</body></html>\n");
}
