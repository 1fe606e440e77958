/*
 * `imgaudit report --db CONNINFO`: the report of the fleet's central
 * PostgreSQL database, for one host (--host NAME) or every host.
 *
 * For each store (host) the rows of its reported scan — and what the trend
 * reads of the scans before it — are loaded from PostgreSQL into an
 * in-memory SQLite database built from the embedded local schema
 * (schema/NNN_*.sql), with the local ids kept; then the ordinary report code
 * (cmd_report.c, rpt_load.c, sections.c) runs on it.  So every figure is
 * the one the host's own SQLite store gives, by construction.
 *
 * What is loaded for a store and its reported scan S: every scans,
 * scan_roots and files row of the store; the images of the 60 latest
 * complete scans up to S (all of them with --since, which may reach
 * further back), with, for those before S, the depth-0 data-file and extent
 * links the capacity history counts; every other row of S (links, findings,
 * entries, scan_files, ovf_disks); the pieces, chain_layers and schema-2 map
 * rows of S's images' maps, and the layers they name with their data runs
 * (layer_runs with data: the only runs the report reads; local v_map of the
 * in-memory store is therefore not complete, and nothing reads it).
 *
 * The whole fleet is one report per host, in host order, each under its
 * host's heading: human (a heading line), csv (a host table first), json
 * ({"fleet": [{"host", "store_id", "report"}, ...]}), html (one page, each
 * host's report in an iframe of its own, srcdoc, nothing loaded from a
 * network) and prometheus (every sample labelled fleet_host="NAME", families
 * merged so each metric is described once).
 *
 * This file is the command and its worker processes; the store's
 * schema/pg_load.c lists the stores and loads one (pg_load.h: the queries
 * are the store's), pg_fleet_doc.c gathers the document (pg_report.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"
#include "escape.h"
#include "out.h"
#include "pg_report.h"
#include "report_args.h"
#include "banned.h"

bool ia_report_wants_pg(int argc, char **argv)
{
        const char *db = getenv("IMGAUDIT_DB");

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--") == 0)
                        break;
                if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
                        db = argv[++i];
                else if (strncmp(argv[i], "--db=", 5) == 0)
                        db = argv[i] + 5;
        }
        return db && ia_pg_is_conninfo(db);
}

/*
 * One host's report into outfile: its store loaded from PostgreSQL (pg, or
 * a connection of its own to conninfo when pg is NULL: a worker process),
 * then the local report on it.  Returns the exit status, the error printed.
 */
static int host_report(struct ia_pg *pg, const char *conninfo, const struct ia_fleet_store *sr,
                       int index, int64_t scan_id, bool since, char **pass, int npass,
                       const char *outfile)
{
        struct ia_pg own = {0};
        struct ia_error err = {0};
        struct sqlite3 *db = NULL;
        char mem[96];
        int rc, n = npass;

        snprintf(mem, sizeof(mem), "file:/imgaudit-fleet-%d-%d?vfs=memdb", (int)getpid(), index);
        if (!pg) {
                if (ia_pg_connect(&own, conninfo, &err) < 0) {
                        ia_diag("imgaudit report", "%s", ia_error_msg(&err));
                        return 1;
                }
                pg = &own;
        }
        if (ia_pg_load_store(pg, mem, sr->store_id, scan_id, since, &db, &err) < 0) {
                ia_pg_load_close(db);
                ia_error_prefix(&err, "host '%s' (store %s)", sr->host, sr->store_id);
                ia_diag("imgaudit report", "%s", ia_error_msg(&err));
                if (pg == &own)
                        ia_pg_close(&own);
                return 1;
        }
        if (pg == &own)
                ia_pg_close(&own);
        pass[n++] = "-o";
        pass[n++] = (char *)outfile;
        pass[n] = NULL;
        /* the host's store as loaded, by the connection that loaded it */
        rc = ia_cmd_report_db(db, mem, n, pass);
        ia_pg_load_close(db);
        return rc;
}

/* ---- the command ---- */

/* The options: the local report's grammar and error style (cmd_report.c), plus --host. */
struct fleet_opts {
        const char *conninfo, *host, *out, *format, *scan;
        const char *section; /* the last --section: csv to stdout wants exactly one */
        bool since;
        char **pass; /* the options passed on to each host's report */
        int npass;
};

/* The fleet report being made. */
struct fleet {
        struct fleet_opts o;
        struct ia_pg pg;
        struct ia_fleet_store *stores;
        int nstores;
        int64_t scan_id;
        bool csv_dir; /* csv -o DIR: the tables go to files, per host */
        bool single;  /* one host: its report as it is */
        char tmpdir[32];
        bool have_tmp;
        int jobs, launched;
        pid_t *pids;
        char **outfiles;
        struct ia_fleet_doc doc;
};

/* Parse the options into o (cmd_report.c's grammar, with --host); -1 to go on, else the exit
 * status. */
static int parse_opts(struct fleet_opts *o, int argc, char **argv)
{
        struct ia_report_args a = {.fleet = true, .pass = o->pass, .db = o->conninfo};
        int ret;

        a.pass[a.npass++] = argv[0];
        if ((ret = ia_report_parse_args(&a, argc, argv)) >= 0)
                return ret;
        o->npass = a.npass;
        o->conninfo = a.db;
        o->host = a.host;
        o->out = a.out;
        o->format = a.format_name;
        o->section = a.section;
        o->scan = a.scan;
        o->since = a.since != NULL;
        if (o->scan && !o->host)
                return ia_usage_error("report", 2,
                                      "--scan names a scan of one host's store: give --host");
        return -1;
}

/* Connect, check the schema, and list the stores to report (one host's, or every host's). */
static int list_stores(struct fleet *f, struct ia_error *err)
{
        int version;

        if (ia_pg_connect(&f->pg, f->o.conninfo, err) < 0 ||
            ia_pg_migrate(&f->pg, false, &version, err) < 0)
                return -1;
        if (version == 0)
                return ia_error_set(err, IA_ERR_MISSING,
                                    "PostgreSQL at '%s' holds no imgaudit central schema (run "
                                    "'imgaudit pg-migrate' or 'imgaudit push')",
                                    f->pg.where);
        if (ia_pg_list_stores(&f->pg, f->o.host, &f->stores, &f->nstores, err) < 0)
                return -1;
        if (f->nstores == 0) {
                if (f->o.host)
                        return ia_error_set(
                            err, IA_ERR_MISSING,
                            "PostgreSQL at '%s' holds no complete scan of host '%s'", f->pg.where,
                            f->o.host);
                return ia_error_set(err, IA_ERR_MISSING,
                                    "PostgreSQL at '%s' holds no complete scan yet", f->pg.where);
        }
        if (f->o.scan && f->nstores > 1)
                return ia_error_set(err, IA_ERR_USAGE,
                                    "host '%s' pushes %d stores: --scan is ambiguous", f->o.host,
                                    f->nstores);
        return 0;
}

/*
 * Where each host's report goes: a file of the temporary directory, or with
 * csv -o DIR the directory itself (one host) or DIR/HOST (the fleet).
 */
static int plan_outputs(struct fleet *f, struct ia_error *err)
{
        const char *out = f->o.out;

        snprintf(f->tmpdir, sizeof(f->tmpdir), "/tmp/imgaudit-fleet-XXXXXX");
        if (!mkdtemp(f->tmpdir))
                return ia_error_errno(err, IA_ERR_IO, errno, "cannot create a temporary directory");
        f->have_tmp = true;
        f->csv_dir = strcmp(f->o.format, "csv") == 0 && out && strcmp(out, "-") != 0;
        if (f->csv_dir && !f->o.host && mkdir(out, 0777) < 0 && errno != EEXIST)
                return ia_error_errno(err, IA_ERR_IO, errno, "cannot create directory '%s'", out);
        f->single = f->o.host && f->nstores == 1;
        if (f->o.scan) {
                char *e;

                errno = 0;
                f->scan_id = strtoll(f->o.scan, &e, 10);
                if (errno || *e || f->scan_id <= 0)
                        return ia_error_set(err, IA_ERR_USAGE, "--scan: '%s' is not a scan id",
                                            f->o.scan);
        }
        f->pids = calloc((size_t)f->nstores, sizeof(*f->pids));
        f->outfiles = calloc((size_t)f->nstores, sizeof(*f->outfiles));
        if (!f->pids || !f->outfiles)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        for (int i = 0; i < f->nstores; i++) {
                char path[4096];

                snprintf(path, sizeof(path), "%s/%d.out", f->tmpdir, i);
                if (f->csv_dir && !f->single) {
                        size_t k = (size_t)snprintf(path, sizeof(path), "%.*s/", 3800, out);

                        for (const char *h = f->stores[i].host; *h && k + 2 < sizeof(path); h++)
                                path[k++] = (*h == '/' || (unsigned char)*h < 0x20) ? '_' : *h;
                        path[k] = '\0';
                } else if (f->csv_dir) {
                        snprintf(path, sizeof(path), "%s", out);
                }
                f->outfiles[i] = strdup(path);
                if (!f->outfiles[i])
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        return 0;
}

/*
 * Host i's report, made: hosts are loaded and reported by worker processes,
 * one per processor (at most 8), each with its own connection, started
 * ahead of the host being gathered; one host: in this process.  Returns
 * the host's exit status; -1 (err set): no worker could be started.
 */
static int host_done(struct fleet *f, int i, struct ia_error *err)
{
        int rc;

        if (f->jobs <= 1)
                return host_report(&f->pg, f->o.conninfo, &f->stores[i], i, f->scan_id, f->o.since,
                                   f->o.pass, f->o.npass, f->outfiles[i]);
        while (f->launched < f->nstores && f->launched < i + f->jobs) {
                int k = f->launched;
                pid_t pid;

                fflush(NULL);
                pid = fork();
                if (pid < 0)
                        return ia_error_errno(err, IA_ERR_IO, errno,
                                              "cannot start a worker process");
                if (pid == 0) /* never PQfinish the parent's connection */
                        _exit(host_report(NULL, f->o.conninfo, &f->stores[k], k, f->scan_id,
                                          f->o.since, f->o.pass, f->o.npass, f->outfiles[k]));
                f->pids[f->launched++] = pid;
        }
        if (waitpid(f->pids[i], &rc, 0) < 0)
                rc = 1;
        else
                rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
        f->pids[i] = 0;
        return rc;
}

/* Host i's report file (csv to stdout: the one section's first table) into the document. */
static int gather(struct fleet *f, int i, struct ia_error *err)
{
        char outfile[4096];
        struct ia_rbuf part;
        bool csv = strcmp(f->o.format, "csv") == 0;

        snprintf(outfile, sizeof(outfile), "%s", f->outfiles[i]);
        if (csv) {
                size_t k = strlen(outfile);

                snprintf(outfile + k, sizeof(outfile) - k, "/%s.csv",
                         f->o.section ? f->o.section : "summary");
        }
        ia_rbuf_init(&part);
        if (ia_fleet_read_file(outfile, &part) < 0) {
                ia_rbuf_release(&part);
                return ia_error_errno(err, IA_ERR_IO, errno, "reading '%s'", outfile);
        }
        unlink(outfile);
        if (csv) { /* the other tables of that section, and the directory */
                *strrchr(outfile, '/') = '\0';
                ia_fleet_remove_out(outfile);
        }
        ia_fleet_doc_add(&f->doc, i, &f->stores[i], part.buf ? part.buf : "", part.len);
        ia_rbuf_release(&part);
        return 0;
}

/* Every host's report, gathered in host order; returns the exit status (errors printed). */
static int run_fleet(struct fleet *f, struct ia_error *err)
{
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

        if (list_stores(f, err) < 0 || plan_outputs(f, err) < 0)
                return -1;
        f->jobs = f->nstores < 2 ? 1 : ncpu < 2 ? 2 : ncpu > 8 ? 8 : (int)ncpu;
        if (f->jobs > f->nstores)
                f->jobs = f->nstores;
        ia_fleet_doc_begin(&f->doc, f->o.format, f->single);
        for (int i = 0; i < f->nstores; i++) {
                int rc = host_done(f, i, err);

                if (rc != 0)
                        return rc;
                if (!f->csv_dir && gather(f, i, err) < 0) /* csv -o DIR: written in place */
                        return -1;
        }
        if (f->csv_dir)
                return 0;
        if (ia_fleet_doc_end(&f->doc) < 0)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        if (ia_fleet_write_out(f->o.out, f->doc.doc.buf ? f->doc.doc.buf : "", f->doc.doc.len) < 0)
                return ia_error_errno(err, IA_ERR_IO, errno, "cannot write '%s'",
                                      f->o.out ? f->o.out : "stdout");
        return 0;
}

static void fleet_release(struct fleet *f)
{
        for (int i = 0; f->pids && i < f->launched; i++) /* workers of a report that failed */
                if (f->pids[i] > 0) {
                        kill(f->pids[i], SIGTERM);
                        waitpid(f->pids[i], NULL, 0);
                }
        for (int i = 0; f->outfiles && i < f->nstores; i++) {
                /* what a failed report left (the gathered ones are gone already) */
                if (f->outfiles[i] && !f->csv_dir)
                        ia_fleet_remove_out(f->outfiles[i]);
                free(f->outfiles[i]);
        }
        free(f->outfiles);
        free(f->pids);
        if (f->have_tmp)
                rmdir(f->tmpdir);
        ia_pg_free_stores(f->stores, f->nstores);
        ia_fleet_doc_release(&f->doc);
        ia_pg_close(&f->pg);
        free(f->o.pass);
}

int ia_cmd_report_pg(int argc, char **argv)
{
        struct fleet f;
        struct ia_error err = {0};
        int ret;

        memset(&f, 0, sizeof(f));
        f.o.conninfo = getenv("IMGAUDIT_DB");
        f.o.format = "human";
        f.o.pass = calloc((size_t)argc * 2 + 8, sizeof(char *));
        if (!f.o.pass) {
                fputs("imgaudit report: out of memory\n", stderr);
                return 1;
        }
        ia_rbuf_init(&f.doc.doc);
        ret = parse_opts(&f.o, argc, argv);
        if (ret >= 0) {
                free(f.o.pass);
                return ret;
        }
        ia_pg_load_init();
        ret = run_fleet(&f, &err);
        if (ret < 0) {
                ia_diag("imgaudit report", "%s", ia_error_msg(&err));
                ret = err.cat == IA_ERR_USAGE ? 2 : 1;
        }
        fleet_release(&f);
        return ret;
}
