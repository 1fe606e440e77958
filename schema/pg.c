/*
 * The central PostgreSQL database: see pg.h.
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
#include <time.h>

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
        PGresult *res = PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0);
        ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

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

/* ---- COPY ... FROM STDIN (FORMAT binary) ---- */

/*
 * The binary format: a header, then per row a 16-bit field count and per
 * field a 32-bit length (-1: NULL) and its bytes (bigint: 8 bytes big
 * endian; uuid: 16 bytes; text: UTF-8; bytea: the bytes), then a trailer.
 * The server neither parses digits nor unescapes text: the COPY of the
 * layer runs costs it less than the text format did.
 */
static const char copy_header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

static void put16(char *p, unsigned v)
{
        p[0] = (char)(v >> 8);
        p[1] = (char)v;
}

static void put32(char *p, uint32_t v)
{
        p[0] = (char)(v >> 24);
        p[1] = (char)(v >> 16);
        p[2] = (char)(v >> 8);
        p[3] = (char)v;
}

int ia_pg_copy_begin(struct ia_pg_copy *c, struct ia_pg *pg, const char *sql, struct ia_error *err)
{
        PGresult *res;
        const char *delay = getenv("IMGAUDIT_TEST_PUSH_DELAY_MS");

        memset(c, 0, sizeof(*c));
        c->pg = pg;
        c->first_col = true;
        c->flush_at = 1 << 20;
        if (delay && *delay) {
                c->delay_ms = (unsigned)strtoul(delay, NULL, 10);
                c->flush_at = 4096;
        }
        res = PQexec(pg->conn, sql);
        if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
                ia_pg_error(pg, res, "starting COPY", err);
                PQclear(res);
                return -1;
        }
        PQclear(res);
        c->cap = c->flush_at + 65536;
        c->buf = malloc(c->cap);
        if (!c->buf) {
                PQputCopyEnd(pg->conn, "out of memory");
                PQclear(PQgetResult(pg->conn));
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        memcpy(c->buf, copy_header, sizeof(copy_header));
        c->len = sizeof(copy_header);
        return 0;
}

static bool reserve(struct ia_pg_copy *c, size_t n)
{
        char *b;
        size_t nc;

        if (c->nomem)
                return false;
        n += 8; /* a row's field count, a field's length */
        if (c->len + n <= c->cap)
                return true;
        nc = (c->len + n) * 2;
        b = realloc(c->buf, nc);
        if (!b) {
                c->nomem = true;
                return false;
        }
        c->buf = b;
        c->cap = nc;
        return true;
}

/* Start a field (after reserve): the row's field count first, then the field's length. */
static void field(struct ia_pg_copy *c, int32_t len)
{
        if (c->first_col) {
                c->row_at = c->len;
                c->len += 2;
                c->nfields = 0;
                c->first_col = false;
        }
        c->nfields++;
        put32(c->buf + c->len, (uint32_t)len);
        c->len += 4;
}

void ia_pg_copy_int(struct ia_pg_copy *c, int64_t v)
{
        uint64_t u = (uint64_t)v;

        if (!reserve(c, 8))
                return;
        field(c, 8);
        for (int i = 7; i >= 0; i--)
                c->buf[c->len++] = (char)(u >> (8 * i));
}

void ia_pg_copy_null(struct ia_pg_copy *c)
{
        if (!reserve(c, 0))
                return;
        field(c, -1);
}

/*
 * A one-dimensional array of n elements (int8, or int2 when wide is false):
 * the header (dimensions, has-nulls flag, element type, size and lower
 * bound 1), then each element as a field of its own (length -1: NULL).
 */
static void copy_array(struct ia_pg_copy *c, const int64_t *v, const bool *null, size_t n,
                       bool wide)
{
        size_t esz = wide ? 8 : 2, at;
        bool any_null = false;

        if (n > 65536) {
                c->nomem = true;
                return;
        }
        for (size_t i = 0; null && i < n; i++)
                any_null |= null[i];
        if (!reserve(c, 20 + n * (4 + esz)))
                return;
        field(c, 0);
        at = c->len;
        put32(c->buf + c->len, 1);
        put32(c->buf + c->len + 4, any_null);
        put32(c->buf + c->len + 8, wide ? 20 : 21); /* int8, int2 */
        put32(c->buf + c->len + 12, (uint32_t)n);
        put32(c->buf + c->len + 16, 1);
        c->len += 20;
        for (size_t i = 0; i < n; i++) {
                uint64_t u = (uint64_t)v[i];

                if (null && null[i]) {
                        put32(c->buf + c->len, UINT32_MAX);
                        c->len += 4;
                        continue;
                }
                put32(c->buf + c->len, (uint32_t)esz);
                c->len += 4;
                for (int k = (int)esz - 1; k >= 0; k--)
                        c->buf[c->len++] = (char)(u >> (8 * k));
        }
        put32(c->buf + at - 4, (uint32_t)(c->len - at));
}

void ia_pg_copy_int_array(struct ia_pg_copy *c, const int64_t *v, const bool *null, size_t n)
{
        copy_array(c, v, null, n, true);
}

void ia_pg_copy_small_array(struct ia_pg_copy *c, const int64_t *v, size_t n)
{
        copy_array(c, v, NULL, n, false);
}

static int hexval(char ch)
{
        return ch >= '0' && ch <= '9'   ? ch - '0'
               : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
               : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                        : -1;
}

int ia_pg_copy_uuid(struct ia_pg_copy *c, const char *s)
{
        unsigned char u[16];
        size_t k = 0;

        for (const char *p = s; *p && k < 32; p++) {
                int h = hexval(*p);

                if (*p == '-')
                        continue;
                if (h < 0)
                        return -1;
                if (k % 2 == 0)
                        u[k / 2] = (unsigned char)(h << 4);
                else
                        u[k / 2] |= (unsigned char)h;
                k++;
        }
        if (k != 32)
                return -1;
        if (!reserve(c, 16))
                return 0;
        field(c, 16);
        memcpy(c->buf + c->len, u, 16);
        c->len += 16;
        return 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
        size_t k = s[0] < 0x80                    ? 1
                   : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
                   : s[0] >= 0xe0 && s[0] <= 0xef ? 3
                   : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
                                                  : 0;

        if (k == 0 || k > n || s[0] == 0)
                return 0;
        return ia_utf8_valid((const char *)s, k) ? k : 0;
}

void ia_pg_copy_text(struct ia_pg_copy *c, const char *s, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *)s;
        size_t at;

        if (n > (size_t)INT32_MAX / 4 - 16) {
                c->nomem = true;
                return;
        }
        if (!reserve(c, 4 * n))
                return;
        field(c, 0);
        at = c->len;
        for (size_t i = 0; i < n;) {
                size_t k = utf8_len(p + i, n - i);

                if (k == 0) { /* the byte as the four characters \xNN */
                        c->buf[c->len++] = '\\';
                        c->buf[c->len++] = 'x';
                        c->buf[c->len++] = hex[p[i] >> 4];
                        c->buf[c->len++] = hex[p[i] & 15];
                        i++;
                        continue;
                }
                memcpy(c->buf + c->len, p + i, k);
                c->len += k;
                i += k;
        }
        put32(c->buf + at - 4, (uint32_t)(c->len - at));
}

void ia_pg_copy_bytea(struct ia_pg_copy *c, const void *p, size_t n)
{
        if (n > (size_t)INT32_MAX - 16) {
                c->nomem = true;
                return;
        }
        if (!reserve(c, n))
                return;
        field(c, (int32_t)n);
        memcpy(c->buf + c->len, p, n);
        c->len += n;
}

static int flush(struct ia_pg_copy *c, struct ia_error *err)
{
        if (c->len == 0)
                return 0;
        if (PQputCopyData(c->pg->conn, c->buf, (int)c->len) != 1) {
                c->failed = true;
                return ia_pg_error(c->pg, NULL, "sending COPY data", err);
        }
        c->bytes += c->len;
        c->len = 0;
        if (c->delay_ms) {
                struct timespec ts = {c->delay_ms / 1000, (long)(c->delay_ms % 1000) * 1000000L};
                nanosleep(&ts, NULL);
        }
        return 0;
}

int ia_pg_copy_end_row(struct ia_pg_copy *c, struct ia_error *err)
{
        if (c->nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        if (c->first_col) /* a row without fields: none is ever sent */
                return 0;
        put16(c->buf + c->row_at, c->nfields);
        c->first_col = true;
        c->rows++;
        if (c->len >= c->flush_at)
                return flush(c, err);
        return 0;
}

int ia_pg_copy_end(struct ia_pg_copy *c, bool ok, struct ia_error *err)
{
        PGresult *res;
        int ret = 0;

        if (ok && !c->failed && reserve(c, 2)) {
                put16(c->buf + c->len, 0xffff); /* the trailer */
                c->len += 2;
        } else {
                ok = false;
        }
        if (ok && !c->failed && flush(c, err) < 0)
                ok = false;
        if (PQputCopyEnd(c->pg->conn, ok && !c->failed ? NULL : "imgaudit push stopped") != 1 &&
            ok) {
                ia_pg_error(c->pg, NULL, "ending COPY", err);
                ok = false;
                ret = -1;
        }
        while ((res = PQgetResult(c->pg->conn)) != NULL) {
                if (PQresultStatus(res) != PGRES_COMMAND_OK && ok && ret == 0)
                        ret = ia_pg_error(c->pg, res, "COPY", err);
                PQclear(res);
        }
        free(c->buf);
        c->buf = NULL;
        return ok ? ret : -1;
}
