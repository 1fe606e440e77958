/*
 * `imgaudit push`: copy the complete scans of a local store to the fleet's
 * central PostgreSQL database; `imgaudit pg-migrate`: bring that database's
 * schema (schema/pg/) up to date.
 *
 * The local store is only read, in one read transaction (one snapshot; in
 * WAL mode a running scan is never blocked).  Each scan the central
 * database lacks goes in its own transaction, its rows sent with COPY: a
 * push killed at any point leaves the central database as it was before
 * that scan, and the next push sends it again.  Rows are keyed by the
 * store's identity (store_identity, schema 4) and the local ids, so a scan
 * is stored once however often it is pushed.  Files and layers already
 * central are not sent again (a base shared by a hundred overlays goes once
 * per version).  A session advisory lock per store keeps two pushes of one
 * store apart; pushes of different stores never wait for each other (no
 * table lock, each touches only its own store's rows).  Nothing is retried:
 * an error stops the push with its own exit status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "scanner.h"
#include "pg.h"
#include "pg_tables.h"
#include "rbuf.h"
#include "cli.h"
#include "schema.h"
#include "banned.h"

#define IA_PG_LOCK_CLASS 1229014100

const char ia_push_usage[] =
    "usage: imgaudit push [--db FILE] [--to CONNINFO] [--host NAME] [--quiet]\n"
    "\n"
    "Copy every complete scan of the local store that the central PostgreSQL\n"
    "database lacks, one transaction per scan (COPY), applying the central\n"
    "schema's migrations first.  Idempotent and resumable.\n"
    "\n"
    "      --db FILE        the local store (default: $IMGAUDIT_DB, else imgaudit.db)\n"
    "      --to CONNINFO    a libpq connection string or postgresql:// URI (default:\n"
    "                       $IMGAUDIT_PUSH_TO); passwords belong in PGPASSFILE or a\n"
    "                       PGSERVICE entry, never here\n"
    "      --host NAME      the fleet host name (default: the host that ran the scan)\n"
    "  -q, --quiet          print nothing on success\n"
    "\n"
    "Exit status: 0 pushed (or nothing to push), 1 the server failed mid-push (disk\n"
    "full, connection lost, permission denied: that scan is not stored), 2 usage,\n"
    "3 the local store cannot be read, 4 server unreachable, 5 authentication\n"
    "failed, 6 the server's schema is newer (or not imgaudit's), 7 another push of\n"
    "this store is running.\n";

const char ia_pg_migrate_usage[] =
    "usage: imgaudit pg-migrate [--to CONNINFO] [--check]\n"
    "\n"
    "Create or upgrade the central schema (schema/pg/) in the PostgreSQL database;\n"
    "--check only reports its version.  Exit status as for imgaudit push.\n";

/* ---- id sets (sorted) ---- */

struct idset {
        int64_t *v;
        size_t n, cap;
        bool sorted;
};

static int idset_add(struct idset *s, int64_t id)
{
        if (s->n == s->cap) {
                size_t nc = s->cap ? s->cap * 2 : 256;
                int64_t *a = realloc(s->v, nc * sizeof(*a));
                if (!a)
                        return -1;
                s->v = a;
                s->cap = nc;
        }
        if (s->n && s->v[s->n - 1] > id)
                s->sorted = false;
        s->v[s->n++] = id;
        return 0;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return x < y ? -1 : x > y;
}

static bool idset_has(struct idset *s, int64_t id)
{
        if (s->n == 0)
                return false;
        if (!s->sorted) {
                qsort(s->v, s->n, sizeof(*s->v), cmp_i64);
                s->sorted = true;
        }
        return bsearch(&id, s->v, s->n, sizeof(*s->v), cmp_i64) != NULL;
}

/* ---- the push ---- */

struct push {
        sqlite3 *db;
        const char *db_path;
        char store_id[40];
        const char *host;
        struct ia_pg pg;
        struct idset central_files, central_layers;
        uint64_t rows, bytes;
        bool quiet;
};

static int local_error(struct push *p, const char *what, struct ia_error *err)
{
        ia_error_set(err, IA_ERR_IO, "store '%s': %s: %s", p->db_path, what, sqlite3_errmsg(p->db));
        if (err)
                err->reason = "local";
        return -1;
}

static int local_i64(struct push *p, const char *sql, int64_t *v, struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc;

        if (sqlite3_prepare_v2(p->db, sql, -1, &st, NULL) != SQLITE_OK)
                return local_error(p, "reading", err);
        rc = sqlite3_step(st);
        *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return local_error(p, "reading", err);
        return 0;
}

static int open_local(struct push *p, struct ia_error *err)
{
        int64_t appid = 0, version = 0, nobj = 0;
        int latest = 0;
        sqlite3_stmt *st;

        if (sqlite3_open_v2(p->db_path, &p->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
                ia_error_set(err, IA_ERR_IO, "cannot open store '%s': %s", p->db_path,
                             p->db ? sqlite3_errmsg(p->db) : "out of memory");
                if (err)
                        err->reason = "local";
                return -1;
        }
        sqlite3_busy_timeout(p->db, 10000);
        if (local_i64(p, "SELECT count(*) FROM sqlite_master", &nobj, err) < 0 ||
            local_i64(p, "PRAGMA application_id", &appid, err) < 0 ||
            local_i64(p, "PRAGMA user_version", &version, err) < 0)
                return -1;
        for (const struct ia_schema_file *f = ia_schema_files; f->name; f++)
                latest = atoi(f->name);
        if (nobj == 0 || appid != IA_APPLICATION_ID) {
                ia_error_set(err, IA_ERR_CORRUPT, "'%s' is not an imgaudit store", p->db_path);
                goto local;
        }
        if (version > latest) {
                ia_error_set(err, IA_ERR_UNSUPPORTED,
                             "store '%s' has schema version %lld, newer than this imgaudit's %d",
                             p->db_path, (long long)version, latest);
                goto local;
        }
        if (version < 4) {
                ia_error_set(err, IA_ERR_UNSUPPORTED,
                             "store '%s' has schema version %lld, without a store identity; "
                             "run 'imgaudit scan' on it once with this imgaudit (it migrates)",
                             p->db_path, (long long)version);
                goto local;
        }
        /* one snapshot for the whole push */
        if (sqlite3_exec(p->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
                return local_error(p, "beginning a read transaction", err);
        if (sqlite3_prepare_v2(p->db, "SELECT store_id FROM store_identity WHERE one = 1", -1, &st,
                               NULL) != SQLITE_OK)
                return local_error(p, "reading its identity", err);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 36)
                memcpy(p->store_id, sqlite3_column_text(st, 0), 36);
        sqlite3_finalize(st);
        if (!p->store_id[0]) {
                ia_error_set(err, IA_ERR_CORRUPT, "store '%s' has no identity row", p->db_path);
                goto local;
        }
        for (int i = 0; i < 36; i++) {
                char ch = p->store_id[i];
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;

                if (dash ? ch != '-'
                         : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                             (ch >= 'A' && ch <= 'F'))) {
                        ia_error_set(err, IA_ERR_CORRUPT, "store '%s': its identity is not a UUID",
                                     p->db_path);
                        goto local;
                }
        }
        return 0;
local:
        if (err)
                err->reason = "local";
        return -1;
}

/* "SELECT cols FROM table WHERE where" for the local side. */
static char *select_sql(enum ia_pg_tbl t, const char *where)
{
        const struct ia_pg_table *tb = &ia_pg_tables[t];
        struct ia_rbuf b;

        ia_rbuf_init(&b);
        ia_rbuf_adds(&b, "SELECT ");
        for (size_t i = 0; i < tb->ncols; i++)
                ia_rbuf_addf(&b, "%s%s", i ? ", " : "", tb->cols[i].name);
        ia_rbuf_addf(&b, " FROM %s WHERE %s", tb->name, where);
        if (b.nomem) {
                ia_rbuf_release(&b);
                return NULL;
        }
        return b.buf;
}

/* "COPY table (store_id, [pre,] cols... [, post]) FROM STDIN (FORMAT binary)" for the central side.
 */
static char *copy_sql(enum ia_pg_tbl t, const char *pre, const char *post)
{
        const struct ia_pg_table *tb = &ia_pg_tables[t];
        struct ia_rbuf b;

        ia_rbuf_init(&b);
        ia_rbuf_addf(&b, "COPY %s (store_id", tb->name);
        if (pre)
                ia_rbuf_addf(&b, ", %s", pre);
        for (size_t i = 0; i < tb->ncols; i++) {
                const char *n = tb->cols[i].pg ? tb->cols[i].pg : tb->cols[i].name;

                ia_rbuf_addf(&b, ", %s", n);
                if (tb->cols[i].type == 'p')
                        ia_rbuf_addf(&b, ", %s_raw", n);
        }
        if (post)
                ia_rbuf_addf(&b, ", %s", post);
        ia_rbuf_adds(&b, ") FROM STDIN (FORMAT binary)");
        if (b.nomem) {
                ia_rbuf_release(&b);
                return NULL;
        }
        return b.buf;
}

/* One local row as a COPY row's columns (after store_id and pre). */
static void emit_cols(struct ia_pg_copy *c, enum ia_pg_tbl t, sqlite3_stmt *st)
{
        const struct ia_pg_table *tb = &ia_pg_tables[t];

        for (size_t i = 0; i < tb->ncols; i++) {
                int k = (int)i, type = sqlite3_column_type(st, k);

                if (type == SQLITE_NULL) {
                        ia_pg_copy_null(c);
                        if (tb->cols[i].type == 'p')
                                ia_pg_copy_null(c);
                        continue;
                }
                switch (tb->cols[i].type) {
                case 'i':
                        ia_pg_copy_int(c, sqlite3_column_int64(st, k));
                        break;
                case 't':
                        ia_pg_copy_text(c, (const char *)sqlite3_column_text(st, k),
                                        (size_t)sqlite3_column_bytes(st, k));
                        break;
                default: { /* a path: text, and its bytes when it is a BLOB */
                        const void *v = sqlite3_column_blob(st, k);
                        size_t n = (size_t)sqlite3_column_bytes(st, k);

                        ia_pg_copy_text(c, v, n);
                        if (type == SQLITE_BLOB)
                                ia_pg_copy_bytea(c, v, n);
                        else
                                ia_pg_copy_null(c);
                        break;
                }
                }
        }
}

static int copy_finish(struct push *p, struct ia_pg_copy *c, bool ok, struct ia_error *err)
{
        int ret = ia_pg_copy_end(c, ok, err);

        p->rows += c->rows;
        p->bytes += c->bytes;
        return ret;
}

/*
 * COPY the rows of local table t matching where (?1 bound to bind) to the
 * central table; pre: a leading column of value pre_val (scans.host);
 * skip: ids (column 0) the central database has already.
 */
static int copy_table(struct push *p, enum ia_pg_tbl t, const char *where, int64_t bind,
                      const char *pre, const char *pre_val, struct idset *skip,
                      struct ia_error *err)
{
        char *sel = select_sql(t, where), *cp = copy_sql(t, pre, NULL);
        struct ia_pg_copy c;
        sqlite3_stmt *st = NULL;
        int rc, ret = -1;

        if (!sel || !cp) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto out;
        }
        if (sqlite3_prepare_v2(p->db, sel, -1, &st, NULL) != SQLITE_OK) {
                local_error(p, ia_pg_tables[t].name, err);
                goto out;
        }
        if (sqlite3_bind_parameter_count(st) >= 1)
                sqlite3_bind_int64(st, 1, bind);
        if (ia_pg_copy_begin(&c, &p->pg, cp, err) < 0)
                goto out;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (skip && idset_has(skip, sqlite3_column_int64(st, 0)))
                        continue;
                ia_pg_copy_uuid(&c, p->store_id);
                if (pre)
                        ia_pg_copy_text(&c, pre_val, strlen(pre_val));
                emit_cols(&c, t, st);
                if (ia_pg_copy_end_row(&c, err) < 0) {
                        copy_finish(p, &c, false, NULL);
                        goto out;
                }
        }
        if (rc != SQLITE_DONE) {
                local_error(p, ia_pg_tables[t].name, err);
                copy_finish(p, &c, false, NULL);
                goto out;
        }
        ret = copy_finish(p, &c, true, err);
out:
        sqlite3_finalize(st);
        free(sel);
        free(cp);
        return ret;
}

/* FNV-1a 64 over little-endian 64-bit words (schema/pg/001_initial.sql, layers). */
static uint64_t fnv_word(uint64_t h, int64_t w)
{
        uint64_t u = (uint64_t)w;

        for (int i = 0; i < 8; i++) {
                h ^= (u >> (8 * i)) & 0xff;
                h *= 0x100000001b3ULL;
        }
        return h;
}

/*
 * The layers this scan's maps name that the central database lacks, with
 * their runs and fingerprints.
 */
static int copy_layers(struct push *p, int64_t scan_id, struct idset *fresh, struct ia_error *err)
{
        static const char ids_sql[] =
            "SELECT layer_id FROM pieces WHERE layer_id IS NOT NULL AND image_id IN "
            "(SELECT id FROM images WHERE scan_id = ?1) UNION "
            "SELECT layer_id FROM chain_layers WHERE layer_id IS NOT NULL AND image_id IN "
            "(SELECT id FROM images WHERE scan_id = ?1) ORDER BY 1";
        sqlite3_stmt *ids = NULL, *lst = NULL, *rst = NULL;
        char *lsel = select_sql(IA_PGT_LAYERS, "id = ?1"),
             *rsel = select_sql(IA_PGT_LAYER_RUNS, "layer_id = ?1 ORDER BY start"),
             *lcp = copy_sql(IA_PGT_LAYERS, NULL, "fingerprint"),
             *rcp = copy_sql(IA_PGT_LAYER_RUNS, NULL, NULL);
        struct ia_pg_copy c;
        uint64_t *fp = NULL;
        int rc, ret = -1;

        if (!lsel || !rsel || !lcp || !rcp) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto out;
        }
        if (sqlite3_prepare_v2(p->db, ids_sql, -1, &ids, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(p->db, lsel, -1, &lst, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(p->db, rsel, -1, &rst, NULL) != SQLITE_OK) {
                local_error(p, "layers", err);
                goto out;
        }
        sqlite3_bind_int64(ids, 1, scan_id);
        while ((rc = sqlite3_step(ids)) == SQLITE_ROW) {
                int64_t id = sqlite3_column_int64(ids, 0);

                if (!idset_has(&p->central_layers, id) && idset_add(fresh, id) < 0) {
                        ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                        goto out;
                }
        }
        if (rc != SQLITE_DONE) {
                local_error(p, "layers", err);
                goto out;
        }
        if (fresh->n == 0) {
                ret = 0;
                goto out;
        }
        /* fingerprints first: one pass over the runs of each new layer */
        fp = calloc(fresh->n, sizeof(*fp));
        if (!fp) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto out;
        }
        for (size_t k = 0; k < fresh->n; k++) {
                uint64_t h = 0xcbf29ce484222325ULL;

                sqlite3_reset(rst);
                sqlite3_bind_int64(rst, 1, fresh->v[k]);
                while ((rc = sqlite3_step(rst)) == SQLITE_ROW) {
                        for (int i = 1; i <= 6; i++)
                                h = fnv_word(h, sqlite3_column_int64(rst, i));
                        h = fnv_word(h, sqlite3_column_type(rst, 7) == SQLITE_NULL
                                            ? -1
                                            : sqlite3_column_int64(rst, 7));
                }
                if (rc != SQLITE_DONE) {
                        local_error(p, "layer runs", err);
                        goto out;
                }
                fp[k] = h;
        }
        if (ia_pg_copy_begin(&c, &p->pg, lcp, err) < 0)
                goto out;
        for (size_t k = 0; k < fresh->n; k++) {
                char hex[17];

                sqlite3_reset(lst);
                sqlite3_bind_int64(lst, 1, fresh->v[k]);
                if (sqlite3_step(lst) != SQLITE_ROW) {
                        local_error(p, "layers", err);
                        copy_finish(p, &c, false, NULL);
                        goto out;
                }
                ia_pg_copy_uuid(&c, p->store_id);
                emit_cols(&c, IA_PGT_LAYERS, lst);
                snprintf(hex, sizeof(hex), "%016" PRIx64, fp[k]);
                ia_pg_copy_text(&c, hex, 16);
                if (ia_pg_copy_end_row(&c, err) < 0) {
                        copy_finish(p, &c, false, NULL);
                        goto out;
                }
        }
        if (copy_finish(p, &c, true, err) < 0)
                goto out;
        if (ia_pg_copy_begin(&c, &p->pg, rcp, err) < 0)
                goto out;
        for (size_t k = 0; k < fresh->n; k++) {
                sqlite3_reset(rst);
                sqlite3_bind_int64(rst, 1, fresh->v[k]);
                while ((rc = sqlite3_step(rst)) == SQLITE_ROW) {
                        ia_pg_copy_uuid(&c, p->store_id);
                        emit_cols(&c, IA_PGT_LAYER_RUNS, rst);
                        if (ia_pg_copy_end_row(&c, err) < 0) {
                                copy_finish(p, &c, false, NULL);
                                goto out;
                        }
                }
                if (rc != SQLITE_DONE) {
                        local_error(p, "layer runs", err);
                        copy_finish(p, &c, false, NULL);
                        goto out;
                }
        }
        ret = copy_finish(p, &c, true, err);
out:
        free(fp);
        sqlite3_finalize(ids);
        sqlite3_finalize(lst);
        sqlite3_finalize(rst);
        free(lsel);
        free(rsel);
        free(lcp);
        free(rcp);
        return ret;
}

#define OF_SCAN   "scan_id = ?1"
#define OF_IMAGES "image_id IN (SELECT id FROM images WHERE scan_id = ?1)"

static int push_scan(struct push *p, int64_t scan_id, struct ia_error *err)
{
        const char *params[2] = {p->store_id, p->host};
        struct idset fresh = {0}, new_files = {0};
        sqlite3_stmt *st = NULL;
        PGresult *res;
        int rc;

        if (ia_pg_exec(&p->pg, "BEGIN", err) < 0)
                return -1;
        res = ia_pg_query(&p->pg,
                          "INSERT INTO stores (store_id, host) VALUES ($1, $2) "
                          "ON CONFLICT (store_id) DO UPDATE SET host = EXCLUDED.host, "
                          "last_pushed_at = now()",
                          2, params, err);
        if (!res)
                goto rollback;
        PQclear(res);
        /* files the central database lacks (every version the store holds) */
        if (sqlite3_prepare_v2(p->db, "SELECT id FROM files ORDER BY id", -1, &st, NULL) !=
            SQLITE_OK) {
                local_error(p, "files", err);
                goto rollback;
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int64_t id = sqlite3_column_int64(st, 0);

                if (!idset_has(&p->central_files, id) && idset_add(&new_files, id) < 0) {
                        ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                        goto rollback;
                }
        }
        sqlite3_finalize(st);
        st = NULL;
        if (rc != SQLITE_DONE) {
                local_error(p, "files", err);
                goto rollback;
        }
        if (new_files.n &&
            copy_table(p, IA_PGT_FILES, "1 ORDER BY id", 0, NULL, NULL, &p->central_files, err) < 0)
                goto rollback;
        if (copy_layers(p, scan_id, &fresh, err) < 0 ||
            copy_table(p, IA_PGT_SCANS, "id = ?1", scan_id, "host", p->host, NULL, err) < 0 ||
            copy_table(p, IA_PGT_SCAN_ROOTS, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            copy_table(p, IA_PGT_SCAN_FILES, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            copy_table(p, IA_PGT_ENTRIES, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            copy_table(p, IA_PGT_IMAGES, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            copy_table(p, IA_PGT_LINKS, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            copy_table(p, IA_PGT_FINDINGS, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            copy_table(p, IA_PGT_OVF_DISKS, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            copy_table(p, IA_PGT_PIECES, OF_IMAGES, scan_id, NULL, NULL, NULL, err) < 0 ||
            copy_table(p, IA_PGT_CHAIN_LAYERS, OF_IMAGES, scan_id, NULL, NULL, NULL, err) < 0 ||
            copy_table(p, IA_PGT_MAP, OF_IMAGES, scan_id, NULL, NULL, NULL, err) < 0)
                goto rollback;
        if (ia_pg_exec(&p->pg, "COMMIT", err) < 0)
                goto fail;
        /* only now are they central */
        for (size_t i = 0; i < new_files.n; i++)
                if (idset_add(&p->central_files, new_files.v[i]) < 0)
                        goto nomem;
        for (size_t i = 0; i < fresh.n; i++)
                if (idset_add(&p->central_layers, fresh.v[i]) < 0)
                        goto nomem;
        free(fresh.v);
        free(new_files.v);
        return 0;
nomem:
        ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        goto fail;
rollback:
        sqlite3_finalize(st);
        PQclear(PQexec(p->pg.conn, "ROLLBACK"));
fail:
        free(fresh.v);
        free(new_files.v);
        return -1;
}

static int central_ids(struct push *p, const char *sql, struct idset *s, struct ia_error *err)
{
        const char *params[1] = {p->store_id};
        PGresult *res = ia_pg_query(&p->pg, sql, 1, params, err);

        if (!res)
                return -1;
        for (int i = 0; i < PQntuples(res); i++)
                if (idset_add(s, strtoll(PQgetvalue(res, i, 0), NULL, 10)) < 0) {
                        PQclear(res);
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                }
        PQclear(res);
        return 0;
}

static int run_push(struct push *p, const char *conninfo, struct ia_error *err)
{
        struct idset central_scans = {0};
        sqlite3_stmt *st = NULL;
        const char *params[1] = {p->store_id};
        char *host_buf = NULL;
        PGresult *res;
        struct timespec t0, t1;
        int version, rc, ret = -1;
        unsigned pushed = 0, present = 0;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (open_local(p, err) < 0)
                return -1;
        if (!p->host) {
                if (sqlite3_prepare_v2(p->db, "SELECT host FROM scans ORDER BY id DESC LIMIT 1", -1,
                                       &st, NULL) == SQLITE_OK &&
                    sqlite3_step(st) == SQLITE_ROW)
                        host_buf = strdup((const char *)sqlite3_column_text(st, 0));
                sqlite3_finalize(st);
                st = NULL;
                if (!host_buf) {
                        char h[256] = "";
                        gethostname(h, sizeof(h) - 1);
                        host_buf = strdup(h);
                }
                if (!host_buf)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                p->host = host_buf;
        }
        /*
         * The queries of a push are small: JIT compiling them costs more
         * than running them.  synchronous_commit off: a push's COMMIT
         * returns before the server flushed its WAL, so a server crash
         * may lose the last scans pushed (never part of one: the server
         * recovers to a consistent state, each scan whole or absent).
         * That is safe because a push asks the server which scans it has
         * and sends every one it lacks: the next push sends a lost scan
         * again.  A push is not a durable receipt; the local store is.
         */
        if (ia_pg_connect(&p->pg, conninfo, err) < 0 ||
            ia_pg_exec(&p->pg, "SET jit = off", err) < 0 ||
            ia_pg_exec(&p->pg, "SET synchronous_commit = off", err) < 0 ||
            ia_pg_migrate(&p->pg, true, &version, err) < 0)
                goto out;
        res = ia_pg_query(&p->pg, "SELECT pg_try_advisory_lock(1229014100, hashtext($1))", 1,
                          params, err);
        if (!res)
                goto out;
        rc = PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
        if (!rc) {
                ia_error_set(err, IA_ERR_REFUSED,
                             "another push of store %s is running on PostgreSQL at '%s'",
                             p->store_id, p->pg.where);
                if (err)
                        err->reason = "busy";
                goto out;
        }
        if (central_ids(p, "SELECT id FROM scans WHERE store_id = $1", &central_scans, err) < 0 ||
            central_ids(p, "SELECT id FROM files WHERE store_id = $1", &p->central_files, err) <
                0 ||
            central_ids(p, "SELECT id FROM layers WHERE store_id = $1", &p->central_layers, err) <
                0)
                goto out;
        if (sqlite3_prepare_v2(p->db, "SELECT id FROM scans WHERE status = 'complete' ORDER BY id",
                               -1, &st, NULL) != SQLITE_OK) {
                local_error(p, "scans", err);
                goto out;
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int64_t id = sqlite3_column_int64(st, 0);
                uint64_t rows = p->rows;

                if (idset_has(&central_scans, id)) {
                        present++;
                        continue;
                }
                if (push_scan(p, id, err) < 0) {
                        ia_error_prefix(err, "scan %" PRId64 " not pushed", id);
                        goto out;
                }
                pushed++;
                if (!p->quiet)
                        printf("pushed scan %" PRId64 ": %" PRIu64 " rows\n", id, p->rows - rows);
        }
        if (rc != SQLITE_DONE) {
                local_error(p, "scans", err);
                goto out;
        }
        if (pushed == 0 && present > 0) { /* nothing new: the host name may still have changed */
                const char *hp[2] = {p->store_id, p->host};

                res = ia_pg_query(&p->pg,
                                  "UPDATE stores SET host = $2, last_pushed_at = now() "
                                  "WHERE store_id = $1",
                                  2, hp, err);
                if (!res)
                        goto out;
                PQclear(res);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (!p->quiet) {
                double s =
                    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
                printf("store %s (host %s) -> %s: %u scans pushed, %u already there; %" PRIu64
                       " rows, %" PRIu64 " bytes in %.3f s (%.0f rows/s)\n",
                       p->store_id, p->host, p->pg.where, pushed, present, p->rows, p->bytes, s,
                       s > 0 ? (double)p->rows / s : 0.0);
        }
        ret = 0;
out:
        sqlite3_finalize(st);
        free(central_scans.v);
        free(host_buf);
        p->host = NULL;
        return ret;
}

/* The exit status for an error (see the usage). */
static int exit_status(const struct ia_error *err)
{
        const char *r = err->reason ? err->reason : "";

        if (strcmp(r, "local") == 0)
                return 3;
        if (strcmp(r, "unreachable") == 0)
                return 4;
        if (strcmp(r, "auth") == 0)
                return 5;
        if (strcmp(r, "schema") == 0)
                return 6;
        if (strcmp(r, "busy") == 0)
                return 7;
        return 1;
}

int ia_cmd_push(int argc, char **argv)
{
        static const struct option opts[] = {
            {"db", required_argument, NULL, 'd'},   {"to", required_argument, NULL, 't'},
            {"host", required_argument, NULL, 'H'}, {"quiet", no_argument, NULL, 'q'},
            {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
        };
        const char *db = getenv("IMGAUDIT_DB"), *to = getenv("IMGAUDIT_PUSH_TO");
        struct push p;
        struct ia_error err = {0};
        int c, ret;

        memset(&p, 0, sizeof(p));
        if (!db || !*db)
                db = "imgaudit.db";
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":qh", opts, NULL)) != -1) {
                switch (c) {
                case 'd':
                        db = optarg;
                        break;
                case 't':
                        to = optarg;
                        break;
                case 'H':
                        p.host = optarg;
                        break;
                case 'q':
                        p.quiet = true;
                        break;
                case 'h':
                        fputs(ia_push_usage, stdout);
                        return 0;
                default:
                        return ia_getopt_error("push", 2, c, argv);
                }
        }
        if (optind < argc) {
                fprintf(stderr, "imgaudit push: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (!to || !*to) {
                fputs("imgaudit push: no central database: give --to CONNINFO or set "
                      "IMGAUDIT_PUSH_TO\n",
                      stderr);
                return 2;
        }
        if (p.host && !*p.host) {
                fputs("imgaudit push: --host: empty name\n", stderr);
                return 2;
        }
        p.db_path = db;
        ret = run_push(&p, to, &err) < 0 ? exit_status(&err) : 0;
        if (ret)
                fprintf(stderr, "imgaudit push: %s\n", ia_error_msg(&err));
        if (fflush(stdout) != 0 && ret == 0) {
                fprintf(stderr, "imgaudit push: writing the summary: %s\n", strerror(errno));
                ret = 1;
        }
        ia_pg_close(&p.pg);
        if (p.db) {
                sqlite3_exec(p.db, "COMMIT", NULL, NULL, NULL);
                sqlite3_close(p.db);
        }
        free(p.central_files.v);
        free(p.central_layers.v);
        return ret;
}

int ia_cmd_pg_migrate(int argc, char **argv)
{
        static const struct option opts[] = {
            {"to", required_argument, NULL, 't'},
            {"check", no_argument, NULL, 'c'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        const char *to = getenv("IMGAUDIT_PUSH_TO");
        struct ia_pg pg = {0};
        struct ia_error err = {0};
        bool check = false;
        int c, before = 0, after = 0, ret = 0;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
                switch (c) {
                case 't':
                        to = optarg;
                        break;
                case 'c':
                        check = true;
                        break;
                case 'h':
                        fputs(ia_pg_migrate_usage, stdout);
                        return 0;
                default:
                        return ia_getopt_error("pg-migrate", 2, c, argv);
                }
        }
        if (optind < argc || !to || !*to) {
                fputs(optind < argc ? "imgaudit pg-migrate: unexpected argument\n"
                                    : "imgaudit pg-migrate: give --to CONNINFO or set "
                                      "IMGAUDIT_PUSH_TO\n",
                      stderr);
                return 2;
        }
        if (ia_pg_connect(&pg, to, &err) < 0 || ia_pg_migrate(&pg, false, &before, &err) < 0 ||
            (!check && ia_pg_migrate(&pg, true, &after, &err) < 0))
                ret = exit_status(&err);
        if (ret)
                fprintf(stderr, "imgaudit pg-migrate: %s\n", ia_error_msg(&err));
        else if (check)
                printf("central schema version %d at %s (this imgaudit: %d)\n", before, pg.where,
                       ia_pg_schema_latest());
        else
                printf("central schema version %d at %s (was %d)\n", after, pg.where, before);
        ia_pg_close(&pg);
        return ret;
}
