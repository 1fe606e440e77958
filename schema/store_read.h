/*
 * A store opened by a reader (imgaudit report, and the fleet report's
 * in-memory copy of a host's store) on a connection of its own, read-only:
 * what the store must say about itself before a report trusts it, and the
 * one read transaction.  Messages name the database as `name`.
 */
#ifndef IA_STORE_READ_H
#define IA_STORE_READ_H

#include <stdint.h>

#include <sqlite3.h>

#include "error.h"

/* The schema version the embedded schema/NNN_*.sql bring a store to. */
int ia_store_schema_latest(void);

/*
 * Refuse a store of a newer schema, a database that is not an imgaudit
 * store (no objects, another application_id) and one without the scan
 * tables (IA_ERR_CORRUPT); then BEGIN one snapshot for the whole report
 * (in WAL mode it never blocks the writer).  Its schema version in *schema.
 */
int ia_store_read_begin(sqlite3 *db, const char *name, int64_t *schema, struct ia_error *err);

/* The latest complete scan's id, 0 when there is none. */
int ia_store_read_latest_complete(sqlite3 *db, const char *name, int64_t *id, struct ia_error *err);

#endif
