/* A store opened by a reader (see store_read.h). */
#define _GNU_SOURCE
#include "store_read.h"

#include <inttypes.h>
#include <stdlib.h>

#include "schema.h"
#include "banned.h"

int ia_store_schema_latest(void)
{
        int v = 0;

        for (const struct ia_schema_file *s = ia_schema_files; s->name; s++)
                v = atoi(s->name);
        return v;
}

static int db_error(sqlite3 *db, const char *name, struct ia_error *err, const char *what)
{
        int prim = sqlite3_errcode(db) & 0xff;

        return ia_error_set(
            err, prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB ? IA_ERR_CORRUPT : IA_ERR_IO,
            "database '%s': %s: %s", name, what, sqlite3_errmsg(db));
}

static int query_i64(sqlite3 *db, const char *name, const char *sql, int64_t *v,
                     struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc;

        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                return db_error(db, name, err, "preparing a query");
        rc = sqlite3_step(st);
        *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return db_error(db, name, err, sql);
        return 0;
}

int ia_store_read_begin(sqlite3 *db, const char *name, int64_t *schema, struct ia_error *err)
{
        int64_t appid, nobj, ntables;

        sqlite3_busy_timeout(db, 10000);
        if (query_i64(db, name, "PRAGMA user_version", schema, err) < 0)
                return -1;
        /* a newer schema's tables may mean something else now: refused as scan refuses it */
        if (*schema > ia_store_schema_latest())
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "database '%s' has schema version %lld, newer than this "
                                    "imgaudit's %d; refusing to read it (use a newer imgaudit)",
                                    name, (long long)*schema, ia_store_schema_latest());
        if (query_i64(db, name, "SELECT count(*) FROM sqlite_master", &nobj, err) < 0 ||
            query_i64(db, name, "PRAGMA application_id", &appid, err) < 0)
                return -1;
        if (nobj == 0 || appid != IA_APPLICATION_ID)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "database '%s' is not an imgaudit store (run 'imgaudit scan' "
                                    "first)",
                                    name);
        if (query_i64(db, name,
                      "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                      "('scans', 'images', 'links', 'map', 'files', 'findings')",
                      &ntables, err) < 0)
                return -1;
        if (ntables != 6)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "database '%s' lacks the scan tables (schema version %" PRId64
                                    ")",
                                    name, *schema);
        if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
                return db_error(db, name, err, "beginning a read transaction");
        return 0;
}

int ia_store_read_latest_complete(sqlite3 *db, const char *name, int64_t *id, struct ia_error *err)
{
        return query_i64(
            db, name, "SELECT coalesce(max(id), 0) FROM scans WHERE status = 'complete'", id, err);
}
