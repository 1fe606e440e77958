/*
 * VirtualBox .vbox: the media registry (nested HardDisk elements: a child is a
 * differencing image) and the current state's attached devices.
 */
#define _GNU_SOURCE
#include "vmdefs_int.h"

#include <ctype.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

/* VirtualBox: the registry (nested HardDisk elements: a child is a differencing image). */
static int vbox_media(struct ia_vmdef *d, const char *path, xmlNodePtr list, const char *parent,
                      unsigned depth, struct ia_error *err)
{
        if (depth > 64)
                return ia_error_set(err, IA_ERR_LIMIT, "media registry nested too deep");
        for (xmlNodePtr c = list ? list->children : NULL; c; c = c->next) {
                struct ia_vm_medium *m;

                if (!vmdef_named(c, "HardDisk"))
                        continue;
                if (d->nmedia >= IA_VMDEF_MAX_DISKS)
                        return ia_error_set(err, IA_ERR_LIMIT, "more than %u media",
                                            IA_VMDEF_MAX_DISKS);
                m = realloc(d->media, (d->nmedia + 1) * sizeof(*m));
                if (!m)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                d->media = m;
                m = &d->media[d->nmedia++];
                memset(m, 0, sizeof(*m));
                m->uuid = vmdef_attr(c, "uuid");
                m->location = vmdef_attr(c, "location");
                m->format = vmdef_attr(c, "format");
                m->type = vmdef_attr(c, "type");
                m->parent_uuid = vmdef_dup0(parent);
                if (m->location && m->location[0] && !(m->path = vmdef_anchor(path, m->location)))
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                if (m->uuid && vbox_media(d, path, c, m->uuid, depth + 1, err) < 0)
                        return -1;
        }
        return 0;
}

static const struct ia_vm_medium *medium(const struct ia_vmdef *d, const char *uuid)
{
        for (size_t i = 0; uuid && i < d->nmedia; i++)
                if (d->media[i].uuid && strcasecmp(d->media[i].uuid, uuid) == 0)
                        return &d->media[i];
        return NULL;
}

int vmdef_parse_vbox(const char *path, const char *text, size_t len, struct ia_vmdef *d,
                     struct ia_error *err)
{
        xmlDocPtr doc = vmdef_xml_read(path, text, len, err);
        xmlNodePtr root, mach, ctls;
        int rc = 1;

        if (!doc)
                return -1;
        root = xmlDocGetRootElement(doc);
        mach = vmdef_named(root, "VirtualBox") ? vmdef_child(root, "Machine") : NULL;
        if (!mach) {
                xmlFreeDoc(doc);
                return ia_error_set(err, IA_ERR_CORRUPT, "no VirtualBox/Machine element");
        }
        d->kind = IA_VM_VIRTUALBOX;
        d->name = vmdef_attr(mach, "name");
        d->uuid = vmdef_attr(mach, "uuid");
        if (vbox_media(d, path, vmdef_child(vmdef_child(mach, "MediaRegistry"), "HardDisks"), NULL,
                       0, err) < 0) {
                xmlFreeDoc(doc);
                return -1;
        }
        /* the current state's attachments (a snapshot's own list is history) */
        ctls = vmdef_child(mach, "StorageControllers");
        for (xmlNodePtr c = ctls ? ctls->children : NULL; c && rc > 0; c = c->next) {
                char *cname, *ctype;

                if (!vmdef_named(c, "StorageController"))
                        continue;
                cname = vmdef_attr(c, "name");
                ctype = vmdef_attr(c, "type");
                for (xmlNodePtr a = c->children; a && rc > 0; a = a->next) {
                        struct ia_vm_disk *v;
                        char *type, *port, *dev, buf[256];
                        const struct ia_vm_medium *m;

                        if (!vmdef_named(a, "AttachedDevice"))
                                continue;
                        if (!(v = vmdef_new_disk(d, err))) {
                                rc = -1;
                                break;
                        }
                        type = vmdef_attr(a, "type");
                        port = vmdef_attr(a, "port");
                        dev = vmdef_attr(a, "device");
                        snprintf(buf, sizeof(buf), "%.100s:%.20s:%.20s", cname ? cname : "",
                                 port ? port : "0", dev ? dev : "0");
                        v->target = vmdef_dup0(buf);
                        v->bus = vmdef_dup0(ctype);
                        v->device = type;
                        v->uuid = vmdef_attr(vmdef_child(a, "Image"), "uuid");
                        m = medium(d, v->uuid);
                        if (!v->uuid)
                                v->why = "empty";
                        else if (!m)
                                v->why = "not-in-registry";
                        else {
                                v->source = vmdef_dup0(m->location);
                                v->format = vmdef_dup0(m->format);
                                v->path = vmdef_dup0(m->path);
                                v->why = m->path ? NULL : "empty";
                        }
                        free(port);
                        free(dev);
                        if (!v->target || (v->uuid && m && m->path && !v->path))
                                rc = ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                }
                free(cname);
                free(ctype);
        }
        xmlFreeDoc(doc);
        return rc;
}
