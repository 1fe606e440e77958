/*
 * The rows of the scan's VM-definition pass (scanner/vmscan.c): vms,
 * vm_disks and vm_media, with the findings about them, written in one
 * transaction after the workers (schema/README.md, 005_vms.sql).
 *
 * Every function but ia_vm_rows_begin returns 0 or -1; after a -1 call
 * ia_vm_rows_abort.  Strings may be NULL (a NULL column); ids 0 or less
 * are NULL too.
 */
#ifndef IA_STORE_VMS_H
#define IA_STORE_VMS_H

#include <stdint.h>

#include "error.h"
#include "store.h"

struct ia_vm_rows;

/* BEGIN IMMEDIATE and prepare; NULL with err set on failure (nothing left open). */
struct ia_vm_rows *ia_vm_rows_begin(struct ia_store *s, int64_t scan_id, struct ia_error *err);

/* A vms row; its id in *vm_id. */
int ia_vm_rows_vm(struct ia_vm_rows *w, const char *kind, const char *name, const char *uuid,
                  const char *config_path, int64_t config_file_id, int64_t *vm_id);

struct ia_vm_disk_row {
        const char *target, *bus, *device, *source, *format, *uuid, *path, *status;
        int64_t file_id;
};
int ia_vm_rows_disk(struct ia_vm_rows *w, int64_t vm_id, const struct ia_vm_disk_row *d);

struct ia_vm_medium_row {
        const char *uuid, *parent_uuid, *location, *format, *type, *path;
        int64_t file_id;
};
int ia_vm_rows_medium(struct ia_vm_rows *w, int64_t vm_id, const struct ia_vm_medium_row *m);

/* A finding of no image about file_id, its message formatted as sqlite3_mprintf does. */
int ia_vm_rows_finding(struct ia_vm_rows *w, int64_t file_id, const char *code, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

/* COMMIT and free; on failure as ia_vm_rows_abort. */
int ia_vm_rows_commit(struct ia_vm_rows *w, struct ia_error *err);
/* err "recording VM definitions: <SQLite's message>", ROLLBACK, free; returns -1. */
int ia_vm_rows_abort(struct ia_vm_rows *w, struct ia_error *err);

#endif
