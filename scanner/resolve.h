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

#include "archives.h"
#include "chain.h"

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
};

/* roots: the allowed roots, NULL-terminated (kept by reference). */
void ia_scan_resolver_init(struct ia_scan_resolver *sr, const char *const *roots);

/* The member name of a file opened in archive mode (after "ARCHIVE!"), or NULL. */
const char *ia_scan_resolver_member(const struct ia_scan_resolver *sr, const struct ia_file *f);

/* Normalise an archive member name lexically ("./", "//", ".."); NULL if it leaves the top. */
char *ia_member_normalise(const char *name);

#endif
