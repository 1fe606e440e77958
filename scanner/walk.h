/*
 * The directory walk of `imgaudit scan`.
 *
 * openat-style: every directory is opened relative to its parent's
 * descriptor with O_NOFOLLOW, entries are examined with fstatat(...,
 * AT_SYMLINK_NOFOLLOW), so symlinks are recorded and never followed, and
 * nothing but directories is opened here: FIFOs, sockets and devices are
 * recorded from their lstat and never opened.  Each (dev, ino) is visited
 * once (hard links and bind-mount loops are recorded, not re-read).  Names
 * are bytes: a path may hold a newline or invalid UTF-8.
 *
 * Regular files are handed to a callback with their identity; the caller
 * opens them later through ia_walk_open() beneath the root's descriptor,
 * refusing any symlink on the way, and checks the identity is unchanged.
 */
#ifndef IA_WALK_H
#define IA_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "hmap.h"
#include "source.h"

struct ia_identity {
        uint64_t dev, ino, size, allocated;
        int64_t mtime_ns, ctime_ns;
};

/* One scan root: the argument as given and a directory descriptor to open beneath. */
struct ia_walk_root {
        const char *arg; /* as given */
        int dirfd;       /* the directory itself, or the parent of a file root */
        char *dirpath;   /* the path of dirfd's directory (an allowed root) */
        bool is_file;    /* the root is a single file */
        uint64_t dev;
};

struct ia_walk_file {
        size_t root; /* index into the roots */
        char *rel;   /* path below the root's dirfd */
        char *path;  /* display path: the root as given joined with rel */
        struct ia_identity id;
        int dir; /* index of its directory's descriptor in ia_walk_opts.dirs, else -1 */
        /*
         * The walk took no stat of it (a regular file by its directory entry's
         * d_type, and want_stat said no): id.ino is the entry's d_ino, the rest
         * is 0; ia_walk_open_file() or ia_walk_stat_file() gives the identity.
         */
        bool lazy;
};

/*
 * Directory descriptors the walk keeps open (up to max), so that files are
 * opened later relative to their directory: one name to look up, and no
 * path length limit.  A directory past the cap has none (its files are
 * opened beneath the root, component by component when the path is long).
 */
struct ia_walk_dirs {
        int *fds;
        size_t n, cap, max;
};

struct ia_walk_opts {
        /* fnmatch globs, NULL-terminated; matched on the name, the path below the root
         * and the full path */
        const char *const *exclude;
        bool one_file_system;
        unsigned max_depth;        /* directory nesting cap (0: 256) */
        struct ia_hmap *visited;   /* (dev, ino) -> first path (malloc'd), shared by all roots */
        struct ia_walk_dirs *dirs; /* optional: keep directory descriptors for ia_walk_open */
        /* remember every regular file, not only those with more than one link
         * (needed when a root is a file, which a directory root may hold too) */
        bool remember_all_files;
        /*
         * Optional: whether a regular file (by its entry's d_type) needs its
         * identity now (path and the entry's d_ino given); if not, the walk
         * takes no stat of it and hands it over lazy.  Without the callback,
         * when remember_all_files is set and where d_type says nothing, every
         * entry is stat'ed.  A lazy file is not remembered in visited: the
         * caller resolves hard links among lazy files (same d_ino).
         */
        bool (*want_stat)(void *opaque, const char *path, uint64_t d_ino);
        /* A regular file (takes ownership of f's strings). */
        void (*on_file)(void *opaque, struct ia_walk_file *f);
        /* Anything else worth recording: kind "fifo", "socket", "device", "symlink",
         * "unreadable", "hardlink", "other-filesystem", "other"; detail may be NULL. */
        void (*on_entry)(void *opaque, const char *path, const char *kind, const char *reason,
                         const char *detail);
        /* Optional: a directory the walk descends into (the root too), with its own
         * blocks on disk (st_blocks * 512), for per-directory totals. */
        void (*on_dir)(void *opaque, const char *path, uint64_t allocated);
        void *opaque;
};

/* Open a root (directory, or a single file). */
int ia_walk_root_open(struct ia_walk_root *r, const char *arg, struct ia_error *err);
void ia_walk_root_close(struct ia_walk_root *r);

/* Walk root number idx; -1 only on a fatal error (ENOMEM); problems are entries. */
int ia_walk(const struct ia_walk_root *roots, size_t idx, const struct ia_walk_opts *o,
            struct ia_error *err);

/*
 * Open a walked file for reading: beneath root->dirfd, no symlink anywhere,
 * a regular file, and the same (dev, ino) as id (reason "changed" if not).
 */
struct ia_source *ia_walk_open(const struct ia_walk_root *root, const char *rel,
                               const struct ia_identity *id, struct ia_error *err);

/*
 * Open a walked file by its name in its directory's kept descriptor (one
 * openat, O_NOFOLLOW, the identity checked on the descriptor), else as
 * ia_walk_open().
 */
struct ia_source *ia_walk_open_file(const struct ia_walk_root *root,
                                    const struct ia_walk_dirs *dirs, const struct ia_walk_file *f,
                                    struct ia_error *err);
/*
 * A lazy file opened as ia_walk_open_file() does (nothing to compare: the
 * identity is the open descriptor's, in *id, with its link count in *nlink).
 */
struct ia_source *ia_walk_open_lazy(const struct ia_walk_root *root,
                                    const struct ia_walk_dirs *dirs, const struct ia_walk_file *f,
                                    struct ia_identity *id, uint64_t *nlink, struct ia_error *err);
/*
 * The identity of a walked file now, without opening it (fstatat in its
 * directory's kept descriptor, else beneath the root): 0, or -1 with errno
 * (EINVAL: no longer a regular file).
 */
int ia_walk_stat_file(const struct ia_walk_root *root, const struct ia_walk_dirs *dirs,
                      const struct ia_walk_file *f, struct ia_identity *id, uint64_t *nlink);
void ia_walk_dirs_close(struct ia_walk_dirs *d);

/* Join a and b with one '/' (malloc'd). */
char *ia_path_join(const char *a, const char *b);

#endif
