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
#include "sections.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "escape.h"

const char *const ia_section_names[IA_SEC_COUNT] = {
    [IA_SEC_SUMMARY] = "summary", [IA_SEC_CAPACITY] = "capacity", [IA_SEC_SHARING] = "sharing",
    [IA_SEC_CHAINS] = "chains",   [IA_SEC_ORPHANS] = "orphans",   [IA_SEC_FINDINGS] = "findings",
    [IA_SEC_TREND] = "trend",
};

#define NOMEM(err) ia_error_set(err, IA_ERR_NOMEM, "out of memory")
#define NCOLS(a)   (sizeof(a) / sizeof((a)[0]))
/* a table the layout wants could not be made */
#define NO_TABLE(o, t) (!(t) && ((o)->want & IA_OUT_TABLES))

/* ---- small helpers ---- */

static void jset(json_object *o, const char *k, json_object *v)
{
        json_object_object_add(o, k, v);
}

static json_object *jstr(const char *s)
{
        return s ? json_object_new_string(s) : NULL;
}

static json_object *ju(uint64_t v)
{
        return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

static json_object *ji(int64_t v)
{
        return json_object_new_int64(v);
}

static json_object *jratio(double d)
{
        char buf[32];

        snprintf(buf, sizeof(buf), "%.4f", d);
        return json_object_new_double_s(d, buf);
}

/* The exact bytes of a path for JSON when they are UTF-8 (json-c escapes
 * controls losslessly), else null: the escaped "name" is always there. */
static json_object *jpath(const char *s, size_t n)
{
        if (!s || !ia_utf8_ok(s, n))
                return NULL;
        return json_object_new_string_len(s, (int)n);
}

static struct ia_table *add_table(struct ia_rpt_out *o, const char *id, const char *title,
                                  const struct ia_col *cols, size_t ncols)
{
        struct ia_table *t;

        if (!(o->want & IA_OUT_TABLES))
                return NULL; /* a layout without tables: ia_table_* take NULL */
        t = ia_table_new(id, title, cols, ncols);
        if (t) {
                *o->tail = t;
                o->tail = &t->next;
        }
        return t;
}

static void prom_head(struct ia_rbuf *b, const char *name, const char *type, const char *help)
{
        ia_rbuf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"} v   (value already escaped by ia_escape_name) */
static void prom_u(struct ia_rbuf *b, const char *name, const char *label, const char *value,
                   uint64_t v)
{
        ia_rbuf_adds(b, name);
        if (label) {
                ia_rbuf_addf(b, "{%s=\"", label);
                ia_prom_label(b, value);
                ia_rbuf_adds(b, "\"}");
        }
        ia_rbuf_addf(b, " %" PRIu64 "\n", v);
}

/* A disk guests write to: nothing backs onto it, no image keeps data in it. */
static bool is_leaf(const struct ia_rpt_image *m)
{
        return m->nchildren == 0 && !m->used_as_data;
}

static void agg_add(struct ia_rpt_agg *a, const struct ia_rpt_image *m)
{
        uint64_t own = m->sp.own_data;
        uint64_t flat = m->sp.own_data + m->sp.backing_data;

        a->images++;
        a->virtual_size += m->virtual_size;
        a->file_size += m->file_size;
        a->allocated += m->allocated;
        a->own_data += own;
        a->backing_data += m->sp.backing_data;
        a->zero += m->sp.zero;
        a->unallocated += m->sp.unallocated;
        a->unknown += m->sp.unknown;
        a->compressed += m->sp.compressed;
        a->flattened += flat;
        a->overhead += m->allocated > own ? m->allocated - own : 0;
        a->unmapped += m->virtual_size > m->sp.mapped ? m->virtual_size - m->sp.mapped : 0;
        if (is_leaf(m))
                a->leaf_virtual += m->virtual_size;
}

static double overcommit(const struct ia_rpt_agg *a, bool *ok)
{
        *ok = a->allocated > 0;
        return a->allocated ? (double)a->leaf_virtual / (double)a->allocated : 0.0;
}

static char *iso_time(int64_t secs, char *buf, size_t n)
{
        time_t t = (time_t)secs;
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, n, "unknown");
        return buf;
}

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
        ia_jw_init(w, want & IA_OUT_JSON ? json : NULL);
        if (!w->out)
                return 0;
        ia_jw_open(w, '{');
        ia_jw_kv(w, "schema_version", ji(IA_REPORT_SCHEMA_VERSION));
        tool = json_object_new_object();
        jset(tool, "name", jstr("imgaudit"));
        jset(tool, "version", jstr(IMGAUDIT_VERSION));
        ia_jw_kv(w, "tool", tool);
        ia_jw_kv(w, "generated_at", jstr(iso_time(r->now, now, sizeof(now))));
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

/* ---- summary ---- */

struct count {
        const char *key;
        uint64_t images, virtual_size, allocated;
};

static int cmp_count(const void *a, const void *b)
{
        return strcmp(((const struct count *)a)->key, ((const struct count *)b)->key);
}

/* Group images by format (by_status false) or status, sorted by key. */
static struct count *group(const struct ia_rpt *r, bool by_status, size_t *n)
{
        struct count *c = calloc(r->nimg + 1, sizeof(*c));

        *n = 0;
        if (!c)
                return NULL;
        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                const char *k = by_status ? m->status : (m->format ? m->format : "unknown");
                size_t j;

                for (j = 0; j < *n; j++)
                        if (strcmp(c[j].key, k) == 0)
                                break;
                if (j == *n)
                        c[(*n)++].key = k;
                c[j].images++;
                c[j].virtual_size += m->virtual_size;
                c[j].allocated += m->allocated;
        }
        qsort(c, *n, sizeof(*c), cmp_count);
        return c;
}

static int sec_summary(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        static const struct ia_col scols[] = {
            {"key", "field", IA_COL_TEXT},
            {"value", "value", IA_COL_TEXT},
        };
        static const struct ia_col cols[] = {
            {"group", "group", IA_COL_TEXT},
            {"name", "name", IA_COL_TEXT},
            {"images", "images", IA_COL_INT},
            {"virtual_bytes", "virtual", IA_COL_BYTES},
            {"allocated_bytes", "on disk", IA_COL_BYTES},
        };
        const struct ia_rpt_scan *s = &r->scan;
        json_object *js = json_object_new_object(), *arr;
        struct ia_table *ts, *t;
        struct count *c;
        uint64_t tv = 0, ta = 0, tf = 0;
        size_t n;
        char buf[64];

        ts = add_table(o, "scan", "Scan", scols, NCOLS(scols));
        t = add_table(o, "summary", "Images by format and status", cols, NCOLS(cols));
        if (!js || NO_TABLE(o, ts) || NO_TABLE(o, t)) {
                json_object_put(js);
                return NOMEM(err);
        }
#define KV(k, v)                                                                                   \
        do {                                                                                       \
                ia_table_row(ts, 0);                                                               \
                ia_table_text(ts, k);                                                              \
                ia_table_text(ts, v);                                                              \
        } while (0)
        snprintf(buf, sizeof(buf), "%" PRId64, s->id);
        KV("id", buf);
        KV("status", s->status);
        KV("started_at", s->started_at);
        KV("finished_at", s->finished_at ? s->finished_at : "");
        /* values without units: CSV readers load them as numbers */
        if (s->has_duration)
                snprintf(buf, sizeof(buf), "%.0f", s->duration);
        KV("duration_seconds", s->has_duration ? buf : "");
        KV("host", s->host ? s->host : "");
        for (size_t i = 0; i < s->nroots; i++)
                KV("root", s->roots[i]);
        snprintf(buf, sizeof(buf), "%" PRIu64, s->files_seen);
        KV("files_seen", buf);
        snprintf(buf, sizeof(buf), "%" PRIu64, s->problems);
        KV("errors", buf);
#undef KV

        for (int pass = 0; pass < 2; pass++) {
                c = group(r, pass == 1, &n);
                if (!c)
                        return NOMEM(err);
                arr = json_object_new_array();
                for (size_t i = 0; i < n; i++) {
                        json_object *e = json_object_new_object();

                        jset(e, pass ? "status" : "format", jstr(c[i].key));
                        jset(e, "images", ju(c[i].images));
                        jset(e, "virtual_bytes", ju(c[i].virtual_size));
                        jset(e, "allocated_bytes", ju(c[i].allocated));
                        json_object_array_add(arr, e);
                        ia_table_row(t, 0);
                        ia_table_text(t, pass ? "status" : "format");
                        ia_table_text(t, c[i].key);
                        ia_table_int(t, (int64_t)c[i].images);
                        ia_table_bytes(t, c[i].virtual_size);
                        ia_table_bytes(t, c[i].allocated);
                }
                jset(js, pass ? "by_status" : "by_format", arr);
                free(c);
        }
        for (size_t i = 0; i < r->nimg; i++) {
                tv += r->img[i].virtual_size;
                ta += r->img[i].allocated;
                tf += r->img[i].file_size;
        }
        ia_table_row(t, 0);
        ia_table_text(t, "total");
        ia_table_text(t, "all");
        ia_table_int(t, (int64_t)r->nimg);
        ia_table_bytes(t, tv);
        ia_table_bytes(t, ta);
        jset(js, "images", ju(r->nimg));
        jset(js, "virtual_bytes", ju(tv));
        jset(js, "file_bytes", ju(tf));
        jset(js, "allocated_bytes", ju(ta));
        jset(js, "errors", ju(s->problems));
        jset(js, "findings", ju(r->nfindings));
        jset(js, "broken_links", ju(r->nlinks));
        ia_jw_value(&o->jw, js);

        return 0;
}

/* ---- capacity ---- */

static const struct ia_col cap_cols[] = {
    {"scope", "scope", IA_COL_TEXT},
    {"name", "name", IA_COL_TEXT},
    {"images", "images", IA_COL_INT},
    {"virtual_bytes", "virtual", IA_COL_BYTES},
    {"file_bytes", "file", IA_COL_BYTES},
    {"allocated_bytes", "on disk", IA_COL_BYTES},
    {"own_data_bytes", "own data", IA_COL_BYTES},
    {"backing_data_bytes", "backing", IA_COL_BYTES},
    {"zero_bytes", "zero", IA_COL_BYTES},
    {"unallocated_bytes", "unalloc", IA_COL_BYTES},
    {"unknown_bytes", "unknown", IA_COL_BYTES},
    {"compressed_bytes", "compr", IA_COL_BYTES},
    {"flattened_bytes", "flattened", IA_COL_BYTES},
    {"metadata_overhead_bytes", "overhead", IA_COL_BYTES},
};

static void cap_row(struct ia_table *t, const char *scope, const struct ia_rpt_agg *a)
{
        ia_table_row(t, 0);
        ia_table_text(t, scope);
        ia_table_text(t, a->name);
        ia_table_int(t, (int64_t)a->images);
        ia_table_bytes(t, a->virtual_size);
        ia_table_bytes(t, a->file_size);
        ia_table_bytes(t, a->allocated);
        ia_table_bytes(t, a->own_data);
        ia_table_bytes(t, a->backing_data);
        ia_table_bytes(t, a->zero);
        ia_table_bytes(t, a->unallocated);
        ia_table_bytes(t, a->unknown);
        ia_table_bytes(t, a->compressed);
        ia_table_bytes(t, a->flattened);
        ia_table_bytes(t, a->overhead);
}

static void cap_json(json_object *e, const struct ia_rpt_agg *a, bool with_count)
{
        if (with_count)
                jset(e, "images", ju(a->images));
        jset(e, "virtual_bytes", ju(a->virtual_size));
        jset(e, "file_bytes", ju(a->file_size));
        jset(e, "allocated_bytes", ju(a->allocated));
        jset(e, "own_data_bytes", ju(a->own_data));
        jset(e, "backing_data_bytes", ju(a->backing_data));
        jset(e, "zero_bytes", ju(a->zero));
        jset(e, "unallocated_bytes", ju(a->unallocated));
        jset(e, "unknown_bytes", ju(a->unknown));
        jset(e, "compressed_bytes", ju(a->compressed));
        jset(e, "flattened_bytes", ju(a->flattened));
        jset(e, "metadata_overhead_bytes", ju(a->overhead));
        jset(e, "unmapped_bytes", ju(a->unmapped));
}

/* Metrics: one family per figure, per scope. */
static const struct {
        const char *name, *help;
        size_t off;
} figures[] = {
    {"virtual", "Virtual (guest-visible) size.", offsetof(struct ia_rpt_agg, virtual_size)},
    {"file", "Apparent file size.", offsetof(struct ia_rpt_agg, file_size)},
    {"allocated", "Bytes allocated on disk (st_blocks * 512).",
     offsetof(struct ia_rpt_agg, allocated)},
    {"own_data", "Bytes mapped as data in the image's own layer.",
     offsetof(struct ia_rpt_agg, own_data)},
    {"backing_data", "Bytes read through from backing files.",
     offsetof(struct ia_rpt_agg, backing_data)},
    {"zero", "Bytes that read as zeros and are allocated as such.",
     offsetof(struct ia_rpt_agg, zero)},
    {"unallocated", "Bytes allocated in no layer.", offsetof(struct ia_rpt_agg, unallocated)},
    {"unknown", "Bytes behind a backing file that could not be opened (content unknown).",
     offsetof(struct ia_rpt_agg, unknown)},
    {"compressed", "Data bytes stored compressed.", offsetof(struct ia_rpt_agg, compressed)},
    {"flattened", "Data bytes through the whole chain (size when flattened).",
     offsetof(struct ia_rpt_agg, flattened)},
    {"metadata_overhead", "Allocated on disk minus own data, at least 0.",
     offsetof(struct ia_rpt_agg, overhead)},
};

static uint64_t fig(const struct ia_rpt_agg *a, size_t k)
{
        return *(const uint64_t *)((const char *)a + figures[k].off);
}

static int cmp_agg(const void *a, const void *b)
{
        return strcmp(((const struct ia_rpt_agg *)a)->name, ((const struct ia_rpt_agg *)b)->name);
}

/* A capacity row of scope "directory" or "root" in JSON: its name, then the figures. */
static json_object *cap_group_json(const struct ia_rpt_agg *a)
{
        json_object *e = json_object_new_object();

        jset(e, "name", jstr(a->name));
        cap_json(e, a, true);
        return e;
}

static int sec_capacity(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        struct ia_rpt_agg *imgs = calloc(r->nimg + 1, sizeof(*imgs));
        struct ia_rpt_agg *roots = calloc(r->scan.nroots + 1, sizeof(*roots));
        struct ia_rpt_agg total = {.name = (char *)"all"};
        struct ia_table *t = add_table(o, "capacity", "Capacity", cap_cols, NCOLS(cap_cols));
        struct ia_jw *w = &o->jw;
        struct ia_rbuf *p = &o->prom;
        json_object *jt, *jo;
        char note[256], metric[96];
        bool ok;
        double ratio;

        if (!imgs || !roots || NO_TABLE(o, t))
                goto nomem;
        o->dirs = calloc(r->nimg + 1, sizeof(*o->dirs));
        if (!o->dirs)
                goto nomem;
        ia_jw_open(w, '{');
        ia_jw_key(w, "images");
        ia_jw_open(w, '[');
        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                size_t d;

                imgs[i].name = m->name;
                agg_add(&imgs[i], m);
                agg_add(&total, m);
                if (m->root >= 0)
                        agg_add(&roots[m->root], m);
                for (d = 0; d < o->ndirs; d++)
                        if (strcmp(o->dirs[d].name, m->dir) == 0)
                                break;
                if (d == o->ndirs) {
                        o->dirs[d].name = strdup(m->dir);
                        if (!o->dirs[d].name)
                                goto nomem;
                        o->ndirs++;
                }
                agg_add(&o->dirs[d], m);

                /* a row per image, written as it is made */
                if (w->out) {
                        json_object *e = json_object_new_object();

                        jset(e, "name", jstr(m->name));
                        jset(e, "path", jpath(m->path, m->path_len));
                        jset(e, "member", m->member ? jpath(m->member, m->member_len) : NULL);
                        jset(e, "directory", jstr(m->dir));
                        jset(e, "root", m->root >= 0 ? jstr(r->scan.roots[m->root]) : NULL);
                        jset(e, "format", jstr(m->format));
                        jset(e, "status", jstr(m->status));
                        cap_json(e, &imgs[i], false);
                        ia_jw_value(w, e);
                }
                cap_row(t, "image", &imgs[i]);
        }
        ia_jw_close(w, ']');
        qsort(o->dirs, o->ndirs, sizeof(*o->dirs), cmp_agg);
        ia_jw_key(w, "directories");
        ia_jw_open(w, '[');
        for (size_t d = 0; d < o->ndirs; d++) {
                if (w->out)
                        ia_jw_value(w, cap_group_json(&o->dirs[d]));
                cap_row(t, "directory", &o->dirs[d]);
        }
        ia_jw_close(w, ']');
        ia_jw_key(w, "roots");
        ia_jw_open(w, '[');
        for (size_t k = 0; k < r->scan.nroots; k++) {
                roots[k].name = r->scan.roots[k];
                if (w->out)
                        ia_jw_value(w, cap_group_json(&roots[k]));
                cap_row(t, "root", &roots[k]);
        }
        ia_jw_close(w, ']');
        cap_row(t, "total", &total);
        ratio = overcommit(&total, &ok);
        if (w->out) {
                jt = json_object_new_object();
                cap_json(jt, &total, true);
                ia_jw_kv(w, "totals", jt);
                jo = json_object_new_object();
                jset(jo, "ratio", ok ? jratio(ratio) : NULL);
                jset(jo, "leaf_virtual_bytes", ju(total.leaf_virtual));
                jset(jo, "allocated_bytes", ju(total.allocated));
                ia_jw_kv(w, "overcommit", jo);
        }
        ia_jw_close(w, '}');
        snprintf(note, sizeof(note), "overcommit ratio: - (nothing allocated)");
        if (ok) {
                size_t leaves = 0;
                for (size_t i = 0; i < r->nimg; i++)
                        leaves += is_leaf(&r->img[i]);
                snprintf(note, sizeof(note),
                         "overcommit ratio %.2f (virtual size of the %zu leaf images / bytes "
                         "allocated by all %" PRIu64 " images)",
                         ratio, leaves, total.images);
        }
        ia_table_note(t, note);
        o->total = total;
        o->total.name = NULL;
        o->have_capacity = true;

        /* store, root and format totals are in ia_prom_store(); these series grow with the store */
        for (size_t k = 0; o->prom_per_image && k < NCOLS(figures); k++) {
                snprintf(metric, sizeof(metric), "imgaudit_image_%s_bytes", figures[k].name);
                prom_head(p, metric, "gauge", figures[k].help);
                for (size_t i = 0; i < r->nimg; i++)
                        prom_u(p, metric, "image", imgs[i].name, fig(&imgs[i], k));
        }
        for (size_t k = 0; o->prom_per_image && k < NCOLS(figures); k++) {
                snprintf(metric, sizeof(metric), "imgaudit_directory_%s_bytes", figures[k].name);
                prom_head(p, metric, "gauge", figures[k].help);
                for (size_t d = 0; d < o->ndirs; d++)
                        prom_u(p, metric, "directory", o->dirs[d].name, fig(&o->dirs[d], k));
        }
        free(imgs);
        free(roots);
        return 0;
nomem:
        free(imgs);
        free(roots);
        return NOMEM(err);
}

/* ---- metrics of the whole store (every Prometheus file) ---- */

/* One (format, status) pair and its images. */
struct fs_count {
        const char *format, *status;
        struct ia_rpt_agg a;
};

static int cmp_fs(const void *a, const void *b)
{
        const struct fs_count *x = a, *y = b;
        int c = strcmp(x->format, y->format);

        return c ? c : strcmp(x->status, y->status);
}

static void prom_fs(struct ia_rbuf *b, const char *name, const struct fs_count *c, uint64_t v)
{
        ia_rbuf_addf(b, "%s{format=\"", name);
        ia_prom_label(b, c->format);
        ia_rbuf_adds(b, "\",status=\"");
        ia_prom_label(b, c->status);
        ia_rbuf_addf(b, "\"} %" PRIu64 "\n", v);
}

static void prom_f(struct ia_rbuf *b, const char *name, double v)
{
        ia_rbuf_addf(b, "%s %.0f\n", name, v);
}

/*
 * The latest scan that ended, complete or aborted (a running scan, or one
 * killed before the next run marked it aborted, has not ended): what alerts
 * watch.  The figures below are those of the reported scan.
 */
static int prom_last_scan(struct ia_rpt *r, struct ia_rbuf *p, struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc;

        if (ia_rpt_prepare(
                r,
                "SELECT status = 'complete', CAST(strftime('%s', started_at) AS INTEGER), "
                "CAST(strftime('%s', finished_at) AS INTEGER), "
                "(julianday(finished_at) - julianday(started_at)) * 86400.0 "
                "FROM scans WHERE status <> 'running' AND finished_at IS NOT NULL "
                "ORDER BY id DESC LIMIT 1",
                &st, err) < 0)
                return -1;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                double dur = sqlite3_column_double(st, 3);

                prom_head(p, "imgaudit_last_scan_start_timestamp_seconds", "gauge",
                          "When the latest scan that ended (complete or aborted) started.");
                prom_f(p, "imgaudit_last_scan_start_timestamp_seconds",
                       (double)sqlite3_column_int64(st, 1));
                prom_head(p, "imgaudit_last_scan_finish_timestamp_seconds", "gauge",
                          "When the latest scan that ended finished.");
                prom_f(p, "imgaudit_last_scan_finish_timestamp_seconds",
                       (double)sqlite3_column_int64(st, 2));
                prom_head(p, "imgaudit_last_scan_duration_seconds", "gauge",
                          "How long the latest scan that ended ran.");
                prom_f(p, "imgaudit_last_scan_duration_seconds", dur > 0 ? dur : 0);
                prom_head(p, "imgaudit_last_scan_success", "gauge",
                          "1 if the latest scan that ended is complete, 0 if it aborted.");
                prom_u(p, "imgaudit_last_scan_success", NULL, NULL,
                       (uint64_t)sqlite3_column_int(st, 0));
                rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return ia_rpt_db_error(r, err, "reading the latest scan");
        return 0;
}

int ia_prom_store(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        const struct ia_rpt_scan *s = &r->scan;
        struct ia_rbuf *p = &o->prom;
        struct fs_count *fs = calloc(r->nimg + 1, sizeof(*fs));
        struct ia_rpt_agg *roots = calloc(s->nroots + 1, sizeof(*roots));
        struct ia_rpt_agg total = {0};
        char metric[96];
        size_t nfs = 0;
        double ratio;
        bool ok;

        if (!fs || !roots) {
                free(fs);
                free(roots);
                return NOMEM(err);
        }
        prom_head(p, "imgaudit_scan_info", "gauge",
                  "The imgaudit version that made the reported scan (value 1).");
        ia_rbuf_adds(p, "imgaudit_scan_info{version=\"");
        ia_prom_label(p, s->tool_version ? s->tool_version : "");
        ia_rbuf_adds(p, "\"} 1\n");
        if (s->has_duration) {
                prom_head(p, "imgaudit_scan_duration_seconds", "gauge",
                          "How long the reported scan took.");
                prom_f(p, "imgaudit_scan_duration_seconds", s->duration);
        }
        prom_head(p, "imgaudit_scan_errors", "gauge",
                  "Items the reported scan could not scan (each recorded with its reason).");
        prom_u(p, "imgaudit_scan_errors", NULL, NULL, s->problems);
        if (prom_last_scan(r, p, err) < 0) {
                free(fs);
                free(roots);
                return -1;
        }

        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                const char *f = m->format ? m->format : "unknown";
                size_t j;

                for (j = 0; j < nfs; j++)
                        if (strcmp(fs[j].format, f) == 0 && strcmp(fs[j].status, m->status) == 0)
                                break;
                if (j == nfs) {
                        fs[j].format = f;
                        fs[j].status = m->status;
                        nfs++;
                }
                agg_add(&fs[j].a, m);
                agg_add(&total, m);
                if (m->root >= 0 && (size_t)m->root < s->nroots)
                        agg_add(&roots[m->root], m);
        }
        qsort(fs, nfs, sizeof(*fs), cmp_fs);
        prom_head(p, "imgaudit_images", "gauge",
                  "Images of the reported scan by format and status.");
        for (size_t j = 0; j < nfs; j++)
                prom_fs(p, "imgaudit_images", &fs[j], fs[j].a.images);
        for (size_t k = 0; k < NCOLS(figures); k++) {
                snprintf(metric, sizeof(metric), "imgaudit_images_%s_bytes", figures[k].name);
                prom_head(p, metric, "gauge", figures[k].help);
                for (size_t j = 0; j < nfs; j++)
                        prom_fs(p, metric, &fs[j], fig(&fs[j].a, k));
        }
        for (size_t k = 0; k < NCOLS(figures); k++) {
                snprintf(metric, sizeof(metric), "imgaudit_store_%s_bytes", figures[k].name);
                prom_head(p, metric, "gauge", figures[k].help);
                prom_u(p, metric, NULL, NULL, fig(&total, k));
        }
        ratio = overcommit(&total, &ok);
        if (ok) {
                prom_head(p, "imgaudit_store_overcommit_ratio", "gauge",
                          "Virtual size of leaf images / bytes allocated by all images.");
                ia_rbuf_addf(p, "imgaudit_store_overcommit_ratio %.6f\n", ratio);
        }
        /* a root given twice is one series */
        for (size_t k = 0; k < s->nroots; k++)
                for (size_t j = 0; j < k; j++)
                        if (strcmp(s->roots[j], s->roots[k]) == 0)
                                roots[k].name = (char *)"";
        prom_head(p, "imgaudit_root_images", "gauge", "Images per scan root.");
        for (size_t k = 0; k < s->nroots; k++)
                if (!roots[k].name)
                        prom_u(p, "imgaudit_root_images", "root", s->roots[k], roots[k].images);
        for (size_t f = 0; f < NCOLS(figures); f++) {
                snprintf(metric, sizeof(metric), "imgaudit_root_%s_bytes", figures[f].name);
                prom_head(p, metric, "gauge", figures[f].help);
                for (size_t k = 0; k < s->nroots; k++)
                        if (!roots[k].name)
                                prom_u(p, metric, "root", s->roots[k], fig(&roots[k], f));
        }

        prom_head(p, "imgaudit_broken_links", "gauge",
                  "Links (backing, data file, extent) not ok.");
        prom_u(p, "imgaudit_broken_links", NULL, NULL, r->nlinks);
        /* findings are sorted by category */
        prom_head(p, "imgaudit_findings", "gauge",
                  "Findings by category: scanner findings, image-STATUS, link-STATUS.");
        for (size_t i = 0, n = 0; i < r->nfindings; i++) {
                n++;
                if (i + 1 < r->nfindings &&
                    strcmp(r->findings[i].category, r->findings[i + 1].category) == 0)
                        continue;
                prom_u(p, "imgaudit_findings", "category", r->findings[i].category, n);
                n = 0;
        }
        free(fs);
        free(roots);
        return p->nomem ? NOMEM(err) : 0;
}

/* ---- sharing ---- */

/* Space freed by deleting image i: itself plus every base left with no child. */
static void compute_freed(struct ia_rpt *r, size_t i)
{
        struct ia_rpt_image *m = &r->img[i];
        long c = (long)i, p = m->parent;
        size_t guard = 0;

        m->freed = m->allocated;
        m->orphaned = 0;
        while (p >= 0 && guard++ <= r->nimg) {
                const struct ia_rpt_image *b = &r->img[p];

                if (b->nchildren != 1 || b->children[0] != (size_t)c || b->used_by_ovf ||
                    b->used_as_data)
                        break;
                m->freed += b->allocated;
                m->orphaned++;
                c = p;
                p = b->parent;
        }
}

struct walk {
        size_t img;
        int depth;
};

/* Descendants of base in DFS order with their distance from it. */
static struct walk *descendants(const struct ia_rpt *r, size_t base, size_t *n)
{
        struct walk *out = calloc(r->img[base].ndesc + 1, sizeof(*out));
        struct walk *stack = calloc(r->img[base].ndesc + 1, sizeof(*stack));
        size_t sp = 0;

        *n = 0;
        if (!out || !stack) {
                free(out);
                free(stack);
                return NULL;
        }
        for (size_t k = r->img[base].nchildren; k-- > 0;)
                stack[sp++] = (struct walk){r->img[base].children[k], 1};
        while (sp > 0 && *n < r->img[base].ndesc) {
                struct walk w = stack[--sp];
                const struct ia_rpt_image *m = &r->img[w.img];

                out[(*n)++] = w;
                for (size_t k = m->nchildren; k-- > 0 && sp <= r->img[base].ndesc;)
                        stack[sp++] = (struct walk){m->children[k], w.depth + 1};
        }
        free(stack);
        return out;
}

/* The per-base gauges of the sharing section. */
static uint64_t base_children(const struct ia_rpt_image *m)
{
        return m->nchildren;
}

static uint64_t base_descendants(const struct ia_rpt_image *m)
{
        return m->ndesc;
}

static uint64_t base_visible(const struct ia_rpt_image *m)
{
        return m->visible;
}

static uint64_t base_dead(const struct ia_rpt_image *m)
{
        return m->dead;
}

static const struct {
        const char *name, *help;
        uint64_t (*get)(const struct ia_rpt_image *m);
} base_metrics[] = {
    {"imgaudit_base_children", "Direct children of a backing image.", base_children},
    {"imgaudit_base_descendants", "Transitive children of a backing image.", base_descendants},
    {"imgaudit_base_visible_bytes",
     "Own data of a backing image still read through at least one descendant.", base_visible},
    {"imgaudit_base_dead_bytes", "Own data of a backing image shadowed in every descendant.",
     base_dead},
};

static int sec_sharing(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        static const struct ia_col cols[] = {
            {"kind", "kind", IA_COL_TEXT},
            {"image", "image", IA_COL_TEXT},
            {"base", "base", IA_COL_TEXT},
            {"depth", "depth", IA_COL_INT},
            {"children", "children", IA_COL_INT},
            {"descendants", "desc", IA_COL_INT},
            {"own_data_bytes", "own data", IA_COL_BYTES},
            {"visible_bytes", "visible", IA_COL_BYTES},
            {"dead_bytes", "dead", IA_COL_BYTES},
            {"reads_from_base_bytes", "from base", IA_COL_BYTES},
            {"allocated_bytes", "on disk", IA_COL_BYTES},
            {"freed_if_deleted_bytes", "freed if deleted", IA_COL_BYTES},
            {"breaks_images", "breaks", IA_COL_INT},
        };
        struct ia_table *t =
            add_table(o, "sharing", "Sharing per backing image", cols, NCOLS(cols));
        struct ia_jw *w = &o->jw;
        struct rpt_ws {
                uint64_t reads;
        } *ws = NULL;
        size_t *dimg = NULL;
        int *ddepth = NULL;
        uint64_t *dreads = NULL;
        struct ia_rbuf *p = &o->prom;
        int ret = -1;

        if (NO_TABLE(o, t)) {
                NOMEM(err);
                goto out;
        }
        for (size_t i = 0; i < r->nimg; i++)
                compute_freed(r, i);
        ws = calloc(r->nimg + 1, sizeof(*ws));
        dimg = calloc(r->nimg + 1, sizeof(*dimg));
        ddepth = calloc(r->nimg + 1, sizeof(*ddepth));
        dreads = calloc(r->nimg + 1, sizeof(*dreads));
        if (!ws || !dimg || !ddepth || !dreads) {
                NOMEM(err);
                goto out;
        }
        ia_jw_open(w, '{');
        ia_jw_key(w, "bases");
        ia_jw_open(w, '[');
        for (size_t b = 0; b < r->nimg; b++) {
                struct ia_rpt_image *base = &r->img[b];
                json_object *e, *jov, *jch;
                struct walk *d;
                size_t nd;

                if (base->nchildren == 0)
                        continue;
                d = descendants(r, b, &nd);
                if (!d) {
                        NOMEM(err);
                        goto out;
                }
                for (size_t k = 0; k < nd; k++) {
                        dimg[k] = d[k].img;
                        ddepth[k] = d[k].depth;
                }
                if (ia_rpt_share(r, b, dimg, ddepth, nd, &base->visible, dreads, err) < 0) {
                        free(d);
                        goto out;
                }
                for (size_t k = 0; k < nd; k++)
                        ws[d[k].img].reads = dreads[k];
                base->dead =
                    base->sp.own_data > base->visible ? base->sp.own_data - base->visible : 0;
                base->sharing_done = true;

                ia_table_row(t, 0);
                ia_table_text(t, "base");
                ia_table_text(t, base->name);
                ia_table_text(t, base->name);
                ia_table_int(t, 0);
                ia_table_int(t, (int64_t)base->nchildren);
                ia_table_int(t, (int64_t)base->ndesc);
                ia_table_bytes(t, base->sp.own_data);
                ia_table_bytes(t, base->visible);
                ia_table_bytes(t, base->dead);
                ia_table_null(t);
                ia_table_bytes(t, base->allocated);
                ia_table_bytes(t, base->freed);
                ia_table_int(t, (int64_t)base->ndesc);

                e = json_object_new_object();
                jset(e, "name", jstr(base->name));
                jset(e, "format", jstr(base->format));
                jset(e, "children", ju(base->nchildren));
                jset(e, "descendants", ju(base->ndesc));
                jset(e, "own_data_bytes", ju(base->sp.own_data));
                jset(e, "visible_bytes", ju(base->visible));
                jset(e, "dead_bytes", ju(base->dead));
                jset(e, "allocated_bytes", ju(base->allocated));
                jch = json_object_new_array();
                for (size_t k = 0; k < base->nchildren; k++)
                        json_object_array_add(jch, jstr(r->img[base->children[k]].name));
                jset(e, "direct_children", jch);
                jov = json_object_new_array();
                for (size_t k = 0; k < nd; k++) {
                        const struct ia_rpt_image *m = &r->img[d[k].img];
                        json_object *x = json_object_new_object();

                        ia_table_row(t, (unsigned)d[k].depth);
                        ia_table_text(t, "overlay");
                        ia_table_text(t, m->name);
                        ia_table_text(t, base->name);
                        ia_table_int(t, d[k].depth);
                        ia_table_int(t, (int64_t)m->nchildren);
                        ia_table_int(t, (int64_t)m->ndesc);
                        ia_table_bytes(t, m->sp.own_data);
                        ia_table_null(t);
                        ia_table_null(t);
                        ia_table_bytes(t, ws[d[k].img].reads);
                        ia_table_bytes(t, m->allocated);
                        ia_table_bytes(t, m->freed);
                        ia_table_int(t, (int64_t)m->ndesc);

                        jset(x, "name", jstr(m->name));
                        jset(x, "depth", ji(d[k].depth));
                        jset(x, "unique_bytes", ju(m->sp.own_data));
                        jset(x, "reads_from_base_bytes", ju(ws[d[k].img].reads));
                        jset(x, "allocated_bytes", ju(m->allocated));
                        jset(x, "freed_if_deleted_bytes", ju(m->freed));
                        json_object_array_add(jov, x);
                }
                jset(e, "overlays", jov);
                ia_jw_value(w, e);
                free(d);
        }
        ia_jw_close(w, ']');
        ia_jw_key(w, "deletion");
        ia_jw_open(w, '[');
        for (size_t i = 0; w->out && i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                json_object *x = json_object_new_object();

                jset(x, "name", jstr(m->name));
                jset(x, "allocated_bytes", ju(m->allocated));
                jset(x, "freed_bytes", ju(m->freed));
                jset(x, "orphaned_bases", ju(m->orphaned));
                jset(x, "breaks_images", ju(m->ndesc));
                ia_jw_value(w, x);
        }
        ia_jw_close(w, ']');
        ia_jw_close(w, '}');
        o->have_sharing = true;

        for (size_t k = 0; o->prom_per_image && k < NCOLS(base_metrics); k++) {
                prom_head(p, base_metrics[k].name, "gauge", base_metrics[k].help);
                for (size_t i = 0; i < r->nimg; i++)
                        if (r->img[i].sharing_done)
                                prom_u(p, base_metrics[k].name, "base", r->img[i].name,
                                       base_metrics[k].get(&r->img[i]));
        }
        if (o->prom_per_image) {
                prom_head(p, "imgaudit_image_freed_if_deleted_bytes", "gauge",
                          "Bytes freed by deleting the image: its own plus bases left orphaned.");
                for (size_t i = 0; i < r->nimg; i++)
                        prom_u(p, "imgaudit_image_freed_if_deleted_bytes", "image", r->img[i].name,
                               r->img[i].freed);
        }
        ret = 0;
out:
        free(ws);
        free(dimg);
        free(ddepth);
        free(dreads);
        return ret;
}

/* ---- chains ---- */

static const char *link_state(const struct ia_rpt *r, size_t i)
{
        const struct ia_rpt_image *m = &r->img[i];

        if (m->parent >= 0)
                return "ok";
        if (!m->has_backing)
                return "";
        if (m->backing_ok)
                return "ok (outside the scan)";
        for (size_t k = 0; k < r->nlinks; k++)
                if (r->links[k].image == (long)i && strcmp(r->links[k].kind, "backing") == 0)
                        return r->links[k].status;
        return "unresolved";
}

static json_object *chain_node(const struct ia_rpt *r, struct ia_table *t, size_t i, unsigned depth)
{
        const struct ia_rpt_image *m = &r->img[i];
        json_object *e = json_object_new_object(), *ch = json_object_new_array();

        ia_table_row(t, depth);
        ia_table_text(t, m->name);
        ia_table_text(t, m->format);
        ia_table_text(t, m->status);
        ia_table_text(t, link_state(r, i));
        ia_table_int(t, m->chain_depth);
        ia_table_bytes(t, m->virtual_size);
        ia_table_bytes(t, m->allocated);
        ia_table_bytes(t, m->sp.own_data);
        jset(e, "name", jstr(m->name));
        jset(e, "format", jstr(m->format));
        jset(e, "status", jstr(m->status));
        jset(e, "link", jstr(link_state(r, i)));
        jset(e, "chain_depth", ji(m->chain_depth));
        jset(e, "allocated_bytes", ju(m->allocated));
        if (depth < 4096)
                for (size_t k = 0; k < m->nchildren; k++)
                        json_object_array_add(ch, chain_node(r, t, m->children[k], depth + 1));
        jset(e, "children", ch);
        return e;
}

static int sec_chains(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        static const struct ia_col cols[] = {
            {"image", "image", IA_COL_TEXT},
            {"format", "format", IA_COL_TEXT},
            {"status", "status", IA_COL_TEXT},
            {"backing_link", "link", IA_COL_TEXT},
            {"chain_depth", "depth", IA_COL_INT},
            {"virtual_bytes", "virtual", IA_COL_BYTES},
            {"allocated_bytes", "on disk", IA_COL_BYTES},
            {"own_data_bytes", "own data", IA_COL_BYTES},
        };
        static const struct ia_col hcols[] = {
            {"chain_depth", "depth", IA_COL_INT},
            {"images", "images", IA_COL_INT},
        };
        static const struct ia_col bcols[] = {
            {"image", "image", IA_COL_TEXT},   {"kind", "kind", IA_COL_TEXT},
            {"name", "name", IA_COL_TEXT},     {"target", "target", IA_COL_TEXT},
            {"status", "status", IA_COL_TEXT}, {"reason", "reason", IA_COL_TEXT},
        };
        struct ia_table *t = add_table(o, "chains", "Backing chains", cols, NCOLS(cols));
        struct ia_table *th =
            add_table(o, "chain_depths", "Chain depth histogram", hcols, NCOLS(hcols));
        struct ia_table *tb = add_table(o, "broken_links", "Broken links", bcols, NCOLS(bcols));
        struct ia_jw *w = &o->jw;
        json_object *jh;
        struct ia_rbuf *p = &o->prom;
        unsigned maxd = 0;
        uint64_t *hist;

        if (NO_TABLE(o, t) || NO_TABLE(o, th) || NO_TABLE(o, tb))
                return NOMEM(err);
        ia_jw_open(w, '{');
        ia_jw_key(w, "trees");
        ia_jw_open(w, '[');
        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];

                if (m->parent < 0 && (m->nchildren > 0 || m->has_backing))
                        ia_jw_value(w, chain_node(r, t, i, 0));
                if (m->chain_depth > maxd && m->chain_depth < 4096)
                        maxd = m->chain_depth;
        }
        ia_jw_close(w, ']');
        hist = calloc(maxd + 1, sizeof(*hist));
        jh = json_object_new_array();
        if (!hist || !jh) {
                free(hist);
                json_object_put(jh);
                return NOMEM(err);
        }
        for (size_t i = 0; i < r->nimg; i++)
                if (r->img[i].chain_depth <= maxd)
                        hist[r->img[i].chain_depth]++;
        prom_head(p, "imgaudit_chain_depth_images", "gauge", "Images by backing chain depth.");
        for (unsigned d = 0; d <= maxd && r->nimg; d++) {
                json_object *e = json_object_new_object();
                char lbl[16];

                jset(e, "depth", ji(d));
                jset(e, "images", ju(hist[d]));
                json_object_array_add(jh, e);
                ia_table_row(th, 0);
                ia_table_int(th, d);
                ia_table_int(th, (int64_t)hist[d]);
                snprintf(lbl, sizeof(lbl), "%u", d);
                prom_u(p, "imgaudit_chain_depth_images", "depth", lbl, hist[d]);
        }
        free(hist);
        ia_jw_kv(w, "depth_histogram", jh);
        ia_jw_key(w, "broken_links");
        ia_jw_open(w, '[');
        for (size_t k = 0; k < r->nlinks; k++) {
                const struct ia_rpt_link *l = &r->links[k];
                json_object *e = json_object_new_object();

                ia_table_row(tb, 0);
                ia_table_text(tb, l->holder);
                ia_table_text(tb, l->kind);
                ia_table_text(tb, l->name);
                ia_table_text(tb, l->target);
                ia_table_text(tb, l->status);
                ia_table_text(tb, l->error);
                jset(e, "image", jstr(l->holder));
                jset(e, "kind", jstr(l->kind));
                jset(e, "name", jstr(l->name));
                jset(e, "target", jstr(l->target));
                jset(e, "status", jstr(l->status));
                jset(e, "reason", jstr(l->error));
                ia_jw_value(w, e);
        }
        ia_jw_close(w, ']');
        ia_jw_close(w, '}');
        o->nbroken = r->nlinks;
        return 0;
}

/* ---- orphans ---- */

/* An orphan: nothing backs onto it, no OVF names it, no image keeps data in it. */
static bool is_orphan(const struct ia_rpt_image *m)
{
        return m->nchildren == 0 && !m->used_by_ovf && !m->used_as_data;
}

static int sec_orphans(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        static const struct ia_col cols[] = {
            {"image", "image", IA_COL_TEXT},
            {"kind", "kind", IA_COL_TEXT},
            {"format", "format", IA_COL_TEXT},
            {"status", "status", IA_COL_TEXT},
            {"modified", "modified", IA_COL_TEXT},
            {"age_days", "age (days)", IA_COL_INT},
            {"allocated_bytes", "on disk", IA_COL_BYTES},
            {"reclaimable_bytes", "reclaimable", IA_COL_BYTES},
        };
        struct ia_table *t =
            add_table(o, "orphans", "Orphans (report only: nothing is deleted)", cols, NCOLS(cols));
        struct ia_jw *w = &o->jw;
        struct ia_rbuf *p = &o->prom;
        uint64_t total = 0;
        size_t n = 0;

        if (NO_TABLE(o, t))
                return NOMEM(err);
        /* the count and the sum come first in the document: one pass for them */
        for (size_t i = 0; i < r->nimg; i++) {
                if (!is_orphan(&r->img[i]))
                        continue;
                compute_freed(r, i);
                total += r->img[i].freed;
                n++;
        }
        ia_jw_open(w, '{');
        ia_jw_kv(w, "count", ju(n));
        ia_jw_kv(w, "reclaimable_bytes", ju(total));
        ia_jw_key(w, "images");
        ia_jw_open(w, '[');
        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                const char *kind;
                char mt[32];
                int64_t age = 0;

                if (!is_orphan(m))
                        continue;
                kind = !m->has_backing ? "standalone" : m->backing_ok ? "overlay" : "broken";
                if (m->has_mtime) {
                        int64_t s = m->mtime_ns / 1000000000;
                        age = r->now > s ? (r->now - s) / 86400 : 0;
                        iso_time(s, mt, sizeof(mt));
                }
                ia_table_row(t, 0);
                ia_table_text(t, m->name);
                ia_table_text(t, kind);
                ia_table_text(t, m->format);
                ia_table_text(t, m->status);
                ia_table_text(t, m->has_mtime ? mt : NULL);
                if (m->has_mtime)
                        ia_table_int(t, age);
                else
                        ia_table_null(t);
                ia_table_bytes(t, m->allocated);
                ia_table_bytes(t, m->freed);
                if (w->out) {
                        json_object *e = json_object_new_object();

                        jset(e, "name", jstr(m->name));
                        jset(e, "kind", jstr(kind));
                        jset(e, "format", jstr(m->format));
                        jset(e, "status", jstr(m->status));
                        jset(e, "modified", m->has_mtime ? jstr(mt) : NULL);
                        jset(e, "age_days", m->has_mtime ? ji(age) : NULL);
                        jset(e, "allocated_bytes", ju(m->allocated));
                        jset(e, "reclaimable_bytes", ju(m->freed));
                        ia_jw_value(w, e);
                }
        }
        ia_jw_close(w, ']');
        ia_jw_close(w, '}');
        o->norphans = n;
        prom_head(p, "imgaudit_orphans", "gauge", "Images no other image or OVF references.");
        prom_u(p, "imgaudit_orphans", NULL, NULL, n);
        prom_head(p, "imgaudit_orphan_reclaimable_bytes", "gauge",
                  "Sum of the orphans' reclaimable bytes, each deleted alone.");
        prom_u(p, "imgaudit_orphan_reclaimable_bytes", NULL, NULL, total);
        return 0;
}

/* ---- findings ---- */

static int sec_findings(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        static const struct ia_col cols[] = {
            {"category", "category", IA_COL_TEXT},
            {"source", "source", IA_COL_TEXT},
            {"image", "image", IA_COL_TEXT},
            {"message", "message", IA_COL_TEXT},
        };
        struct ia_table *t = add_table(o, "findings", "Findings", cols, NCOLS(cols));
        struct ia_jw *w = &o->jw;

        if (NO_TABLE(o, t))
                return NOMEM(err);
        ia_jw_open(w, '{');
        ia_jw_kv(w, "count", ju(r->nfindings));
        ia_jw_key(w, "categories");
        ia_jw_open(w, '[');
        /* findings are sorted by category: one object per run of a category */
        for (size_t i = 0, end; i < r->nfindings; i = end) {
                const char *cat = r->findings[i].category;

                for (end = i + 1; end < r->nfindings; end++)
                        if (strcmp(r->findings[end].category, cat) != 0)
                                break;
                ia_jw_open(w, '{');
                ia_jw_kv(w, "category", jstr(cat));
                ia_jw_kv(w, "count", ju(end - i));
                ia_jw_key(w, "items");
                ia_jw_open(w, '[');
                for (size_t k = i; k < end; k++) {
                        const struct ia_rpt_finding *f = &r->findings[k];

                        if (w->out) {
                                json_object *e = json_object_new_object();

                                jset(e, "source", jstr(f->source));
                                jset(e, "image", jstr(f->name));
                                jset(e, "message", jstr(f->message));
                                ia_jw_value(w, e);
                        }
                        ia_table_row(t, 0);
                        ia_table_text(t, f->category);
                        ia_table_text(t, f->source);
                        ia_table_text(t, f->name);
                        ia_table_text(t, f->message);
                }
                ia_jw_close(w, ']');
                ia_jw_close(w, '}');
        }
        ia_jw_close(w, ']');
        ia_jw_close(w, '}');
        o->nfindings = r->nfindings;
        return 0;
}

/* ---- trend ---- */

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
        struct walk *d;
        size_t nd;

        *g = (struct growth){.name = r->img[b].name, .has_after = true};
        d = descendants(r, b, &nd);
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

static int sec_trend(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
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
            add_table(o, "trend", "Growth (bytes allocated on disk)", cols, NCOLS(cols));
        struct ia_table *tt = add_table(o, "top_growers", "Top growers", tcols, NCOLS(tcols));
        struct ia_table *th = add_table(o, "history", "Scan history", hcols, NCOLS(hcols));
        struct ia_jw *w = &o->jw;
        json_object *x;
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
                jset(x, "before_bytes", ju(tot.before));
                jset(x, "after_bytes", ju(tot.after));
                jset(x, "delta_bytes", ji(delta(tot.before, tot.after)));
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
                        goto nomem;
                trend_json(w, &g);
        }
        ia_jw_close(w, ']');
        ia_jw_key(w, "directories");
        ia_jw_open(w, '[');
        for (size_t i = 0; r->has_prev && i < ndirs; i++)
                trend_json(w, &dirs[i]);
        ia_jw_close(w, ']');
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
                prom_head(p, "imgaudit_trend_from_scan", "gauge",
                          "The earlier scan growth is measured from.");
                ia_rbuf_addf(p, "imgaudit_trend_from_scan %" PRId64 "\n", r->prev_scan.id);
                prom_head(p, "imgaudit_store_growth_bytes", "gauge",
                          "Growth of bytes allocated on disk since the earlier scan.");
                ia_rbuf_addf(p, "imgaudit_store_growth_bytes %" PRId64 "\n",
                             delta(tot.before, tot.after));
                if (o->prom_per_image)
                        prom_head(p, "imgaudit_directory_growth_bytes", "gauge",
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

static int run(enum ia_section s, struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
{
        switch (s) {
        case IA_SEC_SUMMARY:
                return sec_summary(r, o, err);
        case IA_SEC_CAPACITY:
                return sec_capacity(r, o, err);
        case IA_SEC_SHARING:
                return sec_sharing(r, o, err);
        case IA_SEC_CHAINS:
                return sec_chains(r, o, err);
        case IA_SEC_ORPHANS:
                return sec_orphans(r, o, err);
        case IA_SEC_FINDINGS:
                return sec_findings(r, o, err);
        case IA_SEC_TREND:
                return sec_trend(r, o, err);
        case IA_SEC_COUNT:
                break;
        }
        return ia_error_set(err, IA_ERR_INTERNAL, "no section %d", (int)s);
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
