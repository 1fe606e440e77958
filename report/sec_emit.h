/*
 * What the sections of the report share (sec_*.c, sections.c): the JSON
 * value makers, the table and Prometheus emitters, the space figures of a
 * group of images, and the walks of the backing graph.  Internal to report/.
 */
#ifndef IA_SEC_EMIT_H
#define IA_SEC_EMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "escape.h"
#include "sections.h"

#define NOMEM(err) ia_error_set(err, IA_ERR_NOMEM, "out of memory")
#define NCOLS(a)   (sizeof(a) / sizeof((a)[0]))
/* a table the layout wants could not be made */
#define NO_TABLE(o, t) (!(t) && ((o)->want & IA_OUT_TABLES))

static inline void jset(json_object *o, const char *k, json_object *v)
{
        json_object_object_add(o, k, v);
}

static inline json_object *jstr(const char *s)
{
        return s ? json_object_new_string(s) : NULL;
}

static inline json_object *ju(uint64_t v)
{
        return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

static inline json_object *ji(int64_t v)
{
        return json_object_new_int64(v);
}

static inline json_object *jratio(double d)
{
        char buf[32];

        snprintf(buf, sizeof(buf), "%.4f", d);
        return json_object_new_double_s(d, buf);
}

/* The exact bytes of a path for JSON when they are UTF-8 (json-c escapes
 * controls losslessly), else null: the escaped "name" is always there. */
static inline json_object *jpath(const char *s, size_t n)
{
        if (!s || !ia_utf8_ok(s, n))
                return NULL;
        return json_object_new_string_len(s, (int)n);
}

/* A table of the section, in the report's list; NULL in a layout without tables. */
struct ia_table *ia_sec_table(struct ia_rpt_out *o, const char *id, const char *title,
                              const struct ia_col *cols, size_t ncols);
void ia_prom_head(struct ia_rbuf *b, const char *name, const char *type, const char *help);
/* name{label="value"} v   (value already escaped by ia_escape_name) */
void ia_prom_u(struct ia_rbuf *b, const char *name, const char *label, const char *value,
               uint64_t v);

/* A disk guests write to: nothing backs onto it, no image keeps data in it. */
bool ia_is_leaf(const struct ia_rpt_image *m);
void ia_agg_add(struct ia_rpt_agg *a, const struct ia_rpt_image *m);
double ia_overcommit(const struct ia_rpt_agg *a, bool *ok);
char *ia_iso_time(int64_t secs, char *buf, size_t n);

/* The figures of struct ia_rpt_agg that metrics have one family each for. */
struct ia_figure {
        const char *name, *help;
        size_t off;
};
#define IA_NFIGURES 11
extern const struct ia_figure ia_figures[IA_NFIGURES];
uint64_t ia_fig(const struct ia_rpt_agg *a, size_t k);

/* Space freed by deleting image i: itself plus every base left with no child. */
void ia_compute_freed(struct ia_rpt *r, size_t i);
struct ia_walk {
        size_t img;
        int depth;
};
/* Descendants of base in DFS order with their distance from it (free the array). */
struct ia_walk *ia_descendants(const struct ia_rpt *r, size_t base, size_t *n);

int ia_sec_summary(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err);
int ia_sec_capacity(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err);
int ia_sec_sharing(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err);
int ia_sec_chains(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err);
int ia_sec_orphans(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err);
int ia_sec_findings(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err);
int ia_sec_trend(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err);

#endif
