/*
 * imgaudit prune: remove old scans and whatever only they use.
 *
 * A scan's own rows (scans, scan_roots, scan_files, entries, images, links,
 * findings, ovf_disks) go with it.  What later scans share with it stays:
 * the pieces, map rows and chain_layers of an image row that a kept image
 * names as its map (map_image_id), the layers and runs kept pieces use, the
 * files kept rows name.  All in one transaction, under the scan lock; the
 * latest complete scan is never removed.  --dry-run counts in the same
 * transaction and rolls it back.  The statements are in schema/store_prune.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "scanner.h"
#include "escape.h"
#include "lock.h"
#include "store.h"
#include "store_prune.h"
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

static void print_scan(int64_t id, const char *started_at, const char *status, void *opaque)
{
        (void)opaque;
        printf("  scan %lld  %s  %s\n", (long long)id, started_at, status);
}

static void print_rows(const char *table, int rows, void *opaque)
{
        (void)opaque;
        printf("  %-13s %d rows\n", table, rows);
}

/* What the command line asks for. */
struct prune_opts {
        const char *db_path;
        long keep;     /* --keep N, else 0 */
        int64_t older; /* --older-than in seconds, else -1 */
        bool dry, vacuum;
};

/* Reads the options into *o: -1 to go on, else the exit status (help, usage error). */
static int prune_args(int argc, char **argv, struct prune_opts *o)
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
        int c;

        o->db_path = getenv("IMGAUDIT_DB");
        if (!o->db_path || !*o->db_path)
                o->db_path = "imgaudit.db";
        o->keep = 0;
        o->older = -1;
        o->dry = o->vacuum = false;
        opterr = 0;
        optind = 0;
        while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
                char *end;

                switch (c) {
                case 'd':
                        if (!*optarg || strcmp(optarg, ":memory:") == 0)
                                return ia_usage_error(
                                    "prune", 2, "--db wants a database file, not '%s'", optarg);
                        o->db_path = optarg;
                        break;
                case 'k':
                        errno = 0;
                        o->keep = strtol(optarg, &end, 10);
                        if (errno || end == optarg || *end || o->keep < 1)
                                return ia_usage_error("prune", 2,
                                                      "--keep wants a number of scans, at least "
                                                      "1 (the latest complete scan always "
                                                      "stays), not '%s'",
                                                      optarg);
                        break;
                case 'a':
                        o->older = parse_age(optarg);
                        if (o->older < 0)
                                return ia_usage_error("prune", 2,
                                                      "--older-than wants an age such as 30d, "
                                                      "12w or 48h, not '%s'",
                                                      optarg);
                        break;
                case 'n':
                        o->dry = true;
                        break;
                case 'V':
                        o->vacuum = true;
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
        if ((o->keep > 0) == (o->older >= 0))
                return ia_usage_error("prune", 2, "%s",
                                      "wants one of --keep N and --older-than AGE");
        if (o->dry && o->vacuum)
                return ia_usage_error("prune", 2, "%s",
                                      "--dry-run and --vacuum contradict each other");
        return -1;
}

/*
 * Chooses, lists and removes in one transaction on an open store: commits it
 * (then VACUUMs if asked), or rolls it back for --dry-run and on error.
 * 0, or 3 (said on stderr).
 */
static int prune_store(struct ia_store *store, const struct prune_opts *o)
{
        struct ia_error err;
        int64_t nscans = 0;

        if (ia_prune_begin(store, &err) < 0) {
                ia_diag("imgaudit prune", "%s", ia_error_msg(&err));
                return 3;
        }
        if (ia_prune_choose(store, o->keep, o->older, &nscans, &err) < 0)
                goto rollback;
        printf("%s %lld scan%s%s\n", o->dry ? "would remove" : "removing", (long long)nscans,
               nscans == 1 ? "" : "s", nscans ? ":" : "");
        ia_prune_each_chosen(store, print_scan, NULL);
        if (ia_prune_remove(store, print_rows, NULL, &err) < 0)
                goto rollback;
        if (o->dry) {
                ia_prune_end(store, false, NULL);
                return 0;
        }
        if (ia_prune_end(store, true, &err) < 0 ||
            (o->vacuum && ia_prune_vacuum(store, &err) < 0)) {
                ia_diag("imgaudit prune", "%s", ia_error_msg(&err));
                return 3;
        }
        return 0;
rollback:
        ia_diag("imgaudit prune", "%s", ia_error_msg(&err));
        ia_prune_rollback(store);
        return 3;
}

int ia_cmd_prune(int argc, char **argv)
{
        struct prune_opts o;
        struct ia_lock lock;
        struct ia_store *store = NULL;
        struct ia_error err;
        struct stat st;
        int rc = prune_args(argc, argv, &o);

        if (rc >= 0)
                return rc;
        if (stat(o.db_path, &st) < 0) {
                ia_diag("imgaudit prune", "no database '%s': %s", o.db_path, strerror(errno));
                return 3;
        }
        if (ia_lock_take(&lock, o.db_path, &err) < 0) {
                ia_diag("imgaudit prune", "%s", ia_error_msg(&err));
                return 3;
        }
        if (ia_store_open(lock.db, &store, &err) < 0) {
                ia_diag("imgaudit prune", "%s", ia_error_msg(&err));
                rc = 3;
        } else {
                rc = prune_store(store, &o);
                ia_store_close(store);
        }
        ia_lock_release(&lock);
        return rc;
}
