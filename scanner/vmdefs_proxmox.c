/*
 * Proxmox VE: qemu-server/<vmid>.conf (the current configuration, above any
 * snapshot section) and storage.cfg (the storages that have a directory),
 * volume ids "STORAGE:VOLNAME" resolved to paths.
 */
#define _GNU_SOURCE
#include "vmdefs_int.h"

#include <ctype.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

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
                v->path = vmdef_dup0(s);
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

int vmdef_parse_proxmox(const char *path, const char *text, size_t len,
                        const struct ia_pve_storages *st, struct ia_vmdef *d, struct ia_error *err)
{
        struct vmdef_lines ls = {text, text + len};
        const char *l, *base = strrchr(path, '/');
        size_t n;
        bool toolong = false;

        if (len > IA_VMDEF_MAX_BYTES || vmdef_has_nul(text, len))
                return ia_error_set(err, IA_ERR_CORRUPT, "not a text file of at most %u bytes",
                                    IA_VMDEF_MAX_BYTES);
        d->kind = IA_VM_PROXMOX;
        base = base ? base + 1 : path;
        d->uuid = vmdef_dupn(base, strcspn(base, ".")); /* the VMID */
        if (!d->uuid)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        while ((l = vmdef_next_line(&ls, &n, &toolong)) && !toolong) {
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
                vmdef_trim(&k, &kn);
                vmdef_trim(&v, &vn);
                if (kn == 4 && strncmp(k, "name", 4) == 0) {
                        free(d->name);
                        if (!(d->name = vmdef_dupn(v, vn)))
                                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                        continue;
                }
                if (!pve_disk_key(k, kn, &bus))
                        continue;
                if (!(dk = vmdef_new_disk(d, err)))
                        return -1;
                dk->target = vmdef_dupn(k, kn);
                dk->bus = vmdef_dup0(strcmp(bus, "unused") == 0 ? NULL : bus);
                dk->device = vmdef_dup0(memmem(v, vn, "media=cdrom", 11) ? "cdrom"
                                        : strcmp(bus, "unused") == 0     ? "unused"
                                                                         : "disk");
                dk->source = vmdef_dupn(v, strcspn(v, ",") < vn ? strcspn(v, ",") : vn);
                if (!dk->target || !dk->device || !dk->source)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                {
                        const char *f = memmem(v, vn, "format=", 7);

                        if (f)
                                dk->format = vmdef_dupn(f + 7, strcspn(f + 7, ", \t\r\n"));
                }
                if (pve_volume(dk, st, err) < 0)
                        return -1;
        }
        if (toolong)
                return ia_error_set(err, IA_ERR_CORRUPT, "a line longer than %u bytes",
                                    VMDEF_LINE_MAX);
        return 1;
}

int ia_pve_storage_parse(const char *text, size_t len, struct ia_pve_storages *st,
                         struct ia_error *err)
{
        struct vmdef_lines ls = {text, text + len};
        const char *l;
        size_t n;
        bool toolong = false;
        struct ia_pve_storage *cur = NULL;

        if (len > IA_VMDEF_MAX_BYTES || vmdef_has_nul(text, len))
                return ia_error_set(err, IA_ERR_CORRUPT, "not a text file of at most %u bytes",
                                    IA_VMDEF_MAX_BYTES);
        while ((l = vmdef_next_line(&ls, &n, &toolong)) && !toolong) {
                bool indented = n && isspace((unsigned char)l[0]);
                const char *s = l;

                vmdef_trim(&s, &n);
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
                        vmdef_trim(&id, &idn);
                        if (st->n >= 10000)
                                return ia_error_set(err, IA_ERR_LIMIT, "too many storages");
                        v = realloc(st->v, (st->n + 1) * sizeof(*v));
                        if (!v)
                                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                        st->v = v;
                        cur = &st->v[st->n++];
                        cur->type = vmdef_dupn(s, (size_t)(colon - s));
                        cur->id = vmdef_dupn(id, idn);
                        cur->path = NULL;
                        if (!cur->type || !cur->id)
                                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                } else if (cur && n > 5 && strncmp(s, "path", 4) == 0 &&
                           isspace((unsigned char)s[4])) {
                        const char *p = s + 5;
                        size_t pn = n - 5;

                        vmdef_trim(&p, &pn);
                        free(cur->path);
                        if (!(cur->path = vmdef_dupn(p, pn)))
                                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                }
        }
        if (toolong)
                return ia_error_set(err, IA_ERR_CORRUPT, "a line longer than %u bytes",
                                    VMDEF_LINE_MAX);
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
