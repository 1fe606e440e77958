/*
 * The figures of `imgaudit report`, section by section: see sections.h, and
 * imgaudit(1) "REPORT FIGURES" for the definition of every number.
 *
 * Everything is computed in C from plain SELECTs over the scan's tables: the
 * per-image sums were loaded by rpt_load.c; sharing reads the map rows of
 * each base's descendants at the base's depth and intersects their union
 * with the base's own data.
 */
#define _GNU_SOURCE
#include "sec_emit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "escape.h"
#include "banned.h"

const char *const ia_section_names[IA_SEC_COUNT] = {
    [IA_SEC_SUMMARY] = "summary", [IA_SEC_CAPACITY] = "capacity", [IA_SEC_SHARING] = "sharing",
    [IA_SEC_CHAINS] = "chains",   [IA_SEC_ORPHANS] = "orphans",   [IA_SEC_FINDINGS] = "findings",
    [IA_SEC_TREND] = "trend",
};

/* ---- out ---- */

int ia_rpt_out_init(struct ia_rpt_out *o, const struct ia_rpt *r, unsigned want,
                    struct ia_sink *json)
{
        json_object *tool, *scan, *roots;
        const struct ia_rpt_scan *s = &r->scan;
        struct ia_jw *w = &o->jw;
        char now[32];

        memset(o, 0, sizeof(*o));
        o->tail = &o->tables;
        ia_rbuf_init(&o->prom);
        o->want = want;
        o->prom_sink = want & IA_OUT_PROM ? json : NULL;
        ia_jw_init(w, want & IA_OUT_JSON ? json : NULL);
        if (!w->out)
                return 0;
        ia_jw_open(w, '{');
        ia_jw_kv(w, "schema_version", ji(IA_REPORT_SCHEMA_VERSION));
        tool = json_object_new_object();
        jset(tool, "name", jstr("imgaudit"));
        jset(tool, "version", jstr(IMGAUDIT_VERSION));
        ia_jw_kv(w, "tool", tool);
        ia_jw_kv(w, "generated_at", jstr(ia_iso_time(r->now, now, sizeof(now))));
        ia_jw_kv(w, "database_schema_version", ji(r->db_schema));
        scan = json_object_new_object();
        jset(scan, "id", ji(s->id));
        jset(scan, "status", jstr(s->status));
        jset(scan, "started_at", jstr(s->started_at));
        jset(scan, "finished_at", jstr(s->finished_at));
        jset(scan, "duration_seconds", s->has_duration ? jratio(s->duration) : NULL);
        jset(scan, "host", jstr(s->host));
        jset(scan, "tool_version", jstr(s->tool_version));
        jset(scan, "exit_status", s->has_exit ? ji(s->exit_status) : NULL);
        jset(scan, "abort_reason", jstr(s->abort_reason));
        jset(scan, "files_seen", ju(s->files_seen));
        jset(scan, "files_read", ju(s->files_read));
        jset(scan, "files_reused", ju(s->files_reused));
        jset(scan, "images", ju(r->nimg));
        jset(scan, "problems", ju(s->problems));
        roots = json_object_new_array();
        for (size_t i = 0; i < s->nroots; i++)
                json_object_array_add(roots, jstr(s->roots[i]));
        jset(scan, "roots", roots);
        ia_jw_kv(w, "scan", scan);
        return w->nomem ? -1 : 0;
}

void ia_rpt_out_finish(struct ia_rpt_out *o)
{
        if (!o->jw.out)
                return;
        ia_jw_close(&o->jw, '}');
        ia_rbuf_addc(&o->jw.out->b, '\n');
}

void ia_rpt_out_drop_tables(struct ia_rpt_out *o)
{
        ia_table_free(o->tables);
        o->tables = NULL;
        o->tail = &o->tables;
        memset(o->sec_first, 0, sizeof(o->sec_first));
        memset(o->sec_ntables, 0, sizeof(o->sec_ntables));
}

void ia_rpt_out_release(struct ia_rpt_out *o)
{
        ia_table_free(o->tables);
        ia_rbuf_release(&o->prom);
        for (size_t i = 0; i < o->ndirs; i++)
                free(o->dirs[i].name);
        free(o->dirs);
        memset(o, 0, sizeof(*o));
}

/* The sections, in report order: one file each (sec_NAME.c). */
static int (*const section_run[IA_SEC_COUNT])(struct ia_rpt *r, struct ia_rpt_out *o,
                                              struct ia_error *err) = {
    [IA_SEC_SUMMARY] = ia_sec_summary, [IA_SEC_CAPACITY] = ia_sec_capacity,
    [IA_SEC_SHARING] = ia_sec_sharing, [IA_SEC_CHAINS] = ia_sec_chains,
    [IA_SEC_ORPHANS] = ia_sec_orphans, [IA_SEC_FINDINGS] = ia_sec_findings,
    [IA_SEC_TREND] = ia_sec_trend,
};

static int run(enum ia_section s, struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        if ((unsigned)s >= IA_SEC_COUNT || !section_run[s])
                return ia_error_set(err, IA_ERR_INTERNAL, "no section %d", (int)s);
        return section_run[s](r, o, err);
}

int ia_section_run(enum ia_section s, struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        struct ia_table **before = o->tail;
        int ret;

        ia_jw_key(&o->jw, ia_section_names[s]);
        ret = run(s, r, o, err);
        o->sec_first[s] = *before;
        for (struct ia_table *t = *before; t; t = t->next) {
                if (t->nomem && ret == 0)
                        ret = NOMEM(err);
                o->sec_ntables[s]++;
        }
        if ((o->prom.nomem || o->jw.nomem) && ret == 0)
                ret = NOMEM(err);
        if (!(o->want & IA_OUT_PROM))
                ia_rbuf_release(&o->prom);
        return ret;
}
