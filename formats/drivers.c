/*
 * The driver table, probing, and the table's self-check.
 *
 * The table is const and grep-able: one line per driver, raw last.  Probing
 * reads the first IA_PROBE_HEAD bytes once and asks every driver to score
 * them; raw is only ever the fallback (never a probe winner), so an image is
 * never mistaken for raw while a driver recognises it.  A format qemu knows
 * but imgaudit does not map would get a probe-only driver (IA_DRV_PROBE_ONLY):
 * refused by name rather than mapped as raw.
 */
#include "drivers.h"

#include <stdlib.h>
#include <string.h>
#include "banned.h"

/* Keep raw last.  Add new drivers above it (see formats/README.md). */
const struct ia_driver *const ia_drivers[] = {
    &ia_drv_qcow2,
    &ia_drv_vpc,
    &ia_drv_vhdx,
    &ia_drv_vdi,
    &ia_drv_qed,
    &ia_drv_qcow,
    &ia_drv_parallels,
    &ia_drv_luks,
    &ia_drv_vmdk,
    &ia_drv_dmg,
    /* new drivers here */
    &ia_drv_bochs,
    &ia_drv_cloop,
    &ia_drv_raw,
    NULL,
};

const struct ia_driver *ia_driver_find(const char *name)
{
        /* qemu's protocol driver "file", named as a format (`-f file`, or a
         * backing format "file"), maps a plain file exactly as raw over it
         * does: same entries, offsets, depth and name. */
        if (strcmp(name, "file") == 0)
                return &ia_drv_raw;
        for (size_t i = 0; ia_drivers[i]; i++)
                if (strcmp(ia_drivers[i]->name, name) == 0)
                        return ia_drivers[i];
        return NULL;
}

const struct ia_driver *ia_driver_probe_bytes(const struct ia_probe *p)
{
        const struct ia_driver *best = &ia_drv_raw;
        int best_score = 0;

        for (size_t i = 0; ia_drivers[i]; i++) {
                const struct ia_driver *d = ia_drivers[i];
                int score;

                if (d == &ia_drv_raw || !d->probe)
                        continue;
                score = d->probe(p);
                if (score > best_score) {
                        best_score = score;
                        best = d;
                }
        }
        return best;
}

const struct ia_driver *ia_driver_probe(struct ia_source *src, const char *name,
                                        struct ia_error *err)
{
        uint8_t head[IA_PROBE_HEAD];
        struct ia_probe p = {.head = head, .size = src->size, .name = name};
        int64_t n = ia_read_upto(src, head, sizeof(head), 0, err);

        if (n < 0)
                return NULL;
        p.head_len = (size_t)n;
        return ia_driver_probe_bytes(&p);
}

int ia_drivers_check(struct ia_error *err)
{
        size_t i, j;

        for (i = 0; ia_drivers[i]; i++) {
                const struct ia_driver *d = ia_drivers[i];

                if (!d->name || !d->name[0])
                        return ia_error_set(err, IA_ERR_INTERNAL, "driver #%zu has no name", i);
                if (!d->open || !d->close)
                        return ia_error_set(err, IA_ERR_INTERNAL,
                                            "driver '%s' lacks an open or close callback", d->name);
                if (d != &ia_drv_raw && !d->probe)
                        return ia_error_set(err, IA_ERR_INTERNAL,
                                            "driver '%s' has no probe: only raw may go unprobed",
                                            d->name);
                for (j = 0; j < i; j++)
                        if (strcmp(ia_drivers[j]->name, d->name) == 0)
                                return ia_error_set(err, IA_ERR_INTERNAL,
                                                    "driver name '%s' appears twice", d->name);
        }
        if (i == 0 || ia_drivers[i - 1] != &ia_drv_raw)
                return ia_error_set(err, IA_ERR_INTERNAL,
                                    "the raw driver must be last in the table");
        return 0;
}
