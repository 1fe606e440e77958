/*
 * The scan's resolver (see resolve.h): the walk's top file, the engine's
 * confined file-system resolver, and members of the same archive.
 */
#define _GNU_SOURCE
#include "resolve.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdi.h"
#include "banned.h"

const char *ia_scan_resolver_member(const struct ia_scan_resolver *sr, const struct ia_file *f)
{
        size_t n;

        if (!sr->archive || !f)
                return NULL;
        n = strlen(sr->archive_path);
        if (strncmp(f->name, sr->archive_path, n) != 0 || f->name[n] != '!')
                return NULL;
        return f->name + n + 1;
}

static int refuse(struct ia_error *err, const char *reason, enum ia_errcat cat, const char *fmt,
                  const char *name)
{
        ia_error_set(err, cat, fmt, name);
        if (err)
                err->reason = reason;
        return -1;
}

static int open_member(const struct ia_scan_resolver *sr, const struct ia_file *from,
                       const char *name, enum ia_ref_kind kind, struct ia_file **out,
                       struct ia_error *err)
{
        const struct ia_archive_member *m;
        const char *base = ia_scan_resolver_member(sr, from);
        char *combined, *norm, *display;
        size_t n;

        if (!name[0])
                return refuse(err, "empty-name", IA_ERR_REFUSED, "empty %s file name",
                              ia_ref_kind_name(kind));
        if (ia_name_is_protocol(name) || strncmp(name, "json:", 5) == 0)
                return refuse(err, "protocol", IA_ERR_REFUSED,
                              "'%s' is a protocol or json: name; only plain files are followed",
                              name);
        if (name[0] == '/')
                return refuse(err, "outside-archive", IA_ERR_REFUSED,
                              "'%s' is an absolute name: it cannot name a member of the archive",
                              name);
        combined = ia_path_combine(base ? base : "", name);
        if (!combined)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        norm = ia_name_normalise(combined, true);
        free(combined);
        if (!norm)
                return refuse(err, "outside-archive", IA_ERR_REFUSED,
                              "'%s' leaves the archive it is referenced from", name);
        m = ia_archive_find(sr->archive, norm);
        if (!m) {
                refuse(err, "missing", IA_ERR_MISSING, "'%s' is not a member of the archive", norm);
                free(norm);
                return -1;
        }
        if (m->type != IA_MEMBER_FILE) {
                refuse(err, "not-regular", IA_ERR_REFUSED,
                       "archive member '%s' is not a regular file", norm);
                free(norm);
                return -1;
        }
        if (!m->src) {
                if (err) {
                        *err = m->error;
                        err->reason = "unreadable";
                }
                free(norm);
                return -1;
        }
        n = strlen(sr->archive_path) + 1 + strlen(m->name) + 1;
        display = malloc(n);
        if (!display) {
                free(norm);
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        }
        snprintf(display, n, "%s!%s", sr->archive_path, m->name);
        *out = ia_file_new(ia_source_ref(m->src), display, err);
        free(display);
        free(norm);
        return *out ? 0 : -1;
}

static int scan_open(const struct ia_resolver *r, const struct ia_file *from, const char *name,
                     enum ia_ref_kind kind, struct ia_file **out, struct ia_error *err)
{
        const struct ia_scan_resolver *sr = r->opaque;

        *out = NULL;
        if (kind == IA_REF_TOP) {
                if (!sr->top_src)
                        return ia_error_set(err, IA_ERR_INTERNAL, "no top file to open");
                *out = ia_file_new(ia_source_ref(sr->top_src), sr->top_name, err);
                return *out ? 0 : -1;
        }
        if (sr->archive)
                return open_member(sr, from, name, kind, out, err);
        return sr->fs.open(&sr->fs, from, name, kind, out, err);
}

/* ---- parents named by identity ---- */

void ia_parent_index_init(struct ia_parent_index *ix,
                          void (*fill)(struct ia_parent_index *ix, void *opaque), void *opaque)
{
        memset(ix, 0, sizeof(*ix));
        pthread_mutex_init(&ix->lock, NULL);
        ix->fill = fill;
        ix->fill_opaque = opaque;
}

void ia_parent_index_free(struct ia_parent_index *ix)
{
        for (size_t i = 0; i < ix->n; i++) {
                free(ix->v[i].id);
                free(ix->v[i].path);
        }
        free(ix->v);
        pthread_mutex_destroy(&ix->lock);
        memset(ix, 0, sizeof(*ix));
}

/* uuid without braces, lowercase (malloc'd), or NULL if it is not one. */
static char *uuid_norm(const char *uuid)
{
        size_t n = strlen(uuid);
        char *out;

        if (n >= 2 && uuid[0] == '{' && uuid[n - 1] == '}') {
                uuid++;
                n -= 2;
        }
        if (n != IA_VDI_UUID_LEN - 1)
                return NULL;
        out = malloc(n + 1);
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)uuid[i];
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;

                if (dash ? c != '-' : !isxdigit(c)) {
                        free(out);
                        return NULL;
                }
                out[i] = (char)tolower(c);
        }
        out[n] = '\0';
        return out;
}

static int add_entry(struct ia_parent_index *ix, char *id, const char *path, bool registered)
{
        char *p = strdup(path);

        if (p && ix->n >= ix->cap) {
                size_t nc = ix->cap ? ix->cap * 2 : 16;
                struct ia_parent_entry *nv = realloc(ix->v, nc * sizeof(*nv));

                if (!nv) {
                        free(p);
                        p = NULL;
                } else {
                        ix->v = nv;
                        ix->cap = nc;
                }
        }
        if (!p) {
                free(id);
                return -1;
        }
        ix->v[ix->n].id = id;
        ix->v[ix->n].path = p;
        ix->v[ix->n].registered = registered;
        ix->n++;
        return 0;
}

int ia_parent_index_register(struct ia_parent_index *ix, const char *uuid, const char *path)
{
        char *id = uuid_norm(uuid);
        int rc;

        if (!id)
                return -1;
        pthread_mutex_lock(&ix->lock);
        rc = add_entry(ix, id, path, true);
        pthread_mutex_unlock(&ix->lock);
        return rc;
}

void ia_parent_index_add_file(struct ia_parent_index *ix, const char *path)
{
        struct ia_source *src = ia_source_open_file(AT_FDCWD, path, IA_OPEN_NOFOLLOW, NULL);
        struct ia_vdi_ids ids;

        if (!src)
                return;
        if (ia_vdi_read_ids(src, &ids, NULL) == 0 && ids.create[0]) {
                char *id = strdup(ids.create);

                if (id)
                        add_entry(ix, id, path, false);
        }
        ia_source_unref(src);
}

void ia_parent_index_add_dir(struct ia_parent_index *ix, const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        size_t n = 0;

        if (!d)
                return;
        while (n < IA_ID_DIR_CAP && (de = readdir(d))) {
                char *path;

                if (!ia_vdi_file_name(de->d_name))
                        continue;
                n++;
                path = ia_path_join_dir(dir, de->d_name);
                if (path)
                        ia_parent_index_add_file(ix, path);
                free(path);
        }
        closedir(d);
}

int ia_parent_index_open(struct ia_parent_index *ix, const struct ia_resolver *fs, const char *id,
                         struct ia_file **out, struct ia_error *err)
{
        const char *u = ia_vdi_id_of(id);
        char *want = u ? uuid_norm(u) : NULL;
        struct ia_error last;
        bool tried = false;

        *out = NULL;
        ia_error_clear(&last);
        if (!want) {
                ia_error_set(err, IA_ERR_UNSUPPORTED, "parent identity '%s' is not a uuid", id);
                err->reason = "missing";
                return -1;
        }
        pthread_mutex_lock(&ix->lock);
        if (!ix->filled) {
                ix->filled = true;
                if (ix->fill)
                        ix->fill(ix, ix->fill_opaque);
        }
        pthread_mutex_unlock(&ix->lock);
        /* Entries are only appended (registered ones before the scan's workers start). */
        for (int pass = 0; pass < 2 && !*out; pass++) {
                pthread_mutex_lock(&ix->lock);
                size_t n = ix->n;
                pthread_mutex_unlock(&ix->lock);

                for (size_t i = 0; i < n && !*out; i++) {
                        const struct ia_parent_entry *e;
                        struct ia_file *f = NULL;
                        struct ia_vdi_ids ids;

                        pthread_mutex_lock(&ix->lock);
                        e = &ix->v[i];
                        bool take = e->registered == (pass == 0) && strcmp(e->id, want) == 0;
                        char *path = take ? strdup(e->path) : NULL;
                        pthread_mutex_unlock(&ix->lock);
                        if (!path)
                                continue;
                        tried = true;
                        ia_error_clear(&last);
                        if (fs->open(fs, NULL, path, IA_REF_BACKING, &f, &last) == 0) {
                                if (ia_vdi_read_ids(f->src, &ids, &last) == 0 &&
                                    strcmp(ids.create, want) == 0)
                                        *out = f;
                                else
                                        ia_file_free(f);
                        }
                        free(path);
                }
        }
        if (*out) {
                free(want);
                return 0;
        }
        if (tried && last.msg[0]) {
                *err = last;
                ia_error_prefix(err, "parent uuid %s", want);
                if (!err->reason)
                        err->reason = "unreadable";
        } else {
                ia_error_set(err, IA_ERR_MISSING, "no vdi image in the scan has the uuid %s", want);
                err->reason = "missing";
        }
        free(want);
        return -1;
}

static int scan_open_id(const struct ia_resolver *r, const struct ia_file *from, const char *id,
                        struct ia_file **out, struct ia_error *err)
{
        const struct ia_scan_resolver *sr = r->opaque;

        (void)from;
        *out = NULL;
        if (sr->archive || !sr->parents) {
                ia_error_set(err, IA_ERR_MISSING,
                             "parent '%s' is named by uuid; inside an archive parents are "
                             "looked up by name only",
                             id);
                err->reason = "missing";
                return -1;
        }
        return ia_parent_index_open(sr->parents, &sr->fs, id, out, err);
}

void ia_scan_resolver_init(struct ia_scan_resolver *sr, const char *const *roots)
{
        memset(sr, 0, sizeof(*sr));
        sr->policy.roots = roots;
        sr->policy.data_file_cwd = false;
        ia_fs_resolver_init(&sr->fs, &sr->policy);
        sr->r.open = scan_open;
        sr->r.open_id = scan_open_id;
        sr->r.opaque = sr;
}
