/*
 * Block-device volumes, opt in (see devices.h).
 */
#define _GNU_SOURCE
#include "devices.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <unistd.h>
#include "banned.h"

static const char *type_name(mode_t m)
{
        if (S_ISREG(m))
                return "a regular file";
        if (S_ISDIR(m))
                return "a directory";
        if (S_ISCHR(m))
                return "a character device";
        if (S_ISFIFO(m))
                return "a FIFO";
        if (S_ISSOCK(m))
                return "a socket";
        return "not a block device";
}

/* Open path read-only, never exclusively, a block device; its size in *size. */
static int open_dev(const char *path, struct stat *st, uint64_t *size, struct ia_error *err)
{
        /* O_NONBLOCK: an open that would wait (a tape, a FIFO swapped in) returns at once */
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

        if (fd < 0) {
                ia_error_errno(err, IA_ERR_IO, errno, "cannot open the device '%s'", path);
                if (err)
                        err->reason = errno == EACCES ? "permission" : "io";
                return -1;
        }
        if (fstat(fd, st) < 0 || !S_ISBLK(st->st_mode)) {
                ia_error_set(err, IA_ERR_REFUSED, "'%s' is not a block device", path);
                if (err)
                        err->reason = "not-a-device";
                close(fd);
                return -1;
        }
        if (ioctl(fd, BLKGETSIZE64, size) < 0) {
                ia_error_errno(err, IA_ERR_IO, errno, "cannot get the size of the device '%s'",
                               path);
                if (err)
                        err->reason = "io";
                close(fd);
                return -1;
        }
        return fd;
}

/* Read a small sysfs attribute of the block device dev into buf (trailing
 * newline removed); -1 when it is missing. */
static int sysfs_attr(dev_t dev, const char *attr, char *buf, size_t cap)
{
        char path[96];
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(dev), minor(dev), attr);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        n = read(fd, buf, cap - 1);
        close(fd);
        if (n <= 0)
                return -1;
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        return 0;
}

static bool sysfs_zero(dev_t dev, const char *attr)
{
        char v[32];

        return sysfs_attr(dev, attr, v, sizeof(v)) == 0 && strcmp(v, "0") == 0;
}

/* What the device spends on the host where the kernel tells it: a loop device
 * over a whole file (no offset, no size limit) spends that file's blocks
 * (stat(2) of the kernel's backing_file, never opened). Anything else (an LV,
 * dm-thin, a zvol, a partition): its size, an upper bound. */
static uint64_t dev_allocated(dev_t rdev, uint64_t size)
{
        char backing[4096];
        struct stat st;

        if (sysfs_attr(rdev, "loop/backing_file", backing, sizeof(backing)) < 0 ||
            backing[0] != '/' || !sysfs_zero(rdev, "loop/offset") ||
            !sysfs_zero(rdev, "loop/sizelimit"))
                return size;
        /* a deleted backing file reads "/path (deleted)": stat fails or finds another file */
        if (stat(backing, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
                return size;
        return (uint64_t)st.st_blocks * 512;
}

int ia_devices_expand(const char *const *globs,
                      void (*on_dev)(void *opaque, struct ia_walk_file *f),
                      void (*on_entry)(void *opaque, const char *path, const char *kind,
                                       const char *reason, const char *detail),
                      void *opaque)
{
        struct {
                uint64_t dev, ino;
        } *seen = NULL;
        size_t nseen = 0, cap = 0;
        char msg[256];
        int rc = 0;

        for (size_t g = 0; globs && globs[g] && rc == 0; g++) {
                glob_t gl;
                int r = glob(globs[g], 0, NULL, &gl);

                if (r == GLOB_NOMATCH) {
                        on_entry(opaque, globs[g], "unreadable", "missing",
                                 "--devices: the glob matches no file");
                        continue;
                }
                if (r != 0) {
                        on_entry(opaque, globs[g], "unreadable", "io",
                                 "--devices: the glob cannot be expanded");
                        if (r == GLOB_NOSPACE)
                                rc = -1;
                        continue;
                }
                for (size_t i = 0; i < gl.gl_pathc && rc == 0; i++) {
                        const char *p = gl.gl_pathv[i];
                        struct ia_error err;
                        struct stat st;
                        uint64_t size = 0;
                        struct ia_walk_file f;
                        bool dup = false;
                        int fd;

                        ia_error_clear(&err);
                        /* the glob asked for it: a symlink (/dev/vg0/lv) is followed */
                        if (stat(p, &st) < 0) {
                                on_entry(opaque, p, "unreadable",
                                         errno == ENOENT ? "missing" : "io", strerror(errno));
                                continue;
                        }
                        if (!S_ISBLK(st.st_mode)) {
                                snprintf(msg, sizeof(msg),
                                         "--devices: %s, not a block device; never opened",
                                         type_name(st.st_mode));
                                on_entry(opaque, p, "unreadable", "not-a-device", msg);
                                continue;
                        }
                        fd = open_dev(p, &st, &size, &err);
                        if (fd < 0) {
                                on_entry(opaque, p, "unreadable", err.reason ? err.reason : "io",
                                         ia_error_msg(&err));
                                continue;
                        }
                        close(fd);
                        for (size_t k = 0; k < nseen; k++)
                                if (seen[k].dev == (uint64_t)st.st_dev &&
                                    seen[k].ino == (uint64_t)st.st_ino)
                                        dup = true;
                        if (dup)
                                continue; /* the same device by another name or glob */
                        if (nseen == cap) {
                                size_t nc = cap ? cap * 2 : 16;
                                void *ns = realloc(seen, nc * sizeof(*seen));

                                if (!ns) {
                                        rc = -1;
                                        break;
                                }
                                seen = ns;
                                cap = nc;
                        }
                        seen[nseen].dev = (uint64_t)st.st_dev;
                        seen[nseen].ino = (uint64_t)st.st_ino;
                        nseen++;
                        if (size == 0) {
                                on_entry(opaque, p, "device", "empty",
                                         "--devices: a block device of 0 bytes (a detached loop "
                                         "device?): nothing to read");
                                continue;
                        }
                        memset(&f, 0, sizeof(f));
                        f.root = SIZE_MAX;
                        f.rel = strdup(p);
                        f.path = strdup(p);
                        if (!f.rel || !f.path) {
                                free(f.rel);
                                free(f.path);
                                rc = -1;
                                break;
                        }
                        f.id.dev = (uint64_t)st.st_dev;
                        f.id.ino = (uint64_t)st.st_ino;
                        f.id.size = size;
                        f.id.allocated = dev_allocated(st.st_rdev, size);
                        f.id.mtime_ns =
                            (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
                        f.id.ctime_ns =
                            (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
                        on_dev(opaque, &f);
                }
                globfree(&gl);
        }
        free(seen);
        return rc;
}

struct ia_source *ia_device_open(const char *path, const struct ia_identity *id,
                                 struct ia_error *err)
{
        struct stat st;
        uint64_t size = 0;
        int fd = open_dev(path, &st, &size, err);
        struct ia_source *src;

        if (fd < 0)
                return NULL;
        if ((uint64_t)st.st_dev != id->dev || (uint64_t)st.st_ino != id->ino || size != id->size) {
                ia_error_set(err, IA_ERR_REFUSED, "the device '%s' changed since it was listed",
                             path);
                if (err)
                        err->reason = "changed";
                close(fd);
                return NULL;
        }
        src = ia_source_from_blockdev(fd, path, size, err);
        if (src)
                src->allocated = id->allocated; /* what the listing found the device spends */
        return src;
}
