/*
 * Private to the store (schema/store_open.c, store_write.c, store_rows.c): the
 * store's structure, its prepared statements' numbers, and the few helpers
 * both halves use (static inline, so that each file reads as before the
 * split).  The layers above see only store.h.
 */
#ifndef IA_STORE_INT_H
#define IA_STORE_INT_H

#ifndef IA_STORE_INTERNAL
#error "store_int.h is private to the store library (schema/): include store.h"
#endif

#include <pthread.h>

#include "store_sql.h"

enum {
        ST_ENTRY,
        ST_DIR,
        ST_FINDING,
        ST_OVF,
        ST_REUSE_IMAGE,
        ST_REUSE_LINKS,
        ST_REUSE_FINDINGS,
        ST_COUNT,
};

/*
 * The rows of files, scan_files, images, layers, links, layer_runs, pieces
 * and chain_layers go in multi-row INSERTs of 32, 16, 8, 4, 2 and 1 rows,
 * gathered across records: they wait in their statement's pending array
 * until 32 are there (or the transaction commits, or a statement reads what
 * they would change), so the rows of many small images share statement
 * steps (the one writer is what bounds a scan of many small images, and a
 * statement step costs about what a row does).
 */
#define NMULTI    6 /* statements of 1, 2, 4, 8, 16 and 32 rows */
#define MULTI_MAX (1 << (NMULTI - 1))

/*
 * A pending row: the layer (runs) or image (pieces, chain) it belongs to and
 * the row, or the scan and the record (the record's strings are bound as
 * they are: it is freed once its row is written).
 */
struct pend_row {
        int64_t owner;
        union {
                struct ia_map_row run;
                struct ia_piece_row piece;
                struct ia_chain_row chain;
                struct ia_rec *rec;
        } u;
};

typedef void (*bind_row_fn)(sqlite3_stmt *st, int base, const struct pend_row *p);

enum { M_FILES, M_SCAN_FILES, M_IMAGES, M_LAYERS, M_LINKS, M_RUNS, M_PIECES, M_CHAIN, M_COUNT };

struct multi {
        const char *head, *row; /* of its statements (multi_stmt()) */
        int cols;
        bind_row_fn bind;
        const char *what; /* for an error message: "recording the runs of a layer" */
        bool recs;        /* the pending rows are records, to free when written */
        sqlite3_stmt *st[NMULTI];
        struct pend_row pend[MULTI_MAX];
        size_t n;
};

struct ia_store {
        sqlite3 *db;
        char *path;
        sqlite3_stmt *st[ST_COUNT];
        struct multi m[M_COUNT];

        /* the writer */
        pthread_t thread;
        bool running;
        int64_t scan_id;
        pthread_mutex_t lock;
        pthread_cond_t not_empty, not_full;
        struct ia_rec *head, *tail;
        size_t len, cap;
        size_t wake_at; /* the writer, waiting for records, is woken when this many are queued */
        bool stopping;
        bool failed; /* the writer hit an error: records are dropped */
        struct ia_error werr;
        uint64_t map_rows;
        unsigned delay_ms; /* IMGAUDIT_TEST_WRITER_DELAY_MS: slow writer, for crash tests */
};

static inline int bind_text(sqlite3_stmt *st, int idx, const char *s)
{
        return s ? sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, idx);
}

static inline int bind_id(sqlite3_stmt *st, int idx, int64_t id)
{
        return id ? sqlite3_bind_int64(st, idx, id) : sqlite3_bind_null(st, idx);
}

static inline int db_error(struct ia_store *s, struct ia_error *err, const char *what)
{
        int code = sqlite3_extended_errcode(s->db);
        int prim = code & 0xff;
        enum ia_errcat cat = IA_ERR_IO;

        if (prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB)
                cat = IA_ERR_CORRUPT;
        else if (prim == SQLITE_NOMEM)
                cat = IA_ERR_NOMEM;
        ia_error_set(err, cat, "database '%s': %s: %s", s->path, what, sqlite3_errmsg(s->db));
        if (err) {
                err->errnum = code;
                err->reason = prim == SQLITE_FULL ? "disk-full" : "database";
        }
        return -1;
}

static inline int exec(struct ia_store *s, const char *sql, struct ia_error *err)
{
        if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
                return db_error(s, err, sql);
        return 0;
}

/* Finalize every prepared statement of the writer (store_write.c); for ia_store_close(). */
void ia_store_finalize_statements(struct ia_store *s);

/* The pending multi-row INSERTs (store_rows.c). */
void multi_finalize(struct multi *m);
void multi_init(struct multi *m, const char *head, const char *row, bind_row_fn bind,
                const char *what, bool recs);
sqlite3_stmt *multi_stmt(struct ia_store *s, struct multi *m, int k, struct ia_error *err);
void multi_release(struct multi *m, size_t n);
int multi_flush(struct ia_store *s, struct multi *m, struct ia_error *err);
struct pend_row *multi_add(struct ia_store *s, struct multi *m, int64_t owner,
                           struct ia_error *err);
int flush_pending(struct ia_store *s, struct ia_error *err);
void drop_pending(struct ia_store *s);
int multi_add_rec(struct ia_store *s, struct multi *m, struct ia_rec *r, struct ia_error *err);
void bind_file(sqlite3_stmt *st, int base, const struct pend_row *p);
void bind_scan_file(sqlite3_stmt *st, int base, const struct pend_row *p);
void bind_opt64(sqlite3_stmt *st, int idx, bool has, int64_t v);
void bind_image(sqlite3_stmt *st, int base, const struct pend_row *p);
void bind_layer(sqlite3_stmt *st, int base, const struct pend_row *p);
void bind_link(sqlite3_stmt *st, int base, const struct pend_row *p);
void bind_piece(sqlite3_stmt *st, int base, const struct pend_row *r);
void bind_chain(sqlite3_stmt *st, int base, const struct pend_row *r);
void bind_run(sqlite3_stmt *st, int base, const struct pend_row *r);

#endif
