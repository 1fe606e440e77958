/*
 * The scan database: opening it (refusing what is not ours or is damaged),
 * the migrations, the checks of its schema and names, and the scan row's
 * life cycle (see store.h for the contract, schema/README.md for the
 * tables).  The writer thread is in store_write.c.
 */
#define _GNU_SOURCE
#include "store_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "schema.h"
#include "banned.h"

/* ---- helpers ---- */

static int query_int(struct ia_store *s, const char *sql, int64_t *v, struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc;

        if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
                return db_error(s, err, sql);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *v = sqlite3_column_int64(st, 0);
        else
                *v = 0;
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return db_error(s, err, sql);
        return 0;
}

static int damaged(struct ia_store *s, struct ia_error *err, const char *what)
{
        ia_error_set(err, IA_ERR_CORRUPT, "database '%s' is damaged (%s: %s); refusing to touch it",
                     s->path, what, sqlite3_errmsg(s->db));
        if (err)
                err->reason = "database";
        return -1;
}

/* Run sql (a read) to its end; a damaged page it meets refuses the database. */
static int read_all(struct ia_store *s, const char *sql, struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc;

        if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
                return damaged(s, err, "reading the schema");
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                ;
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB
                           ? damaged(s, err, "checking the b-trees")
                           : db_error(s, err, sql);
        return 0;
}

/*
 * The check before a scan writes: every table's and index's b-tree, from its
 * root to its first and its last leaf (where a scan's appends go), read
 * through SQLite, which checks each page it loads (cell_size_check on).  Its
 * cost is a few pages per b-tree, whatever the history the database holds;
 * the pages a scan writes are checked as it reaches them (damage there stops
 * the scan before it commits, exit 3).  `PRAGMA quick_check` reads every page.
 */
static int check_edges(struct ia_store *s, struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc, ret = 0;

        if (exec(s, "PRAGMA cell_size_check = ON", err) < 0)
                return -1;
        if (sqlite3_prepare_v2(s->db,
                               "SELECT m.type, m.name, m.tbl_name, m.sql,"
                               " (SELECT name FROM pragma_index_info(m.name) WHERE seqno = 0),"
                               " (SELECT name FROM pragma_table_info(m.tbl_name) WHERE pk = 1),"
                               " (SELECT count(*) FROM pragma_table_info(m.tbl_name) WHERE pk > 0)"
                               " FROM sqlite_master m WHERE m.rootpage > 0"
                               " AND m.type IN ('table', 'index') AND m.name NOT LIKE 'sqlite_%'",
                               -1, &st, NULL) != SQLITE_OK)
                return damaged(s, err, "reading the schema");
        while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *type = (const char *)sqlite3_column_text(st, 0);
                const char *name = (const char *)sqlite3_column_text(st, 1);
                const char *tbl = (const char *)sqlite3_column_text(st, 2);
                const char *sql = (const char *)sqlite3_column_text(st, 3);
                const char *icol = (const char *)sqlite3_column_text(st, 4);
                const char *pk = (const char *)sqlite3_column_text(st, 5);
                bool without_rowid = sql && strstr(sql, "WITHOUT ROWID");
                const char *close = sql ? strrchr(sql, ')') : NULL;
                const char *where = close ? strstr(close, "WHERE") : NULL; /* partial index */
                char *q;

                if (!type || !name || !tbl)
                        continue;
                if (strcmp(type, "table") == 0)
                        q = sqlite3_mprintf("SELECT (SELECT 1 FROM \"%w\" LIMIT 1), "
                                            "(SELECT max(\"%w\") FROM \"%w\"), "
                                            "(SELECT min(\"%w\") FROM \"%w\")",
                                            tbl, without_rowid && pk ? pk : "rowid", tbl,
                                            without_rowid && pk ? pk : "rowid", tbl);
                else if (icol)
                        q = sqlite3_mprintf("SELECT (SELECT max(\"%w\") FROM \"%w\" INDEXED BY "
                                            "\"%w\" %s), (SELECT min(\"%w\") FROM \"%w\" "
                                            "INDEXED BY \"%w\" %s)",
                                            icol, tbl, name, where ? where : "", icol, tbl, name,
                                            where ? where : "");
                else
                        continue;
                if (!q) {
                        ret = ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                        break;
                }
                ret = read_all(s, q, err);
                sqlite3_free(q);
        }
        sqlite3_finalize(st);
        if (ret == 0 && rc != SQLITE_DONE)
                return damaged(s, err, "reading the schema");
        return ret;
}

/* ---- opening and migrations ---- */

static int migrate(struct ia_store *s, struct ia_error *err)
{
        int64_t version, appid, nobjects;
        int latest = 0;

        /* Reading the schema is what detects a file that is not a database or is damaged. */
        if (query_int(s, "SELECT count(*) FROM sqlite_master", &nobjects, err) < 0 ||
            query_int(s, "PRAGMA user_version", &version, err) < 0 ||
            query_int(s, "PRAGMA application_id", &appid, err) < 0)
                return -1;
        if (nobjects > 0 && appid != IA_APPLICATION_ID)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "database '%s' is an SQLite database of another application "
                                    "(application_id %lld); refusing to touch it",
                                    s->path, (long long)appid);
        /* Damage where a scan writes is refused before anything is written. */
        if (nobjects > 0 && check_edges(s, err) < 0)
                return -1;
        for (const struct ia_schema_file *f = ia_schema_files; f->name; f++)
                latest = atoi(f->name);
        /*
         * A new database is put in WAL mode (synchronous NORMAL) before its
         * migrations, not after: in the default rollback journal every
         * migration's commit costs three fdatasync() calls (eight migrations:
         * about 50 ms on an idle disk, a quarter of a small store's scan).
         */
        if (nobjects == 0 && version == 0 &&
            (exec(s, "PRAGMA journal_mode = WAL", err) < 0 ||
             exec(s, "PRAGMA synchronous = NORMAL", err) < 0))
                return -1;
        if (version > latest)
                return ia_error_set(err, IA_ERR_UNSUPPORTED,
                                    "database '%s' has schema version %lld, newer than this "
                                    "imgaudit's %d; refusing to touch it",
                                    s->path, (long long)version, latest);
        for (const struct ia_schema_file *f = ia_schema_files; f->name; f++) {
                int v = atoi(f->name);
                char pragma[96];

                if (v <= version)
                        continue;
                if (exec(s, "BEGIN IMMEDIATE", err) < 0)
                        return -1;
                if (sqlite3_exec(s->db, f->sql, NULL, NULL, NULL) != SQLITE_OK) {
                        db_error(s, err, f->name);
                        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                        return -1;
                }
                snprintf(pragma, sizeof(pragma),
                         "PRAGMA user_version = %d; PRAGMA application_id = %d", v,
                         IA_APPLICATION_ID);
                if (exec(s, pragma, err) < 0 || exec(s, "COMMIT", err) < 0) {
                        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                        return -1;
                }
        }
        return 0;
}

/*
 * SQLite keeps a database's -wal and -shm files beside the name it was
 * opened by.  Reached by a second name (a hard link, a bind mount), the
 * journal of the first would be passed over and the two could split: the
 * name the last scan used, while it still names this very file, is the only
 * one accepted.  A database moved or renamed takes its new name.
 */
static int check_name(struct ia_store *s, struct ia_error *err)
{
        sqlite3_stmt *st;
        struct stat a, b;
        char *other = NULL;
        int ret = 0;

        if (sqlite3_prepare_v2(s->db,
                               "SELECT db_path FROM scans WHERE db_path IS NOT NULL "
                               "ORDER BY id DESC LIMIT 1",
                               -1, &st, NULL) != SQLITE_OK)
                return 0; /* before schema 3: no name recorded */
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) > 0)
                other = strndup((const char *)sqlite3_column_blob(st, 0),
                                (size_t)sqlite3_column_bytes(st, 0));
        sqlite3_finalize(st);
        if (other && strcmp(other, s->path) != 0 && stat(other, &a) == 0 &&
            stat(s->path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
                ia_error_set(err, IA_ERR_REFUSED,
                             "database '%s' is also named '%s', the name its last scan used; "
                             "SQLite keeps its journal beside the name, so scan it by that one",
                             s->path, other);
                if (err)
                        err->reason = "locked";
                ret = -1;
        }
        free(other);
        return ret;
}

int ia_store_open(const char *path, struct ia_store **out, struct ia_error *err)
{
        struct ia_store *s;
        const char *delay;

        *out = NULL;
        /*
         * No memory statistics: SQLite would take a global mutex on every
         * allocation, for figures nobody reads.  Only possible before SQLite
         * initialises (the first store opened); later calls change nothing.
         */
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        s = calloc(1, sizeof(*s));
        if (!s)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        s->path = strdup(path);
        if (!s->path)
                goto nomem;
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->not_empty, NULL);
        pthread_cond_init(&s->not_full, NULL);
        if (sqlite3_open_v2(path, &s->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK) {
                if (!s->db)
                        goto nomem;
                db_error(s, err, "cannot open");
                goto close;
        }
        sqlite3_busy_timeout(s->db, 10000);
        sqlite3_extended_result_codes(s->db, 1);
        /* Refuse damage before anything can be written. */
        if (migrate(s, err) < 0 || check_name(s, err) < 0)
                goto close;
        if (exec(s, "PRAGMA journal_mode = WAL", err) < 0 ||
            exec(s, "PRAGMA synchronous = NORMAL", err) < 0 ||
            exec(s, "PRAGMA foreign_keys = OFF", err) < 0)
                goto close;
        delay = getenv("IMGAUDIT_TEST_WRITER_DELAY_MS");
        if (delay)
                s->delay_ms = (unsigned)strtoul(delay, NULL, 10);
        *out = s;
        return 0;

nomem:
        ia_error_set(err, IA_ERR_NOMEM, "out of memory opening database '%s'", path);
close:
        sqlite3_close(s->db);
        free(s->path);
        free(s);
        return -1;
}

void ia_store_close(struct ia_store *s)
{
        if (!s)
                return;
        ia_store_finalize_statements(s);
        /*
         * A reader (a report) holding an older snapshot must not hold the scan
         * up: without a busy wait the checkpoint copies what it can and the
         * WAL is truncated when no reader needs it.  No second checkpoint on
         * close: the last connection's close takes the database file's
         * exclusive lock to checkpoint and delete the WAL, and a reader that
         * sets no busy timeout (the sqlite3 shell) opening then is refused
         * with "database is locked".  The emptied WAL stays beside the file.
         */
        sqlite3_busy_timeout(s->db, 0);
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        sqlite3_close(s->db);
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->not_empty);
        pthread_cond_destroy(&s->not_full);
        free(s->path);
        free(s);
}

sqlite3 *ia_store_db(struct ia_store *s)
{
        return s->db;
}

/* ---- the scan row ---- */

/* Now as ISO 8601 UTC to the second in buf; returns it in nanoseconds. */
static int64_t now_iso(char *buf, size_t n)
{
        struct timespec ts;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * An UPDATE of scans rows that closes them: sql prepared with the time now
 * (ISO 8601) bound to parameter now_param; NULL with err set ("doing" says
 * what failed).
 */
static sqlite3_stmt *prepare_closing(struct ia_store *s, const char *sql, int now_param,
                                     const char *doing, struct ia_error *err)
{
        char now[32];
        sqlite3_stmt *st;

        now_iso(now, sizeof(now));
        if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
                db_error(s, err, doing);
                return NULL;
        }
        sqlite3_bind_text(st, now_param, now, -1, SQLITE_TRANSIENT);
        return st;
}

/* Steps the statement once to its end and finalizes it: 0, or -1 with err set. */
static int step_closing(struct ia_store *s, sqlite3_stmt *st, const char *doing,
                        struct ia_error *err)
{
        int rc = sqlite3_step(st);

        sqlite3_finalize(st);
        return rc == SQLITE_DONE ? 0 : db_error(s, err, doing);
}

int ia_store_mark_dead_scans(struct ia_store *s, int *n, struct ia_error *err)
{
        static const char doing[] = "marking dead scans";
        sqlite3_stmt *st = prepare_closing(s,
                                           "UPDATE scans SET status = 'aborted', finished_at = ?1, "
                                           "abort_reason = 'the scan did not finish (killed or "
                                           "crashed)' WHERE status = 'running'",
                                           1, doing, err);

        if (!st || step_closing(s, st, doing, err) < 0)
                return -1;
        *n = sqlite3_changes(s->db);
        return 0;
}

int ia_store_begin_scan(struct ia_store *s, const char *const *roots, size_t nroots,
                        const char *const *allow, size_t nallow, int64_t *scan_id,
                        struct ia_error *err)
{
        char now[32], host[256];
        sqlite3_stmt *st = NULL;
        int64_t now_ns = now_iso(now, sizeof(now));
        if (gethostname(host, sizeof(host)) < 0)
                snprintf(host, sizeof(host), "unknown");
        host[sizeof(host) - 1] = '\0';
        if (exec(s, "BEGIN IMMEDIATE", err) < 0)
                return -1;
        if (sqlite3_prepare_v2(s->db,
                               "INSERT INTO scans (started_at, status, pid, host, tool_version, "
                               "started_ns, db_path) VALUES (?1, 'running', ?2, ?3, ?4, ?5, ?6)",
                               -1, &st, NULL) != SQLITE_OK)
                goto fail;
        sqlite3_bind_text(st, 1, now, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, (int64_t)getpid());
        sqlite3_bind_text(st, 3, host, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, IMGAUDIT_VERSION, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, now_ns);
        ia_store_bind_path(st, 6, s->path);
        if (sqlite3_step(st) != SQLITE_DONE)
                goto fail;
        sqlite3_finalize(st);
        *scan_id = sqlite3_last_insert_rowid(s->db);
        if (sqlite3_prepare_v2(s->db,
                               "INSERT INTO scan_roots (scan_id, role, path) VALUES (?1, ?2, ?3)",
                               -1, &st, NULL) != SQLITE_OK)
                goto fail;
        for (size_t i = 0; i < nroots + nallow; i++) {
                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, *scan_id);
                sqlite3_bind_text(st, 2, i < nroots ? "scan" : "allow", -1, SQLITE_STATIC);
                ia_store_bind_path(st, 3, i < nroots ? roots[i] : allow[i - nroots]);
                if (sqlite3_step(st) != SQLITE_DONE)
                        goto fail;
        }
        sqlite3_finalize(st);
        st = NULL;
        if (exec(s, "COMMIT", err) < 0)
                goto rollback;
        /* the scan's name in the file itself, not only in this name's WAL (check_name()) */
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        return 0;
fail:
        db_error(s, err, "recording the scan");
        sqlite3_finalize(st);
rollback:
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
}

int ia_store_end_scan(struct ia_store *s, int64_t scan_id, bool complete, const char *reason,
                      int exit_status, const struct ia_scan_stats *stats, struct ia_error *err)
{
        static const char doing[] = "finishing the scan";
        sqlite3_stmt *st =
            prepare_closing(s,
                            "UPDATE scans SET status = ?2, finished_at = ?3, exit_status = ?4, "
                            "abort_reason = ?5, files_seen = ?6, files_read = ?7, "
                            "files_reused = ?8, layers_mapped = ?9, images = ?10, "
                            "map_rows = ?11, problems = ?12 WHERE id = ?1",
                            3, doing, err);

        if (!st)
                return -1;
        sqlite3_bind_int64(st, 1, scan_id);
        sqlite3_bind_text(st, 2, complete ? "complete" : "aborted", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, exit_status);
        bind_text(st, 5, reason);
        sqlite3_bind_int64(st, 6, (int64_t)stats->files_seen);
        sqlite3_bind_int64(st, 7, (int64_t)stats->files_read);
        sqlite3_bind_int64(st, 8, (int64_t)stats->files_reused);
        sqlite3_bind_int64(st, 9, (int64_t)stats->layers_mapped);
        sqlite3_bind_int64(st, 10, (int64_t)stats->images);
        sqlite3_bind_int64(st, 11, (int64_t)stats->map_rows);
        sqlite3_bind_int64(st, 12, (int64_t)stats->problems);
        return step_closing(s, st, doing, err);
}

int ia_store_max_ids(struct ia_store *s, int64_t *file_id, int64_t *image_id, int64_t *layer_id,
                     struct ia_error *err)
{
        /*
         * An image's map rows and links may be committed before its images
         * row: a scan killed in between leaves them behind, and their image
         * id must not be handed out again.  Every max() here reads an index.
         */
        if (query_int(s, "SELECT coalesce(max(id), 0) FROM files", file_id, err) < 0 ||
            query_int(s,
                      "SELECT max(coalesce((SELECT max(id) FROM images), 0), "
                      "coalesce((SELECT max(image_id) FROM map), 0), "
                      "coalesce((SELECT max(image_id) FROM pieces), 0), "
                      "coalesce((SELECT max(image_id) FROM links), 0), "
                      "coalesce((SELECT max(image_id) FROM findings), 0))",
                      image_id, err) < 0 ||
            query_int(s,
                      "SELECT max(coalesce((SELECT max(id) FROM layers), 0), "
                      "coalesce((SELECT max(layer_id) FROM layer_runs), 0))",
                      layer_id, err) < 0)
                return -1;
        return 0;
}
