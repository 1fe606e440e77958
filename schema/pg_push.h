/*
 * imgaudit push, the store's side (scanner/cmd_push.c is the command):
 * the complete scans of a local store copied to the fleet's central
 * PostgreSQL database.
 *
 * The local store is only read, in one read transaction (one snapshot; in
 * WAL mode a running scan is never blocked).  Each scan the central
 * database lacks goes in its own transaction, its rows sent with COPY: a
 * push killed at any point leaves the central database as it was before
 * that scan, and the next push sends it again.  Rows are keyed by the
 * store's identity (store_identity, schema 4) and the local ids, so a scan
 * is stored once however often it is pushed.  Files and layers already
 * central are not sent again (a base shared by a hundred overlays goes once
 * per version).  A session advisory lock per store keeps two pushes of one
 * store apart; pushes of different stores never wait for each other (no
 * table lock, each touches only its own store's rows).  Nothing is retried:
 * an error stops the push, classified in err->reason ("local": the local
 * store; "busy": another push of the store; else pg.h's reasons).
 *
 * pg_push.c: the push and one scan's transaction; pg_push_rows.c: the local
 * store and the COPY of its rows; pg_push_layers.c: the layers a scan adds,
 * their packed runs and fingerprints (pg_push_int.h, private).
 */
#ifndef IA_PG_PUSH_H
#define IA_PG_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "pg.h"

struct sqlite3;

/* A set of ids: appended, sorted on the first lookup after an append out of order. */
struct ia_idset {
        int64_t *v;
        size_t n, cap;
        bool sorted;
};

struct ia_push {
        struct sqlite3 *db; /* the local store, read-only, in one read transaction */
        const char *db_path;
        char store_id[40];
        const char *host; /* given, or after ia_push_open the default */
        char *host_buf;   /* the default host's name */
        struct ia_pg pg;
        struct ia_idset central_scans, central_files, central_layers; /* on the server already */
        uint64_t rows, bytes; /* local rows sent, COPY bytes sent */
};

/*
 * Open the store db_path read-only, check it, begin its read transaction
 * and read its identity; p->host, when NULL: the host that ran the latest
 * scan, else this one.
 */
int ia_push_open(struct ia_push *p, const char *db_path, struct ia_error *err);

/*
 * Connect, bring the central schema up to date, take the store's advisory
 * lock and read the ids the server holds of the store.
 */
int ia_push_connect(struct ia_push *p, const char *conninfo, struct ia_error *err);

/*
 * Push every complete local scan the server lacks, in id order, one
 * transaction each; after each, on_scan(ctx, its id, its rows) (on_scan may
 * be NULL).  *pushed, *present: the scans sent, the scans there already.
 */
int ia_push_scans(struct ia_push *p, void (*on_scan)(void *ctx, int64_t scan_id, uint64_t rows),
                  void *ctx, unsigned *pushed, unsigned *present, struct ia_error *err);

/* Close the server connection and the local store; p can be opened again. */
void ia_push_close(struct ia_push *p);

#endif
