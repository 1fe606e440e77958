/*
 * The data `imgaudit report` works on: one scan of the store, loaded
 * read-only into memory (images, their space figures, the backing graph,
 * links, findings), plus what the trend needs from an earlier scan.
 *
 * Loading runs inside one read transaction, so every figure of a report
 * comes from the same snapshot, and in WAL mode a reader never blocks the
 * scanner's writer.  The definitions of every figure are in imgaudit(1)
 * (contrib/imgaudit.1), section "REPORT FIGURES".
 */
#ifndef IA_RPT_H
#define IA_RPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store_report.h"

/* How an image's virtual size splits, from its map (see imgaudit(1)). */
struct ia_rpt_space {
        uint64_t own_data;     /* depth 0, data */
        uint64_t backing_data; /* depth > 0, data */
        uint64_t zero;         /* not data, present (allocated as zeros somewhere) */
        uint64_t unallocated;  /* not data, not present */
        uint64_t compressed;   /* data stored compressed (any depth) */
        uint64_t mapped;       /* the sum of all map lengths */
        uint64_t unknown;      /* behind a backing file that could not be opened (schema 3) */
};

struct ia_rpt_image {
        int64_t id, file_id;
        int64_t map_id; /* the images row holding its map rows (itself, or the one carried over) */
        char *path;     /* raw bytes, NUL-terminated */
        size_t path_len;
        char *member; /* archive member name (raw) or NULL */
        size_t member_len;
        char *name; /* escaped display name: the path (ARCHIVE!MEMBER for members) */
        char *dir;  /* escaped directory of path */
        char *format, *status, *error, *backing;
        bool has_vsize, has_alloc, has_mtime;
        uint64_t virtual_size, file_size, allocated;
        int64_t mtime_ns;
        unsigned chain_depth;
        int root; /* index in scan roots, -1 if none */
        struct ia_rpt_space sp;

        /* the backing graph between images of this scan: ok links only */
        long parent; /* index of the direct backing image, -1 */
        size_t *children, nchildren;
        size_t ndesc;      /* transitive children */
        bool used_by_ovf;  /* an OVF descriptor names it */
        bool used_as_data; /* another image keeps data in it (extent, data file) */
        bool used_by_vm;   /* a VM definition of this scan names it (schema 5) */
        bool was_base;     /* an image backed onto it in an earlier scan */
        bool has_backing;  /* it records a backing file name (ok or not) */
        bool backing_ok;   /* its backing file resolved, maybe to a file outside the scan */

        /* derived (sections.c) */
        uint64_t freed;   /* space freed if deleted: own allocation + orphaned bases */
        size_t orphaned;  /* bases left orphaned by deleting it */
        uint64_t visible; /* as a base: own data still read through some descendant */
        uint64_t dead;    /* as a base: own data no descendant can read */
        bool sharing_done;
};

struct ia_rpt_link {
        char *holder; /* escaped name of the file holding the reference */
        long image;   /* image index holding it, -1 if the holder is not an image of the scan */
        int depth;
        char *kind, *name, *target, *status, *error; /* name, target escaped */
};

struct ia_rpt_finding {
        char *category, *source, *name, *message; /* name escaped, may be NULL */
};

struct ia_rpt_hist {
        int64_t id;
        char *started_at;
        uint64_t images, virtual_size, allocated;
};

/* An image of the earlier scan (trend), matched by (path, member). */
struct ia_rpt_prev {
        char *path, *member;
        size_t path_len, member_len;
        char *name, *dir; /* escaped, as for struct ia_rpt_image */
        uint64_t allocated, virtual_size;
};

struct ia_rpt_scan {
        int64_t id;
        char *started_at, *finished_at, *status, *host, *tool_version, *abort_reason;
        bool has_exit, has_duration;
        int64_t exit_status;
        double duration;
        uint64_t files_seen, files_read, files_reused, layers_mapped, images, map_rows, problems;
        char **roots; /* escaped, role 'scan' */
        char **raw_roots;
        size_t nroots;
};

struct ia_rpt {
        struct ia_rdb *db; /* the store's read-only questions (schema/store_report.h) */
        char *db_path;
        int64_t db_schema; /* PRAGMA user_version */
        struct ia_rpt_scan scan;
        struct ia_rpt_image *img;
        size_t nimg;
        struct ia_rpt_link *links; /* every non-ok link, deduplicated by holder/kind/name */
        size_t nlinks;
        struct ia_rpt_finding *findings;
        size_t nfindings;
        /* trend */
        bool has_prev;
        struct ia_rpt_scan prev_scan;
        struct ia_rpt_prev *prev;
        size_t nprev;
        struct ia_rpt_hist *hist;
        size_t nhist;
        int64_t now;  /* seconds since the epoch, for ages */
        bool vm_defs; /* this scan read VM definitions (schema 5: vms rows) */
};

/*
 * Open the database read-only (never created, never migrated, no lock taken)
 * and begin the read transaction.  Refuses a file that is not an imgaudit
 * store or has no scan tables.
 */
int ia_rpt_open(struct ia_rpt *r, const char *path, struct ia_error *err);
/*
 * The same over a connection the caller opened and keeps (the fleet
 * report's in-memory store): name is what messages call the database.
 */
int ia_rpt_attach(struct ia_rpt *r, struct sqlite3 *db, const char *name, struct ia_error *err);
/* The schema version this build creates: that of its last migration. */
int ia_rpt_latest_schema(void);
void ia_rpt_close(struct ia_rpt *r);

/*
 * Choose the scan (scan_arg NULL: the latest complete one) and the trend's
 * earlier scan, always a complete scan before it (since NULL: the last one;
 * an ID; or a date "YYYY-MM-DD[THH:MM[:SS]][Z]": the last one started at or
 * before it, else the first after it), then load everything.
 */
int ia_rpt_load(struct ia_rpt *r, const char *scan_arg, const char *since, bool want_trend,
                struct ia_error *err);

/*
 * The sharing figures of backing image base (rpt_share.c): the bytes of its
 * own data that at least one of its nd descendants (desc[k], depth[k] below
 * them) still reads, in *visible, and what each reads from it, in reads[k].
 */
int ia_rpt_share(struct ia_rpt *r, size_t base, const size_t *desc, const int *depth, size_t nd,
                 uint64_t *visible, uint64_t *reads, struct ia_error *err);

#endif
