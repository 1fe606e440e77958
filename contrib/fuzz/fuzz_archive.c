/*
 * Fuzz target: walk one archive held in memory, as `imgaudit scan` would.
 *
 * The input is the archive (tar, zip, or a compressed tar).  Every member
 * source that was made is read at its start and end and asked for its first
 * data and hole, so that windows, sparse maps and spools are exercised as
 * well as the header walk and the OVF scanner.  Limits are small, and the
 * spool memory equals its budget, so the target never writes a temporary file.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "archives.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const struct ia_archive_limits lim = {
            .max_members = 1000,
            /* Small budgets: the same code paths, without each run touching tens of MiB. */
            .spool_budget = 4u << 20,
            .spool_memory = 4u << 20,
            .max_ratio = 1000,
            .max_nesting = 2,
            .max_decompressed = 16u << 20,
        };
        struct ia_error err = {0};
        struct ia_source *src = ia_source_memory(data, size, false, &err);
        struct ia_archive *a = NULL;

        if (!src)
                return 0;
        (void)ia_archive_probe(data, size);
        if (ia_archive_open(src, "fuzz", &lim, &a, &err) == 0) {
                for (size_t i = 0; i < ia_archive_count(a); i++) {
                        const struct ia_archive_member *m = ia_archive_member(a, i);
                        uint8_t buf[512];
                        uint64_t r;
                        int en;

                        (void)ia_archive_find(a, m->name);
                        if (!m->src)
                                continue;
                        (void)ia_read_upto(m->src, buf, sizeof(buf), 0, &err);
                        if (m->src->size > sizeof(buf))
                                (void)ia_read_upto(m->src, buf, sizeof(buf),
                                                   m->src->size - sizeof(buf), &err);
                        if (ia_source_seek(m->src, 0, IA_SEEK_DATA, &r, &en) == 0)
                                (void)ia_source_seek(m->src, r, IA_SEEK_HOLE, &r, &en);
                }
                for (size_t i = 0; i < ia_archive_ovf_count(a); i++)
                        (void)ia_archive_ovf_disk(a, i);
                (void)ia_archive_error(a);
                ia_archive_free(a);
        }
        ia_source_unref(src);
        return 0;
}
