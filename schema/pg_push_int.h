/*
 * Private to imgaudit push's files in the store (pg_push.c: the push and
 * one scan's transaction; pg_push_rows.c: the local store and the COPY of
 * its rows; pg_push_layers.c: the layers a scan adds, their packed runs and
 * fingerprints).  The command (scanner/cmd_push.c) sees pg_push.h only.
 */
#ifndef IA_PG_PUSH_INT_H
#define IA_PG_PUSH_INT_H

#ifndef IA_STORE_INTERNAL
#error "pg_push_int.h is private to the store library (schema/): include pg_push.h"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "error.h"
#include "pg.h"
#include "pg_push.h"
#include "pg_tables.h"

int ia_idset_add(struct ia_idset *s, int64_t id);
bool ia_idset_has(struct ia_idset *s, int64_t id);

/* err for a failed local read (reason "local"); returns -1. */
int ia_push_local_error(struct ia_push *p, const char *what, struct ia_error *err);

/* Open the local store read-only, check it, begin its read transaction, read its identity. */
int ia_push_open_local(struct ia_push *p, struct ia_error *err);

/* The local SELECT of table t's columns with a WHERE clause; NULL: no memory. */
char *ia_push_select_sql(enum ia_pg_tbl t, const char *where);

/*
 * COPY the rows of local table t matching where (?1 bound to bind) to the
 * central table; pre: a leading column of value pre_val (scans.host);
 * skip: ids (column 0) the central database has already.
 */
int ia_push_copy_table(struct ia_push *p, enum ia_pg_tbl t, const char *where, int64_t bind,
                       const char *pre, const char *pre_val, struct ia_idset *skip,
                       struct ia_error *err);

/*
 * The general form, one COPY: the rows of local table t matching where,
 * with ?1 bound to each of bind[0..nbind) in turn; pre, pre_val as above;
 * post: a trailing text column, for bind k post_hex[k] as 16 hex digits,
 * each bind then matching exactly one row (else a local error); skip as
 * above.
 */
struct ia_push_rows {
        enum ia_pg_tbl t;
        const char *where;
        const int64_t *bind;
        size_t nbind;
        const char *pre, *pre_val;
        const char *post;
        const uint64_t *post_hex;
        struct ia_idset *skip;
};

int ia_push_copy_rows(struct ia_push *p, const struct ia_push_rows *r, struct ia_error *err);

/*
 * The layers scan_id's maps name that the central database lacks, with
 * their runs (packed) and fingerprints; fresh gets their ids.
 */
int ia_push_copy_layers(struct ia_push *p, int64_t scan_id, struct ia_idset *fresh,
                        struct ia_error *err);

/* The COPY statement of table t: store_id, [pre,] its columns [, post]; NULL: no memory. */
char *ia_push_copy_sql(enum ia_pg_tbl t, const char *pre, const char *post);

/* One local row's columns (after store_id and pre) into the COPY row. */
void ia_push_emit_cols(struct ia_pg_copy *c, enum ia_pg_tbl t, sqlite3_stmt *st);

/* End a COPY (ok false: abort it), counting its rows and bytes into p. */
int ia_push_copy_finish(struct ia_push *p, struct ia_pg_copy *c, bool ok, struct ia_error *err);

#endif
