/*
 * `imgaudit report`: what people read in the morning.
 *
 * Reads one scan of the store (read-only; never blocks a running scan),
 * computes the sections (sections.c) and renders them as human tables,
 * JSON (schema/report.schema.json), CSV, one self-contained HTML page or a
 * node_exporter textfile.  Each section is written as soon as it is made
 * (and what it made is freed), into a temporary file: beside -o FILE and
 * renamed over it, or in /tmp and copied to stdout once complete, so a
 * reader never sees half a report and memory does not grow with its size.
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
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "report.h"
#include "escape.h"
#include "out.h"
#include "rbuf.h"
#include "report_args.h"
#include "rpt.h"
#include "sections.h"
#include "banned.h"

const char ia_report_usage[] =
    "usage: imgaudit report [--db FILE] [--format=human|json|csv|html|prometheus]\n"
    "                       [--section=NAME]... [--scan ID] [--since ID|DATE] [-o FILE]\n"
    "                       [--prometheus-per-image]\n"
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
    "      --since ID|DATE|AGE  measure growth from the complete scan ID, or from the\n"
    "                         last complete scan started at or before DATE\n"
    "                         (YYYY-MM-DD[THH:MM[:SS]][Z], UTC) or AGE ago (a number\n"
    "                         and s, m, h, d or w: 7d, 24h), always one before the\n"
    "                         reported scan; default: the complete scan before it\n"
    "  -o FILE                write to FILE atomically (temporary file + rename);\n"
    "                         csv: -o DIR writes DIR/TABLE.csv, one file per table;\n"
    "                         the layout is chosen by --format, never by -o\n"
    "      --prometheus-per-image  also series per image, directory and base\n"
    "                         (one set per image: mind the cardinality)\n"
    "\n"
    "Exit status: 0 on success, 1 on an error, 2 on a usage error.\n";

void ia_print_version(FILE *f)
{
        fprintf(f, "imgaudit %s (database schema %d, report schema %d)\n", IMGAUDIT_VERSION,
                ia_rpt_latest_schema(), IA_REPORT_SCHEMA_VERSION);
}

/*
 * Before the store is read: a path that cannot be a database is named with
 * its cause (a store of a newer schema is refused by ia_rpt_open).
 */
static int check_db(const char *path)
{
        char why[512];

        if (ia_db_problem(path, false, why, sizeof(why))) {
                ia_diag("imgaudit report", "database '%s': %s", path, why);
                return -1;
        }
        return 0;
}

static bool digits(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

static int num(const char *s, size_t n)
{
        int v = 0;

        for (size_t i = 0; i < n; i++)
                v = v * 10 + (s[i] - '0');
        return v;
}

/* "YYYY-MM-DD[THH:MM[:SS]][Z]", a real day of a real month, UTC. */
static bool valid_date(const char *s)
{
        static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        size_t n = strlen(s);
        int y, m, d, lim;

        if (n > 0 && s[n - 1] == 'Z')
                n--;
        if (n != 10 && n != 16 && n != 19)
                return false;
        if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2))
                return false;
        y = num(s, 4);
        m = num(s + 5, 2);
        d = num(s + 8, 2);
        if (y < 1 || m < 1 || m > 12)
                return false;
        lim = mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
        if (d < 1 || d > lim)
                return false;
        if (n == 10)
                return true;
        if ((s[10] != 'T' && s[10] != ' ') || !digits(s + 11, 2) || s[13] != ':' ||
            !digits(s + 14, 2) || num(s + 11, 2) > 23 || num(s + 14, 2) > 59)
                return false;
        return n == 16 || (s[16] == ':' && digits(s + 17, 2) && num(s + 17, 2) <= 59);
}

/*
 * --since: a scan id as is; a date checked and passed on without its 'Z'
 * (all our times are UTC); an age (7d, 24h, 90m, 2w, 3600s) as the date
 * that long before now.  Points *out at arg or at buf; -1 if it is none.
 */
static int since_arg(const char *arg, char *buf, size_t n, const char **out)
{
        size_t len = strlen(arg);

        if (len > 0 && digits(arg, len)) {
                *out = arg;
                return 0;
        }
        if (valid_date(arg)) {
                snprintf(buf, n, "%.*s", (int)(arg[len - 1] == 'Z' ? len - 1 : len), arg);
                *out = buf;
                return 0;
        }
        if (len >= 2 && len <= 8 && digits(arg, len - 1) && strchr("smhdw", arg[len - 1])) {
                static const long long unit[] = {1, 60, 3600, 86400, 604800};
                long long v =
                    strtoll(arg, NULL, 10) * unit[strchr("smhdw", arg[len - 1]) - "smhdw"];
                time_t t = time(NULL) - (time_t)v;
                struct tm tm;

                if (v > 0 && v <= 100LL * 366 * 86400 && gmtime_r(&t, &tm) &&
                    strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm) > 0) {
                        *out = buf;
                        return 0;
                }
        }
        return -1;
}

enum fmt { FMT_HUMAN, FMT_JSON, FMT_CSV, FMT_HTML, FMT_PROM };

/* "NAME[,NAME]...": every name a section, none empty. */
static int parse_sections(const char *arg, bool *sel)
{
        const char *p = arg;

        for (;;) {
                size_t len = strcspn(p, ",");
                int k;

                for (k = 0; k < IA_SEC_COUNT; k++)
                        if (strlen(ia_section_names[k]) == len &&
                            strncmp(p, ia_section_names[k], len) == 0)
                                break;
                if (k == IA_SEC_COUNT)
                        return ia_usage_error("report", -1,
                                              "%s '%.*s' (summary, capacity, sharing, chains, "
                                              "orphans, findings, trend)",
                                              len ? "no section" : "--section wants a name, not",
                                              (int)len, p);
                sel[k] = true;
                if (!p[len])
                        return 0;
                p += len + 1;
        }
}

/*
 * CSV into a directory: one file per table, DIR/TABLE.csv, each written
 * atomically; a section's first table is named after the section.  The
 * directory is created if missing (its parent must exist).
 */
static int write_csv_dir(const char *dir, const struct ia_rpt_out *o)
{
        struct stat st;

        if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
                ia_diag("imgaudit report", "cannot create directory '%s': %s", dir,
                        strerror(errno));
                return -1;
        }
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                fprintf(stderr,
                        "imgaudit report: '%s' is not a directory (--format=csv -o DIR writes "
                        "one file per table)\n",
                        dir);
                return -1;
        }
        for (const struct ia_table *t = o->tables; t; t = t->next) {
                struct ia_rbuf b, path;
                int bad;

                ia_rbuf_init(&b);
                ia_rbuf_init(&path);
                ia_table_csv(t, &b);
                ia_rbuf_addf(&path, "%s/%s.csv", dir, t->id);
                bad = b.nomem || path.nomem;
                if (bad)
                        fprintf(stderr, "imgaudit report: out of memory\n");
                else if (ia_write_file(path.buf, b.buf ? b.buf : "", b.len) < 0) {
                        ia_diag("imgaudit report", "cannot write '%s': %s", path.buf,
                                strerror(errno));
                        bad = 1;
                }
                ia_rbuf_release(&b);
                ia_rbuf_release(&path);
                if (bad)
                        return -1;
        }
        return 0;
}

static const char *const heads[IA_SEC_COUNT] = {
    "SUMMARY", "CAPACITY", "SHARING", "CHAINS", "ORPHANS", "FINDINGS", "TREND",
};

/* What the layout shows of section k, made just now; its tables are dropped after. */
static int render_section(enum fmt f, const struct ia_rpt *r, struct ia_rpt_out *o, int k,
                          bool *first, const char *csv_dir, struct ia_sink *sink,
                          struct ia_sink *body)
{
        const struct ia_table *t = o->sec_first[k];

        switch (f) {
        case FMT_JSON: /* written by the section itself */
                break;
        case FMT_CSV:
                if (csv_dir)
                        return write_csv_dir(csv_dir, o);
                /* to stdout: the one selected section's first table */
                if (*first && t) {
                        ia_table_csv(t, &sink->b);
                        *first = false;
                }
                break;
        case FMT_HTML:
                ia_html_section(r, o, (enum ia_section)k, &body->b);
                ia_sink_spill(body);
                break;
        case FMT_PROM:
                ia_rbuf_add(&sink->b, o->prom.buf ? o->prom.buf : "", o->prom.len);
                if (o->prom.nomem)
                        sink->b.nomem = true;
                ia_rbuf_release(&o->prom);
                break;
        case FMT_HUMAN:
                ia_rbuf_addf(&sink->b, "== %s ==\n\n", heads[k]);
                for (size_t i = 0; i < o->sec_ntables[k] && t; i++, t = t->next) {
                        ia_table_human(t, &sink->b);
                        ia_sink_spill(sink);
                }
                break;
        }
        ia_sink_spill(sink);
        return 0;
}

/* The whole report into sink (csv_dir: the files of a CSV directory instead). */
static int write_report(enum fmt f, struct ia_rpt *r, const bool *sel, bool per_image,
                        const char *csv_dir, struct ia_sink *sink, struct ia_error *err)
{
        struct ia_rpt_out o;
        struct ia_sink body;
        bool first = true;
        int ret = -1;

        ia_sink_init(&body, -1);
        if (f == FMT_HTML) {
                /* the sections first, into a file: the head's cards need their figures */
                body.fd = ia_tmpfile();
                if (body.fd < 0)
                        return ia_error_errno(err, IA_ERR_IO, errno,
                                              "cannot create a temporary file in /tmp");
        }
        if (ia_rpt_out_init(&o, r,
                            f == FMT_JSON   ? IA_OUT_JSON
                            : f == FMT_PROM ? IA_OUT_PROM
                                            : IA_OUT_TABLES,
                            sink) < 0) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto out;
        }
        o.prom_per_image = per_image;
        if (f == FMT_PROM && ia_prom_store(r, &o, err) < 0)
                goto out;
        if (f == FMT_HUMAN) {
                ia_rbuf_addf(&sink->b, "imgaudit report: scan %" PRId64 " (%s), started %s",
                             r->scan.id, r->scan.status, r->scan.started_at);
                if (r->scan.finished_at)
                        ia_rbuf_addf(&sink->b, ", finished %s", r->scan.finished_at);
                ia_rbuf_adds(&sink->b, "\n\n");
        }
        for (int k = 0; k < IA_SEC_COUNT; k++) {
                if (!sel[k])
                        continue;
                if (ia_section_run((enum ia_section)k, r, &o, err) < 0) {
                        ia_error_prefix(err, "%s", ia_section_names[k]);
                        goto out;
                }
                if (render_section(f, r, &o, k, &first, csv_dir, sink, &body) < 0) {
                        err->msg[0] = '\0';
                        err->full = NULL;
                        goto out;
                }
                ia_rpt_out_drop_tables(&o);
        }
        ia_rpt_out_finish(&o);
        if (f == FMT_PROM) {
                ia_rbuf_adds(&sink->b, "# HELP imgaudit_report_scan_id The scan this report "
                                       "describes.\n"
                                       "# TYPE imgaudit_report_scan_id gauge\n");
                ia_rbuf_addf(&sink->b, "imgaudit_report_scan_id %" PRId64 "\n", r->scan.id);
        }
        if (f == FMT_HTML) {
                ia_html_head(r, &o, sel, &sink->b);
                if (ia_sink_flush(&body) < 0 || ia_sink_copy_fd(sink, body.fd) < 0) {
                        ia_error_errno(err, IA_ERR_IO, errno, "writing the report");
                        goto out;
                }
                ia_html_foot(&sink->b);
        }
        ret = 0;
out:
        ia_rpt_out_release(&o);
        if (body.fd >= 0)
                close(body.fd);
        ia_sink_release(&body);
        return ret;
}

/* Write the report of the loaded store r to out (NULL or "-": standard output). */
static int report_to(enum fmt f, struct ia_rpt *r, const bool *sel, bool per_image, const char *out)
{
        struct ia_error err = {0};
        struct ia_outfile of;
        struct ia_sink sink;
        const char *csv_dir = f == FMT_CSV && out && strcmp(out, "-") != 0 ? out : NULL;
        int ret;

        if (csv_dir) {
                ia_sink_init(&sink, -1);
                ret = write_report(f, r, sel, per_image, csv_dir, &sink, &err);
                ia_sink_release(&sink);
                if (ret < 0 && err.msg[0])
                        ia_diag("imgaudit report", "%s", ia_error_msg(&err));
                return ret < 0 ? 1 : 0;
        }
        if (ia_outfile_open(&of, out) < 0) {
                if (out && strcmp(out, "-") != 0)
                        ia_diag("imgaudit report", "cannot write '%s': %s", out, strerror(errno));
                else
                        ia_diag("imgaudit report", "cannot create a temporary file in /tmp: %s",
                                strerror(errno));
                return 1;
        }
        ia_sink_init(&sink, of.fd);
        ret = write_report(f, r, sel, per_image, NULL, &sink, &err);
        if (ret < 0) {
                if (err.msg[0])
                        ia_diag("imgaudit report", "%s", ia_error_msg(&err));
        } else if (ia_sink_flush(&sink) < 0) {
                if (errno == ENOMEM)
                        ia_diag("imgaudit report", "out of memory");
                else if (out && strcmp(out, "-") != 0)
                        ia_diag("imgaudit report", "cannot write '%s': %s", out, strerror(errno));
                else
                        ia_diag("imgaudit report", "writing the report: %s", strerror(errno));
                ret = -1;
        } else if (ia_outfile_commit(&of) < 0) {
                if (out && strcmp(out, "-") != 0)
                        ia_diag("imgaudit report", "cannot write '%s': %s", out, strerror(errno));
                else
                        ia_diag("imgaudit report", "writing the report: %s", strerror(errno));
                ia_sink_release(&sink);
                return 1;
        }
        if (ret < 0)
                ia_outfile_abort(&of);
        ia_sink_release(&sink);
        return ret < 0 ? 1 : 0;
}

static void pass_on(struct ia_report_args *a, const char *opt, const char *val)
{
        if (!a->pass)
                return;
        a->pass[a->npass++] = (char *)opt;
        if (val)
                a->pass[a->npass++] = (char *)val;
}

/* One option of the grammar; -1 to go on, else the exit status. */
static int report_arg(struct ia_report_args *a, int c, char **argv)
{
        static const char *const formats[] = {"human", "json", "csv", "html", "prometheus"};

        switch (c) {
        case 'd':
                a->db = optarg;
                return -1;
        case 'H':
                a->host = optarg;
                return -1;
        case 'F':
                for (a->format = 0; a->format < 5; a->format++)
                        if (strcmp(optarg, formats[a->format]) == 0)
                                break;
                if (a->format == 5)
                        return ia_usage_error("report", 2,
                                              "no format '%s' (human, json, csv, html, "
                                              "prometheus)",
                                              optarg);
                a->format_name = formats[a->format];
                pass_on(a, "--format", optarg);
                return -1;
        case 'S':
                if (parse_sections(optarg, a->sel) < 0)
                        return 2;
                a->any = true;
                a->section = optarg;
                pass_on(a, "--section", optarg);
                return -1;
        case 's':
                a->scan = optarg;
                pass_on(a, "--scan", optarg);
                return -1;
        case 'n':
                if (since_arg(optarg, a->since_buf, sizeof(a->since_buf), &a->since) < 0)
                        return ia_usage_error(
                            "report", 2,
                            "--since '%s' is not a valid date (YYYY-MM-DD[THH:MM[:SS]][Z], "
                            "UTC), a scan id or an age (7d, 24h)",
                            optarg);
                pass_on(a, "--since", optarg);
                return -1;
        case 'o':
                if (!*optarg)
                        return ia_usage_error("report", 2, "-o wants a file name");
                a->out = optarg;
                return -1;
        case 'O':
                /* map's --output is the layout; here the layout is --format */
                return ia_usage_error("report", 2,
                                      "no option --output: the layout is --format=FMT, "
                                      "the file -o FILE");
        case 'P':
                a->per_image = true;
                pass_on(a, "--prometheus-per-image", NULL);
                return -1;
        case 'h':
                fputs(ia_report_usage, stdout);
                return 0;
        default:
                return ia_getopt_error("report", 2, c, argv);
        }
}

int ia_report_parse_args(struct ia_report_args *a, int argc, char **argv)
{
        /* --host last: the local report's table stops before it */
        static const struct option opts[] = {
            {"db", required_argument, NULL, 'd'},
            {"format", required_argument, NULL, 'F'},
            {"section", required_argument, NULL, 'S'},
            {"scan", required_argument, NULL, 's'},
            {"since", required_argument, NULL, 'n'},
            {"output", optional_argument, NULL, 'O'},
            {"help", no_argument, NULL, 'h'},
            {"prometheus-per-image", no_argument, NULL, 'P'},
            {"host", required_argument, NULL, 'H'},
            {NULL, 0, NULL, 0},
        };
        enum { NOPTS = sizeof(opts) / sizeof(opts[0]) };
        struct option local[NOPTS];
        int c, ret;

        memcpy(local, opts, sizeof(opts));
        memset(&local[NOPTS - 2], 0, sizeof(local[0])); /* without --host */
        a->format_name = "human";
        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":o:h", a->fleet ? opts : local, NULL)) != -1)
                if ((ret = report_arg(a, c, argv)) >= 0)
                        return ret;
        if (optind < argc)
                return ia_usage_error("report", 2, "unexpected argument '%s'", argv[optind]);
        return -1;
}

/*
 * The command: options from argv; the store is given (db, called name in
 * messages) or, db NULL, opened from --db / $IMGAUDIT_DB.
 */
static int report_main(int argc, char **argv, struct sqlite3 *given, const char *name)
{
        struct ia_report_args a = {.db = getenv("IMGAUDIT_DB")};
        bool *sel = a.sel;
        enum fmt f;
        struct ia_rpt r;
        struct ia_error err = {0};
        int ret;

        if (!a.db || !*a.db)
                a.db = "imgaudit.db";
        if ((ret = ia_report_parse_args(&a, argc, argv)) >= 0)
                return ret;
        f = (enum fmt)a.format;
        if (f == FMT_CSV && (!a.out || strcmp(a.out, "-") == 0)) {
                int n = 0;

                for (int k = 0; k < IA_SEC_COUNT; k++)
                        n += sel[k];
                if (n != 1)
                        return ia_usage_error("report", 2,
                                              "--format=csv: one --section=NAME to standard "
                                              "output, or -o DIR for a file per table");
        }
        if (!a.any)
                for (int k = 0; k < IA_SEC_COUNT; k++)
                        sel[k] = true;

        if (!given && check_db(a.db) < 0)
                return 1;
        if ((given ? ia_rpt_attach(&r, given, name, &err) : ia_rpt_open(&r, a.db, &err)) < 0 ||
            ia_rpt_load(&r, a.scan, a.since, sel[IA_SEC_TREND], &err) < 0) {
                ia_diag("imgaudit report", "%s", ia_error_msg(&err));
                ia_rpt_close(&r);
                return err.cat == IA_ERR_USAGE ? 2 : 1;
        }
        ret = report_to(f, &r, sel, a.per_image, a.out);
        ia_rpt_close(&r);
        return ret;
}

int ia_cmd_report(int argc, char **argv)
{
        if (ia_report_wants_pg(argc, argv)) /* --db CONNINFO: the fleet (pg_report.c) */
                return ia_cmd_report_pg(argc, argv);
        return report_main(argc, argv, NULL, NULL);
}

int ia_cmd_report_db(struct sqlite3 *db, const char *name, int argc, char **argv)
{
        return report_main(argc, argv, db, name);
}
