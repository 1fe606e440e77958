/*
 * imgaudit report --db CONNINFO: one store's reported scan loaded from
 * PostgreSQL into an in-memory SQLite store with the local schema and ids
 * (see pg_report.c for what is loaded, and pg_report.h).
 *
 * Each table is read with COPY (SELECT ...) TO STDOUT in the binary format,
 * so that the server formats no text, libpq keeps no result set, and each
 * row goes to SQLite as it arrives (server and client work at once); the
 * in-memory store's secondary indexes are made after the load.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_report.h"
#include "pg_tables.h"
#include "schema.h"
#include "banned.h"

#define MAPS "(SELECT coalesce(map_image_id, id) FROM images WHERE store_id = $1 AND scan_id = $2)"
#define HIST                                                                                       \
        "(SELECT id FROM scans WHERE store_id = $1 AND status = 'complete' AND id <= $2 "          \
        "ORDER BY id DESC LIMIT $3)"
#define LAYERS                                                                                     \
        "(SELECT layer_id FROM pieces WHERE store_id = $1 AND image_id IN " MAPS                   \
        " UNION SELECT layer_id FROM chain_layers WHERE store_id = $1 AND image_id IN " MAPS ")"

static const char *const load_where[IA_PGT_COUNT] = {
    [IA_PGT_SCANS] = "true",
    [IA_PGT_SCAN_ROOTS] = "true",
    [IA_PGT_FILES] = "true",
    [IA_PGT_SCAN_FILES] = "scan_id = $2",
    [IA_PGT_ENTRIES] = "scan_id = $2",
    [IA_PGT_IMAGES] = "(scan_id = $2 OR scan_id IN " HIST ")",
    [IA_PGT_LINKS] = "(scan_id = $2 OR (scan_id IN " HIST " AND depth = 0 AND status = 'ok' "
                     "AND kind IN ('extent', 'data-file')))",
    [IA_PGT_MAP] = "image_id IN " MAPS,
    [IA_PGT_FINDINGS] = "scan_id = $2",
    [IA_PGT_OVF_DISKS] = "scan_id = $2",
    [IA_PGT_LAYERS] = "id IN " LAYERS,
    /* the report reads the data runs only (rpt_share.c: clipped to each piece) */
    [IA_PGT_LAYER_RUNS] = "data <> 0 AND layer_id IN " LAYERS,
    [IA_PGT_PIECES] = "image_id IN " MAPS,
    [IA_PGT_CHAIN_LAYERS] = "image_id IN " MAPS,
};

static int mem_error(sqlite3 *db, const char *what, struct ia_error *err)
{
        return ia_error_set(err, IA_ERR_IO, "in-memory store: %s: %s", what,
                            db ? sqlite3_errmsg(db) : "out of memory");
}

/* tmpl with $1..$3 replaced by vals[0..2] (already SQL: a literal, a number, ALL). */
static void subst(struct ia_rbuf *b, const char *tmpl, const char *const *vals)
{
        for (const char *p = tmpl; *p; p++) {
                if (p[0] == '$' && p[1] >= '1' && p[1] <= '3') {
                        ia_rbuf_adds(b, vals[p[1] - '1']);
                        p++;
                } else {
                        ia_rbuf_addc(b, *p);
                }
        }
}

static uint32_t get32(const unsigned char *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int bad_copy(struct ia_pg *pg, const char *table, struct ia_error *err)
{
        return ia_error_set(err, IA_ERR_CORRUPT,
                            "PostgreSQL at '%s': %s: COPY data of an unexpected shape", pg->where,
                            table);
}

/*
 * One binary COPY row (its field count first) of table t into st; *used:
 * the bytes it took.  Fields: the columns in order, a path column followed
 * by its _raw bytes (bigint: 8 bytes big endian; text and bytea: bytes).
 */
static int load_row(struct ia_pg *pg, sqlite3 *db, const struct ia_pg_table *tb, sqlite3_stmt *st,
                    const unsigned char *p, size_t n, size_t *used, struct ia_error *err)
{
        size_t at = 2, want = tb->ncols;
        const unsigned char *v[2];
        int32_t len[2];

        for (size_t i = 0; i < tb->ncols; i++)
                want += tb->cols[i].type == 'p';
        if (n < 2 || ((size_t)p[0] << 8 | p[1]) != want)
                return bad_copy(pg, tb->name, err);
        sqlite3_reset(st);
        for (size_t i = 0; i < tb->ncols; i++) {
                int bi = (int)i + 1, nf = tb->cols[i].type == 'p' ? 2 : 1;

                for (int f = 0; f < nf; f++) {
                        if (n - at < 4)
                                return bad_copy(pg, tb->name, err);
                        len[f] = (int32_t)get32(p + at);
                        at += 4;
                        v[f] = p + at;
                        if (len[f] > 0) {
                                if ((size_t)len[f] > n - at)
                                        return bad_copy(pg, tb->name, err);
                                at += (size_t)len[f];
                        }
                }
                if (len[0] < 0) {
                        sqlite3_bind_null(st, bi);
                } else if (tb->cols[i].type == 'i') {
                        uint64_t u = 0;

                        if (len[0] != 8)
                                return bad_copy(pg, tb->name, err);
                        for (int k = 0; k < 8; k++)
                                u = u << 8 | v[0][k];
                        sqlite3_bind_int64(st, bi, (int64_t)u);
                } else if (nf == 2 && len[1] >= 0) { /* the exact bytes of a name */
                        sqlite3_bind_blob(st, bi, v[1], len[1], SQLITE_STATIC);
                } else {
                        sqlite3_bind_text(st, bi, (const char *)v[0], len[0], SQLITE_STATIC);
                }
        }
        if (at != n)
                return bad_copy(pg, tb->name, err);
        if (sqlite3_step(st) != SQLITE_DONE)
                return mem_error(db, tb->name, err);
        *used = at;
        return 0;
}

/*
 * The rows of table t for the store into the in-memory store: COPY (SELECT
 * ...) TO STDOUT in the binary format, so that the server formats no text,
 * libpq keeps no result set, and each row goes to SQLite as it arrives
 * (server and client work at the same time).
 */
static int load_table(struct ia_pg *pg, sqlite3 *db, enum ia_pg_tbl t, const char *const *vals,
                      struct ia_error *err)
{
        static const unsigned char header[11] = "PGCOPY\n\377\r\n";
        const struct ia_pg_table *tb = &ia_pg_tables[t];
        struct ia_rbuf q, ins;
        PGresult *res = NULL;
        sqlite3_stmt *st = NULL;
        char *row = NULL;
        int ret = -1, n;
        bool head = false, trailer = false;

        ia_rbuf_init(&q);
        ia_rbuf_init(&ins);
        ia_rbuf_adds(&q, "COPY (SELECT ");
        ia_rbuf_addf(&ins, "INSERT INTO %s (", tb->name);
        for (size_t i = 0; i < tb->ncols; i++) {
                const char *nm = tb->cols[i].pg ? tb->cols[i].pg : tb->cols[i].name;

                ia_rbuf_addf(&q, "%s%s", i ? ", " : "", nm);
                if (tb->cols[i].type == 'p')
                        ia_rbuf_addf(&q, ", %s_raw", nm);
                ia_rbuf_addf(&ins, "%s%s", i ? ", " : "", tb->cols[i].name);
        }
        ia_rbuf_addf(&q, " FROM %s WHERE store_id = %s AND ", tb->name, vals[0]);
        subst(&q, load_where[t], vals);
        ia_rbuf_adds(&q, ") TO STDOUT (FORMAT binary)");
        ia_rbuf_adds(&ins, ") VALUES (");
        for (size_t i = 0; i < tb->ncols; i++)
                ia_rbuf_adds(&ins, i ? ", ?" : "?");
        ia_rbuf_adds(&ins, ")");
        if (q.nomem || ins.nomem) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto out;
        }
        if (sqlite3_prepare_v2(db, ins.buf, -1, &st, NULL) != SQLITE_OK) {
                mem_error(db, tb->name, err);
                goto out;
        }
        res = PQexec(pg->conn, q.buf);
        if (!res || PQresultStatus(res) != PGRES_COPY_OUT) {
                ia_pg_error(pg, res, "query failed", err);
                goto out;
        }
        PQclear(res);
        res = NULL;
        while ((n = PQgetCopyData(pg->conn, &row, 0)) > 0) {
                const unsigned char *p = (const unsigned char *)row;
                size_t len = (size_t)n, used = 0;

                if (!head) { /* signature, flags, header extension */
                        if (len < 19 || memcmp(p, header, sizeof(header)) != 0 ||
                            len - 19 < get32(p + 15)) {
                                bad_copy(pg, tb->name, err);
                                goto drain;
                        }
                        used = 19 + get32(p + 15);
                        p += used;
                        len -= used;
                        head = true;
                }
                while (len > 0) {
                        if (trailer) {
                                bad_copy(pg, tb->name, err);
                                goto drain;
                        }
                        if (len >= 2 && p[0] == 0xff && p[1] == 0xff) {
                                trailer = true;
                                used = 2;
                        } else if (load_row(pg, db, tb, st, p, len, &used, err) < 0) {
                                goto drain;
                        }
                        p += used;
                        len -= used;
                }
                PQfreemem(row);
                row = NULL;
        }
        if (n == -2 || !trailer) {
                ia_pg_error(pg, NULL, "COPY", err);
                goto drain;
        }
        ret = 0;
drain:
        PQfreemem(row);
        row = NULL;
        if (ret < 0 && n > 0) /* stop reading: the connection is closed by the caller */
                goto out;
        while ((res = PQgetResult(pg->conn)) != NULL) {
                if (PQresultStatus(res) != PGRES_COMMAND_OK && ret == 0)
                        ret = ia_pg_error(pg, res, "COPY", err);
                PQclear(res);
        }
out:
        sqlite3_finalize(st);
        PQclear(res);
        ia_rbuf_release(&q);
        ia_rbuf_release(&ins);
        return ret;
}

/* Drop every index that has its own CREATE INDEX statement. */
static int drop_indexes(sqlite3 *db, struct ia_error *err)
{
        sqlite3_stmt *st;
        struct ia_rbuf b;
        int rc;

        ia_rbuf_init(&b);
        if (sqlite3_prepare_v2(db,
                               "SELECT name FROM sqlite_master WHERE type = 'index' AND "
                               "sql IS NOT NULL",
                               -1, &st, NULL) != SQLITE_OK)
                return mem_error(db, "reading its indexes", err);
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *n = (const char *)sqlite3_column_text(st, 0);

                ia_rbuf_adds(&b, "DROP INDEX \"");
                for (; *n; n++) {
                        if (*n == '"')
                                ia_rbuf_addc(&b, '"');
                        ia_rbuf_addc(&b, *n);
                }
                ia_rbuf_adds(&b, "\";\n");
        }
        sqlite3_finalize(st);
        if (b.nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        rc = b.len ? sqlite3_exec(db, b.buf, NULL, NULL, NULL) : SQLITE_OK;
        ia_rbuf_release(&b);
        return rc == SQLITE_OK ? 0 : mem_error(db, "dropping its indexes", err);
}

/* The latest complete scan of the store (0: none). */
static int latest_scan(struct ia_pg *pg, const char *store_id, int64_t *scan_id,
                       struct ia_error *err)
{
        const char *p1[1] = {store_id};
        PGresult *res = ia_pg_query(pg,
                                    "SELECT coalesce(max(id), 0) FROM scans WHERE "
                                    "store_id = $1 AND status = 'complete'",
                                    1, p1, err);

        if (!res)
                return -1;
        *scan_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        return 0;
}

/*
 * Open the in-memory store with the local schema, in a transaction, its
 * secondary indexes dropped and their CREATE statements kept in idx: they
 * are made after the load, each in one sorted pass, instead of being kept
 * up to date row by row (the tables' own keys stay: WITHOUT ROWID tables
 * are their keys).
 */
static int open_memdb(const char *name, sqlite3 **db, struct ia_rbuf *idx, struct ia_error *err)
{
        char pragma[128];
        sqlite3_stmt *st;
        int version = 0;

        if (sqlite3_open_v2(name, db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI |
                                SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK)
                return mem_error(*db, "opening", err);
        for (const struct ia_schema_file *f = ia_schema_files; f->name; f++) {
                if (sqlite3_exec(*db, f->sql, NULL, NULL, NULL) != SQLITE_OK)
                        return mem_error(*db, f->name, err);
                version = atoi(f->name);
        }
        /* no rollback journal: a store that fails to load is thrown away whole */
        snprintf(pragma, sizeof(pragma),
                 "PRAGMA user_version = %d; PRAGMA application_id = %d; PRAGMA journal_mode = OFF",
                 version, IA_APPLICATION_ID);
        if (sqlite3_exec(*db, pragma, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(*db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
                return mem_error(*db, "setting up", err);
        if (sqlite3_prepare_v2(*db,
                               "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND "
                               "sql IS NOT NULL",
                               -1, &st, NULL) != SQLITE_OK)
                return mem_error(*db, "reading its indexes", err);
        while (sqlite3_step(st) == SQLITE_ROW) {
                ia_rbuf_adds(idx, (const char *)sqlite3_column_text(st, 1));
                ia_rbuf_adds(idx, ";\n");
        }
        sqlite3_finalize(st);
        if (idx->nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        return drop_indexes(*db, err);
}

/*
 * Every table of the store, in one snapshot of the central database.
 * Every query reads one store's rows through an index led by store_id: a
 * sequential scan would read every host's rows once per host (the planner
 * picks one as soon as a store is a few percent of a table), and JIT costs
 * more than these queries.
 */
static int load_tables(struct ia_pg *pg, sqlite3 *db, const char *const *params,
                       struct ia_error *err)
{
        if (ia_pg_exec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) < 0 ||
            ia_pg_exec(pg, "SET LOCAL enable_seqscan = off", err) < 0 ||
            ia_pg_exec(pg, "SET LOCAL jit = off", err) < 0)
                return -1;
        for (int t = 0; t < IA_PGT_COUNT; t++)
                if (load_table(pg, db, (enum ia_pg_tbl)t, params, err) < 0) {
                        PQclear(PQexec(pg->conn, "ROLLBACK"));
                        return -1;
                }
        return ia_pg_exec(pg, "COMMIT", err);
}

int ia_pg_load_store(struct ia_pg *pg, const char *name, const char *store_id, int64_t scan_id,
                     bool all_history, sqlite3 **db, struct ia_error *err)
{
        char sid[24], lit[48];
        const char *params[3] = {lit, sid, all_history ? "ALL" : "60"};
        struct ia_rbuf idx;
        int ret = -1;

        *db = NULL;
        if (scan_id == 0 && latest_scan(pg, store_id, &scan_id, err) < 0)
                return -1;
        snprintf(sid, sizeof(sid), "%" PRId64, scan_id);
        /* COPY takes no parameters: the store id (a uuid the server gave) as a literal */
        for (size_t i = 0; store_id[i]; i++)
                if (i >= 36 || !(store_id[i] == '-' || (store_id[i] >= '0' && store_id[i] <= '9') ||
                                 (store_id[i] >= 'a' && store_id[i] <= 'f')))
                        return ia_error_set(err, IA_ERR_CORRUPT, "store id '%s' is not a uuid",
                                            store_id);
        snprintf(lit, sizeof(lit), "'%s'::uuid", store_id);
        ia_rbuf_init(&idx);
        if (open_memdb(name, db, &idx, err) < 0 || load_tables(pg, *db, params, err) < 0)
                goto out;
        if ((idx.len && sqlite3_exec(*db, idx.buf, NULL, NULL, NULL) != SQLITE_OK) ||
            sqlite3_exec(*db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
                mem_error(*db, "committing", err);
                goto out;
        }
        ret = 0;
out:
        ia_rbuf_release(&idx);
        return ret;
}
