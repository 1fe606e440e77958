/*
 * The report tables and their human, CSV and HTML renderings: see table.h.
 */
#define _GNU_SOURCE
#include "table.h"

#include <inttypes.h>
#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "escape.h"
#include "banned.h"

struct ia_table *ia_table_new(const char *id, const char *title, const struct ia_col *cols,
                              size_t ncols)
{
        struct ia_table *t = calloc(1, sizeof(*t));

        if (!t)
                return NULL;
        t->id = id;
        t->title = title;
        t->cols = cols;
        t->ncols = ncols;
        t->cur = ncols;
        return t;
}

void ia_table_free(struct ia_table *t)
{
        while (t) {
                struct ia_table *next = t->next;

                for (size_t i = 0; i < t->nrows * t->ncols; i++)
                        if (t->cells[i].owned)
                                free(t->cells[i].s);
                free(t->cells);
                free(t->indent);
                free(t->note);
                free(t);
                t = next;
        }
}

void ia_table_row(struct ia_table *t, unsigned indent)
{
        if (!t || t->nomem)
                return;
        while (t->cur < t->ncols && t->nrows > 0)
                ia_table_null(t); /* complete a short row */
        if (t->nrows == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 16;
                struct ia_cell *c = realloc(t->cells, cap * t->ncols * sizeof(*c));
                unsigned *in;

                if (!c) {
                        t->nomem = true;
                        return;
                }
                t->cells = c;
                in = realloc(t->indent, cap * sizeof(*in));
                if (!in) {
                        t->nomem = true;
                        return;
                }
                t->indent = in;
                t->cap = cap;
        }
        memset(&t->cells[t->nrows * t->ncols], 0, t->ncols * sizeof(struct ia_cell));
        t->indent[t->nrows] = indent;
        t->nrows++;
        t->cur = 0;
}

static struct ia_cell *next_cell(struct ia_table *t)
{
        if (!t || t->nomem || t->nrows == 0 || t->cur >= t->ncols)
                return NULL;
        return &t->cells[(t->nrows - 1) * t->ncols + t->cur++];
}

void ia_table_text(struct ia_table *t, const char *s)
{
        struct ia_cell *c = next_cell(t);

        if (!c)
                return;
        if (!s) {
                c->null = true;
                return;
        }
        c->s = strdup(s);
        if (!c->s)
                t->nomem = true;
        else
                c->owned = true;
}

void ia_table_bytes(struct ia_table *t, uint64_t v)
{
        struct ia_cell *c = next_cell(t);

        if (c)
                c->u = v;
}

void ia_table_int(struct ia_table *t, int64_t v)
{
        struct ia_cell *c = next_cell(t);

        if (c)
                c->i = v;
}

void ia_table_ratio(struct ia_table *t, double v)
{
        struct ia_cell *c = next_cell(t);

        if (c)
                c->d = v;
}

void ia_table_delta(struct ia_table *t, int64_t v)
{
        struct ia_cell *c = next_cell(t);

        if (c)
                c->i = v;
}

void ia_table_note(struct ia_table *t, const char *note)
{
        if (!t)
                return;
        free(t->note);
        t->note = strdup(note);
        if (!t->note)
                t->nomem = true;
}

void ia_table_null(struct ia_table *t)
{
        struct ia_cell *c = next_cell(t);

        if (c)
                c->null = true;
}

/* The cell as people read it, in buf (or a pointer to the text cell). */
static const char *cell_human(const struct ia_col *col, const struct ia_cell *c, char *buf,
                              size_t n)
{
        if (c->null)
                return col->kind == IA_COL_TEXT ? "" : "-";
        switch (col->kind) {
        case IA_COL_TEXT:
                return c->s;
        case IA_COL_BYTES:
                ia_iec(buf, n, c->u);
                return buf;
        case IA_COL_INT:
                snprintf(buf, n, "%" PRId64, c->i);
                return buf;
        case IA_COL_RATIO:
                snprintf(buf, n, "%.2f", c->d);
                return buf;
        case IA_COL_DELTA:
                if (c->i == 0)
                        return "0 B";
                buf[0] = c->i < 0 ? '-' : '+';
                ia_iec(buf + 1, n - 1, c->i < 0 ? 0 - (uint64_t)c->i : (uint64_t)c->i);
                return buf;
        }
        return "";
}

static const char *cell_exact(const struct ia_col *col, const struct ia_cell *c, char *buf,
                              size_t n)
{
        if (c->null)
                return "";
        switch (col->kind) {
        case IA_COL_TEXT:
                return c->s;
        case IA_COL_BYTES:
                snprintf(buf, n, "%" PRIu64, c->u);
                return buf;
        case IA_COL_INT:
        case IA_COL_DELTA:
                snprintf(buf, n, "%" PRId64, c->i);
                return buf;
        case IA_COL_RATIO:
                snprintf(buf, n, "%.4f", c->d);
                return buf;
        }
        return "";
}

/*
 * The C library's idea of a character's width (wcwidth(3)) under a UTF-8
 * locale of its own, whatever the user's: the report is UTF-8 and a
 * terminal that shows it uses the same Unicode width tables.  Loaded once;
 * NULL if the C library has no UTF-8 locale (then every character takes one
 * column).
 */
static locale_t utf8_locale(void)
{
        static locale_t loc;
        static bool tried;

        if (!tried) {
                tried = true;
                loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
                if (!loc)
                        loc = newlocale(LC_CTYPE_MASK, "en_US.UTF-8", (locale_t)0);
        }
        return loc;
}

/*
 * Display width in terminal columns of (already escaped, valid) UTF-8:
 * wide characters and emoji take two, combining marks none, so that names
 * in any script keep the columns aligned.
 */
static size_t width(const char *str)
{
        const unsigned char *s = (const unsigned char *)str;
        locale_t loc = utf8_locale(), old = loc ? uselocale(loc) : (locale_t)0;
        size_t w = 0;

        while (*s) {
                uint32_t cp = *s;
                size_t k = cp < 0x80 ? 0 : cp < 0xe0 ? 1 : cp < 0xf0 ? 2 : 3;
                int cw;

                if (k)
                        cp &= 0x3f >> k;
                s++;
                for (; k > 0 && (*s & 0xc0) == 0x80; k--, s++)
                        cp = (cp << 6) | (*s & 0x3f);
                cw = loc ? wcwidth((wchar_t)cp) : 1;
                w += cw < 0 ? 1 : (size_t)cw;
        }
        if (loc)
                uselocale(old);
        return w;
}

#define TREE_BRANCH "\xe2\x94\x94\xe2\x94\x80 " /* "└─ " */

static size_t indent_width(unsigned level)
{
        return level ? 2 * (level - 1) + 3 : 0;
}

static void add_indent(struct ia_rbuf *b, unsigned level)
{
        if (!level)
                return;
        ia_rbuf_pad(b, ' ', 2 * (level - 1));
        ia_rbuf_adds(b, TREE_BRANCH);
}

void ia_table_human(const struct ia_table *t, struct ia_rbuf *b)
{
        size_t *w = calloc(t->ncols, sizeof(*w));
        char buf[64];

        if (!w) {
                b->nomem = true;
                return;
        }
        ia_rbuf_addf(b, "%s\n", t->title);
        if (t->nrows == 0) {
                ia_rbuf_adds(b, "  (none)\n");
                if (t->note)
                        ia_rbuf_addf(b, "  %s\n", t->note);
                ia_rbuf_addc(b, '\n');
                free(w);
                return;
        }
        for (size_t j = 0; j < t->ncols; j++)
                w[j] = width(t->cols[j].label);
        for (size_t i = 0; i < t->nrows; i++) {
                for (size_t j = 0; j < t->ncols; j++) {
                        size_t cw = width(
                            cell_human(&t->cols[j], &t->cells[i * t->ncols + j], buf, sizeof(buf)));
                        if (j == 0)
                                cw += indent_width(t->indent[i]);
                        if (cw > w[j])
                                w[j] = cw;
                }
        }
        for (size_t j = 0; j < t->ncols; j++) {
                size_t lw = width(t->cols[j].label);
                bool right = t->cols[j].kind != IA_COL_TEXT;

                ia_rbuf_adds(b, j ? "  " : "  ");
                if (right)
                        ia_rbuf_pad(b, ' ', w[j] - lw);
                ia_rbuf_adds(b, t->cols[j].label);
                if (!right && j + 1 < t->ncols)
                        ia_rbuf_pad(b, ' ', w[j] - lw);
        }
        ia_rbuf_addc(b, '\n');
        for (size_t i = 0; i < t->nrows; i++) {
                for (size_t j = 0; j < t->ncols; j++) {
                        const char *s =
                            cell_human(&t->cols[j], &t->cells[i * t->ncols + j], buf, sizeof(buf));
                        size_t cw = width(s) + (j == 0 ? indent_width(t->indent[i]) : 0);
                        bool right = t->cols[j].kind != IA_COL_TEXT;

                        ia_rbuf_adds(b, "  ");
                        if (right)
                                ia_rbuf_pad(b, ' ', w[j] - cw);
                        if (j == 0)
                                add_indent(b, t->indent[i]);
                        ia_rbuf_adds(b, s);
                        if (!right && j + 1 < t->ncols)
                                ia_rbuf_pad(b, ' ', w[j] - cw);
                }
                ia_rbuf_addc(b, '\n');
        }
        if (t->note)
                ia_rbuf_addf(b, "  %s\n", t->note);
        ia_rbuf_addc(b, '\n');
        free(w);
}

void ia_table_csv(const struct ia_table *t, struct ia_rbuf *b)
{
        char buf[64];

        for (size_t j = 0; j < t->ncols; j++) {
                if (j)
                        ia_rbuf_addc(b, ',');
                ia_csv_field(b, t->cols[j].id);
        }
        ia_rbuf_adds(b, "\r\n");
        for (size_t i = 0; i < t->nrows; i++) {
                for (size_t j = 0; j < t->ncols; j++) {
                        if (j)
                                ia_rbuf_addc(b, ',');
                        ia_csv_field(b, cell_exact(&t->cols[j], &t->cells[i * t->ncols + j], buf,
                                                   sizeof(buf)));
                }
                ia_rbuf_adds(b, "\r\n");
        }
}

/* A text cell; a name under base is shown relative to it, the whole name in its title. */
static void html_name(struct ia_rbuf *b, const char *s, const char *base)
{
        size_t n = base ? strlen(base) : 0;

        if (n == 0 || strncmp(s, base, n) != 0 || s[n] != '/' || !s[n + 1]) {
                ia_html_text(b, s);
                return;
        }
        ia_rbuf_adds(b, "<span class=\"p\" title=\"");
        ia_html_text(b, s);
        ia_rbuf_adds(b, "\">");
        ia_html_text(b, s + n + 1);
        ia_rbuf_adds(b, "</span>");
}

/* Sentences, not names: they wrap in HTML rather than widen the table. */
static bool is_prose(const struct ia_col *c)
{
        return strcmp(c->id, "message") == 0 || strcmp(c->id, "reason") == 0;
}

void ia_table_html(const struct ia_table *t, struct ia_rbuf *b, const char *base)
{
        char buf[64], ex[64];

        ia_rbuf_addf(b, "<h3 id=\"h-%s\">", t->id);
        ia_html_text(b, t->title);
        ia_rbuf_addf(b, "</h3>\n<div class=\"tw\"><table class=\"t\" id=\"t-%s\">\n<thead><tr>",
                     t->id);
        for (size_t j = 0; j < t->ncols; j++) {
                ia_rbuf_adds(b, t->cols[j].kind == IA_COL_TEXT ? "<th>" : "<th class=\"n\">");
                ia_html_text(b, t->cols[j].label);
                ia_rbuf_adds(b, "</th>");
        }
        ia_rbuf_adds(b, "</tr></thead>\n<tbody>\n");
        if (t->nrows == 0)
                ia_rbuf_addf(b, "<tr><td colspan=\"%zu\" class=\"none\">(none)</td></tr>\n",
                             t->ncols);
        for (size_t i = 0; i < t->nrows; i++) {
                ia_rbuf_adds(b, "<tr>");
                for (size_t j = 0; j < t->ncols; j++) {
                        const struct ia_cell *c = &t->cells[i * t->ncols + j];
                        const char *s = cell_human(&t->cols[j], c, buf, sizeof(buf));

                        if (t->cols[j].kind == IA_COL_TEXT) {
                                if (j == 0 && t->indent[i])
                                        ia_rbuf_addf(b,
                                                     "<td style=\"padding-left:%.1fem\">"
                                                     "\xe2\x94\x94\xe2\x94\x80&nbsp;",
                                                     0.4 + 1.5 * (t->indent[i] - 1));
                                else
                                        ia_rbuf_adds(b, is_prose(&t->cols[j]) ? "<td class=\"w\">"
                                                                              : "<td>");
                        } else if ((t->cols[j].kind == IA_COL_BYTES ||
                                    t->cols[j].kind == IA_COL_DELTA) &&
                                   !c->null) {
                                ia_rbuf_addf(b, "<td class=\"n\" title=\"%s bytes\">",
                                             cell_exact(&t->cols[j], c, ex, sizeof(ex)));
                        } else {
                                ia_rbuf_adds(b, "<td class=\"n\">");
                        }
                        if (t->cols[j].kind == IA_COL_TEXT && !c->null)
                                html_name(b, s, base);
                        else
                                ia_html_text(b, s);
                        ia_rbuf_adds(b, "</td>");
                }
                ia_rbuf_adds(b, "</tr>\n");
        }
        ia_rbuf_adds(b, "</tbody></table></div>\n");
        if (t->note) {
                ia_rbuf_adds(b, "<p class=\"note\">");
                ia_html_text(b, t->note);
                ia_rbuf_adds(b, "</p>\n");
        }
}
