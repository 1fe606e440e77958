/*
 * Which files that no format driver recognises are raw disks all the same:
 * those whose content starts like a disk (a partition table, a file system,
 * swap, an LVM physical volume, an ISO 9660 image), and those whose name
 * matches the raw globs (default *.img *.raw *.iso).  A text file, a log or
 * a database is none of these.  (A file an image uses as its raw backing
 * file is an image too: the scan decides that from the reference.)
 */
#ifndef IA_RAWDISK_H
#define IA_RAWDISK_H

#include <stddef.h>
#include <stdint.h>

#include "source.h"

/* The default raw globs, NULL-terminated. */
extern const char *const ia_raw_globs_default[];

/*
 * What the content of src says it is, as a short name ("mbr", "gpt", "ext",
 * "xfs", "btrfs", "ntfs", "fat", "swap", "lvm", "iso9660"), or NULL if it
 * does not look like a disk.  head: its first head_len bytes.
 */
const char *ia_rawdisk_signature(struct ia_source *src, const uint8_t *head, size_t head_len);

/* Does the last component of path match one of globs (NULL-terminated)? */
int ia_rawdisk_name_matches(const char *path, const char *const *globs);

/*
 * Is src, which no format driver recognised, a raw disk by the two rules a
 * walked file and an archive member share?  "content" when its content
 * starts like a disk, else "name" when the last component of name matches
 * the raw globs, else NULL (an empty file is never a raw disk).  head: its
 * first head_len bytes.  The scan adds its own rules for walked files
 * (--devices, VM definitions, the store's layout, references).
 */
const char *ia_rawdisk_recognised_by(struct ia_source *src, const uint8_t *head, size_t head_len,
                                     const char *name, const char *const *globs);

#endif
