/*
 * The scan's resolver (see resolve.h): the walk's top file, the engine's
 * confined file-system resolver, and members of the same archive.
 */
#include "resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "banned.h"

char *ia_member_normalise(const char *name)
{
        size_t n = strlen(name), len = 0;
        char *out = malloc(n + 1);
        const char *p = name;

        if (!out)
                return NULL;
        while (*p) {
                const char *e;
                size_t cl;

                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                e = strchr(p, '/');
                cl = e ? (size_t)(e - p) : strlen(p);
                if (cl == 1 && p[0] == '.') {
                        /* nothing */
                } else if (cl == 2 && p[0] == '.' && p[1] == '.') {
                        if (len == 0) {
                                free(out);
                                return NULL;
                        }
                        while (len > 0 && out[len - 1] != '/')
                                len--;
                        if (len > 0)
                                len--; /* the slash */
                } else {
                        if (len > 0)
                                out[len++] = '/';
                        memcpy(out + len, p, cl);
                        len += cl;
                }
                p += cl;
        }
        out[len] = '\0';
        return out;
}

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
        norm = ia_member_normalise(combined);
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

void ia_scan_resolver_init(struct ia_scan_resolver *sr, const char *const *roots)
{
        memset(sr, 0, sizeof(*sr));
        sr->policy.roots = roots;
        sr->policy.data_file_cwd = false;
        ia_fs_resolver_init(&sr->fs, &sr->policy);
        sr->r.open = scan_open;
        sr->r.opaque = sr;
}
