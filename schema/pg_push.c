/*
 * imgaudit push, the push and one scan's transaction: see pg_push.h.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg_push_int.h"
#include "banned.h"

/* The advisory lock key class of imgaudit ("IADT", pg.c); key hashtext(store id): a push. */
#define IA_PG_LOCK_KEY "1229014100"

#define OF_SCAN   "scan_id = ?1"
#define OF_IMAGES "image_id IN (SELECT id FROM images WHERE scan_id = ?1)"

static int push_scan(struct ia_push *p, int64_t scan_id, struct ia_error *err)
{
        const char *params[2] = {p->store_id, p->host};
        struct ia_idset fresh = {0}, new_files = {0};
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
                ia_push_local_error(p, "files", err);
                goto rollback;
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int64_t id = sqlite3_column_int64(st, 0);

                if (!ia_idset_has(&p->central_files, id) && ia_idset_add(&new_files, id) < 0) {
                        ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                        goto rollback;
                }
        }
        sqlite3_finalize(st);
        st = NULL;
        if (rc != SQLITE_DONE) {
                ia_push_local_error(p, "files", err);
                goto rollback;
        }
        if (new_files.n && ia_push_copy_table(p, IA_PGT_FILES, "1 ORDER BY id", 0, NULL, NULL,
                                              &p->central_files, err) < 0)
                goto rollback;
        if (ia_push_copy_layers(p, scan_id, &fresh, err) < 0 ||
            ia_push_copy_table(p, IA_PGT_SCANS, "id = ?1", scan_id, "host", p->host, NULL, err) <
                0 ||
            ia_push_copy_table(p, IA_PGT_SCAN_ROOTS, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            ia_push_copy_table(p, IA_PGT_SCAN_FILES, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            ia_push_copy_table(p, IA_PGT_ENTRIES, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            ia_push_copy_table(p, IA_PGT_IMAGES, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            ia_push_copy_table(p, IA_PGT_LINKS, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            ia_push_copy_table(p, IA_PGT_FINDINGS, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            ia_push_copy_table(p, IA_PGT_OVF_DISKS, OF_SCAN, scan_id, NULL, NULL, NULL, err) < 0 ||
            ia_push_copy_table(p, IA_PGT_PIECES, OF_IMAGES, scan_id, NULL, NULL, NULL, err) < 0 ||
            ia_push_copy_table(p, IA_PGT_CHAIN_LAYERS, OF_IMAGES, scan_id, NULL, NULL, NULL, err) <
                0 ||
            ia_push_copy_table(p, IA_PGT_MAP, OF_IMAGES, scan_id, NULL, NULL, NULL, err) < 0)
                goto rollback;
        if (ia_pg_exec(&p->pg, "COMMIT", err) < 0)
                goto fail;
        /* only now are they central */
        for (size_t i = 0; i < new_files.n; i++)
                if (ia_idset_add(&p->central_files, new_files.v[i]) < 0)
                        goto nomem;
        for (size_t i = 0; i < fresh.n; i++)
                if (ia_idset_add(&p->central_layers, fresh.v[i]) < 0)
                        goto nomem;
        free(fresh.v);
        free(new_files.v);
        return 0;
nomem:
        ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        goto fail;
rollback:
        sqlite3_finalize(st);
        ia_pg_sync(&p->pg, NULL);
        PQclear(PQexec(p->pg.conn, "ROLLBACK"));
fail:
        free(fresh.v);
        free(new_files.v);
        return -1;
}

static int central_ids(struct ia_push *p, const char *sql, struct ia_idset *s, struct ia_error *err)
{
        const char *params[1] = {p->store_id};
        PGresult *res = ia_pg_query(&p->pg, sql, 1, params, err);

        if (!res)
                return -1;
        for (int i = 0; i < PQntuples(res); i++)
                if (ia_idset_add(s, strtoll(PQgetvalue(res, i, 0), NULL, 10)) < 0) {
                        PQclear(res);
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                }
        PQclear(res);
        return 0;
}

/* p->host, when --host was not given: the host that ran the latest scan, else this one. */
static int default_host(struct ia_push *p, struct ia_error *err)
{
        sqlite3_stmt *st;

        if (sqlite3_prepare_v2(p->db, "SELECT host FROM scans ORDER BY id DESC LIMIT 1", -1, &st,
                               NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                p->host_buf = sqlite3_column_text(st, 0)
                                  ? strdup((const char *)sqlite3_column_text(st, 0))
                                  : NULL;
        sqlite3_finalize(st);
        if (!p->host_buf) {
                char h[256] = "";
                gethostname(h, sizeof(h) - 1);
                p->host_buf = strdup(h);
        }
        if (!p->host_buf)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        p->host = p->host_buf;
        return 0;
}

/*
 * The queries of a push are small: JIT compiling them costs more than
 * running them.  synchronous_commit off: a push's COMMIT returns before the
 * server flushed its WAL, so a server crash may lose the last scans pushed
 * (never part of one: the server recovers to a consistent state, each scan
 * whole or absent).  That is safe because a push asks the server which
 * scans it has and sends every one it lacks: the next push sends a lost
 * scan again.  A push is not a durable receipt; the local store is.
 */
int ia_push_connect(struct ia_push *p, const char *conninfo, struct ia_error *err)
{
        const char *params[1] = {p->store_id};
        PGresult *res;
        int version;
        bool locked;

        if (ia_pg_connect(&p->pg, conninfo, err) < 0 ||
            ia_pg_exec(&p->pg, "SET jit = off", err) < 0 ||
            ia_pg_exec(&p->pg, "SET synchronous_commit = off", err) < 0 ||
            ia_pg_migrate(&p->pg, true, &version, err) < 0)
                return -1;
        res = ia_pg_query(&p->pg, "SELECT pg_try_advisory_lock(" IA_PG_LOCK_KEY ", hashtext($1))",
                          1, params, err);
        if (!res)
                return -1;
        locked = PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
        if (!locked) {
                ia_error_set(err, IA_ERR_REFUSED,
                             "another push of store %s is running on PostgreSQL at '%s'",
                             p->store_id, p->pg.where);
                if (err)
                        err->reason = "busy";
                return -1;
        }
        if (central_ids(p, "SELECT id FROM scans WHERE store_id = $1", &p->central_scans, err) <
                0 ||
            central_ids(p, "SELECT id FROM files WHERE store_id = $1", &p->central_files, err) <
                0 ||
            central_ids(p, "SELECT id FROM layers WHERE store_id = $1", &p->central_layers, err) <
                0)
                return -1;
        return 0;
}

int ia_push_scans(struct ia_push *p, void (*on_scan)(void *ctx, int64_t scan_id, uint64_t rows),
                  void *ctx, unsigned *pushed, unsigned *present, struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc;

        if (sqlite3_prepare_v2(p->db, "SELECT id FROM scans WHERE status = 'complete' ORDER BY id",
                               -1, &st, NULL) != SQLITE_OK)
                return ia_push_local_error(p, "scans", err);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int64_t id = sqlite3_column_int64(st, 0);
                uint64_t rows = p->rows;

                if (ia_idset_has(&p->central_scans, id)) {
                        (*present)++;
                        continue;
                }
                if (push_scan(p, id, err) < 0) {
                        ia_error_prefix(err, "scan %" PRId64 " not pushed", id);
                        sqlite3_finalize(st);
                        return -1;
                }
                (*pushed)++;
                if (on_scan)
                        on_scan(ctx, id, p->rows - rows);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return ia_push_local_error(p, "scans", err);
        if (*pushed == 0 && *present > 0) { /* nothing new: the host name may still have changed */
                const char *hp[2] = {p->store_id, p->host};
                PGresult *res = ia_pg_query(&p->pg,
                                            "UPDATE stores SET host = $2, last_pushed_at = now() "
                                            "WHERE store_id = $1",
                                            2, hp, err);
                if (!res)
                        return -1;
                PQclear(res);
        }
        return 0;
}

int ia_push_open(struct ia_push *p, const char *db_path, struct ia_error *err)
{
        p->db_path = db_path;
        if (ia_push_open_local(p, err) < 0)
                return -1;
        return p->host ? 0 : default_host(p, err);
}

void ia_push_close(struct ia_push *p)
{
        ia_pg_close(&p->pg);
        if (p->db) {
                sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL);
                sqlite3_close(p->db);
                p->db = NULL;
        }
        free(p->central_scans.v);
        free(p->central_files.v);
        free(p->central_layers.v);
        memset(&p->central_scans, 0, sizeof(p->central_scans));
        memset(&p->central_files, 0, sizeof(p->central_files));
        memset(&p->central_layers, 0, sizeof(p->central_layers));
        if (p->host_buf && p->host == p->host_buf)
                p->host = NULL;
        free(p->host_buf);
        p->host_buf = NULL;
}
