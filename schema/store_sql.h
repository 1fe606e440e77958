/*
 * An open store's SQLite connection, for the store's own files (the .c files of schema/)
 * and the unit tests: the commands above ask the store typed questions
 * instead (store.h, store_plan.h, pg_push.h, ...), and test_layering checks
 * that no file of scanner/ includes this, <sqlite3.h> or <libpq-fe.h>.
 */
#ifndef IA_STORE_SQL_H
#define IA_STORE_SQL_H

#include <sqlite3.h>

#include "store.h"

sqlite3 *ia_store_db(struct ia_store *s);

/* Bind a path: TEXT when it is valid UTF-8, else a BLOB of the same bytes. */
int ia_store_bind_path(sqlite3_stmt *st, int idx, const char *path);

#endif
