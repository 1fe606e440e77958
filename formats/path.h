/*
 * Path names without a length limit.
 *
 * Paths from a store can be longer than PATH_MAX (4096 bytes): the kernel
 * only limits one component (NAME_MAX) and one system call's argument.  These
 * helpers never use a fixed buffer, and the open beneath a directory walks a
 * long name one component at a time, descriptors all the way.
 */
#ifndef IA_PATH_H
#define IA_PATH_H

/*
 * The absolute path path names, spelled once: relative to the current
 * directory made absolute, "." and empty components dropped, ".." taking
 * away the component before it ("/.." is "/"), no trailing slash.  Purely
 * textual: no symlink is looked at.  malloc'd, or NULL (ENOMEM, or the
 * current directory cannot be found: errno says).
 */
char *ia_path_lexical(const char *path);

/*
 * The canonical name of an existing path (realpath(3): absolute, symlinks
 * followed, "." and ".." resolved); when it cannot be resolved (it does not
 * exist, it is too long for realpath, a directory cannot be searched) its
 * ia_path_lexical() form.  malloc'd, or NULL on ENOMEM.
 */
char *ia_path_canonical(const char *path);

/*
 * openat2(rootfd, path, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) with
 * O_PATH, for names of any length and kernels without openat2: path is
 * walked one component at a time from rootfd; ".." goes back one directory
 * (checked by identity, never above rootfd), symlinks are followed when
 * relative (at most 40 of them), an absolute name or absolute symlink and
 * anything leaving rootfd is EXDEV.  With nofollow, every symlink is
 * refused (ELOOP) and so is "..".  An O_PATH descriptor, or -1 with errno.
 */
int ia_open_beneath_walk(int rootfd, const char *path, int nofollow);

/*
 * openat(dirfd, path, flags) for a path of any length: a name the kernel
 * finds too long (ENAMETOOLONG) is opened as a chain of openat calls, each
 * given as many whole components as it takes, so symlinks and ".." resolve
 * exactly as they would in one call.  No confinement: for names a user gave.
 */
int ia_openat_long(int dirfd, const char *path, int flags);

#endif
