/* oVirt: a file storage domain's volume metadata (<volume>.meta, KEY=VALUE lines). */
#define _GNU_SOURCE
#include "vmdefs_int.h"

#include <ctype.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

int ia_ovirt_meta_parse(const char *text, size_t len, struct ia_ovirt_meta *m, struct ia_error *err)
{
        struct vmdef_lines ls = {text, text + len};
        const char *l;
        size_t n;
        bool toolong = false;

        memset(m, 0, sizeof(*m));
        (void)err;
        if (len > 65536 || vmdef_has_nul(text, len))
                return 0; /* any *.meta is a candidate: this one is no oVirt volume's */
        while ((l = vmdef_next_line(&ls, &n, &toolong)) && !toolong) {
                const char *eq = memchr(l, '=', n);
                char **slot = NULL;
                size_t kn;

                if (!eq)
                        continue;
                kn = (size_t)(eq - l);
                if (kn == 6 && strncmp(l, "FORMAT", 6) == 0)
                        slot = &m->format;
                else if (kn == 5 && strncmp(l, "PUUID", 5) == 0)
                        slot = &m->puuid;
                else if (kn == 5 && strncmp(l, "IMAGE", 5) == 0)
                        slot = &m->image;
                else if (kn == 7 && strncmp(l, "VOLTYPE", 7) == 0)
                        slot = &m->voltype;
                if (!slot)
                        continue;
                free(*slot);
                if (!(*slot = vmdef_dupn(eq + 1, n - kn - 1))) {
                        ia_ovirt_meta_free(m);
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                }
        }
        if (toolong) {
                ia_ovirt_meta_free(m);
                return ia_error_set(err, IA_ERR_CORRUPT, "a line longer than %u bytes",
                                    VMDEF_LINE_MAX);
        }
        if (!m->format) {
                ia_ovirt_meta_free(m);
                return 0;
        }
        if (strcmp(m->format, "RAW") != 0 && strcmp(m->format, "COW") != 0) {
                ia_ovirt_meta_free(m);
                return ia_error_set(err, IA_ERR_CORRUPT, "FORMAT is neither RAW nor COW");
        }
        if (m->puuid && strspn(m->puuid, "0-") == strlen(m->puuid)) {
                free(m->puuid);
                m->puuid = NULL;
        }
        return 1;
}

void ia_ovirt_meta_free(struct ia_ovirt_meta *m)
{
        free(m->format);
        free(m->puuid);
        free(m->image);
        free(m->voltype);
        memset(m, 0, sizeof(*m));
}
