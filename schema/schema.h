/*
 * The SQL schema compiled into the binary: schema/NNN_*.sql, in name order.
 * File NNN brings the database to PRAGMA user_version NNN; the array is
 * generated at build time (see CMakeLists.txt) and ends with {NULL, NULL}.
 */
#ifndef IA_SCHEMA_H
#define IA_SCHEMA_H

struct ia_schema_file {
        const char *name; /* e.g. "001_initial.sql" */
        const char *sql;  /* NUL-terminated */
};

extern const struct ia_schema_file ia_schema_files[];

/* PRAGMA application_id of every imgaudit store: "IADT". */
#define IA_APPLICATION_ID 0x49414454

/* The central PostgreSQL schema: schema/pg/NNN_*.sql, in name order, likewise. */
extern const struct ia_schema_file ia_pg_schema_files[];

#endif
