/*
 * The tables a local store and the central database share, column by
 * column: what imgaudit push copies (SQLite -> PostgreSQL) and what
 * imgaudit report --db postgresql:// loads back (PostgreSQL -> an in-memory
 * SQLite store).  One list, so the two directions cannot drift apart.
 *
 * Every central table has store_id in front of these columns.  A path
 * column ('p') is two central columns: NAME (text, \xNN for bytes that are
 * not UTF-8) and NAME_raw (bytea, the exact bytes, only for a local BLOB).
 * layer_runs is the exception: centrally its rows are packed into the
 * arrays of layer_runs_packed (central schema 2), written by
 * pg_push_layers.c and read by pg_load.c; its columns here are the
 * local table's (and the central view's).
 */
#ifndef IA_PG_TABLES_H
#define IA_PG_TABLES_H

#include <stddef.h>

struct ia_pg_col {
        const char *name; /* the local column (quoted where it is a keyword) */
        const char *pg;   /* the central column, when its name differs; else NULL */
        char type;        /* 'i' integer, 't' text, 'p' path (text or bytes) */
};

struct ia_pg_table {
        const char *name;
        const struct ia_pg_col *cols;
        size_t ncols;
};

enum ia_pg_tbl {
        IA_PGT_SCANS,
        IA_PGT_SCAN_ROOTS,
        IA_PGT_FILES,
        IA_PGT_SCAN_FILES,
        IA_PGT_ENTRIES,
        IA_PGT_IMAGES,
        IA_PGT_LINKS,
        IA_PGT_MAP,
        IA_PGT_FINDINGS,
        IA_PGT_OVF_DISKS,
        IA_PGT_LAYERS,
        IA_PGT_LAYER_RUNS,
        IA_PGT_PIECES,
        IA_PGT_CHAIN_LAYERS,
        IA_PGT_COUNT
};

extern const struct ia_pg_table ia_pg_tables[IA_PGT_COUNT];

#endif
