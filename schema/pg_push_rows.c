/*
 * imgaudit push, the local side: reading the local store (one read
 * transaction, so the push sees one snapshot and a running scan is never
 * blocked) and copying a table's rows with COPY in the binary format, row
 * by row as SQLite steps (see pg_push.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_push_int.h"
#include "rbuf.h"
#include "schema.h"
#include "banned.h"

/* ---- id sets ---- */

int ia_idset_add(struct ia_idset *s, int64_t id)
{
        if (s->n == s->cap) {
                size_t nc = s->cap ? s->cap * 2 : 256;
                int64_t *a = realloc(s->v, nc * sizeof(*a));
                if (!a)
                        return -1;
                s->v = a;
                s->cap = nc;
        }
        if (s->n && s->v[s->n - 1] > id)
                s->sorted = false;
        s->v[s->n++] = id;
        return 0;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return x < y ? -1 : x > y;
}

bool ia_idset_has(struct ia_idset *s, int64_t id)
{
        if (s->n == 0)
                return false;
        if (!s->sorted) {
                qsort(s->v, s->n, sizeof(*s->v), cmp_i64);
                s->sorted = true;
        }
        return bsearch(&id, s->v, s->n, sizeof(*s->v), cmp_i64) != NULL;
}

int ia_push_local_error(struct ia_push *p, const char *what, struct ia_error *err)
{
        ia_error_set(err, IA_ERR_IO, "store '%s': %s: %s", p->db_path, what, sqlite3_errmsg(p->db));
        if (err)
                err->reason = "local";
        return -1;
}

static int local_i64(struct ia_push *p, const char *sql, int64_t *v, struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc;

        if (sqlite3_prepare_v2(p->db, sql, -1, &st, NULL) != SQLITE_OK)
                return ia_push_local_error(p, "reading", err);
        rc = sqlite3_step(st);
        *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return ia_push_local_error(p, "reading", err);
        return 0;
}

int ia_push_open_local(struct ia_push *p, struct ia_error *err)
{
        int64_t appid = 0, version = 0, nobj = 0;
        int latest = 0;
        sqlite3_stmt *st;

        if (sqlite3_open_v2(p->db_path, &p->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK) {
                ia_error_set(err, IA_ERR_IO, "cannot open store '%s': %s", p->db_path,
                             p->db ? sqlite3_errmsg(p->db) : "out of memory");
                if (err)
                        err->reason = "local";
                return -1;
        }
        sqlite3_busy_timeout(p->db, 10000);
        if (local_i64(p, "SELECT count(*) FROM sqlite_master", &nobj, err) < 0 ||
            local_i64(p, "PRAGMA application_id", &appid, err) < 0 ||
            local_i64(p, "PRAGMA user_version", &version, err) < 0)
                return -1;
        for (const struct ia_schema_file *f = ia_schema_files; f->name; f++)
                latest = atoi(f->name);
        if (nobj == 0 || appid != IA_APPLICATION_ID) {
                ia_error_set(err, IA_ERR_CORRUPT, "'%s' is not an imgaudit store", p->db_path);
                goto local;
        }
        if (version > latest) {
                ia_error_set(err, IA_ERR_UNSUPPORTED,
                             "store '%s' has schema version %lld, newer than this imgaudit's %d",
                             p->db_path, (long long)version, latest);
                goto local;
        }
        if (version < 4) {
                ia_error_set(err, IA_ERR_UNSUPPORTED,
                             "store '%s' has schema version %lld, without a store identity; "
                             "run 'imgaudit scan' on it once with this imgaudit (it migrates)",
                             p->db_path, (long long)version);
                goto local;
        }
        /* one snapshot for the whole push */
        if (sqlite3_exec(p->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
                return ia_push_local_error(p, "beginning a read transaction", err);
        if (sqlite3_prepare_v2(p->db, "SELECT store_id FROM store_identity WHERE one = 1", -1, &st,
                               NULL) != SQLITE_OK)
                return ia_push_local_error(p, "reading its identity", err);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 36)
                memcpy(p->store_id, sqlite3_column_text(st, 0), 36);
        sqlite3_finalize(st);
        if (!p->store_id[0]) {
                ia_error_set(err, IA_ERR_CORRUPT, "store '%s' has no identity row", p->db_path);
                goto local;
        }
        for (int i = 0; i < 36; i++) {
                char ch = p->store_id[i];
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;

                if (dash ? ch != '-'
                         : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                             (ch >= 'A' && ch <= 'F'))) {
                        ia_error_set(err, IA_ERR_CORRUPT, "store '%s': its identity is not a UUID",
                                     p->db_path);
                        goto local;
                }
        }
        return 0;
local:
        if (err)
                err->reason = "local";
        return -1;
}

/* "SELECT cols FROM table WHERE where" for the local side. */
char *ia_push_select_sql(enum ia_pg_tbl t, const char *where)
{
        const struct ia_pg_table *tb = &ia_pg_tables[t];
        struct ia_rbuf b;

        ia_rbuf_init(&b);
        ia_rbuf_adds(&b, "SELECT ");
        for (size_t i = 0; i < tb->ncols; i++)
                ia_rbuf_addf(&b, "%s%s", i ? ", " : "", tb->cols[i].name);
        ia_rbuf_addf(&b, " FROM %s WHERE %s", tb->name, where);
        if (b.nomem) {
                ia_rbuf_release(&b);
                return NULL;
        }
        return b.buf;
}

/* "COPY table (store_id, [pre,] cols... [, post]) FROM STDIN (FORMAT binary)" for the central side.
 */
char *ia_push_copy_sql(enum ia_pg_tbl t, const char *pre, const char *post)
{
        const struct ia_pg_table *tb = &ia_pg_tables[t];
        struct ia_rbuf b;

        ia_rbuf_init(&b);
        ia_rbuf_addf(&b, "COPY %s (store_id", tb->name);
        if (pre)
                ia_rbuf_addf(&b, ", %s", pre);
        for (size_t i = 0; i < tb->ncols; i++) {
                const char *n = tb->cols[i].pg ? tb->cols[i].pg : tb->cols[i].name;

                ia_rbuf_addf(&b, ", %s", n);
                if (tb->cols[i].type == 'p')
                        ia_rbuf_addf(&b, ", %s_raw", n);
        }
        if (post)
                ia_rbuf_addf(&b, ", %s", post);
        ia_rbuf_adds(&b, ") FROM STDIN (FORMAT binary)");
        if (b.nomem) {
                ia_rbuf_release(&b);
                return NULL;
        }
        return b.buf;
}

/* One local row as a COPY row's columns (after store_id and pre). */
void ia_push_emit_cols(struct ia_pg_copy *c, enum ia_pg_tbl t, sqlite3_stmt *st)
{
        const struct ia_pg_table *tb = &ia_pg_tables[t];

        for (size_t i = 0; i < tb->ncols; i++) {
                int k = (int)i, type = sqlite3_column_type(st, k);

                if (type == SQLITE_NULL) {
                        ia_pg_copy_null(c);
                        if (tb->cols[i].type == 'p')
                                ia_pg_copy_null(c);
                        continue;
                }
                switch (tb->cols[i].type) {
                case 'i':
                        ia_pg_copy_int(c, sqlite3_column_int64(st, k));
                        break;
                case 't':
                        ia_pg_copy_text(c, (const char *)sqlite3_column_text(st, k),
                                        (size_t)sqlite3_column_bytes(st, k));
                        break;
                default: { /* a path: text, and its bytes when it is a BLOB */
                        const void *v = sqlite3_column_blob(st, k);
                        size_t n = (size_t)sqlite3_column_bytes(st, k);

                        ia_pg_copy_text(c, v, n);
                        if (type == SQLITE_BLOB)
                                ia_pg_copy_bytea(c, v, n);
                        else
                                ia_pg_copy_null(c);
                        break;
                }
                }
        }
}

int ia_push_copy_finish(struct ia_push *p, struct ia_pg_copy *c, bool ok, struct ia_error *err)
{
        int ret = ia_pg_copy_end(c, ok, err);

        p->rows += c->rows;
        p->bytes += c->bytes;
        return ret;
}

/* The rows of r->where for one bind value into the COPY; k: its index (r->post_hex[k]). */
static int copy_bound(struct ia_push *p, const struct ia_push_rows *r, sqlite3_stmt *st,
                      struct ia_pg_copy *c, size_t k, struct ia_error *err)
{
        const char *name = ia_pg_tables[r->t].name;
        unsigned found = 0;
        int rc;

        sqlite3_reset(st);
        if (sqlite3_bind_parameter_count(st) >= 1)
                sqlite3_bind_int64(st, 1, r->bind[k]);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                found++;
                if (r->skip && ia_idset_has(r->skip, sqlite3_column_int64(st, 0)))
                        continue;
                ia_pg_copy_uuid(c, p->store_id);
                if (r->pre)
                        ia_pg_copy_text(c, r->pre_val, strlen(r->pre_val));
                ia_push_emit_cols(c, r->t, st);
                if (r->post) {
                        char hex[17];

                        snprintf(hex, sizeof(hex), "%016" PRIx64, r->post_hex[k]);
                        ia_pg_copy_text(c, hex, 16);
                }
                if (ia_pg_copy_end_row(c, err) < 0)
                        return -1;
        }
        if (rc != SQLITE_DONE || (r->post && found != 1))
                return ia_push_local_error(p, name, err);
        return 0;
}

int ia_push_copy_rows(struct ia_push *p, const struct ia_push_rows *r, struct ia_error *err)
{
        char *sel = ia_push_select_sql(r->t, r->where),
             *cp = ia_push_copy_sql(r->t, r->pre, r->post);
        struct ia_pg_copy c;
        sqlite3_stmt *st = NULL;
        int ret = -1;

        if (!sel || !cp) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto out;
        }
        if (sqlite3_prepare_v2(p->db, sel, -1, &st, NULL) != SQLITE_OK) {
                ia_push_local_error(p, ia_pg_tables[r->t].name, err);
                goto out;
        }
        if (ia_pg_copy_begin(&c, &p->pg, cp, err) < 0)
                goto out;
        for (size_t k = 0; k < r->nbind; k++)
                if (copy_bound(p, r, st, &c, k, err) < 0) {
                        ia_push_copy_finish(p, &c, false, NULL);
                        goto out;
                }
        ret = ia_push_copy_finish(p, &c, true, err);
out:
        sqlite3_finalize(st);
        free(sel);
        free(cp);
        return ret;
}

int ia_push_copy_table(struct ia_push *p, enum ia_pg_tbl t, const char *where, int64_t bind,
                       const char *pre, const char *pre_val, struct ia_idset *skip,
                       struct ia_error *err)
{
        struct ia_push_rows r = {.t = t,
                                 .where = where,
                                 .bind = &bind,
                                 .nbind = 1,
                                 .pre = pre,
                                 .pre_val = pre_val,
                                 .skip = skip};

        return ia_push_copy_rows(p, &r, err);
}
