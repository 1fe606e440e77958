/*
 * The central PostgreSQL database of a fleet (libpq): connecting with a
 * conninfo string or URI whose password never reaches a message, the
 * embedded schema/pg/ migrations, and a COPY writer for imgaudit push.
 *
 * Errors are classified in err->reason so that commands give each its own
 * exit status: "unreachable" (no server there), "auth" (the server refused
 * the credentials), "schema" (the server's schema is newer than this
 * imgaudit, or not ours), "busy" (another push of the same store holds its
 * lock), "disk-full", "denied" (the role lacks a right), "lost" (the
 * connection broke mid-way) and "server" (any other error the server sent).
 * Nothing is ever retried.
 */
#ifndef IA_PG_H
#define IA_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "error.h"

struct ia_pg_sender;

struct ia_pg {
        PGconn *conn;
        char *where;              /* the conninfo without its password, for messages */
        struct ia_pg_sender *snd; /* the COPY sender while it owns conn (pg_copy.c) */
};

/* True when s is a libpq URI (postgresql://, postgres://) or starts "keyword=" (conninfo). */
bool ia_pg_is_conninfo(const char *s);

/* conninfo as "host=... port=... dbname=... user=...", never the password; NULL: no memory. */
char *ia_pg_redact(const char *conninfo);

/* Connect (PQconnectdb: PGSERVICE, PGPASSFILE, sslmode... all apply). */
int ia_pg_connect(struct ia_pg *pg, const char *conninfo, struct ia_error *err);
void ia_pg_close(struct ia_pg *pg);

/* Fill err from a failed result (or the connection), classified; returns -1. */
int ia_pg_error(struct ia_pg *pg, PGresult *res, const char *what, struct ia_error *err);

/* Run a command without result rows. */
int ia_pg_exec(struct ia_pg *pg, const char *sql, struct ia_error *err);

/* Run a query with text parameters; NULL (err set) unless PGRES_TUPLES_OK/COMMAND_OK. */
PGresult *ia_pg_query(struct ia_pg *pg, const char *sql, int nparams, const char *const *params,
                      struct ia_error *err);

/* The latest central schema version this imgaudit knows (schema/pg/NNN_*.sql). */
int ia_pg_schema_latest(void);

/*
 * Bring the central schema up to date (apply false: only check).  *version
 * gets the server's version after it.  A server schema newer than this
 * imgaudit is refused (reason "schema"); migrations run in one transaction
 * under an advisory lock, so two hosts migrating at once apply them once.
 */
int ia_pg_migrate(struct ia_pg *pg, bool apply, int *version, struct ia_error *err);

/*
 * ---- COPY ... FROM STDIN (FORMAT binary): the statement must say so ----
 *
 * The rows are formatted into a buffer by the caller's thread; a full
 * buffer goes to a sender thread, which sends it while the caller formats
 * the next one (the server parses one buffer while the client makes the
 * next: the two overlap, where a blocking send made them take turns).  The
 * sender owns the connection from the first ia_pg_copy_begin to the next
 * ia_pg_sync (which ia_pg_query, ia_pg_exec and ia_pg_close call first):
 * it also starts and ends each COPY, so the caller reads and formats the
 * next table while the server finishes the last.  A COPY's failure is
 * therefore told by a later ia_pg_copy_* call or by the sync.  The caller
 * never uses the connection itself meanwhile.
 */
struct ia_pg_copy {
        struct ia_pg *pg;
        char *buf;
        size_t len, cap, flush_at, row_at; /* row_at: the current row's field count */
        unsigned nfields;
        unsigned delay_ms; /* IMGAUDIT_TEST_PUSH_DELAY_MS: sleep after each flush (tests) */
        uint64_t rows, bytes;
        bool first_col, nomem, failed;
};

int ia_pg_copy_begin(struct ia_pg_copy *c, struct ia_pg *pg, const char *sql, struct ia_error *err);
void ia_pg_copy_int(struct ia_pg_copy *c, int64_t v);
void ia_pg_copy_null(struct ia_pg_copy *c);
/* A bigint[] of n elements (at most 65,536), element i NULL when null && null[i]. */
void ia_pg_copy_int_array(struct ia_pg_copy *c, const int64_t *v, const bool *null, size_t n);
/* A smallint[] of n elements (each truncated to 16 bits). */
void ia_pg_copy_small_array(struct ia_pg_copy *c, const int64_t *v, size_t n);
/* A uuid column from its text form (36 characters); -1: not a uuid (nothing written). */
int ia_pg_copy_uuid(struct ia_pg_copy *c, const char *s);
/* Text: bytes that are not UTF-8 (and NUL) are written as the 4 characters \xNN. */
void ia_pg_copy_text(struct ia_pg_copy *c, const char *s, size_t n);
void ia_pg_copy_bytea(struct ia_pg_copy *c, const void *p, size_t n);
int ia_pg_copy_end_row(struct ia_pg_copy *c, struct ia_error *err);
/* End the COPY (ok false: abort it); the rows and bytes sent are in c->rows, c->bytes. */
int ia_pg_copy_end(struct ia_pg_copy *c, bool ok, struct ia_error *err);
/* Wait for the sender to finish what it was given and give the connection back; -1: it failed. */
int ia_pg_sync(struct ia_pg *pg, struct ia_error *err);

#endif
