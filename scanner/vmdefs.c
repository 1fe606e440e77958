/*
 * VM definitions (see vmdefs.h).  XML through libxml2: XML_PARSE_NONET, no
 * XML_PARSE_NOENT / DTDLOAD / HUGE, and a document carrying a DTD is refused
 * outright, so no entity is ever expanded.  Line formats (Proxmox, VMX,
 * oVirt .meta) are read line by line with bounded lengths.
 */
#define _GNU_SOURCE
#include "vmdefs.h"

#include <ctype.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include "banned.h"

#define LINE_MAX_BYTES 65536u

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

        base = base ? base + 1 : path;
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

static char *dupn(const char *s, size_t n)
{
        char *d = malloc(n + 1);

        if (d) {
                memcpy(d, s, n);
                d[n] = 0;
        }
        return d;
}

static char *dup0(const char *s)
{
        return s ? dupn(s, strlen(s)) : NULL;
}

/* dir of path joined with name (name as is if absolute); NULL on no memory. */
static char *anchor(const char *path, const char *name)
{
        const char *slash = strrchr(path, '/');
        size_t dl, nl = strlen(name);
        char *r;

        if (name[0] == '/' || !slash)
                return dup0(name);
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

static struct ia_vm_disk *new_disk(struct ia_vmdef *d, struct ia_error *err)
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

static xmlDocPtr xml_read_opts(const char *text, size_t len, int extra, struct ia_error *err)
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

static xmlDocPtr xml_read(const char *path, const char *text, size_t len, struct ia_error *err)
{
        (void)path;
        return xml_read_opts(text, len, 0, err);
}

static bool named(xmlNodePtr n, const char *name)
{
        return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
        for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
                if (named(c, name))
                        return c;
        return NULL;
}

/* An attribute's value (its text nodes only: an entity reference is not followed). */
static char *attr(xmlNodePtr n, const char *name)
{
        xmlAttrPtr a;

        if (!n)
                return NULL;
        a = xmlHasProp(n, (const xmlChar *)name);
        if (!a || !a->children || a->children->type != XML_TEXT_NODE || a->children->next)
                return NULL;
        return dup0((const char *)a->children->content);
}

/* An element's text (its first text child). */
static char *text_of(xmlNodePtr n)
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
                        return dupn(s, l);
                }
        return NULL;
}

static int libvirt_disk(struct ia_vmdef *d, const char *path, xmlNodePtr n, struct ia_error *err)
{
        struct ia_vm_disk *v = new_disk(d, err);
        char *type;
        xmlNodePtr src = child(n, "source"), tgt = child(n, "target");

        if (!v)
                return -1;
        type = attr(n, "type");
        v->device = attr(n, "device");
        v->format = attr(child(n, "driver"), "type");
        v->target = attr(tgt, "dev");
        v->bus = attr(tgt, "bus");
        if (!src) {
                v->why = "empty";
        } else if (!type || strcmp(type, "file") == 0) {
                v->source = attr(src, "file");
                v->why = v->source ? NULL : "empty";
        } else if (strcmp(type, "block") == 0) {
                v->source = attr(src, "dev");
                v->why = v->source ? NULL : "empty";
        } else if (strcmp(type, "volume") == 0) {
                char *pool = attr(src, "pool"), *vol = attr(src, "volume");

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
                v->source = attr(src, "name");
                v->why = "network";
        }
        free(type);
        if (v->source && !v->why && !(v->path = anchor(path, v->source)))
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        return 0;
}

static int parse_libvirt(const char *path, const char *text, size_t len, struct ia_vmdef *d,
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
        doc = xml_read(path, text, len, err);
        if (!doc)
                return -1;
        root = xmlDocGetRootElement(doc);
        if (!named(root, "domain")) {
                xmlFreeDoc(doc);
                return 0;
        }
        d->kind = IA_VM_LIBVIRT;
        d->name = text_of(child(root, "name"));
        d->uuid = text_of(child(root, "uuid"));
        devs = child(root, "devices");
        for (xmlNodePtr c = devs ? devs->children : NULL; c && rc > 0; c = c->next)
                if (named(c, "disk") && libvirt_disk(d, path, c, err) < 0)
                        rc = -1;
        xmlFreeDoc(doc);
        return rc;
}

/* VirtualBox: the registry (nested HardDisk elements: a child is a differencing image). */
static int vbox_media(struct ia_vmdef *d, const char *path, xmlNodePtr list, const char *parent,
                      unsigned depth, struct ia_error *err)
{
        if (depth > 64)
                return ia_error_set(err, IA_ERR_LIMIT, "media registry nested too deep");
        for (xmlNodePtr c = list ? list->children : NULL; c; c = c->next) {
                struct ia_vm_medium *m;

                if (!named(c, "HardDisk"))
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
                m->uuid = attr(c, "uuid");
                m->location = attr(c, "location");
                m->format = attr(c, "format");
                m->type = attr(c, "type");
                m->parent_uuid = dup0(parent);
                if (m->location && m->location[0] && !(m->path = anchor(path, m->location)))
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

static int parse_vbox(const char *path, const char *text, size_t len, struct ia_vmdef *d,
                      struct ia_error *err)
{
        xmlDocPtr doc = xml_read(path, text, len, err);
        xmlNodePtr root, mach, ctls;
        int rc = 1;

        if (!doc)
                return -1;
        root = xmlDocGetRootElement(doc);
        mach = named(root, "VirtualBox") ? child(root, "Machine") : NULL;
        if (!mach) {
                xmlFreeDoc(doc);
                return ia_error_set(err, IA_ERR_CORRUPT, "no VirtualBox/Machine element");
        }
        d->kind = IA_VM_VIRTUALBOX;
        d->name = attr(mach, "name");
        d->uuid = attr(mach, "uuid");
        if (vbox_media(d, path, child(child(mach, "MediaRegistry"), "HardDisks"), NULL, 0, err) <
            0) {
                xmlFreeDoc(doc);
                return -1;
        }
        /* the current state's attachments (a snapshot's own list is history) */
        ctls = child(mach, "StorageControllers");
        for (xmlNodePtr c = ctls ? ctls->children : NULL; c && rc > 0; c = c->next) {
                char *cname, *ctype;

                if (!named(c, "StorageController"))
                        continue;
                cname = attr(c, "name");
                ctype = attr(c, "type");
                for (xmlNodePtr a = c->children; a && rc > 0; a = a->next) {
                        struct ia_vm_disk *v;
                        char *type, *port, *dev, buf[256];
                        const struct ia_vm_medium *m;

                        if (!named(a, "AttachedDevice"))
                                continue;
                        if (!(v = new_disk(d, err))) {
                                rc = -1;
                                break;
                        }
                        type = attr(a, "type");
                        port = attr(a, "port");
                        dev = attr(a, "device");
                        snprintf(buf, sizeof(buf), "%.100s:%.20s:%.20s", cname ? cname : "",
                                 port ? port : "0", dev ? dev : "0");
                        v->target = dup0(buf);
                        v->bus = dup0(ctype);
                        v->device = type;
                        v->uuid = attr(child(a, "Image"), "uuid");
                        m = medium(d, v->uuid);
                        if (!v->uuid)
                                v->why = "empty";
                        else if (!m)
                                v->why = "not-in-registry";
                        else {
                                v->source = dup0(m->location);
                                v->format = dup0(m->format);
                                v->path = dup0(m->path);
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

/* ---- line formats ---- */

struct lines {
        const char *p, *end;
};

/* The next line (without its newline), or NULL at the end; -1 via *toolong. */
static const char *next_line(struct lines *ls, size_t *n, bool *toolong)
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
        if (*n > LINE_MAX_BYTES)
                *toolong = true;
        return s;
}

static void trim(const char **s, size_t *n)
{
        while (*n && isspace((unsigned char)**s))
                (*s)++, (*n)--;
        while (*n && isspace((unsigned char)(*s)[*n - 1]))
                (*n)--;
}

static bool has_nul(const char *text, size_t len)
{
        return memchr(text, 0, len) != NULL;
}

/* VMware .vmx: key = "value" lines; disks at (scsi|ide|sata|nvme)N:M.fileName. */
static int parse_vmx(const char *path, const char *text, size_t len, struct ia_vmdef *d,
                     struct ia_error *err)
{
        struct lines ls = {text, text + len};
        const char *l;
        size_t n;
        bool toolong = false;
        /* the keys and values, kept to join fileName with deviceType / present */
        struct kv {
                char *k, *v;
        } *kv = NULL;
        size_t nkv = 0;
        int rc = 1;

        if (len > IA_VMDEF_MAX_BYTES || has_nul(text, len))
                return ia_error_set(err, IA_ERR_CORRUPT, "not a text file of at most %u bytes",
                                    IA_VMDEF_MAX_BYTES);
        d->kind = IA_VM_VMWARE;
        while ((l = next_line(&ls, &n, &toolong)) && !toolong) {
                const char *eq = memchr(l, '=', n), *k = l, *v;
                size_t kn, vn;
                struct kv *nk;

                if (!eq || (n && l[0] == '#'))
                        continue;
                kn = (size_t)(eq - l);
                v = eq + 1;
                vn = n - kn - 1;
                trim(&k, &kn);
                trim(&v, &vn);
                if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"')
                        v++, vn -= 2;
                if (nkv >= 100000) {
                        rc = ia_error_set(err, IA_ERR_LIMIT, "too many keys");
                        break;
                }
                nk = realloc(kv, (nkv + 1) * sizeof(*kv));
                if (!nk) {
                        rc = ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                        break;
                }
                kv = nk;
                kv[nkv].k = dupn(k, kn);
                kv[nkv].v = dupn(v, vn);
                if (!kv[nkv].k || !kv[nkv].v) {
                        free(kv[nkv].k);
                        free(kv[nkv].v);
                        rc = ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                        break;
                }
                for (char *c = kv[nkv].k; *c; c++)
                        *c = (char)tolower((unsigned char)*c);
                nkv++;
        }
        if (toolong && rc > 0)
                rc = ia_error_set(err, IA_ERR_CORRUPT, "a line longer than %u bytes",
                                  LINE_MAX_BYTES);
        for (size_t i = 0; i < nkv && rc > 0; i++) {
                static const char *const buses[] = {"scsi", "ide", "sata", "nvme"};
                const char *k = kv[i].k, *dot = strrchr(k, '.');
                char devkey[160], *devtype = NULL;
                bool present = true;
                struct ia_vm_disk *v;
                size_t b;

                if (strcmp(k, "displayname") == 0 && !d->name)
                        d->name = dup0(kv[i].v);
                if (strcmp(k, "uuid.bios") == 0 && !d->uuid)
                        d->uuid = dup0(kv[i].v);
                if (!dot || strcmp(dot, ".filename") != 0 || (size_t)(dot - k) > 64)
                        continue;
                for (b = 0; b < 4; b++)
                        if (strncmp(k, buses[b], strlen(buses[b])) == 0 &&
                            isdigit((unsigned char)k[strlen(buses[b])]) && strchr(k, ':'))
                                break;
                if (b == 4)
                        continue;
                for (size_t j = 0; j < nkv; j++) {
                        snprintf(devkey, sizeof(devkey), "%.*s.devicetype", (int)(dot - k), k);
                        if (strcmp(kv[j].k, devkey) == 0)
                                devtype = kv[j].v;
                        snprintf(devkey, sizeof(devkey), "%.*s.present", (int)(dot - k), k);
                        if (strcmp(kv[j].k, devkey) == 0 && strcasecmp(kv[j].v, "false") == 0)
                                present = false;
                }
                if (!present)
                        continue;
                if (!(v = new_disk(d, err))) {
                        rc = -1;
                        break;
                }
                v->target = dupn(k, (size_t)(dot - k));
                v->bus = dup0(buses[b]);
                v->device = dup0(devtype && strstr(devtype, "cdrom") ? "cdrom" : "disk");
                v->source = dup0(kv[i].v);
                if (!v->source || !v->source[0] ||
                    (devtype && strstr(devtype, "cdrom") && strcmp(devtype, "cdrom-image") != 0))
                        v->why = "empty";
                else if (!(v->path = anchor(path, v->source)))
                        rc = ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < nkv; i++) {
                free(kv[i].k);
                free(kv[i].v);
        }
        free(kv);
        return rc;
}

static const struct ia_pve_storage *pve_find(const struct ia_pve_storages *st, const char *id,
                                             size_t n)
{
        for (size_t i = 0; st && i < st->n; i++)
                if (strlen(st->v[i].id) == n && strncmp(st->v[i].id, id, n) == 0)
                        return &st->v[i];
        return NULL;
}

/* A Proxmox volume id "STORAGE:VOLNAME" (or an absolute path) to a path. */
static int pve_volume(struct ia_vm_disk *v, const struct ia_pve_storages *st, struct ia_error *err)
{
        const char *s = v->source, *colon = strchr(s, ':'), *vol, *dir;
        const struct ia_pve_storage *ps;
        char *p;
        size_t l;

        if (s[0] == '/') {
                v->path = dup0(s);
                return v->path ? 0 : ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        if (!colon || strcmp(s, "none") == 0 || strcmp(s, "cdrom") == 0) {
                v->why = "empty";
                return 0;
        }
        ps = pve_find(st, s, (size_t)(colon - s));
        dir = ps ? ps->path : NULL;
        if (!ps && colon - s == 5 && strncmp(s, "local", 5) == 0)
                dir = "/var/lib/vz"; /* Proxmox's default directory storage */
        if (!dir) {
                v->why = "storage";
                return 0;
        }
        vol = colon + 1;
        if (strstr(vol, "..") || vol[0] == '/') {
                v->why = "storage"; /* a volume name never leaves its storage */
                return 0;
        }
        if (strncmp(vol, "iso/", 4) == 0) {
                l = strlen(dir) + strlen(vol) + 16;
                if (!(p = malloc(l)))
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                snprintf(p, l, "%s/template/%s", dir, vol);
        } else {
                /* VMID/NAME, or a linked clone BASEVMID/BASE/VMID/NAME: the last two */
                const char *q = vol + strlen(vol);
                int slashes = 0;

                while (q > vol && slashes < 2)
                        if (*--q == '/' && ++slashes == 2)
                                q++;
                if (strstr(q, "..") || strchr(q, '/') == NULL) {
                        v->why = "storage";
                        return 0;
                }
                l = strlen(dir) + strlen(q) + 16;
                if (!(p = malloc(l)))
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                snprintf(p, l, "%s/images/%s", dir, q);
        }
        v->path = p;
        return 0;
}

static bool pve_disk_key(const char *k, size_t n, const char **bus)
{
        static const char *const keys[] = {"scsi",    "virtio",   "ide",   "sata",
                                           "efidisk", "tpmstate", "unused"};

        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                size_t kl = strlen(keys[i]);

                if (n > kl && strncmp(k, keys[i], kl) == 0) {
                        size_t j = kl;

                        while (j < n && isdigit((unsigned char)k[j]))
                                j++;
                        if (j == n && j > kl) {
                                *bus = keys[i];
                                return true;
                        }
                }
        }
        return false;
}

static int parse_proxmox(const char *path, const char *text, size_t len,
                         const struct ia_pve_storages *st, struct ia_vmdef *d, struct ia_error *err)
{
        struct lines ls = {text, text + len};
        const char *l, *base = strrchr(path, '/');
        size_t n;
        bool toolong = false;

        if (len > IA_VMDEF_MAX_BYTES || has_nul(text, len))
                return ia_error_set(err, IA_ERR_CORRUPT, "not a text file of at most %u bytes",
                                    IA_VMDEF_MAX_BYTES);
        d->kind = IA_VM_PROXMOX;
        base = base ? base + 1 : path;
        d->uuid = dupn(base, strcspn(base, ".")); /* the VMID */
        if (!d->uuid)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        while ((l = next_line(&ls, &n, &toolong)) && !toolong) {
                const char *colon, *k = l, *v, *bus;
                size_t kn, vn;
                struct ia_vm_disk *dk;

                if (n && l[0] == '[')
                        break; /* a snapshot's section: the current configuration is above */
                if (n == 0 || l[0] == '#' || !(colon = memchr(l, ':', n)))
                        continue;
                kn = (size_t)(colon - l);
                v = colon + 1;
                vn = n - kn - 1;
                trim(&k, &kn);
                trim(&v, &vn);
                if (kn == 4 && strncmp(k, "name", 4) == 0) {
                        free(d->name);
                        if (!(d->name = dupn(v, vn)))
                                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                        continue;
                }
                if (!pve_disk_key(k, kn, &bus))
                        continue;
                if (!(dk = new_disk(d, err)))
                        return -1;
                dk->target = dupn(k, kn);
                dk->bus = dup0(strcmp(bus, "unused") == 0 ? NULL : bus);
                dk->device = dup0(memmem(v, vn, "media=cdrom", 11) ? "cdrom"
                                  : strcmp(bus, "unused") == 0     ? "unused"
                                                                   : "disk");
                dk->source = dupn(v, strcspn(v, ",") < vn ? strcspn(v, ",") : vn);
                if (!dk->target || !dk->device || !dk->source)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                {
                        const char *f = memmem(v, vn, "format=", 7);

                        if (f)
                                dk->format = dupn(f + 7, strcspn(f + 7, ", \t\r\n"));
                }
                if (pve_volume(dk, st, err) < 0)
                        return -1;
        }
        if (toolong)
                return ia_error_set(err, IA_ERR_CORRUPT, "a line longer than %u bytes",
                                    LINE_MAX_BYTES);
        return 1;
}

int ia_pve_storage_parse(const char *text, size_t len, struct ia_pve_storages *st,
                         struct ia_error *err)
{
        struct lines ls = {text, text + len};
        const char *l;
        size_t n;
        bool toolong = false;
        struct ia_pve_storage *cur = NULL;

        if (len > IA_VMDEF_MAX_BYTES || has_nul(text, len))
                return ia_error_set(err, IA_ERR_CORRUPT, "not a text file of at most %u bytes",
                                    IA_VMDEF_MAX_BYTES);
        while ((l = next_line(&ls, &n, &toolong)) && !toolong) {
                bool indented = n && isspace((unsigned char)l[0]);
                const char *s = l;

                trim(&s, &n);
                if (n == 0 || s[0] == '#')
                        continue;
                if (!indented) {
                        /* "TYPE: ID" */
                        const char *colon = memchr(s, ':', n), *id;
                        size_t idn;
                        struct ia_pve_storage *v;

                        cur = NULL;
                        if (!colon)
                                continue;
                        id = colon + 1;
                        idn = n - (size_t)(id - s);
                        trim(&id, &idn);
                        if (st->n >= 10000)
                                return ia_error_set(err, IA_ERR_LIMIT, "too many storages");
                        v = realloc(st->v, (st->n + 1) * sizeof(*v));
                        if (!v)
                                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                        st->v = v;
                        cur = &st->v[st->n++];
                        cur->type = dupn(s, (size_t)(colon - s));
                        cur->id = dupn(id, idn);
                        cur->path = NULL;
                        if (!cur->type || !cur->id)
                                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                } else if (cur && n > 5 && strncmp(s, "path", 4) == 0 &&
                           isspace((unsigned char)s[4])) {
                        const char *p = s + 5;
                        size_t pn = n - 5;

                        trim(&p, &pn);
                        free(cur->path);
                        if (!(cur->path = dupn(p, pn)))
                                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                }
        }
        if (toolong)
                return ia_error_set(err, IA_ERR_CORRUPT, "a line longer than %u bytes",
                                    LINE_MAX_BYTES);
        return 0;
}

void ia_pve_storages_free(struct ia_pve_storages *st)
{
        for (size_t i = 0; i < st->n; i++) {
                free(st->v[i].id);
                free(st->v[i].type);
                free(st->v[i].path);
        }
        free(st->v);
        st->v = NULL;
        st->n = 0;
}

int ia_ovirt_meta_parse(const char *text, size_t len, struct ia_ovirt_meta *m, struct ia_error *err)
{
        struct lines ls = {text, text + len};
        const char *l;
        size_t n;
        bool toolong = false;

        memset(m, 0, sizeof(*m));
        (void)err;
        if (len > 65536 || has_nul(text, len))
                return 0; /* any *.meta is a candidate: this one is no oVirt volume's */
        while ((l = next_line(&ls, &n, &toolong)) && !toolong) {
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
                if (!(*slot = dupn(eq + 1, n - kn - 1))) {
                        ia_ovirt_meta_free(m);
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                }
        }
        if (toolong) {
                ia_ovirt_meta_free(m);
                return ia_error_set(err, IA_ERR_CORRUPT, "a line longer than %u bytes",
                                    LINE_MAX_BYTES);
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

/* ---- OVF ---- */

/* An attribute by local name, whatever its namespace prefix (ovf:href, href). */
static char *attr_local(xmlNodePtr n, const char *name)
{
        for (xmlAttrPtr a = n->properties; a; a = a->next) {
                /* an undeclared prefix stays in the name ("ovf:href") */
                const char *an = (const char *)a->name, *colon = strrchr(an, ':');

                if (strcmp(colon ? colon + 1 : an, name) == 0) {
                        if (!a->children || a->children->type != XML_TEXT_NODE || a->children->next)
                                return NULL;
                        return dup0((const char *)a->children->content);
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
        doc = xml_read_opts(text, len, XML_PARSE_RECOVER, err);
        if (!doc)
                return -1;
        out->malformed = !(doc->properties & XML_DOC_WELLFORMED);
        /* every element, in document order, without recursion */
        n = xmlDocGetRootElement(doc);
        while (n && rc == 0) {
                if (named(n, "File")) {
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
                } else if (named(n, "Disk")) {
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

int ia_vmdef_parse(enum ia_vmdef_file kind, const char *path, const char *text, size_t len,
                   const struct ia_pve_storages *pve, struct ia_vmdef *out, struct ia_error *err)
{
        int rc;

        memset(out, 0, sizeof(*out));
        switch (kind) {
        case IA_VMDEF_LIBVIRT:
                rc = parse_libvirt(path, text, len, out, err);
                break;
        case IA_VMDEF_VBOX:
                rc = parse_vbox(path, text, len, out, err);
                break;
        case IA_VMDEF_VMX:
                rc = parse_vmx(path, text, len, out, err);
                break;
        case IA_VMDEF_PROXMOX:
                rc = parse_proxmox(path, text, len, pve, out, err);
                break;
        default:
                rc = 0;
        }
        if (rc <= 0)
                ia_vmdef_free(out);
        return rc;
}
