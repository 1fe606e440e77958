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
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cli.h"
#include "report.h"
#include "escape.h"
#include "out.h"
#include "pg.h"
#include "pg_tables.h"
#include "rbuf.h"
#include "schema.h"
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

/* ---- loading one store into an in-memory SQLite store ---- */

#define MAPS "(SELECT coalesce(map_image_id, id) FROM images WHERE store_id = $1 AND scan_id = $2)"
#define HIST                                                                                       \
        "(SELECT id FROM scans WHERE store_id = $1 AND status = 'complete' AND id <= $2 "          \
        "ORDER BY id DESC LIMIT $3)"
#define LAYERS                                                                                     \
        "(SELECT layer_id FROM pieces WHERE store_id = $1 AND image_id IN " MAPS                   \
        " UNION SELECT layer_id FROM chain_layers WHERE store_id = $1 AND image_id IN " MAPS ")"

static const char *const load_where[IA_PGT_COUNT] = {
    [IA_PGT_SCANS] = "true",
    [IA_PGT_SCAN_ROOTS] = "true",
    [IA_PGT_FILES] = "true",
    [IA_PGT_SCAN_FILES] = "scan_id = $2",
    [IA_PGT_ENTRIES] = "scan_id = $2",
    [IA_PGT_IMAGES] = "(scan_id = $2 OR scan_id IN " HIST ")",
    [IA_PGT_LINKS] = "(scan_id = $2 OR (scan_id IN " HIST " AND depth = 0 AND status = 'ok' "
                     "AND kind IN ('extent', 'data-file')))",
    [IA_PGT_MAP] = "image_id IN " MAPS,
    [IA_PGT_FINDINGS] = "scan_id = $2",
    [IA_PGT_OVF_DISKS] = "scan_id = $2",
    [IA_PGT_LAYERS] = "id IN " LAYERS,
    /* the report reads the data runs only (rpt_share.c: clipped to each piece) */
    [IA_PGT_LAYER_RUNS] = "data <> 0 AND layer_id IN " LAYERS,
    [IA_PGT_PIECES] = "image_id IN " MAPS,
    [IA_PGT_CHAIN_LAYERS] = "image_id IN " MAPS,
};

static int mem_error(sqlite3 *db, const char *what, struct ia_error *err)
{
        return ia_error_set(err, IA_ERR_IO, "in-memory store: %s: %s", what,
                            db ? sqlite3_errmsg(db) : "out of memory");
}

/* tmpl with $1..$3 replaced by vals[0..2] (already SQL: a literal, a number, ALL). */
static void subst(struct ia_rbuf *b, const char *tmpl, const char *const *vals)
{
        for (const char *p = tmpl; *p; p++) {
                if (p[0] == '$' && p[1] >= '1' && p[1] <= '3') {
                        ia_rbuf_adds(b, vals[p[1] - '1']);
                        p++;
                } else {
                        ia_rbuf_addc(b, *p);
                }
        }
}

static uint32_t get32(const unsigned char *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int bad_copy(struct ia_pg *pg, const char *table, struct ia_error *err)
{
        return ia_error_set(err, IA_ERR_CORRUPT,
                            "PostgreSQL at '%s': %s: COPY data of an unexpected shape", pg->where,
                            table);
}

/*
 * One binary COPY row (its field count first) of table t into st; *used:
 * the bytes it took.  Fields: the columns in order, a path column followed
 * by its _raw bytes (bigint: 8 bytes big endian; text and bytea: bytes).
 */
static int load_row(struct ia_pg *pg, sqlite3 *db, const struct ia_pg_table *tb, sqlite3_stmt *st,
                    const unsigned char *p, size_t n, size_t *used, struct ia_error *err)
{
        size_t at = 2, want = tb->ncols;
        const unsigned char *v[2];
        int32_t len[2];

        for (size_t i = 0; i < tb->ncols; i++)
                want += tb->cols[i].type == 'p';
        if (n < 2 || ((size_t)p[0] << 8 | p[1]) != want)
                return bad_copy(pg, tb->name, err);
        sqlite3_reset(st);
        for (size_t i = 0; i < tb->ncols; i++) {
                int bi = (int)i + 1, nf = tb->cols[i].type == 'p' ? 2 : 1;

                for (int f = 0; f < nf; f++) {
                        if (n - at < 4)
                                return bad_copy(pg, tb->name, err);
                        len[f] = (int32_t)get32(p + at);
                        at += 4;
                        v[f] = p + at;
                        if (len[f] > 0) {
                                if ((size_t)len[f] > n - at)
                                        return bad_copy(pg, tb->name, err);
                                at += (size_t)len[f];
                        }
                }
                if (len[0] < 0) {
                        sqlite3_bind_null(st, bi);
                } else if (tb->cols[i].type == 'i') {
                        uint64_t u = 0;

                        if (len[0] != 8)
                                return bad_copy(pg, tb->name, err);
                        for (int k = 0; k < 8; k++)
                                u = u << 8 | v[0][k];
                        sqlite3_bind_int64(st, bi, (int64_t)u);
                } else if (nf == 2 && len[1] >= 0) { /* the exact bytes of a name */
                        sqlite3_bind_blob(st, bi, v[1], len[1], SQLITE_STATIC);
                } else {
                        sqlite3_bind_text(st, bi, (const char *)v[0], len[0], SQLITE_STATIC);
                }
        }
        if (at != n)
                return bad_copy(pg, tb->name, err);
        if (sqlite3_step(st) != SQLITE_DONE)
                return mem_error(db, tb->name, err);
        *used = at;
        return 0;
}

/*
 * The rows of table t for the store into the in-memory store: COPY (SELECT
 * ...) TO STDOUT in the binary format, so that the server formats no text,
 * libpq keeps no result set, and each row goes to SQLite as it arrives
 * (server and client work at the same time).
 */
static int load_table(struct ia_pg *pg, sqlite3 *db, enum ia_pg_tbl t, const char *const *vals,
                      struct ia_error *err)
{
        static const unsigned char header[11] = "PGCOPY\n\377\r\n";
        const struct ia_pg_table *tb = &ia_pg_tables[t];
        struct ia_rbuf q, ins;
        PGresult *res = NULL;
        sqlite3_stmt *st = NULL;
        char *row = NULL;
        int ret = -1, n;
        bool head = false, trailer = false;

        ia_rbuf_init(&q);
        ia_rbuf_init(&ins);
        ia_rbuf_adds(&q, "COPY (SELECT ");
        ia_rbuf_addf(&ins, "INSERT INTO %s (", tb->name);
        for (size_t i = 0; i < tb->ncols; i++) {
                const char *nm = tb->cols[i].pg ? tb->cols[i].pg : tb->cols[i].name;

                ia_rbuf_addf(&q, "%s%s", i ? ", " : "", nm);
                if (tb->cols[i].type == 'p')
                        ia_rbuf_addf(&q, ", %s_raw", nm);
                ia_rbuf_addf(&ins, "%s%s", i ? ", " : "", tb->cols[i].name);
        }
        ia_rbuf_addf(&q, " FROM %s WHERE store_id = %s AND ", tb->name, vals[0]);
        subst(&q, load_where[t], vals);
        ia_rbuf_adds(&q, ") TO STDOUT (FORMAT binary)");
        ia_rbuf_adds(&ins, ") VALUES (");
        for (size_t i = 0; i < tb->ncols; i++)
                ia_rbuf_adds(&ins, i ? ", ?" : "?");
        ia_rbuf_adds(&ins, ")");
        if (q.nomem || ins.nomem) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto out;
        }
        if (sqlite3_prepare_v2(db, ins.buf, -1, &st, NULL) != SQLITE_OK) {
                mem_error(db, tb->name, err);
                goto out;
        }
        res = PQexec(pg->conn, q.buf);
        if (!res || PQresultStatus(res) != PGRES_COPY_OUT) {
                ia_pg_error(pg, res, "query failed", err);
                goto out;
        }
        PQclear(res);
        res = NULL;
        while ((n = PQgetCopyData(pg->conn, &row, 0)) > 0) {
                const unsigned char *p = (const unsigned char *)row;
                size_t len = (size_t)n, used = 0;

                if (!head) { /* signature, flags, header extension */
                        if (len < 19 || memcmp(p, header, sizeof(header)) != 0 ||
                            len - 19 < get32(p + 15)) {
                                bad_copy(pg, tb->name, err);
                                goto drain;
                        }
                        used = 19 + get32(p + 15);
                        p += used;
                        len -= used;
                        head = true;
                }
                while (len > 0) {
                        if (trailer) {
                                bad_copy(pg, tb->name, err);
                                goto drain;
                        }
                        if (len >= 2 && p[0] == 0xff && p[1] == 0xff) {
                                trailer = true;
                                used = 2;
                        } else if (load_row(pg, db, tb, st, p, len, &used, err) < 0) {
                                goto drain;
                        }
                        p += used;
                        len -= used;
                }
                PQfreemem(row);
                row = NULL;
        }
        if (n == -2 || !trailer) {
                ia_pg_error(pg, NULL, "COPY", err);
                goto drain;
        }
        ret = 0;
drain:
        PQfreemem(row);
        row = NULL;
        if (ret < 0 && n > 0) /* stop reading: the connection is closed by the caller */
                goto out;
        while ((res = PQgetResult(pg->conn)) != NULL) {
                if (PQresultStatus(res) != PGRES_COMMAND_OK && ret == 0)
                        ret = ia_pg_error(pg, res, "COPY", err);
                PQclear(res);
        }
out:
        sqlite3_finalize(st);
        PQclear(res);
        ia_rbuf_release(&q);
        ia_rbuf_release(&ins);
        return ret;
}

/* Drop every index that has its own CREATE INDEX statement. */
static int drop_indexes(sqlite3 *db, struct ia_error *err)
{
        sqlite3_stmt *st;
        struct ia_rbuf b;
        int rc;

        ia_rbuf_init(&b);
        if (sqlite3_prepare_v2(db,
                               "SELECT name FROM sqlite_master WHERE type = 'index' AND "
                               "sql IS NOT NULL",
                               -1, &st, NULL) != SQLITE_OK)
                return mem_error(db, "reading its indexes", err);
        while (sqlite3_step(st) == SQLITE_ROW) {
                const char *n = (const char *)sqlite3_column_text(st, 0);

                ia_rbuf_adds(&b, "DROP INDEX \"");
                for (; *n; n++) {
                        if (*n == '"')
                                ia_rbuf_addc(&b, '"');
                        ia_rbuf_addc(&b, *n);
                }
                ia_rbuf_adds(&b, "\";\n");
        }
        sqlite3_finalize(st);
        if (b.nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        rc = b.len ? sqlite3_exec(db, b.buf, NULL, NULL, NULL) : SQLITE_OK;
        ia_rbuf_release(&b);
        return rc == SQLITE_OK ? 0 : mem_error(db, "dropping its indexes", err);
}

/*
 * Build the in-memory store `name` (a memdb URI) holding scan scan_id of
 * store store_id (0: its latest complete scan); *db stays open (the memdb
 * lives as long as a connection to it).
 */
static int load_store(struct ia_pg *pg, const char *name, const char *store_id, int64_t scan_id,
                      bool all_history, sqlite3 **db, struct ia_error *err)
{
        char sid[24], pragma[128], lit[48];
        const char *params[3] = {lit, sid, all_history ? "ALL" : "60"};
        struct ia_rbuf idx;
        sqlite3_stmt *st;
        int version = 0;

        *db = NULL;
        if (scan_id == 0) {
                const char *p1[1] = {store_id};
                PGresult *res = ia_pg_query(pg,
                                            "SELECT coalesce(max(id), 0) FROM scans WHERE "
                                            "store_id = $1 AND status = 'complete'",
                                            1, p1, err);
                if (!res)
                        return -1;
                scan_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
                PQclear(res);
        }
        snprintf(sid, sizeof(sid), "%" PRId64, scan_id);
        /* COPY takes no parameters: the store id (a uuid the server gave) as a literal */
        for (size_t i = 0; store_id[i]; i++)
                if (i >= 36 || !(store_id[i] == '-' || (store_id[i] >= '0' && store_id[i] <= '9') ||
                                 (store_id[i] >= 'a' && store_id[i] <= 'f')))
                        return ia_error_set(err, IA_ERR_CORRUPT, "store id '%s' is not a uuid",
                                            store_id);
        snprintf(lit, sizeof(lit), "'%s'::uuid", store_id);
        if (sqlite3_open_v2(name, db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI |
                                SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK)
                return mem_error(*db, "opening", err);
        for (const struct ia_schema_file *f = ia_schema_files; f->name; f++) {
                if (sqlite3_exec(*db, f->sql, NULL, NULL, NULL) != SQLITE_OK)
                        return mem_error(*db, f->name, err);
                version = atoi(f->name);
        }
        /* no rollback journal: a store that fails to load is thrown away whole */
        snprintf(pragma, sizeof(pragma),
                 "PRAGMA user_version = %d; PRAGMA application_id = %d; PRAGMA journal_mode = OFF",
                 version, IA_APPLICATION_ID);
        if (sqlite3_exec(*db, pragma, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(*db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
                return mem_error(*db, "setting up", err);
        /*
         * The secondary indexes are made after the load, each in one
         * sorted pass, instead of being kept up to date row by row (the
         * tables' own keys stay: WITHOUT ROWID tables are their keys).
         */
        ia_rbuf_init(&idx);
        if (sqlite3_prepare_v2(*db,
                               "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND "
                               "sql IS NOT NULL",
                               -1, &st, NULL) != SQLITE_OK)
                return mem_error(*db, "reading its indexes", err);
        while (sqlite3_step(st) == SQLITE_ROW) {
                ia_rbuf_adds(&idx, (const char *)sqlite3_column_text(st, 1));
                ia_rbuf_adds(&idx, ";\n");
        }
        sqlite3_finalize(st);
        if (idx.nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        if (drop_indexes(*db, err) < 0) {
                ia_rbuf_release(&idx);
                return -1;
        }
        /* one snapshot of the central database for the whole store */
        /*
         * Every query reads one store's rows through an index led by
         * store_id: a sequential scan would read every host's rows once
         * per host (the planner picks one as soon as a store is a few
         * percent of a table), and JIT costs more than these queries.
         */
        if (ia_pg_exec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) < 0 ||
            ia_pg_exec(pg, "SET LOCAL enable_seqscan = off", err) < 0 ||
            ia_pg_exec(pg, "SET LOCAL jit = off", err) < 0) {
                ia_rbuf_release(&idx);
                return -1;
        }
        for (int t = 0; t < IA_PGT_COUNT; t++)
                if (load_table(pg, *db, (enum ia_pg_tbl)t, params, err) < 0) {
                        PQclear(PQexec(pg->conn, "ROLLBACK"));
                        ia_rbuf_release(&idx);
                        return -1;
                }
        if (ia_pg_exec(pg, "COMMIT", err) < 0) {
                ia_rbuf_release(&idx);
                return -1;
        }
        if ((idx.len && sqlite3_exec(*db, idx.buf, NULL, NULL, NULL) != SQLITE_OK) ||
            sqlite3_exec(*db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
                ia_rbuf_release(&idx);
                return mem_error(*db, "committing", err);
        }
        ia_rbuf_release(&idx);
        return 0;
}

/* ---- output ---- */

static int read_file(const char *path, struct ia_rbuf *b)
{
        char buf[65536];
        ssize_t n;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return -1;
        while ((n = read(fd, buf, sizeof(buf))) > 0)
                ia_rbuf_add(b, buf, (size_t)n);
        close(fd);
        return n < 0 || b->nomem ? -1 : 0;
}

static void json_str(struct ia_rbuf *b, const char *s)
{
        ia_rbuf_addc(b, '"');
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        ia_rbuf_addf(b, "\\%c", *p);
                else if (*p < 0x20)
                        ia_rbuf_addf(b, "\\u%04x", *p);
                else
                        ia_rbuf_addc(b, (char)*p);
        }
        ia_rbuf_addc(b, '"');
}

static void csv_field(struct ia_rbuf *b, const char *s)
{
        ia_rbuf_addc(b, '"');
        for (; *s; s++) {
                if (*s == '"')
                        ia_rbuf_addc(b, '"');
                ia_rbuf_addc(b, *s);
        }
        ia_rbuf_addc(b, '"');
}

/* Prometheus: families in first-seen order, each sample labelled with its host. */
struct prom_family {
        char *name;
        struct ia_rbuf head, samples;
};

struct prom {
        struct prom_family *f;
        size_t n;
        bool nomem;
};

static struct prom_family *prom_family(struct prom *p, const char *name, size_t len)
{
        struct prom_family *a;

        for (size_t i = 0; i < p->n; i++)
                if (strlen(p->f[i].name) == len && memcmp(p->f[i].name, name, len) == 0)
                        return &p->f[i];
        a = realloc(p->f, (p->n + 1) * sizeof(*a));
        if (!a)
                return NULL;
        p->f = a;
        a = &p->f[p->n];
        a->name = strndup(name, len);
        if (!a->name)
                return NULL;
        ia_rbuf_init(&a->head);
        ia_rbuf_init(&a->samples);
        p->n++;
        return a;
}

static void prom_add(struct prom *p, const char *text, size_t len, const char *host, bool first)
{
        struct prom_family *cur = NULL;
        const char *end = text + len;

        for (const char *l = text; l < end;) {
                const char *nl = memchr(l, '\n', (size_t)(end - l));
                size_t n = nl ? (size_t)(nl - l) : (size_t)(end - l);

                if (n > 7 && (strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0)) {
                        const char *nm = l + 7, *sp = memchr(nm, ' ', n - 7);
                        cur = prom_family(p, nm, sp ? (size_t)(sp - nm) : n - 7);
                        if (!cur) {
                                p->nomem = true;
                                return;
                        }
                        if (first) {
                                ia_rbuf_add(&cur->head, l, n);
                                ia_rbuf_addc(&cur->head, '\n');
                        }
                } else if (n > 0 && l[0] != '#') {
                        const char *br = memchr(l, '{', n), *sp = memchr(l, ' ', n);
                        size_t cut = br && (!sp || br < sp) ? (size_t)(br - l)
                                     : sp                   ? (size_t)(sp - l)
                                                            : n;

                        if (!cur) {
                                cur = prom_family(p, l, cut);
                                if (!cur) {
                                        p->nomem = true;
                                        return;
                                }
                        }
                        ia_rbuf_add(&cur->samples, l, cut);
                        ia_rbuf_adds(&cur->samples, "{fleet_host=\"");
                        for (const char *h = host; *h; h++) {
                                if (*h == '\\' || *h == '"')
                                        ia_rbuf_addc(&cur->samples, '\\');
                                if (*h == '\n')
                                        ia_rbuf_adds(&cur->samples, "\\n");
                                else
                                        ia_rbuf_addc(&cur->samples, *h);
                        }
                        ia_rbuf_addc(&cur->samples, '"');
                        if (br && (!sp || br < sp)) {
                                if (l[cut + 1] != '}')
                                        ia_rbuf_addc(&cur->samples, ',');
                                ia_rbuf_add(&cur->samples, l + cut + 1, n - cut - 1);
                        } else {
                                ia_rbuf_addc(&cur->samples, '}');
                                ia_rbuf_add(&cur->samples, l + cut, n - cut);
                        }
                        ia_rbuf_addc(&cur->samples, '\n');
                }
                l += n + 1;
        }
}

static void prom_release(struct prom *p)
{
        for (size_t i = 0; i < p->n; i++) {
                free(p->f[i].name);
                ia_rbuf_release(&p->f[i].head);
                ia_rbuf_release(&p->f[i].samples);
        }
        free(p->f);
}

/* The document to stdout ("-" or none), else to path as every report is written. */
static int write_out(const char *path, const char *buf, size_t len)
{
        if (!path || strcmp(path, "-") == 0)
                return ia_write_all(STDOUT_FILENO, buf, len);
        return ia_write_file(path, buf, len);
}

struct store_ref {
        char *host, *store_id;
};

/*
 * One host's report into outfile: its store loaded from PostgreSQL (pg, or
 * a connection of its own to conninfo when pg is NULL: a worker process),
 * then the local report on it.  Returns the exit status, the error printed.
 */
static int host_report(struct ia_pg *pg, const char *conninfo, const struct store_ref *sr,
                       int index, int64_t scan_id, bool since, char **pass, int npass,
                       const char *outfile)
{
        struct ia_pg own = {0};
        struct ia_error err = {0};
        sqlite3 *db = NULL;
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
        if (load_store(pg, mem, sr->store_id, scan_id, since, &db, &err) < 0) {
                sqlite3_close(db);
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
        sqlite3_close(db);
        return rc;
}

/* A report file, or the directory of csv tables, in the temporary directory. */
static void remove_out(const char *path)
{
        DIR *d;

        if (unlink(path) == 0 || errno != EISDIR)
                return;
        d = opendir(path);
        for (struct dirent *e; d && (e = readdir(d));)
                if (e->d_name[0] != '.')
                        unlinkat(dirfd(d), e->d_name, 0);
        if (d)
                closedir(d);
        rmdir(path);
}

/* ---- the command ---- */

int ia_cmd_report_pg(int argc, char **argv)
{
        static const struct option opts[] = {
            {"db", required_argument, NULL, 'd'},
            {"format", required_argument, NULL, 'F'},
            {"section", required_argument, NULL, 'S'},
            {"scan", required_argument, NULL, 's'},
            {"since", required_argument, NULL, 'n'},
            {"output", optional_argument, NULL, 'O'},
            {"host", required_argument, NULL, 'H'},
            {"help", no_argument, NULL, 'h'},
            {"prometheus-per-image", no_argument, NULL, 'P'},
            {NULL, 0, NULL, 0},
        };
        const char *section = NULL; /* the last --section: csv to stdout wants exactly one */
        bool csv_dir = false;       /* csv -o DIR: the tables go to files, per host */
        const char *conninfo = getenv("IMGAUDIT_DB"), *host = NULL, *out = NULL, *format = "human",
                   *scan = NULL;
        char **pass = calloc((size_t)argc * 2 + 8, sizeof(char *));
        char tmpdir[] = "/tmp/imgaudit-fleet-XXXXXX";
        struct store_ref *stores = NULL;
        struct ia_pg pg = {0};
        struct ia_error err = {0};
        struct ia_rbuf doc;
        struct prom prom = {0};
        bool since = false, have_tmp = false, single;
        int npass = 0, c, ret = 1, nstores = 0, version, jobs = 1, launched = 0;
        int64_t scan_id = 0;
        pid_t *pids = NULL;
        char **outfiles = NULL;
        PGresult *res = NULL;

        ia_rbuf_init(&doc);
        if (!pass) {
                fputs("imgaudit report: out of memory\n", stderr);
                return 1;
        }
        pass[npass++] = argv[0];
        /* the local report's grammar and error style (cmd_report.c), plus --host */
        opterr = 0;
        optind = 1;
        while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
                switch (c) {
                case 'd':
                        conninfo = optarg;
                        break;
                case 'H':
                        host = optarg;
                        break;
                case 'o':
                        if (!*optarg) {
                                free(pass);
                                return ia_usage_error("report", 2, "-o wants a file name");
                        }
                        out = optarg;
                        break;
                case 'O':
                        free(pass);
                        return ia_usage_error("report", 2,
                                              "no option --output: the layout is --format=FMT, "
                                              "the file -o FILE");
                case 'P':
                        pass[npass++] = "--prometheus-per-image";
                        break;
                case 'F':
                        format = optarg;
                        pass[npass++] = "--format";
                        pass[npass++] = optarg;
                        break;
                case 'S':
                        section = optarg;
                        pass[npass++] = "--section";
                        pass[npass++] = optarg;
                        break;
                case 's':
                        scan = optarg;
                        pass[npass++] = "--scan";
                        pass[npass++] = optarg;
                        break;
                case 'n':
                        since = true;
                        pass[npass++] = "--since";
                        pass[npass++] = optarg;
                        break;
                case 'h':
                        fputs(ia_report_usage, stdout);
                        free(pass);
                        return 0;
                default:
                        free(pass);
                        return ia_getopt_error("report", 2, c, argv);
                }
        }
        if (optind < argc) {
                ia_usage_error("report", 2, "unexpected argument '%s'", argv[optind]);
                free(pass);
                return 2;
        }
        if (strcmp(format, "human") && strcmp(format, "json") && strcmp(format, "csv") &&
            strcmp(format, "html") && strcmp(format, "prometheus")) {
                ia_usage_error("report", 2, "no format '%s' (human, json, csv, html, prometheus)",
                               format);
                free(pass);
                return 2;
        }
        if (scan && !host) {
                free(pass);
                return ia_usage_error("report", 2,
                                      "--scan names a scan of one host's store: give --host");
        }
        /* the in-memory stores are opened by URI (file:/NAME?vfs=memdb) */
        sqlite3_shutdown();
        sqlite3_config(SQLITE_CONFIG_URI, 1);
        sqlite3_initialize();

        if (ia_pg_connect(&pg, conninfo, &err) < 0 || ia_pg_migrate(&pg, false, &version, &err) < 0)
                goto fail;
        if (version == 0) {
                ia_error_set(&err, IA_ERR_MISSING,
                             "PostgreSQL at '%s' holds no imgaudit central schema (run 'imgaudit "
                             "pg-migrate' or 'imgaudit push')",
                             pg.where);
                goto fail;
        }
        {
                const char *p1[1] = {host};
                res = ia_pg_query(&pg,
                                  "SELECT t.host, t.store_id FROM stores t WHERE ($1::text IS NULL "
                                  "OR t.host = $1) AND EXISTS (SELECT 1 FROM scans s WHERE "
                                  "s.store_id = t.store_id AND s.status = 'complete') "
                                  "ORDER BY t.host, t.store_id",
                                  1, p1, &err);
        }
        if (!res)
                goto fail;
        nstores = PQntuples(res);
        if (nstores == 0) {
                if (host)
                        ia_error_set(&err, IA_ERR_MISSING,
                                     "PostgreSQL at '%s' holds no complete scan of host '%s'",
                                     pg.where, host);
                else
                        ia_error_set(&err, IA_ERR_MISSING,
                                     "PostgreSQL at '%s' holds no complete scan yet", pg.where);
                goto fail;
        }
        if (scan && nstores > 1) {
                ia_error_set(&err, IA_ERR_USAGE, "host '%s' pushes %d stores: --scan is ambiguous",
                             host, nstores);
                goto fail;
        }
        stores = calloc((size_t)nstores, sizeof(*stores));
        if (!stores)
                goto nomem;
        for (int i = 0; i < nstores; i++) {
                stores[i].host = strdup(PQgetvalue(res, i, 0));
                stores[i].store_id = strdup(PQgetvalue(res, i, 1));
                if (!stores[i].host || !stores[i].store_id)
                        goto nomem;
        }
        PQclear(res);
        res = NULL;
        if (!mkdtemp(tmpdir)) {
                ia_error_errno(&err, IA_ERR_IO, errno, "cannot create a temporary directory");
                goto fail;
        }
        have_tmp = true;
        csv_dir = strcmp(format, "csv") == 0 && out && strcmp(out, "-") != 0;
        if (csv_dir && !host && mkdir(out, 0777) < 0 && errno != EEXIST) {
                ia_error_errno(&err, IA_ERR_IO, errno, "cannot create directory '%s'", out);
                goto fail;
        }

        single = host && nstores == 1;
        if (single)
                ; /* the host's report as it is */
        else if (strcmp(format, "json") == 0)
                ia_rbuf_adds(&doc, "{\"fleet\": [");
        else if (strcmp(format, "html") == 0)
                ia_rbuf_adds(&doc, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                                   "<title>imgaudit fleet report</title></head><body>\n"
                                   "<h1>imgaudit fleet report</h1>\n");
        if (scan) {
                char *e;
                errno = 0;
                scan_id = strtoll(scan, &e, 10);
                if (errno || *e || scan_id <= 0) {
                        ia_error_set(&err, IA_ERR_USAGE, "--scan: '%s' is not a scan id", scan);
                        goto fail;
                }
        }
        /*
         * Hosts are loaded and reported by worker processes, one per
         * processor (at most 8), each with its own connection; their
         * reports are gathered in host order.  One host: in this process.
         */
        {
                long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

                jobs = nstores < 2 ? 1 : ncpu < 2 ? 2 : ncpu > 8 ? 8 : (int)ncpu;
                if (jobs > nstores)
                        jobs = nstores;
        }
        pids = calloc((size_t)nstores, sizeof(*pids));
        outfiles = calloc((size_t)nstores, sizeof(*outfiles));
        if (!pids || !outfiles)
                goto nomem;
        for (int i = 0; i < nstores; i++) {
                char path[4096];

                snprintf(path, sizeof(path), "%s/%d.out", tmpdir, i);
                if (csv_dir && !single) {
                        /* -o DIR: a directory of tables per host, DIR/HOST/TABLE.csv */
                        size_t k = 0;

                        k = (size_t)snprintf(path, sizeof(path), "%.*s/", 3800, out);
                        for (const char *h = stores[i].host; *h && k + 2 < sizeof(path); h++)
                                path[k++] = (*h == '/' || (unsigned char)*h < 0x20) ? '_' : *h;
                        path[k] = '\0';
                } else if (csv_dir) {
                        snprintf(path, sizeof(path), "%s", out);
                }
                outfiles[i] = strdup(path);
                if (!outfiles[i])
                        goto nomem;
        }
        for (int i = 0; i < nstores; i++) {
                char outfile[4096];
                struct ia_rbuf part;
                int rc;

                if (jobs > 1) {
                        while (launched < nstores && launched < i + jobs) {
                                pid_t pid;

                                fflush(NULL);
                                pid = fork();
                                if (pid < 0) {
                                        ia_error_errno(&err, IA_ERR_IO, errno,
                                                       "cannot start a worker process");
                                        goto fail;
                                }
                                if (pid == 0) /* never PQfinish the parent's connection */
                                        _exit(host_report(NULL, conninfo, &stores[launched],
                                                          launched, scan_id, since, pass, npass,
                                                          outfiles[launched]));
                                pids[launched++] = pid;
                        }
                        if (waitpid(pids[i], &rc, 0) < 0)
                                rc = 1;
                        else
                                rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
                        pids[i] = 0;
                } else {
                        rc = host_report(&pg, conninfo, &stores[i], i, scan_id, since, pass, npass,
                                         outfiles[i]);
                }
                if (rc != 0) {
                        ret = rc;
                        goto out;
                }
                snprintf(outfile, sizeof(outfile), "%s", outfiles[i]);
                if (csv_dir)
                        continue; /* written where it belongs */
                ia_rbuf_init(&part);
                if (strcmp(format, "csv") == 0) {
                        /* csv to stdout: the one section's first table, in the directory */
                        size_t k = strlen(outfile);

                        snprintf(outfile + k, sizeof(outfile) - k, "/%s.csv",
                                 section ? section : "summary");
                }
                if (read_file(outfile, &part) < 0) {
                        ia_rbuf_release(&part);
                        ia_error_errno(&err, IA_ERR_IO, errno, "reading '%s'", outfile);
                        goto fail;
                }
                unlink(outfile);
                if (strcmp(format, "csv") == 0) {
                        /* the other tables of that section, and the directory */
                        char *slash = strrchr(outfile, '/');
                        DIR *d;

                        *slash = '\0';
                        d = opendir(outfile);
                        for (struct dirent *e; d && (e = readdir(d));)
                                if (e->d_name[0] != '.')
                                        unlinkat(dirfd(d), e->d_name, 0);
                        if (d)
                                closedir(d);
                        rmdir(outfile);
                }
                if (single) {
                        ia_rbuf_add(&doc, part.buf ? part.buf : "", part.len);
                } else if (strcmp(format, "json") == 0) {
                        ia_rbuf_adds(&doc, i ? ",\n{\"host\": " : "\n{\"host\": ");
                        json_str(&doc, stores[i].host);
                        ia_rbuf_adds(&doc, ", \"store_id\": ");
                        json_str(&doc, stores[i].store_id);
                        ia_rbuf_adds(&doc, ", \"report\": ");
                        ia_rbuf_add(&doc, part.buf ? part.buf : "", part.len);
                        ia_rbuf_adds(&doc, "}");
                } else if (strcmp(format, "csv") == 0) {
                        if (i)
                                ia_rbuf_adds(&doc, "\r\n");
                        ia_rbuf_adds(&doc, "host,store_id\r\n");
                        csv_field(&doc, stores[i].host);
                        ia_rbuf_addc(&doc, ',');
                        csv_field(&doc, stores[i].store_id);
                        ia_rbuf_adds(&doc, "\r\n\r\n");
                        ia_rbuf_add(&doc, part.buf ? part.buf : "", part.len);
                } else if (strcmp(format, "html") == 0) {
                        ia_rbuf_adds(&doc, "<h2>host ");
                        ia_html_text(&doc, stores[i].host);
                        ia_rbuf_addf(&doc, " <small>(store %s)</small></h2>\n", stores[i].store_id);
                        ia_rbuf_adds(&doc,
                                     "<iframe style=\"width:100%;height:80vh;border:1px solid "
                                     "#ccc\" sandbox srcdoc=\"");
                        ia_html_text(&doc, part.buf ? part.buf : "");
                        ia_rbuf_adds(&doc, "\"></iframe>\n");
                } else if (strcmp(format, "prometheus") == 0) {
                        prom_add(&prom, part.buf ? part.buf : "", part.len, stores[i].host, i == 0);
                } else {
                        ia_rbuf_adds(&doc, "######## host ");
                        for (const char *h = stores[i].host; *h; h++)
                                ia_rbuf_addc(&doc, (unsigned char)*h < 0x20 ? '?' : *h);
                        ia_rbuf_addf(&doc, " (store %s) ########\n\n", stores[i].store_id);
                        ia_rbuf_add(&doc, part.buf ? part.buf : "", part.len);
                        ia_rbuf_addc(&doc, '\n');
                }
                ia_rbuf_release(&part);
        }
        if (csv_dir) {
                ret = 0;
                goto out;
        }
        if (!single) {
                if (strcmp(format, "json") == 0)
                        ia_rbuf_adds(&doc, "\n]}\n");
                else if (strcmp(format, "html") == 0)
                        ia_rbuf_adds(&doc, "</body></html>\n");
                else if (strcmp(format, "prometheus") == 0)
                        for (size_t k = 0; k < prom.n; k++) {
                                ia_rbuf_add(&doc, prom.f[k].head.buf ? prom.f[k].head.buf : "",
                                            prom.f[k].head.len);
                                ia_rbuf_add(&doc,
                                            prom.f[k].samples.buf ? prom.f[k].samples.buf : "",
                                            prom.f[k].samples.len);
                        }
        }
        if (doc.nomem || prom.nomem)
                goto nomem;
        if (write_out(out, doc.buf ? doc.buf : "", doc.len) < 0) {
                ia_error_errno(&err, IA_ERR_IO, errno, "cannot write '%s'", out ? out : "stdout");
                goto fail;
        }
        ret = 0;
        goto out;
nomem:
        ia_error_set(&err, IA_ERR_NOMEM, "out of memory");
fail:
        ia_diag("imgaudit report", "%s", ia_error_msg(&err));
        ret = err.cat == IA_ERR_USAGE ? 2 : 1;
out:
        PQclear(res);
        for (int i = 0; pids && i < launched; i++) /* workers of a report that failed */
                if (pids[i] > 0) {
                        kill(pids[i], SIGTERM);
                        waitpid(pids[i], NULL, 0);
                }
        for (int i = 0; outfiles && i < nstores; i++) {
                /* what a failed report left (the gathered ones are gone already) */
                if (outfiles[i] && !csv_dir)
                        remove_out(outfiles[i]);
                free(outfiles[i]);
        }
        free(outfiles);
        free(pids);
        if (have_tmp)
                rmdir(tmpdir);
        for (int i = 0; stores && i < nstores; i++) {
                free(stores[i].host);
                free(stores[i].store_id);
        }
        free(stores);
        prom_release(&prom);
        ia_rbuf_release(&doc);
        ia_pg_close(&pg);
        free(pass);
        return ret;
}
