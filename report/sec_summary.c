/*
 * The summary section: the scan, and images by format and status.
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

int ia_sec_summary(struct ia_rpt *r, struct ia_rpt_out *o, struct ia_error *err)
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

        ts = ia_sec_table(o, "scan", "Scan", scols, NCOLS(scols));
        t = ia_sec_table(o, "summary", "Images by format and status", cols, NCOLS(cols));
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
