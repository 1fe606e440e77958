/*
 * imgaudit report --db CONNINFO, the store's side (report/pg_report.c is
 * the command): the stores the central database holds, and one store's
 * reported scan loaded from PostgreSQL into an in-memory SQLite store with
 * the local schema and ids, on which the ordinary report runs.
 */
#ifndef IA_PG_LOAD_H
#define IA_PG_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "pg.h"

struct sqlite3;

struct ia_fleet_store {
        char *host, *store_id;
};

/* Once per process, before any load: in-memory stores are named by URI. */
void ia_pg_load_init(void);

/*
 * The stores of host (NULL: every host) that have a complete scan, in host
 * and store order, into *stores (*n of them, each string allocated; free
 * with ia_pg_free_stores).  *n 0 is no error.
 */
int ia_pg_list_stores(struct ia_pg *pg, const char *host, struct ia_fleet_store **stores, int *n,
                      struct ia_error *err);
void ia_pg_free_stores(struct ia_fleet_store *stores, int n);

/*
 * Build the in-memory store `name` (a memdb URI) holding scan scan_id of
 * store store_id (0: its latest complete scan), with the history the report
 * reads (all_history: every earlier complete scan, else the 60 latest); *db
 * stays open (the memdb lives as long as a connection to it): close it with
 * ia_pg_load_close, also after an error.
 */
int ia_pg_load_store(struct ia_pg *pg, const char *name, const char *store_id, int64_t scan_id,
                     bool all_history, struct sqlite3 **db, struct ia_error *err);
void ia_pg_load_close(struct sqlite3 *db);

#endif
