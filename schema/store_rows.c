/*
 * The store's multi-row INSERTs (see store_int.h, struct multi): rows wait
 * in their statement's pending array and go 32, 16, 8, 4, 2 or 1 to a
 * statement step; and how each kind of row binds its parameters.  The writer
 * (store_write.c) adds rows and flushes them.
 */
#define _GNU_SOURCE
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "banned.h"

void multi_finalize(struct multi *m)
{
        for (int k = 0; k < NMULTI; k++) {
                sqlite3_finalize(m->st[k]);
                m->st[k] = NULL;
        }
}

/*
 * m's statements are head ("INSERT INTO t (cols) VALUES") and 1, 2, 4, 8 or
 * 16 copies of row ("(?,?,...)": its parameters are numbered in order, row
 * j's from j * cols + 1), each prepared when first needed.
 */
void multi_init(struct multi *m, const char *head, const char *row, bind_row_fn bind,
                const char *what, bool recs)
{
        m->head = head;
        m->row = row;
        m->cols = 0;
        for (const char *c = row; *c; c++)
                m->cols += *c == '?';
        m->bind = bind;
        m->what = what;
        m->recs = recs;
        m->n = 0;
}

/* m's statement of 2^k rows. */
sqlite3_stmt *multi_stmt(struct ia_store *s, struct multi *m, int k, struct ia_error *err)
{
        size_t hn = strlen(m->head), rn = strlen(m->row), rows = (size_t)1 << k;
        size_t n = hn + rows * (rn + 1) + 1;
        char *sql, *p;

        if (m->st[k])
                return m->st[k];
        sql = malloc(n);
        if (!sql) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                return NULL;
        }
        memcpy(sql, m->head, hn);
        p = sql + hn;
        for (size_t r = 0; r < rows; r++) {
                *p++ = r ? ',' : ' ';
                memcpy(p, m->row, rn);
                p += rn;
        }
        *p = '\0';
        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &m->st[k], NULL) !=
            SQLITE_OK) {
                m->st[k] = NULL;
                db_error(s, err, "preparing statements");
        }
        free(sql);
        return m->st[k];
}

/* The records pending in m are written (or failed): they go. */
void multi_release(struct multi *m, size_t n)
{
        if (m->recs)
                for (size_t i = 0; i < n; i++)
                        ia_rec_free(m->pend[i].u.rec);
}

/*
 * The rows pending in m, in as few statement steps as the sizes allow.  Every
 * parameter is bound at each step: no bindings to clear.
 */
int multi_flush(struct ia_store *s, struct multi *m, struct ia_error *err)
{
        size_t i = 0, n = m->n;

        m->n = 0;
        for (int k = NMULTI - 1; k >= 0; k--) {
                size_t rows = (size_t)1 << k;

                while (n - i >= rows) {
                        sqlite3_stmt *st = multi_stmt(s, m, k, err);
                        int rc;

                        if (!st) {
                                multi_release(m, n);
                                return -1;
                        }
                        for (size_t j = 0; j < rows; j++)
                                m->bind(st, (int)j * m->cols, &m->pend[i + j]);
                        rc = sqlite3_step(st);
                        sqlite3_reset(st);
                        if (rc != SQLITE_DONE) {
                                db_error(s, err, m->what);
                                multi_release(m, n);
                                return -1;
                        }
                        i += rows;
                }
        }
        multi_release(m, n);
        return 0;
}

/* The next pending row of m, for owner; NULL after an error (in err). */
struct pend_row *multi_add(struct ia_store *s, struct multi *m, int64_t owner, struct ia_error *err)
{
        if (m->n == MULTI_MAX && multi_flush(s, m, err) < 0)
                return NULL;
        m->pend[m->n].owner = owner;
        return &m->pend[m->n++];
}

/* Before a commit: every pending row. */
int flush_pending(struct ia_store *s, struct ia_error *err)
{
        for (int k = 0; k < M_COUNT; k++)
                if (multi_flush(s, &s->m[k], err) < 0)
                        return -1;
        return 0;
}

/* After a rollback: the pending rows are gone with the transaction. */
void drop_pending(struct ia_store *s)
{
        for (int k = 0; k < M_COUNT; k++) {
                multi_release(&s->m[k], s->m[k].n);
                s->m[k].n = 0;
        }
}

/* Record r becomes a pending row of m (of this scan); it is freed once written. */
int multi_add_rec(struct ia_store *s, struct multi *m, struct ia_rec *r, struct ia_error *err)
{
        struct pend_row *p = multi_add(s, m, s->scan_id, err);

        if (!p)
                return -1;
        p->u.rec = r;
        return 1;
}

void bind_file(sqlite3_stmt *st, int base, const struct pend_row *p)
{
        const struct ia_rec *r = p->u.rec;
        bool times = r->u.file.has_identity && (r->u.file.mtime_ns || r->u.file.ctime_ns);

        sqlite3_bind_int64(st, base + 1, r->u.file.id);
        ia_store_bind_path(st, base + 2, r->u.file.path);
        bind_id(st, base + 3, r->u.file.archive_id);
        ia_store_bind_path(st, base + 4, r->u.file.member);
        if (r->u.file.has_identity) {
                sqlite3_bind_int64(st, base + 5, (int64_t)r->u.file.dev);
                sqlite3_bind_int64(st, base + 6, (int64_t)r->u.file.ino);
        } else {
                sqlite3_bind_null(st, base + 5);
                sqlite3_bind_null(st, base + 6);
        }
        sqlite3_bind_int64(st, base + 7, (int64_t)r->u.file.size);
        sqlite3_bind_int64(st, base + 8, (int64_t)r->u.file.allocated);
        if (times) {
                sqlite3_bind_int64(st, base + 9, r->u.file.mtime_ns);
                sqlite3_bind_int64(st, base + 10, r->u.file.ctime_ns);
        } else { /* unknown */
                sqlite3_bind_null(st, base + 9);
                sqlite3_bind_null(st, base + 10);
        }
}

void bind_scan_file(sqlite3_stmt *st, int base, const struct pend_row *p)
{
        const struct ia_rec *r = p->u.rec;

        sqlite3_bind_int64(st, base + 1, p->owner);
        sqlite3_bind_int64(st, base + 2, r->u.scan_file.file_id);
        sqlite3_bind_text(st, base + 3, r->u.scan_file.kind, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, base + 4, r->u.scan_file.reused);
}

void bind_opt64(sqlite3_stmt *st, int idx, bool has, int64_t v)
{
        if (has)
                sqlite3_bind_int64(st, idx, v);
        else
                sqlite3_bind_null(st, idx);
}

void bind_image(sqlite3_stmt *st, int base, const struct pend_row *p)
{
        const struct ia_rec *r = p->u.rec;
        const struct ia_space *sp = &r->u.image.sp;
        bool space = r->u.image.has_space;

        sqlite3_bind_int64(st, base + 1, r->u.image.id);
        sqlite3_bind_int64(st, base + 2, p->owner);
        sqlite3_bind_int64(st, base + 3, r->u.image.file_id);
        bind_text(st, base + 4, r->u.image.format);
        sqlite3_bind_int(st, base + 5, r->u.image.probed);
        bind_opt64(st, base + 6, r->u.image.has_vsize, (int64_t)r->u.image.virtual_size);
        sqlite3_bind_int64(st, base + 7, (int64_t)r->u.image.file_size);
        sqlite3_bind_int64(st, base + 8, (int64_t)r->u.image.allocated);
        bind_opt64(st, base + 9, r->u.image.cluster_size != 0, r->u.image.cluster_size);
        sqlite3_bind_int(st, base + 10, (r->u.image.flags & IA_IMG_DIRTY) != 0);
        sqlite3_bind_int(st, base + 11, (r->u.image.flags & IA_IMG_CORRUPT) != 0);
        sqlite3_bind_int(st, base + 12, (r->u.image.flags & IA_IMG_ENCRYPTED) != 0);
        sqlite3_bind_int(st, base + 13, (r->u.image.flags & IA_IMG_SNAPSHOTS) != 0);
        sqlite3_bind_int(st, base + 14, (r->u.image.flags & IA_IMG_EXTERNAL_DATA) != 0);
        sqlite3_bind_int(st, base + 15, (r->u.image.flags & IA_IMG_PENDING_LOG) != 0);
        ia_store_bind_path(st, base + 16, r->u.image.backing);
        bind_text(st, base + 17, r->u.image.backing_fmt);
        sqlite3_bind_int(st, base + 18, (int)r->u.image.chain_depth);
        bind_text(st, base + 19, r->u.image.status);
        bind_text(st, base + 20, r->u.image.error);
        bind_opt64(st, base + 21, space, (int64_t)sp->own_data);
        bind_opt64(st, base + 22, space, (int64_t)sp->backing_data);
        bind_opt64(st, base + 23, space, (int64_t)sp->zero);
        bind_opt64(st, base + 24, space, (int64_t)sp->unallocated);
        bind_opt64(st, base + 25, space, (int64_t)sp->compressed);
        bind_opt64(st, base + 26, space, (int64_t)sp->unknown);
        bind_opt64(st, base + 27, space, (int64_t)sp->mapped);
        bind_opt64(st, base + 28, space, (int64_t)r->u.image.map_rows);
        bind_text(st, base + 29, r->u.image.recognised_by);
}

void bind_layer(sqlite3_stmt *st, int base, const struct pend_row *p)
{
        const struct ia_rec *r = p->u.rec;

        sqlite3_bind_int64(st, base + 1, r->u.layer.id);
        sqlite3_bind_text(st, base + 2, r->u.layer.kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, base + 3, r->u.layer.file_id);
        bind_text(st, base + 4, r->u.layer.format);
        sqlite3_bind_text(st, base + 5, r->u.layer.deps ? r->u.layer.deps : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, base + 6, (int64_t)r->u.layer.size);
        sqlite3_bind_int64(st, base + 7, (int64_t)r->u.layer.runs);
        sqlite3_bind_int64(st, base + 8, p->owner);
}

void bind_link(sqlite3_stmt *st, int base, const struct pend_row *p)
{
        const struct ia_rec *r = p->u.rec;

        sqlite3_bind_int64(st, base + 1, p->owner);
        sqlite3_bind_int64(st, base + 2, r->u.link.image_id);
        sqlite3_bind_int(st, base + 3, r->u.link.depth);
        bind_id(st, base + 4, r->u.link.from_file_id);
        sqlite3_bind_text(st, base + 5, r->u.link.kind, -1, SQLITE_STATIC);
        ia_store_bind_path(st, base + 6, r->u.link.name);
        bind_id(st, base + 7, r->u.link.target_file_id);
        ia_store_bind_path(st, base + 8, r->u.link.target_path);
        bind_text(st, base + 9, r->u.link.status);
        bind_text(st, base + 10, r->u.link.error);
}

void bind_piece(sqlite3_stmt *st, int base, const struct pend_row *r)
{
        const struct ia_piece_row *p = &r->u.piece;

        sqlite3_bind_int64(st, base + 1, r->owner);
        sqlite3_bind_int64(st, base + 2, (int64_t)p->start);
        sqlite3_bind_int64(st, base + 3, (int64_t)p->len);
        sqlite3_bind_int(st, base + 4, (int)p->depth);
        sqlite3_bind_text(st, base + 5, p->kind, -1, SQLITE_STATIC);
        bind_id(st, base + 6, p->layer_id);
}

void bind_chain(sqlite3_stmt *st, int base, const struct pend_row *r)
{
        const struct ia_chain_row *c = &r->u.chain;

        sqlite3_bind_int64(st, base + 1, r->owner);
        sqlite3_bind_int(st, base + 2, (int)c->depth);
        bind_id(st, base + 3, c->file_id);
        bind_id(st, base + 4, c->layer_id);
        sqlite3_bind_int64(st, base + 5, (int64_t)c->data);
        sqlite3_bind_int64(st, base + 6, (int64_t)c->zero);
}

/* One layer run to parameters base + 1 .. base + 9 of st. */
void bind_run(sqlite3_stmt *st, int base, const struct pend_row *r)
{
        const struct ia_map_row *m = &r->u.run;

        sqlite3_bind_int64(st, base + 1, r->owner);
        sqlite3_bind_int64(st, base + 2, (int64_t)m->start);
        sqlite3_bind_int64(st, base + 3, (int64_t)m->length);
        sqlite3_bind_int(st, base + 4, m->present);
        sqlite3_bind_int(st, base + 5, m->zero);
        sqlite3_bind_int(st, base + 6, m->data);
        sqlite3_bind_int(st, base + 7, m->compressed);
        if (m->has_offset) {
                sqlite3_bind_int64(st, base + 8, (int64_t)m->offset);
                bind_id(st, base + 9, m->file_id);
        } else {
                sqlite3_bind_null(st, base + 8);
                sqlite3_bind_null(st, base + 9);
        }
}
