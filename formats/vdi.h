/*
 * The identities a VirtualBox VDI header records, for resolvers that look a
 * differencing image's parent up by UUID (see formats/vdi.c).
 */
#ifndef IA_VDI_H
#define IA_VDI_H

#include <stdint.h>

#include "error.h"
#include "source.h"

#define IA_VDI_UUID_LEN 37 /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" and its NUL */

/* The UUIDs of one header, as VirtualBox prints them ("" when null). */
struct ia_vdi_ids {
        uint32_t type;                       /* 1 normal, 2 static, 3 undo, 4 differencing */
        char create[IA_VDI_UUID_LEN];        /* uuidCreate: what a child's link names */
        char modify[IA_VDI_UUID_LEN];        /* uuidModify */
        char link[IA_VDI_UUID_LEN];          /* uuidLinkage: the parent's uuidCreate */
        char parent_modify[IA_VDI_UUID_LEN]; /* uuidParentModify: the parent's uuidModify */
};

/* Read the header of src; -1 (IA_ERR_CORRUPT) when it is not a VDI. */
int ia_vdi_read_ids(struct ia_source *src, struct ia_vdi_ids *ids, struct ia_error *err);

/* The UUID a "uuid:UUID" backing name of a differencing VDI names, or NULL. */
static inline const char *ia_vdi_id_of(const char *backing)
{
        return backing && backing[0] == 'u' && backing[1] == 'u' && backing[2] == 'i' &&
                       backing[3] == 'd' && backing[4] == ':'
                   ? backing + 5
                   : (const char *)0;
}

#endif
