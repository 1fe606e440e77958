/*
 * Loading the images of a scan for `imgaudit report` (see rpt.h): their
 * display names and space figures, the backing graph, broken links,
 * findings, and the earlier scan and history the trend needs.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rbuf.h"
#include "rpt_int.h"
#include "banned.h"

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

int ia_rpt_cmp_id_idx(const void *a, const void *b)
{
        const struct id_idx *x = a, *y = b;

        return x->id < y->id ? -1 : x->id > y->id;
}

static long find_id(const struct id_idx *v, size_t n, int64_t id)
{
        struct id_idx key = {id, 0};
        const struct id_idx *p = bsearch(&key, v, n, sizeof(*v), ia_rpt_cmp_id_idx);

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

int ia_rpt_load_images(struct ia_rpt *r, struct ia_error *err)
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

int ia_rpt_load_space(struct ia_rpt *r, const struct id_idx *by_id, struct ia_error *err)
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

/*
 * The orphans' evidence: the files a VM definition of this scan names and
 * whether it read any (schema 5), and the files images backed onto in an
 * earlier scan (a base whose last child went is a base still).
 */
static int load_users(struct ia_rpt *r, const struct id_idx *by_file, struct ia_error *err)
{
        sqlite3_stmt *st;

        if (flag_by_file(r, by_file,
                         "SELECT DISTINCT target_file_id FROM links WHERE scan_id < ?1 "
                         "AND depth = 0 AND kind = 'backing' AND status = 'ok' "
                         "AND target_file_id IS NOT NULL",
                         offsetof(struct ia_rpt_image, was_base), "reading earlier links", err) < 0)
                return -1;
        if (r->db_schema < 5)
                return 0;
        if (ia_rpt_prepare(r, "SELECT count(*) FROM vms WHERE scan_id = ?1", &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, r->scan.id);
        r->vm_defs = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0;
        sqlite3_finalize(st);
        return flag_by_file(r, by_file,
                            "SELECT file_id FROM vm_disks WHERE scan_id = ?1 AND file_id IS NOT "
                            "NULL UNION SELECT file_id FROM vm_media WHERE scan_id = ?1 AND "
                            "file_id IS NOT NULL",
                            offsetof(struct ia_rpt_image, used_by_vm), "reading VM disks", err);
}

int ia_rpt_load_graph(struct ia_rpt *r, const struct id_idx *by_id, const struct id_idx *by_file,
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
        if (load_users(r, by_file, err) < 0)
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
int ia_rpt_load_links(struct ia_rpt *r, const struct id_idx *by_file, struct ia_error *err)
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
 * Entries the scan could not read (a file it could not open, a directory it
 * could not list), unless an image row of the scan already tells: category
 * "unreadable-REASON", the whole path and the whole message.
 */
static int load_unreadable(struct ia_rpt *r, size_t *cap, struct ia_error *err)
{
        sqlite3_stmt *st;
        bool nomem = false;
        int rc;

        if (ia_rpt_prepare(
                r,
                "SELECT e.path, e.reason, e.detail, coalesce(e.file_id, 0) FROM entries e "
                "WHERE e.scan_id = ?1 AND e.kind = 'unreadable' AND NOT EXISTS "
                "(SELECT 1 FROM images i WHERE i.scan_id = e.scan_id "
                "AND i.file_id = e.file_id)",
                &st, err) < 0)
                return -1;
        sqlite3_bind_int64(st, 1, r->scan.id);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                char *reason = col_escaped(st, 1, &nomem);
                char *detail = col_escaped(st, 2, &nomem);
                char *name = display_name(r, sqlite3_column_int64(st, 3),
                                          (const char *)sqlite3_column_blob(st, 0),
                                          (size_t)sqlite3_column_bytes(st, 0), false, false);
                struct ia_rbuf cat;

                ia_rbuf_init(&cat);
                ia_rbuf_addf(&cat, "unreadable-%s", reason ? reason : "io");
                if (!name || cat.nomem ||
                    add_finding(r, cap, cat.buf, "entry", name,
                                detail ? detail : (reason ? reason : "unreadable")) < 0)
                        nomem = true;
                ia_rbuf_release(&cat);
                free(reason);
                free(detail);
                free(name);
                if (nomem)
                        break;
        }
        sqlite3_finalize(st);
        if (nomem)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        if (rc != SQLITE_DONE)
                return ia_rpt_db_error(r, err, "reading unreadable entries");
        return 0;
}

/*
 * Findings: the findings table, every image whose status is not ok and every
 * link that is not ok (deduplicated), every entry that could not be read,
 * each under a category.
 */
int ia_rpt_load_findings(struct ia_rpt *r, struct ia_error *err)
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
        if (load_unreadable(r, &cap, err) < 0)
                return -1;
        if (r->nfindings > 1)
                qsort(r->findings, r->nfindings, sizeof(*r->findings), cmp_finding);
        return 0;
}

/* ---- trend ---- */

int ia_rpt_load_prev(struct ia_rpt *r, int64_t id, struct ia_error *err)
{
        sqlite3_stmt *st;
        size_t cap = 0;
        bool nomem = false;
        int rc;

        if (ia_rpt_load_scan(r, id, &r->prev_scan, err) < 0)
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

int ia_rpt_load_history(struct ia_rpt *r, struct ia_error *err)
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
