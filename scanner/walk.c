/*
 * The directory walk (see walk.h): descriptors all the way down, nothing
 * followed, nothing but directories opened.
 */
#define _GNU_SOURCE
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "banned.h"

#define IA_WALK_MAX_DEPTH 256

char *ia_path_join(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        bool slash = la > 0 && a[la - 1] != '/';
        char *p = malloc(la + slash + lb + 1);

        if (!p)
                return NULL;
        memcpy(p, a, la);
        if (slash)
                p[la] = '/';
        memcpy(p + la + slash, b, lb + 1);
        return p;
}

static void identity_of(const struct stat *st, struct ia_identity *id)
{
        id->dev = (uint64_t)st->st_dev;
        id->ino = (uint64_t)st->st_ino;
        id->size = (uint64_t)st->st_size;
        id->allocated = (uint64_t)st->st_blocks * 512;
        id->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
        id->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

int ia_walk_root_open(struct ia_walk_root *r, const char *arg, struct ia_error *err)
{
        struct stat st;

        memset(r, 0, sizeof(*r));
        r->arg = arg;
        r->dirfd = -1;
        if (stat(arg, &st) < 0)
                return ia_error_errno(err, errno == ENOENT ? IA_ERR_MISSING : IA_ERR_IO, errno,
                                      "cannot scan '%s'", arg);
        r->dev = (uint64_t)st.st_dev;
        if (S_ISDIR(st.st_mode)) {
                r->dirpath = strdup(arg);
        } else if (S_ISREG(st.st_mode)) {
                char *copy = strdup(arg);

                if (!copy)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                r->dirpath = strdup(dirname(copy));
                free(copy);
                r->is_file = true;
        } else {
                return ia_error_set(err, IA_ERR_USAGE,
                                    "cannot scan '%s': not a directory or a regular file", arg);
        }
        if (!r->dirpath)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        r->dirfd = open(r->dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (r->dirfd < 0) {
                ia_error_errno(err, IA_ERR_IO, errno, "cannot open directory '%s'", r->dirpath);
                free(r->dirpath);
                r->dirpath = NULL;
                return -1;
        }
        return 0;
}

void ia_walk_root_close(struct ia_walk_root *r)
{
        if (r->dirfd >= 0)
                close(r->dirfd);
        r->dirfd = -1;
        free(r->dirpath);
        r->dirpath = NULL;
}

struct walker {
        const struct ia_walk_opts *o;
        size_t root;
        uint64_t root_dev;
        unsigned max_depth;
};

/* A glob matches the entry's name, its path below the root ("vms/a.img") or its full path. */
static bool excluded(const struct ia_walk_opts *o, const char *name, const char *rel,
                     const char *path)
{
        if (!o->exclude)
                return false;
        for (size_t i = 0; o->exclude[i]; i++)
                if (fnmatch(o->exclude[i], name, 0) == 0 || fnmatch(o->exclude[i], rel, 0) == 0 ||
                    fnmatch(o->exclude[i], path, 0) == 0)
                        return true;
        return false;
}

static void entry_errno(const struct walker *w, const char *path, const char *what, int e)
{
        char msg[256];

        snprintf(msg, sizeof(msg), "%s: %s", what, strerror(e));
        w->o->on_entry(w->o->opaque, path, "unreadable",
                       e == EACCES || e == EPERM ? "permission" : "io", msg);
}

/* First visit of (dev, ino)?  If not, *first is the path it was seen at. */
static int first_visit(const struct walker *w, const struct stat *st, const char *path,
                       const char **first)
{
        struct ia_fid_key k = {(uint64_t)st->st_dev, (uint64_t)st->st_ino};
        char *seen = ia_hmap_get(w->o->visited, &k, sizeof(k));
        char *copy;

        if (seen) {
                *first = seen;
                return 0;
        }
        copy = strdup(path);
        if (!copy || ia_hmap_put(w->o->visited, &k, sizeof(k), copy) < 0) {
                free(copy);
                return -1;
        }
        return 1;
}

/* A directory entry as read: its name (an offset into the names' block while reading). */
struct dent {
        size_t off;
        const char *name;
        uint64_t ino;
        unsigned char type;
};

static int cmp_names(const void *a, const void *b)
{
        return strcmp(((const struct dent *)a)->name, ((const struct dent *)b)->name);
}

static int walk_dir(const struct walker *w, int dirfd, const char *rel, const char *path,
                    unsigned depth, struct ia_error *err);

/*
 * One directory entry; *relp and *pathp are its own (malloc'd: a regular file
 * takes them over and leaves NULL), dir its directory's kept descriptor.
 */
static int visit(const struct walker *w, int dirfd, int dir, const char *name, unsigned char type,
                 uint64_t d_ino, char **relp, char **pathp, unsigned depth, struct ia_error *err)
{
        const char *rel = *relp, *path = *pathp;
        const struct ia_walk_opts *o = w->o;
        const char *first;
        struct stat st;
        int r;

        if (type == DT_REG && o->want_stat && !o->remember_all_files &&
            !o->want_stat(o->opaque, path, d_ino)) {
                /* a regular file by its entry: its identity is taken when it is opened */
                struct ia_walk_file f;

                memset(&f, 0, sizeof(f));
                f.root = w->root;
                f.rel = *relp;
                f.path = *pathp;
                *relp = *pathp = NULL;
                f.id.ino = d_ino;
                f.dir = dir;
                f.lazy = true;
                o->on_file(o->opaque, &f);
                return 0;
        }
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                entry_errno(w, path, "cannot stat", errno);
                return 0;
        }
        if (S_ISLNK(st.st_mode)) {
                char target[4096];
                ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);

                target[n > 0 ? n : 0] = '\0';
                o->on_entry(o->opaque, path, "symlink", "not followed", n >= 0 ? target : NULL);
                return 0;
        }
        if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode) ||
            S_ISBLK(st.st_mode)) {
                o->on_entry(o->opaque, path,
                            S_ISFIFO(st.st_mode)   ? "fifo"
                            : S_ISSOCK(st.st_mode) ? "socket"
                                                   : "device",
                            "not opened", NULL);
                return 0;
        }
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
                o->on_entry(o->opaque, path, "other", "not a regular file", NULL);
                return 0;
        }
        /*
         * A regular file with one link cannot be met again under another name
         * (a directory met twice, a bind mount or a loop, is caught at the
         * directory): only files with more links are remembered.
         */
        r = S_ISREG(st.st_mode) && st.st_nlink == 1 && !o->remember_all_files
                ? 1
                : first_visit(w, &st, path, &first);
        if (r < 0)
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
        if (r == 0) {
                o->on_entry(o->opaque, path, S_ISDIR(st.st_mode) ? "directory-seen" : "hardlink",
                            "already visited", first);
                return 0;
        }
        if (S_ISDIR(st.st_mode)) {
                int fd;

                if (o->one_file_system && (uint64_t)st.st_dev != w->root_dev) {
                        o->on_entry(o->opaque, path, "other-filesystem", "--one-file-system", NULL);
                        return 0;
                }
                if (depth + 1 > w->max_depth) {
                        o->on_entry(o->opaque, path, "unreadable", "too-deep",
                                    "directory nesting deeper than the cap");
                        return 0;
                }
                fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0) {
                        entry_errno(w, path, "cannot open directory", errno);
                        return 0;
                }
                if (o->on_dir)
                        o->on_dir(o->opaque, path, (uint64_t)st.st_blocks * 512);
                return walk_dir(w, fd, rel, path, depth + 1, err);
        }
        {
                struct ia_walk_file f;

                f.root = w->root;
                f.rel = *relp;
                f.path = *pathp;
                *relp = *pathp = NULL;
                identity_of(&st, &f.id);
                f.dir = dir;
                f.lazy = false;
                o->on_file(o->opaque, &f);
        }
        return 0;
}

/* Walk the directory open at dirfd (taken over). */
static int walk_dir(const struct walker *w, int dirfd, const char *rel, const char *path,
                    unsigned depth, struct ia_error *err)
{
        DIR *d = fdopendir(dirfd);
        struct dirent *de;
        char *pool = NULL;
        struct dent *ents = NULL; /* each name's offset in pool while reading, then the name */
        size_t n = 0, cap = 0, used = 0, pcap = 0;
        int rc = 0, dir = -1;
        struct ia_walk_dirs *kd = w->o->dirs;

        if (!d) {
                entry_errno(w, path, "cannot read directory", errno);
                close(dirfd);
                return 0;
        }
        errno = 0;
        while ((de = readdir(d))) {
                size_t len;

                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 32;
                        struct dent *ne = realloc(ents, nc * sizeof(*ne));

                        if (!ne)
                                goto nomem;
                        ents = ne;
                        cap = nc;
                }
                /* the names in one block, not one allocation each */
                len = strlen(de->d_name) + 1;
                if (pcap - used < len) {
                        size_t nc = pcap ? pcap * 2 : 4096;
                        char *np;

                        while (nc - used < len)
                                nc *= 2;
                        np = realloc(pool, nc);
                        if (!np)
                                goto nomem;
                        pool = np;
                        pcap = nc;
                }
                memcpy(pool + used, de->d_name, len);
                ents[n].off = used;
                ents[n].ino = (uint64_t)de->d_ino;
                ents[n].type = de->d_type;
                n++;
                used += len;
                errno = 0;
        }
        if (errno)
                entry_errno(w, path, "reading directory", errno);
        for (size_t i = 0; i < n; i++)
                ents[i].name = pool + ents[i].off;
        if (kd && n > 0 && kd->n < kd->max) {
                /* kept for the files' later opens (a directory without files needs none) */
                if (kd->n == kd->cap) {
                        size_t nc = kd->cap ? kd->cap * 2 : 64;
                        int *nf = realloc(kd->fds, nc * sizeof(*nf));

                        if (!nf)
                                goto nomem;
                        kd->fds = nf;
                        kd->cap = nc;
                }
                kd->fds[kd->n] = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
                if (kd->fds[kd->n] >= 0)
                        dir = (int)kd->n++;
                else
                        kd->max = kd->n; /* out of descriptors: keep no more */
        }
        if (n > 1) /* an empty directory has no array: qsort(NULL, 0) is undefined */
                qsort(ents, n, sizeof(*ents), cmp_names);
        for (size_t i = 0; i < n && rc == 0; i++) {
                const char *name = ents[i].name;
                char *crel = rel ? ia_path_join(rel, name) : strdup(name);
                char *cpath = ia_path_join(path, name);

                if (!crel || !cpath) {
                        free(crel);
                        free(cpath);
                        goto nomem;
                }
                if (!excluded(w->o, name, crel, cpath))
                        rc = visit(w, dirfd, dir, name, ents[i].type, ents[i].ino, &crel, &cpath,
                                   depth, err);
                free(crel);
                free(cpath);
        }
        goto out;
nomem:
        rc = ia_error_set(err, IA_ERR_NOMEM, "out of memory walking '%s'", path);
out:
        free(ents);
        free(pool);
        closedir(d);
        return rc;
}

int ia_walk(const struct ia_walk_root *roots, size_t idx, const struct ia_walk_opts *o,
            struct ia_error *err)
{
        const struct ia_walk_root *r = &roots[idx];
        struct walker w = {.o = o,
                           .root = idx,
                           .root_dev = r->dev,
                           .max_depth = o->max_depth ? o->max_depth : IA_WALK_MAX_DEPTH};
        struct stat st;
        int fd;

        if (r->is_file) {
                char *copy = strdup(r->arg), *base, *rel, *path;
                int rc;

                if (!copy)
                        return ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                base = basename(copy);
                rel = strdup(base);
                path = strdup(r->arg);
                rc = rel && path ? visit(&w, r->dirfd, -1, base, DT_UNKNOWN, 0, &rel, &path, 0, err)
                                 : ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                free(rel);
                free(path);
                free(copy);
                return rc;
        }
        if (fstat(r->dirfd, &st) == 0) {
                const char *first;

                if (first_visit(&w, &st, r->arg, &first) == 0) {
                        o->on_entry(o->opaque, r->arg, "directory-seen", "already visited", first);
                        return 0;
                }
                if (o->on_dir)
                        o->on_dir(o->opaque, r->arg, (uint64_t)st.st_blocks * 512);
        }
        fd = openat(r->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                entry_errno(&w, r->arg, "cannot open directory", errno);
                return 0;
        }
        return walk_dir(&w, fd, NULL, r->arg, 0, err);
}

/* An O_PATH descriptor of rel beneath the root, no symlink anywhere; -1 with errno. */
static int path_fd_beneath(const struct ia_walk_root *root, const char *rel)
{
        struct open_how how;
        int pfd;

        memset(&how, 0, sizeof(how));
        how.flags = O_PATH | O_CLOEXEC | O_NOFOLLOW;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        pfd = (int)syscall(SYS_openat2, root->dirfd, rel, &how, sizeof(how));
        if (pfd < 0 && (errno == ENOSYS || errno == ENAMETOOLONG))
                /* one component at a time: no limit but the kernel's per-component one */
                pfd = ia_open_beneath_by_components(root->dirfd, rel);
        return pfd;
}

struct ia_source *ia_walk_open(const struct ia_walk_root *root, const char *rel,
                               const struct ia_identity *id, struct ia_error *err)
{
        struct stat st;
        char proc[64];
        int pfd, fd;

        pfd = path_fd_beneath(root, rel);
        if (pfd < 0) {
                int e = errno;

                ia_error_errno(err, e == ENOENT ? IA_ERR_MISSING : IA_ERR_IO, e, "cannot open '%s'",
                               rel);
                if (err)
                        err->reason =
                            e == ENOENT || e == ELOOP || e == EXDEV ? "changed" : "unreadable";
                return NULL;
        }
        if (fstat(pfd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_dev != id->dev ||
            (uint64_t)st.st_ino != id->ino) {
                close(pfd);
                ia_error_set(err, IA_ERR_IO, "'%s' changed while it was being scanned", rel);
                if (err)
                        err->reason = "changed";
                return NULL;
        }
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
        fd = ia_open_noatime(AT_FDCWD, proc, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        close(pfd);
        if (fd < 0) {
                int e = errno;

                ia_error_errno(err, IA_ERR_IO, e, "cannot open '%s' for reading", rel);
                if (err)
                        err->reason = e == EACCES || e == EPERM ? "permission" : "unreadable";
                return NULL;
        }
        return ia_source_from_fd(fd, rel, err);
}

/*
 * The walked file f opened in its directory: the walk saw a regular file
 * there, so it is opened for reading directly, never through a symlink, never
 * as a controlling terminal, and not blocking should a FIFO have been put in
 * its place since.  The descriptor, or -1 with err set.
 */
static int open_in_dir(const struct ia_walk_dirs *dirs, const struct ia_walk_file *f,
                       struct ia_error *err)
{
        const char *name = strrchr(f->rel, '/');
        int fd = ia_open_noatime(dirs->fds[f->dir], name ? name + 1 : f->rel,
                                 O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

        if (fd < 0) {
                int e = errno;

                ia_error_errno(err, e == ENOENT ? IA_ERR_MISSING : IA_ERR_IO, e,
                               "cannot open '%s' for reading", f->rel);
                if (err)
                        err->reason = e == ENOENT || e == ELOOP   ? "changed"
                                      : e == EACCES || e == EPERM ? "permission"
                                                                  : "unreadable";
        }
        return fd;
}

struct ia_source *ia_walk_open_file(const struct ia_walk_root *root,
                                    const struct ia_walk_dirs *dirs, const struct ia_walk_file *f,
                                    struct ia_error *err)
{
        struct ia_source *src;
        int fd;

        if (!dirs || f->dir < 0 || (size_t)f->dir >= dirs->n)
                return ia_walk_open(root, f->rel, &f->id, err);
        if ((fd = open_in_dir(dirs, f, err)) < 0)
                return NULL;
        src = ia_source_from_fd(fd, f->rel, err); /* refuses anything but a regular file */
        if (src && (src->dev != f->id.dev || src->ino != f->id.ino)) {
                ia_source_unref(src);
                src = NULL;
                ia_error_set(err, IA_ERR_IO, "'%s' changed while it was being scanned", f->rel);
        }
        if (!src && err && !err->reason)
                err->reason = "changed";
        return src;
}

int ia_walk_stat_file(const struct ia_walk_root *root, const struct ia_walk_dirs *dirs,
                      const struct ia_walk_file *f, struct ia_identity *id, uint64_t *nlink)
{
        const char *name = strrchr(f->rel, '/');
        struct stat st;
        int rc;

        name = name ? name + 1 : f->rel;
        if (dirs && f->dir >= 0 && (size_t)f->dir < dirs->n) {
                rc = fstatat(dirs->fds[f->dir], name, &st, AT_SYMLINK_NOFOLLOW);
        } else {
                int pfd = path_fd_beneath(root, f->rel), e;

                if (pfd < 0)
                        return -1;
                rc = fstat(pfd, &st);
                e = errno;
                close(pfd);
                errno = e;
        }
        if (rc < 0)
                return -1;
        if (!S_ISREG(st.st_mode)) {
                errno = EINVAL;
                return -1;
        }
        identity_of(&st, id);
        if (nlink)
                *nlink = (uint64_t)st.st_nlink;
        return 0;
}

struct ia_source *ia_walk_open_lazy(const struct ia_walk_root *root,
                                    const struct ia_walk_dirs *dirs, const struct ia_walk_file *f,
                                    struct ia_identity *id, uint64_t *nlink, struct ia_error *err)
{
        struct ia_source *src;
        struct stat st;
        int fd;

        if (!dirs || f->dir < 0 || (size_t)f->dir >= dirs->n) {
                /* beneath the root: the identity first, then opened and compared with it */
                if (ia_walk_stat_file(root, dirs, f, id, nlink) < 0) {
                        int e = errno;

                        ia_error_errno(err, e == ENOENT ? IA_ERR_MISSING : IA_ERR_IO, e,
                                       "cannot open '%s'", f->rel);
                        if (err)
                                err->reason = e == ENOENT || e == ELOOP || e == EXDEV || e == EINVAL
                                                  ? "changed"
                                              : e == EACCES || e == EPERM ? "permission"
                                                                          : "unreadable";
                        return NULL;
                }
                return ia_walk_open(root, f->rel, id, err);
        }
        if ((fd = open_in_dir(dirs, f, err)) < 0)
                return NULL;
        src = ia_source_from_fd_stat(fd, f->rel, &st, err); /* refuses anything but a file */
        if (!src) {
                if (err && !err->reason)
                        err->reason = "changed";
                return NULL;
        }
        identity_of(&st, id);
        if (nlink)
                *nlink = (uint64_t)st.st_nlink;
        return src;
}

void ia_walk_dirs_close(struct ia_walk_dirs *d)
{
        for (size_t i = 0; i < d->n; i++)
                close(d->fds[i]);
        free(d->fds);
        d->fds = NULL;
        d->n = d->cap = 0;
}
