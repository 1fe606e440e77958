/*
 * `imgaudit push`: copy the complete scans of a local store to the fleet's
 * central PostgreSQL database; `imgaudit pg-migrate`: bring that database's
 * schema (schema/pg/) up to date.
 *
 * The command: its options, its summary and its exit statuses.  The push
 * itself (the local store's snapshot, one transaction per scan, COPY, what
 * the server has already, the per-store lock) is the store's:
 * schema/pg_push.h.  Nothing is retried: an error stops the push with its
 * own exit status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scanner.h"
#include "pg_push.h"
#include "cli.h"
#include "banned.h"

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

static void print_scan(void *ctx, int64_t scan_id, uint64_t rows)
{
        (void)ctx;
        printf("pushed scan %" PRId64 ": %" PRIu64 " rows\n", scan_id, rows);
}

static int run_push(struct ia_push *p, const char *db, const char *conninfo, bool quiet,
                    struct ia_error *err)
{
        struct timespec t0, t1;
        unsigned pushed = 0, present = 0;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (ia_push_open(p, db, err) < 0 || ia_push_connect(p, conninfo, err) < 0 ||
            ia_push_scans(p, quiet ? NULL : print_scan, NULL, &pushed, &present, err) < 0)
                return -1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (!quiet) {
                double s =
                    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
                printf("store %s (host %s) -> %s: %u scans pushed, %u already there; %" PRIu64
                       " rows, %" PRIu64 " bytes in %.3f s (%.0f rows/s)\n",
                       p->store_id, p->host, p->pg.where, pushed, present, p->rows, p->bytes, s,
                       s > 0 ? (double)p->rows / s : 0.0);
        }
        return 0;
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
        bool quiet = false;
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
                        quiet = true;
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
        ret = run_push(&p, db, to, quiet, &err) < 0 ? exit_status(&err) : 0;
        if (ret)
                fprintf(stderr, "imgaudit push: %s\n", ia_error_msg(&err));
        if (fflush(stdout) != 0 && ret == 0) {
                fprintf(stderr, "imgaudit push: writing the summary: %s\n", strerror(errno));
                ret = 1;
        }
        ia_push_close(&p);
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
