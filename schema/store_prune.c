/*
 * imgaudit prune's statements (see store_prune.h; the command is
 * scanner/cmd_prune.c).  A scan's own rows (scans, scan_roots, scan_files,
 * entries, dirs, images, links, findings, ovf_disks) go with it; what later
 * scans share with it stays: the pieces, map rows and chain_layers of an
 * image row that a kept image names as its map (map_image_id), the layers
 * and runs kept pieces use, the files kept rows name.
 */
#define _GNU_SOURCE
#include "store_prune.h"

#include <stdio.h>
#include <time.h>

#include "store_sql.h"

#include "banned.h"

/* The statements, in order: what goes, then what no kept row uses any more. */
static const struct {
        const char *what, *sql;
} steps[] = {
    {"scans", "DELETE FROM scans WHERE id IN temp.ia_prune"},
    {"scan_roots", "DELETE FROM scan_roots WHERE scan_id IN temp.ia_prune"},
    {"scan_files", "DELETE FROM scan_files WHERE scan_id IN temp.ia_prune"},
    {"entries", "DELETE FROM entries WHERE scan_id IN temp.ia_prune"},
    {"dirs", "DELETE FROM dirs WHERE scan_id IN temp.ia_prune"},
    {"links", "DELETE FROM links WHERE scan_id IN temp.ia_prune"},
    {"findings", "DELETE FROM findings WHERE scan_id IN temp.ia_prune"},
    {"ovf_disks", "DELETE FROM ovf_disks WHERE scan_id IN temp.ia_prune"},
    {"images", "DELETE FROM images WHERE scan_id IN temp.ia_prune"},
    /* the maps kept images still name (their own, or the one they share) */
    {NULL, "CREATE TEMP TABLE ia_keep_maps AS SELECT DISTINCT coalesce(map_image_id, id) AS id "
           "FROM images"},
    {NULL, "CREATE UNIQUE INDEX temp.ia_keep_maps_id ON ia_keep_maps (id)"},
    {"pieces", "DELETE FROM pieces WHERE image_id NOT IN temp.ia_keep_maps"},
    {"map", "DELETE FROM map WHERE image_id NOT IN temp.ia_keep_maps"},
    {"chain_layers", "DELETE FROM chain_layers WHERE image_id NOT IN temp.ia_keep_maps"},
    /* layers no kept piece uses */
    {NULL, "CREATE TEMP TABLE ia_keep_layers AS SELECT DISTINCT layer_id AS id FROM pieces "
           "WHERE layer_id IS NOT NULL UNION SELECT layer_id FROM chain_layers "
           "WHERE layer_id IS NOT NULL"},
    {NULL, "CREATE UNIQUE INDEX temp.ia_keep_layers_id ON ia_keep_layers (id)"},
    {"layers", "DELETE FROM layers WHERE id NOT IN temp.ia_keep_layers"},
    {"layer_runs", "DELETE FROM layer_runs WHERE layer_id NOT IN (SELECT id FROM layers)"},
    /* files no kept row names (archives of kept members stay) */
    {NULL, "CREATE TEMP TABLE ia_keep_files (id INTEGER PRIMARY KEY)"},
    /* (a NULL into an INTEGER PRIMARY KEY would be given a rowid: keep them out) */
    {NULL, "INSERT OR IGNORE INTO ia_keep_files SELECT id FROM (SELECT file_id AS id FROM "
           "scan_files UNION SELECT file_id FROM images UNION SELECT from_file_id FROM links "
           "UNION SELECT target_file_id FROM links UNION SELECT file_id FROM entries UNION "
           "SELECT file_id FROM findings UNION SELECT archive_file_id FROM ovf_disks UNION "
           "SELECT member_file_id FROM ovf_disks UNION SELECT file_id FROM layers UNION "
           "SELECT file_id FROM layer_runs UNION SELECT file_id FROM chain_layers UNION "
           "SELECT file_id FROM map) WHERE id IS NOT NULL"},
    {NULL, "INSERT OR IGNORE INTO ia_keep_files WITH RECURSIVE up(id) AS ("
           "SELECT archive_id FROM files WHERE id IN ia_keep_files AND archive_id IS NOT NULL "
           "UNION SELECT f.archive_id FROM files f JOIN up ON f.id = up.id "
           "WHERE f.archive_id IS NOT NULL) SELECT id FROM up"},
    {"files", "DELETE FROM files WHERE id NOT IN temp.ia_keep_files"},
};

#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

static int fail(sqlite3 *db, const char *what, struct ia_error *err)
{
        return ia_error_set(err, IA_ERR_IO, "database error %s: %s", what, sqlite3_errmsg(db));
}

int ia_prune_begin(struct ia_store *s, struct ia_error *err)
{
        sqlite3 *db = ia_store_db(s);

        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
                return fail(db, "starting the transaction", err);
        return 0;
}

/* Into temp.ia_prune. */
static int choose(sqlite3 *db, long keep, int64_t older, int64_t *n)
{
        sqlite3_stmt *st;
        int rc;

        if (sqlite3_exec(db, "CREATE TEMP TABLE ia_prune (id INTEGER PRIMARY KEY)", NULL, NULL,
                         NULL) != SQLITE_OK)
                return -1;
        if (keep > 0)
                rc = sqlite3_prepare_v2(
                    db,
                    "INSERT INTO ia_prune SELECT id FROM scans WHERE status <> 'running' AND id < "
                    "(SELECT min(id) FROM (SELECT id FROM scans WHERE status = 'complete' "
                    "ORDER BY id DESC LIMIT ?1))",
                    -1, &st, NULL);
        else
                rc = sqlite3_prepare_v2(
                    db,
                    "INSERT INTO ia_prune SELECT id FROM scans WHERE status <> 'running' AND "
                    "coalesce(started_ns, CAST(strftime('%s', started_at) AS INTEGER) * "
                    "1000000000) < ?2 AND id <> (SELECT max(id) FROM scans WHERE status = "
                    "'complete')",
                    -1, &st, NULL);
        if (rc != SQLITE_OK)
                return -1;
        sqlite3_bind_int64(st, 1, keep);
        {
                struct timespec now;

                clock_gettime(CLOCK_REALTIME, &now);
                /* in nanoseconds, as scans.started_ns (older: at most INT64_MAX / 1e9 s) */
                sqlite3_bind_int64(
                    st, 2,
                    (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec -
                        (older > INT64_MAX / 1000000000LL ? INT64_MAX : older * 1000000000LL));
        }
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return -1;
        *n = sqlite3_changes(db);
        return 0;
}

int ia_prune_choose(struct ia_store *s, long keep, int64_t older_s, int64_t *n,
                    struct ia_error *err)
{
        sqlite3 *db = ia_store_db(s);

        if (choose(db, keep, older_s, n) < 0)
                return fail(db, "choosing the scans", err);
        return 0;
}

void ia_prune_each_chosen(struct ia_store *s,
                          void (*fn)(int64_t id, const char *started_at, const char *status,
                                     void *opaque),
                          void *opaque)
{
        sqlite3_stmt *st;

        if (sqlite3_prepare_v2(ia_store_db(s),
                               "SELECT s.id, s.started_at, s.status FROM scans s "
                               "JOIN temp.ia_prune p ON p.id = s.id ORDER BY s.id",
                               -1, &st, NULL) != SQLITE_OK)
                return;
        while (sqlite3_step(st) == SQLITE_ROW)
                fn(sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
                   (const char *)sqlite3_column_text(st, 2), opaque);
        sqlite3_finalize(st);
}

int ia_prune_remove(struct ia_store *s, void (*fn)(const char *table, int rows, void *opaque),
                    void *opaque, struct ia_error *err)
{
        sqlite3 *db = ia_store_db(s);

        for (size_t i = 0; i < NSTEPS; i++) {
                if (sqlite3_exec(db, steps[i].sql, NULL, NULL, NULL) != SQLITE_OK)
                        return fail(db, steps[i].what ? steps[i].what : "pruning", err);
                if (steps[i].what && sqlite3_changes(db) > 0)
                        fn(steps[i].what, sqlite3_changes(db), opaque);
        }
        sqlite3_exec(db,
                     "DROP TABLE temp.ia_prune; DROP TABLE temp.ia_keep_maps; "
                     "DROP TABLE temp.ia_keep_files",
                     NULL, NULL, NULL);
        return 0;
}

int ia_prune_end(struct ia_store *s, bool commit, struct ia_error *err)
{
        sqlite3 *db = ia_store_db(s);

        if (!commit) {
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
                return 0;
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
                fail(db, "committing", err);
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
                return -1;
        }
        return 0;
}

void ia_prune_rollback(struct ia_store *s)
{
        sqlite3_exec(ia_store_db(s), "ROLLBACK", NULL, NULL, NULL);
}

int ia_prune_vacuum(struct ia_store *s, struct ia_error *err)
{
        sqlite3 *db = ia_store_db(s);

        if (sqlite3_exec(db, "VACUUM", NULL, NULL, NULL) != SQLITE_OK)
                return fail(db, "vacuuming (the scans are removed)", err);
        return 0;
}
