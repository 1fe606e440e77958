/*
 * What the report loader's files share (rpt_load.c: opening, the scans;
 * rpt_images.c: images, their figures, the graph, links, findings, trend),
 * over the store's queries (schema/store_report.h).
 * Internal to report/.
 */
#ifndef IA_RPT_INT_H
#define IA_RPT_INT_H

#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "rpt.h"

/* The columns the store hands over (schema/store_report.h), kept by the report. */

/* A text column as a C string (up to its first NUL), or NULL. */
static inline char *str_dup(struct ia_rdb_str c, bool *nomem)
{
        char *d;

        if (!c.p)
                return NULL;
        d = strdup(c.p);
        if (!d)
                *nomem = true;
        return d;
}

/* A path column (TEXT or BLOB): its exact bytes, NUL-terminated. */
static inline char *str_bytes(struct ia_rdb_str c, size_t *len, bool *nomem)
{
        char *d;

        *len = 0;
        if (!c.p)
                return NULL;
        d = malloc(c.len + 1);
        if (!d) {
                *nomem = true;
                return NULL;
        }
        if (c.len)
                memcpy(d, c.p, c.len);
        d[c.len] = '\0';
        *len = c.len;
        return d;
}

/* A text or path column, escaped for display. */
static inline char *str_escaped(struct ia_rdb_str c, bool *nomem)
{
        char *d;

        if (!c.p)
                return NULL;
        d = ia_escape_dup(c.p, c.len);
        if (!d)
                *nomem = true;
        return d;
}

#define NOMEM(err) ia_error_set(err, IA_ERR_NOMEM, "out of memory")

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
