/*
 * Loading one scan of the store for `imgaudit report`: see rpt.h.
 *
 * Only plain SELECTs over the tables of schema/001_initial.sql, so the
 * report needs no migration and works on a database it may not write.
 * Per-image space figures are one GROUP BY over the map; the backing graph
 * comes from the depth-0 'backing' links that resolved ('ok').
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
#include "store_read.h" /* the store's identity, the latest schema version */
#include "banned.h"

int ia_rpt_db_error(struct ia_rpt *r, struct ia_error *err, const char *what)
{
        int prim = sqlite3_errcode(r->db) & 0xff;

        return ia_error_set(
            err, prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB ? IA_ERR_CORRUPT : IA_ERR_IO,
            "database '%s': %s: %s", r->db_path, what, sqlite3_errmsg(r->db));
}

int ia_rpt_prepare(struct ia_rpt *r, const char *sql, sqlite3_stmt **st, struct ia_error *err)
{
        if (sqlite3_prepare_v2(r->db, sql, -1, st, NULL) != SQLITE_OK)
                return ia_rpt_db_error(r, err, "preparing a query");
        return 0;
}

int ia_rpt_latest_schema(void)
{
        return ia_store_schema_latest();
}

/* The checks and the read transaction of an open connection (ia_rpt_open, ia_rpt_attach). */
static int begin(struct ia_rpt *r, struct ia_error *err)
{
        return ia_store_read_begin(r->db, r->db_path, &r->db_schema, err);
}

int ia_rpt_open(struct ia_rpt *r, const char *path, struct ia_error *err)
{
        memset(r, 0, sizeof(*r));
        r->now = (int64_t)time(NULL);
        r->db_path = strdup(path);
        if (!r->db_path)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        /* READONLY: never create, never migrate, never write; no scan lock is taken. */
        if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
                ia_error_set(err, IA_ERR_IO, "cannot open database '%s': %s", path,
                             r->db ? sqlite3_errmsg(r->db) : "out of memory");
                return -1;
        }
        return begin(r, err);
}

int ia_rpt_attach(struct ia_rpt *r, sqlite3 *db, const char *name, struct ia_error *err)
{
        memset(r, 0, sizeof(*r));
        r->now = (int64_t)time(NULL);
        r->borrowed = true;
        r->db = db;
        r->db_path = strdup(name);
        if (!r->db_path)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        return begin(r, err);
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
        sqlite3_finalize(r->st_archive);
        if (r->db) {
                sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
                if (!r->borrowed)
                        sqlite3_close(r->db);
        }
        free(r->db_path);
        memset(r, 0, sizeof(*r));
}

/* ---- choosing scans ---- */

int ia_rpt_load_scan(struct ia_rpt *r, int64_t id, struct ia_rpt_scan *s, struct ia_error *err)
{
        sqlite3_stmt *st;
        bool nomem = false;
        int rc;

        if (ia_rpt_prepare(r,
                           "SELECT id, started_at, finished_at, status, host, tool_version, "
                           "abort_reason, exit_status, files_seen, files_read, files_reused, "
                           "layers_mapped, images, map_rows, problems, "
                           "(julianday(finished_at) - julianday(started_at)) * 86400.0 "
                           "FROM scans WHERE id = ?1",
                           &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, id);
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                sqlite3_finalize(st);
                if (rc == SQLITE_DONE)
                        return ia_error_set(err, IA_ERR_USAGE,
                                            "no scan %" PRId64 " in database '%s'", id, r->db_path);
                return ia_rpt_db_error(r, err, "reading the scan");
        }
        s->id = sqlite3_column_int64(st, 0);
        s->started_at = col_text(st, 1, &nomem);
        s->finished_at = col_text(st, 2, &nomem);
        s->status = col_text(st, 3, &nomem);
        s->host = col_escaped(st, 4, &nomem);
        s->tool_version = col_escaped(st, 5, &nomem);
        s->abort_reason = col_escaped(st, 6, &nomem);
        s->has_exit = !col_null(st, 7);
        s->exit_status = sqlite3_column_int64(st, 7);
        s->files_seen = col_u64(st, 8);
        s->files_read = col_u64(st, 9);
        s->files_reused = col_u64(st, 10);
        s->layers_mapped = col_u64(st, 11);
        s->images = col_u64(st, 12);
        s->map_rows = col_u64(st, 13);
        s->problems = col_u64(st, 14);
        s->has_duration = !col_null(st, 15);
        s->duration = sqlite3_column_double(st, 15);
        if (s->has_duration && s->duration < 0)
                s->duration = 0;
        sqlite3_finalize(st);
        if (!s->status)
                nomem = true;
        if (nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");

        if (ia_rpt_prepare(r,
                           "SELECT path FROM scan_roots WHERE scan_id = ?1 AND role = 'scan' "
                           "ORDER BY rowid",
                           &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                char **a = realloc(s->roots, (s->nroots + 1) * sizeof(*a));
                char **b;
                size_t len;

                if (!a)
                        break;
                s->roots = a;
                b = realloc(s->raw_roots, (s->nroots + 1) * sizeof(*b));
                if (!b)
                        break;
                s->raw_roots = b;
                s->raw_roots[s->nroots] = col_bytes(st, 0, &len, &nomem);
                /* a root is a file-system path: escaped as image paths are */
                s->roots[s->nroots] = s->raw_roots[s->nroots]
                                          ? ia_escape_path_dup(s->raw_roots[s->nroots], len, len)
                                          : NULL;
                if (s->raw_roots[s->nroots] && !s->roots[s->nroots])
                        nomem = true;
                s->nroots++;
                if (nomem)
                        break;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return nomem || rc == SQLITE_ROW ? ia_error_set(err, IA_ERR_NOMEM, "out of memory")
                                                 : ia_rpt_db_error(r, err, "reading scan roots");
        return 0;
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
        sqlite3_stmt *st;
        bool bad_date;
        int rc;

        *id = 0;
        if (!since) {
                if (ia_rpt_prepare(r,
                                   "SELECT max(id) FROM scans WHERE status = 'complete' "
                                   "AND id < ?1",
                                   &st, err) < 0)
                        return -1;
                sqlite3_bind_int64(st, 1, r->scan.id);
        } else if (all_digits(since)) {
                if (parse_id(since, id, "--since", err) < 0)
                        return -1;
                return 0;
        } else if (is_date(since)) {
                if (ia_rpt_prepare(
                        r,
                        "SELECT coalesce("
                        " (SELECT id FROM scans WHERE status = 'complete' AND id < ?2"
                        "   AND julianday(started_at) <= julianday(?1) ORDER BY id DESC LIMIT 1),"
                        " (SELECT id FROM scans WHERE status = 'complete' AND id < ?2"
                        "   AND julianday(started_at) > julianday(?1) ORDER BY id LIMIT 1)), "
                        "julianday(?1) IS NULL",
                        &st, err) < 0)
                        return -1;
                sqlite3_bind_text(st, 1, since, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, r->scan.id);
        } else {
                return ia_error_set(err, IA_ERR_USAGE,
                                    "--since '%s' is neither a scan id nor a date (YYYY-MM-DD)",
                                    since);
        }
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && !col_null(st, 0))
                *id = sqlite3_column_int64(st, 0);
        bad_date = since && rc == SQLITE_ROW && sqlite3_column_int(st, 1) != 0;
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return ia_rpt_db_error(r, err, "choosing the earlier scan");
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
                if (ia_store_read_latest_complete(r->db, r->db_path, &id, err) < 0)
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
