/*
 * Loading one scan of the store for `imgaudit report`: see rpt.h.
 *
 * The queries are the store's (schema/store_report.c: plain SELECTs, so the
 * report needs no migration and works on a database it may not write); here
 * the rows become the report's structures: escaped names, the scan's roots,
 * the choice of the scans to report and compare.
 */
#define _GNU_SOURCE
#include "rpt_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "escape.h"
#include "rbuf.h"
#include "banned.h"

int ia_rpt_latest_schema(void)
{
        return ia_rdb_schema_latest();
}

static int opened(struct ia_rpt *r)
{
        r->db_schema = ia_rdb_schema(r->db);
        return 0;
}

int ia_rpt_open(struct ia_rpt *r, const char *path, struct ia_error *err)
{
        memset(r, 0, sizeof(*r));
        r->now = (int64_t)time(NULL);
        r->db_path = strdup(path);
        if (!r->db_path)
                return NOMEM(err);
        /* read-only: never created, never migrated, never written; no scan lock is taken */
        if (ia_rdb_open(&r->db, path, err) < 0)
                return -1;
        return opened(r);
}

int ia_rpt_attach(struct ia_rpt *r, struct sqlite3 *db, const char *name, struct ia_error *err)
{
        memset(r, 0, sizeof(*r));
        r->now = (int64_t)time(NULL);
        r->db_path = strdup(name);
        if (!r->db_path)
                return NOMEM(err);
        if (ia_rdb_attach(&r->db, db, name, err) < 0)
                return -1;
        return opened(r);
}

static void scan_release(struct ia_rpt_scan *s)
{
        free(s->started_at);
        free(s->finished_at);
        free(s->status);
        free(s->host);
        free(s->tool_version);
        free(s->abort_reason);
        for (size_t i = 0; i < s->nroots; i++) {
                free(s->roots[i]);
                free(s->raw_roots[i]);
        }
        free(s->roots);
        free(s->raw_roots);
        memset(s, 0, sizeof(*s));
}

void ia_rpt_close(struct ia_rpt *r)
{
        for (size_t i = 0; i < r->nimg; i++) {
                struct ia_rpt_image *m = &r->img[i];

                free(m->path);
                free(m->member);
                free(m->name);
                free(m->dir);
                free(m->format);
                free(m->status);
                free(m->error);
                free(m->backing);
                free(m->children);
        }
        free(r->img);
        for (size_t i = 0; i < r->nlinks; i++) {
                free(r->links[i].holder);
                free(r->links[i].kind);
                free(r->links[i].name);
                free(r->links[i].target);
                free(r->links[i].status);
                free(r->links[i].error);
        }
        free(r->links);
        for (size_t i = 0; i < r->nfindings; i++) {
                free(r->findings[i].category);
                free(r->findings[i].source);
                free(r->findings[i].name);
                free(r->findings[i].message);
        }
        free(r->findings);
        for (size_t i = 0; i < r->nprev; i++) {
                free(r->prev[i].path);
                free(r->prev[i].member);
                free(r->prev[i].name);
                free(r->prev[i].dir);
        }
        free(r->prev);
        for (size_t i = 0; i < r->nhist; i++)
                free(r->hist[i].started_at);
        free(r->hist);
        scan_release(&r->scan);
        scan_release(&r->prev_scan);
        ia_rdb_close(r->db);
        free(r->db_path);
        memset(r, 0, sizeof(*r));
}

/* ---- choosing scans ---- */

static int scan_row(void *ctx, const struct ia_rdb_scan *row, struct ia_error *err)
{
        struct ia_rpt_scan *s = ctx;
        bool nomem = false;

        s->id = row->id;
        s->started_at = str_dup(row->started_at, &nomem);
        s->finished_at = str_dup(row->finished_at, &nomem);
        s->status = str_dup(row->status, &nomem);
        s->host = str_escaped(row->host, &nomem);
        s->tool_version = str_escaped(row->tool_version, &nomem);
        s->abort_reason = str_escaped(row->abort_reason, &nomem);
        s->has_exit = row->has_exit;
        s->exit_status = row->exit_status;
        s->files_seen = row->files_seen;
        s->files_read = row->files_read;
        s->files_reused = row->files_reused;
        s->layers_mapped = row->layers_mapped;
        s->images = row->images;
        s->map_rows = row->map_rows;
        s->problems = row->problems;
        s->has_duration = row->has_duration;
        s->duration = row->duration;
        if (s->has_duration && s->duration < 0)
                s->duration = 0;
        return nomem || !s->status ? NOMEM(err) : 0;
}

static int root_row(void *ctx, const struct ia_rdb_str *path, struct ia_error *err)
{
        struct ia_rpt_scan *s = ctx;
        char **a = realloc(s->roots, (s->nroots + 1) * sizeof(*a));
        char **b;
        bool nomem = false;
        size_t len;

        if (!a)
                return NOMEM(err);
        s->roots = a;
        b = realloc(s->raw_roots, (s->nroots + 1) * sizeof(*b));
        if (!b)
                return NOMEM(err);
        s->raw_roots = b;
        s->raw_roots[s->nroots] = str_bytes(*path, &len, &nomem);
        /* a root is a file-system path: escaped as image paths are */
        s->roots[s->nroots] =
            s->raw_roots[s->nroots] ? ia_escape_path_dup(s->raw_roots[s->nroots], len, len) : NULL;
        if (s->raw_roots[s->nroots] && !s->roots[s->nroots])
                nomem = true;
        s->nroots++;
        return nomem ? NOMEM(err) : 0;
}

int ia_rpt_load_scan(struct ia_rpt *r, int64_t id, struct ia_rpt_scan *s, struct ia_error *err)
{
        bool found;

        if (ia_rdb_scan(r->db, id, &found, scan_row, s, err) < 0)
                return -1;
        if (!found)
                return ia_error_set(err, IA_ERR_USAGE, "no scan %" PRId64 " in database '%s'", id,
                                    r->db_path);
        return ia_rdb_roots(r->db, id, root_row, s, err);
}

static bool all_digits(const char *s)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

static int parse_id(const char *s, int64_t *id, const char *what, struct ia_error *err)
{
        char *end;
        long long v;

        errno = 0;
        v = strtoll(s, &end, 10);
        if (!all_digits(s) || errno || v <= 0)
                return ia_error_set(err, IA_ERR_USAGE, "%s '%s' is not a scan id", what, s);
        *id = v;
        return 0;
}

/* Is s a date SQLite understands, "YYYY-MM-DD[THH:MM[:SS]][Z]"? */
static bool is_date(const char *s)
{
        size_t n = strlen(s);

        if (n < 10 || s[4] != '-' || s[7] != '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= '0' && c <= '9') || c == '-' || c == ':' || c == 'T' || c == ' ' ||
                      c == 'Z' || c == '.' || c == '+'))
                        return false;
        }
        return true;
}

static int pick_since(struct ia_rpt *r, const char *since, int64_t *id, struct ia_error *err)
{
        bool bad_date = false;

        *id = 0;
        if (!since) {
                if (ia_rdb_complete_before(r->db, r->scan.id, id, err) < 0)
                        return -1;
        } else if (all_digits(since)) {
                return parse_id(since, id, "--since", err);
        } else if (is_date(since)) {
                if (ia_rdb_complete_near(r->db, since, r->scan.id, id, &bad_date, err) < 0)
                        return -1;
        } else {
                return ia_error_set(err, IA_ERR_USAGE,
                                    "--since '%s' is neither a scan id nor a date (YYYY-MM-DD)",
                                    since);
        }
        if (bad_date)
                return ia_error_set(err, IA_ERR_USAGE, "--since '%s' is not a valid date", since);
        if (since && *id == 0)
                return ia_error_set(err, IA_ERR_USAGE,
                                    "no complete scan before scan %" PRId64 " matches --since '%s'",
                                    r->scan.id, since);
        return 0;
}

int ia_rpt_load(struct ia_rpt *r, const char *scan_arg, const char *since, bool want_trend,
                struct ia_error *err)
{
        struct id_idx *by_id = NULL, *by_file = NULL;
        int64_t id = 0, prev = 0;
        int ret = -1;

        if (scan_arg) {
                if (parse_id(scan_arg, &id, "--scan", err) < 0)
                        return -1;
        } else {
                if (ia_rdb_latest_complete(r->db, &id, err) < 0)
                        return -1;
                if (id == 0)
                        return ia_error_set(err, IA_ERR_MISSING,
                                            "database '%s' holds no complete scan yet", r->db_path);
        }
        if (ia_rpt_load_scan(r, id, &r->scan, err) < 0)
                return -1;
        if (strcmp(r->scan.status, "running") == 0)
                return ia_error_set(err, IA_ERR_USAGE,
                                    "scan %" PRId64 " is still running (or was killed: the next "
                                    "scan marks it aborted); its figures are not final",
                                    id);
        if (ia_rpt_load_images(r, err) < 0)
                return -1;
        by_id = malloc((r->nimg + 1) * sizeof(*by_id));
        by_file = malloc((r->nimg + 1) * sizeof(*by_file));
        if (!by_id || !by_file) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < r->nimg; i++) {
                by_id[i] = (struct id_idx){r->img[i].id, i};
                by_file[i] = (struct id_idx){r->img[i].file_id, i};
        }
        qsort(by_id, r->nimg, sizeof(*by_id), ia_rpt_cmp_id_idx);
        qsort(by_file, r->nimg, sizeof(*by_file), ia_rpt_cmp_id_idx);
        if (ia_rpt_load_space(r, by_id, err) < 0 || ia_rpt_load_graph(r, by_id, by_file, err) < 0 ||
            ia_rpt_load_links(r, by_file, err) < 0 || ia_rpt_load_findings(r, err) < 0)
                goto out;
        if (want_trend) {
                if (pick_since(r, since, &prev, err) < 0)
                        goto out;
                if (prev >= r->scan.id) {
                        ia_error_set(err, IA_ERR_USAGE,
                                     "--since %" PRId64 " is not a scan before the reported one "
                                     "(%" PRId64 ")",
                                     prev, r->scan.id);
                        goto out;
                }
                if (prev && ia_rpt_load_prev(r, prev, err) < 0)
                        goto out;
                if (ia_rpt_load_history(r, err) < 0)
                        goto out;
        }
        ret = 0;
out:
        free(by_id);
        free(by_file);
        return ret;
}
