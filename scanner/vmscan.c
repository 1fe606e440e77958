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

#include <sqlite3.h>
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
        int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
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

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
        if (s)
                sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
        else
                sqlite3_bind_null(st, i);
}

static void bind_id(sqlite3_stmt *st, int i, int64_t id)
{
        if (id > 0)
                sqlite3_bind_int64(st, i, id);
        else
                sqlite3_bind_null(st, i);
}

static int finding(sqlite3_stmt *st, int64_t scan_id, int64_t file_id, const char *code,
                   const char *msg)
{
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, scan_id);
        bind_id(st, 2, file_id);
        bind_text(st, 3, code);
        bind_text(st, 4, msg);
        return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int ia_vmscan_store(struct ia_vmscan *vs, struct ia_store *store, int64_t scan_id,
                    struct ia_error *err)
{
        sqlite3 *db = ia_store_db(store);
        sqlite3_stmt *sv = NULL, *sd = NULL, *sm = NULL, *sf = NULL;
        int rc = -1;

        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
                goto fail;
        if (sqlite3_prepare_v2(db,
                               "INSERT INTO vms (scan_id, kind, name, uuid, config_path, "
                               "config_file_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                               -1, &sv, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db,
                               "INSERT INTO vm_disks (scan_id, vm_id, target, bus, device, "
                               "source, format, uuid, path, file_id, status) VALUES "
                               "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                               -1, &sd, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db,
                               "INSERT INTO vm_media (scan_id, vm_id, uuid, parent_uuid, "
                               "location, format, type, path, file_id) VALUES "
                               "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                               -1, &sm, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db,
                               "INSERT INTO findings (scan_id, image_id, file_id, code, message) "
                               "VALUES (?1, NULL, ?2, ?3, ?4)",
                               -1, &sf, NULL) != SQLITE_OK)
                goto fail;
        for (size_t i = 0; i < vs->ndefs; i++) {
                struct ia_vmscan_def *d = &vs->defs[i];
                int64_t vm_id;

                sqlite3_reset(sv);
                sqlite3_bind_int64(sv, 1, scan_id);
                bind_text(sv, 2, ia_vm_kind_name(d->def.kind));
                bind_text(sv, 3, d->def.name);
                bind_text(sv, 4, d->def.uuid);
                bind_text(sv, 5, d->config_path);
                bind_id(sv, 6, d->config_file_id);
                if (sqlite3_step(sv) != SQLITE_DONE)
                        goto fail;
                vm_id = sqlite3_last_insert_rowid(db);
                for (size_t k = 0; k < d->def.ndisks; k++) {
                        struct ia_vm_disk *v = &d->def.disks[k];
                        const char *status = d->disk_status[k] ? d->disk_status[k] : "empty";

                        sqlite3_reset(sd);
                        sqlite3_bind_int64(sd, 1, scan_id);
                        sqlite3_bind_int64(sd, 2, vm_id);
                        bind_text(sd, 3, v->target);
                        bind_text(sd, 4, v->bus);
                        bind_text(sd, 5, v->device);
                        bind_text(sd, 6, v->source);
                        bind_text(sd, 7, v->format);
                        bind_text(sd, 8, v->uuid);
                        bind_text(sd, 9, v->path);
                        bind_id(sd, 10, d->disk_file[k]);
                        bind_text(sd, 11, status);
                        if (sqlite3_step(sd) != SQLITE_DONE)
                                goto fail;
                        if (strcmp(status, "missing") == 0) {
                                char *msg =
                                    sqlite3_mprintf("VM '%s' (%s): disk %s '%s' is missing",
                                                    d->def.name ? d->def.name : "?", d->config_path,
                                                    v->target ? v->target : "?", v->source);

                                if (!msg || finding(sf, scan_id, d->config_file_id,
                                                    "vm-disk-missing", msg) < 0) {
                                        sqlite3_free(msg);
                                        goto fail;
                                }
                                sqlite3_free(msg);
                        }
                }
                for (size_t k = 0; k < d->def.nmedia; k++) {
                        struct ia_vm_medium *m = &d->def.media[k];

                        sqlite3_reset(sm);
                        sqlite3_bind_int64(sm, 1, scan_id);
                        sqlite3_bind_int64(sm, 2, vm_id);
                        bind_text(sm, 3, m->uuid);
                        bind_text(sm, 4, m->parent_uuid);
                        bind_text(sm, 5, m->location);
                        bind_text(sm, 6, m->format);
                        bind_text(sm, 7, m->type);
                        bind_text(sm, 8, m->path);
                        bind_id(sm, 9, d->media_file[k]);
                        if (sqlite3_step(sm) != SQLITE_DONE)
                                goto fail;
                }
        }
        for (size_t i = 0; i < vs->nerrors; i++) {
                char *msg = sqlite3_mprintf("VM definition '%s': %s", vs->errors[i].path,
                                            vs->errors[i].msg);

                if (!msg ||
                    finding(sf, scan_id, vs->errors[i].file_id, "vm-config-invalid", msg) < 0) {
                        sqlite3_free(msg);
                        goto fail;
                }
                sqlite3_free(msg);
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                goto fail;
        rc = 0;
        goto out;
fail:
        ia_error_set(err, IA_ERR_IO, "recording VM definitions: %s", sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out:
        sqlite3_finalize(sv);
        sqlite3_finalize(sd);
        sqlite3_finalize(sm);
        sqlite3_finalize(sf);
        return rc;
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
