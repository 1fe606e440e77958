/* The rows of the VM-definition pass (see store_vms.h). */
#define _GNU_SOURCE
#include "store_vms.h"

#include <stdarg.h>
#include <stdlib.h>

#include "store_sql.h"

#include "banned.h"

struct ia_vm_rows {
        sqlite3 *db;
        int64_t scan_id;
        sqlite3_stmt *sv, *sd, *sm, *sf; /* vms, vm_disks, vm_media, findings */
};

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

static void release(struct ia_vm_rows *w)
{
        sqlite3_finalize(w->sv);
        sqlite3_finalize(w->sd);
        sqlite3_finalize(w->sm);
        sqlite3_finalize(w->sf);
        free(w);
}

int ia_vm_rows_abort(struct ia_vm_rows *w, struct ia_error *err)
{
        ia_error_set(err, IA_ERR_IO, "recording VM definitions: %s", sqlite3_errmsg(w->db));
        sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
        release(w);
        return -1;
}

struct ia_vm_rows *ia_vm_rows_begin(struct ia_store *s, int64_t scan_id, struct ia_error *err)
{
        struct ia_vm_rows *w = calloc(1, sizeof(*w));
        sqlite3 *db = ia_store_db(s);

        if (!w) {
                ia_error_set(err, IA_ERR_NOMEM, "recording VM definitions: out of memory");
                return NULL;
        }
        w->db = db;
        w->scan_id = scan_id;
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db,
                               "INSERT INTO vms (scan_id, kind, name, uuid, config_path, "
                               "config_file_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                               -1, &w->sv, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db,
                               "INSERT INTO vm_disks (scan_id, vm_id, target, bus, device, "
                               "source, format, uuid, path, file_id, status) VALUES "
                               "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                               -1, &w->sd, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db,
                               "INSERT INTO vm_media (scan_id, vm_id, uuid, parent_uuid, "
                               "location, format, type, path, file_id) VALUES "
                               "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                               -1, &w->sm, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db,
                               "INSERT INTO findings (scan_id, image_id, file_id, code, message) "
                               "VALUES (?1, NULL, ?2, ?3, ?4)",
                               -1, &w->sf, NULL) != SQLITE_OK) {
                ia_vm_rows_abort(w, err);
                return NULL;
        }
        return w;
}

int ia_vm_rows_vm(struct ia_vm_rows *w, const char *kind, const char *name, const char *uuid,
                  const char *config_path, int64_t config_file_id, int64_t *vm_id)
{
        sqlite3_stmt *sv = w->sv;

        sqlite3_reset(sv);
        sqlite3_bind_int64(sv, 1, w->scan_id);
        bind_text(sv, 2, kind);
        bind_text(sv, 3, name);
        bind_text(sv, 4, uuid);
        bind_text(sv, 5, config_path);
        bind_id(sv, 6, config_file_id);
        if (sqlite3_step(sv) != SQLITE_DONE)
                return -1;
        *vm_id = sqlite3_last_insert_rowid(w->db);
        return 0;
}

int ia_vm_rows_disk(struct ia_vm_rows *w, int64_t vm_id, const struct ia_vm_disk_row *d)
{
        sqlite3_stmt *sd = w->sd;

        sqlite3_reset(sd);
        sqlite3_bind_int64(sd, 1, w->scan_id);
        sqlite3_bind_int64(sd, 2, vm_id);
        bind_text(sd, 3, d->target);
        bind_text(sd, 4, d->bus);
        bind_text(sd, 5, d->device);
        bind_text(sd, 6, d->source);
        bind_text(sd, 7, d->format);
        bind_text(sd, 8, d->uuid);
        bind_text(sd, 9, d->path);
        bind_id(sd, 10, d->file_id);
        bind_text(sd, 11, d->status);
        return sqlite3_step(sd) == SQLITE_DONE ? 0 : -1;
}

int ia_vm_rows_medium(struct ia_vm_rows *w, int64_t vm_id, const struct ia_vm_medium_row *m)
{
        sqlite3_stmt *sm = w->sm;

        sqlite3_reset(sm);
        sqlite3_bind_int64(sm, 1, w->scan_id);
        sqlite3_bind_int64(sm, 2, vm_id);
        bind_text(sm, 3, m->uuid);
        bind_text(sm, 4, m->parent_uuid);
        bind_text(sm, 5, m->location);
        bind_text(sm, 6, m->format);
        bind_text(sm, 7, m->type);
        bind_text(sm, 8, m->path);
        bind_id(sm, 9, m->file_id);
        return sqlite3_step(sm) == SQLITE_DONE ? 0 : -1;
}

int ia_vm_rows_finding(struct ia_vm_rows *w, int64_t file_id, const char *code, const char *fmt,
                       ...)
{
        sqlite3_stmt *sf = w->sf;
        va_list ap;
        char *msg;
        int rc;

        va_start(ap, fmt);
        msg = sqlite3_vmprintf(fmt, ap);
        va_end(ap);
        if (!msg)
                return -1;
        sqlite3_reset(sf);
        sqlite3_bind_int64(sf, 1, w->scan_id);
        bind_id(sf, 2, file_id);
        bind_text(sf, 3, code);
        bind_text(sf, 4, msg);
        rc = sqlite3_step(sf) == SQLITE_DONE ? 0 : -1;
        sqlite3_free(msg);
        return rc;
}

int ia_vm_rows_commit(struct ia_vm_rows *w, struct ia_error *err)
{
        if (sqlite3_exec(w->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                return ia_vm_rows_abort(w, err);
        release(w);
        return 0;
}
