/*
 * The report's queries (see store_report.h).  Only plain SELECTs over the
 * tables of the embedded schema, so the report needs no migration and works
 * on a database it may not write; a query that reads a table of a later
 * schema (pieces, chain_layers, vms) is only run on a store that has it.
 * Per-image space figures are one GROUP BY over the map (schema 2) or the
 * figures each image row carries (schema 3 on); the backing graph comes from
 * the depth-0 'backing' links.
 */
#define _GNU_SOURCE
#include "store_report.h"

#include <stdlib.h>
#include <string.h>

#include "store_read.h"
#include "banned.h"

enum { ST_ARCHIVE, ST_HAS_PIECES, ST_MAP_DATA, ST_PIECES, ST_LAYER_DATA, ST_READS, ST_NCACHED };

struct ia_rdb {
        sqlite3 *db;
        bool borrowed; /* the caller's connection (ia_rdb_attach): never closed here */
        char *name;    /* what messages call the database */
        int64_t schema;
        sqlite3_stmt *cached[ST_NCACHED]; /* the statements run once per image or range */
};

static int db_error(struct ia_rdb *d, struct ia_error *err, const char *what)
{
        int prim = sqlite3_errcode(d->db) & 0xff;

        return ia_error_set(
            err, prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB ? IA_ERR_CORRUPT : IA_ERR_IO,
            "database '%s': %s: %s", d->name, what, sqlite3_errmsg(d->db));
}

static int nomem(struct ia_error *err)
{
        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
}

/* ---- the one query loop ---- */

/*
 * A query being read: ia_q_start (or ia_q_cached), binds, then
 *         while (q_row(&q, cb)) { fill the row; cb = fn(ctx, &row, err); }
 *         return q_end(&q, cb, "what it reads", err);
 */
struct q {
        struct ia_rdb *d;
        sqlite3_stmt *st;
        bool cached; /* reset, not finalized */
        int rc;
};

static int q_start(struct q *q, struct ia_rdb *d, const char *sql, struct ia_error *err)
{
        *q = (struct q){.d = d};
        if (sqlite3_prepare_v2(d->db, sql, -1, &q->st, NULL) != SQLITE_OK)
                return db_error(d, err, "preparing a query");
        return 0;
}

static int q_cached(struct q *q, struct ia_rdb *d, int which, const char *sql, struct ia_error *err)
{
        *q = (struct q){.d = d, .cached = true};
        if (!d->cached[which] &&
            sqlite3_prepare_v2(d->db, sql, -1, &d->cached[which], NULL) != SQLITE_OK)
                return db_error(d, err, "preparing a query");
        q->st = d->cached[which];
        sqlite3_reset(q->st);
        sqlite3_clear_bindings(q->st);
        return 0;
}

/* Step to the next row, unless the last callback (cb) stopped the query. */
static bool q_row(struct q *q, int cb)
{
        if (cb < 0)
                return false;
        q->rc = sqlite3_step(q->st);
        return q->rc == SQLITE_ROW;
}

/* Release the statement; 0, or -1 when the callback stopped it or SQLite failed (err: what). */
static int q_end(struct q *q, int cb, const char *what, struct ia_error *err)
{
        int ret = 0;

        if (cb < 0)
                ret = -1;
        else if (q->rc != SQLITE_DONE && q->rc != SQLITE_ROW)
                ret = db_error(q->d, err, what);
        if (q->cached)
                sqlite3_reset(q->st);
        else
                sqlite3_finalize(q->st);
        q->st = NULL;
        return ret;
}

static struct ia_rdb_str col_str(sqlite3_stmt *st, int i)
{
        struct ia_rdb_str s = {0};

        if (sqlite3_column_type(st, i) == SQLITE_NULL)
                return s;
        s.p = (const char *)sqlite3_column_text(st, i);
        s.len = s.p ? (size_t)sqlite3_column_bytes(st, i) : 0;
        return s;
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
        int64_t v = sqlite3_column_int64(st, i);

        return v < 0 ? 0 : (uint64_t)v;
}

static bool col_null(sqlite3_stmt *st, int i)
{
        return sqlite3_column_type(st, i) == SQLITE_NULL;
}

/* ---- opening ---- */

static int begin(struct ia_rdb *d, struct ia_error *err)
{
        return ia_store_read_begin(d->db, d->name, &d->schema, err);
}

static struct ia_rdb *rdb_new(const char *name, struct ia_error *err)
{
        struct ia_rdb *d = calloc(1, sizeof(*d));

        if (d)
                d->name = strdup(name);
        if (!d || !d->name) {
                free(d);
                nomem(err);
                return NULL;
        }
        return d;
}

int ia_rdb_open(struct ia_rdb **out, const char *path, struct ia_error *err)
{
        struct ia_rdb *d = rdb_new(path, err);

        *out = d;
        if (!d)
                return -1;
        /* READONLY: never create, never migrate, never write; no scan lock is taken. */
        if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
                return ia_error_set(err, IA_ERR_IO, "cannot open database '%s': %s", path,
                                    d->db ? sqlite3_errmsg(d->db) : "out of memory");
        return begin(d, err);
}

int ia_rdb_attach(struct ia_rdb **out, struct sqlite3 *db, const char *name, struct ia_error *err)
{
        struct ia_rdb *d = rdb_new(name, err);

        *out = d;
        if (!d)
                return -1;
        d->borrowed = true;
        d->db = db;
        return begin(d, err);
}

void ia_rdb_close(struct ia_rdb *d)
{
        if (!d)
                return;
        for (int i = 0; i < ST_NCACHED; i++)
                sqlite3_finalize(d->cached[i]);
        if (d->db) {
                sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
                if (!d->borrowed)
                        sqlite3_close(d->db);
        }
        free(d->name);
        free(d);
}

int64_t ia_rdb_schema(const struct ia_rdb *d)
{
        return d->schema;
}

int ia_rdb_schema_latest(void)
{
        return ia_store_schema_latest();
}

/* ---- scans ---- */

int ia_rdb_scan(struct ia_rdb *d, int64_t id, bool *found,
                int (*fn)(void *ctx, const struct ia_rdb_scan *s, struct ia_error *err), void *ctx,
                struct ia_error *err)
{
        struct q q;
        int cb = 0;

        *found = false;
        if (q_start(&q, d,
                    "SELECT id, started_at, finished_at, status, host, tool_version, "
                    "abort_reason, exit_status, files_seen, files_read, files_reused, "
                    "layers_mapped, images, map_rows, problems, "
                    "(julianday(finished_at) - julianday(started_at)) * 86400.0 "
                    "FROM scans WHERE id = ?1",
                    err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, id);
        if (q_row(&q, cb)) {
                sqlite3_stmt *st = q.st;
                struct ia_rdb_scan s = {
                    .id = sqlite3_column_int64(st, 0),
                    .started_at = col_str(st, 1),
                    .finished_at = col_str(st, 2),
                    .status = col_str(st, 3),
                    .host = col_str(st, 4),
                    .tool_version = col_str(st, 5),
                    .abort_reason = col_str(st, 6),
                    .has_exit = !col_null(st, 7),
                    .exit_status = sqlite3_column_int64(st, 7),
                    .files_seen = col_u64(st, 8),
                    .files_read = col_u64(st, 9),
                    .files_reused = col_u64(st, 10),
                    .layers_mapped = col_u64(st, 11),
                    .images = col_u64(st, 12),
                    .map_rows = col_u64(st, 13),
                    .problems = col_u64(st, 14),
                    .has_duration = !col_null(st, 15),
                    .duration = sqlite3_column_double(st, 15),
                };
                *found = true;
                cb = fn(ctx, &s, err);
        }
        return q_end(&q, cb, "reading the scan", err);
}

int ia_rdb_roots(struct ia_rdb *d, int64_t scan,
                 int (*fn)(void *ctx, const struct ia_rdb_str *path, struct ia_error *err),
                 void *ctx, struct ia_error *err)
{
        struct q q;
        int cb = 0;

        if (q_start(&q, d,
                    "SELECT path FROM scan_roots WHERE scan_id = ?1 AND role = 'scan' "
                    "ORDER BY rowid",
                    err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, scan);
        while (q_row(&q, cb)) {
                struct ia_rdb_str path = col_str(q.st, 0);

                cb = fn(ctx, &path, err);
        }
        return q_end(&q, cb, "reading scan roots", err);
}

int ia_rdb_latest_complete(struct ia_rdb *d, int64_t *id, struct ia_error *err)
{
        return ia_store_read_latest_complete(d->db, d->name, id, err);
}

int ia_rdb_complete_before(struct ia_rdb *d, int64_t before, int64_t *id, struct ia_error *err)
{
        struct q q;

        *id = 0;
        if (q_start(&q, d, "SELECT max(id) FROM scans WHERE status = 'complete' AND id < ?1", err) <
            0)
                return -1;
        sqlite3_bind_int64(q.st, 1, before);
        if (q_row(&q, 0) && !col_null(q.st, 0))
                *id = sqlite3_column_int64(q.st, 0);
        return q_end(&q, 0, "choosing the earlier scan", err);
}

int ia_rdb_complete_near(struct ia_rdb *d, const char *date, int64_t before, int64_t *id,
                         bool *bad_date, struct ia_error *err)
{
        struct q q;

        *id = 0;
        *bad_date = false;
        if (q_start(&q, d,
                    "SELECT coalesce("
                    " (SELECT id FROM scans WHERE status = 'complete' AND id < ?2"
                    "   AND julianday(started_at) <= julianday(?1) ORDER BY id DESC LIMIT 1),"
                    " (SELECT id FROM scans WHERE status = 'complete' AND id < ?2"
                    "   AND julianday(started_at) > julianday(?1) ORDER BY id LIMIT 1)), "
                    "julianday(?1) IS NULL",
                    err) < 0)
                return -1;
        sqlite3_bind_text(q.st, 1, date, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q.st, 2, before);
        if (q_row(&q, 0)) {
                if (!col_null(q.st, 0))
                        *id = sqlite3_column_int64(q.st, 0);
                *bad_date = sqlite3_column_int(q.st, 1) != 0;
        }
        return q_end(&q, 0, "choosing the earlier scan", err);
}

int ia_rdb_last_ended(struct ia_rdb *d, bool *found, struct ia_rdb_ended *e, struct ia_error *err)
{
        struct q q;

        *found = false;
        if (q_start(&q, d,
                    "SELECT status = 'complete', CAST(strftime('%s', started_at) AS INTEGER), "
                    "CAST(strftime('%s', finished_at) AS INTEGER), "
                    "(julianday(finished_at) - julianday(started_at)) * 86400.0 "
                    "FROM scans WHERE status <> 'running' AND finished_at IS NOT NULL "
                    "ORDER BY id DESC LIMIT 1",
                    err) < 0)
                return -1;
        if (q_row(&q, 0)) {
                *found = true;
                e->complete = sqlite3_column_int(q.st, 0) != 0;
                e->started = sqlite3_column_int64(q.st, 1);
                e->finished = sqlite3_column_int64(q.st, 2);
                e->duration = sqlite3_column_double(q.st, 3);
                q_row(&q, 0);
        }
        return q_end(&q, 0, "reading the latest scan", err);
}

/* ---- images ---- */

/*
 * The files an image keeps its data in (qcow2 external data file, VMDK
 * extents) that are not images of the scan themselves: their size and
 * allocation belong to the image (a flat VMDK is a 1 KiB descriptor over a
 * multi-GiB extent).  A file named by several images counts for the first
 * one only, so totals count every file once.  ?1 is the scan.
 */
#define DATA_FILES_SQL                                                                             \
        "SELECT image_id, sum(size) AS size, sum(allocated) AS allocated FROM ("                   \
        " SELECT min(l.image_id) AS image_id, t.size AS size, coalesce(t.allocated, 0) AS "        \
        "  allocated FROM links l JOIN files t ON t.id = l.target_file_id"                         \
        " WHERE l.scan_id = ?1 AND l.depth = 0 AND l.status = 'ok'"                                \
        "  AND l.kind IN ('extent', 'data-file')"                                                  \
        "  AND NOT EXISTS (SELECT 1 FROM images j WHERE j.scan_id = ?1"                            \
        "                   AND j.file_id = l.target_file_id)"                                     \
        " GROUP BY l.target_file_id) GROUP BY image_id"

/*
 * The images row whose map rows are image i's map (schema 2 on; a database
 * of schema 1 has every image's rows under its own id).
 */
#define MAP_ID "coalesce(i.map_image_id, i.id)"

/* The images of a scan; MAPID is the column holding the row id of an image's map rows. */
#define IMAGES_SQL(MAPID)                                                                          \
        "SELECT i.id, i.file_id, f.path, f.member, i.format, i.virtual_size, "                     \
        "i.file_size + coalesce(x.size, 0), "                                                      \
        "CASE WHEN i.allocated_bytes IS NULL AND x.image_id IS NULL THEN NULL "                    \
        "ELSE coalesce(i.allocated_bytes, 0) + coalesce(x.allocated, 0) END, "                     \
        "i.status, i.error, i.backing, i.chain_depth, f.mtime_ns, " MAPID " "                      \
        "FROM images i JOIN files f ON f.id = i.file_id "                                          \
        "LEFT JOIN (" DATA_FILES_SQL ") x ON x.image_id = i.id "                                   \
        "WHERE i.scan_id = ?1 ORDER BY f.path, f.member, i.id"

int ia_rdb_images(struct ia_rdb *d, int64_t scan,
                  int (*fn)(void *ctx, const struct ia_rdb_image *m, struct ia_error *err),
                  void *ctx, struct ia_error *err)
{
        struct q q;
        int cb = 0;

        if (q_start(&q, d, d->schema >= 2 ? IMAGES_SQL(MAP_ID) : IMAGES_SQL("i.id"), err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, scan);
        while (q_row(&q, cb)) {
                sqlite3_stmt *st = q.st;
                struct ia_rdb_image m = {
                    .id = sqlite3_column_int64(st, 0),
                    .file_id = sqlite3_column_int64(st, 1),
                    .path = col_str(st, 2),
                    .member = col_str(st, 3),
                    .format = col_str(st, 4),
                    .has_vsize = !col_null(st, 5),
                    .virtual_size = col_u64(st, 5),
                    .file_size = col_u64(st, 6),
                    .has_alloc = !col_null(st, 7),
                    .allocated = col_u64(st, 7),
                    .status = col_str(st, 8),
                    .error = col_str(st, 9),
                    .backing = col_str(st, 10),
                    .chain_depth = (unsigned)sqlite3_column_int(st, 11),
                    .has_mtime = !col_null(st, 12),
                    .mtime_ns = sqlite3_column_int64(st, 12),
                    .map_id = sqlite3_column_int64(st, 13),
                };
                cb = fn(ctx, &m, err);
        }
        return q_end(&q, cb, "reading images", err);
}

/* Each image's map summed by kind (MAPID as in IMAGES_SQL). */
#define SPACE_SQL(MAPID)                                                                           \
        "SELECT i.id,"                                                                             \
        " sum(CASE WHEN m.depth = 0 AND m.data THEN m.length ELSE 0 END),"                         \
        " sum(CASE WHEN m.depth > 0 AND m.data THEN m.length ELSE 0 END),"                         \
        " sum(CASE WHEN NOT m.data AND m.present THEN m.length ELSE 0 END),"                       \
        " sum(CASE WHEN NOT m.data AND NOT m.present THEN m.length ELSE 0 END),"                   \
        " sum(CASE WHEN m.data AND m.compressed THEN m.length ELSE 0 END),"                        \
        " sum(m.length)"                                                                           \
        " FROM images i JOIN map m ON m.image_id = " MAPID " WHERE i.scan_id = ?1 GROUP BY i.id"

/* Schema 3: the figures each image row carries (the scan's, or the migration's). */
#define SPACE_SQL_3                                                                                \
        "SELECT id, own_data_bytes, backing_data_bytes, zero_bytes, unallocated_bytes,"            \
        " compressed_bytes, mapped_bytes, unknown_bytes FROM images WHERE scan_id = ?1"

int ia_rdb_space(struct ia_rdb *d, int64_t scan,
                 int (*fn)(void *ctx, const struct ia_rdb_space *s, struct ia_error *err),
                 void *ctx, struct ia_error *err)
{
        struct q q;
        int cb = 0;

        if (q_start(&q, d,
                    d->schema >= 3   ? SPACE_SQL_3
                    : d->schema >= 2 ? SPACE_SQL(MAP_ID)
                                     : SPACE_SQL("i.id"),
                    err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, scan);
        while (q_row(&q, cb)) {
                sqlite3_stmt *st = q.st;
                struct ia_rdb_space s = {
                    .image_id = sqlite3_column_int64(st, 0),
                    .own_data = col_u64(st, 1),
                    .backing_data = col_u64(st, 2),
                    .zero = col_u64(st, 3),
                    .unallocated = col_u64(st, 4),
                    .compressed = col_u64(st, 5),
                    .mapped = col_u64(st, 6),
                    .unknown = d->schema >= 3 ? col_u64(st, 7) : 0,
                };
                cb = fn(ctx, &s, err);
        }
        return q_end(&q, cb, "summing maps", err);
}

int ia_rdb_backings(struct ia_rdb *d, int64_t scan,
                    int (*fn)(void *ctx, const struct ia_rdb_backing *b, struct ia_error *err),
                    void *ctx, struct ia_error *err)
{
        struct q q;
        int cb = 0;

        if (q_start(&q, d,
                    "SELECT image_id, target_file_id, status FROM links "
                    "WHERE scan_id = ?1 AND depth = 0 AND kind = 'backing'",
                    err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, scan);
        while (q_row(&q, cb)) {
                const unsigned char *status = sqlite3_column_text(q.st, 2);
                struct ia_rdb_backing b = {
                    .image_id = sqlite3_column_int64(q.st, 0),
                    .target_file_id = sqlite3_column_int64(q.st, 1),
                    .ok = status && strcmp((const char *)status, "ok") == 0 && !col_null(q.st, 1),
                };
                cb = fn(ctx, &b, err);
        }
        return q_end(&q, cb, "reading links", err);
}

static const struct {
        const char *sql, *what;
        int schema; /* the first schema that has the tables */
} file_sets[] = {
    [IA_RDB_WAS_BASE] = {"SELECT DISTINCT target_file_id FROM links WHERE scan_id < ?1 "
                         "AND depth = 0 AND kind = 'backing' AND status = 'ok' "
                         "AND target_file_id IS NOT NULL",
                         "reading earlier links", 0},
    [IA_RDB_VM_FILES] = {"SELECT file_id FROM vm_disks WHERE scan_id = ?1 AND file_id IS NOT "
                         "NULL UNION SELECT file_id FROM vm_media WHERE scan_id = ?1 AND "
                         "file_id IS NOT NULL",
                         "reading VM disks", 5},
    [IA_RDB_OVF_DISKS] = {"SELECT member_file_id FROM ovf_disks WHERE scan_id = ?1 "
                          "AND member_file_id IS NOT NULL",
                          "reading OVF references", 0},
    [IA_RDB_DATA_FILES] = {"SELECT DISTINCT l.target_file_id FROM links l "
                           "JOIN images i ON i.id = l.image_id WHERE l.scan_id = ?1 "
                           "AND l.status = 'ok' AND l.kind IN ('extent', 'data-file') "
                           "AND l.target_file_id IS NOT NULL AND l.target_file_id <> i.file_id",
                           "reading extent references", 0},
};

int ia_rdb_files(struct ia_rdb *d, int64_t scan, enum ia_rdb_files which,
                 int (*fn)(void *ctx, int64_t file_id, struct ia_error *err), void *ctx,
                 struct ia_error *err)
{
        struct q q;
        int cb = 0;

        if (d->schema < file_sets[which].schema)
                return 0;
        if (q_start(&q, d, file_sets[which].sql, err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, scan);
        while (q_row(&q, cb))
                cb = fn(ctx, sqlite3_column_int64(q.st, 0), err);
        return q_end(&q, cb, file_sets[which].what, err);
}

int ia_rdb_has_vms(struct ia_rdb *d, int64_t scan, bool *yes, struct ia_error *err)
{
        sqlite3_stmt *st;

        *yes = false;
        if (d->schema < 5)
                return 0;
        if (sqlite3_prepare_v2(d->db, "SELECT count(*) FROM vms WHERE scan_id = ?1", -1, &st,
                               NULL) != SQLITE_OK)
                return db_error(d, err, "preparing a query");
        sqlite3_bind_int64(st, 1, scan);
        /* (as before the store held this query: a failed step reads as no VM definitions) */
        *yes = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0;
        sqlite3_finalize(st);
        return 0;
}

int ia_rdb_archive_of(struct ia_rdb *d, int64_t file_id, struct ia_rdb_archive *a)
{
        struct q q;
        struct ia_error ignored = {0};

        if (q_cached(&q, d, ST_ARCHIVE,
                     "SELECT a.id, a.archive_id, a.path FROM files f JOIN files a "
                     "ON a.id = f.archive_id WHERE f.id = ?1",
                     &ignored) < 0)
                return 0;
        sqlite3_bind_int64(q.st, 1, file_id);
        if (!q_row(&q, 0))
                return 0;
        /* the row stays until the next call resets the statement */
        a->id = sqlite3_column_int64(q.st, 0);
        a->root = col_null(q.st, 1);
        a->path.p = (const char *)sqlite3_column_blob(q.st, 2);
        a->path.len = (size_t)sqlite3_column_bytes(q.st, 2);
        return 1;
}

/* ---- links, findings, unreadable entries ---- */

int ia_rdb_broken_links(struct ia_rdb *d, int64_t scan,
                        int (*fn)(void *ctx, const struct ia_rdb_link *l, struct ia_error *err),
                        void *ctx, struct ia_error *err)
{
        struct q q;
        int cb = 0;

        if (q_start(&q, d,
                    "SELECT coalesce(l.from_file_id, i.file_id), l.kind, l.name, "
                    "l.target_path, l.status, l.error, l.depth, ff.path, ff.member "
                    "FROM links l JOIN images i ON i.id = l.image_id "
                    "LEFT JOIN files ff ON ff.id = coalesce(l.from_file_id, i.file_id) "
                    "WHERE l.scan_id = ?1 AND l.status <> 'ok' "
                    "ORDER BY ff.path, ff.member, l.kind, l.name, l.depth",
                    err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, scan);
        while (q_row(&q, cb)) {
                sqlite3_stmt *st = q.st;
                struct ia_rdb_link l = {
                    .holder_id = sqlite3_column_int64(st, 0),
                    .kind = col_str(st, 1),
                    .name = col_str(st, 2),
                    .target = col_str(st, 3),
                    .status = col_str(st, 4),
                    .error = col_str(st, 5),
                    .depth = sqlite3_column_int(st, 6),
                    .holder_path = col_str(st, 7),
                    .holder_member = col_str(st, 8),
                };
                cb = fn(ctx, &l, err);
        }
        return q_end(&q, cb, "reading broken links", err);
}

int ia_rdb_findings(struct ia_rdb *d, int64_t scan,
                    int (*fn)(void *ctx, const struct ia_rdb_finding *f, struct ia_error *err),
                    void *ctx, struct ia_error *err)
{
        struct q q;
        int cb = 0;

        if (q_start(&q, d,
                    "SELECT x.code, x.message, f.path, f.member, f.id FROM findings x "
                    "LEFT JOIN files f ON f.id = x.file_id WHERE x.scan_id = ?1",
                    err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, scan);
        while (q_row(&q, cb)) {
                struct ia_rdb_finding f = {
                    .code = col_str(q.st, 0),
                    .message = col_str(q.st, 1),
                    .path = col_str(q.st, 2),
                    .member = col_str(q.st, 3),
                    .file_id = sqlite3_column_int64(q.st, 4),
                };
                cb = fn(ctx, &f, err);
        }
        return q_end(&q, cb, "reading findings", err);
}

int ia_rdb_unreadable(struct ia_rdb *d, int64_t scan,
                      int (*fn)(void *ctx, const struct ia_rdb_unreadable *u, struct ia_error *err),
                      void *ctx, struct ia_error *err)
{
        struct q q;
        int cb = 0;

        if (q_start(&q, d,
                    "SELECT e.path, e.reason, e.detail, coalesce(e.file_id, 0) FROM entries e "
                    "WHERE e.scan_id = ?1 AND e.kind = 'unreadable' AND NOT EXISTS "
                    "(SELECT 1 FROM images i WHERE i.scan_id = e.scan_id "
                    "AND i.file_id = e.file_id)",
                    err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, scan);
        while (q_row(&q, cb)) {
                struct ia_rdb_unreadable u = {
                    .path = col_str(q.st, 0),
                    .reason = col_str(q.st, 1),
                    .detail = col_str(q.st, 2),
                    .file_id = sqlite3_column_int64(q.st, 3),
                };
                cb = fn(ctx, &u, err);
        }
        return q_end(&q, cb, "reading unreadable entries", err);
}

/* ---- trend ---- */

int ia_rdb_prev_images(struct ia_rdb *d, int64_t scan,
                       int (*fn)(void *ctx, const struct ia_rdb_prev *p, struct ia_error *err),
                       void *ctx, struct ia_error *err)
{
        struct q q;
        int cb = 0;

        if (q_start(&q, d,
                    "SELECT f.path, f.member, "
                    "coalesce(i.allocated_bytes, 0) + coalesce(x.allocated, 0), "
                    "i.virtual_size, f.id FROM images i JOIN files f ON f.id = i.file_id "
                    "LEFT JOIN (" DATA_FILES_SQL ") x ON x.image_id = i.id "
                    "WHERE i.scan_id = ?1",
                    err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, scan);
        while (q_row(&q, cb)) {
                struct ia_rdb_prev p = {
                    .path = col_str(q.st, 0),
                    .member = col_str(q.st, 1),
                    .allocated = col_u64(q.st, 2),
                    .virtual_size = col_u64(q.st, 3),
                    .file_id = sqlite3_column_int64(q.st, 4),
                };
                cb = fn(ctx, &p, err);
        }
        return q_end(&q, cb, "reading the earlier scan", err);
}

int ia_rdb_history(struct ia_rdb *d, int64_t upto,
                   int (*fn)(void *ctx, const struct ia_rdb_hist *h, struct ia_error *err),
                   void *ctx, struct ia_error *err)
{
        struct q q;
        int cb = 0;

        if (q_start(&q, d,
                    "SELECT * FROM (SELECT s.id, s.started_at, count(i.id), "
                    "coalesce(sum(i.virtual_size), 0), coalesce(sum(i.allocated_bytes), 0) "
                    "+ (SELECT coalesce(sum(t.allocated), 0) FROM files t WHERE t.id IN "
                    "   (SELECT l.target_file_id FROM links l WHERE l.scan_id = s.id "
                    "     AND l.depth = 0 AND l.status = 'ok' "
                    "     AND l.kind IN ('extent', 'data-file') AND NOT EXISTS "
                    "     (SELECT 1 FROM images j WHERE j.scan_id = s.id "
                    "       AND j.file_id = l.target_file_id))) "
                    "FROM scans s LEFT JOIN images i ON i.scan_id = s.id "
                    "WHERE s.status = 'complete' AND s.id <= ?1 "
                    "GROUP BY s.id ORDER BY s.id DESC LIMIT 60) ORDER BY 1",
                    err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, upto);
        while (q_row(&q, cb)) {
                struct ia_rdb_hist h = {
                    .id = sqlite3_column_int64(q.st, 0),
                    .started_at = col_str(q.st, 1),
                    .images = col_u64(q.st, 2),
                    .virtual_size = col_u64(q.st, 3),
                    .allocated = col_u64(q.st, 4),
                };
                cb = fn(ctx, &h, err);
        }
        return q_end(&q, cb, "reading the scan history", err);
}

/* ---- maps ---- */

/* The ranges of a cached statement (columns start, length[, layer_id]) with its binds set. */
static int ranges(struct q *q, int ncol, ia_rdb_range_fn fn, void *ctx, struct ia_error *err)
{
        int cb = 0;

        while (q_row(q, cb)) {
                struct ia_rdb_range x = {
                    .start = (uint64_t)sqlite3_column_int64(q->st, 0),
                    .length = (uint64_t)sqlite3_column_int64(q->st, 1),
                    .layer_id = ncol > 2 ? sqlite3_column_int64(q->st, 2) : 0,
                };
                cb = fn(ctx, &x, err);
        }
        return q_end(q, cb, "reading the maps", err);
}

int ia_rdb_has_pieces(struct ia_rdb *d, int64_t map_id, bool *yes, struct ia_error *err)
{
        struct q q;

        *yes = false;
        if (d->schema < 3)
                return 0;
        if (q_cached(&q, d, ST_HAS_PIECES, "SELECT 1 FROM pieces WHERE image_id = ?1 LIMIT 1",
                     err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, map_id);
        *yes = q_row(&q, 0);
        return q_end(&q, 0, "reading the maps", err);
}

int ia_rdb_map_data(struct ia_rdb *d, int64_t map_id, int depth, ia_rdb_range_fn fn, void *ctx,
                    struct ia_error *err)
{
        struct q q;

        if (q_cached(&q, d, ST_MAP_DATA,
                     "SELECT start, length FROM map WHERE image_id = ?1 AND depth = ?2 AND data "
                     "ORDER BY start",
                     err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, map_id);
        sqlite3_bind_int(q.st, 2, depth);
        return ranges(&q, 2, fn, ctx, err);
}

int ia_rdb_layer_pieces(struct ia_rdb *d, int64_t map_id, int depth, ia_rdb_range_fn fn, void *ctx,
                        struct ia_error *err)
{
        struct q q;

        if (q_cached(&q, d, ST_PIECES,
                     "SELECT start, length, layer_id FROM pieces WHERE image_id = ?1 "
                     "AND depth = ?2 AND kind = 'layer' ORDER BY start",
                     err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, map_id);
        sqlite3_bind_int(q.st, 2, depth);
        return ranges(&q, 3, fn, ctx, err);
}

int ia_rdb_layer_data(struct ia_rdb *d, int64_t layer, uint64_t s, uint64_t e, ia_rdb_range_fn fn,
                      void *ctx, struct ia_error *err)
{
        struct q q;

        if (q_cached(&q, d, ST_LAYER_DATA,
                     "SELECT start, length FROM layer_runs WHERE layer_id = ?1 AND data "
                     "AND start < ?3 AND start >= coalesce((SELECT max(start) FROM layer_runs "
                     "WHERE layer_id = ?1 AND start <= ?2), 0) ORDER BY start",
                     err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, layer);
        sqlite3_bind_int64(q.st, 2, (int64_t)s);
        sqlite3_bind_int64(q.st, 3, (int64_t)e);
        return ranges(&q, 2, fn, ctx, err);
}

int ia_rdb_chain_reads(struct ia_rdb *d, int64_t map_id, int depth, uint64_t *bytes,
                       struct ia_error *err)
{
        struct q q;

        *bytes = 0;
        if (q_cached(&q, d, ST_READS,
                     "SELECT data_bytes FROM chain_layers WHERE image_id = ?1 AND depth = ?2",
                     err) < 0)
                return -1;
        sqlite3_bind_int64(q.st, 1, map_id);
        sqlite3_bind_int(q.st, 2, depth);
        if (q_row(&q, 0))
                *bytes = (uint64_t)sqlite3_column_int64(q.st, 0);
        return q_end(&q, 0, "reading the maps", err);
}
