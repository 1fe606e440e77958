/*
 * Loading one scan of the store for `imgaudit report`: see rpt.h.
 *
 * Only plain SELECTs over the tables of schema/001_initial.sql, so the
 * report needs no migration and works on a database it may not write.
 * Per-image space figures are one GROUP BY over the map; the backing graph
 * comes from the depth-0 'backing' links that resolved ('ok').
 */
#define _GNU_SOURCE
#include "rpt.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "escape.h"
#include "rbuf.h"
#include "schema.h" /* read-only: the store's identity and the latest schema version */

int ia_rpt_db_error(struct ia_rpt *r, struct ia_error *err, const char *what)
{
        int prim = sqlite3_errcode(r->db) & 0xff;

        return ia_error_set(
            err, prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB ? IA_ERR_CORRUPT : IA_ERR_IO,
            "database '%s': %s: %s", r->db_path, what, sqlite3_errmsg(r->db));
}

int ia_rpt_prepare(struct ia_rpt *r, const char *sql, sqlite3_stmt **st, struct ia_error *err)
{
        if (sqlite3_prepare_v2(r->db, sql, -1, st, NULL) != SQLITE_OK)
                return ia_rpt_db_error(r, err, "preparing a query");
        return 0;
}

static int query_i64(struct ia_rpt *r, const char *sql, int64_t *v, struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc;

        if (ia_rpt_prepare(r, sql, &st, err) < 0)
                return -1;
        rc = sqlite3_step(st);
        *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return ia_rpt_db_error(r, err, sql);
        return 0;
}

int ia_rpt_latest_schema(void)
{
        int v = 0;

        for (const struct ia_schema_file *s = ia_schema_files; s->name; s++)
                v = atoi(s->name);
        return v;
}

/* The checks and the read transaction of an open connection (ia_rpt_open, ia_rpt_attach). */
static int begin(struct ia_rpt *r, struct ia_error *err)
{
        const char *path = r->db_path;
        int64_t appid, nobj, ntables;

        sqlite3_busy_timeout(r->db, 10000);
        if (query_i64(r, "PRAGMA user_version", &r->db_schema, err) < 0)
                return -1;
        /* a newer schema's tables may mean something else now: refused as scan refuses it */
        if (r->db_schema > ia_rpt_latest_schema())
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "database '%s' has schema version %lld, newer than this "
                                    "imgaudit's %d; refusing to read it (use a newer imgaudit)",
                                    path, (long long)r->db_schema, ia_rpt_latest_schema());
        if (query_i64(r, "SELECT count(*) FROM sqlite_master", &nobj, err) < 0 ||
            query_i64(r, "PRAGMA application_id", &appid, err) < 0)
                return -1;
        if (nobj == 0 || appid != IA_APPLICATION_ID)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "database '%s' is not an imgaudit store (run 'imgaudit scan' "
                                    "first)",
                                    path);
        if (query_i64(r,
                      "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                      "('scans', 'images', 'links', 'map', 'files', 'findings')",
                      &ntables, err) < 0)
                return -1;
        if (ntables != 6)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "database '%s' lacks the scan tables (schema version %" PRId64
                                    ")",
                                    path, r->db_schema);
        /* One snapshot for the whole report; in WAL mode this never blocks the writer. */
        if (sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
                return ia_rpt_db_error(r, err, "beginning a read transaction");
        return 0;
}

int ia_rpt_open(struct ia_rpt *r, const char *path, struct ia_error *err)
{
        memset(r, 0, sizeof(*r));
        r->now = (int64_t)time(NULL);
        r->db_path = strdup(path);
        if (!r->db_path)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        /* READONLY: never create, never migrate, never write; no scan lock is taken. */
        if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
                ia_error_set(err, IA_ERR_IO, "cannot open database '%s': %s", path,
                             r->db ? sqlite3_errmsg(r->db) : "out of memory");
                return -1;
        }
        return begin(r, err);
}

int ia_rpt_attach(struct ia_rpt *r, sqlite3 *db, const char *name, struct ia_error *err)
{
        memset(r, 0, sizeof(*r));
        r->now = (int64_t)time(NULL);
        r->borrowed = true;
        r->db = db;
        r->db_path = strdup(name);
        if (!r->db_path)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        return begin(r, err);
}

static void scan_release(struct ia_rpt_scan *s)
{
        free(s->started_at);
        free(s->finished_at);
        free(s->status);
        free(s->host);
        free(s->tool_version);
        free(s->abort_reason);
        for (size_t i = 0; i < s->nroots; i++) {
                free(s->roots[i]);
                free(s->raw_roots[i]);
        }
        free(s->roots);
        free(s->raw_roots);
        memset(s, 0, sizeof(*s));
}

void ia_rpt_close(struct ia_rpt *r)
{
        for (size_t i = 0; i < r->nimg; i++) {
                struct ia_rpt_image *m = &r->img[i];

                free(m->path);
                free(m->member);
                free(m->name);
                free(m->dir);
                free(m->format);
                free(m->status);
                free(m->error);
                free(m->backing);
                free(m->children);
        }
        free(r->img);
        for (size_t i = 0; i < r->nlinks; i++) {
                free(r->links[i].holder);
                free(r->links[i].kind);
                free(r->links[i].name);
                free(r->links[i].target);
                free(r->links[i].status);
                free(r->links[i].error);
        }
        free(r->links);
        for (size_t i = 0; i < r->nfindings; i++) {
                free(r->findings[i].category);
                free(r->findings[i].source);
                free(r->findings[i].name);
                free(r->findings[i].message);
        }
        free(r->findings);
        for (size_t i = 0; i < r->nprev; i++) {
                free(r->prev[i].path);
                free(r->prev[i].member);
                free(r->prev[i].name);
                free(r->prev[i].dir);
        }
        free(r->prev);
        for (size_t i = 0; i < r->nhist; i++)
                free(r->hist[i].started_at);
        free(r->hist);
        scan_release(&r->scan);
        scan_release(&r->prev_scan);
        sqlite3_finalize(r->st_archive);
        if (r->db) {
                sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
                if (!r->borrowed)
                        sqlite3_close(r->db);
        }
        free(r->db_path);
        memset(r, 0, sizeof(*r));
}

/* ---- column helpers ---- */

static char *col_text(sqlite3_stmt *st, int i, bool *nomem)
{
        const unsigned char *s;
        char *d;

        if (sqlite3_column_type(st, i) == SQLITE_NULL)
                return NULL;
        s = sqlite3_column_text(st, i);
        d = strdup(s ? (const char *)s : "");
        if (!d)
                *nomem = true;
        return d;
}

/* A path column (TEXT or BLOB): its exact bytes, NUL-terminated. */
static char *col_bytes(sqlite3_stmt *st, int i, size_t *len, bool *nomem)
{
        const void *p;
        int n;
        char *d;

        *len = 0;
        if (sqlite3_column_type(st, i) == SQLITE_NULL)
                return NULL;
        p = sqlite3_column_blob(st, i);
        n = sqlite3_column_bytes(st, i);
        d = malloc((size_t)n + 1);
        if (!d) {
                *nomem = true;
                return NULL;
        }
        if (n)
                memcpy(d, p, (size_t)n);
        d[n] = '\0';
        *len = (size_t)n;
        return d;
}

/* A text or path column, escaped for display. */
static char *col_escaped(sqlite3_stmt *st, int i, bool *nomem)
{
        const void *p;
        char *d;

        if (sqlite3_column_type(st, i) == SQLITE_NULL)
                return NULL;
        p = sqlite3_column_blob(st, i);
        d = ia_escape_dup(p ? p : "", (size_t)sqlite3_column_bytes(st, i));
        if (!d)
                *nomem = true;
        return d;
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

/* ---- choosing scans ---- */

static int load_scan(struct ia_rpt *r, int64_t id, struct ia_rpt_scan *s, struct ia_error *err)
{
        sqlite3_stmt *st;
        bool nomem = false;
        int rc;

        if (ia_rpt_prepare(r,
                           "SELECT id, started_at, finished_at, status, host, tool_version, "
                           "abort_reason, exit_status, files_seen, files_read, files_reused, "
                           "layers_mapped, images, map_rows, problems, "
                           "(julianday(finished_at) - julianday(started_at)) * 86400.0 "
                           "FROM scans WHERE id = ?1",
                           &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, id);
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                sqlite3_finalize(st);
                if (rc == SQLITE_DONE)
                        return ia_error_set(err, IA_ERR_USAGE,
                                            "no scan %" PRId64 " in database '%s'", id, r->db_path);
                return ia_rpt_db_error(r, err, "reading the scan");
        }
        s->id = sqlite3_column_int64(st, 0);
        s->started_at = col_text(st, 1, &nomem);
        s->finished_at = col_text(st, 2, &nomem);
        s->status = col_text(st, 3, &nomem);
        s->host = col_escaped(st, 4, &nomem);
        s->tool_version = col_escaped(st, 5, &nomem);
        s->abort_reason = col_escaped(st, 6, &nomem);
        s->has_exit = !col_null(st, 7);
        s->exit_status = sqlite3_column_int64(st, 7);
        s->files_seen = col_u64(st, 8);
        s->files_read = col_u64(st, 9);
        s->files_reused = col_u64(st, 10);
        s->layers_mapped = col_u64(st, 11);
        s->images = col_u64(st, 12);
        s->map_rows = col_u64(st, 13);
        s->problems = col_u64(st, 14);
        s->has_duration = !col_null(st, 15);
        s->duration = sqlite3_column_double(st, 15);
        if (s->has_duration && s->duration < 0)
                s->duration = 0;
        sqlite3_finalize(st);
        if (!s->status)
                nomem = true;
        if (nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");

        if (ia_rpt_prepare(r,
                           "SELECT path FROM scan_roots WHERE scan_id = ?1 AND role = 'scan' "
                           "ORDER BY rowid",
                           &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                char **a = realloc(s->roots, (s->nroots + 1) * sizeof(*a));
                char **b;
                size_t len;

                if (!a)
                        break;
                s->roots = a;
                b = realloc(s->raw_roots, (s->nroots + 1) * sizeof(*b));
                if (!b)
                        break;
                s->raw_roots = b;
                s->raw_roots[s->nroots] = col_bytes(st, 0, &len, &nomem);
                /* a root is a file-system path: escaped as image paths are */
                s->roots[s->nroots] = s->raw_roots[s->nroots]
                                          ? ia_escape_path_dup(s->raw_roots[s->nroots], len, len)
                                          : NULL;
                if (s->raw_roots[s->nroots] && !s->roots[s->nroots])
                        nomem = true;
                s->nroots++;
                if (nomem)
                        break;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return nomem || rc == SQLITE_ROW ? ia_error_set(err, IA_ERR_NOMEM, "out of memory")
                                                 : ia_rpt_db_error(r, err, "reading scan roots");
        return 0;
}

static bool all_digits(const char *s)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

static int parse_id(const char *s, int64_t *id, const char *what, struct ia_error *err)
{
        char *end;
        long long v;

        errno = 0;
        v = strtoll(s, &end, 10);
        if (!all_digits(s) || errno || v <= 0)
                return ia_error_set(err, IA_ERR_USAGE, "%s '%s' is not a scan id", what, s);
        *id = v;
        return 0;
}

/* Is s a date SQLite understands, "YYYY-MM-DD[THH:MM[:SS]][Z]"? */
static bool is_date(const char *s)
{
        size_t n = strlen(s);

        if (n < 10 || s[4] != '-' || s[7] != '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= '0' && c <= '9') || c == '-' || c == ':' || c == 'T' || c == ' ' ||
                      c == 'Z' || c == '.' || c == '+'))
                        return false;
        }
        return true;
}

static int pick_since(struct ia_rpt *r, const char *since, int64_t *id, struct ia_error *err)
{
        sqlite3_stmt *st;
        bool bad_date;
        int rc;

        *id = 0;
        if (!since) {
                if (ia_rpt_prepare(r,
                                   "SELECT max(id) FROM scans WHERE status = 'complete' "
                                   "AND id < ?1",
                                   &st, err) < 0)
                        return -1;
                sqlite3_bind_int64(st, 1, r->scan.id);
        } else if (all_digits(since)) {
                if (parse_id(since, id, "--since", err) < 0)
                        return -1;
                return 0;
        } else if (is_date(since)) {
                if (ia_rpt_prepare(
                        r,
                        "SELECT coalesce("
                        " (SELECT id FROM scans WHERE status = 'complete' AND id < ?2"
                        "   AND julianday(started_at) <= julianday(?1) ORDER BY id DESC LIMIT 1),"
                        " (SELECT id FROM scans WHERE status = 'complete' AND id < ?2"
                        "   AND julianday(started_at) > julianday(?1) ORDER BY id LIMIT 1)), "
                        "julianday(?1) IS NULL",
                        &st, err) < 0)
                        return -1;
                sqlite3_bind_text(st, 1, since, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, r->scan.id);
        } else {
                return ia_error_set(err, IA_ERR_USAGE,
                                    "--since '%s' is neither a scan id nor a date (YYYY-MM-DD)",
                                    since);
        }
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && !col_null(st, 0))
                *id = sqlite3_column_int64(st, 0);
        bad_date = since && rc == SQLITE_ROW && sqlite3_column_int(st, 1) != 0;
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return ia_rpt_db_error(r, err, "choosing the earlier scan");
        if (bad_date)
                return ia_error_set(err, IA_ERR_USAGE, "--since '%s' is not a valid date", since);
        if (since && *id == 0)
                return ia_error_set(err, IA_ERR_USAGE,
                                    "no complete scan before scan %" PRId64 " matches --since '%s'",
                                    r->scan.id, since);
        return 0;
}

/* ---- images ---- */

/*
 * The files an image keeps its data in (qcow2 external data file, VMDK
 * extents) that are not images of the scan themselves: their size and
 * allocation belong to the image (a flat VMDK is a 1 KiB descriptor over a
 * multi-GiB extent).  A file named by several images counts for the first
 * one only, so totals count every file once.  ?1 is the scan.
 */
#define IA_RPT_DATA_FILES                                                                          \
        "SELECT image_id, sum(size) AS size, sum(allocated) AS allocated FROM ("                   \
        " SELECT min(l.image_id) AS image_id, t.size AS size, coalesce(t.allocated, 0) AS "        \
        "  allocated FROM links l JOIN files t ON t.id = l.target_file_id"                         \
        " WHERE l.scan_id = ?1 AND l.depth = 0 AND l.status = 'ok'"                                \
        "  AND l.kind IN ('extent', 'data-file')"                                                  \
        "  AND NOT EXISTS (SELECT 1 FROM images j WHERE j.scan_id = ?1"                            \
        "                   AND j.file_id = l.target_file_id)"                                     \
        " GROUP BY l.target_file_id) GROUP BY image_id"

struct id_idx {
        int64_t id;
        size_t idx;
};

static int cmp_id_idx(const void *a, const void *b)
{
        const struct id_idx *x = a, *y = b;

        return x->id < y->id ? -1 : x->id > y->id;
}

static long find_id(const struct id_idx *v, size_t n, int64_t id)
{
        struct id_idx key = {id, 0};
        const struct id_idx *p = bsearch(&key, v, n, sizeof(*v), cmp_id_idx);

        return p ? (long)p->idx : -1;
}

/*
 * How many leading bytes of a file's path name a file of the file system:
 * all of them, or for an archive member (ARCHIVE!MEMBER, nested archives
 * too) the path of its outermost archive.
 */
static size_t plain_len(struct ia_rpt *r, int64_t file_id, const char *path, size_t len,
                        bool member)
{
        int64_t id = file_id;

        if (!member)
                return len;
        if (!r->st_archive &&
            sqlite3_prepare_v2(r->db,
                               "SELECT a.id, a.archive_id, a.path FROM files f JOIN files a "
                               "ON a.id = f.archive_id WHERE f.id = ?1",
                               -1, &r->st_archive, NULL) != SQLITE_OK)
                return 0;
        for (int depth = 0; depth < 64; depth++) {
                sqlite3_stmt *st = r->st_archive;
                size_t n;
                bool root;

                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, id);
                if (sqlite3_step(st) != SQLITE_ROW)
                        return 0;
                id = sqlite3_column_int64(st, 0);
                root = sqlite3_column_type(st, 1) == SQLITE_NULL;
                n = (size_t)sqlite3_column_bytes(st, 2);
                if (root) {
                        const void *p = sqlite3_column_blob(st, 2);
                        bool prefix =
                            n < len && path[n] == '!' && (n == 0 || memcmp(p, path, n) == 0);
                        return prefix ? n : 0;
                }
        }
        return 0;
}

/* The escaped display name of a file, or of its directory (dir true). */
static char *display_name(struct ia_rpt *r, int64_t file_id, const char *path, size_t len,
                          bool member, bool dir)
{
        size_t plain = plain_len(r, file_id, path, len, member);
        size_t n = len;

        if (!dir)
                return ia_escape_path_dup(path, len, plain);
        while (n > 0 && path[n - 1] != '/')
                n--;
        if (n == 0)
                return ia_escape_dup(".", 1);
        if (n > 1)
                n--; /* drop the slash, keep "/" itself */
        return ia_escape_path_dup(path, n, plain);
}

static int root_of(const struct ia_rpt_scan *s, const char *path, size_t len)
{
        int best = -1;
        size_t best_len = 0;

        for (size_t i = 0; i < s->nroots; i++) {
                const char *rt = s->raw_roots[i];
                size_t n = rt ? strlen(rt) : 0;

                while (n > 1 && rt[n - 1] == '/')
                        n--;
                if (n == 0 || n > len || memcmp(rt, path, n) != 0)
                        continue;
                if (n < len && path[n] != '/' && !(n == 1 && rt[0] == '/'))
                        continue;
                if (best < 0 || n > best_len) {
                        best = (int)i;
                        best_len = n;
                }
        }
        return best;
}

/* The images of a scan; MAPID is the column holding the row id of an image's map rows. */
#define IMAGES_SQL(MAPID)                                                                          \
        "SELECT i.id, i.file_id, f.path, f.member, i.format, i.virtual_size, "                     \
        "i.file_size + coalesce(x.size, 0), "                                                      \
        "CASE WHEN i.allocated_bytes IS NULL AND x.image_id IS NULL THEN NULL "                    \
        "ELSE coalesce(i.allocated_bytes, 0) + coalesce(x.allocated, 0) END, "                     \
        "i.status, i.error, i.backing, i.chain_depth, f.mtime_ns, " MAPID " "                      \
        "FROM images i JOIN files f ON f.id = i.file_id "                                          \
        "LEFT JOIN (" IA_RPT_DATA_FILES ") x ON x.image_id = i.id "                                \
        "WHERE i.scan_id = ?1 ORDER BY f.path, f.member, i.id"

static int load_images(struct ia_rpt *r, struct ia_error *err)
{
        sqlite3_stmt *st;
        size_t cap = 0;
        bool nomem = false;
        int rc;

        if (ia_rpt_prepare(r, r->db_schema >= 2 ? IMAGES_SQL(IA_RPT_MAP_ID) : IMAGES_SQL("i.id"),
                           &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, r->scan.id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct ia_rpt_image *m;

                if (r->nimg == cap) {
                        size_t nc = cap ? cap * 2 : 64;
                        struct ia_rpt_image *a = realloc(r->img, nc * sizeof(*a));
                        if (!a) {
                                nomem = true;
                                break;
                        }
                        r->img = a;
                        cap = nc;
                }
                m = &r->img[r->nimg++];
                memset(m, 0, sizeof(*m));
                m->parent = -1;
                m->id = sqlite3_column_int64(st, 0);
                m->file_id = sqlite3_column_int64(st, 1);
                m->path = col_bytes(st, 2, &m->path_len, &nomem);
                m->member = col_bytes(st, 3, &m->member_len, &nomem);
                m->format = col_escaped(st, 4, &nomem);
                m->has_vsize = !col_null(st, 5);
                m->virtual_size = col_u64(st, 5);
                m->file_size = col_u64(st, 6);
                m->has_alloc = !col_null(st, 7);
                m->allocated = col_u64(st, 7);
                m->status = col_escaped(st, 8, &nomem);
                m->error = col_escaped(st, 9, &nomem);
                m->backing = col_escaped(st, 10, &nomem);
                m->chain_depth = (unsigned)sqlite3_column_int(st, 11);
                m->has_mtime = !col_null(st, 12);
                m->mtime_ns = sqlite3_column_int64(st, 12);
                m->map_id = sqlite3_column_int64(st, 13);
                if (!m->path || !m->status) {
                        nomem = true;
                        break;
                }
                m->name = display_name(r, m->file_id, m->path, m->path_len, m->member, false);
                m->dir = display_name(r, m->file_id, m->path, m->path_len, m->member, true);
                if (!m->name || !m->dir) {
                        nomem = true;
                        break;
                }
                m->root = root_of(&r->scan, m->path, m->path_len);
        }
        sqlite3_finalize(st);
        if (nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        if (rc != SQLITE_DONE)
                return ia_rpt_db_error(r, err, "reading images");
        return 0;
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

static int load_space(struct ia_rpt *r, const struct id_idx *by_id, struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc;

        if (ia_rpt_prepare(r,
                           r->db_schema >= 3   ? SPACE_SQL_3
                           : r->db_schema >= 2 ? SPACE_SQL(IA_RPT_MAP_ID)
                                               : SPACE_SQL("i.id"),
                           &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, r->scan.id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                long i = find_id(by_id, r->nimg, sqlite3_column_int64(st, 0));
                struct ia_rpt_space *sp;

                if (i < 0)
                        continue;
                sp = &r->img[i].sp;
                sp->own_data = col_u64(st, 1);
                sp->backing_data = col_u64(st, 2);
                sp->zero = col_u64(st, 3);
                sp->unallocated = col_u64(st, 4);
                sp->compressed = col_u64(st, 5);
                sp->mapped = col_u64(st, 6);
                if (r->db_schema >= 3)
                        sp->unknown = col_u64(st, 7);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return ia_rpt_db_error(r, err, "summing maps");
        return 0;
}

static size_t count_desc(struct ia_rpt *r, size_t i, unsigned depth)
{
        size_t n = 0;

        if (depth > 4096) /* the scanner refuses loops; never trust it twice */
                return 0;
        for (size_t k = 0; k < r->img[i].nchildren; k++)
                n += 1 + count_desc(r, r->img[i].children[k], depth + 1);
        return n;
}

/*
 * Set the bool at offset flag of struct ia_rpt_image on every image whose file
 * id sql returns (sql takes the scan id as ?1).
 */
static int flag_by_file(struct ia_rpt *r, const struct id_idx *by_file, const char *sql,
                        size_t flag, const char *what, struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc;

        if (ia_rpt_prepare(r, sql, &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, r->scan.id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                long i = find_id(by_file, r->nimg, sqlite3_column_int64(st, 0));

                if (i >= 0)
                        *(bool *)((char *)&r->img[i] + flag) = true;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return ia_rpt_db_error(r, err, what);
        return 0;
}

static int load_graph(struct ia_rpt *r, const struct id_idx *by_id, const struct id_idx *by_file,
                      struct ia_error *err)
{
        sqlite3_stmt *st;
        int rc;

        if (ia_rpt_prepare(r,
                           "SELECT image_id, target_file_id, status FROM links "
                           "WHERE scan_id = ?1 AND depth = 0 AND kind = 'backing'",
                           &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, r->scan.id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                long i = find_id(by_id, r->nimg, sqlite3_column_int64(st, 0));
                const unsigned char *status = sqlite3_column_text(st, 2);
                long p;

                if (i < 0)
                        continue;
                r->img[i].has_backing = true;
                if (!status || strcmp((const char *)status, "ok") != 0 || col_null(st, 1))
                        continue;
                r->img[i].backing_ok = true;
                p = find_id(by_file, r->nimg, sqlite3_column_int64(st, 1));
                if (p < 0 || p == i)
                        continue;
                r->img[i].parent = p;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
                return ia_rpt_db_error(r, err, "reading links");
        /* a parent cycle cannot come from a valid scan; cut it rather than loop */
        for (size_t i = 0; i < r->nimg; i++) {
                long p = r->img[i].parent;
                size_t steps = 0;

                while (p >= 0 && steps++ <= r->nimg)
                        p = r->img[p].parent;
                if (p >= 0)
                        r->img[i].parent = -1;
        }
        for (size_t i = 0; i < r->nimg; i++) {
                long p = r->img[i].parent;
                size_t *c;

                if (p < 0)
                        continue;
                c = realloc(r->img[p].children, (r->img[p].nchildren + 1) * sizeof(*c));
                if (!c)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                r->img[p].children = c;
                c[r->img[p].nchildren++] = i;
        }
        for (size_t i = 0; i < r->nimg; i++)
                r->img[i].ndesc = count_desc(r, i, 0);

        if (flag_by_file(r, by_file,
                         "SELECT member_file_id FROM ovf_disks WHERE scan_id = ?1 "
                         "AND member_file_id IS NOT NULL",
                         offsetof(struct ia_rpt_image, used_by_ovf), "reading OVF references",
                         err) < 0)
                return -1;
        /* an image another image keeps its data in (a VMDK extent that is an
         * image by itself) is in use even though nothing backs onto it */
        return flag_by_file(r, by_file,
                            "SELECT DISTINCT l.target_file_id FROM links l "
                            "JOIN images i ON i.id = l.image_id WHERE l.scan_id = ?1 "
                            "AND l.status = 'ok' AND l.kind IN ('extent', 'data-file') "
                            "AND l.target_file_id IS NOT NULL AND l.target_file_id <> i.file_id",
                            offsetof(struct ia_rpt_image, used_as_data),
                            "reading extent references", err);
}

/* Every link that is not ok, once per (holder file, kind, name). */
static int load_links(struct ia_rpt *r, const struct id_idx *by_file, struct ia_error *err)
{
        sqlite3_stmt *st;
        int64_t last_from = -1;
        size_t cap = 0;
        bool nomem = false;
        int rc;

        if (ia_rpt_prepare(r,
                           "SELECT coalesce(l.from_file_id, i.file_id), l.kind, l.name, "
                           "l.target_path, l.status, l.error, l.depth, ff.path, ff.member "
                           "FROM links l JOIN images i ON i.id = l.image_id "
                           "LEFT JOIN files ff ON ff.id = coalesce(l.from_file_id, i.file_id) "
                           "WHERE l.scan_id = ?1 AND l.status <> 'ok' "
                           "ORDER BY ff.path, ff.member, l.kind, l.name, l.depth",
                           &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, r->scan.id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                int64_t from = sqlite3_column_int64(st, 0);
                struct ia_rpt_link *l;

                if (r->nlinks > 0 && from == last_from) {
                        const struct ia_rpt_link *p = &r->links[r->nlinks - 1];
                        char *kind = col_escaped(st, 1, &nomem);
                        char *name = col_escaped(st, 2, &nomem);
                        bool same = kind && name && strcmp(kind, p->kind) == 0 &&
                                    strcmp(name, p->name) == 0;
                        free(kind);
                        free(name);
                        if (same)
                                continue;
                }
                last_from = from;
                if (r->nlinks == cap) {
                        size_t nc = cap ? cap * 2 : 16;
                        struct ia_rpt_link *a = realloc(r->links, nc * sizeof(*a));
                        if (!a) {
                                nomem = true;
                                break;
                        }
                        r->links = a;
                        cap = nc;
                }
                l = &r->links[r->nlinks++];
                memset(l, 0, sizeof(*l));
                l->image = find_id(by_file, r->nimg, from);
                l->kind = col_escaped(st, 1, &nomem);
                l->name = col_escaped(st, 2, &nomem);
                l->target = col_escaped(st, 3, &nomem);
                l->status = col_escaped(st, 4, &nomem);
                l->error = col_escaped(st, 5, &nomem);
                l->depth = sqlite3_column_int(st, 6);
                l->holder = col_null(st, 7) ? strdup("")
                                            : display_name(r, from, sqlite3_column_blob(st, 7),
                                                           (size_t)sqlite3_column_bytes(st, 7),
                                                           !col_null(st, 8), false);
                if (!l->holder)
                        nomem = true;
                if (!l->kind || !l->name || !l->status || nomem) {
                        nomem = true;
                        break;
                }
        }
        sqlite3_finalize(st);
        if (nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        if (rc != SQLITE_DONE)
                return ia_rpt_db_error(r, err, "reading broken links");
        return 0;
}

static int add_finding(struct ia_rpt *r, size_t *cap, const char *category, const char *source,
                       const char *name, const char *message)
{
        struct ia_rpt_finding *f;

        if (r->nfindings == *cap) {
                size_t nc = *cap ? *cap * 2 : 16;
                struct ia_rpt_finding *a = realloc(r->findings, nc * sizeof(*a));
                if (!a)
                        return -1;
                r->findings = a;
                *cap = nc;
        }
        f = &r->findings[r->nfindings++];
        f->category = strdup(category);
        f->source = strdup(source);
        f->name = name ? strdup(name) : NULL;
        f->message = strdup(message ? message : "");
        if (!f->category || !f->source || (name && !f->name) || !f->message)
                return -1;
        return 0;
}

static int cmp_finding(const void *a, const void *b)
{
        const struct ia_rpt_finding *x = a, *y = b;
        int c = strcmp(x->category, y->category);

        if (c)
                return c;
        c = strcmp(x->name ? x->name : "", y->name ? y->name : "");
        if (c)
                return c;
        return strcmp(x->message, y->message);
}

/*
 * Findings: the findings table, every image whose status is not ok and every
 * link that is not ok (deduplicated), each under a category.
 */
static int load_findings(struct ia_rpt *r, struct ia_error *err)
{
        sqlite3_stmt *st;
        size_t cap = 0;
        bool nomem = false;
        int rc;

        if (ia_rpt_prepare(r,
                           "SELECT x.code, x.message, f.path, f.member, f.id FROM findings x "
                           "LEFT JOIN files f ON f.id = x.file_id WHERE x.scan_id = ?1",
                           &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, r->scan.id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                char *code = col_escaped(st, 0, &nomem);
                char *msg = col_escaped(st, 1, &nomem);
                char *name = NULL;

                if (!col_null(st, 2)) {
                        name = display_name(
                            r, sqlite3_column_int64(st, 4), sqlite3_column_blob(st, 2),
                            (size_t)sqlite3_column_bytes(st, 2), !col_null(st, 3), false);
                        if (!name)
                                nomem = true;
                }
                if (!nomem &&
                    add_finding(r, &cap, code ? code : "unknown", "finding", name, msg) < 0)
                        nomem = true;
                free(code);
                free(msg);
                free(name);
                if (nomem)
                        break;
        }
        sqlite3_finalize(st);
        if (nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        if (rc != SQLITE_DONE)
                return ia_rpt_db_error(r, err, "reading findings");
        for (size_t i = 0; i < r->nimg; i++) {
                const struct ia_rpt_image *m = &r->img[i];
                char cat[96];

                if (strcmp(m->status, "ok") == 0)
                        continue;
                snprintf(cat, sizeof(cat), "image-%s", m->status);
                if (add_finding(r, &cap, cat, "image", m->name, m->error ? m->error : m->status) <
                    0)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < r->nlinks; i++) {
                const struct ia_rpt_link *l = &r->links[i];
                struct ia_rbuf mb;
                char cat[96];
                int bad;

                snprintf(cat, sizeof(cat), "link-%s", l->status);
                ia_rbuf_init(&mb);
                ia_rbuf_addf(&mb, "%s '%s'", l->kind, l->name);
                if (l->error)
                        ia_rbuf_addf(&mb, ": %s", l->error);
                bad = mb.nomem || add_finding(r, &cap, cat, "link", l->holder, mb.buf) < 0;
                ia_rbuf_release(&mb);
                if (bad)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        if (r->nfindings > 1)
                qsort(r->findings, r->nfindings, sizeof(*r->findings), cmp_finding);
        return 0;
}

/* ---- trend ---- */

static int load_prev(struct ia_rpt *r, int64_t id, struct ia_error *err)
{
        sqlite3_stmt *st;
        size_t cap = 0;
        bool nomem = false;
        int rc;

        if (load_scan(r, id, &r->prev_scan, err) < 0)
                return -1;
        /* a running or aborted scan holds a part of the store: growth from it is meaningless */
        if (strcmp(r->prev_scan.status, "complete") != 0)
                return ia_error_set(err, IA_ERR_USAGE,
                                    "--since: scan %" PRId64
                                    " is %s, not complete; growth is measured from a complete "
                                    "scan",
                                    id, r->prev_scan.status);
        r->has_prev = true;
        if (ia_rpt_prepare(r,
                           "SELECT f.path, f.member, "
                           "coalesce(i.allocated_bytes, 0) + coalesce(x.allocated, 0), "
                           "i.virtual_size, f.id FROM images i JOIN files f ON f.id = i.file_id "
                           "LEFT JOIN (" IA_RPT_DATA_FILES ") x ON x.image_id = i.id "
                           "WHERE i.scan_id = ?1",
                           &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                struct ia_rpt_prev *p;

                if (r->nprev == cap) {
                        size_t nc = cap ? cap * 2 : 64;
                        struct ia_rpt_prev *a = realloc(r->prev, nc * sizeof(*a));
                        if (!a) {
                                nomem = true;
                                break;
                        }
                        r->prev = a;
                        cap = nc;
                }
                p = &r->prev[r->nprev++];
                memset(p, 0, sizeof(*p));
                p->path = col_bytes(st, 0, &p->path_len, &nomem);
                p->member = col_bytes(st, 1, &p->member_len, &nomem);
                p->allocated = col_u64(st, 2);
                p->virtual_size = col_u64(st, 3);
                if (nomem || !p->path)
                        break;
                p->name = display_name(r, sqlite3_column_int64(st, 4), p->path, p->path_len,
                                       p->member, false);
                p->dir = display_name(r, sqlite3_column_int64(st, 4), p->path, p->path_len,
                                      p->member, true);
                if (!p->name || !p->dir) {
                        nomem = true;
                        break;
                }
        }
        sqlite3_finalize(st);
        if (nomem || rc == SQLITE_ROW)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        if (rc != SQLITE_DONE)
                return ia_rpt_db_error(r, err, "reading the earlier scan");
        return 0;
}

static int load_history(struct ia_rpt *r, struct ia_error *err)
{
        sqlite3_stmt *st;
        bool nomem = false;
        int rc;

        if (ia_rpt_prepare(r,
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
                           &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, r->scan.id);
        r->hist = calloc(60, sizeof(*r->hist));
        if (!r->hist) {
                sqlite3_finalize(st);
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && r->nhist < 60) {
                struct ia_rpt_hist *h = &r->hist[r->nhist++];

                h->id = sqlite3_column_int64(st, 0);
                h->started_at = col_text(st, 1, &nomem);
                h->images = col_u64(st, 2);
                h->virtual_size = col_u64(st, 3);
                h->allocated = col_u64(st, 4);
        }
        sqlite3_finalize(st);
        if (nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        if (rc != SQLITE_DONE && rc != SQLITE_ROW)
                return ia_rpt_db_error(r, err, "reading the scan history");
        return 0;
}

int ia_rpt_load(struct ia_rpt *r, const char *scan_arg, const char *since, bool want_trend,
                struct ia_error *err)
{
        struct id_idx *by_id = NULL, *by_file = NULL;
        int64_t id = 0, prev = 0;
        int ret = -1;

        if (scan_arg) {
                if (parse_id(scan_arg, &id, "--scan", err) < 0)
                        return -1;
        } else {
                if (query_i64(r, "SELECT coalesce(max(id), 0) FROM scans WHERE status = 'complete'",
                              &id, err) < 0)
                        return -1;
                if (id == 0)
                        return ia_error_set(err, IA_ERR_MISSING,
                                            "database '%s' holds no complete scan yet", r->db_path);
        }
        if (load_scan(r, id, &r->scan, err) < 0)
                return -1;
        if (strcmp(r->scan.status, "running") == 0)
                return ia_error_set(err, IA_ERR_USAGE,
                                    "scan %" PRId64 " is still running (or was killed: the next "
                                    "scan marks it aborted); its figures are not final",
                                    id);
        if (load_images(r, err) < 0)
                return -1;
        by_id = malloc((r->nimg + 1) * sizeof(*by_id));
        by_file = malloc((r->nimg + 1) * sizeof(*by_file));
        if (!by_id || !by_file) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto out;
        }
        for (size_t i = 0; i < r->nimg; i++) {
                by_id[i] = (struct id_idx){r->img[i].id, i};
                by_file[i] = (struct id_idx){r->img[i].file_id, i};
        }
        qsort(by_id, r->nimg, sizeof(*by_id), cmp_id_idx);
        qsort(by_file, r->nimg, sizeof(*by_file), cmp_id_idx);
        if (load_space(r, by_id, err) < 0 || load_graph(r, by_id, by_file, err) < 0 ||
            load_links(r, by_file, err) < 0 || load_findings(r, err) < 0)
                goto out;
        if (want_trend) {
                if (pick_since(r, since, &prev, err) < 0)
                        goto out;
                if (prev >= r->scan.id) {
                        ia_error_set(err, IA_ERR_USAGE,
                                     "--since %" PRId64 " is not a scan before the reported one "
                                     "(%" PRId64 ")",
                                     prev, r->scan.id);
                        goto out;
                }
                if (prev && load_prev(r, prev, err) < 0)
                        goto out;
                if (load_history(r, err) < 0)
                        goto out;
        }
        ret = 0;
out:
        free(by_id);
        free(by_file);
        return ret;
}
