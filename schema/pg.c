/*
 * The central PostgreSQL database: see pg.h (the COPY writer is pg_copy.c).
 *
 * libpq is given the conninfo string as it is, so everything libpq reads
 * by itself (PGSERVICE, PGPASSFILE, PGSSLMODE, a service file's sslmode,
 * sslrootcert...) applies and no password needs to be in argv or the
 * environment.  Messages name the server by ia_pg_redact(), never by the
 * string given.
 */
#define _GNU_SOURCE
#include "pg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rbuf.h"
#include "schema.h"
#include "store.h"
#include "banned.h"

/* The advisory lock key class of imgaudit ("IADT"); key 0: migrations. */
#define IA_PG_LOCK_CLASS 1229014100

bool ia_pg_is_conninfo(const char *s)
{
        size_t n = 0;

        if (!s)
                return false;
        if (strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0)
                return true;
        /* "keyword = value ...": a file name of that shape is written ./NAME */
        while (*s == ' ')
                s++;
        while ((s[n] >= 'a' && s[n] <= 'z') || s[n] == '_')
                n++;
        s += n;
        while (*s == ' ')
                s++;
        return n > 0 && *s == '=';
}

char *ia_pg_redact(const char *conninfo)
{
        static const char *const keep[] = {"service", "host", "hostaddr", "port",
                                           "dbname",  "user", "sslmode"};
        PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", NULL);
        struct ia_rbuf b;

        ia_rbuf_init(&b);
        if (!opts) {
                ia_rbuf_adds(&b, "(an invalid connection string)");
                return b.nomem ? NULL : b.buf;
        }
        for (PQconninfoOption *o = opts; o->keyword; o++) {
                if (!o->val || !*o->val)
                        continue;
                for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++)
                        if (strcmp(o->keyword, keep[k]) == 0)
                                ia_rbuf_addf(&b, "%s%s=%s", b.len ? " " : "", o->keyword, o->val);
        }
        PQconninfoFree(opts);
        if (b.len == 0)
                ia_rbuf_adds(&b, "(libpq defaults)");
        if (b.nomem) {
                ia_rbuf_release(&b);
                return NULL;
        }
        return b.buf;
}

/* libpq's message, one line, without the trailing newline. */
static void chomp(char *dst, size_t cap, const char *msg)
{
        size_t n = 0;

        for (const char *p = msg ? msg : ""; *p && n + 1 < cap; p++)
                dst[n++] = *p == '\n' || *p == '\t' ? ' ' : *p;
        while (n > 0 && dst[n - 1] == ' ')
                n--;
        dst[n] = '\0';
}

int ia_pg_connect(struct ia_pg *pg, const char *conninfo, struct ia_error *err)
{
        char msg[400];
        const char *m;

        memset(pg, 0, sizeof(*pg));
        pg->where = ia_pg_redact(conninfo);
        if (!pg->where)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        pg->conn = PQconnectdb(conninfo);
        if (!pg->conn)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        if (PQstatus(pg->conn) == CONNECTION_OK) {
                PQsetClientEncoding(pg->conn, "UTF8");
                return 0;
        }
        m = PQerrorMessage(pg->conn);
        chomp(msg, sizeof(msg), m);
        ia_error_set(err, IA_ERR_IO, "cannot connect to PostgreSQL at '%s': %s", pg->where, msg);
        if (err)
                err->reason = PQconnectionNeedsPassword(pg->conn) ||
                                      strstr(m, "authentication failed") ||
                                      strstr(m, "no password supplied") ||
                                      strstr(m, "password is required") ||
                                      (strstr(m, "role \"") && strstr(m, "does not exist")) ||
                                      strstr(m, "no pg_hba.conf entry")
                                  ? "auth"
                                  : "unreachable";
        return -1;
}

void ia_pg_close(struct ia_pg *pg)
{
        ia_pg_sync(pg, NULL);
        if (pg->conn)
                PQfinish(pg->conn);
        free(pg->where);
        memset(pg, 0, sizeof(*pg));
}

int ia_pg_error(struct ia_pg *pg, PGresult *res, const char *what, struct ia_error *err)
{
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        char msg[400];

        chomp(msg, sizeof(msg),
              res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
                                                : PQerrorMessage(pg->conn));
        ia_error_set(err, IA_ERR_IO, "PostgreSQL at '%s': %s: %s", pg->where, what, msg);
        if (!err)
                return -1;
        if (PQstatus(pg->conn) != CONNECTION_OK || (state && strncmp(state, "57P", 3) == 0) ||
            (state && strncmp(state, "08", 2) == 0))
                err->reason = "lost";
        else if (state && strcmp(state, "53100") == 0)
                err->reason = "disk-full";
        else if (state && strcmp(state, "42501") == 0)
                err->reason = "denied";
        else
                err->reason = "server";
        return -1;
}

int ia_pg_exec(struct ia_pg *pg, const char *sql, struct ia_error *err)
{
        PGresult *res = ia_pg_query(pg, sql, 0, NULL, err);

        if (!res)
                return -1;
        PQclear(res);
        return 0;
}

PGresult *ia_pg_query(struct ia_pg *pg, const char *sql, int nparams, const char *const *params,
                      struct ia_error *err)
{
        PGresult *res;
        ExecStatusType st;

        if (ia_pg_sync(pg, err) < 0) /* a COPY before failed: its error */
                return NULL;
        res = PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0);
        st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
                return res;
        ia_pg_error(pg, res, "query failed", err);
        PQclear(res);
        return NULL;
}

/* ---- migrations ---- */

int ia_pg_schema_latest(void)
{
        int latest = 0;

        for (const struct ia_schema_file *f = ia_pg_schema_files; f->name; f++)
                latest = atoi(f->name);
        return latest;
}

static int server_version(struct ia_pg *pg, int *version, bool *ours, struct ia_error *err)
{
        PGresult *res = ia_pg_query(pg,
                                    "SELECT to_regclass('imgaudit_schema') IS NOT NULL, "
                                    "to_regclass('scans') IS NOT NULL",
                                    0, NULL, err);
        bool has_meta, has_scans;

        if (!res)
                return -1;
        has_meta = PQgetvalue(res, 0, 0)[0] == 't';
        has_scans = PQgetvalue(res, 0, 1)[0] == 't';
        PQclear(res);
        *version = 0;
        *ours = has_meta || !has_scans;
        if (!has_meta)
                return 0;
        res =
            ia_pg_query(pg, "SELECT coalesce(max(version), 0) FROM imgaudit_schema", 0, NULL, err);
        if (!res)
                return -1;
        *version = atoi(PQgetvalue(res, 0, 0));
        PQclear(res);
        return 0;
}

int ia_pg_migrate(struct ia_pg *pg, bool apply, int *version, struct ia_error *err)
{
        int latest = ia_pg_schema_latest(), v;
        bool ours;
        char sql[160];

        if (server_version(pg, &v, &ours, err) < 0)
                return -1;
        if (!ours) {
                ia_error_set(err, IA_ERR_UNSUPPORTED,
                             "PostgreSQL at '%s' has a table 'scans' but no imgaudit_schema: "
                             "not an imgaudit central database; refusing to touch it",
                             pg->where);
                if (err)
                        err->reason = "schema";
                return -1;
        }
        if (v > latest) {
                ia_error_set(err, IA_ERR_UNSUPPORTED,
                             "PostgreSQL at '%s' has central schema version %d, newer than this "
                             "imgaudit's %d; refusing to touch it (upgrade imgaudit)",
                             pg->where, v, latest);
                if (err)
                        err->reason = "schema";
                return -1;
        }
        *version = v;
        if (v == latest || !apply)
                return 0;
        if (ia_pg_exec(pg, "BEGIN", err) < 0)
                return -1;
        snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%d, 0)", IA_PG_LOCK_CLASS);
        /* another host may have migrated while we waited for the lock */
        if (ia_pg_exec(pg, sql, err) < 0 || server_version(pg, &v, &ours, err) < 0)
                goto rollback;
        for (const struct ia_schema_file *f = ia_pg_schema_files; f->name; f++) {
                int n = atoi(f->name);
                PGresult *res;

                if (n <= v)
                        continue;
                res = PQexec(pg->conn, f->sql);
                if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
                        ia_pg_error(pg, res, f->name, err);
                        PQclear(res);
                        goto rollback;
                }
                PQclear(res);
                snprintf(sql, sizeof(sql), "INSERT INTO imgaudit_schema (version) VALUES (%d)", n);
                if (ia_pg_exec(pg, sql, err) < 0)
                        goto rollback;
                v = n;
        }
        if (ia_pg_exec(pg, "COMMIT", err) < 0)
                return -1;
        *version = v;
        return 0;
rollback:
        PQclear(PQexec(pg->conn, "ROLLBACK"));
        return -1;
}
