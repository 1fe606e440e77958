/*
 * Spools for decompressed archive members: memory first, then one unlinked
 * temporary file with holes for zero blocks.  See spool.h for the contract.
 */
#define _GNU_SOURCE
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"

#define SPOOL_BLOCK 4096u

/* The temporary file, shared by every member spilled to it. */
struct spool_file {
        int fd;
        atomic_uint refs;
};

struct ia_spool {
        char *tmpdir;
        uint64_t memory;   /* allowance for members kept in memory */
        uint64_t budget;   /* allowance for all members */
        uint64_t used;     /* logical bytes of finished members */
        uint64_t mem_used; /* bytes of finished members held in memory */
        struct spool_file *file;
        uint64_t file_end; /* first byte of the file after the last finished member */

        /* The member being written. */
        bool active;
        const char *name;
        uint64_t end; /* logical bytes written so far (gaps included) */
        bool in_file; /* spilled to the file at file_start */
        uint64_t file_start;
        uint8_t *mbuf; /* while in memory */
        size_t mcap;
};

static void spool_file_unref(struct spool_file *f)
{
        if (f && atomic_fetch_sub(&f->refs, 1) == 1) {
                close(f->fd);
                free(f);
        }
}

static int spool_open_file(struct ia_spool *sp, struct ia_error *err)
{
        const char *dir = sp->tmpdir;
        char path[PATH_MAX];
        int fd;

        fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC | O_EXCL, 0600);
        if (fd < 0) {
                /* No O_TMPFILE here (old kernel, filesystem without it): mkstemp + unlink. */
                int n = snprintf(path, sizeof(path), "%s/imgaudit-spool-XXXXXX", dir);

                if (n < 0 || (size_t)n >= sizeof(path))
                        return ia_error_set(err, IA_ERR_USAGE,
                                            "spool directory '%s' has too long a name", dir);
                fd = mkostemp(path, O_CLOEXEC);
                if (fd < 0)
                        return ia_error_errno(err, IA_ERR_IO, errno,
                                              "cannot create a spool file in '%s'", dir);
                if (unlink(path) < 0) {
                        int e = errno;

                        close(fd);
                        return ia_error_errno(err, IA_ERR_IO, e, "cannot unlink spool file '%s'",
                                              path);
                }
        }
        sp->file = calloc(1, sizeof(*sp->file));
        if (!sp->file) {
                close(fd);
                return ia_error_set(err, IA_ERR_NOMEM, "out of memory for a spool file");
        }
        sp->file->fd = fd;
        atomic_init(&sp->file->refs, 1);
        sp->file_end = 0;
        return 0;
}

static bool all_zero(const uint8_t *p, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (p[i])
                        return false;
        return true;
}

/* Write buf at pos of the file, leaving all-zero blocks unwritten (holes). */
static int spool_pwrite(struct ia_spool *sp, uint64_t pos, const uint8_t *buf, size_t len,
                        struct ia_error *err)
{
        while (len > 0) {
                uint64_t block_end = pos / SPOOL_BLOCK * SPOOL_BLOCK + SPOOL_BLOCK;
                size_t chunk = (size_t)ia_min_u64(len, block_end - pos);

                if (!all_zero(buf, chunk)) {
                        size_t done = 0;

                        while (done < chunk) {
                                ssize_t n = pwrite(sp->file->fd, buf + done, chunk - done,
                                                   (off_t)(pos + done));
                                if (n < 0 && errno == EINTR)
                                        continue;
                                if (n <= 0)
                                        return ia_error_errno(
                                            err, IA_ERR_IO, n < 0 ? errno : ENOSPC,
                                            "member '%s': writing %zu bytes to the spool file at "
                                            "offset %llu failed",
                                            sp->name, chunk - done,
                                            (unsigned long long)(pos + done));
                                done += (size_t)n;
                        }
                }
                pos += chunk;
                buf += chunk;
                len -= chunk;
        }
        return 0;
}

/* Move the current member from memory to the file. */
static int spool_spill(struct ia_spool *sp, struct ia_error *err)
{
        if (!sp->file && spool_open_file(sp, err) < 0)
                return -1;
        sp->file_start = ia_round_up(sp->file_end, SPOOL_BLOCK);
        if (spool_pwrite(sp, sp->file_start, sp->mbuf, (size_t)sp->end, err) < 0)
                return -1;
        free(sp->mbuf);
        sp->mbuf = NULL;
        sp->mcap = 0;
        sp->in_file = true;
        return 0;
}

static int spool_budget_check(struct ia_spool *sp, uint64_t end, struct ia_error *err)
{
        if (end > sp->budget || sp->used > sp->budget - end)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "member '%s': spooling %llu bytes would exceed the spool "
                                    "budget of %llu bytes (%llu already in use)",
                                    sp->name, (unsigned long long)end,
                                    (unsigned long long)sp->budget, (unsigned long long)sp->used);
        return 0;
}

/* Make the memory buffer hold end bytes, or spill to the file when the allowance is out. */
static int spool_reserve(struct ia_spool *sp, uint64_t end, struct ia_error *err)
{
        size_t cap;
        uint8_t *p;

        if (sp->in_file)
                return 0;
        if (end > sp->memory || sp->mem_used > sp->memory - end || end > SIZE_MAX / 2)
                return spool_spill(sp, err);
        if (end <= sp->mcap)
                return 0;
        cap = sp->mcap ? sp->mcap : 65536;
        while (cap < end)
                cap *= 2;
        if (cap > sp->memory - sp->mem_used)
                cap = (size_t)(sp->memory - sp->mem_used);
        p = realloc(sp->mbuf, cap);
        if (!p)
                return spool_spill(sp, err); /* memory is short: the file will do */
        memset(p + sp->mcap, 0, cap - sp->mcap);
        sp->mbuf = p;
        sp->mcap = cap;
        return 0;
}

struct ia_spool *ia_spool_new(const char *tmpdir, uint64_t memory, uint64_t budget,
                              struct ia_error *err)
{
        struct ia_spool *sp = calloc(1, sizeof(*sp));

        if (!tmpdir || !*tmpdir)
                tmpdir = getenv("TMPDIR");
        if (!tmpdir || !*tmpdir)
                tmpdir = "/tmp";
        if (!sp)
                goto nomem;
        sp->tmpdir = strdup(tmpdir);
        if (!sp->tmpdir)
                goto free_sp;
        sp->memory = memory;
        sp->budget = budget;
        return sp;

free_sp:
        free(sp);
nomem:
        ia_error_set(err, IA_ERR_NOMEM, "out of memory for a spool");
        return NULL;
}

void ia_spool_free(struct ia_spool *sp)
{
        if (!sp)
                return;
        if (sp->active)
                ia_spool_abort(sp);
        spool_file_unref(sp->file);
        free(sp->tmpdir);
        free(sp);
}

int ia_spool_begin(struct ia_spool *sp, const char *name, struct ia_error *err)
{
        if (sp->active)
                return ia_error_set(err, IA_ERR_INTERNAL,
                                    "member '%s': spool already busy with '%s'", name, sp->name);
        sp->active = true;
        sp->name = name;
        sp->end = 0;
        sp->in_file = false;
        sp->mbuf = NULL;
        sp->mcap = 0;
        return 0;
}

int ia_spool_write(struct ia_spool *sp, uint64_t off, const void *buf, size_t len,
                   struct ia_error *err)
{
        uint64_t end;

        if (!sp->active)
                return ia_error_set(err, IA_ERR_INTERNAL, "spool write outside a member");
        if (off < sp->end)
                return ia_error_set(err, IA_ERR_CORRUPT,
                                    "member '%s': data at offset %llu goes back before offset %llu",
                                    sp->name, (unsigned long long)off, (unsigned long long)sp->end);
        if (!ia_add_ok(off, len, &end))
                return ia_error_set(err, IA_ERR_CORRUPT, "member '%s': data offset %llu overflows",
                                    sp->name, (unsigned long long)off);
        if (spool_budget_check(sp, end, err) < 0)
                return -1;
        if (len == 0)
                return 0;
        if (spool_reserve(sp, end, err) < 0)
                return -1;
        if (sp->in_file) {
                if (spool_pwrite(sp, sp->file_start + off, buf, len, err) < 0)
                        return -1;
        } else {
                memcpy(sp->mbuf + off, buf, len); /* the gap is already zero */
        }
        sp->end = end;
        return 0;
}

/* ---- member sources ---- */

struct file_member {
        struct ia_source base;
        struct spool_file *file;
        uint64_t off;
};

static int64_t file_member_pread(struct ia_source *src, void *buf, size_t len, uint64_t off,
                                 struct ia_error *err)
{
        struct file_member *m = (struct file_member *)src;
        ssize_t n;

        if (off >= src->size)
                return 0;
        if (len > src->size - off)
                len = (size_t)(src->size - off);
        if (len > (size_t)INT_MAX)
                len = INT_MAX;
        do {
                n = pread(m->file->fd, buf, len, (off_t)(m->off + off));
        } while (n < 0 && errno == EINTR);
        if (n < 0)
                return ia_error_errno(err, IA_ERR_IO, errno,
                                      "spool read of %zu bytes at offset %llu failed", len,
                                      (unsigned long long)off);
        return n;
}

static int file_member_seek(struct ia_source *src, uint64_t off, enum ia_seek what, uint64_t *res,
                            int *errnum)
{
        struct file_member *m = (struct file_member *)src;
        off_t r;

        if (off >= src->size) {
                *errnum = ENXIO;
                return -1;
        }
        r = lseek(m->file->fd, (off_t)(m->off + off), what == IA_SEEK_DATA ? SEEK_DATA : SEEK_HOLE);
        if (r < 0) {
                if (errno == ENXIO && what == IA_SEEK_HOLE) {
                        *res = src->size;
                        return 0;
                }
                *errnum = errno;
                return -1;
        }
        if ((uint64_t)r < m->off + off) {
                *errnum = EIO;
                return -1;
        }
        if ((uint64_t)r - m->off >= src->size) {
                if (what == IA_SEEK_DATA) {
                        *errnum = ENXIO;
                        return -1;
                }
                *res = src->size;
                return 0;
        }
        *res = (uint64_t)r - m->off;
        return 0;
}

static void file_member_destroy(struct ia_source *src)
{
        struct file_member *m = (struct file_member *)src;

        spool_file_unref(m->file);
        free(m);
}

static const struct ia_source_ops file_member_ops = {
    .pread = file_member_pread,
    .seek = file_member_seek,
    .destroy = file_member_destroy,
};

int ia_spool_is_file(const struct ia_source *src)
{
        return src && src->ops == &file_member_ops;
}

struct ia_source *ia_spool_end(struct ia_spool *sp, uint64_t size, struct ia_error *err)
{
        struct ia_source *src;
        struct stat st;

        if (!sp->active) {
                ia_error_set(err, IA_ERR_INTERNAL, "spool end outside a member");
                return NULL;
        }
        if (size < sp->end) {
                ia_error_set(err, IA_ERR_CORRUPT,
                             "member '%s': %llu bytes of data for a size of %llu bytes", sp->name,
                             (unsigned long long)sp->end, (unsigned long long)size);
                goto abort;
        }
        if (spool_budget_check(sp, size, err) < 0 || spool_reserve(sp, size, err) < 0)
                goto abort;
        if (sp->in_file) {
                struct file_member *m = calloc(1, sizeof(*m));

                if (!m)
                        goto nomem;
                if (fstat(sp->file->fd, &st) < 0 ||
                    ((uint64_t)st.st_size < sp->file_start + size &&
                     ftruncate(sp->file->fd, (off_t)(sp->file_start + size)) < 0)) {
                        ia_error_errno(err, IA_ERR_IO, errno,
                                       "member '%s': cannot extend the spool file to %llu bytes",
                                       sp->name, (unsigned long long)(sp->file_start + size));
                        free(m);
                        goto abort;
                }
                ia_source_init(&m->base, &file_member_ops, size);
                m->file = sp->file;
                atomic_fetch_add(&sp->file->refs, 1);
                m->off = sp->file_start;
                sp->file_end = sp->file_start + size;
                src = &m->base;
        } else {
                uint8_t *p;

                if (size < sp->mcap && size > 0) {
                        uint8_t *q = realloc(sp->mbuf, (size_t)size); /* give back the slack */
                        if (q)
                                sp->mbuf = q;
                }
                if (!sp->mbuf) {
                        sp->mbuf = malloc(1);
                        if (!sp->mbuf)
                                goto nomem;
                }
                p = sp->mbuf;
                src = ia_source_memory_adopt(p, (size_t)size, err);
                if (!src)
                        goto nomem; /* the buffer stays the spool's */
                sp->mbuf = NULL;
                sp->mcap = 0;
                sp->mem_used += size;
        }
        sp->used += size;
        sp->active = false;
        return src;

nomem:
        ia_error_set(err, IA_ERR_NOMEM, "member '%s': out of memory", sp->name);
abort:
        ia_spool_abort(sp);
        return NULL;
}

void ia_spool_abort(struct ia_spool *sp)
{
        if (!sp->active)
                return;
        if (sp->in_file) {
                /* Nothing after file_start belongs to a finished member: give the disk back. */
                if (ftruncate(sp->file->fd, (off_t)sp->file_start) < 0) {
                        /* Harmless: the bytes stay allocated until the spool file is closed. */
                }
        }
        free(sp->mbuf);
        sp->mbuf = NULL;
        sp->mcap = 0;
        sp->active = false;
}

uint64_t ia_spool_used(const struct ia_spool *sp)
{
        return sp->used;
}

uint64_t ia_spool_memory_used(const struct ia_spool *sp)
{
        return sp->mem_used;
}
