/*
 * The report's read-only questions to a store (schema/store_report.c): every
 * SELECT `imgaudit report` runs, named here beside the SQL, so that report/
 * issues no SQL and includes no <sqlite3.h> (tests/scripts/test_layering.sh,
 * tests/boundaries/report_sqlite.c).
 *
 * A store is opened read-only (never created, never migrated, no scan lock)
 * and read inside one transaction, so every figure of a report comes from
 * one snapshot; in WAL mode the reader never blocks the scanner's writer.
 *
 * Each query hands its rows to a callback as they come (the row and its
 * strings live until the callback returns), so a caller keeps what it
 * needs: a whole list, a sum, or nothing but the line it writes.  A
 * callback returns 0 to go on, or -1 with err set to stop the query (the
 * query then returns -1).  Every function returns 0 or -1 with err set.
 */
#ifndef IA_STORE_REPORT_H
#define IA_STORE_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct sqlite3;
struct ia_rdb; /* a store open for reading */

/* A TEXT or BLOB column: its exact bytes, NUL-terminated; p NULL for SQL NULL. */
struct ia_rdb_str {
        const char *p;
        size_t len;
};

/* Open path read-only and begin the read transaction (ia_store_read_begin's checks). */
int ia_rdb_open(struct ia_rdb **d, const char *path, struct ia_error *err);
/* The same over a connection the caller keeps (the fleet report's in-memory store). */
int ia_rdb_attach(struct ia_rdb **d, struct sqlite3 *db, const char *name, struct ia_error *err);
/* End the transaction; close the connection unless it was attached. NULL is a no-op. */
void ia_rdb_close(struct ia_rdb *d);
/* PRAGMA user_version of the store, and the version this build creates. */
int64_t ia_rdb_schema(const struct ia_rdb *d);
int ia_rdb_schema_latest(void);

/* ---- scans ---- */

struct ia_rdb_scan {
        int64_t id;
        struct ia_rdb_str started_at, finished_at, status, host, tool_version, abort_reason;
        bool has_exit, has_duration;
        int64_t exit_status;
        double duration; /* finished - started, seconds */
        uint64_t files_seen, files_read, files_reused, layers_mapped, images, map_rows, problems;
};

/* Scan id (*found false if there is none), then its roots of role 'scan' in order. */
int ia_rdb_scan(struct ia_rdb *d, int64_t id, bool *found,
                int (*fn)(void *ctx, const struct ia_rdb_scan *s, struct ia_error *err), void *ctx,
                struct ia_error *err);
int ia_rdb_roots(struct ia_rdb *d, int64_t scan,
                 int (*fn)(void *ctx, const struct ia_rdb_str *path, struct ia_error *err),
                 void *ctx, struct ia_error *err);
/* The latest complete scan (0: none); the latest complete one before scan `before`. */
int ia_rdb_latest_complete(struct ia_rdb *d, int64_t *id, struct ia_error *err);
int ia_rdb_complete_before(struct ia_rdb *d, int64_t before, int64_t *id, struct ia_error *err);
/*
 * The last complete scan before `before` started at or before date, else the
 * first after it (0: none); *bad_date when SQLite cannot read date.
 */
int ia_rdb_complete_near(struct ia_rdb *d, const char *date, int64_t before, int64_t *id,
                         bool *bad_date, struct ia_error *err);

/* The latest scan that ended (complete or aborted), for the metrics. */
struct ia_rdb_ended {
        bool complete;
        int64_t started, finished; /* seconds since the epoch */
        double duration;
};
int ia_rdb_last_ended(struct ia_rdb *d, bool *found, struct ia_rdb_ended *e, struct ia_error *err);

/* ---- images of a scan ---- */

/*
 * An image, with the files it keeps its data in that are not images of the
 * scan themselves (qcow2 external data file, VMDK extents: counted for the
 * first image naming them) added to its size and allocation.
 */
struct ia_rdb_image {
        int64_t id, file_id, map_id; /* map_id: the images row holding its map rows */
        struct ia_rdb_str path, member, format, status, error, backing;
        bool has_vsize, has_alloc, has_mtime;
        uint64_t virtual_size, file_size, allocated;
        int64_t mtime_ns;
        unsigned chain_depth;
};
/* In the order of (path, member, id). */
int ia_rdb_images(struct ia_rdb *d, int64_t scan,
                  int (*fn)(void *ctx, const struct ia_rdb_image *m, struct ia_error *err),
                  void *ctx, struct ia_error *err);

/* How each image's virtual size splits (imgaudit(1), REPORT FIGURES): summed by SQL. */
struct ia_rdb_space {
        int64_t image_id;
        uint64_t own_data, backing_data, zero, unallocated, compressed, mapped, unknown;
};
int ia_rdb_space(struct ia_rdb *d, int64_t scan,
                 int (*fn)(void *ctx, const struct ia_rdb_space *s, struct ia_error *err),
                 void *ctx, struct ia_error *err);

/* The direct backing links of the scan's images (depth 0, kind 'backing'). */
struct ia_rdb_backing {
        int64_t image_id, target_file_id; /* target 0: none */
        bool ok;                          /* status 'ok' with a target */
};
int ia_rdb_backings(struct ia_rdb *d, int64_t scan,
                    int (*fn)(void *ctx, const struct ia_rdb_backing *b, struct ia_error *err),
                    void *ctx, struct ia_error *err);

/* Sets of files, for the images' flags. */
enum ia_rdb_files {
        IA_RDB_WAS_BASE,   /* backing targets of an earlier scan */
        IA_RDB_VM_FILES,   /* disks and media a VM definition of the scan names (schema 5) */
        IA_RDB_OVF_DISKS,  /* members an OVF descriptor of the scan names */
        IA_RDB_DATA_FILES, /* images another image keeps data in (extent, data file) */
};
int ia_rdb_files(struct ia_rdb *d, int64_t scan, enum ia_rdb_files which,
                 int (*fn)(void *ctx, int64_t file_id, struct ia_error *err), void *ctx,
                 struct ia_error *err);
/* Did the scan read any VM definition (schema 5)? */
int ia_rdb_has_vms(struct ia_rdb *d, int64_t scan, bool *yes, struct ia_error *err);

/*
 * The archive holding file_id (a member): its id, whether it is itself a file
 * of the file system (no archive of its own) and its path, valid until the
 * next call.  0 when there is none or it cannot be read (a display name then
 * escapes the whole path), 1 when found.
 */
struct ia_rdb_archive {
        int64_t id;
        bool root;
        struct ia_rdb_str path;
};
int ia_rdb_archive_of(struct ia_rdb *d, int64_t file_id, struct ia_rdb_archive *a);

/* ---- links, findings, unreadable entries ---- */

/* The links that are not ok, ordered by holder (path, member), kind, name, depth. */
struct ia_rdb_link {
        int64_t holder_id; /* the files row holding the reference */
        struct ia_rdb_str kind, name, target, status, error;
        int depth;
        struct ia_rdb_str holder_path, holder_member; /* path NULL: no files row */
};
int ia_rdb_broken_links(struct ia_rdb *d, int64_t scan,
                        int (*fn)(void *ctx, const struct ia_rdb_link *l, struct ia_error *err),
                        void *ctx, struct ia_error *err);

struct ia_rdb_finding {
        struct ia_rdb_str code, message, path, member; /* path NULL: no file */
        int64_t file_id;
};
int ia_rdb_findings(struct ia_rdb *d, int64_t scan,
                    int (*fn)(void *ctx, const struct ia_rdb_finding *f, struct ia_error *err),
                    void *ctx, struct ia_error *err);

/* Entries the scan could not read and no image row of the scan tells of. */
struct ia_rdb_unreadable {
        struct ia_rdb_str path, reason, detail;
        int64_t file_id; /* 0: none */
};
int ia_rdb_unreadable(struct ia_rdb *d, int64_t scan,
                      int (*fn)(void *ctx, const struct ia_rdb_unreadable *u, struct ia_error *err),
                      void *ctx, struct ia_error *err);

/* ---- trend ---- */

/* An image of an earlier scan: allocation with its data files, as for ia_rdb_images. */
struct ia_rdb_prev {
        struct ia_rdb_str path, member;
        uint64_t allocated, virtual_size;
        int64_t file_id;
};
int ia_rdb_prev_images(struct ia_rdb *d, int64_t scan,
                       int (*fn)(void *ctx, const struct ia_rdb_prev *p, struct ia_error *err),
                       void *ctx, struct ia_error *err);

/* The last 60 complete scans up to `upto`, oldest first, with their totals. */
struct ia_rdb_hist {
        int64_t id;
        struct ia_rdb_str started_at;
        uint64_t images, virtual_size, allocated;
};
int ia_rdb_history(struct ia_rdb *d, int64_t upto,
                   int (*fn)(void *ctx, const struct ia_rdb_hist *h, struct ia_error *err),
                   void *ctx, struct ia_error *err);

/* ---- maps, for the sharing analysis (report/rpt_share.c) ---- */

/* A range [start, start + length) of a map, of a layer's data, or a piece (layer_id). */
struct ia_rdb_range {
        uint64_t start, length;
        int64_t layer_id;
};
typedef int (*ia_rdb_range_fn)(void *ctx, const struct ia_rdb_range *x, struct ia_error *err);

/* Is image map_id's map stored as pieces (schema 3) rather than map rows? */
int ia_rdb_has_pieces(struct ia_rdb *d, int64_t map_id, bool *yes, struct ia_error *err);
/* The data rows of a schema-2 map at depth, in order. */
int ia_rdb_map_data(struct ia_rdb *d, int64_t map_id, int depth, ia_rdb_range_fn fn, void *ctx,
                    struct ia_error *err);
/* The pieces of map_id at depth that a layer decides, in order. */
int ia_rdb_layer_pieces(struct ia_rdb *d, int64_t map_id, int depth, ia_rdb_range_fn fn, void *ctx,
                        struct ia_error *err);
/* The data runs of layer that meet [s, e) (unclipped), in order. */
int ia_rdb_layer_data(struct ia_rdb *d, int64_t layer, uint64_t s, uint64_t e, ia_rdb_range_fn fn,
                      void *ctx, struct ia_error *err);
/* What map_id reads from the layer at depth of its chain (0 when none is stored). */
int ia_rdb_chain_reads(struct ia_rdb *d, int64_t map_id, int depth, uint64_t *bytes,
                       struct ia_error *err);

#endif
