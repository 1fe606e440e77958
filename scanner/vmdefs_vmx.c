/* VMware .vmx: key = "value" lines; the disks, their device types and presence. */
#define _GNU_SOURCE
#include "vmdefs_int.h"

#include <ctype.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

/* VMware .vmx: key = "value" lines; disks at (scsi|ide|sata|nvme)N:M.fileName. */
int vmdef_parse_vmx(const char *path, const char *text, size_t len, struct ia_vmdef *d,
                    struct ia_error *err)
{
        struct vmdef_lines ls = {text, text + len};
        const char *l;
        size_t n;
        bool toolong = false;
        /* the keys and values, kept to join fileName with deviceType / present */
        struct kv {
                char *k, *v;
        } *kv = NULL;
        size_t nkv = 0;
        int rc = 1;

        if (len > IA_VMDEF_MAX_BYTES || vmdef_has_nul(text, len))
                return ia_error_set(err, IA_ERR_CORRUPT, "not a text file of at most %u bytes",
                                    IA_VMDEF_MAX_BYTES);
        d->kind = IA_VM_VMWARE;
        while ((l = vmdef_next_line(&ls, &n, &toolong)) && !toolong) {
                const char *eq = memchr(l, '=', n), *k = l, *v;
                size_t kn, vn;
                struct kv *nk;

                if (!eq || (n && l[0] == '#'))
                        continue;
                kn = (size_t)(eq - l);
                v = eq + 1;
                vn = n - kn - 1;
                vmdef_trim(&k, &kn);
                vmdef_trim(&v, &vn);
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
                kv[nkv].k = vmdef_dupn(k, kn);
                kv[nkv].v = vmdef_dupn(v, vn);
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
                                  VMDEF_LINE_MAX);
        for (size_t i = 0; i < nkv && rc > 0; i++) {
                static const char *const buses[] = {"scsi", "ide", "sata", "nvme"};
                const char *k = kv[i].k, *dot = strrchr(k, '.');
                char devkey[160], *devtype = NULL;
                bool present = true;
                struct ia_vm_disk *v;
                size_t b;

                if (strcmp(k, "displayname") == 0 && !d->name)
                        d->name = vmdef_dup0(kv[i].v);
                if (strcmp(k, "uuid.bios") == 0 && !d->uuid)
                        d->uuid = vmdef_dup0(kv[i].v);
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
                if (!(v = vmdef_new_disk(d, err))) {
                        rc = -1;
                        break;
                }
                v->target = vmdef_dupn(k, (size_t)(dot - k));
                v->bus = vmdef_dup0(buses[b]);
                v->device = vmdef_dup0(devtype && strstr(devtype, "cdrom") ? "cdrom" : "disk");
                v->source = vmdef_dup0(kv[i].v);
                if (!v->source || !v->source[0] ||
                    (devtype && strstr(devtype, "cdrom") && strcmp(devtype, "cdrom-image") != 0))
                        v->why = "empty";
                else if (!(v->path = vmdef_anchor(path, v->source)))
                        rc = ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < nkv; i++) {
                free(kv[i].k);
                free(kv[i].v);
        }
        free(kv);
        return rc;
}
