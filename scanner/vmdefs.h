/*
 * VM definitions that name disks: libvirt domain XML (Nova's libvirt.xml
 * too), Proxmox qemu-server/<vmid>.conf (volumes resolved through
 * storage.cfg), VMware .vmx, VirtualBox .vbox (its media registry too), and
 * the oVirt volume .meta files of a file storage domain.  Every input is
 * hostile: size caps, XML through libxml2 with the network off, no DTD
 * loaded and no document with a DTD accepted (no entity expansion), caps on
 * VMs, disks and media.  Nothing here opens a disk: it parses text it is
 * given and resolves names lexically (the caller checks the files).
 */
#ifndef IA_VMDEFS_H
#define IA_VMDEFS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define IA_VMDEF_MAX_BYTES (4u << 20) /* a definition file larger than this is refused */
#define IA_VMDEF_MAX_DISKS 1024u      /* disks (or media) per definition */

struct ia_vm_disk {
        char *target; /* "vda", "scsi0", "scsi0:0", "SATA:0:0" (NULL if none) */
        char *bus;    /* "virtio", "scsi", "ide", "AHCI", ... (NULL if unknown) */
        char *device; /* "disk", "cdrom", "floppy", "lun", ... (NULL if unknown) */
        char *source; /* the name as written (NULL: none, an empty drive) */
        char *format; /* the format the definition declares (NULL if none) */
        char *uuid;   /* VirtualBox: the medium's UUID */
        /* the absolute path it names, or NULL with why ("network", "pool", "storage", ...) */
        char *path;
        const char *why; /* static */
};

/* A VirtualBox media registry entry: uuid -> location -> parent. */
struct ia_vm_medium {
        char *uuid, *parent_uuid, *location, *format, *type;
        char *path; /* absolute (NULL if the location is empty) */
};

enum ia_vm_kind { IA_VM_LIBVIRT, IA_VM_PROXMOX, IA_VM_VMWARE, IA_VM_VIRTUALBOX };

struct ia_vmdef {
        enum ia_vm_kind kind;
        char *name, *uuid;
        struct ia_vm_disk *disks;
        size_t ndisks;
        struct ia_vm_medium *media;
        size_t nmedia;
};

/* A Proxmox storage id -> directory (from storage.cfg). */
struct ia_pve_storage {
        char *id, *type, *path;
};

struct ia_pve_storages {
        struct ia_pve_storage *v;
        size_t n;
};

/* An oVirt volume's metadata (<volume>.meta). */
struct ia_ovirt_meta {
        char *format; /* "RAW" or "COW" */
        char *puuid;  /* the parent volume's UUID (NULL or all-zero: none) */
        char *image;  /* IMAGE= (the disk's UUID) */
        char *voltype;
};

/* The kind of definition a file's name suggests. */
enum ia_vmdef_file {
        IA_VMDEF_NONE,
        IA_VMDEF_LIBVIRT,    /* *.xml (a <domain> root; anything else is ignored) */
        IA_VMDEF_PROXMOX,    /* qemu-server/<vmid>.conf */
        IA_VMDEF_PVE_STORE,  /* storage.cfg */
        IA_VMDEF_VMX,        /* *.vmx */
        IA_VMDEF_VBOX,       /* *.vbox */
        IA_VMDEF_OVIRT_META, /* *.meta */
};
enum ia_vmdef_file ia_vmdef_classify(const char *path);

/*
 * Parse the definition in text[0..len) read from path (its directory anchors
 * relative names).  Returns 1 with *out filled, 0 if the file is not a VM
 * definition after all (an XML file that is not a domain), -1 with err set
 * if it is malformed.  pve: the Proxmox storages known (may be NULL).
 */
int ia_vmdef_parse(enum ia_vmdef_file kind, const char *path, const char *text, size_t len,
                   const struct ia_pve_storages *pve, struct ia_vmdef *out, struct ia_error *err);
void ia_vmdef_free(struct ia_vmdef *d);

/* storage.cfg: appends the storages with a path to *st.  -1 on error (err set). */
int ia_pve_storage_parse(const char *text, size_t len, struct ia_pve_storages *st,
                         struct ia_error *err);
void ia_pve_storages_free(struct ia_pve_storages *st);

/* An oVirt .meta file: 1 if it has FORMAT=, 0 if not an oVirt volume's, -1 on error. */
int ia_ovirt_meta_parse(const char *text, size_t len, struct ia_ovirt_meta *m,
                        struct ia_error *err);
void ia_ovirt_meta_free(struct ia_ovirt_meta *m);

const char *ia_vm_kind_name(enum ia_vm_kind k);

/*
 * An OVF descriptor's <File> (References) and <Disk> (DiskSection) elements,
 * wherever they are, with their attributes by local name as written (NULL if
 * absent).  The caller checks the values.
 */
struct ia_ovf_ref {
        char *id, *href, *size;
};
struct ia_ovf_diskdef {
        char *disk_id, *file_ref, *capacity, *units, *format;
};
struct ia_ovf_desc {
        struct ia_ovf_ref *files;
        size_t nfiles;
        struct ia_ovf_diskdef *disks;
        size_t ndisks;
        bool malformed; /* not well-formed: what could be recovered is above */
};
#define IA_OVF_MAX_ITEMS 10000u

/* 0, or -1 with err set (not well-formed, a DTD, over the caps: 4 MiB, 10,000 items). */
int ia_ovf_descriptor_parse(const char *text, size_t len, struct ia_ovf_desc *out,
                            struct ia_error *err);
void ia_ovf_desc_free(struct ia_ovf_desc *d);

#endif
