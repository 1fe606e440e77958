/*
 * Block-device volumes for `imgaudit scan --devices GLOB...` (opt in).
 *
 * The walk never opens a device; only devices named by a --devices glob are
 * audited, read-only: opened O_RDONLY (never O_EXCL, never for writing),
 * their size asked with BLKGETSIZE64.  A glob may name LVM volumes
 * (/dev/vg0/\*: symlinks to /dev/dm-N, followed since they were asked for),
 * zvols (/dev/zvol/POOL/\*) or loop devices.  A match that is not a block
 * device is refused and recorded; a device of 0 bytes (a detached loop
 * device) is recorded, not read.
 */
#ifndef IA_DEVICES_H
#define IA_DEVICES_H

#include "walk.h"

/*
 * Expand the globs: each block device once (by its identity) to on_dev
 * (path and rel: the match as given, malloc'd; id: the device node's dev
 * and ino, the device's size, mtime and ctime of the node), everything else
 * to on_entry as the walk reports entries.  -1 only on ENOMEM.
 */
int ia_devices_expand(const char *const *globs,
                      void (*on_dev)(void *opaque, struct ia_walk_file *f),
                      void (*on_entry)(void *opaque, const char *path, const char *kind,
                                       const char *reason, const char *detail),
                      void *opaque);

/* Open a device found by ia_devices_expand() again: the same node and size, read-only. */
struct ia_source *ia_device_open(const char *path, const struct ia_identity *id,
                                 struct ia_error *err);

#endif
