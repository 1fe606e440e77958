/*
 * The scan's VM-definition pass: the definitions found among the walked files
 * and in the --vm-config directories are parsed (vmdefs.h), each disk is
 * resolved to a file of the scan (or why not: missing, outside the roots,
 * ...), and everything is written to the vms, vm_disks and vm_media tables
 * (schema/005_vms.sql) with a 'vm-disk-missing' finding per missing disk.
 */
#ifndef IA_VMSCAN_H
#define IA_VMSCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "hmap.h"
#include "store.h"
#include "vmdefs.h"

struct ia_vmscan_def {
        struct ia_vmdef def;
        char *config_path;
        int64_t config_file_id; /* 0: outside the roots (--vm-config) */
        int64_t *disk_file, *media_file;
        const char **disk_status;
};

struct ia_vmscan_error {
        char *path;
        int64_t file_id;
        char *msg;
};

struct ia_vmscan_text {
        enum ia_vmdef_file kind;
        char *path;
        int64_t file_id;
        char *text;
        size_t len;
        uint64_t dev, ino; /* a file met twice (a ROOT and a --vm-config DIR) is read once */
};

struct ia_vmscan {
        struct ia_vmscan_text *texts;
        size_t ntexts;
        struct ia_pve_storages pve;
        struct ia_vmscan_def *defs;
        size_t ndefs;
        struct ia_vmscan_error *errors;
        size_t nerrors;
        struct ia_hmap seen; /* (dev, ino) of the texts kept (zeroed: empty) */
        bool nomem;
};

/* Keep a candidate's text (takes ownership of text). */
void ia_vmscan_add_text(struct ia_vmscan *vs, enum ia_vmdef_file kind, const char *path,
                        int64_t file_id, uint64_t dev, uint64_t ino, char *text, size_t len);
/* Record that a candidate could not be read. */
void ia_vmscan_add_error(struct ia_vmscan *vs, const char *path, int64_t file_id, const char *msg);
/* Read the definitions below dir (--vm-config): regular files, at most 8 levels. */
void ia_vmscan_add_dir(struct ia_vmscan *vs, const char *dir);

/*
 * Parse every candidate (storage.cfg first), then resolve each disk with
 * lookup(opaque, path, &status): the file id of the scan's file at path (0 if
 * none, with *status set), marking it used by a VM definition.  oVirt .meta
 * files call layout(opaque, volume_path, format) for their volume.
 */
void ia_vmscan_resolve(struct ia_vmscan *vs,
                       int64_t (*lookup)(void *opaque, const char *path, const char **status),
                       void (*layout)(void *opaque, const char *path, const char *format),
                       void *opaque);

/* Write the VMs, their disks, media and findings of scan_id.  -1 on error (err set). */
int ia_vmscan_store(struct ia_vmscan *vs, struct ia_store *st, int64_t scan_id,
                    struct ia_error *err);

void ia_vmscan_free(struct ia_vmscan *vs);

#endif
