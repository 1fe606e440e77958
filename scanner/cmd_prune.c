/*
 * imgaudit prune: remove old scans and whatever only they use.
 *
 * A scan's own rows (scans, scan_roots, scan_files, entries, images, links,
 * findings, ovf_disks) go with it.  What later scans share with it stays:
 * the pieces, map rows and chain_layers of an image row that a kept image
 * names as its map (map_image_id), the layers and runs kept pieces use, the
 * files kept rows name.  All in one transaction, under the scan lock; the
 * latest complete scan is never removed.  --dry-run counts in the same
 * transaction and rolls it back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "escape.h"
#include "lock.h"
#include "store.h"
#include "banned.h"

const char ia_prune_usage[] =
    "usage: imgaudit prune [--db FILE] (--keep N | --older-than AGE) [--dry-run] [--vacuum]\n"
    "\n"
    "Remove old scans from the database, and the rows only they use (maps, layers,\n"
    "files no kept scan names).  The latest complete scan is never removed.\n"
    "\n"
    "  --db FILE          the database (default: $IMGAUDIT_DB, else ./imgaudit.db)\n"
    "  --keep N           keep the N latest complete scans (N >= 1) and what came after\n"
    "                     them; remove every older scan\n"
    "  --older-than AGE   remove the scans started more than AGE ago (30d, 12w, 48h, 90m,\n"
    "                     3600s)\n"
    "  --dry-run          say what would go, change nothing\n"
    "  --vacuum           VACUUM afterwards, to give the freed pages back to the file\n"
    "                     system (rewrites the whole file)\n"
    "\n"
    "Exit status: 0 done (or nothing to remove); 2 usage error; 3 the database could not\n"
    "be pruned (locked by a scan, damaged, a database error; nothing changed).\n";

/* "30d" -> seconds; -1 if not an age. */
static int64_t parse_age(const char *s)
{
        char *end;
        unsigned long long v;
        int64_t unit;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || !end[0] || end[1])
                return -1;
        switch (*end) {
        case 's':
                unit = 1;
                break;
        case 'm':
                unit = 60;
                break;
        case 'h':
                unit = 3600;
                break;
        case 'd':
                unit = 86400;
                break;
        case 'w':
                unit = 7 * 86400;
                break;
        default:
                return -1;
        }
        if (v > (unsigned long long)(INT64_MAX / unit))
                return -1;
        return (int64_t)v * unit;
}

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

static int fail(sqlite3 *db, const char *what)
{
        ia_diag("imgaudit prune", "database error %s: %s", what, sqlite3_errmsg(db));
        return 3;
}

/* Choose the scans to remove into temp.ia_prune; their number in *n. */
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

static void list_scans(sqlite3 *db)
{
        sqlite3_stmt *st;

        if (sqlite3_prepare_v2(db,
                               "SELECT s.id, s.started_at, s.status FROM scans s "
                               "JOIN temp.ia_prune p ON p.id = s.id ORDER BY s.id",
                               -1, &st, NULL) != SQLITE_OK)
                return;
        while (sqlite3_step(st) == SQLITE_ROW)
                printf("  scan %lld  %s  %s\n", (long long)sqlite3_column_int64(st, 0),
                       (const char *)sqlite3_column_text(st, 1),
                       (const char *)sqlite3_column_text(st, 2));
        sqlite3_finalize(st);
}

int ia_cmd_prune(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"db", required_argument, NULL, 'd'},
            {"keep", required_argument, NULL, 'k'},
            {"older-than", required_argument, NULL, 'a'},
            {"dry-run", no_argument, NULL, 'n'},
            {"vacuum", no_argument, NULL, 'V'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
        };
        const char *db_path = getenv("IMGAUDIT_DB");
        long keep = 0;
        int64_t older = -1, nscans = 0;
        bool dry = false, vacuum = false;
        struct ia_lock lock;
        struct ia_store *store = NULL;
        struct ia_error err;
        sqlite3 *db;
        int c, rc = 3;

        if (!db_path || !*db_path)
                db_path = "imgaudit.db";
        opterr = 0;
        optind = 0;
        while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
                char *end;

                switch (c) {
                case 'd':
                        if (!*optarg || strcmp(optarg, ":memory:") == 0)
                                return ia_usage_error(
                                    "prune", 2, "--db wants a database file, not '%s'", optarg);
                        db_path = optarg;
                        break;
                case 'k':
                        errno = 0;
                        keep = strtol(optarg, &end, 10);
                        if (errno || end == optarg || *end || keep < 1)
                                return ia_usage_error("prune", 2,
                                                      "--keep wants a number of scans, at least "
                                                      "1 (the latest complete scan always "
                                                      "stays), not '%s'",
                                                      optarg);
                        break;
                case 'a':
                        older = parse_age(optarg);
                        if (older < 0)
                                return ia_usage_error("prune", 2,
                                                      "--older-than wants an age such as 30d, "
                                                      "12w or 48h, not '%s'",
                                                      optarg);
                        break;
                case 'n':
                        dry = true;
                        break;
                case 'V':
                        vacuum = true;
                        break;
                case 'h':
                        fputs(ia_prune_usage, stdout);
                        return 0;
                default:
                        return ia_getopt_error("prune", 2, c, argv);
                }
        }
        if (optind < argc)
                return ia_usage_error("prune", 2, "unexpected argument '%s'", argv[optind]);
        if ((keep > 0) == (older >= 0))
                return ia_usage_error("prune", 2, "%s",
                                      "wants one of --keep N and --older-than AGE");
        if (dry && vacuum)
                return ia_usage_error("prune", 2, "%s",
                                      "--dry-run and --vacuum contradict each other");
        {
                struct stat st;

                if (stat(db_path, &st) < 0) {
                        ia_diag("imgaudit prune", "no database '%s': %s", db_path, strerror(errno));
                        return 3;
                }
        }
        if (ia_lock_take(&lock, db_path, &err) < 0) {
                ia_diag("imgaudit prune", "%s", ia_error_msg(&err));
                return 3;
        }
        if (ia_store_open(lock.db, &store, &err) < 0) {
                ia_diag("imgaudit prune", "%s", ia_error_msg(&err));
                goto unlock;
        }
        db = ia_store_db(store);
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
                rc = fail(db, "starting the transaction");
                goto close;
        }
        if (choose(db, keep, older, &nscans) < 0) {
                rc = fail(db, "choosing the scans");
                goto rollback;
        }
        printf("%s %lld scan%s%s\n", dry ? "would remove" : "removing", (long long)nscans,
               nscans == 1 ? "" : "s", nscans ? ":" : "");
        list_scans(db);
        for (size_t i = 0; i < NSTEPS; i++) {
                if (sqlite3_exec(db, steps[i].sql, NULL, NULL, NULL) != SQLITE_OK) {
                        rc = fail(db, steps[i].what ? steps[i].what : "pruning");
                        goto rollback;
                }
                if (steps[i].what && sqlite3_changes(db) > 0)
                        printf("  %-13s %d rows\n", steps[i].what, sqlite3_changes(db));
        }
        sqlite3_exec(db,
                     "DROP TABLE temp.ia_prune; DROP TABLE temp.ia_keep_maps; "
                     "DROP TABLE temp.ia_keep_files",
                     NULL, NULL, NULL);
        if (dry) {
                sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
                rc = 0;
                goto close;
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
                rc = fail(db, "committing");
                goto rollback;
        }
        if (vacuum && sqlite3_exec(db, "VACUUM", NULL, NULL, NULL) != SQLITE_OK) {
                rc = fail(db, "vacuuming (the scans are removed)");
                goto close;
        }
        rc = 0;
        goto close;
rollback:
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
close:
        ia_store_close(store);
unlock:
        ia_lock_release(&lock);
        return rc;
}
