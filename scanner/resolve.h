/*
 * The resolver `imgaudit scan` gives the engine (struct ia_resolver).
 *
 * The top image is the file the walk found, already opened beneath its root
 * (handed over, never re-resolved by name).  Backing files, data files and
 * extents go through the engine's file-system resolver under the scan's
 * policy: relative names against the referencing image's directory (qcow2
 * data files too, never the current directory), beneath an allowed root
 * (openat2 RESOLVE_BENEATH), regular files only, no protocol or json: names.
 * Inside an archive, names resolve to members of the same archive, relative
 * to the referencing member's directory; a name leaving the archive is
 * refused ("outside-archive").
 */
#ifndef IA_RESOLVE_H
#define IA_RESOLVE_H

#include <pthread.h>

#include "archives.h"
#include "chain.h"

/*
 * Parents named by identity (a differencing VDI names its parent's
 * uuidCreate): a table identity -> file paths, one per scan, shared by the
 * workers.  Two kinds of entries, looked at in this order:
 *   * registered ones (ia_parent_index_register()): what a VM's own
 *     registry says, e.g. a VirtualBox .vbox MediaRegistry's
 *     <HardDisk uuid="{...}" location="..."> (the location resolved against
 *     the .vbox file's directory by the caller);
 *   * found ones: the headers of the scan's files named *.vdi, read once,
 *     the first time a parent is looked up (the fill callback adds them with
 *     ia_parent_index_add_file()).
 * Every candidate is opened under the scan's policy and its own header must
 * carry the identity (a stale registry entry or a file changed meanwhile is
 * passed over), so a registry can only choose among true parents.
 */
struct ia_parent_entry {
        char *id; /* the bare UUID, lowercase, no braces */
        char *path;
        bool registered;
};

struct ia_parent_index {
        pthread_mutex_t lock;
        bool filled;
        /* Called once, under the lock, before the first lookup. */
        void (*fill)(struct ia_parent_index *ix, void *opaque);
        void *fill_opaque;
        struct ia_parent_entry *v;
        size_t n, cap;
};

void ia_parent_index_init(struct ia_parent_index *ix,
                          void (*fill)(struct ia_parent_index *ix, void *opaque), void *opaque);
void ia_parent_index_free(struct ia_parent_index *ix);

/* Prefer path as the file of the VDI whose uuidCreate is uuid ("{...}" or bare). 0 or -1. */
int ia_parent_index_register(struct ia_parent_index *ix, const char *uuid, const char *path);

/* From fill: read path's header (opened as the scan opens backing files) and add it. */
void ia_parent_index_add_file(struct ia_parent_index *ix, const char *path);

/* From fill: the same for the *.vdi of dir (not below; at most IA_ID_DIR_CAP names). */
void ia_parent_index_add_dir(struct ia_parent_index *ix, const char *dir);

/*
 * The scan's lookup: open the VDI whose uuidCreate is the one "uuid:UUID"
 * names, registered entries first, then found ones, through fs (the
 * confined resolver).  0 with *out set, or -1 (reason "missing").
 */
int ia_parent_index_open(struct ia_parent_index *ix, const struct ia_resolver *fs, const char *id,
                         struct ia_file **out, struct ia_error *err);

struct ia_scan_resolver {
        struct ia_resolver r;  /* what the engine is given; r.opaque = this */
        struct ia_resolver fs; /* the file-system resolver under policy */
        struct ia_fs_policy policy;
        /* the top image */
        struct ia_source *top_src; /* borrowed: a reference is taken per open */
        const char *top_name;      /* its display path */
        /* archive mode: names are members of this archive */
        const struct ia_archive *archive;
        const char *archive_path; /* display path of the archive; members are "PATH!MEMBER" */
        /* parents named by identity (NULL: never found); not in archive mode */
        struct ia_parent_index *parents;
};

/* roots: the allowed roots, NULL-terminated (kept by reference). */
void ia_scan_resolver_init(struct ia_scan_resolver *sr, const char *const *roots);

/* The member name of a file opened in archive mode (after "ARCHIVE!"), or NULL. */
const char *ia_scan_resolver_member(const struct ia_scan_resolver *sr, const struct ia_file *f);

#endif
