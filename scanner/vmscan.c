/*
 * The scan's VM-definition pass (see vmscan.h).
 */
#define _GNU_SOURCE
#include "vmscan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source.h"
#include "store_vms.h"
#include "banned.h"

#define MAX_CONFIG_FILES 100000u
#define MAX_DIR_DEPTH    8u

static char *xdup(const char *s)
{
        return s ? strdup(s) : NULL;
}

static bool seen(const struct ia_vmscan *vs, uint64_t dev, uint64_t ino)
{
        uint64_t k[2] = {dev, ino};

        return ia_hmap_get(&vs->seen, k, sizeof(k)) != NULL;
}

void ia_vmscan_add_text(struct ia_vmscan *vs, enum ia_vmdef_file kind, const char *path,
                        int64_t file_id, uint64_t dev, uint64_t ino, char *text, size_t len)
{
        struct ia_vmscan_text *t;

        if (seen(vs, dev, ino)) {
                free(text);
                return;
        }

        if (vs->ntexts >= MAX_CONFIG_FILES) {
                free(text);
                return;
        }
        t = realloc(vs->texts, (vs->ntexts + 1) * sizeof(*t));
        if (!t) {
                free(text);
                vs->nomem = true;
                return;
        }
        vs->texts = t;
        t = &vs->texts[vs->ntexts];
        t->kind = kind;
        t->path = xdup(path);
        t->file_id = file_id;
        t->text = text;
        t->len = len;
        t->dev = dev;
        t->ino = ino;
        {
                uint64_t k[2] = {dev, ino};

                if (ia_hmap_put(&vs->seen, k, sizeof(k), vs) < 0) /* a marker */
                        vs->nomem = true;
        }
        if (!t->path) {
                free(text);
                vs->nomem = true;
                return;
        }
        vs->ntexts++;
}

void ia_vmscan_add_error(struct ia_vmscan *vs, const char *path, int64_t file_id, const char *msg)
{
        struct ia_vmscan_error *e = realloc(vs->errors, (vs->nerrors + 1) * sizeof(*e));

        if (!e) {
                vs->nomem = true;
                return;
        }
        vs->errors = e;
        e = &vs->errors[vs->nerrors];
        e->path = xdup(path);
        e->msg = xdup(msg);
        e->file_id = file_id;
        if (!e->path || !e->msg) {
                free(e->path);
                free(e->msg);
                vs->nomem = true;
                return;
        }
        vs->nerrors++;
}

static void read_one(struct ia_vmscan *vs, int dirfd, const char *name, const char *path,
                     enum ia_vmdef_file kind)
{
        int fd =
            ia_open_noatime(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        struct stat sb;
        char *text, msg[256];
        size_t got = 0;

        memset(&sb, 0, sizeof(sb));
        if (fd < 0) {
                snprintf(msg, sizeof(msg), "cannot open: %s", strerror(errno));
                ia_vmscan_add_error(vs, path, 0, msg);
                return;
        }
        if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > IA_VMDEF_MAX_BYTES ||
            seen(vs, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino)) {
                close(fd);
                if (S_ISREG(sb.st_mode) && sb.st_size > IA_VMDEF_MAX_BYTES) {
                        snprintf(msg, sizeof(msg), "larger than %u bytes", IA_VMDEF_MAX_BYTES);
                        ia_vmscan_add_error(vs, path, 0, msg);
                }
                return;
        }
        text = malloc((size_t)sb.st_size + 1);
        if (!text) {
                close(fd);
                vs->nomem = true;
                return;
        }
        while (got < (size_t)sb.st_size) {
                ssize_t n = read(fd, text + got, (size_t)sb.st_size - got);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        close(fd);
        text[got] = 0;
        ia_vmscan_add_text(vs, kind, path, 0, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino, text, got);
}

static void add_dir_at(struct ia_vmscan *vs, int fd, const char *path, unsigned depth)
{
        DIR *d = fdopendir(fd);
        struct dirent *e;

        if (!d) {
                close(fd);
                return;
        }
        while ((e = readdir(d)) != NULL) {
                char *sub;
                size_t l;
                struct stat sb;

                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                        continue;
                if (vs->ntexts >= MAX_CONFIG_FILES)
                        break;
                l = strlen(path) + strlen(e->d_name) + 2;
                if (!(sub = malloc(l))) {
                        vs->nomem = true;
                        break;
                }
                snprintf(sub, l, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/",
                         e->d_name);
                if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
                        if (S_ISDIR(sb.st_mode) && depth < MAX_DIR_DEPTH) {
                                int cfd = openat(dirfd(d), e->d_name,
                                                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                                if (cfd >= 0)
                                        add_dir_at(vs, cfd, sub, depth + 1);
                        } else if (S_ISREG(sb.st_mode)) {
                                enum ia_vmdef_file k = ia_vmdef_classify(sub);

                                if (k != IA_VMDEF_NONE)
                                        read_one(vs, dirfd(d), e->d_name, sub, k);
                        }
                }
                free(sub);
        }
        closedir(d);
}

void ia_vmscan_add_dir(struct ia_vmscan *vs, const char *dir)
{
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        char msg[256];

        if (fd < 0) {
                snprintf(msg, sizeof(msg), "--vm-config directory: %s", strerror(errno));
                ia_vmscan_add_error(vs, dir, 0, msg);
                return;
        }
        add_dir_at(vs, fd, dir, 0);
}

static void parse_all(struct ia_vmscan *vs)
{
        struct ia_error err;

        for (size_t i = 0; i < vs->ntexts; i++) {
                struct ia_vmscan_text *t = &vs->texts[i];

                if (t->kind != IA_VMDEF_PVE_STORE)
                        continue;
                ia_error_clear(&err);
                if (ia_pve_storage_parse(t->text, t->len, &vs->pve, &err) < 0)
                        ia_vmscan_add_error(vs, t->path, t->file_id, ia_error_msg(&err));
        }
        for (size_t i = 0; i < vs->ntexts; i++) {
                struct ia_vmscan_text *t = &vs->texts[i];
                struct ia_vmscan_def *d;
                struct ia_vmdef def;
                int rc;

                if (t->kind == IA_VMDEF_PVE_STORE || t->kind == IA_VMDEF_OVIRT_META)
                        continue;
                ia_error_clear(&err);
                rc = ia_vmdef_parse(t->kind, t->path, t->text, t->len, &vs->pve, &def, &err);
                if (rc < 0) {
                        ia_vmscan_add_error(vs, t->path, t->file_id, ia_error_msg(&err));
                        continue;
                }
                if (rc == 0)
                        continue;
                d = realloc(vs->defs, (vs->ndefs + 1) * sizeof(*d));
                if (!d) {
                        ia_vmdef_free(&def);
                        vs->nomem = true;
                        return;
                }
                vs->defs = d;
                d = &vs->defs[vs->ndefs];
                memset(d, 0, sizeof(*d));
                d->def = def;
                d->config_path = xdup(t->path);
                d->config_file_id = t->file_id;
                d->disk_file = calloc(def.ndisks + 1, sizeof(int64_t));
                d->disk_status = calloc(def.ndisks + 1, sizeof(char *));
                d->media_file = calloc(def.nmedia + 1, sizeof(int64_t));
                vs->ndefs++;
                if (!d->config_path || !d->disk_file || !d->disk_status || !d->media_file) {
                        vs->nomem = true;
                        return;
                }
        }
}

void ia_vmscan_resolve(struct ia_vmscan *vs,
                       int64_t (*lookup)(void *opaque, const char *path, const char **status),
                       void (*layout)(void *opaque, const char *path, const char *format),
                       void *opaque)
{
        struct ia_error err;

        parse_all(vs);
        for (size_t i = 0; i < vs->ndefs; i++) {
                struct ia_vmscan_def *d = &vs->defs[i];

                for (size_t k = 0; k < d->def.ndisks; k++) {
                        struct ia_vm_disk *v = &d->def.disks[k];

                        d->disk_status[k] = v->why;
                        if (!v->path)
                                continue;
                        d->disk_status[k] = "ok";
                        d->disk_file[k] = lookup(opaque, v->path, &d->disk_status[k]);
                }
                for (size_t k = 0; k < d->def.nmedia; k++) {
                        const char *st = NULL;

                        if (d->def.media[k].path)
                                d->media_file[k] = lookup(opaque, d->def.media[k].path, &st);
                }
        }
        for (size_t i = 0; i < vs->ntexts; i++) {
                struct ia_vmscan_text *t = &vs->texts[i];
                struct ia_ovirt_meta m;
                size_t l = strlen(t->path);
                int rc;

                if (t->kind != IA_VMDEF_OVIRT_META)
                        continue;
                ia_error_clear(&err);
                rc = ia_ovirt_meta_parse(t->text, t->len, &m, &err);
                if (rc < 0) {
                        ia_vmscan_add_error(vs, t->path, t->file_id, ia_error_msg(&err));
                        continue;
                }
                if (rc == 0)
                        continue;
                t->path[l - 5] = 0; /* the volume beside its .meta */
                layout(opaque, t->path, strcmp(m.format, "RAW") == 0 ? "raw" : "qcow2");
                t->path[l - 5] = '.';
                ia_ovirt_meta_free(&m);
        }
}

int ia_vmscan_store(struct ia_vmscan *vs, struct ia_store *store, int64_t scan_id,
                    struct ia_error *err)
{
        struct ia_vm_rows *w = ia_vm_rows_begin(store, scan_id, err);

        if (!w)
                return -1;
        for (size_t i = 0; i < vs->ndefs; i++) {
                struct ia_vmscan_def *d = &vs->defs[i];
                int64_t vm_id;

                if (ia_vm_rows_vm(w, ia_vm_kind_name(d->def.kind), d->def.name, d->def.uuid,
                                  d->config_path, d->config_file_id, &vm_id) < 0)
                        return ia_vm_rows_abort(w, err);
                for (size_t k = 0; k < d->def.ndisks; k++) {
                        struct ia_vm_disk *v = &d->def.disks[k];
                        const char *status = d->disk_status[k] ? d->disk_status[k] : "empty";
                        struct ia_vm_disk_row row = {
                            .target = v->target,
                            .bus = v->bus,
                            .device = v->device,
                            .source = v->source,
                            .format = v->format,
                            .uuid = v->uuid,
                            .path = v->path,
                            .status = status,
                            .file_id = d->disk_file[k],
                        };

                        if (ia_vm_rows_disk(w, vm_id, &row) < 0)
                                return ia_vm_rows_abort(w, err);
                        if (strcmp(status, "missing") == 0 &&
                            ia_vm_rows_finding(w, d->config_file_id, "vm-disk-missing",
                                               "VM '%s' (%s): disk %s '%s' is missing",
                                               d->def.name ? d->def.name : "?", d->config_path,
                                               v->target ? v->target : "?", v->source) < 0)
                                return ia_vm_rows_abort(w, err);
                }
                for (size_t k = 0; k < d->def.nmedia; k++) {
                        struct ia_vm_medium *m = &d->def.media[k];
                        struct ia_vm_medium_row row = {
                            .uuid = m->uuid,
                            .parent_uuid = m->parent_uuid,
                            .location = m->location,
                            .format = m->format,
                            .type = m->type,
                            .path = m->path,
                            .file_id = d->media_file[k],
                        };

                        if (ia_vm_rows_medium(w, vm_id, &row) < 0)
                                return ia_vm_rows_abort(w, err);
                }
        }
        for (size_t i = 0; i < vs->nerrors; i++)
                if (ia_vm_rows_finding(w, vs->errors[i].file_id, "vm-config-invalid",
                                       "VM definition '%s': %s", vs->errors[i].path,
                                       vs->errors[i].msg) < 0)
                        return ia_vm_rows_abort(w, err);
        return ia_vm_rows_commit(w, err);
}

void ia_vmscan_free(struct ia_vmscan *vs)
{
        for (size_t i = 0; i < vs->ntexts; i++) {
                free(vs->texts[i].path);
                free(vs->texts[i].text);
        }
        for (size_t i = 0; i < vs->ndefs; i++) {
                ia_vmdef_free(&vs->defs[i].def);
                free(vs->defs[i].config_path);
                free(vs->defs[i].disk_file);
                free(vs->defs[i].disk_status);
                free(vs->defs[i].media_file);
        }
        for (size_t i = 0; i < vs->nerrors; i++) {
                free(vs->errors[i].path);
                free(vs->errors[i].msg);
        }
        free(vs->texts);
        free(vs->defs);
        free(vs->errors);
        ia_pve_storages_free(&vs->pve);
        ia_hmap_release(&vs->seen);
        memset(vs, 0, sizeof(*vs));
}
