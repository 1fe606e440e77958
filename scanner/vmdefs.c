/*
 * VM definitions (see vmdefs.h).  XML through libxml2: XML_PARSE_NONET, no
 * XML_PARSE_NOENT / DTDLOAD / HUGE, and a document carrying a DTD is refused
 * outright, so no entity is ever expanded.  Line formats (Proxmox, VMX,
 * oVirt .meta) are read line by line with bounded lengths.  This file holds
 * what the readers share and the dispatch; one file per format beside it
 * (vmdefs_int.h lists them).
 */
#define _GNU_SOURCE
#include "vmdefs_int.h"

#include <ctype.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

const char *ia_vm_kind_name(enum ia_vm_kind k)
{
        switch (k) {
        case IA_VM_LIBVIRT:
                return "libvirt";
        case IA_VM_PROXMOX:
                return "proxmox";
        case IA_VM_VMWARE:
                return "vmware";
        case IA_VM_VIRTUALBOX:
                return "virtualbox";
        }
        return "unknown";
}

static bool ends_with(const char *s, const char *suf)
{
        size_t a = strlen(s), b = strlen(suf);

        return a > b && strcasecmp(s + a - b, suf) == 0;
}

enum ia_vmdef_file ia_vmdef_classify(const char *path)
{
        const char *base = strrchr(path, '/');

        size_t n;

        base = base ? base + 1 : path;
        n = strlen(base);
        /* every name below ends in one of these letters: most files are passed over here */
        if (n < 5 || !strchr("lLxXaAfFgG", base[n - 1]))
                return IA_VMDEF_NONE;
        if (strcmp(base, "storage.cfg") == 0)
                return IA_VMDEF_PVE_STORE;
        if (ends_with(base, ".xml"))
                return IA_VMDEF_LIBVIRT;
        if (ends_with(base, ".vmx"))
                return IA_VMDEF_VMX;
        if (ends_with(base, ".vbox"))
                return IA_VMDEF_VBOX;
        if (ends_with(base, ".meta"))
                return IA_VMDEF_OVIRT_META;
        if (ends_with(base, ".conf") && base - path >= 12 &&
            strncmp(base - 12, "qemu-server/", 12) == 0) {
                for (const char *p = base; *p != '.'; p++)
                        if (!isdigit((unsigned char)*p))
                                return IA_VMDEF_NONE;
                return base[0] != '.' ? IA_VMDEF_PROXMOX : IA_VMDEF_NONE;
        }
        return IA_VMDEF_NONE;
}

char *vmdef_dupn(const char *s, size_t n)
{
        char *d = malloc(n + 1);

        if (d) {
                memcpy(d, s, n);
                d[n] = 0;
        }
        return d;
}

char *vmdef_dup0(const char *s)
{
        return s ? vmdef_dupn(s, strlen(s)) : NULL;
}

/* dir of path joined with name (name as is if absolute); NULL on no memory. */
char *vmdef_anchor(const char *path, const char *name)
{
        const char *slash = strrchr(path, '/');
        size_t dl, nl = strlen(name);
        char *r;

        if (name[0] == '/' || !slash)
                return vmdef_dup0(name);
        dl = (size_t)(slash - path);
        r = malloc(dl + 1 + nl + 1);
        if (!r)
                return NULL;
        memcpy(r, path, dl);
        r[dl] = '/';
        memcpy(r + dl + 1, name, nl + 1);
        return r;
}

static void disk_free(struct ia_vm_disk *d)
{
        free(d->target);
        free(d->bus);
        free(d->device);
        free(d->source);
        free(d->format);
        free(d->uuid);
        free(d->path);
}

void ia_vmdef_free(struct ia_vmdef *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->ndisks; i++)
                disk_free(&d->disks[i]);
        for (size_t i = 0; i < d->nmedia; i++) {
                free(d->media[i].uuid);
                free(d->media[i].parent_uuid);
                free(d->media[i].location);
                free(d->media[i].format);
                free(d->media[i].type);
                free(d->media[i].path);
        }
        free(d->disks);
        free(d->media);
        free(d->name);
        free(d->uuid);
        memset(d, 0, sizeof(*d));
}

struct ia_vm_disk *vmdef_new_disk(struct ia_vmdef *d, struct ia_error *err)
{
        struct ia_vm_disk *v;

        if (d->ndisks >= IA_VMDEF_MAX_DISKS) {
                ia_error_set(err, IA_ERR_LIMIT, "more than %u disks", IA_VMDEF_MAX_DISKS);
                return NULL;
        }
        v = realloc(d->disks, (d->ndisks + 1) * sizeof(*v));
        if (!v) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                return NULL;
        }
        d->disks = v;
        v = &d->disks[d->ndisks++];
        memset(v, 0, sizeof(*v));
        return v;
}

/* ---- XML ---- */

static void quiet_errors(void *ctx, const char *msg, ...)
{
        (void)ctx;
        (void)msg;
}

xmlDocPtr vmdef_xml_read_opts(const char *text, size_t len, int extra, struct ia_error *err)
{
        xmlDocPtr doc;

        if (len > IA_VMDEF_MAX_BYTES)
                return ia_error_set(err, IA_ERR_LIMIT, "larger than %u bytes", IA_VMDEF_MAX_BYTES),
                       NULL;
        xmlSetGenericErrorFunc(NULL, quiet_errors);
        doc = xmlReadMemory(text, (int)len, NULL, NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                XML_PARSE_NOCDATA | extra);
        if (!doc) {
                ia_error_set(err, IA_ERR_CORRUPT, "not well-formed XML");
                return NULL;
        }
        if (doc->intSubset || doc->extSubset) {
                xmlFreeDoc(doc);
                ia_error_set(err, IA_ERR_CORRUPT, "has a DTD (refused: no entities are expanded)");
                return NULL;
        }
        return doc;
}

xmlDocPtr vmdef_xml_read(const char *path, const char *text, size_t len, struct ia_error *err)
{
        (void)path;
        return vmdef_xml_read_opts(text, len, 0, err);
}

bool vmdef_named(xmlNodePtr n, const char *name)
{
        return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

xmlNodePtr vmdef_child(xmlNodePtr n, const char *name)
{
        for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
                if (vmdef_named(c, name))
                        return c;
        return NULL;
}

/* An attribute's value (its text nodes only: an entity reference is not followed). */
char *vmdef_attr(xmlNodePtr n, const char *name)
{
        xmlAttrPtr a;

        if (!n)
                return NULL;
        a = xmlHasProp(n, (const xmlChar *)name);
        if (!a || !a->children || a->children->type != XML_TEXT_NODE || a->children->next)
                return NULL;
        return vmdef_dup0((const char *)a->children->content);
}

/* An element's text (its first text child). */
char *vmdef_text_of(xmlNodePtr n)
{
        for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
                if (c->type == XML_TEXT_NODE && c->content) {
                        const char *s = (const char *)c->content;
                        size_t l;

                        while (isspace((unsigned char)*s))
                                s++;
                        l = strlen(s);
                        while (l && isspace((unsigned char)s[l - 1]))
                                l--;
                        return vmdef_dupn(s, l);
                }
        return NULL;
}
/* ---- line formats ---- */

/* The next line (without its newline), or NULL at the end; -1 via *toolong. */
const char *vmdef_next_line(struct vmdef_lines *ls, size_t *n, bool *toolong)
{
        const char *s = ls->p, *e;

        if (s >= ls->end)
                return NULL;
        e = memchr(s, '\n', (size_t)(ls->end - s));
        if (!e)
                e = ls->end;
        ls->p = e < ls->end ? e + 1 : e;
        *n = (size_t)(e - s);
        if (*n && s[*n - 1] == '\r')
                (*n)--;
        if (*n > VMDEF_LINE_MAX)
                *toolong = true;
        return s;
}

void vmdef_trim(const char **s, size_t *n)
{
        while (*n && isspace((unsigned char)**s))
                (*s)++, (*n)--;
        while (*n && isspace((unsigned char)(*s)[*n - 1]))
                (*n)--;
}

bool vmdef_has_nul(const char *text, size_t len)
{
        return memchr(text, 0, len) != NULL;
}

int ia_vmdef_parse(enum ia_vmdef_file kind, const char *path, const char *text, size_t len,
                   const struct ia_pve_storages *pve, struct ia_vmdef *out, struct ia_error *err)
{
        int rc;

        memset(out, 0, sizeof(*out));
        switch (kind) {
        case IA_VMDEF_LIBVIRT:
                rc = vmdef_parse_libvirt(path, text, len, out, err);
                break;
        case IA_VMDEF_VBOX:
                rc = vmdef_parse_vbox(path, text, len, out, err);
                break;
        case IA_VMDEF_VMX:
                rc = vmdef_parse_vmx(path, text, len, out, err);
                break;
        case IA_VMDEF_PROXMOX:
                rc = vmdef_parse_proxmox(path, text, len, pve, out, err);
                break;
        default:
                rc = 0;
        }
        if (rc <= 0)
                ia_vmdef_free(out);
        return rc;
}
