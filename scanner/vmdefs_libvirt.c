/* libvirt domain XML (Nova's libvirt.xml too): the <disk> elements of <devices>. */
#define _GNU_SOURCE
#include "vmdefs_int.h"

#include <ctype.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

static int libvirt_disk(struct ia_vmdef *d, const char *path, xmlNodePtr n, struct ia_error *err)
{
        struct ia_vm_disk *v = vmdef_new_disk(d, err);
        char *type;
        xmlNodePtr src = vmdef_child(n, "source"), tgt = vmdef_child(n, "target");

        if (!v)
                return -1;
        type = vmdef_attr(n, "type");
        v->device = vmdef_attr(n, "device");
        v->format = vmdef_attr(vmdef_child(n, "driver"), "type");
        v->target = vmdef_attr(tgt, "dev");
        v->bus = vmdef_attr(tgt, "bus");
        if (!src) {
                v->why = "empty";
        } else if (!type || strcmp(type, "file") == 0) {
                v->source = vmdef_attr(src, "file");
                v->why = v->source ? NULL : "empty";
        } else if (strcmp(type, "block") == 0) {
                v->source = vmdef_attr(src, "dev");
                v->why = v->source ? NULL : "empty";
        } else if (strcmp(type, "volume") == 0) {
                char *pool = vmdef_attr(src, "pool"), *vol = vmdef_attr(src, "volume");

                if (pool && vol) {
                        size_t l = strlen(pool) + strlen(vol) + 2;

                        v->source = malloc(l);
                        if (v->source)
                                snprintf(v->source, l, "%s/%s", pool, vol);
                }
                free(pool);
                free(vol);
                v->why = "pool";
        } else {
                v->source = vmdef_attr(src, "name");
                v->why = "network";
        }
        free(type);
        if (v->source && !v->why && !(v->path = vmdef_anchor(path, v->source)))
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        return 0;
}

int vmdef_parse_libvirt(const char *path, const char *text, size_t len, struct ia_vmdef *d,
                        struct ia_error *err)
{
        xmlDocPtr doc;
        xmlNodePtr root, devs;
        int rc = 1;

        /* any *.xml is a candidate: one that does not even mention a domain is not one */
        if (len > IA_VMDEF_MAX_BYTES)
                return ia_error_set(err, IA_ERR_LIMIT, "larger than %u bytes", IA_VMDEF_MAX_BYTES);
        if (!memmem(text, len, "<domain", 7))
                return 0;
        doc = vmdef_xml_read(path, text, len, err);
        if (!doc)
                return -1;
        root = xmlDocGetRootElement(doc);
        if (!vmdef_named(root, "domain")) {
                xmlFreeDoc(doc);
                return 0;
        }
        d->kind = IA_VM_LIBVIRT;
        d->name = vmdef_text_of(vmdef_child(root, "name"));
        d->uuid = vmdef_text_of(vmdef_child(root, "uuid"));
        devs = vmdef_child(root, "devices");
        for (xmlNodePtr c = devs ? devs->children : NULL; c && rc > 0; c = c->next)
                if (vmdef_named(c, "disk") && libvirt_disk(d, path, c, err) < 0)
                        rc = -1;
        xmlFreeDoc(doc);
        return rc;
}
