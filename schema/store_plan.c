/*
 * The previous complete scan, for the scan's planner (see store_plan.h):
 * every query the planner makes, over the tables of schema/README.md.
 */
#define _GNU_SOURCE
#include "store_plan.h"

#include <stdlib.h>
#include <string.h>

#include "store_sql.h"

#include "banned.h"

enum plan_query {
        Q_FILES,
        Q_IMAGE,
        Q_LINKS,
        Q_OK_LINKS,
        Q_LINK_TARGETS,
        Q_FINDINGS,
        Q_MEMBERS,
        Q_PROBLEMS,
        Q_IMAGES,
        Q_LAYERS,
        Q_COUNT
};

/* ?1 is always the previous scan's id, ?2 the image's (or file's) id or a version. */
static const char *const plan_sql[Q_COUNT] = {
    [Q_FILES] = "SELECT f.id, f.path, f.dev, f.ino, f.size, f.mtime_ns, "
                "f.ctime_ns, sf.kind FROM scan_files sf JOIN files f "
                "ON f.id = sf.file_id WHERE sf.scan_id = ?1 "
                "AND f.archive_id IS NULL AND f.mtime_ns IS NOT NULL",
    [Q_IMAGE] = "SELECT id, status, format, recognised_by FROM images "
                "WHERE scan_id = ?1 AND file_id = ?2",
    /* every file of the chain: its identity, and whether it is a member */
    [Q_LINKS] = "SELECT l.status, f.path, f.dev, f.ino, f.size, f.mtime_ns, "
                "f.ctime_ns, f.archive_id FROM links l LEFT JOIN files f "
                "ON f.id = l.target_file_id WHERE l.image_id = ?2",
    [Q_OK_LINKS] = "SELECT l.kind, f.path, ti.format FROM links l "
                   "JOIN files f ON f.id = l.target_file_id "
                   "LEFT JOIN images ti ON ti.scan_id = l.scan_id "
                   "AND ti.file_id = l.target_file_id "
                   "WHERE l.image_id = ?2 AND l.status = 'ok'",
    [Q_LINK_TARGETS] = "SELECT status, target_file_id FROM links WHERE image_id = ?2",
    [Q_FINDINGS] = "SELECT file_id, code, message FROM findings WHERE image_id = ?2",
    [Q_MEMBERS] = "SELECT f.id, f.archive_id FROM (SELECT file_id FROM scan_files "
                  "WHERE scan_id = ?1 UNION SELECT file_id FROM entries WHERE scan_id = ?1 "
                  "AND file_id IS NOT NULL UNION SELECT file_id FROM findings "
                  "WHERE scan_id = ?1 AND file_id IS NOT NULL) x "
                  "JOIN files f ON f.id = x.file_id WHERE f.archive_id IS NOT NULL",
    [Q_PROBLEMS] = "SELECT file_id FROM entries WHERE scan_id = ?1 AND kind = 'unreadable' "
                   "AND file_id IS NOT NULL UNION ALL SELECT file_id FROM findings "
                   "WHERE scan_id = ?1 AND code IN ('archive-error', 'archive-limit')",
    [Q_IMAGES] = "SELECT id, file_id, status, virtual_size IS NOT NULL FROM images "
                 "WHERE scan_id = ?1 ORDER BY id",
    /* driven by the layers (one key lookup in scan_files each), not by the
     * previous scan's files, which are many more in a store of small files */
    [Q_LAYERS] = "SELECT id, file_id, format, deps FROM layers l "
                 "WHERE kind = 'layer' AND tool_version = ?2 AND EXISTS "
                 "(SELECT 1 FROM scan_files sf WHERE sf.scan_id = ?1 "
                 "AND sf.file_id = l.file_id)",
};

struct ia_plan {
        sqlite3 *db;
        int64_t scan_id;
        sqlite3_stmt *st[Q_COUNT]; /* prepared on first use, reset for each */
};

const char *ia_store_errmsg(struct ia_store *s)
{
        return sqlite3_errmsg(ia_store_db(s));
}

void ia_plan_last_complete(struct ia_store *s, struct ia_plan_scan *out)
{
        sqlite3_stmt *st;

        memset(out, 0, sizeof(*out));
        if (sqlite3_prepare_v2(ia_store_db(s),
                               "SELECT id, started_ns, CAST(strftime('%s', started_at) AS INTEGER) "
                               "FROM scans WHERE status = 'complete' ORDER BY id DESC LIMIT 1",
                               -1, &st, NULL) != SQLITE_OK)
                return;
        if (sqlite3_step(st) == SQLITE_ROW) {
                out->id = sqlite3_column_int64(st, 0);
                out->has_started_ns = sqlite3_column_type(st, 1) == SQLITE_INTEGER;
                out->started_ns = sqlite3_column_int64(st, 1);
                out->started_sec = sqlite3_column_int64(st, 2); /* 0 if not a date */
        }
        sqlite3_finalize(st);
}

bool ia_plan_same_roots(struct ia_store *s, int64_t scan_id, char *const *roots, size_t nroots,
                        const char *const *allow, size_t nallow)
{
        sqlite3 *db = ia_store_db(s);
        sqlite3_stmt *st;
        int64_t count = -1;
        bool ok = true;

        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM scan_roots WHERE scan_id = ?1", -1, &st,
                               NULL) != SQLITE_OK)
                return false;
        sqlite3_bind_int64(st, 1, scan_id);
        if (sqlite3_step(st) == SQLITE_ROW)
                count = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (count != (int64_t)(nroots + nallow))
                return false;
        if (sqlite3_prepare_v2(db,
                               "SELECT count(*) FROM scan_roots WHERE scan_id = ?1 AND role = ?2 "
                               "AND path = ?3",
                               -1, &st, NULL) != SQLITE_OK)
                return false;
        for (size_t i = 0; ok && i < nroots + nallow; i++) {
                const char *arg = i < nroots ? roots[i] : allow[i - nroots];
                int64_t times = 0; /* a root may be given more than once */

                for (size_t k = i < nroots ? 0 : nroots;
                     k < (i < nroots ? nroots : nroots + nallow); k++)
                        if (strcmp(k < nroots ? roots[k] : allow[k - nroots], arg) == 0)
                                times++;
                sqlite3_reset(st);
                sqlite3_bind_int64(st, 1, scan_id);
                sqlite3_bind_text(st, 2, i < nroots ? "scan" : "allow", -1, SQLITE_STATIC);
                ia_store_bind_path(st, 3, arg);
                ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) == times;
        }
        sqlite3_finalize(st);
        return ok;
}

bool ia_plan_same_version(struct ia_store *s, int64_t scan_id, const char *version)
{
        sqlite3_stmt *st;
        bool same = false;

        if (sqlite3_prepare_v2(ia_store_db(s), "SELECT tool_version FROM scans WHERE id = ?1", -1,
                               &st, NULL) != SQLITE_OK)
                return false;
        sqlite3_bind_int64(st, 1, scan_id);
        if (sqlite3_step(st) == SQLITE_ROW) {
                const unsigned char *v = sqlite3_column_text(st, 0);

                same = v && strcmp((const char *)v, version) == 0;
        }
        sqlite3_finalize(st);
        return same;
}

struct ia_plan *ia_plan_new(struct ia_store *s, int64_t scan_id)
{
        struct ia_plan *p = calloc(1, sizeof(*p));

        if (!p)
                return NULL;
        p->db = ia_store_db(s);
        p->scan_id = scan_id;
        return p;
}

void ia_plan_free(struct ia_plan *p)
{
        if (!p)
                return;
        for (int i = 0; i < Q_COUNT; i++)
                sqlite3_finalize(p->st[i]);
        free(p);
}

/*
 * The row queries: each has a decoder that turns one row into the struct or
 * arguments its caller's fn takes, and calls fn; each_row runs the loop
 * once for all of them.
 */
union plan_fn {
        int (*file)(const struct ia_plan_file *f, void *opaque);
        int (*image)(const struct ia_plan_image *im, void *opaque);
        int (*link)(const struct ia_plan_link *l, void *opaque);
        int (*finding)(int64_t file_id, const char *code, const char *message, void *opaque);
        int (*member)(int64_t id, int64_t archive_id, void *opaque);
        int (*problem)(int64_t file_id, void *opaque);
        int (*each_image)(int64_t id, int64_t file_id, const char *status, bool opened,
                          void *opaque);
        int (*layer)(int64_t id, int64_t file_id, const char *format, const char *deps,
                     void *opaque);
};

static const char *text(sqlite3_stmt *st, int col)
{
        return (const char *)sqlite3_column_text(st, col);
}

/* Columns 1 to 6 of Q_FILES and Q_LINKS: path, dev, ino, size, mtime_ns, ctime_ns. */
static struct ia_plan_ident ident(sqlite3_stmt *st)
{
        return (struct ia_plan_ident){
            .path = sqlite3_column_blob(st, 1),
            .path_len = (size_t)sqlite3_column_bytes(st, 1),
            .dev = (uint64_t)sqlite3_column_int64(st, 2),
            .ino = (uint64_t)sqlite3_column_int64(st, 3),
            .size = (uint64_t)sqlite3_column_int64(st, 4),
            .mtime_ns = sqlite3_column_int64(st, 5),
            .ctime_ns = sqlite3_column_int64(st, 6),
        };
}

static int file_row(sqlite3_stmt *st, union plan_fn fn, void *opaque)
{
        struct ia_plan_file f = {
            .id = sqlite3_column_int64(st, 0),
            .ident = ident(st),
            .kind = text(st, 7),
        };

        return fn.file(&f, opaque);
}

static int image_row(sqlite3_stmt *st, union plan_fn fn, void *opaque)
{
        struct ia_plan_image im = {
            .id = sqlite3_column_int64(st, 0),
            .status = text(st, 1),
            .format = text(st, 2),
            .recognised_by = text(st, 3),
        };

        return fn.image(&im, opaque);
}

static int link_row(sqlite3_stmt *st, union plan_fn fn, void *opaque)
{
        struct ia_plan_link l = {
            .status = text(st, 0),
            .has_target = sqlite3_column_type(st, 1) != SQLITE_NULL,
            .ident = ident(st),
            .target_in_archive = sqlite3_column_type(st, 7) != SQLITE_NULL,
        };

        return fn.link(&l, opaque);
}

static int ok_link_row(sqlite3_stmt *st, union plan_fn fn, void *opaque)
{
        struct ia_plan_link l = {
            .kind = text(st, 0),
            .status = "ok",
            .has_target = true,
            .ident = {sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1)},
            .target_format = text(st, 2),
        };

        return fn.link(&l, opaque);
}

static int link_target_row(sqlite3_stmt *st, union plan_fn fn, void *opaque)
{
        struct ia_plan_link l = {
            .status = text(st, 0),
            .target_file_id = sqlite3_column_int64(st, 1),
        };

        return fn.link(&l, opaque);
}

static int finding_row(sqlite3_stmt *st, union plan_fn fn, void *opaque)
{
        return fn.finding(sqlite3_column_int64(st, 0), text(st, 1), text(st, 2), opaque);
}

static int member_row(sqlite3_stmt *st, union plan_fn fn, void *opaque)
{
        return fn.member(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), opaque);
}

static int problem_row(sqlite3_stmt *st, union plan_fn fn, void *opaque)
{
        return fn.problem(sqlite3_column_int64(st, 0), opaque);
}

static int each_image_row(sqlite3_stmt *st, union plan_fn fn, void *opaque)
{
        return fn.each_image(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), text(st, 2),
                             sqlite3_column_int(st, 3) != 0, opaque);
}

static int layer_row(sqlite3_stmt *st, union plan_fn fn, void *opaque)
{
        return fn.layer(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), text(st, 2),
                        text(st, 3), opaque);
}

static int (*const plan_row[Q_COUNT])(sqlite3_stmt *st, union plan_fn fn, void *opaque) = {
    [Q_FILES] = file_row,
    [Q_IMAGE] = image_row,
    [Q_LINKS] = link_row,
    [Q_OK_LINKS] = ok_link_row,
    [Q_LINK_TARGETS] = link_target_row,
    [Q_FINDINGS] = finding_row,
    [Q_MEMBERS] = member_row,
    [Q_PROBLEMS] = problem_row,
    [Q_IMAGES] = each_image_row,
    [Q_LAYERS] = layer_row,
};

/*
 * Runs query q over the previous scan (?1), ?2 bound to id when nonzero, or
 * to the text arg2 when that is given, and hands each row to fn through the
 * query's decoder.  0 at the end or when fn stopped, -1 when SQLite failed.
 */
static int each_row(struct ia_plan *p, enum plan_query q, int64_t id, const char *arg2,
                    union plan_fn fn, void *opaque)
{
        sqlite3_stmt *st = p->st[q];
        int rc = SQLITE_DONE, stop = 0;

        if (!st) {
                if (sqlite3_prepare_v2(p->db, plan_sql[q], -1, &st, NULL) != SQLITE_OK)
                        return -1;
                p->st[q] = st;
        } else {
                sqlite3_reset(st);
        }
        if (sqlite3_bind_parameter_index(st, "?1"))
                sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, "?1"), p->scan_id);
        if (id && sqlite3_bind_parameter_index(st, "?2"))
                sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, "?2"), id);
        if (arg2)
                sqlite3_bind_text(st, 2, arg2, -1, SQLITE_TRANSIENT);
        while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW)
                stop = plan_row[q](st, fn, opaque);
        sqlite3_reset(st);
        return stop || rc == SQLITE_DONE ? 0 : -1;
}

int ia_plan_each_file(struct ia_plan *p, int (*fn)(const struct ia_plan_file *f, void *opaque),
                      void *opaque)
{
        return each_row(p, Q_FILES, 0, NULL, (union plan_fn){.file = fn}, opaque);
}

int ia_plan_image_of(struct ia_plan *p, int64_t file_id,
                     int (*fn)(const struct ia_plan_image *im, void *opaque), void *opaque)
{
        return each_row(p, Q_IMAGE, file_id, NULL, (union plan_fn){.image = fn}, opaque);
}

int ia_plan_each_link(struct ia_plan *p, enum ia_plan_links which, int64_t image_id,
                      int (*fn)(const struct ia_plan_link *l, void *opaque), void *opaque)
{
        static const enum plan_query q[] = {
            [IA_LINKS_ALL] = Q_LINKS,
            [IA_LINKS_OK] = Q_OK_LINKS,
            [IA_LINKS_TARGETS] = Q_LINK_TARGETS,
        };

        return each_row(p, q[which], image_id, NULL, (union plan_fn){.link = fn}, opaque);
}

int ia_plan_each_finding(struct ia_plan *p, int64_t image_id,
                         int (*fn)(int64_t file_id, const char *code, const char *message,
                                   void *opaque),
                         void *opaque)
{
        return each_row(p, Q_FINDINGS, image_id, NULL, (union plan_fn){.finding = fn}, opaque);
}

int ia_plan_each_member(struct ia_plan *p, int (*fn)(int64_t id, int64_t archive_id, void *opaque),
                        void *opaque)
{
        return each_row(p, Q_MEMBERS, 0, NULL, (union plan_fn){.member = fn}, opaque);
}

int ia_plan_each_archive_problem(struct ia_plan *p, int (*fn)(int64_t file_id, void *opaque),
                                 void *opaque)
{
        return each_row(p, Q_PROBLEMS, 0, NULL, (union plan_fn){.problem = fn}, opaque);
}

int ia_plan_each_image(struct ia_plan *p,
                       int (*fn)(int64_t id, int64_t file_id, const char *status, bool opened,
                                 void *opaque),
                       void *opaque)
{
        return each_row(p, Q_IMAGES, 0, NULL, (union plan_fn){.each_image = fn}, opaque);
}

int ia_plan_each_layer(struct ia_plan *p, const char *version,
                       int (*fn)(int64_t id, int64_t file_id, const char *format, const char *deps,
                                 void *opaque),
                       void *opaque)
{
        return each_row(p, Q_LAYERS, 0, version, (union plan_fn){.layer = fn}, opaque);
}
