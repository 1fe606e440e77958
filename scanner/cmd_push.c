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
#include "push.h"
#include "cli.h"
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
static int default_host(struct ia_push *p, char **host_buf, struct ia_error *err)
{
        sqlite3_stmt *st;

        if (sqlite3_prepare_v2(p->db, "SELECT host FROM scans ORDER BY id DESC LIMIT 1", -1, &st,
                               NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
                *host_buf = strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        if (!*host_buf) {
                char h[256] = "";
                gethostname(h, sizeof(h) - 1);
                *host_buf = strdup(h);
        }
        if (!*host_buf)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        p->host = *host_buf;
        return 0;
}

/*
 * Connect, bring the central schema up to date, take the store's advisory
 * lock and read the ids the server holds of the store.
 *
 * The queries of a push are small: JIT compiling them costs more than
 * running them.  synchronous_commit off: a push's COMMIT returns before the
 * server flushed its WAL, so a server crash may lose the last scans pushed
 * (never part of one: the server recovers to a consistent state, each scan
 * whole or absent).  That is safe because a push asks the server which
 * scans it has and sends every one it lacks: the next push sends a lost
 * scan again.  A push is not a durable receipt; the local store is.
 */
static int connect_central(struct ia_push *p, const char *conninfo, struct ia_idset *central_scans,
                           struct ia_error *err)
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
        res = ia_pg_query(&p->pg, "SELECT pg_try_advisory_lock(1229014100, hashtext($1))", 1,
                          params, err);
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
        if (central_ids(p, "SELECT id FROM scans WHERE store_id = $1", central_scans, err) < 0 ||
            central_ids(p, "SELECT id FROM files WHERE store_id = $1", &p->central_files, err) <
                0 ||
            central_ids(p, "SELECT id FROM layers WHERE store_id = $1", &p->central_layers, err) <
                0)
                return -1;
        return 0;
}

/* Push every complete local scan the server lacks, in id order; counts into pushed, present. */
static int push_scans(struct ia_push *p, struct ia_idset *central_scans, unsigned *pushed,
                      unsigned *present, struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc;

        if (sqlite3_prepare_v2(p->db, "SELECT id FROM scans WHERE status = 'complete' ORDER BY id",
                               -1, &st, NULL) != SQLITE_OK)
                return ia_push_local_error(p, "scans", err);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int64_t id = sqlite3_column_int64(st, 0);
                uint64_t rows = p->rows;

                if (ia_idset_has(central_scans, id)) {
                        (*present)++;
                        continue;
                }
                if (push_scan(p, id, err) < 0) {
                        ia_error_prefix(err, "scan %" PRId64 " not pushed", id);
                        sqlite3_finalize(st);
                        return -1;
                }
                (*pushed)++;
                if (!p->quiet)
                        printf("pushed scan %" PRId64 ": %" PRIu64 " rows\n", id, p->rows - rows);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return ia_push_local_error(p, "scans", err);
        return 0;
}

static int run_push(struct ia_push *p, const char *conninfo, struct ia_error *err)
{
        struct ia_idset central_scans = {0};
        char *host_buf = NULL;
        struct timespec t0, t1;
        int ret = -1;
        unsigned pushed = 0, present = 0;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (ia_push_open_local(p, err) < 0)
                return -1;
        if (!p->host && default_host(p, &host_buf, err) < 0)
                return -1;
        if (connect_central(p, conninfo, &central_scans, err) < 0 ||
            push_scans(p, &central_scans, &pushed, &present, err) < 0)
                goto out;
        if (pushed == 0 && present > 0) { /* nothing new: the host name may still have changed */
                const char *hp[2] = {p->store_id, p->host};
                PGresult *res = ia_pg_query(&p->pg,
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
        struct ia_push p;
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
