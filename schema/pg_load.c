/*
 * imgaudit report --db CONNINFO, the store's side: the stores the central
 * database holds, and one store's reported scan loaded from PostgreSQL
 * into an in-memory SQLite store with the local schema and ids (see
 * report/pg_report.c for what is loaded, and pg_load.h).
 *
 * Each table is read with COPY (SELECT ...) TO STDOUT in the binary format,
 * so that the server formats no text, libpq keeps no result set, and each
 * row goes to SQLite as it arrives (server and client work at once); the
 * in-memory store's secondary indexes are made after the load.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "pg_load.h"
#include "pg_tables.h"
#include "rbuf.h"
#include "schema.h"
#include "banned.h"

/*
 * What is loaded of each table, with $1 the store id (a uuid literal), $2
 * the reported scan, $3 how many complete scans of history (ALL with
 * --since), $4 the ids of the reported images' maps and $5 the layers those
 * maps name (bigint[] literals the client makes from what it loaded: see
 * load_tables; each subquery would otherwise run again in every query).
 */
#define HIST                                                                                       \
        "(SELECT id FROM scans WHERE store_id = $1 AND status = 'complete' AND id <= $2 "          \
        "ORDER BY id DESC LIMIT $3)"

static const char *const load_where[IA_PGT_COUNT] = {
    [IA_PGT_SCANS] = "true",
    [IA_PGT_SCAN_ROOTS] = "true",
    [IA_PGT_FILES] = "true",
    [IA_PGT_SCAN_FILES] = "scan_id = $2",
    [IA_PGT_ENTRIES] = "scan_id = $2",
    [IA_PGT_IMAGES] = "(scan_id = $2 OR scan_id IN " HIST ")",
    [IA_PGT_LINKS] = "(scan_id = $2 OR (scan_id IN " HIST " AND depth = 0 AND status = 'ok' "
                     "AND kind IN ('extent', 'data-file')))",
    [IA_PGT_MAP] = "image_id = ANY ($4)",
    [IA_PGT_FINDINGS] = "scan_id = $2",
    [IA_PGT_OVF_DISKS] = "scan_id = $2",
    [IA_PGT_LAYERS] = "id = ANY ($5)",
    /* from layer_runs_packed, the data runs only: see load_runs */
    [IA_PGT_LAYER_RUNS] = "layer_id = ANY ($5)",
    [IA_PGT_PIECES] = "image_id = ANY ($4)",
    [IA_PGT_CHAIN_LAYERS] = "image_id = ANY ($4)",
};

/* The order of the load: the maps' ids come from images, the layers' from pieces and chain_layers.
 */
static const enum ia_pg_tbl load_order[IA_PGT_COUNT] = {
    IA_PGT_SCANS,  IA_PGT_SCAN_ROOTS,   IA_PGT_FILES,    IA_PGT_SCAN_FILES, IA_PGT_ENTRIES,
    IA_PGT_IMAGES, IA_PGT_LINKS,        IA_PGT_FINDINGS, IA_PGT_OVF_DISKS,  IA_PGT_MAP,
    IA_PGT_PIECES, IA_PGT_CHAIN_LAYERS, IA_PGT_LAYERS,   IA_PGT_LAYER_RUNS,
};

static int mem_error(sqlite3 *db, const char *what, struct ia_error *err)
{
        return ia_error_set(err, IA_ERR_IO, "in-memory store: %s: %s", what,
                            db ? sqlite3_errmsg(db) : "out of memory");
}

/* tmpl with $1..$5 replaced by vals[0..4] (already SQL: literals, a number, ALL). */
static void subst(struct ia_rbuf *b, const char *tmpl, const char *const *vals)
{
        for (const char *p = tmpl; *p; p++) {
                if (p[0] == '$' && p[1] >= '1' && p[1] <= '5') {
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
 * Run sql, a COPY (SELECT ...) TO STDOUT (FORMAT binary), and give each row
 * (its field count first) to row(ctx, ...), which says how many bytes it
 * took.  Each row is handled as it arrives (server and client work at the
 * same time) and libpq keeps no result set.
 */
static int copy_out(struct ia_pg *pg, const char *sql, const char *table,
                    int (*row)(void *ctx, const unsigned char *p, size_t n, size_t *used,
                               struct ia_error *err),
                    void *ctx, struct ia_error *err)
{
        static const unsigned char header[11] = "PGCOPY\n\377\r\n";
        PGresult *res = PQexec(pg->conn, sql);
        char *buf = NULL;
        int ret = -1, n = 0;
        bool head = false, trailer = false;

        if (!res || PQresultStatus(res) != PGRES_COPY_OUT) {
                ia_pg_error(pg, res, "query failed", err);
                PQclear(res);
                return -1;
        }
        PQclear(res);
        while ((n = PQgetCopyData(pg->conn, &buf, 0)) > 0) {
                const unsigned char *p = (const unsigned char *)buf;
                size_t len = (size_t)n, used = 0;

                if (!head) { /* signature, flags, header extension */
                        if (len < 19 || memcmp(p, header, sizeof(header)) != 0 ||
                            len - 19 < get32(p + 15)) {
                                bad_copy(pg, table, err);
                                goto drain;
                        }
                        used = 19 + get32(p + 15);
                        p += used;
                        len -= used;
                        head = true;
                }
                while (len > 0) {
                        if (trailer) {
                                bad_copy(pg, table, err);
                                goto drain;
                        }
                        if (len >= 2 && p[0] == 0xff && p[1] == 0xff) {
                                trailer = true;
                                used = 2;
                        } else if (row(ctx, p, len, &used, err) < 0) {
                                goto drain;
                        }
                        p += used;
                        len -= used;
                }
                PQfreemem(buf);
                buf = NULL;
        }
        if (n == -2 || !trailer) {
                ia_pg_error(pg, NULL, "COPY", err);
                goto drain;
        }
        ret = 0;
drain:
        PQfreemem(buf);
        if (ret < 0 && n > 0) /* stop reading: the connection is closed by the caller */
                return -1;
        while ((res = PQgetResult(pg->conn)) != NULL) {
                if (PQresultStatus(res) != PGRES_COMMAND_OK && ret == 0)
                        ret = ia_pg_error(pg, res, "COPY", err);
                PQclear(res);
        }
        return ret;
}

struct table_load {
        struct ia_pg *pg;
        sqlite3 *db;
        const struct ia_pg_table *tb;
        sqlite3_stmt *st;
};

static int table_row(void *ctx, const unsigned char *p, size_t n, size_t *used,
                     struct ia_error *err)
{
        struct table_load *l = ctx;

        return load_row(l->pg, l->db, l->tb, l->st, p, n, used, err);
}

/*
 * The rows of table t for the store into the in-memory store: the columns
 * of pg_tables.c, the rows load_where names.
 */
static int load_table(struct ia_pg *pg, sqlite3 *db, enum ia_pg_tbl t, const char *const *vals,
                      struct ia_error *err)
{
        const struct ia_pg_table *tb = &ia_pg_tables[t];
        struct table_load l = {pg, db, tb, NULL};
        struct ia_rbuf q, ins;
        int ret = -1;

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
        if (sqlite3_prepare_v2(db, ins.buf, -1, &l.st, NULL) != SQLITE_OK) {
                mem_error(db, tb->name, err);
                goto out;
        }
        ret = copy_out(pg, q.buf, tb->name, table_row, &l, err);
out:
        sqlite3_finalize(l.st);
        ia_rbuf_release(&q);
        ia_rbuf_release(&ins);
        return ret;
}

/* ---- layer runs, from their packed blocks (schema/pg/002_packed_runs.sql) ---- */

/* layer_runs_packed.flags bits */
enum { RUN_PRESENT = 1, RUN_ZERO = 2, RUN_DATA = 4, RUN_COMPRESSED = 8 };

/* More runs than any push puts in a block (48): a block beyond is refused. */
#define MAX_BLOCK_RUNS 65536

/* One decoded array of a block. */
struct run_array {
        int64_t *v;
        bool *null;
        size_t n, cap;
};

/*
 * The arrays of a block the report needs, in the order of the COPY: starts,
 * lengths, flags (offsets and file ids are not read: the in-memory runs
 * have none).
 */
enum { A_START, A_LENGTH, A_FLAGS, A_COUNT };

struct runs_load {
        struct ia_pg *pg;
        sqlite3 *db;
        sqlite3_stmt *st;
        struct run_array a[A_COUNT];
        bool have; /* run holds a data run not inserted yet */
        int64_t layer, run[A_COUNT];
};

/* The next field of a COPY row at *at: its length (-1: NULL) and bytes. */
static int next_field(const unsigned char *p, size_t n, size_t *at, const unsigned char **v,
                      int32_t *len)
{
        if (n - *at < 4)
                return -1;
        *len = (int32_t)get32(p + *at);
        *at += 4;
        *v = p + *at;
        if (*len > 0) {
                if ((size_t)*len > n - *at)
                        return -1;
                *at += (size_t)*len;
        }
        return 0;
}

/* A big-endian signed integer of 2 or 8 bytes. */
static int64_t get_int(const unsigned char *p, size_t n)
{
        uint64_t u = 0;

        for (size_t k = 0; k < n; k++)
                u = u << 8 | p[k];
        return n == 2 ? (int16_t)u : (int64_t)u;
}

/*
 * A one-dimensional array in the binary format (dimensions, has-nulls
 * flag, element type, size, lower bound, then each element's length and
 * bytes) of int8 (esz 8, type 20) or int2 (esz 2, type 21) into a; -1: not
 * such an array, -2: out of memory.
 */
static int decode_array(const unsigned char *v, int32_t len, size_t esz, uint32_t type,
                        struct run_array *a)
{
        size_t n, at = 20;

        a->n = 0;
        if (len == 12 && get32(v) == 0) /* an empty array */
                return 0;
        if (len < 20 || get32(v) != 1 || get32(v + 4) > 1 || get32(v + 8) != type)
                return -1;
        n = get32(v + 12);
        if (n > MAX_BLOCK_RUNS)
                return -1;
        if (n > a->cap) {
                int64_t *nv = realloc(a->v, n * sizeof(*nv));
                bool *nn;

                if (!nv)
                        return -2;
                a->v = nv;
                nn = realloc(a->null, n * sizeof(*nn));
                if (!nn)
                        return -2;
                a->null = nn;
                a->cap = n;
        }
        for (size_t k = 0; k < n; k++) {
                int32_t el;

                if ((size_t)len - at < 4)
                        return -1;
                el = (int32_t)get32(v + at);
                at += 4;
                a->null[k] = el < 0;
                a->v[k] = 0;
                if (el < 0)
                        continue;
                if ((size_t)el != esz || (size_t)len - at < esz)
                        return -1;
                a->v[k] = get_int(v + at, esz);
                at += esz;
        }
        a->n = n;
        return at == (size_t)len ? 0 : -1;
}

/* The pending data run into the in-memory layer_runs. */
static int run_flush(struct runs_load *l, struct ia_error *err)
{
        sqlite3_stmt *st = l->st;
        int64_t f = l->run[A_FLAGS];

        if (!l->have)
                return 0;
        l->have = false;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, l->layer);
        sqlite3_bind_int64(st, 2, l->run[A_START]);
        sqlite3_bind_int64(st, 3, l->run[A_LENGTH]);
        sqlite3_bind_int(st, 4, (f & RUN_PRESENT) != 0);
        sqlite3_bind_int(st, 5, (f & RUN_ZERO) != 0);
        sqlite3_bind_int(st, 6, 1);
        sqlite3_bind_int(st, 7, (f & RUN_COMPRESSED) != 0);
        return sqlite3_step(st) == SQLITE_DONE ? 0 : mem_error(l->db, "layer_runs", err);
}

/*
 * Run k of the block of layer into the pending run: a data run that
 * continues the pending one (the same layer, contiguous in the guest)
 * lengthens it, any other data run replaces it (inserted first).
 */
static int run_add(struct runs_load *l, int64_t layer, size_t k, struct ia_error *err)
{
        if (!(l->a[A_FLAGS].v[k] & RUN_DATA))
                return 0;
        if (l->have && l->layer == layer &&
            (uint64_t)l->run[A_START] + (uint64_t)l->run[A_LENGTH] ==
                (uint64_t)l->a[A_START].v[k]) {
                l->run[A_LENGTH] =
                    (int64_t)((uint64_t)l->run[A_LENGTH] + (uint64_t)l->a[A_LENGTH].v[k]);
                return 0;
        }
        if (run_flush(l, err) < 0)
                return -1;
        l->have = true;
        l->layer = layer;
        for (int i = 0; i < A_COUNT; i++)
                l->run[i] = l->a[i].v[k];
        return 0;
}

/* One block: layer_id and the arrays, all of one length, without NULL elements. */
static int runs_row(void *ctx, const unsigned char *p, size_t n, size_t *used, struct ia_error *err)
{
        struct runs_load *l = ctx;
        const unsigned char *v;
        size_t at = 2;
        int32_t len;
        int64_t layer;

        if (n < 2 || ((size_t)p[0] << 8 | p[1]) != 1 + A_COUNT ||
            next_field(p, n, &at, &v, &len) < 0 || len != 8)
                return bad_copy(l->pg, "layer_runs_packed", err);
        layer = get_int(v, 8);
        for (int i = 0; i < A_COUNT; i++) {
                bool small = i == A_FLAGS;
                int rc;

                if (next_field(p, n, &at, &v, &len) < 0 || len < 0)
                        return bad_copy(l->pg, "layer_runs_packed", err);
                rc = decode_array(v, len, small ? 2 : 8, small ? 21 : 20, &l->a[i]);
                if (rc == -2)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                if (rc < 0 || l->a[i].n != l->a[A_START].n)
                        return bad_copy(l->pg, "layer_runs_packed", err);
                for (size_t k = 0; k < l->a[i].n; k++)
                        if (l->a[i].null[k])
                                return bad_copy(l->pg, "layer_runs_packed", err);
        }
        if (at != n)
                return bad_copy(l->pg, "layer_runs_packed", err);
        for (size_t k = 0; k < l->a[A_START].n; k++)
                if (run_add(l, layer, k, err) < 0)
                        return -1;
        *used = at;
        return 0;
}

/*
 * The runs the report reads of the layers the store's maps name: only the
 * data runs (rpt_share.c reads them as ranges, clipped to each piece), and
 * those contiguous in the guest merged into one (a fragmented base's
 * clusters, scattered in the file, are runs of their own: the ranges, all
 * the report reads, are the same), without offsets or file ids.  So the
 * in-memory layer_runs is not the layer's runs, and nothing but the report
 * may read it (local v_map of the in-memory store is not complete).
 */
static int load_runs(struct ia_pg *pg, sqlite3 *db, const char *const *vals, struct ia_error *err)
{
        struct runs_load l = {.pg = pg, .db = db};
        struct ia_rbuf q;
        int ret = -1;

        ia_rbuf_init(&q);
        ia_rbuf_addf(&q,
                     "COPY (SELECT layer_id, starts, lengths, flags "
                     "FROM layer_runs_packed WHERE store_id = %s AND ",
                     vals[0]);
        subst(&q, load_where[IA_PGT_LAYER_RUNS], vals);
        ia_rbuf_adds(&q, " ORDER BY layer_id, start) TO STDOUT (FORMAT binary)");
        if (q.nomem) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto out;
        }
        if (sqlite3_prepare_v2(db,
                               "INSERT INTO layer_runs (layer_id, start, length, present, zero, "
                               "data, compressed) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               -1, &l.st, NULL) != SQLITE_OK) {
                mem_error(db, "layer_runs", err);
                goto out;
        }
        if (copy_out(pg, q.buf, "layer_runs_packed", runs_row, &l, err) == 0)
                ret = run_flush(&l, err);
out:
        sqlite3_finalize(l.st);
        for (int i = 0; i < A_COUNT; i++) {
                free(l.a[i].v);
                free(l.a[i].null);
        }
        ia_rbuf_release(&q);
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

/* The latest complete scan of the store (0: none). */
static int latest_scan(struct ia_pg *pg, const char *store_id, int64_t *scan_id,
                       struct ia_error *err)
{
        const char *p1[1] = {store_id};
        PGresult *res = ia_pg_query(pg,
                                    "SELECT coalesce(max(id), 0) FROM scans WHERE "
                                    "store_id = $1 AND status = 'complete'",
                                    1, p1, err);

        if (!res)
                return -1;
        *scan_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        return 0;
}

/*
 * Open the in-memory store with the local schema, in a transaction, its
 * secondary indexes dropped and their CREATE statements kept in idx: they
 * are made after the load, each in one sorted pass, instead of being kept
 * up to date row by row (the tables' own keys stay: WITHOUT ROWID tables
 * are their keys).
 */
static int open_memdb(const char *name, sqlite3 **db, struct ia_rbuf *idx, struct ia_error *err)
{
        char pragma[128];
        sqlite3_stmt *st;
        int version = 0;

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
        if (sqlite3_prepare_v2(*db,
                               "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND "
                               "sql IS NOT NULL",
                               -1, &st, NULL) != SQLITE_OK)
                return mem_error(*db, "reading its indexes", err);
        while (sqlite3_step(st) == SQLITE_ROW) {
                ia_rbuf_adds(idx, (const char *)sqlite3_column_text(st, 1));
                ia_rbuf_adds(idx, ";\n");
        }
        sqlite3_finalize(st);
        if (idx->nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        return drop_indexes(*db, err);
}

/* The ids sql selects from the in-memory store, as a bigint[] literal, into b. */
static int id_list(sqlite3 *db, const char *sql, int64_t bind, struct ia_rbuf *b,
                   struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc, n = 0;

        ia_rbuf_adds(b, "'{");
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                return mem_error(db, "reading ids", err);
        sqlite3_bind_int64(st, 1, bind);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                ia_rbuf_addf(b, "%s%lld", n++ ? "," : "", (long long)sqlite3_column_int64(st, 0));
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return mem_error(db, "reading ids", err);
        ia_rbuf_adds(b, "}'::bigint[]");
        return b->nomem ? ia_error_set(err, IA_ERR_NOMEM, "out of memory") : 0;
}

/*
 * Every table of the store, in one snapshot of the central database, in
 * load_order.  Every query reads one store's rows through an index led by
 * store_id: a sequential scan would read every host's rows once per host
 * (the planner picks one as soon as a store is a few percent of a table),
 * and JIT costs more than these queries.
 */
static int load_tables(struct ia_pg *pg, sqlite3 *db, const char **params, int64_t scan_id,
                       struct ia_error *err)
{
        struct ia_rbuf maps, layers;
        int ret = -1;

        ia_rbuf_init(&maps);
        ia_rbuf_init(&layers);
        if (ia_pg_exec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) < 0 ||
            ia_pg_exec(pg, "SET LOCAL enable_seqscan = off", err) < 0 ||
            ia_pg_exec(pg, "SET LOCAL jit = off", err) < 0)
                goto out;
        for (int k = 0; k < IA_PGT_COUNT; k++) {
                enum ia_pg_tbl t = load_order[k];

                if (t == IA_PGT_MAP &&
                    id_list(db,
                            "SELECT DISTINCT coalesce(map_image_id, id) FROM images "
                            "WHERE scan_id = ?1 ORDER BY 1",
                            scan_id, &maps, err) < 0)
                        goto rollback;
                if (t == IA_PGT_LAYERS &&
                    id_list(db,
                            "SELECT layer_id FROM pieces WHERE layer_id IS NOT NULL UNION "
                            "SELECT layer_id FROM chain_layers WHERE layer_id IS NOT NULL "
                            "ORDER BY 1",
                            0, &layers, err) < 0)
                        goto rollback;
                params[3] = maps.buf;
                params[4] = layers.buf;
                if ((t == IA_PGT_LAYER_RUNS ? load_runs(pg, db, params, err)
                                            : load_table(pg, db, t, params, err)) < 0)
                        goto rollback;
        }
        ret = ia_pg_exec(pg, "COMMIT", err);
        goto out;
rollback:
        PQclear(PQexec(pg->conn, "ROLLBACK"));
out:
        ia_rbuf_release(&maps);
        ia_rbuf_release(&layers);
        return ret;
}

int ia_pg_load_store(struct ia_pg *pg, const char *name, const char *store_id, int64_t scan_id,
                     bool all_history, sqlite3 **db, struct ia_error *err)
{
        char sid[24], lit[48];
        const char *params[5] = {lit, sid, all_history ? "ALL" : "60", NULL, NULL};
        struct ia_rbuf idx;
        int ret = -1;

        *db = NULL;
        if (scan_id == 0 && latest_scan(pg, store_id, &scan_id, err) < 0)
                return -1;
        snprintf(sid, sizeof(sid), "%" PRId64, scan_id);
        /* COPY takes no parameters: the store id (a uuid the server gave) as a literal */
        for (size_t i = 0; store_id[i]; i++)
                if (i >= 36 || !(store_id[i] == '-' || (store_id[i] >= '0' && store_id[i] <= '9') ||
                                 (store_id[i] >= 'a' && store_id[i] <= 'f')))
                        return ia_error_set(err, IA_ERR_CORRUPT, "store id '%s' is not a uuid",
                                            store_id);
        snprintf(lit, sizeof(lit), "'%s'::uuid", store_id);
        ia_rbuf_init(&idx);
        if (open_memdb(name, db, &idx, err) < 0 || load_tables(pg, *db, params, scan_id, err) < 0)
                goto out;
        if ((idx.len && sqlite3_exec(*db, idx.buf, NULL, NULL, NULL) != SQLITE_OK) ||
            sqlite3_exec(*db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
                mem_error(*db, "committing", err);
                goto out;
        }
        ret = 0;
out:
        ia_rbuf_release(&idx);
        return ret;
}

void ia_pg_load_close(struct sqlite3 *db)
{
        sqlite3_close(db);
}

void ia_pg_load_init(void)
{
        /* the in-memory stores are opened by URI (file:/NAME?vfs=memdb) */
        sqlite3_shutdown();
        sqlite3_config(SQLITE_CONFIG_URI, 1);
        sqlite3_initialize();
}

void ia_pg_free_stores(struct ia_fleet_store *stores, int n)
{
        for (int i = 0; stores && i < n; i++) {
                free(stores[i].host);
                free(stores[i].store_id);
        }
        free(stores);
}

int ia_pg_list_stores(struct ia_pg *pg, const char *host, struct ia_fleet_store **stores, int *n,
                      struct ia_error *err)
{
        const char *p1[1] = {host};
        PGresult *res = ia_pg_query(pg,
                                    "SELECT t.host, t.store_id FROM stores t WHERE ($1::text IS "
                                    "NULL OR t.host = $1) AND EXISTS (SELECT 1 FROM scans s WHERE "
                                    "s.store_id = t.store_id AND s.status = 'complete') "
                                    "ORDER BY t.host, t.store_id",
                                    1, p1, err);
        int k;

        *stores = NULL;
        *n = 0;
        if (!res)
                return -1;
        k = PQntuples(res);
        if (k == 0) {
                PQclear(res);
                return 0;
        }
        *stores = calloc((size_t)k, sizeof(**stores));
        for (int i = 0; *stores && i < k; i++) {
                (*stores)[i].host = strdup(PQgetvalue(res, i, 0));
                (*stores)[i].store_id = strdup(PQgetvalue(res, i, 1));
                *n = i + 1;
                if (!(*stores)[i].host || !(*stores)[i].store_id) {
                        PQclear(res);
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                }
        }
        PQclear(res);
        return *stores ? 0 : ia_error_set(err, IA_ERR_NOMEM, "out of memory");
}
