/*
 * Spools for decompressed archive members: memory first, then one unlinked
 * temporary file with holes for zero blocks.  See spool.h for the contract.
 *
 * Where a member has data and where it has holes is what the archive says
 * (the ranges written), never where the spool happens to keep it: a member's
 * source answers SEEK_DATA/SEEK_HOLE from its written extents, so its map is
 * the same in memory, in the file, and in place in an uncompressed archive.
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
#include "banned.h"

#define SPOOL_BLOCK 4096u
/* Extents kept per member; past this, gaps are counted as data (no hole is lost by more). */
#define SPOOL_MAX_EXTENTS (1u << 20)

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
        struct ia_extent *ext; /* the ranges written, ascending, coalesced */
        size_t next, ext_cap;
};

/* Record [lo, hi) as written. */
static int spool_add_extent(struct ia_spool *sp, uint64_t lo, uint64_t hi, struct ia_error *err)
{
        if (sp->next && sp->ext[sp->next - 1].hi == lo) {
                sp->ext[sp->next - 1].hi = hi;
                return 0;
        }
        if (sp->next == SPOOL_MAX_EXTENTS) {
                sp->ext[sp->next - 1].hi = hi; /* the gap becomes data */
                return 0;
        }
        if (sp->next == sp->ext_cap) {
                size_t nc = sp->ext_cap ? sp->ext_cap * 2 : 8;
                struct ia_extent *ne = realloc(sp->ext, nc * sizeof(*ne));

                if (!ne)
                        return ia_error_set(err, IA_ERR_NOMEM,
                                            "member '%s': out of memory for its extents", sp->name);
                sp->ext = ne;
                sp->ext_cap = nc;
        }
        sp->ext[sp->next].lo = lo;
        sp->ext[sp->next].hi = hi;
        sp->ext[sp->next].phys = 0;
        sp->next++;
        return 0;
}

size_t ia_extents_find(const struct ia_extent *e, size_t n, uint64_t off)
{
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (e[mid].hi <= off)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

int ia_extents_seek(const struct ia_extent *e, size_t n, uint64_t size, uint64_t off,
                    enum ia_seek what, uint64_t *res, int *errnum)
{
        size_t i;

        if (off >= size) {
                *errnum = ENXIO;
                return -1;
        }
        i = ia_extents_find(e, n, off);
        if (i < n && e[i].lo <= off) { /* in data */
                *res = what == IA_SEEK_DATA ? off : e[i].hi;
                return 0;
        }
        if (what == IA_SEEK_HOLE) {
                *res = off;
                return 0;
        }
        if (i == n) {
                *errnum = ENXIO;
                return -1;
        }
        *res = e[i].lo;
        return 0;
}

/* The current member's extents, for its source (NULL with *n 0 when none). */
static int spool_take_extents(struct ia_spool *sp, struct ia_extent **out, size_t *n,
                              struct ia_error *err)
{
        *out = NULL;
        *n = sp->next;
        if (!sp->next)
                return 0;
        *out = malloc(sp->next * sizeof(**out));
        if (!*out)
                return ia_error_set(err, IA_ERR_NOMEM, "member '%s': out of memory", sp->name);
        memcpy(*out, sp->ext, sp->next * sizeof(**out));
        return 0;
}

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
        free(sp->ext);
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
        sp->next = 0;
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
        if (spool_add_extent(sp, off, end, err) < 0)
                return -1;
        sp->end = end;
        return 0;
}

/* ---- member sources ---- */

/* A finished member: in memory (buf) or in the spool file at off; holes from ext. */
struct member {
        struct ia_source base;
        uint8_t *buf;
        struct spool_file *file;
        uint64_t off;
        struct ia_extent *ext;
        size_t n;
};

static int64_t member_pread(struct ia_source *src, void *buf, size_t len, uint64_t off,
                            struct ia_error *err)
{
        struct member *m = (struct member *)src;

        if (off >= src->size)
                return 0;
        if (len > src->size - off)
                len = (size_t)(src->size - off);
        if (m->buf) {
                memcpy(buf, m->buf + off, len);
                return (int64_t)len;
        }
        return ia_fd_pread(m->file->fd, buf, len, m->off + off, "spool read", off, err);
}

static int member_seek(struct ia_source *src, uint64_t off, enum ia_seek what, uint64_t *res,
                       int *errnum)
{
        struct member *m = (struct member *)src;

        return ia_extents_seek(m->ext, m->n, src->size, off, what, res, errnum);
}

static void member_destroy(struct ia_source *src)
{
        struct member *m = (struct member *)src;

        free(m->buf);
        spool_file_unref(m->file);
        free(m->ext);
        free(m);
}

static const struct ia_source_ops member_ops = {
    .pread = member_pread,
    .seek = member_seek,
    .destroy = member_destroy,
};

int ia_spool_is_file(const struct ia_source *src)
{
        return src && src->ops == &member_ops && ((const struct member *)src)->file;
}

struct ia_source *ia_spool_end(struct ia_spool *sp, uint64_t size, struct ia_error *err)
{
        struct member *m;
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
        m = calloc(1, sizeof(*m));
        if (!m)
                goto nomem;
        if (spool_take_extents(sp, &m->ext, &m->n, err) < 0) {
                free(m);
                goto abort;
        }
        if (sp->in_file) {
                if (fstat(sp->file->fd, &st) < 0 ||
                    ((uint64_t)st.st_size < sp->file_start + size &&
                     ftruncate(sp->file->fd, (off_t)(sp->file_start + size)) < 0)) {
                        ia_error_errno(err, IA_ERR_IO, errno,
                                       "member '%s': cannot extend the spool file to %llu bytes",
                                       sp->name, (unsigned long long)(sp->file_start + size));
                        free(m->ext);
                        free(m);
                        goto abort;
                }
                m->file = sp->file;
                atomic_fetch_add(&sp->file->refs, 1);
                m->off = sp->file_start;
                sp->file_end = sp->file_start + size;
        } else {
                if (size < sp->mcap && size > 0) {
                        uint8_t *q = realloc(sp->mbuf, (size_t)size); /* give back the slack */
                        if (q)
                                sp->mbuf = q;
                }
                if (!sp->mbuf) {
                        sp->mbuf = malloc(1);
                        if (!sp->mbuf) {
                                free(m->ext);
                                free(m);
                                goto nomem;
                        }
                }
                m->buf = sp->mbuf;
                sp->mbuf = NULL;
                sp->mcap = 0;
                sp->mem_used += size;
        }
        ia_source_init(&m->base, &member_ops, size);
        sp->used += size;
        sp->active = false;
        return &m->base;

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
