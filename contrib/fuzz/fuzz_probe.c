/*
 * Fuzz target: every driver's probe on arbitrary head bytes.
 * Probes are pure: they must not read past what they are given, allocate,
 * or return a negative score.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "drivers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct ia_probe p = {
            .head = data,
            .head_len = size > IA_PROBE_HEAD ? IA_PROBE_HEAD : size,
            .size = size,
        };

        for (size_t i = 0; ia_drivers[i]; i++)
                if (ia_drivers[i]->probe && ia_drivers[i]->probe(&p) < 0)
                        abort();
        (void)ia_driver_probe_bytes(&p);
        return 0;
}
