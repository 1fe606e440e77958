/*
 * The previous complete scan, as the scan's planner (scanner/scan_plan.c)
 * reads it: which scan that was, whether it had the same roots and tool
 * version, its walked files, and what its images, links, findings, archive
 * members and layers were.  The planner decides; this only names the tables
 * and columns, so that the scan issues no SQL.
 *
 * The row queries call fn once per row, in the order the comment gives; a
 * row's pointers (strings, paths) are valid only during that call.  fn
 * returns 0 to go on, anything else to stop (the query then returns 0).
 * A query returns -1 when SQLite fails (ia_store_errmsg() says why).
 */
#ifndef IA_STORE_PLAN_H
#define IA_STORE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The latest complete scan: id 0 when there is none (or it cannot be read). */
struct ia_plan_scan {
        int64_t id;
        bool has_started_ns; /* started_ns (schema 3) is an integer */
        int64_t started_ns;
        int64_t started_sec; /* started_at in whole seconds; 0 if not a date */
};
void ia_plan_last_complete(struct ia_store *s, struct ia_plan_scan *out);

/*
 * Has scan_id exactly these roots and allowed roots, each as often (a root
 * may be given more than once)?  False also when it cannot be read.
 */
bool ia_plan_same_roots(struct ia_store *s, int64_t scan_id, char *const *roots, size_t nroots,
                        const char *const *allow, size_t nallow);
/* Was scan_id made by tool version `version`? */
bool ia_plan_same_version(struct ia_store *s, int64_t scan_id, const char *version);

/* The queries below share prepared statements over one previous scan. */
struct ia_plan;
/* NULL on ENOMEM. */
struct ia_plan *ia_plan_new(struct ia_store *s, int64_t scan_id);
void ia_plan_free(struct ia_plan *p); /* NULL-safe */

/* A files row: its path and the identity the scan saw it with. */
struct ia_plan_ident {
        const void *path; /* path_len bytes, not NUL-terminated */
        size_t path_len;
        uint64_t dev, ino, size;
        int64_t mtime_ns, ctime_ns;
};

/* A file of the file system (not a member) the scan saw, with its identity. */
struct ia_plan_file {
        int64_t id;
        struct ia_plan_ident ident;
        const char *kind; /* scan_files.kind, or NULL */
};
int ia_plan_each_file(struct ia_plan *p, int (*fn)(const struct ia_plan_file *f, void *opaque),
                      void *opaque);

/* The scan's image of file_id (none, or one row). */
struct ia_plan_image {
        int64_t id;
        const char *status, *format, *recognised_by; /* or NULL */
};
int ia_plan_image_of(struct ia_plan *p, int64_t file_id,
                     int (*fn)(const struct ia_plan_image *im, void *opaque), void *opaque);

/* Each link of image_id, with the files row of its target (if any). */
struct ia_plan_link {
        const char *kind, *status; /* or NULL */
        bool has_target;           /* a files row: then ident is set (for _OK, its path) */
        bool target_in_archive;    /* that row is an archive member */
        struct ia_plan_ident ident;
        int64_t target_file_id;    /* 0: none */
        const char *target_format; /* the scan's image of the target, or NULL */
};
/* Which links of the image, and which of their fields are set. */
enum ia_plan_links {
        IA_LINKS_ALL,     /* every link: all but kind and target_format */
        IA_LINKS_OK,      /* status 'ok' with a target files row: kind, path, target_format */
        IA_LINKS_TARGETS, /* every link: status and target_file_id only */
};
int ia_plan_each_link(struct ia_plan *p, enum ia_plan_links which, int64_t image_id,
                      int (*fn)(const struct ia_plan_link *l, void *opaque), void *opaque);

/* The findings of image_id: (file_id or 0, code, message), code and message maybe NULL. */
int ia_plan_each_finding(struct ia_plan *p, int64_t image_id,
                         int (*fn)(int64_t file_id, const char *code, const char *message,
                                   void *opaque),
                         void *opaque);

/* The archive members the scan has rows for (scan_files, entries, findings), with their archive. */
int ia_plan_each_member(struct ia_plan *p, int (*fn)(int64_t id, int64_t archive_id, void *opaque),
                        void *opaque);
/* The files of 'unreadable' entries and of 'archive-error' and 'archive-limit' findings. */
int ia_plan_each_archive_problem(struct ia_plan *p, int (*fn)(int64_t file_id, void *opaque),
                                 void *opaque);
/* Every image of the scan, in id order: opened tells that its virtual size is known. */
int ia_plan_each_image(struct ia_plan *p,
                       int (*fn)(int64_t id, int64_t file_id, const char *status, bool opened,
                                 void *opaque),
                       void *opaque);

/*
 * The stored layers (kind 'layer') of tool version `version` whose file the
 * scan saw: (id, file_id, format, deps).
 */
int ia_plan_each_layer(struct ia_plan *p, const char *version,
                       int (*fn)(int64_t id, int64_t file_id, const char *format, const char *deps,
                                 void *opaque),
                       void *opaque);

/* SQLite's message for the store's last error. */
const char *ia_store_errmsg(struct ia_store *s);

#endif
