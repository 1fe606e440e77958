/*
 * The private header of the VM-definition readers (vmdefs.h is the public
 * one): the helpers they share and one parser per format.  Only
 * scanner/vmdefs*.c include it.
 *
 *   vmdefs.c         names, classification, strings and disks, XML and line
 *                    reading, the dispatch (ia_vmdef_parse)
 *   vmdefs_libvirt.c libvirt domain XML
 *   vmdefs_vbox.c    VirtualBox .vbox (the media registry, the attachments)
 *   vmdefs_vmx.c     VMware .vmx
 *   vmdefs_proxmox.c Proxmox qemu-server/<vmid>.conf and storage.cfg
 *   vmdefs_ovirt.c   oVirt volume .meta files
 *   vmdefs_ovf.c     OVF descriptors (for archives.c)
 */
#ifndef IA_VMDEFS_INT_H
#define IA_VMDEFS_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "vmdefs.h"

#define VMDEF_LINE_MAX 65536u /* bytes of one line of a line format */

/* Strings: a copy of s[0..n), a copy of s (NULL stays NULL); NULL on no memory. */
char *vmdef_dupn(const char *s, size_t n);
char *vmdef_dup0(const char *s);
/* dir of path joined with name (name as is if absolute); NULL on no memory. */
char *vmdef_anchor(const char *path, const char *name);
/* A new, zeroed disk at the end of d's (NULL with err set: over the cap, no memory). */
struct ia_vm_disk *vmdef_new_disk(struct ia_vmdef *d, struct ia_error *err);

/* XML: text[0..len) parsed as the header of vmdefs.c says (extra: more XML_PARSE_ flags). */
xmlDocPtr vmdef_xml_read_opts(const char *text, size_t len, int extra, struct ia_error *err);
xmlDocPtr vmdef_xml_read(const char *path, const char *text, size_t len, struct ia_error *err);
bool vmdef_named(xmlNodePtr n, const char *name);
xmlNodePtr vmdef_child(xmlNodePtr n, const char *name);
char *vmdef_attr(xmlNodePtr n, const char *name);
char *vmdef_text_of(xmlNodePtr n);

/* Line formats. */
struct vmdef_lines {
        const char *p, *end;
};
const char *vmdef_next_line(struct vmdef_lines *ls, size_t *n, bool *toolong);
void vmdef_trim(const char **s, size_t *n);
bool vmdef_has_nul(const char *text, size_t len);

/* The parsers: 1 with d filled, 0 if the file is no definition after all, -1 with err set. */
int vmdef_parse_libvirt(const char *path, const char *text, size_t len, struct ia_vmdef *d,
                        struct ia_error *err);
int vmdef_parse_vbox(const char *path, const char *text, size_t len, struct ia_vmdef *d,
                     struct ia_error *err);
int vmdef_parse_vmx(const char *path, const char *text, size_t len, struct ia_vmdef *d,
                    struct ia_error *err);
int vmdef_parse_proxmox(const char *path, const char *text, size_t len,
                        const struct ia_pve_storages *st, struct ia_vmdef *d, struct ia_error *err);

#endif
