/*
 * `imgaudit report`: what people read in the morning.
 *
 * Reads one scan of the store (read-only; never blocks a running scan),
 * computes the sections (sections.c) and renders them as human tables,
 * JSON (schema/report.schema.json), CSV, one self-contained HTML page or a
 * node_exporter textfile.  The whole document is built in memory and
 * written only once complete: to stdout, or to -o FILE through a temporary
 * file renamed over it, so a reader never sees half a report.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "rbuf.h"
#include "rpt.h"
#include "schema.h"
#include "sections.h"

const char ia_report_usage[] =
    "usage: imgaudit report [--db FILE] [--format=human|json|csv|html|prometheus]\n"
    "                       [--section=NAME]... [--scan ID] [--since ID|DATE] [-o FILE]\n"
    "\n"
    "Report on a scan of the store: capacity, sharing of backing images, chains,\n"
    "orphans, findings and growth.  The database is only read, never locked\n"
    "against a running scan.\n"
    "\n"
    "      --db FILE          the database (default: $IMGAUDIT_DB, else imgaudit.db);\n"
    "                         a libpq CONNINFO or postgresql:// URI: the fleet's database\n"
    "      --host NAME        with --db CONNINFO: that host only (default: every host)\n"
    "      --format=FMT       human (default), json, csv, html or prometheus\n"
    "      --section=NAME     summary, capacity, sharing, chains, orphans, findings,\n"
    "                         trend; repeat or separate with commas (default: all)\n"
    "      --scan ID          report on scan ID (default: the latest complete scan)\n"
    "      --since ID|DATE    measure growth from the complete scan ID, or from the\n"
    "                         last complete scan started at or before DATE\n"
    "                         (YYYY-MM-DD[THH:MM[:SS]]), always one before the\n"
    "                         reported scan; default: the complete scan before it\n"
    "  -o, --output=FILE      write to FILE atomically (temporary file + rename)\n"
    "\n"
    "Exit status: 0 on success, 1 on an error, 2 on a usage error.\n";

void ia_print_version(FILE *f)
{
        int db = 0;

        for (const struct ia_schema_file *s = ia_schema_files; s->name; s++)
                db = atoi(s->name);
        fprintf(f, "imgaudit %s (database schema %d, report schema %d)\n", IMGAUDIT_VERSION, db,
                IA_REPORT_SCHEMA_VERSION);
}

enum fmt { FMT_HUMAN, FMT_JSON, FMT_CSV, FMT_HTML, FMT_PROM };

static int parse_sections(const char *arg, bool *sel)
{
        char *copy = strdup(arg), *save = NULL, *tok;
        int ret = 0;

        if (!copy)
                return -1;
        for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                int k;

                for (k = 0; k < IA_SEC_COUNT; k++)
                        if (strcmp(tok, ia_section_names[k]) == 0)
                                break;
                if (k == IA_SEC_COUNT) {
                        fprintf(stderr,
                                "imgaudit report: no section '%s' (summary, capacity, sharing, "
                                "chains, orphans, findings, trend)\n",
                                tok);
                        ret = -1;
                        break;
                }
                sel[k] = true;
        }
        free(copy);
        return ret;
}

static int write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

/* Write buf to path atomically: a temporary file beside it, fsync, rename. */
static int write_atomic(const char *path, const char *buf, size_t len)
{
        size_t n = strlen(path);
        char *tmp = malloc(n + 16);
        mode_t mask;
        int fd, e;

        if (!tmp) {
                errno = ENOMEM;
                return -1;
        }
        snprintf(tmp, n + 16, "%s.tmp.XXXXXX", path);
        fd = mkstemp(tmp);
        if (fd < 0) {
                e = errno;
                free(tmp);
                errno = e;
                return -1;
        }
        mask = umask(0);
        umask(mask);
        if (fchmod(fd, 0666 & ~mask) < 0 || write_all(fd, buf, len) < 0 || fsync(fd) < 0) {
                e = errno;
                close(fd);
                unlink(tmp);
                free(tmp);
                errno = e;
                return -1;
        }
        if (close(fd) < 0 || rename(tmp, path) < 0) {
                e = errno;
                unlink(tmp);
                free(tmp);
                errno = e;
                return -1;
        }
        free(tmp);
        return 0;
}

static void render(enum fmt f, const struct ia_rpt *r, struct ia_rpt_out *o, const bool *sel,
                   struct ia_rbuf *b)
{
        static const char *const heads[IA_SEC_COUNT] = {
            "SUMMARY", "CAPACITY", "SHARING", "CHAINS", "ORPHANS", "FINDINGS", "TREND",
        };
        bool first = true;

        switch (f) {
        case FMT_JSON: {
                const char *s = json_object_to_json_string_ext(
                    o->doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                JSON_C_TO_STRING_NOSLASHESCAPE);
                if (!s) {
                        b->nomem = true;
                        return;
                }
                ia_rbuf_adds(b, s);
                ia_rbuf_addc(b, '\n');
                return;
        }
        case FMT_CSV:
                for (struct ia_table *t = o->tables; t; t = t->next) {
                        if (!first)
                                ia_rbuf_adds(b, "\r\n");
                        ia_table_csv(t, b);
                        first = false;
                }
                return;
        case FMT_HTML:
                ia_html_render(r, o, sel, b);
                return;
        case FMT_PROM:
                ia_rbuf_add(b, o->prom.buf ? o->prom.buf : "", o->prom.len);
                ia_rbuf_adds(b, "# HELP imgaudit_report_scan_id The scan this report describes.\n"
                                "# TYPE imgaudit_report_scan_id gauge\n");
                ia_rbuf_addf(b, "imgaudit_report_scan_id %" PRId64 "\n", r->scan.id);
                return;
        case FMT_HUMAN:
                ia_rbuf_addf(b, "imgaudit report: scan %" PRId64 " (%s), started %s", r->scan.id,
                             r->scan.status, r->scan.started_at);
                if (r->scan.finished_at)
                        ia_rbuf_addf(b, ", finished %s", r->scan.finished_at);
                ia_rbuf_adds(b, "\n\n");
                for (int k = 0; k < IA_SEC_COUNT; k++) {
                        const struct ia_table *t = o->sec_first[k];

                        if (!sel[k])
                                continue;
                        ia_rbuf_addf(b, "== %s ==\n\n", heads[k]);
                        for (size_t i = 0; i < o->sec_ntables[k] && t; i++, t = t->next)
                                ia_table_human(t, b);
                }
                return;
        }
}

int ia_cmd_report(int argc, char **argv)
{
        static const struct option opts[] = {
            {"db", required_argument, NULL, 'd'},      {"format", required_argument, NULL, 'F'},
            {"section", required_argument, NULL, 'S'}, {"scan", required_argument, NULL, 's'},
            {"since", required_argument, NULL, 'n'},   {"output", required_argument, NULL, 'o'},
            {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
        };
        const char *db = getenv("IMGAUDIT_DB"), *scan = NULL, *since = NULL, *out = NULL;
        bool sel[IA_SEC_COUNT] = {false}, any = false;
        enum fmt f = FMT_HUMAN;
        struct ia_rpt r;
        struct ia_rpt_out o;
        struct ia_error err = {0};
        struct ia_rbuf doc;
        int c, ret = 1;

        if (ia_report_wants_pg(argc, argv)) /* --db CONNINFO: the fleet (pg_report.c) */
                return ia_cmd_report_pg(argc, argv);
        if (!db || !*db)
                db = "imgaudit.db";
        optind = 1;
        while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
                switch (c) {
                case 'd':
                        db = optarg;
                        break;
                case 'F':
                        if (strcmp(optarg, "human") == 0)
                                f = FMT_HUMAN;
                        else if (strcmp(optarg, "json") == 0)
                                f = FMT_JSON;
                        else if (strcmp(optarg, "csv") == 0)
                                f = FMT_CSV;
                        else if (strcmp(optarg, "html") == 0)
                                f = FMT_HTML;
                        else if (strcmp(optarg, "prometheus") == 0)
                                f = FMT_PROM;
                        else {
                                fprintf(stderr,
                                        "imgaudit report: no format '%s' (human, json, csv, "
                                        "html, prometheus)\n",
                                        optarg);
                                return 2;
                        }
                        break;
                case 'S':
                        if (parse_sections(optarg, sel) < 0)
                                return 2;
                        any = true;
                        break;
                case 's':
                        scan = optarg;
                        break;
                case 'n':
                        since = optarg;
                        break;
                case 'o':
                        out = optarg;
                        break;
                case 'h':
                        fputs(ia_report_usage, stdout);
                        return 0;
                default:
                        fputs(ia_report_usage, stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "imgaudit report: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (!any)
                for (int k = 0; k < IA_SEC_COUNT; k++)
                        sel[k] = true;

        ia_rbuf_init(&doc);
        if (ia_rpt_open(&r, db, &err) < 0 ||
            ia_rpt_load(&r, scan, since, sel[IA_SEC_TREND], &err) < 0) {
                fprintf(stderr, "imgaudit report: %s\n", err.msg);
                ia_rpt_close(&r);
                return err.cat == IA_ERR_USAGE ? 2 : 1;
        }
        if (ia_rpt_out_init(&o, &r) < 0) {
                fprintf(stderr, "imgaudit report: out of memory\n");
                goto out;
        }
        for (int k = 0; k < IA_SEC_COUNT; k++) {
                if (sel[k] && ia_section_run((enum ia_section)k, &r, &o, &err) < 0) {
                        fprintf(stderr, "imgaudit report: %s: %s\n", ia_section_names[k], err.msg);
                        goto out_o;
                }
        }
        render(f, &r, &o, sel, &doc);
        if (doc.nomem) {
                fprintf(stderr, "imgaudit report: out of memory\n");
                goto out_o;
        }
        if (out && strcmp(out, "-") != 0) {
                if (write_atomic(out, doc.buf ? doc.buf : "", doc.len) < 0) {
                        fprintf(stderr, "imgaudit report: cannot write '%s': %s\n", out,
                                strerror(errno));
                        goto out_o;
                }
        } else if (write_all(STDOUT_FILENO, doc.buf ? doc.buf : "", doc.len) < 0) {
                fprintf(stderr, "imgaudit report: writing the report: %s\n", strerror(errno));
                goto out_o;
        }
        ret = 0;
out_o:
        ia_rpt_out_release(&o);
out:
        ia_rbuf_release(&doc);
        ia_rpt_close(&r);
        return ret;
}
