/*
 * The scan database's one writer thread, and the records it writes (see
 * store.h for the contract, schema/README.md for the tables; opening and
 * migrations are in store_open.c).
 *
 * Workers never touch SQLite: they build records and ia_store_put() them on a
 * bounded queue.  The writer executes prepared statements inside
 * transactions of many records (committed every IA_BATCH_ROWS rows or when
 * the queue runs dry), which is what makes a million map rows a second
 * possible.  The first SQLite error (SQLITE_FULL: disk full; SQLITE_CORRUPT,
 * SQLITE_IOERR, ...) stops the writer for good; later records are dropped so
 * that workers never block, and the scan ends with exit status 3.
 */
#define _GNU_SOURCE
#include "store_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "schema.h"
#include "banned.h"

#define IA_BATCH_ROWS 50000
#define IA_IDLE_ROWS  20000 /* a commit when the queue runs dry: not for fewer rows */

#define IMAGE_COLUMNS                                                                              \
        "id, scan_id, file_id, format, format_probed, virtual_size, file_size, allocated_bytes, "  \
        "cluster_size, dirty, corrupt, encrypted, snapshots, external_data, pending_log, "         \
        "backing, backing_fmt, chain_depth, status, error, own_data_bytes, backing_data_bytes, "   \
        "zero_bytes, unallocated_bytes, compressed_bytes, unknown_bytes, mapped_bytes, map_rows, " \
        "recognised_by"

/*
 * Every statement that may insert more than one row says OR ROLLBACK (or OR
 * IGNORE).  With the default, ABORT, SQLite must be able to undo the one
 * statement alone, so it copies each page the statement changes that the
 * transaction had already changed into a statement journal, a temporary file
 * beyond 64 KiB: a first scan of 200,000 small files wrote 120,000 pages to
 * /var/tmp that way, three times its database.  Any failed statement stops
 * the writer, which rolls the whole transaction back anyway (writer_main).
 */
static const char *const stmt_sql[ST_COUNT] = {
    [ST_DIR] = "INSERT INTO dirs (scan_id, path, allocated) VALUES (?1, ?2, ?3)",
    [ST_ENTRY] = "INSERT INTO entries (scan_id, path, kind, reason, detail, file_id) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_FINDING] = "INSERT INTO findings (scan_id, image_id, file_id, code, message) "
                   "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_OVF] = "INSERT INTO ovf_disks (scan_id, archive_file_id, disk_id, href, capacity, format, "
               "member_file_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    /* the carried-over image shares its pieces (or map rows) and chain_layers rows */
    [ST_REUSE_IMAGE] =
        "INSERT OR ROLLBACK INTO images (" IMAGE_COLUMNS ", reused_from, map_image_id) "
        "SELECT ?2, ?3, file_id, format, format_probed, virtual_size, "
        "file_size, allocated_bytes, cluster_size, dirty, corrupt, encrypted, snapshots, "
        "external_data, pending_log, backing, backing_fmt, chain_depth, status, error, "
        "own_data_bytes, backing_data_bytes, zero_bytes, unallocated_bytes, compressed_bytes, "
        "unknown_bytes, mapped_bytes, map_rows, recognised_by, ?1, coalesce(map_image_id, id) "
        "FROM images "
        "WHERE id = ?1 RETURNING map_rows",
    [ST_REUSE_LINKS] =
        "INSERT OR ROLLBACK INTO links (scan_id, image_id, depth, from_file_id, kind, name, "
        "target_file_id, target_path, status, error) SELECT ?3, ?2, depth, "
        "from_file_id, kind, name, target_file_id, target_path, status, error "
        "FROM links WHERE image_id = ?1",
    [ST_REUSE_FINDINGS] =
        "INSERT OR ROLLBACK INTO findings (scan_id, image_id, file_id, code, message) "
        "SELECT ?3, ?2, file_id, code, message FROM findings "
        "WHERE image_id = ?1",
};

/* ---- helpers ---- */

bool ia_utf8_valid(const char *str, size_t n)
{
        const unsigned char *s = (const unsigned char *)str;
        size_t i = 0;

        while (i < n) {
                unsigned c;
                size_t k;
                uint32_t cp;
                uint64_t w;

                /* ASCII (nearly every path) eight bytes at a time */
                while (n - i >= 8 && (memcpy(&w, s + i, 8), !(w & 0x8080808080808080ull)))
                        i += 8;
                if (i == n)
                        break;
                c = s[i];

                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf) {
                        k = 1;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        k = 2;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        k = 3;
                        cp = c & 0x07;
                } else {
                        return false;
                }
                if (n - i <= k)
                        return false;
                for (size_t j = 1; j <= k; j++) {
                        if ((s[i + j] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + j] & 0x3f);
                }
                if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                    (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
                        return false;
                i += k + 1;
        }
        return true;
}

int ia_store_bind_path(sqlite3_stmt *st, int idx, const char *path)
{
        size_t n;

        if (!path)
                return sqlite3_bind_null(st, idx);
        n = strlen(path);
        if (ia_utf8_valid(path, n))
                return sqlite3_bind_text(st, idx, path, (int)n, SQLITE_STATIC);
        return sqlite3_bind_blob(st, idx, path, (int)n, SQLITE_STATIC);
}

void ia_store_finalize_statements(struct ia_store *s)
{
        for (int i = 0; i < ST_COUNT; i++)
                sqlite3_finalize(s->st[i]);
        for (int k = 0; k < M_COUNT; k++)
                multi_finalize(&s->m[k]);
}

/* ---- records ---- */

struct ia_rec *ia_rec_new_chunk(enum ia_rec_type type, size_t cap)
{
        struct ia_rec *r = calloc(1, sizeof(*r));

        if (!r)
                return NULL;
        r->type = type;
        if (cap > IA_MAP_CHUNK)
                cap = IA_MAP_CHUNK;
        if (type == IA_REC_RUNS) {
                r->u.runs.rows = malloc(cap * sizeof(*r->u.runs.rows));
                r->u.runs.cap = cap;
                if (r->u.runs.rows)
                        return r;
        } else if (type == IA_REC_PIECES) {
                r->u.pieces.pieces = malloc(cap * sizeof(*r->u.pieces.pieces));
                r->u.pieces.cap = cap;
                if (r->u.pieces.pieces)
                        return r;
        }
        free(r);
        return NULL;
}

struct ia_rec *ia_rec_new(enum ia_rec_type type)
{
        struct ia_rec *r;

        if (type == IA_REC_RUNS || type == IA_REC_PIECES)
                return ia_rec_new_chunk(type, IA_MAP_CHUNK);
        r = calloc(1, sizeof(*r));
        if (r)
                r->type = type;
        return r;
}

bool ia_rec_chunk_room(struct ia_rec *r)
{
        size_t *n = r->type == IA_REC_RUNS ? &r->u.runs.n : &r->u.pieces.n;
        size_t *cap = r->type == IA_REC_RUNS ? &r->u.runs.cap : &r->u.pieces.cap;
        size_t size =
            r->type == IA_REC_RUNS ? sizeof(struct ia_map_row) : sizeof(struct ia_piece_row);
        void **v = r->type == IA_REC_RUNS ? (void **)&r->u.runs.rows : (void **)&r->u.pieces.pieces;
        size_t nc;
        void *nv;

        if (*n < *cap)
                return true;
        if (*cap >= IA_MAP_CHUNK)
                return false;
        nc = *cap * 2 > IA_MAP_CHUNK ? IA_MAP_CHUNK : *cap * 2;
        nv = realloc(*v, nc * size);
        if (!nv)
                return false;
        *v = nv;
        *cap = nc;
        return true;
}

void ia_rec_free(struct ia_rec *r)
{
        if (!r)
                return;
        switch (r->type) {
        case IA_REC_FILE:
                if (!r->u.file.path_borrowed)
                        free(r->u.file.path);
                free(r->u.file.member);
                break;
        case IA_REC_ENTRY:
                free(r->u.entry.path);
                free(r->u.entry.reason);
                free(r->u.entry.detail);
                break;
        case IA_REC_IMAGE:
                free(r->u.image.format);
                free(r->u.image.backing);
                free(r->u.image.backing_fmt);
                free(r->u.image.status);
                free(r->u.image.error);
                break;
        case IA_REC_LINK:
                free(r->u.link.name);
                free(r->u.link.target_path);
                free(r->u.link.status);
                free(r->u.link.error);
                break;
        case IA_REC_FINDING:
                free(r->u.finding.code);
                free(r->u.finding.message);
                break;
        case IA_REC_OVF:
                free(r->u.ovf.disk_id);
                free(r->u.ovf.href);
                free(r->u.ovf.format);
                break;
        case IA_REC_LAYER:
                free(r->u.layer.format);
                free(r->u.layer.deps);
                break;
        case IA_REC_RUNS:
                free(r->u.runs.rows);
                break;
        case IA_REC_PIECES:
                free(r->u.pieces.pieces);
                break;
        case IA_REC_CHAIN:
                free(r->u.chain.rows);
                break;
        case IA_REC_REUSE_MEMBERS:
                free(r->u.reuse_members.file_ids);
                break;
        case IA_REC_SCAN_FILE:
        case IA_REC_REUSE:
                break;
        }
        free(r);
}

/* ---- the writer ---- */

static int step(struct ia_store *s, sqlite3_stmt *st, const char *what, struct ia_error *err)
{
        int rc = sqlite3_step(st);

        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE)
                return db_error(s, err, what);
        return 0;
}

/*
 * IA_REC_REUSE_MEMBERS: the files go into a temporary table and each table is
 * copied with one INSERT ... SELECT (one pass over the previous scan's rows
 * for all the archives together, whatever their number).
 */
static int reuse_members(struct ia_store *s, const struct ia_rec *r, uint64_t *rows,
                         struct ia_error *err)
{
        static const char *const copy[] = {
            "INSERT OR IGNORE INTO scan_files (scan_id, file_id, kind, reused) "
            "SELECT ?2, file_id, kind, 1 FROM scan_files "
            "WHERE scan_id = ?1 AND file_id IN temp.ia_reuse_files",
            "INSERT OR ROLLBACK INTO entries (scan_id, path, kind, reason, detail, file_id) "
            "SELECT ?2, path, kind, reason, detail, file_id FROM entries "
            "WHERE scan_id = ?1 AND file_id IN temp.ia_reuse_files",
            "INSERT OR ROLLBACK INTO findings (scan_id, image_id, file_id, code, message) "
            "SELECT ?2, NULL, file_id, code, message FROM findings "
            "WHERE scan_id = ?1 AND image_id IS NULL AND file_id IN temp.ia_reuse_files",
            "INSERT OR ROLLBACK INTO ovf_disks (scan_id, archive_file_id, disk_id, href, capacity, "
            "format, member_file_id) SELECT ?2, archive_file_id, disk_id, href, capacity, format, "
            "member_file_id FROM ovf_disks "
            "WHERE scan_id = ?1 AND archive_file_id IN temp.ia_reuse_files",
        };
        sqlite3_stmt *st = NULL;

        *rows = 0;
        if (exec(s, "CREATE TEMP TABLE IF NOT EXISTS ia_reuse_files (id INTEGER PRIMARY KEY)",
                 err) < 0 ||
            exec(s, "DELETE FROM temp.ia_reuse_files", err) < 0)
                return -1;
        if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO temp.ia_reuse_files VALUES (?1)", -1,
                               &st, NULL) != SQLITE_OK)
                return db_error(s, err, "carrying unchanged archives over");
        for (size_t i = 0; i < r->u.reuse_members.n; i++) {
                sqlite3_bind_int64(st, 1, r->u.reuse_members.file_ids[i]);
                if (step(s, st, "carrying unchanged archives over", err) < 0)
                        goto fail;
        }
        for (size_t k = 0; k < sizeof(copy) / sizeof(copy[0]); k++) {
                sqlite3_finalize(st);
                if (sqlite3_prepare_v2(s->db, copy[k], -1, &st, NULL) != SQLITE_OK) {
                        st = NULL;
                        db_error(s, err, "carrying unchanged archives over");
                        goto fail;
                }
                sqlite3_bind_int64(st, 1, r->u.reuse_members.prev_scan_id);
                sqlite3_bind_int64(st, 2, s->scan_id);
                if (step(s, st, "carrying unchanged archives over", err) < 0)
                        goto fail;
                *rows += (uint64_t)sqlite3_changes(s->db);
        }
        sqlite3_finalize(st);
        return exec(s, "DELETE FROM temp.ia_reuse_files", err);
fail:
        sqlite3_finalize(st);
        return -1;
}

/*
 * Execute one record; the number of rows it wrote in *rows.  1: the record
 * is pending (its row is not written yet, the writer frees it then), 0:
 * done, -1: failed.
 */
static int apply(struct ia_store *s, struct ia_rec *r, uint64_t *rows, struct ia_error *err)
{
        sqlite3_stmt *st;
        int64_t sid = s->scan_id;

        *rows = 1;
        switch (r->type) {
        case IA_REC_FILE:
                return multi_add_rec(s, &s->m[M_FILES], r, err);
        case IA_REC_SCAN_FILE:
                return multi_add_rec(s, &s->m[M_SCAN_FILES], r, err);
        case IA_REC_ENTRY:
                if (strcmp(r->u.entry.kind, "directory") == 0) {
                        st = s->st[ST_DIR];
                        sqlite3_bind_int64(st, 1, sid);
                        ia_store_bind_path(st, 2, r->u.entry.path);
                        sqlite3_bind_int64(st, 3, (int64_t)r->u.entry.allocated);
                        return step(s, st, "recording a directory", err);
                }
                st = s->st[ST_ENTRY];
                sqlite3_bind_int64(st, 1, sid);
                ia_store_bind_path(st, 2, r->u.entry.path);
                sqlite3_bind_text(st, 3, r->u.entry.kind, -1, SQLITE_STATIC);
                bind_text(st, 4, r->u.entry.reason);
                ia_store_bind_path(st, 5, r->u.entry.detail);
                bind_id(st, 6, r->u.entry.file_id);
                return step(s, st, "recording an entry", err);
        case IA_REC_IMAGE:
                if (r->u.image.has_space)
                        s->map_rows += r->u.image.map_rows;
                return multi_add_rec(s, &s->m[M_IMAGES], r, err);
        case IA_REC_LAYER:
                return multi_add_rec(s, &s->m[M_LAYERS], r, err);
        case IA_REC_RUNS:
                *rows = r->u.runs.n;
                for (size_t i = 0; i < r->u.runs.n; i++) {
                        struct pend_row *p = multi_add(s, &s->m[M_RUNS], r->u.runs.layer_id, err);

                        if (!p)
                                return -1;
                        p->u.run = r->u.runs.rows[i];
                }
                return 0;
        case IA_REC_PIECES:
                *rows = r->u.pieces.n;
                for (size_t i = 0; i < r->u.pieces.n; i++) {
                        struct pend_row *p =
                            multi_add(s, &s->m[M_PIECES], r->u.pieces.image_id, err);

                        if (!p)
                                return -1;
                        p->u.piece = r->u.pieces.pieces[i];
                }
                return 0;
        case IA_REC_CHAIN:
                *rows = r->u.chain.n;
                for (size_t i = 0; i < r->u.chain.n; i++) {
                        struct pend_row *p = multi_add(s, &s->m[M_CHAIN], r->u.chain.image_id, err);

                        if (!p)
                                return -1;
                        p->u.chain = r->u.chain.rows[i];
                }
                return 0;
        case IA_REC_LINK:
                return multi_add_rec(s, &s->m[M_LINKS], r, err);
        case IA_REC_FINDING:
                st = s->st[ST_FINDING];
                sqlite3_bind_int64(st, 1, sid);
                bind_id(st, 2, r->u.finding.image_id);
                bind_id(st, 3, r->u.finding.file_id);
                bind_text(st, 4, r->u.finding.code);
                ia_store_bind_path(st, 5, r->u.finding.message);
                return step(s, st, "recording a finding", err);
        case IA_REC_OVF:
                st = s->st[ST_OVF];
                sqlite3_bind_int64(st, 1, sid);
                sqlite3_bind_int64(st, 2, r->u.ovf.archive_file_id);
                bind_text(st, 3, r->u.ovf.disk_id);
                ia_store_bind_path(st, 4, r->u.ovf.href);
                sqlite3_bind_int64(st, 5, (int64_t)r->u.ovf.capacity);
                bind_text(st, 6, r->u.ovf.format);
                bind_id(st, 7, r->u.ovf.member_file_id);
                return step(s, st, "recording an OVF disk", err);
        case IA_REC_REUSE:
                /* the image row, sharing the map: its map rows are counted, not read */
                st = s->st[ST_REUSE_IMAGE];
                sqlite3_bind_int64(st, 1, r->u.reuse.old_image_id);
                sqlite3_bind_int64(st, 2, r->u.reuse.new_image_id);
                sqlite3_bind_int64(st, 3, sid);
                if (sqlite3_step(st) == SQLITE_ROW)
                        s->map_rows += (uint64_t)sqlite3_column_int64(st, 0);
                if (step(s, st, "carrying an unchanged image over", err) < 0)
                        return -1;
                for (int k = ST_REUSE_LINKS; k <= ST_REUSE_FINDINGS; k++) {
                        st = s->st[k];
                        sqlite3_bind_int64(st, 1, r->u.reuse.old_image_id);
                        sqlite3_bind_int64(st, 2, r->u.reuse.new_image_id);
                        sqlite3_bind_int64(st, 3, sid);
                        if (step(s, st, "carrying an unchanged image over", err) < 0)
                                return -1;
                }
                return 0;
        case IA_REC_REUSE_MEMBERS:
                /* its INSERT OR IGNORE into scan_files must come after this scan's own rows */
                if (flush_pending(s, err) < 0)
                        return -1;
                return reuse_members(s, r, rows, err);
        }
        return ia_error_set(err, IA_ERR_INTERNAL, "unknown record type %d", (int)r->type);
}

/* From now on records are dropped: wake producers waiting for room. */
static void set_failed(struct ia_store *s)
{
        pthread_mutex_lock(&s->lock);
        s->failed = true;
        pthread_cond_broadcast(&s->not_full);
        pthread_mutex_unlock(&s->lock);
}

static void *writer_main(void *arg)
{
        struct ia_store *s = arg;
        struct ia_rec *batch_head = NULL;
        bool in_tx = false;
        uint64_t batch = 0;

        for (;;) {
                struct ia_rec *r;
                uint64_t rows;
                bool idle, failed;
                int rc;

                if (!batch_head) {
                        /* Take everything queued in one go: producers rarely wait. */
                        pthread_mutex_lock(&s->lock);
                        while (s->len < s->wake_at && !s->stopping)
                                pthread_cond_wait(&s->not_empty, &s->lock);
                        batch_head = s->head;
                        s->head = s->tail = NULL;
                        s->len = 0;
                        pthread_cond_broadcast(&s->not_full);
                        pthread_mutex_unlock(&s->lock);
                        if (!batch_head)
                                break; /* stopping and drained */
                }
                r = batch_head;
                batch_head = r->next;
                idle = !batch_head;
                if (idle) {
                        pthread_mutex_lock(&s->lock);
                        idle = !s->head;
                        pthread_mutex_unlock(&s->lock);
                }
                failed = s->failed; /* set by this thread only (set_failed()) */
                if (failed) {
                        ia_rec_free(r);
                        continue;
                }
                if (s->delay_ms)
                        usleep(s->delay_ms * 1000u);
                if (!in_tx) {
                        if (exec(s, "BEGIN", &s->werr) < 0)
                                goto fail;
                        in_tx = true;
                }
                rc = apply(s, r, &rows, &s->werr);
                if (rc < 0)
                        goto fail;
                if (rc == 0)
                        ia_rec_free(r);
                batch += rows;
                if (batch >= IA_BATCH_ROWS || (idle && batch >= IA_IDLE_ROWS) || s->delay_ms) {
                        if (flush_pending(s, &s->werr) < 0 || exec(s, "COMMIT", &s->werr) < 0)
                                goto fail_norec;
                        in_tx = false;
                        batch = 0;
                }
                continue;
        fail:
                ia_rec_free(r);
        fail_norec:
                if (in_tx)
                        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                drop_pending(s);
                in_tx = false;
                set_failed(s);
        }
        if (in_tx && (flush_pending(s, &s->werr) < 0 || exec(s, "COMMIT", &s->werr) < 0)) {
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                drop_pending(s);
                set_failed(s);
        }
        return NULL;
}

int ia_store_writer_start(struct ia_store *s, int64_t scan_id, size_t cap, struct ia_error *err)
{
        for (int i = 0; i < ST_COUNT; i++)
                if (!s->st[i] &&
                    sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                                       NULL) != SQLITE_OK)
                        return db_error(s, err, "preparing statements");
        if (!s->m[0].head) {
                static const struct {
                        const char *head, *row, *what;
                        bind_row_fn bind;
                        bool recs;
                } ms[M_COUNT] = {
                    [M_FILES] = {"INSERT OR ROLLBACK INTO files (id, path, archive_id, member, "
                                 "dev, ino, size, allocated, mtime_ns, ctime_ns) VALUES",
                                 "(?,?,?,?,?,?,?,?,?,?)", "recording a file", bind_file, true},
                    [M_SCAN_FILES] = {"INSERT OR IGNORE INTO scan_files (scan_id, file_id, kind, "
                                      "reused) VALUES",
                                      "(?,?,?,?)", "recording a file of the scan", bind_scan_file,
                                      true},
                    [M_IMAGES] = {"INSERT OR ROLLBACK INTO images (" IMAGE_COLUMNS ") VALUES",
                                  "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                  "recording an image", bind_image, true},
                    [M_LAYERS] =
                        {"INSERT OR ROLLBACK INTO layers (id, kind, file_id, format, deps, "
                         "tool_version, size, runs, scan_id) VALUES",
                         "(?,?,?,?,?,'" IMGAUDIT_VERSION "',?,?,?)", "recording a layer",
                         bind_layer, true},
                    [M_LINKS] = {"INSERT OR ROLLBACK INTO links (scan_id, image_id, depth, "
                                 "from_file_id, kind, name, target_file_id, target_path, status, "
                                 "error) VALUES",
                                 "(?,?,?,?,?,?,?,?,?,?)", "recording a link", bind_link, true},
                    [M_RUNS] = {"INSERT OR ROLLBACK INTO layer_runs (layer_id, start, length, "
                                "present, zero, data, compressed, offset, file_id) VALUES",
                                "(?,?,?,?,?,?,?,?,?)", "recording the runs of a layer", bind_run,
                                false},
                    [M_PIECES] =
                        {"INSERT OR ROLLBACK INTO pieces (image_id, start, length, depth, kind, "
                         "layer_id) VALUES",
                         "(?,?,?,?,?,?)", "recording the pieces of a map", bind_piece, false},
                    [M_CHAIN] = {"INSERT OR ROLLBACK INTO chain_layers (image_id, depth, file_id, "
                                 "layer_id, data_bytes, zero_bytes) VALUES",
                                 "(?,?,?,?,?,?)", "recording the chain of an image", bind_chain,
                                 false},
                };

                for (int k = 0; k < M_COUNT; k++)
                        multi_init(&s->m[k], ms[k].head, ms[k].row, ms[k].bind, ms[k].what,
                                   ms[k].recs);
        }
        s->scan_id = scan_id;
        s->cap = cap ? cap : 1024;
        /*
         * A quarter of the queue: a worker's put (a batch of records) finds
         * the writer asleep nearly every time once the writer is faster than
         * the workers; woken for each, it cost two context switches per put.
         * Stopping wakes it whatever is queued; a slow writer (tests) at once.
         */
        s->wake_at = s->delay_ms ? 1 : (s->cap + 3) / 4;
        s->stopping = false;
        s->failed = false;
        s->map_rows = 0;
        drop_pending(s);
        ia_error_clear(&s->werr);
        if (pthread_create(&s->thread, NULL, writer_main, s) != 0)
                return ia_error_set(err, IA_ERR_NOMEM, "cannot start the writer thread");
        s->running = true;
        return 0;
}

int ia_store_put_list(struct ia_store *s, struct ia_rec *head)
{
        struct ia_rec *last = head;
        size_t n = 1;
        bool wake;

        if (!head)
                return 0;
        while (last->next) {
                last = last->next;
                n++;
        }
        pthread_mutex_lock(&s->lock);
        while (s->len >= s->cap && !s->failed)
                pthread_cond_wait(&s->not_full, &s->lock);
        if (s->failed) {
                pthread_mutex_unlock(&s->lock);
                while (head) {
                        struct ia_rec *next = head->next;

                        ia_rec_free(head);
                        head = next;
                }
                return -1;
        }
        /* the writer waits for a batch: woken when the queue reaches it, not for every put */
        wake = s->len < s->wake_at && s->len + n >= s->wake_at;
        if (s->tail)
                s->tail->next = head;
        else
                s->head = head;
        s->tail = last;
        s->len += n;
        if (wake)
                pthread_cond_signal(&s->not_empty);
        pthread_mutex_unlock(&s->lock);
        return 0;
}

int ia_store_put(struct ia_store *s, struct ia_rec *r)
{
        if (!r)
                return -1;
        r->next = NULL;
        return ia_store_put_list(s, r);
}

int ia_store_writer_stop(struct ia_store *s, uint64_t *map_rows, struct ia_error *err)
{
        if (!s->running)
                return 0;
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        pthread_cond_broadcast(&s->not_empty);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
        s->running = false;
        if (map_rows)
                *map_rows = s->map_rows;
        if (s->failed) {
                if (err)
                        *err = s->werr;
                return -1;
        }
        return 0;
}
