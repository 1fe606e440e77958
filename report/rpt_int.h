/*
 * What the report loader's files share (rpt_load.c: opening, the scans;
 * rpt_images.c: images, their figures, the graph, links, findings, trend).
 * Internal to report/.
 */
#ifndef IA_RPT_INT_H
#define IA_RPT_INT_H

#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "rpt.h"

static inline char *col_text(sqlite3_stmt *st, int i, bool *nomem)
{
        const unsigned char *s;
        char *d;

        if (sqlite3_column_type(st, i) == SQLITE_NULL)
                return NULL;
        s = sqlite3_column_text(st, i);
        d = strdup(s ? (const char *)s : "");
        if (!d)
                *nomem = true;
        return d;
}

/* A path column (TEXT or BLOB): its exact bytes, NUL-terminated. */
static inline char *col_bytes(sqlite3_stmt *st, int i, size_t *len, bool *nomem)
{
        const void *p;
        int n;
        char *d;

        *len = 0;
        if (sqlite3_column_type(st, i) == SQLITE_NULL)
                return NULL;
        p = sqlite3_column_blob(st, i);
        n = sqlite3_column_bytes(st, i);
        d = malloc((size_t)n + 1);
        if (!d) {
                *nomem = true;
                return NULL;
        }
        if (n)
                memcpy(d, p, (size_t)n);
        d[n] = '\0';
        *len = (size_t)n;
        return d;
}

/* A text or path column, escaped for display. */
static inline char *col_escaped(sqlite3_stmt *st, int i, bool *nomem)
{
        const void *p;
        char *d;

        if (sqlite3_column_type(st, i) == SQLITE_NULL)
                return NULL;
        p = sqlite3_column_blob(st, i);
        d = ia_escape_dup(p ? p : "", (size_t)sqlite3_column_bytes(st, i));
        if (!d)
                *nomem = true;
        return d;
}

static inline uint64_t col_u64(sqlite3_stmt *st, int i)
{
        int64_t v = sqlite3_column_int64(st, i);

        return v < 0 ? 0 : (uint64_t)v;
}

static inline bool col_null(sqlite3_stmt *st, int i)
{
        return sqlite3_column_type(st, i) == SQLITE_NULL;
}

struct id_idx {
        int64_t id;
        size_t idx;
};
int ia_rpt_cmp_id_idx(const void *a, const void *b);

int ia_rpt_load_scan(struct ia_rpt *r, int64_t id, struct ia_rpt_scan *s, struct ia_error *err);
int ia_rpt_load_images(struct ia_rpt *r, struct ia_error *err);
int ia_rpt_load_space(struct ia_rpt *r, const struct id_idx *by_id, struct ia_error *err);
int ia_rpt_load_graph(struct ia_rpt *r, const struct id_idx *by_id, const struct id_idx *by_file,
                      struct ia_error *err);
int ia_rpt_load_links(struct ia_rpt *r, const struct id_idx *by_file, struct ia_error *err);
int ia_rpt_load_findings(struct ia_rpt *r, struct ia_error *err);
int ia_rpt_load_prev(struct ia_rpt *r, int64_t id, struct ia_error *err);
int ia_rpt_load_history(struct ia_rpt *r, struct ia_error *err);

#endif
