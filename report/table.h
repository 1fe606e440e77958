/*
 * The tables of a report: one model, three renderings.
 *
 * Every section builds its tables once (columns with a kind, rows of cells)
 * and the human, CSV and HTML writers render the same cells, so the formats
 * cannot disagree on a figure.  Text cells hold names already escaped by
 * ia_escape_name(); renderers add only their own syntax quoting.
 */
#ifndef IA_TABLE_H
#define IA_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rbuf.h"

enum ia_col_kind {
        IA_COL_TEXT,  /* left-aligned text */
        IA_COL_BYTES, /* a byte count: IEC for people, exact for machines */
        IA_COL_INT,   /* an integer */
        IA_COL_RATIO, /* a ratio, two decimals for people, four for machines */
        IA_COL_DELTA, /* a signed byte count (growth): "+1.5 MiB" for people */
};

struct ia_col {
        const char *id;    /* CSV header: lowercase_with_underscores */
        const char *label; /* human/HTML header */
        enum ia_col_kind kind;
};

/* One cell: the value its column's kind reads (16 bytes: a table of every image is large). */
struct ia_cell {
        union {
                char *s; /* IA_COL_TEXT (owned) */
                int64_t i;
                uint64_t u;
                double d;
        };
        bool null;
        bool owned; /* s is set (freed with the table) */
};

struct ia_table {
        const char *id;    /* CSV table name, e.g. "capacity" */
        const char *title; /* human/HTML title */
        const struct ia_col *cols;
        size_t ncols;
        struct ia_cell *cells; /* nrows * ncols */
        unsigned *indent;      /* per row: tree depth of the first column */
        char *note;            /* a line printed under the table (human, HTML), or NULL */
        size_t nrows, cap, cur;
        bool nomem;
        struct ia_table *next;
};

struct ia_table *ia_table_new(const char *id, const char *title, const struct ia_col *cols,
                              size_t ncols);
void ia_table_free(struct ia_table *t); /* NULL-safe, frees the whole next list */

/* Start a row (the previous one must be complete); cells are then added in column order. */
void ia_table_row(struct ia_table *t, unsigned indent);
void ia_table_text(struct ia_table *t, const char *s); /* NULL: an empty cell */
void ia_table_bytes(struct ia_table *t, uint64_t v);
void ia_table_int(struct ia_table *t, int64_t v);
void ia_table_ratio(struct ia_table *t, double v);
void ia_table_delta(struct ia_table *t, int64_t v);
void ia_table_null(struct ia_table *t);
/* Set the note (copied). */
void ia_table_note(struct ia_table *t, const char *note);

void ia_table_human(const struct ia_table *t, struct ia_rbuf *b);
/* One CSV file: a header row of column ids, then the rows, exact values. */
void ia_table_csv(const struct ia_table *t, struct ia_rbuf *b);
/*
 * The table in a horizontally scrolling container (a wide table scrolls
 * inside its section, never the page); a text cell naming a path under
 * base (NULL: none) shows it relative to base, the whole name as its title.
 */
void ia_table_html(const struct ia_table *t, struct ia_rbuf *b, const char *base);

#endif
