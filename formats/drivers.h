/*
 * The table of format drivers, probing, and the table's self-check.
 */
#ifndef IA_DRIVERS_H
#define IA_DRIVERS_H

#include "image.h"

/* Every driver, NULL-terminated; raw is last (the fallback). */
extern const struct ia_driver *const ia_drivers[];

/* The driver called name, or NULL. */
const struct ia_driver *ia_driver_find(const char *name);

/*
 * Choose a driver by content (and, for dmg alone, by name: NULL for none):
 * the best-scoring probe, raw when none claims the file.  Reads the head of
 * src (see struct ia_probe).
 */
const struct ia_driver *ia_driver_probe(struct ia_source *src, const char *name,
                                        struct ia_error *err);

/* Same, on bytes already read (pure). */
const struct ia_driver *ia_driver_probe_bytes(const struct ia_probe *p);

/* Check the table: names unique and set, callbacks present, raw last.  0 or -1. */
int ia_drivers_check(struct ia_error *err);

extern const struct ia_driver ia_drv_raw;
extern const struct ia_driver ia_drv_vmdk;
extern const struct ia_driver ia_drv_qcow2;
extern const struct ia_driver ia_drv_vdi;
extern const struct ia_driver ia_drv_qed;
extern const struct ia_driver ia_drv_qcow;
extern const struct ia_driver ia_drv_parallels;
extern const struct ia_driver ia_drv_luks;
extern const struct ia_driver ia_drv_vpc;
extern const struct ia_driver ia_drv_vhdx;
extern const struct ia_driver ia_drv_dmg;
extern const struct ia_driver ia_drv_bochs;
extern const struct ia_driver ia_drv_cloop;

#endif
