/*
 * OVF descriptors (for archives.c): the <File> and <Disk> elements wherever
 * they are, read with libxml2 in recovery mode (a damaged descriptor says
 * what it still can, and is marked so).
 */
#define _GNU_SOURCE
#include "vmdefs_int.h"

#include <ctype.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

/* An attribute by local name, whatever its namespace prefix (ovf:href, href). */
static char *attr_local(xmlNodePtr n, const char *name)
{
        for (xmlAttrPtr a = n->properties; a; a = a->next) {
                /* an undeclared prefix stays in the name ("ovf:href") */
                const char *an = (const char *)a->name, *colon = strrchr(an, ':');

                if (strcmp(colon ? colon + 1 : an, name) == 0) {
                        if (!a->children || a->children->type != XML_TEXT_NODE || a->children->next)
                                return NULL;
                        return vmdef_dup0((const char *)a->children->content);
                }
        }
        return NULL;
}

int ia_ovf_descriptor_parse(const char *text, size_t len, struct ia_ovf_desc *out,
                            struct ia_error *err)
{
        xmlDocPtr doc;
        xmlNodePtr n;
        int rc = 0;

        memset(out, 0, sizeof(*out));
        /* recover what a damaged descriptor still says, and say it was damaged */
        doc = vmdef_xml_read_opts(text, len, XML_PARSE_RECOVER, err);
        if (!doc)
                return -1;
        out->malformed = !(doc->properties & XML_DOC_WELLFORMED);
        /* every element, in document order, without recursion */
        n = xmlDocGetRootElement(doc);
        while (n && rc == 0) {
                if (vmdef_named(n, "File")) {
                        struct ia_ovf_ref *f;

                        if (out->nfiles >= IA_OVF_MAX_ITEMS) {
                                rc = ia_error_set(err, IA_ERR_LIMIT,
                                                  "more than %u <File> elements (the cap)",
                                                  IA_OVF_MAX_ITEMS);
                                break;
                        }
                        f = realloc(out->files, (out->nfiles + 1) * sizeof(*f));
                        if (!f) {
                                rc = ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                                break;
                        }
                        out->files = f;
                        f = &out->files[out->nfiles++];
                        f->id = attr_local(n, "id");
                        f->href = attr_local(n, "href");
                        f->size = attr_local(n, "size");
                } else if (vmdef_named(n, "Disk")) {
                        struct ia_ovf_diskdef *d;

                        if (out->ndisks >= IA_OVF_MAX_ITEMS) {
                                rc = ia_error_set(err, IA_ERR_LIMIT,
                                                  "more than %u <Disk> elements (the cap)",
                                                  IA_OVF_MAX_ITEMS);
                                break;
                        }
                        d = realloc(out->disks, (out->ndisks + 1) * sizeof(*d));
                        if (!d) {
                                rc = ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                                break;
                        }
                        out->disks = d;
                        d = &out->disks[out->ndisks++];
                        d->disk_id = attr_local(n, "diskId");
                        d->file_ref = attr_local(n, "fileRef");
                        d->capacity = attr_local(n, "capacity");
                        d->units = attr_local(n, "capacityAllocationUnits");
                        d->format = attr_local(n, "format");
                }
                if (n->children && n->children->type != XML_ENTITY_DECL) {
                        xmlNodePtr c = n->children;

                        while (c && c->type != XML_ELEMENT_NODE)
                                c = c->next;
                        if (c) {
                                n = c;
                                continue;
                        }
                }
                for (;;) {
                        xmlNodePtr s = n->next;

                        while (s && s->type != XML_ELEMENT_NODE)
                                s = s->next;
                        if (s) {
                                n = s;
                                break;
                        }
                        n = n->parent;
                        if (!n || n->type != XML_ELEMENT_NODE) {
                                n = NULL;
                                break;
                        }
                }
        }
        xmlFreeDoc(doc);
        if (rc < 0)
                ia_ovf_desc_free(out);
        return rc;
}

void ia_ovf_desc_free(struct ia_ovf_desc *d)
{
        for (size_t i = 0; i < d->nfiles; i++) {
                free(d->files[i].id);
                free(d->files[i].href);
                free(d->files[i].size);
        }
        for (size_t i = 0; i < d->ndisks; i++) {
                free(d->disks[i].disk_id);
                free(d->disks[i].file_ref);
                free(d->disks[i].capacity);
                free(d->disks[i].units);
                free(d->disks[i].format);
        }
        free(d->files);
        free(d->disks);
        memset(d, 0, sizeof(*d));
}
