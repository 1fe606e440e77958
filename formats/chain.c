/*
 * Opening images and their backing chains; the plain file-system resolver.
 *
 * qemu resolves a relative backing name against the directory of the image
 * that records it (path_combine), takes the backing format from the header
 * and probes when there is none.  We do the same, but every name goes through
 * a resolver with a policy, loops are caught by file identity, and the depth
 * is capped, so a hostile chain ends in a clear error instead of running out
 * of file descriptors.
 */
#define _GNU_SOURCE
#include "chain.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "drivers.h"
#include "path.h"
#include "vdi.h"
#include "banned.h"

bool ia_name_is_protocol(const char *name)
{
        /* qemu's path_has_protocol(): a ':' before any '/' */
        const char *p = name + strcspn(name, ":/");

        return *p == ':';
}

char *ia_path_combine(const char *base_path, const char *filename)
{
        const char *p = base_path, *slash;
        size_t len, flen = strlen(filename);
        char *out;

        if (filename[0] == '/')
                return strdup(filename);
        if (ia_name_is_protocol(base_path)) {
                const char *colon = strchr(base_path, ':');
                if (colon)
                        p = colon + 1;
        }
        slash = strrchr(base_path, '/');
        slash = slash ? slash + 1 : base_path;
        if (slash > p)
                p = slash;
        len = (size_t)(p - base_path);
        out = malloc(len + flen + 1);
        if (!out)
                return NULL;
        memcpy(out, base_path, len);
        memcpy(out + len, filename, flen + 1);
        return out;
}

/* ---- the file-system resolver ---- */

/* Is path (absolute, normalised lexically enough) beneath root?  Returns the rest. */
static const char *beneath(const char *root, const char *path)
{
        size_t n = strlen(root);

        while (n > 1 && root[n - 1] == '/')
                n--;
        if (strncmp(root, path, n) != 0)
                return NULL;
        if (n == 1 && root[0] == '/')
                return path + 1;
        if (path[n] == '\0')
                return ".";
        if (path[n] != '/')
                return NULL;
        path += n;
        while (*path == '/')
                path++;
        return *path ? path : ".";
}

/*
 * The directory part of abs as the kernel resolves it (symlinks and ".."
 * followed), joined with the last component; NULL when the directory does
 * not resolve.  It only decides which root to open beneath: a name such as
 * "vm/../base/b.qcow2" from a scan root "vm" must land in the allowed root
 * "base", not be refused because it textually starts in "vm".  The open
 * itself stays beneath that root's descriptor (RESOLVE_BENEATH), so a
 * directory renamed or relinked meanwhile cannot take it outside.
 */
static char *canonical_dir(const char *abs)
{
        const char *slash = strrchr(abs, '/');
        size_t dn = slash ? (size_t)(slash - abs) : 0, rn;
        char *dir, *real, *out;

        if (!slash)
                return NULL;
        dir = strndup(abs, dn);
        if (!dir)
                return NULL;
        real = realpath(dn ? dir : "/", NULL); /* no PATH_MAX buffer; NULL when too long */
        free(dir);
        if (!real)
                return NULL;
        rn = strlen(real);
        out = malloc(rn + strlen(slash) + 1);
        if (out) {
                memcpy(out, real, rn);
                memcpy(out + (rn == 1 ? 0 : rn), slash, strlen(slash) + 1);
        }
        free(real);
        return out;
}

/*
 * path made absolute against the current directory, without a length limit;
 * NULL with *err filled.
 */
static char *absolute_name(const char *path, struct ia_error *err)
{
        char *cwd, *abs;

        if (path[0] == '/') {
                abs = strdup(path);
                if (!abs)
                        ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                return abs;
        }
        cwd = getcwd(NULL, 0);
        if (!cwd) {
                ia_error_errno(err, IA_ERR_IO, errno, "cannot get the current directory");
                return NULL;
        }
        abs = ia_path_join_dir(cwd, path);
        free(cwd);
        if (!abs)
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        return abs;
}

static struct ia_source *open_confined(const struct ia_fs_policy *pol, const char *path,
                                       struct ia_error *err)
{
        char *abs, *canon, *lexical = NULL;
        struct ia_source *src = NULL;
        bool any = false;

        abs = absolute_name(path, err);
        if (!abs)
                return NULL;
        canon = canonical_dir(abs);
        if (!canon) /* too long for realpath, or missing: decide by the name itself */
                lexical = ia_path_lexical(abs);
        for (int pass = 0; pass < 2 && !any; pass++) {
                for (size_t i = 0; pol->roots[i]; i++) {
                        char *rootabs = realpath(pol->roots[i], NULL);
                        const char *rest;
                        int rootfd;

                        if (!rootabs)
                                continue;
                        if (canon)
                                rest = pass == 0 ? beneath(rootabs, canon) : NULL;
                        else if (pass == 0)
                                rest = beneath(pol->roots[i], abs) ? beneath(pol->roots[i], abs)
                                                                   : beneath(rootabs, abs);
                        else
                                rest = lexical ? beneath(rootabs, lexical) : NULL;
                        if (!rest) {
                                free(rootabs);
                                continue;
                        }
                        any = true;
                        rootfd = open(rootabs, O_PATH | O_DIRECTORY | O_CLOEXEC);
                        free(rootabs);
                        if (rootfd < 0)
                                continue;
                        src = ia_source_open_beneath(rootfd, rest, path, err);
                        close(rootfd);
                        break;
                }
        }
        if (!any) {
                ia_error_set(err, IA_ERR_REFUSED, "'%s' lies outside the allowed roots", path);
                if (err)
                        err->reason = "outside-roots";
        }
        free(lexical);
        free(canon);
        free(abs);
        return src;
}

static int fs_open(const struct ia_resolver *r, const struct ia_file *from, const char *name,
                   enum ia_ref_kind kind, struct ia_file **out, struct ia_error *err)
{
        const struct ia_fs_policy *pol = r->opaque;
        struct ia_source *src;
        char *path;

        if (!name[0]) {
                ia_error_set(err, IA_ERR_REFUSED, "empty %s file name", ia_ref_kind_name(kind));
                err->reason = "empty-name";
                return -1;
        }
        if (kind != IA_REF_TOP && (ia_name_is_protocol(name) || strncmp(name, "json:", 5) == 0)) {
                ia_error_set(err, IA_ERR_REFUSED,
                             "'%s' is a protocol or json: name; only plain files are followed",
                             name);
                err->reason = "protocol";
                return -1;
        }
        if (kind == IA_REF_TOP || !from || (kind == IA_REF_DATA_FILE && pol && pol->data_file_cwd))
                path = strdup(name);
        else
                path = ia_path_combine(from->name, name);
        if (!path)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        if (pol && pol->roots && kind != IA_REF_TOP)
                src = open_confined(pol, path, err);
        else
                src = ia_source_open_file(AT_FDCWD, path, 0, err);
        if (!src) {
                free(path);
                return -1;
        }
        *out = ia_file_new(src, path, err);
        free(path);
        return *out ? 0 : -1;
}

/* ---- parents named by identity: differencing VDIs ---- */

bool ia_vdi_file_name(const char *name)
{
        size_t n = strlen(name);

        return n > 4 && strcasecmp(name + n - 4, ".vdi") == 0;
}

static int cmp_name(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The VDI whose uuidCreate is uuid among the *.vdi files of dir ("" for the
 * current directory), in name order, at most IA_ID_DIR_CAP names: 1 found
 * (*out set), 0 not, -1 out of memory.
 */
static int find_vdi_in_dir(const struct ia_fs_policy *pol, const char *dir, const char *uuid,
                           struct ia_file **out, struct ia_error *err)
{
        DIR *d = opendir(dir[0] ? dir : ".");
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        int rc = 0;

        if (!d)
                return 0;
        while (n < IA_ID_DIR_CAP && (de = readdir(d))) {
                if (!ia_vdi_file_name(de->d_name))
                        continue;
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 16;
                        char **nn = realloc(names, nc * sizeof(*nn));

                        if (!nn)
                                break;
                        names = nn;
                        cap = nc;
                }
                names[n] = strdup(de->d_name);
                if (names[n])
                        n++;
        }
        closedir(d);
        if (n)
                qsort(names, n, sizeof(*names), cmp_name);
        for (size_t i = 0; i < n && rc == 0; i++) {
                char *path = dir[0] ? ia_path_join_dir(dir, names[i]) : strdup(names[i]);
                struct ia_source *src;
                struct ia_vdi_ids ids;
                struct ia_error e;

                if (!path) {
                        rc = ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                        break;
                }
                ia_error_clear(&e);
                src = pol && pol->roots ? open_confined(pol, path, &e)
                                        : ia_source_open_file(AT_FDCWD, path, 0, &e);
                if (src && ia_vdi_read_ids(src, &ids, &e) == 0 && strcmp(ids.create, uuid) == 0) {
                        *out = ia_file_new(src, path, err);
                        rc = *out ? 1 : -1;
                } else {
                        ia_source_unref(src);
                }
                free(path);
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return rc;
}

char *ia_path_join_dir(const char *dir, const char *name)
{
        size_t dn = strlen(dir), nn = strlen(name);
        bool slash = dn && dir[dn - 1] != '/';
        char *out = malloc(dn + slash + nn + 1);

        if (!out)
                return NULL;
        memcpy(out, dir, dn);
        if (slash)
                out[dn] = '/';
        memcpy(out + dn + slash, name, nn + 1);
        return out;
}

/*
 * imgaudit map's lookup of a parent by identity: the *.vdi files of the
 * child's directory, of the directory above it (VirtualBox keeps a VM's
 * disks in the VM folder, its differencing images in Snapshots/ below it),
 * then of each allowed root (not below them), first match in that order;
 * every candidate is opened under the same policy as a backing file.
 */
static int fs_open_id(const struct ia_resolver *r, const struct ia_file *from, const char *id,
                      struct ia_file **out, struct ia_error *err)
{
        const struct ia_fs_policy *pol = r->opaque;
        const char *uuid = ia_vdi_id_of(id);
        char *dirs[2] = {NULL, NULL};
        const char *slash;
        int rc = 0;

        *out = NULL;
        if (!uuid) {
                ia_error_set(err, IA_ERR_UNSUPPORTED, "parent identity '%s' is not a uuid", id);
                err->reason = "missing";
                return -1;
        }
        slash = from ? strrchr(from->name, '/') : NULL;
        if (slash) {
                const char *up;

                dirs[0] =
                    strndup(from->name, slash == from->name ? 1 : (size_t)(slash - from->name));
                up = dirs[0] ? strrchr(dirs[0], '/') : NULL;
                if (dirs[0] && up && strcmp(dirs[0], "/") != 0)
                        dirs[1] = strndup(dirs[0], up == dirs[0] ? 1 : (size_t)(up - dirs[0]));
                else if (dirs[0] && !up)
                        dirs[1] = strdup("");
        } else {
                dirs[0] = strdup("");
                dirs[1] = strdup("..");
        }
        for (int i = 0; i < 2 && rc == 0; i++)
                if (dirs[i])
                        rc = find_vdi_in_dir(pol, dirs[i], uuid, out, err);
        for (size_t i = 0; rc == 0 && pol && pol->roots && pol->roots[i]; i++)
                rc = find_vdi_in_dir(pol, pol->roots[i], uuid, out, err);
        free(dirs[0]);
        free(dirs[1]);
        if (rc > 0)
                return 0;
        if (rc == 0) {
                ia_error_set(err, IA_ERR_MISSING,
                             "no vdi image whose uuid is %s beside '%s', in the directory above "
                             "it or in the allowed roots",
                             uuid, from ? from->name : "");
                err->reason = "missing";
        }
        return -1;
}

void ia_fs_resolver_init(struct ia_resolver *r, const struct ia_fs_policy *policy)
{
        r->open = fs_open;
        r->open_id = fs_open_id;
        r->opaque = (void *)policy;
}

/* ---- images and chains ---- */

int ia_image_open(const struct ia_open_ctx *ctx, struct ia_file *file, const char *fmt,
                  struct ia_image **out, struct ia_error *err)
{
        const struct ia_driver *drv;
        struct ia_image *img;

        *out = NULL;
        if (fmt) {
                drv = ia_driver_find(fmt);
                if (!drv) {
                        ia_error_set(err, IA_ERR_UNSUPPORTED, "unknown format '%s'", fmt);
                        goto free_file;
                }
        } else {
                drv = ia_driver_probe(file->src, file->name, err);
                if (!drv)
                        goto free_file;
        }
        if (drv->flags & IA_DRV_PROBE_ONLY) {
                ia_error_set(err, IA_ERR_UNSUPPORTED,
                             "'%s' is a %s image, which imgaudit does not map", file->name,
                             drv->name);
                goto free_file;
        }
        img = calloc(1, sizeof(*img));
        if (!img) {
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                goto free_file;
        }
        img->drv = drv;
        img->ctx = ctx;
        img->file = file;
        img->cow = (drv->flags & IA_DRV_BACKING) != 0;
        img->fmt_probed = fmt == NULL;
        if (drv->open(img, err) < 0) {
                free(img->backing);
                free(img);
                goto free_file;
        }
        *out = img;
        return 0;

free_file:
        ia_file_free(file);
        return -1;
}

void ia_image_free(struct ia_image *img)
{
        while (img) {
                struct ia_image *next = img->backing_img;

                img->drv->close(img);
                ia_file_free(img->file);
                free(img->backing);
                free(img);
                img = next;
        }
}

static bool same_file(const struct ia_file *a, const struct ia_file *b)
{
        if (a->src == b->src)
                return true;
        if (a->src->ino || b->src->ino)
                return a->src->dev == b->src->dev && a->src->ino == b->src->ino;
        return strcmp(a->name, b->name) == 0;
}

/* Length of an identity's compared part: up to the first " (". */
static size_t ident_key_len(const char *id)
{
        const char *note = strstr(id, " (");

        return note ? (size_t)(note - id) : strlen(id);
}

/*
 * Is parent the image img was made from, as far as their identities tell?
 * When not, a parent-mismatch finding on img and the link's status; the
 * chain is still followed, as qemu follows it (qemu ignores the VHD parent
 * UUID and checks the VMDK parentCID only before copying a grain up on a
 * write).
 */
static bool parent_mismatch(const struct ia_image *img, const struct ia_image *parent,
                            struct ia_error *mm)
{
        size_t pn = ident_key_len(parent->ident);

        if (!img->parent_ident[0][0])
                return false;
        for (int i = 0; i < 2; i++) {
                const char *want = img->parent_ident[i];

                if (want[0] && ident_key_len(want) == pn && strncmp(want, parent->ident, pn) == 0)
                        return false;
        }
        ia_error_set(mm, IA_ERR_CORRUPT,
                     "parent '%s' is not the image '%s' was made from: '%s' records %s%s%s, "
                     "the parent has %s; mapped through it all the same",
                     parent->file->name, img->file->name, img->file->name, img->parent_ident[0],
                     img->parent_ident[1][0] ? " or " : "", img->parent_ident[1],
                     parent->ident[0] ? parent->ident : "no identity");
        mm->reason = "parent-mismatch";
        return true;
}

/* Open the backing file of img as image number depth + 1. */
static int open_backing(const struct ia_open_ctx *ctx, struct ia_image *top, struct ia_image *img,
                        struct ia_error *err)
{
        unsigned max = ctx->max_depth ? ctx->max_depth : IA_DEFAULT_MAX_DEPTH;
        struct ia_file *file = NULL;
        struct ia_image *child = NULL;
        const char *fmt = img->backing_fmt[0] ? img->backing_fmt : NULL;
        struct ia_error mm;

        ia_error_clear(&mm);

        if (img->depth + 1 > max) {
                ia_error_set(err, IA_ERR_LIMIT, "backing chain is deeper than the cap of %u images",
                             max);
                err->reason = "too-deep";
                goto report;
        }
        if (img->backing_by_id) {
                if (!ctx->resolver->open_id) {
                        ia_error_set(err, IA_ERR_MISSING,
                                     "parent '%s' is named by identity, and nothing here "
                                     "looks parents up by identity",
                                     img->backing);
                        err->reason = "missing";
                        goto report;
                }
                if (ctx->resolver->open_id(ctx->resolver, img->file, img->backing, &file, err) <
                    0) {
                        if (!err->reason)
                                err->reason = "missing";
                        goto report;
                }
        } else if (ctx->resolver->open(ctx->resolver, img->file, img->backing, IA_REF_BACKING,
                                       &file, err) < 0) {
                goto report;
        }
        for (struct ia_image *i = top; i; i = i->backing_img) {
                if (same_file(i->file, file)) {
                        ia_error_set(err, IA_ERR_REFUSED,
                                     "backing file '%s' is already in the chain (a loop)",
                                     file->name);
                        err->reason = "loop";
                        ia_file_free(file);
                        file = NULL;
                        goto report;
                }
        }
        if (ia_image_open(ctx, file, fmt, &child, err) < 0) {
                file = NULL;
                if (!err->reason)
                        err->reason = "unreadable";
                goto report;
        }
        child->depth = img->depth + 1;
        img->backing_img = child;
        if (parent_mismatch(img, child, &mm))
                ia_image_finding(img, "parent-mismatch", "%s", ia_error_msg(&mm));
report:
        if (ctx->on_link)
                ctx->on_link(ctx->opaque, img, img->backing, IA_REF_BACKING,
                             child ? child->file : NULL, child ? (mm.reason ? &mm : NULL) : err);
        return child ? 0 : -1;
}

int ia_chain_open(const struct ia_open_ctx *ctx, const char *name, const char *fmt,
                  struct ia_image **top, struct ia_error *err)
{
        struct ia_file *file;
        struct ia_image *img;

        *top = NULL;
        if (ctx->resolver->open(ctx->resolver, NULL, name, IA_REF_TOP, &file, err) < 0)
                return -1;
        if (ia_image_open(ctx, file, fmt, top, err) < 0)
                return -1;
        for (img = *top; img && img->backing && img->backing[0]; img = img->backing_img) {
                struct ia_error e;

                ia_error_clear(&e);
                if (open_backing(ctx, *top, img, &e) == 0)
                        continue;
                if (ctx->lenient) {
                        img->backing_err = e;
                        break;
                }
                *err = e;
                ia_error_prefix(err, "backing file of '%s'", img->file->name);
                ia_image_free(*top);
                *top = NULL;
                return -1;
        }
        return 0;
}
