/*
 * Archives as containers of images: one libarchive pass over an untrusted
 * archive that records every member and gives each regular member a byte
 * source.  See archive.h for the contract.
 *
 * Reading: libarchive reads the archive source through our read, seek and
 * skip callbacks, so an uncompressed archive is never read where it is only
 * skipped, and a truncated or failing source is told apart from a corrupt one.
 * Only tar (ustar, pax, GNU) and zip are enabled, and only the gzip, xz, zstd
 * and bzip2 filters libarchive has built in (never an external program).
 *
 * Where a member's bytes are: libarchive does not say.  For a stream with no
 * compression filter, the tar and zip readers consume a member's data lazily,
 * so right after the first archive_read_data_block() the bytes the format has
 * consumed (archive_filter_bytes(a, 0)) are the file offset of the block just
 * returned.  That offset is only a candidate: the block is compared with the
 * archive's bytes at that offset, and a member whose bytes differ is spooled.
 * Zip members are windows only when stored (libarchive names the format
 * "(uncompressed)") and not encrypted.
 *
 * Bounds: every regular member of a compressed stream costs decompression even
 * when it is skipped, so skipping reads through the data with the same checks
 * as spooling: total decompressed bytes and the ratio of decompressed bytes to
 * archive bytes read (after a small slack, since tiny members compress well).
 * A member's headers are capped too (header_over_cap()): a compressed stream
 * is read in two stages, a raw reader that decompresses feeding the format
 * reader, so that the cap counts decompressed bytes.
 *
 * OVF: the first regular member whose name ends in ".ovf" is parsed with
 * libxml2 (vmdefs.h: no network, no DTD, no entity expansion, size and item
 * caps) for its <File> and <Disk> elements and their attributes.
 *
 * Not supported: multi-volume tars, encrypted zip members (recorded with an
 * error), zip64 quirks beyond what libarchive handles, cpio/7z/iso9660/rar.
 */
#define _GNU_SOURCE
#include "archives.h"
#include "vmdefs.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bytes.h"
#include "spool.h"
#include "banned.h"

#define DEFAULT_MAX_MEMBERS  100000u
#define DEFAULT_SPOOL_BUDGET (4ull << 30)
#define DEFAULT_SPOOL_MEMORY (64ull << 20)
#define DEFAULT_MAX_RATIO    100000u
#define DEFAULT_MAX_NESTING  2u
#define DEFAULT_MAX_NAME     4096u         /* bytes in one member or link name (PATH_MAX) */
#define DEFAULT_NAME_BUDGET  (32ull << 20) /* bytes of member and link names per archive */
#define DEFAULT_MAX_HEADER   (4ull << 20)  /* bytes of one member's headers */
#define RATIO_SLACK          (1ull << 20)  /* decompressed bytes before the ratio cap applies */
#define READ_BLOCK           (256u << 10)
#define VERIFY_MAX           (64u << 10)
#define OVF_MAX              (4u << 20)
#define SPARSE_MAX_EXTENTS   (1u << 20)
#define MAX_RETRIES          64u

struct ia_archive {
        char *name;
        struct ia_source *src;
        unsigned depth;
        struct ia_archive_member *members;
        char **norms; /* normalised names, parallel to members */
        size_t count, cap;
        uint64_t name_bytes; /* member and link names held, against lim.name_budget */
        size_t *index;       /* open addressing over norms: member index + 1, 0 = empty */
        size_t index_cap;
        struct ia_ovf_disk *ovf;
        size_t ovf_count;
        struct ia_error error;
};

/* ---- member sources: carry the nesting depth, read through to what holds the bytes ---- */

struct member_source {
        struct ia_source base;
        struct ia_source *under;
        unsigned depth;
};

static int64_t member_pread(struct ia_source *src, void *buf, size_t len, uint64_t off,
                            struct ia_error *err)
{
        struct member_source *m = (struct member_source *)src;

        return m->under->ops->pread(m->under, buf, len, off, err);
}

static int member_seek(struct ia_source *src, uint64_t off, enum ia_seek what, uint64_t *res,
                       int *errnum)
{
        struct member_source *m = (struct member_source *)src;

        return ia_source_seek(m->under, off, what, res, errnum);
}

static void member_destroy(struct ia_source *src)
{
        struct member_source *m = (struct member_source *)src;

        ia_source_unref(m->under);
        free(m);
}

static const struct ia_source_ops member_ops = {
    .pread = member_pread,
    .seek = member_seek,
    .destroy = member_destroy,
};

/* Wrap under (whose reference is handed over) as a member at depth. */
static struct ia_source *member_new(struct ia_source *under, unsigned depth, struct ia_error *err)
{
        struct member_source *m = calloc(1, sizeof(*m));

        if (!m) {
                ia_source_unref(under);
                ia_error_set(err, IA_ERR_NOMEM, "out of memory");
                return NULL;
        }
        ia_source_init(&m->base, &member_ops, under->size);
        m->base.allocated = under->allocated;
        m->under = under;
        m->depth = depth;
        return &m->base;
}

static unsigned source_depth(const struct ia_source *src)
{
        if (src->ops == &member_ops)
                return ((const struct member_source *)src)->depth;
        return 0;
}

/* ---- sparse sources: a GNU sparse member of an uncompressed tar, mapped in place ---- */

struct sparse_source {
        struct ia_source base;
        struct ia_source *under;
        struct ia_extent *ext;
        size_t n;
};

static int64_t sparse_pread(struct ia_source *src, void *buf, size_t len, uint64_t off,
                            struct ia_error *err)
{
        struct sparse_source *s = (struct sparse_source *)src;
        size_t i;
        const struct ia_extent *e;

        if (off >= src->size)
                return 0;
        if (len > src->size - off)
                len = (size_t)(src->size - off);
        i = ia_extents_find(s->ext, s->n, off);
        if (i == s->n || s->ext[i].lo > off) {
                uint64_t hole_end = i == s->n ? src->size : s->ext[i].lo;

                len = (size_t)ia_min_u64(len, hole_end - off);
                memset(buf, 0, len);
                return (int64_t)len;
        }
        e = &s->ext[i];
        len = (size_t)ia_min_u64(len, e->hi - off);
        return s->under->ops->pread(s->under, buf, len, e->phys + (off - e->lo), err);
}

static int sparse_seek(struct ia_source *src, uint64_t off, enum ia_seek what, uint64_t *res,
                       int *errnum)
{
        struct sparse_source *s = (struct sparse_source *)src;

        if (off >= src->size) {
                *errnum = ENXIO;
                return -1;
        }
        for (size_t i = ia_extents_find(s->ext, s->n, off);; i++) {
                const struct ia_extent *e;
                uint64_t r, in;
                int en;

                if (i == s->n || s->ext[i].lo > off) { /* off is in a hole */
                        if (what == IA_SEEK_HOLE) {
                                *res = off;
                                return 0;
                        }
                        if (i == s->n) {
                                *errnum = ENXIO;
                                return -1;
                        }
                        off = s->ext[i].lo;
                }
                e = &s->ext[i];
                in = e->phys + (off - e->lo);
                /* Inside an extent: the archive file's own holes show through. */
                if (ia_source_seek(s->under, in, what, &r, &en) < 0) {
                        if (en == EOPNOTSUPP) {
                                r = what == IA_SEEK_DATA ? in : e->phys + (e->hi - e->lo);
                        } else if (en == ENXIO) {
                                r = what == IA_SEEK_DATA ? UINT64_MAX : e->phys + (e->hi - e->lo);
                        } else {
                                *errnum = en;
                                return -1;
                        }
                }
                if (r < in) {
                        *errnum = EIO;
                        return -1;
                }
                if (r < e->phys + (e->hi - e->lo)) {
                        *res = e->lo + (r - e->phys);
                        return 0;
                }
                /* Nothing of the kind in this extent: go on from its end. */
                off = e->hi;
                if (off >= src->size) {
                        if (what == IA_SEEK_HOLE) {
                                *res = src->size;
                                return 0;
                        }
                        *errnum = ENXIO;
                        return -1;
                }
        }
}

static void sparse_destroy(struct ia_source *src)
{
        struct sparse_source *s = (struct sparse_source *)src;

        ia_source_unref(s->under);
        free(s->ext);
        free(s);
}

static const struct ia_source_ops sparse_ops = {
    .pread = sparse_pread,
    .seek = sparse_seek,
    .destroy = sparse_destroy,
};

/* ---- names ---- */

static bool is_sep(char c)
{
        return c == '/' || c == '\\';
}

static unsigned name_flags(const char *name)
{
        unsigned flags = 0;
        const char *p = name;

        if (is_sep(name[0]))
                flags |= IA_MEMBER_ABSOLUTE;
        while (*p) {
                const char *q = p;

                while (*q && !is_sep(*q))
                        q++;
                if (q - p == 2 && p[0] == '.' && p[1] == '.')
                        flags |= IA_MEMBER_TRAVERSAL;
                p = *q ? q + 1 : q;
        }
        return flags;
}

char *ia_name_normalise(const char *name, bool resolve_dotdot)
{
        size_t o = 0, base;
        char *out = malloc(strlen(name) + 1);
        const char *p = name;

        if (!out)
                return NULL;
        if (!resolve_dotdot && name[0] == '/')
                out[o++] = '/';
        base = o;
        while (*p) {
                const char *q = p;
                size_t n;

                while (*q && *q != '/')
                        q++;
                n = (size_t)(q - p);
                if (n == 2 && p[0] == '.' && p[1] == '.' && resolve_dotdot) {
                        if (o == base) { /* above the top */
                                free(out);
                                return NULL;
                        }
                        while (o > base && out[o - 1] != '/')
                                o--;
                        if (o > base)
                                o--; /* the slash */
                } else if (n > 0 && !(n == 1 && p[0] == '.')) {
                        if (o > base)
                                out[o++] = '/';
                        memcpy(out + o, p, n);
                        o += n;
                }
                p = *q ? q + 1 : q;
        }
        out[o] = '\0';
        return out;
}

static size_t name_hash(const char *s)
{
        uint64_t h = 1469598103934665603ull; /* FNV-1a */

        for (; *s; s++)
                h = (h ^ (uint8_t)*s) * 1099511628211ull;
        return (size_t)h;
}

/* The slot of norm in the index: the one holding it, or the empty one where it would go. */
static size_t index_slot(const struct ia_archive *a, const char *norm)
{
        size_t mask = a->index_cap - 1;
        size_t i = name_hash(norm) & mask;

        while (a->index[i] && strcmp(a->norms[a->index[i] - 1], norm) != 0)
                i = (i + 1) & mask;
        return i;
}

static int index_grow(struct ia_archive *a)
{
        size_t cap = a->index_cap ? a->index_cap * 2 : 64;
        size_t *old = a->index;
        size_t old_cap = a->index_cap;

        a->index = calloc(cap, sizeof(*a->index));
        if (!a->index) {
                a->index = old;
                return -1;
        }
        a->index_cap = cap;
        for (size_t i = 0; i < old_cap; i++)
                if (old[i])
                        a->index[index_slot(a, a->norms[old[i] - 1])] = old[i];
        free(old);
        return 0;
}

/* ---- the walk ---- */

struct walk {
        struct ia_archive *a;
        struct ia_archive_limits lim;
        struct archive *ar;  /* the format reader */
        struct archive *dec; /* with a compression filter: the decompressor feeding ar */
        struct ia_spool *spool;
        uint8_t *buf;
        uint64_t pos;      /* of the next read in the archive source */
        uint64_t raw_read; /* archive bytes read */
        uint64_t produced; /* member bytes read out of libarchive */
        bool eof_hit, io_failed;
        bool plain;            /* no compression filter: offsets in the stream are file offsets */
        bool in_header;        /* inside archive_read_next_header() */
        bool header_capped;    /* stopped there: a member's headers passed lim.max_header */
        bool header_seeks;     /* the format seeks for a header (zip's central directory) */
        uint64_t header_start; /* archive_filter_bytes(ar, 0) when it began */
        size_t check_member;   /* a tar member mapped in place whose end is checked, + 1 */
        uint64_t check_end;    /* where the next header must start after it */
        struct ia_error io_err;
        uint8_t *verify; /* VERIFY_MAX bytes */
};

/*
 * libarchive holds the whole sparse map of a GNU sparse member in memory (48
 * bytes per entry, from 4 bytes of map text), with no cap of its own, before
 * it returns the header.  What the format has consumed since the header
 * began bounds that: checked whenever the format asks for more bytes, that is
 * every READ_BLOCK bytes of a plain archive and every block the decompressor
 * gives out (64 to 128 KiB) of a compressed one.  This is why a compressed
 * archive is read in two stages: the decompressor's output is what the
 * format reads, so what it consumes is counted in decompressed bytes.  Only
 * a format that reads its headers in sequence (tar) is counted: zip seeks to
 * its central directory and to each member, and its headers are small.
 */
static bool header_over_cap(struct walk *w)
{
        if (!w->in_header || w->header_seeks ||
            (uint64_t)archive_filter_bytes(w->ar, 0) - w->header_start <= w->lim.max_header)
                return false;
        w->header_capped = true;
        archive_set_error(w->ar, ERANGE, "a member's headers are over the cap");
        return true;
}

static la_ssize_t cb_read(struct archive *ar, void *data, const void **out)
{
        struct walk *w = data;
        size_t want =
            READ_BLOCK - (size_t)(w->pos % READ_BLOCK); /* aligned: headers rarely straddle */
        int64_t n;

        if (ar == w->ar && header_over_cap(w))
                return ARCHIVE_FATAL;
        *out = w->buf;
        n = ia_read_upto(w->a->src, w->buf, want, w->pos, &w->io_err);
        if (n < 0) {
                w->io_failed = true;
                archive_set_error(ar, EIO, "%s", ia_error_msg(&w->io_err));
                return ARCHIVE_FATAL;
        }
        if ((size_t)n < want)
                w->eof_hit = true;
        w->pos += (uint64_t)n;
        w->raw_read += (uint64_t)n;
        return (la_ssize_t)n;
}

static la_int64_t cb_seek(struct archive *ar, void *data, la_int64_t off, int whence)
{
        struct walk *w = data;

        if (w->in_header)
                w->header_seeks = true;
        int64_t base = whence == SEEK_SET   ? 0
                       : whence == SEEK_CUR ? (int64_t)w->pos
                                            : (int64_t)w->a->src->size;

        if ((off < 0 && base + off < 0) || (off > 0 && base > INT64_MAX - off)) {
                archive_set_error(ar, EINVAL, "seek to an impossible offset");
                return ARCHIVE_FATAL;
        }
        w->pos = (uint64_t)(base + off);
        return (la_int64_t)w->pos;
}

static la_int64_t cb_skip(struct archive *ar, void *data, la_int64_t request)
{
        struct walk *w = data;
        uint64_t left = w->pos < w->a->src->size ? w->a->src->size - w->pos : 0;
        uint64_t n;

        (void)ar;
        if (request <= 0)
                return 0;
        n = ia_min_u64((uint64_t)request, left);
        if (n < (uint64_t)request)
                w->eof_hit = true;
        w->pos += n;
        return (la_int64_t)n;
}

/* A libarchive status that is neither success nor a mere warning (EOF is handled first). */
static bool la_failed(int r)
{
        return r != ARCHIVE_OK && r != ARCHIVE_WARN;
}

/* The format reader's input when there is a compression filter: the decompressed stream. */
static la_ssize_t cb_read_decompressed(struct archive *ar, void *data, const void **out)
{
        struct walk *w = data;
        const void *buf;
        size_t len;
        la_int64_t off;
        int r;

        if (header_over_cap(w))
                return ARCHIVE_FATAL;
        r = archive_read_data_block(w->dec, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
                return 0;
        if (la_failed(r)) {
                const char *m = archive_error_string(w->dec);

                archive_set_error(ar, archive_errno(w->dec), "%s",
                                  m ? m : "unknown decompression error");
                return ARCHIVE_FATAL;
        }
        *out = buf;
        return (la_ssize_t)len;
}

static const char *la_msg(struct walk *w)
{
        const char *m = archive_error_string(w->ar);

        return m ? m : "unknown libarchive error";
}

/* What a libarchive failure most likely was. */
static enum ia_errcat la_cat(const struct walk *w)
{
        if (w->io_failed)
                return IA_ERR_IO;
        if (w->eof_hit)
                return IA_ERR_TRUNCATED;
        return IA_ERR_CORRUPT;
}

/* Record a problem that stops the walk (the first one wins). */
static void walk_fail(struct walk *w, const struct ia_error *e)
{
        if (w->a->error.cat == IA_ERR_NONE)
                w->a->error = *e;
}

static int check_bomb(struct walk *w, struct ia_archive_member *m, struct ia_error *err)
{
        uint64_t raw = w->raw_read ? w->raw_read : 1;

        if (w->produced > w->lim.max_decompressed)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "member '%s': %llu bytes decompressed exceed the cap of %llu "
                                    "bytes",
                                    m->name, (unsigned long long)w->produced,
                                    (unsigned long long)w->lim.max_decompressed);
        if (w->produced > RATIO_SLACK && w->produced / raw > w->lim.max_ratio)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "member '%s': decompression ratio %llu:1 (%llu bytes from "
                                    "%llu) exceeds the cap of %llu:1",
                                    m->name, (unsigned long long)(w->produced / raw),
                                    (unsigned long long)w->produced, (unsigned long long)raw,
                                    (unsigned long long)w->lim.max_ratio);
        return 0;
}

/* A data read failed: record it on the member and the archive; the walk stops. */
static int data_failed(struct walk *w, struct ia_archive_member *m)
{
        struct ia_error e;

        ia_error_set(&e, la_cat(w), "member '%s': %s", m->name, la_msg(w));
        if (e.cat == IA_ERR_IO && w->io_failed)
                ia_error_set(&e, IA_ERR_IO, "member '%s': %s", m->name, ia_error_msg(&w->io_err));
        if (e.cat == IA_ERR_TRUNCATED)
                m->flags |= IA_MEMBER_TRUNCATED;
        if (m->error.cat == IA_ERR_NONE)
                m->error = e;
        ia_source_unref(m->src);
        m->src = NULL;
        walk_fail(w, &e);
        return -1;
}

/* Go past the rest of a member's data: seek when the stream is plain, else read with checks. */
static int skip_data(struct walk *w, struct ia_archive_member *m)
{
        const void *buf;
        size_t len;
        la_int64_t off;
        int r;

        if (w->plain) {
                if (la_failed(archive_read_data_skip(w->ar)))
                        return data_failed(w, m);
                return 0;
        }
        while ((r = archive_read_data_block(w->ar, &buf, &len, &off)) != ARCHIVE_EOF) {
                struct ia_error e;

                if (la_failed(r))
                        return data_failed(w, m);
                w->produced += len;
                if (check_bomb(w, m, &e) < 0) {
                        if (m->error.cat == IA_ERR_NONE)
                                m->error = e;
                        walk_fail(w, &e);
                        return -1;
                }
        }
        return 0;
}

/* Spool the member's data, starting with a block already read (buf may be NULL). */
static int spool_member(struct walk *w, struct ia_archive_member *m, bool sized, const void *buf,
                        size_t len, la_int64_t off)
{
        struct ia_error e;
        struct ia_source *s;
        uint64_t end = 0;
        int r;

        if (sized && ia_spool_used(w->spool) + m->size > w->lim.spool_budget) {
                ia_error_set(&m->error, IA_ERR_LIMIT,
                             "member '%s': %llu bytes would exceed the spool budget of %llu "
                             "bytes (%llu already in use)",
                             m->name, (unsigned long long)m->size,
                             (unsigned long long)w->lim.spool_budget,
                             (unsigned long long)ia_spool_used(w->spool));
                return skip_data(w, m);
        }
        if (ia_spool_begin(w->spool, m->name, &m->error) < 0)
                return skip_data(w, m);
        for (;;) {
                if (buf) {
                        if (off < 0 || (sized && !ia_range_in((uint64_t)off, len, m->size))) {
                                ia_error_set(&m->error, IA_ERR_CORRUPT,
                                             "member '%s': data at offset %lld lies beyond its "
                                             "size of %llu bytes",
                                             m->name, (long long)off, (unsigned long long)m->size);
                                ia_spool_abort(w->spool);
                                return skip_data(w, m);
                        }
                        if (ia_spool_write(w->spool, (uint64_t)off, buf, len, &m->error) < 0) {
                                ia_spool_abort(w->spool);
                                return skip_data(w, m);
                        }
                        end = (uint64_t)off + len;
                }
                r = archive_read_data_block(w->ar, &buf, &len, &off);
                if (r == ARCHIVE_EOF)
                        break;
                if (la_failed(r)) {
                        ia_spool_abort(w->spool);
                        return data_failed(w, m);
                }
                w->produced += len;
                if (check_bomb(w, m, &e) < 0) {
                        ia_spool_abort(w->spool);
                        m->error = e;
                        walk_fail(w, &e);
                        return -1;
                }
        }
        if (!sized)
                m->size = end;
        s = ia_spool_end(w->spool, m->size, &m->error);
        if (!s)
                return 0;
        m->src = member_new(s, w->a->depth + 1, &m->error);
        if (m->src)
                m->flags |= IA_MEMBER_SPOOLED;
        return 0;
}

/* Is block [buf, +len) what the archive holds at phys?  Compares at most VERIFY_MAX bytes. */
static bool verify_block(struct walk *w, uint64_t phys, const void *buf, size_t len)
{
        struct ia_error e;

        len = (size_t)ia_min_u64(len, VERIFY_MAX);
        if (!ia_range_in(phys, len, w->a->src->size))
                return false;
        if (ia_read(w->a->src, w->verify, len, phys, "member data", &e) < 0)
                return false;
        return memcmp(w->verify, buf, len) == 0;
}

/* The member's sparse map, checked: ascending, inside the member, no empty extents. */
static int sparse_map(struct archive_entry *entry, uint64_t size, struct ia_extent **out,
                      size_t *n_out, uint64_t *stored)
{
        int count = archive_entry_sparse_reset(entry);
        struct ia_extent *ext;
        la_int64_t o, l;
        size_t n = 0;
        uint64_t end = 0, phys = 0;

        if (count <= 0 || (unsigned)count > SPARSE_MAX_EXTENTS)
                return -1;
        ext = calloc((size_t)count, sizeof(*ext));
        if (!ext)
                return -1;
        while (archive_entry_sparse_next(entry, &o, &l) == ARCHIVE_OK) {
                if (o < 0 || l < 0 || (uint64_t)o < end ||
                    !ia_range_in((uint64_t)o, (uint64_t)l, size) || n == (size_t)count)
                        goto fail;
                if (l == 0)
                        continue;
                ext[n].lo = (uint64_t)o;
                ext[n].hi = (uint64_t)o + (uint64_t)l;
                ext[n].phys = phys;
                phys += (uint64_t)l;
                end = (uint64_t)o + (uint64_t)l;
                n++;
        }
        *out = ext;
        *n_out = n;
        *stored = phys;
        return 0;

fail:
        free(ext);
        return -1;
}

/*
 * Try to give a member of a plain stream a source in place.  The first data
 * block is [buf, +len) at member offset off, and the format has consumed
 * exactly the bytes before it.  0: done (src set, or the member recorded as
 * truncated); 1: not in place, spool it.
 */
static int map_in_place(struct walk *w, struct ia_archive_member *m, struct archive_entry *entry,
                        bool got, const void *buf, size_t len, la_int64_t off)
{
        uint64_t start = (uint64_t)archive_filter_bytes(w->ar, 0);
        struct ia_source *under;
        struct ia_extent *ext = NULL;
        size_t n = 0;
        uint64_t stored = m->size;
        bool sparse = archive_entry_sparse_count(entry) > 0;

        if (sparse) {
                if ((archive_format(w->ar) & ARCHIVE_FORMAT_BASE_MASK) != ARCHIVE_FORMAT_TAR)
                        return 1;
                if (sparse_map(entry, m->size, &ext, &n, &stored) < 0)
                        return 1;
                m->flags |= IA_MEMBER_SPARSE;
        }
        if (!got) {
                /* No data block: an empty member or one that is all holes. */
                if (stored != 0)
                        goto spool;
        } else if (off < 0 || (uint64_t)off != (n ? ext[0].lo : 0) ||
                   (n && len > ext[0].hi - ext[0].lo)) {
                goto spool;
        } else if (!ia_range_in(start, stored, w->a->src->size)) {
                /* The archive ends inside this member: what libarchive reads next fails. */
                free(ext);
                m->flags |= IA_MEMBER_TRUNCATED;
                ia_error_set(&m->error, IA_ERR_TRUNCATED,
                             "member '%s': its %llu bytes at offset %llu run past the end of "
                             "the archive (%llu bytes)",
                             m->name, (unsigned long long)stored, (unsigned long long)start,
                             (unsigned long long)w->a->src->size);
                walk_fail(w, &m->error);
                return 0;
        } else if (!verify_block(w, start, buf, len)) {
                goto spool;
        }
        if (sparse) {
                struct sparse_source *s = calloc(1, sizeof(*s));

                if (!s)
                        goto nomem;
                for (size_t i = 0; i < n; i++)
                        ext[i].phys += start;
                ia_source_init(&s->base, &sparse_ops, m->size);
                s->base.allocated = stored;
                s->under = ia_source_ref(w->a->src);
                s->ext = ext;
                s->n = n;
                under = &s->base;
        } else {
                under = ia_source_window(w->a->src, got ? start : 0, m->size, &m->error);
                if (!under)
                        return 0;
        }
        m->src = member_new(under, w->a->depth + 1, &m->error);
        if (m->src && got &&
            (archive_format(w->ar) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_TAR) {
                w->check_member = (size_t)(m - w->a->members) + 1;
                w->check_end = ia_round_up(start + stored, 512);
        }
        return 0;

spool:
        free(ext);
        return 1;
nomem:
        free(ext);
        ia_error_set(&m->error, IA_ERR_NOMEM, "member '%s': out of memory", m->name);
        return 0;
}

static bool in_place_possible(struct walk *w, struct archive_entry *entry)
{
        int fmt = archive_format(w->ar) & ARCHIVE_FORMAT_BASE_MASK;
        const char *fname;

        if (!w->plain || !archive_entry_size_is_set(entry))
                return false;
        if (fmt == ARCHIVE_FORMAT_TAR)
                return true;
        fname = archive_format_name(w->ar);
        return fmt == ARCHIVE_FORMAT_ZIP && fname && strstr(fname, "(uncompressed)");
}

static int read_regular(struct walk *w, struct ia_archive_member *m, struct archive_entry *entry)
{
        const void *buf = NULL;
        size_t len = 0;
        la_int64_t off = 0;
        bool sized = archive_entry_size_is_set(entry);
        int r;

        if (archive_entry_is_data_encrypted(entry)) {
                ia_error_set(&m->error, IA_ERR_UNSUPPORTED, "member '%s' is encrypted", m->name);
                return skip_data(w, m);
        }
        if (in_place_possible(w, entry)) {
                bool got;

                r = archive_read_data_block(w->ar, &buf, &len, &off);
                if (r != ARCHIVE_EOF && la_failed(r))
                        return data_failed(w, m);
                got = r != ARCHIVE_EOF;
                if (got)
                        w->produced += len;
                r = map_in_place(w, m, entry, got, buf, len, off);
                if (r == 0)
                        return skip_data(w, m);
                if (!got)
                        return spool_member(w, m, sized, NULL, 0, 0);
        }
        return spool_member(w, m, sized, buf, len, off);
}

static const char *entry_name(struct archive_entry *entry)
{
        const char *p = archive_entry_pathname(entry);

        if (!p)
                p = archive_entry_pathname_utf8(entry);
        return p ? p : "";
}

static int add_member(struct walk *w, struct archive_entry *entry, struct ia_archive_member **out)
{
        struct ia_archive *a = w->a;
        struct ia_archive_member *m;
        const char *link = NULL;
        char *norm;
        size_t slot;

        if (a->count == a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 16;
                struct ia_archive_member *mm = realloc(a->members, cap * sizeof(*mm));
                char **nn;

                if (!mm)
                        goto nomem;
                a->members = mm;
                nn = realloc(a->norms, cap * sizeof(*nn));
                if (!nn)
                        goto nomem;
                a->norms = nn;
                a->cap = cap;
        }
        if ((a->count + 1) * 2 > a->index_cap && index_grow(a) < 0)
                goto nomem;
        m = &a->members[a->count];
        memset(m, 0, sizeof(*m));
        m->name = strdup(entry_name(entry));
        norm = m->name ? ia_name_normalise(m->name, false) : NULL;
        if (!norm) {
                free(m->name);
                goto nomem;
        }
        a->norms[a->count] = norm;
        m->flags = name_flags(m->name);
        m->mtime = archive_entry_mtime(entry);
        m->size = archive_entry_size(entry) > 0 ? (uint64_t)archive_entry_size(entry) : 0;
        if (archive_entry_hardlink(entry)) {
                m->type = IA_MEMBER_HARDLINK;
                link = archive_entry_hardlink(entry);
        } else {
                switch (archive_entry_filetype(entry)) {
                case AE_IFREG:
                        m->type = IA_MEMBER_FILE;
                        break;
                case AE_IFDIR:
                        m->type = IA_MEMBER_DIR;
                        break;
                case AE_IFLNK:
                        m->type = IA_MEMBER_SYMLINK;
                        link = archive_entry_symlink(entry);
                        if (!link)
                                link = archive_entry_symlink_utf8(entry);
                        break;
                case AE_IFIFO:
                        m->type = IA_MEMBER_FIFO;
                        break;
                case AE_IFCHR:
                case AE_IFBLK:
                        m->type = IA_MEMBER_DEVICE;
                        break;
                default:
                        m->type = IA_MEMBER_OTHER;
                        break;
                }
        }
        if (link) {
                m->link_target = strdup(link);
                if (!m->link_target) {
                        free(m->name);
                        free(norm);
                        goto nomem;
                }
        }
        slot = index_slot(a, norm);
        if (a->index[slot])
                m->flags |= IA_MEMBER_DUPLICATE;
        a->index[slot] = a->count + 1;
        a->count++;
        *out = m;
        return 0;

nomem:
        ia_error_set(&a->error, IA_ERR_NOMEM, "archive '%s': out of memory after %zu members",
                     a->name, a->count);
        return -1;
}

/*
 * Second check of a tar member mapped in place: the next header must start
 * where its data, padded to 512 bytes, ends.  If not, the offset was wrong
 * and the window is withdrawn (the stream has moved on: it cannot be spooled).
 */
static void check_member_end(struct walk *w)
{
        struct ia_archive_member *m = &w->a->members[w->check_member - 1];
        la_int64_t next = archive_read_header_position(w->ar);

        w->check_member = 0;
        if (next >= 0 && (uint64_t)next == w->check_end)
                return;
        ia_source_unref(m->src);
        m->src = NULL;
        ia_error_set(&m->error, IA_ERR_CORRUPT,
                     "member '%s': its data should end at offset %llu but the next header is "
                     "at %lld",
                     m->name, (unsigned long long)w->check_end, (long long)next);
}

/*
 * Member names are held in memory and stored: a pax header can make one as
 * long as it likes, and a compressed stream of such headers is tiny.  Cap
 * each name (and link target) and their total; over a cap the walk stops,
 * the members before it stay recorded.
 */
static int check_names(struct walk *w, struct archive_entry *entry)
{
        struct ia_archive *a = w->a;
        const char *link = archive_entry_hardlink(entry);
        size_t n = strlen(entry_name(entry)), ln;
        struct ia_error e;

        if (!link)
                link = archive_entry_symlink(entry);
        ln = link ? strlen(link) : 0;
        if (n > w->lim.max_name || ln > w->lim.max_name) {
                ia_error_set(&e, IA_ERR_LIMIT,
                             "archive '%s': member %zu has a %s of %zu bytes, over the cap of "
                             "%llu bytes",
                             a->name, a->count + 1, n > w->lim.max_name ? "name" : "link target",
                             n > w->lim.max_name ? n : ln, (unsigned long long)w->lim.max_name);
                walk_fail(w, &e);
                return -1;
        }
        a->name_bytes += n + ln;
        if (a->name_bytes > w->lim.name_budget) {
                ia_error_set(&e, IA_ERR_LIMIT,
                             "archive '%s': member names total more than %llu bytes (the cap) "
                             "after %zu members",
                             a->name, (unsigned long long)w->lim.name_budget, a->count);
                walk_fail(w, &e);
                return -1;
        }
        return 0;
}

static void walk_members(struct walk *w)
{
        struct ia_archive *a = w->a;
        unsigned retries = 0;

        for (;;) {
                struct archive_entry *entry;
                struct ia_archive_member *m;
                struct ia_error e;
                int r;

                /* the previous member's data is consumed: what follows is headers */
                w->header_start = (uint64_t)archive_filter_bytes(w->ar, 0);
                w->in_header = true;
                r = archive_read_next_header(w->ar, &entry);
                /* the reads check while it runs, this the exact total */
                if ((r == ARCHIVE_OK || r == ARCHIVE_WARN || r == ARCHIVE_FAILED) &&
                    header_over_cap(w))
                        r = ARCHIVE_FATAL;
                w->in_header = false;

                if (r == ARCHIVE_EOF) {
                        if (w->check_member) /* the end-of-archive blocks follow it */
                                check_member_end(w);
                        return;
                }
                if (r == ARCHIVE_RETRY) {
                        ia_error_set(&e, IA_ERR_CORRUPT, "archive '%s': after %zu members: %s",
                                     a->name, a->count, la_msg(w));
                        walk_fail(w, &e);
                        if (++retries <= MAX_RETRIES)
                                continue;
                        return;
                }
                if (r != ARCHIVE_OK && r != ARCHIVE_WARN && r != ARCHIVE_FAILED) {
                        if (w->header_capped)
                                ia_error_set(&e, IA_ERR_LIMIT,
                                             "archive '%s': after %zu members: a member's headers "
                                             "(pax, GNU sparse map) take more than %llu bytes "
                                             "(the cap)",
                                             a->name, a->count,
                                             (unsigned long long)w->lim.max_header);
                        else if (w->io_failed)
                                ia_error_set(&e, IA_ERR_IO, "archive '%s': after %zu members: %s",
                                             a->name, a->count, ia_error_msg(&w->io_err));
                        else
                                ia_error_set(&e, la_cat(w), "archive '%s': after %zu members: %s",
                                             a->name, a->count, la_msg(w));
                        walk_fail(w, &e);
                        return;
                }
                if (w->check_member)
                        check_member_end(w);
                if (a->count >= w->lim.max_members) {
                        ia_error_set(&e, IA_ERR_LIMIT,
                                     "archive '%s': more than %llu members (the cap)", a->name,
                                     (unsigned long long)w->lim.max_members);
                        walk_fail(w, &e);
                        return;
                }
                if (check_names(w, entry) < 0)
                        return;
                if (add_member(w, entry, &m) < 0)
                        return;
                if (r == ARCHIVE_FAILED) {
                        ia_error_set(&m->error, IA_ERR_CORRUPT, "member '%s': %s", m->name,
                                     la_msg(w));
                        if (skip_data(w, m) < 0)
                                return;
                        continue;
                }
                if (m->type == IA_MEMBER_FILE) {
                        if (read_regular(w, m, entry) < 0)
                                return;
                } else if (skip_data(w, m) < 0) {
                        return;
                }
        }
}

/* ---- OVF ---- */

static bool parse_u64(const char *s, uint64_t *out)
{
        uint64_t v = 0;

        while (isspace((unsigned char)*s))
                s++;
        if (!isdigit((unsigned char)*s))
                return false;
        for (; isdigit((unsigned char)*s); s++)
                if (!ia_mul_ok(v, 10, &v) || !ia_add_ok(v, (uint64_t)(*s - '0'), &v))
                        return false;
        while (isspace((unsigned char)*s))
                s++;
        if (*s)
                return false;
        *out = v;
        return true;
}

/*
 * capacityAllocationUnits: "byte", "byte * 2^30", "byte*10^3", "2^20", or a
 * shorthand (KB, MB, GB, TB, KiB, ...).  false when not understood or > 2^64.
 */
static bool parse_units(const char *s, uint64_t *mult)
{
        char t[64];
        size_t n = 0;
        const char *p;
        uint64_t base = 0, exp = 0, m = 1;
        static const struct {
                const char *name;
                unsigned shift;
        } shorthand[] = {
            {"kb", 10}, {"kib", 10}, {"kilobytes", 10}, {"mb", 20}, {"mib", 20}, {"megabytes", 20},
            {"gb", 30}, {"gib", 30}, {"gigabytes", 30}, {"tb", 40}, {"tib", 40}, {"terabytes", 40}};

        for (; *s && n < sizeof(t) - 1; s++)
                if (!isspace((unsigned char)*s))
                        t[n++] = (char)tolower((unsigned char)*s);
        if (*s)
                return false;
        t[n] = '\0';
        if (n == 0 || strcmp(t, "byte") == 0 || strcmp(t, "bytes") == 0) {
                *mult = 1;
                return true;
        }
        for (size_t i = 0; i < sizeof(shorthand) / sizeof(shorthand[0]); i++)
                if (strcmp(t, shorthand[i].name) == 0) {
                        *mult = 1ull << shorthand[i].shift;
                        return true;
                }
        p = t;
        if (strncmp(p, "bytes*", 6) == 0)
                p += 6;
        else if (strncmp(p, "byte*", 5) == 0)
                p += 5;
        if (!isdigit((unsigned char)*p))
                return false;
        while (isdigit((unsigned char)*p) && base < 1000000)
                base = base * 10 + (uint64_t)(*p++ - '0');
        if (*p++ != '^' || !isdigit((unsigned char)*p))
                return false;
        while (isdigit((unsigned char)*p) && exp < 1000)
                exp = exp * 10 + (uint64_t)(*p++ - '0');
        if (*p)
                return false;
        for (uint64_t i = 0; i < exp; i++)
                if (!ia_mul_ok(m, base, &m))
                        return false;
        *mult = m;
        return true;
}

static void ovf_problem(struct ia_archive *a, enum ia_errcat cat, const char *fmt, const char *x,
                        const char *y)
{
        if (a->error.cat == IA_ERR_NONE)
                ia_error_set(&a->error, cat, fmt, a->name, x, y);
}

/* The <File> and <Disk> elements of the descriptor, read by libxml2 (vmdefs.h). */
static void ovf_parse(struct ia_archive *a, const char *desc, const char *text, size_t len)
{
        struct ia_ovf_desc od;
        struct ia_error e;
        bool nomem = false;

        ia_error_clear(&e);
        if (ia_ovf_descriptor_parse(text, len, &od, &e) < 0) {
                ovf_problem(a, e.cat, "archive '%s': descriptor '%s': %s", desc, ia_error_msg(&e));
                return;
        }
        for (size_t i = 0; i < od.nfiles; i++) {
                uint64_t size;

                if (od.files[i].size && !parse_u64(od.files[i].size, &size))
                        ovf_problem(a, IA_ERR_CORRUPT,
                                    "archive '%s': descriptor '%s': <File> size '%s' is "
                                    "not a number",
                                    desc, od.files[i].size);
        }
        a->ovf = od.ndisks ? calloc(od.ndisks, sizeof(*a->ovf)) : NULL;
        if (od.ndisks && !a->ovf)
                nomem = true;
        for (size_t i = 0; i < od.ndisks && !nomem; i++) {
                struct ia_ovf_diskdef *dd = &od.disks[i];
                struct ia_ovf_disk *d = &a->ovf[a->ovf_count++];
                uint64_t cap = 0, mult = 1;

                d->disk_id = dd->disk_id;
                d->file_id = dd->file_ref;
                d->format = dd->format;
                dd->disk_id = dd->file_ref = dd->format = NULL;
                if (dd->capacity && !parse_u64(dd->capacity, &cap))
                        ovf_problem(a, IA_ERR_CORRUPT,
                                    "archive '%s': descriptor '%s': disk capacity '%s' "
                                    "is not a number",
                                    desc, dd->capacity);
                else if (dd->units && !parse_units(dd->units, &mult))
                        ovf_problem(a, IA_ERR_CORRUPT,
                                    "archive '%s': descriptor '%s': unknown "
                                    "capacityAllocationUnits '%s'",
                                    desc, dd->units);
                else if (!ia_mul_ok(cap, mult, &cap))
                        ovf_problem(a, IA_ERR_LIMIT,
                                    "archive '%s': descriptor '%s': disk capacity '%s' "
                                    "overflows 64 bits",
                                    desc, dd->capacity);
                else
                        d->capacity = cap;
                for (size_t j = 0; d->file_id && j < od.nfiles; j++) {
                        struct ia_ovf_ref *f = &od.files[j];

                        if (f->id && strcmp(f->id, d->file_id) == 0 && f->href) {
                                d->href = strdup(f->href);
                                if (!d->href)
                                        nomem = true;
                                if (f->size)
                                        parse_u64(f->size, &d->file_size);
                                break;
                        }
                }
        }
        if (nomem)
                ovf_problem(a, IA_ERR_NOMEM, "archive '%s': descriptor '%s': %s", desc,
                            "out of memory");
        if (od.malformed)
                ovf_problem(a, IA_ERR_CORRUPT, "archive '%s': descriptor '%s': %s", desc,
                            "not well-formed XML (what could be read is kept)");
        ia_ovf_desc_free(&od);
}

static bool ends_with_ovf(const char *name)
{
        size_t n = strlen(name);

        return n > 4 && strcasecmp(name + n - 4, ".ovf") == 0;
}

static void ovf_read(struct ia_archive *a)
{
        for (size_t i = 0; i < a->count; i++) {
                struct ia_archive_member *m = &a->members[i];
                struct ia_error e;
                char *text;

                if (m->type != IA_MEMBER_FILE || !m->src || !ends_with_ovf(m->name))
                        continue;
                if (m->src->size > OVF_MAX) {
                        if (a->error.cat == IA_ERR_NONE)
                                ia_error_set(&a->error, IA_ERR_LIMIT,
                                             "archive '%s': descriptor '%s' is %llu bytes (cap "
                                             "%u)",
                                             a->name, m->name, (unsigned long long)m->src->size,
                                             OVF_MAX);
                        return;
                }
                text = malloc((size_t)m->src->size + 1);
                if (!text)
                        return;
                if (ia_read(m->src, text, (size_t)m->src->size, 0, "OVF descriptor", &e) == 0) {
                        text[m->src->size] = '\0';
                        ovf_parse(a, m->name, text, (size_t)m->src->size);
                } else if (a->error.cat == IA_ERR_NONE) {
                        a->error = e;
                }
                free(text);
                return;
        }
}

/* ---- the API ---- */

bool ia_archive_probe(const uint8_t *h, size_t len)
{
        static const uint8_t bz_block[] = {0x31, 0x41, 0x59, 0x26, 0x53, 0x59};
        static const uint8_t bz_eos[] = {0x17, 0x72, 0x45, 0x38, 0x50, 0x90};
        uint64_t want = 0, sum = 0;
        int64_t ssum = 0;
        size_t i;

        if (len >= 3 && h[0] == 0x1f && h[1] == 0x8b && h[2] == 8)
                return true; /* gzip, deflate */
        if (len >= 6 && memcmp(h,
                               "\xfd"
                               "7zXZ\0",
                               6) == 0)
                return true;
        if (len >= 4 && memcmp(h, "\x28\xb5\x2f\xfd", 4) == 0)
                return true;
        if (len >= 10 && memcmp(h, "BZh", 3) == 0 && h[3] >= '1' && h[3] <= '9' &&
            (memcmp(h + 4, bz_block, 6) == 0 || memcmp(h + 4, bz_eos, 6) == 0))
                return true;
        if (len >= 4 && h[0] == 'P' && h[1] == 'K' &&
            ((h[2] == 3 && h[3] == 4) || (h[2] == 5 && h[3] == 6)))
                return true;
        if (len < 512)
                return false;
        /* tar: the header checksum (octal, NUL- or space-terminated) must hold. */
        for (i = 148; i < 156 && h[i] == ' '; i++)
                ;
        if (i == 156 || h[i] < '0' || h[i] > '7')
                return false;
        for (; i < 156 && h[i] >= '0' && h[i] <= '7'; i++)
                want = want * 8 + (uint64_t)(h[i] - '0');
        if (i < 156 && h[i] != ' ' && h[i] != '\0')
                return false;
        for (i = 0; i < 512; i++) {
                uint8_t c = i >= 148 && i < 156 ? ' ' : h[i];

                sum += c;
                ssum += (int8_t)c;
        }
        if (sum != want && (ssum < 0 || (uint64_t)ssum != want))
                return false;
        if (memcmp(h + 257, "ustar", 5) == 0)
                return true;
        /* A pre-POSIX header: a name and a known type. */
        return h[0] != '\0' && (h[156] == '\0' || (h[156] >= '0' && h[156] <= '7'));
}

static void limits_resolve(const struct ia_archive_limits *in, struct ia_archive_limits *out)
{
        memset(out, 0, sizeof(*out));
        if (in)
                *out = *in;
        if (!out->max_members)
                out->max_members = DEFAULT_MAX_MEMBERS;
        if (!out->spool_budget)
                out->spool_budget = DEFAULT_SPOOL_BUDGET;
        if (!out->spool_memory)
                out->spool_memory = DEFAULT_SPOOL_MEMORY;
        if (!out->max_ratio)
                out->max_ratio = DEFAULT_MAX_RATIO;
        if (!out->max_nesting)
                out->max_nesting = DEFAULT_MAX_NESTING;
        if (!out->max_name)
                out->max_name = DEFAULT_MAX_NAME;
        if (!out->name_budget)
                out->name_budget = DEFAULT_NAME_BUDGET;
        if (!out->max_header)
                out->max_header = DEFAULT_MAX_HEADER;
        if (!out->max_decompressed && !ia_mul_ok(out->spool_budget, 4, &out->max_decompressed))
                out->max_decompressed = UINT64_MAX;
}

static void la_formats(struct archive *ar)
{
        archive_read_support_format_tar(ar);
        archive_read_support_format_gnutar(ar);
        archive_read_support_format_zip(ar);
}

/*
 * A reader of the archive source: the formats and filters wanted, or (raw)
 * only the filters, giving the decompressed stream as one entry.
 */
static struct archive *la_new(struct walk *w, bool raw)
{
        struct archive *ar = archive_read_new();

        if (!ar)
                return NULL;
        if (raw)
                archive_read_support_format_raw(ar);
        else
                la_formats(ar);
        /* Only the decompressors built in: never an external program. */
        if (archive_zlib_version())
                archive_read_support_filter_gzip(ar);
        if (archive_liblzma_version())
                archive_read_support_filter_xz(ar);
        if (archive_libzstd_version())
                archive_read_support_filter_zstd(ar);
        if (archive_bzlib_version())
                archive_read_support_filter_bzip2(ar);
        archive_read_set_read_callback(ar, cb_read);
        archive_read_set_seek_callback(ar, cb_seek);
        archive_read_set_skip_callback(ar, cb_skip);
        archive_read_set_callback_data(ar, w);
        return ar;
}

static void la_free(struct walk *w)
{
        archive_read_free(w->ar);
        archive_read_free(w->dec);
        w->ar = w->dec = NULL;
}

/*
 * With a compression filter, read again from the start in two stages: a raw
 * reader decompresses, and the format reader (no filter) reads its output.
 * 0; -1 with libarchive's message in w->ar, else in w->dec; -2 out of memory.
 */
static int la_reopen_in_stages(struct walk *w)
{
        struct archive_entry *entry;

        la_free(w);
        w->pos = 0;
        w->raw_read = 0;
        w->eof_hit = false;
        w->dec = la_new(w, true);
        if (!w->dec)
                return -2;
        if (archive_read_open1(w->dec) != ARCHIVE_OK ||
            archive_read_next_header(w->dec, &entry) != ARCHIVE_OK)
                return -1;
        w->ar = archive_read_new();
        if (!w->ar)
                return -2;
        la_formats(w->ar);
        archive_read_set_read_callback(w->ar, cb_read_decompressed);
        archive_read_set_callback_data(w->ar, w);
        return archive_read_open1(w->ar) == ARCHIVE_OK ? 0 : -1;
}

int ia_archive_open(struct ia_source *src, const char *name, const struct ia_archive_limits *lim,
                    struct ia_archive **out, struct ia_error *err)
{
        struct walk w;
        struct ia_archive *a;
        int r;

        memset(&w, 0, sizeof(w));
        limits_resolve(lim, &w.lim);
        if (source_depth(src) > w.lim.max_nesting)
                return ia_error_set(err, IA_ERR_LIMIT,
                                    "archive '%s' is nested %u archives deep (cap %u)", name,
                                    source_depth(src), w.lim.max_nesting);
        a = calloc(1, sizeof(*a));
        if (!a)
                goto nomem;
        w.a = a;
        a->name = strdup(name);
        if (!a->name)
                goto free_a;
        a->src = ia_source_ref(src);
        a->depth = source_depth(src);
        w.buf = malloc(READ_BLOCK);
        w.verify = malloc(VERIFY_MAX);
        if (!w.buf || !w.verify)
                goto free_bufs;
        w.spool = ia_spool_new(w.lim.tmpdir, w.lim.spool_memory, w.lim.spool_budget, err);
        if (!w.spool)
                goto free_bufs_err;
        w.ar = la_new(&w, false);
        if (!w.ar)
                goto free_spool;
        /* Opening chooses the filters and the format. */
        if (archive_read_open1(w.ar) != ARCHIVE_OK) {
                if (w.io_failed)
                        ia_error_set(err, IA_ERR_IO, "archive '%s': %s", name,
                                     ia_error_msg(&w.io_err));
                else
                        ia_error_set(err, IA_ERR_UNSUPPORTED,
                                     "'%s' is not a tar or zip archive (or a compressed tar): %s",
                                     name, la_msg(&w));
                goto free_ar_err;
        }
        w.plain =
            archive_filter_count(w.ar) <= 1 && archive_filter_code(w.ar, 0) == ARCHIVE_FILTER_NONE;
        if (!w.plain && (r = la_reopen_in_stages(&w)) < 0) {
                const char *m = w.ar ? archive_error_string(w.ar) : archive_error_string(w.dec);

                if (r == -2)
                        ia_error_set(err, IA_ERR_NOMEM, "archive '%s': out of memory", name);
                else if (w.io_failed)
                        ia_error_set(err, IA_ERR_IO, "archive '%s': %s", name,
                                     ia_error_msg(&w.io_err));
                else
                        ia_error_set(err, la_cat(&w), "archive '%s': %s", name,
                                     m ? m : "unknown libarchive error");
                goto free_ar_err;
        }
        walk_members(&w);
        if (a->count == 0 && a->error.cat != IA_ERR_NONE) {
                *err = a->error;
                goto free_ar_err;
        }
        la_free(&w);
        ia_spool_free(w.spool);
        free(w.verify);
        free(w.buf);
        ovf_read(a);
        *out = a;
        return 0;

free_ar_err:
        la_free(&w);
        ia_spool_free(w.spool);
        free(w.verify);
        free(w.buf);
        ia_archive_free(a);
        return -1;
free_spool:
        ia_spool_free(w.spool);
free_bufs:
        free(w.verify);
        free(w.buf);
        ia_archive_free(a);
        goto nomem;
free_bufs_err:
        free(w.verify);
        free(w.buf);
        ia_archive_free(a);
        return -1;
free_a:
        free(a);
nomem:
        return ia_error_set(err, IA_ERR_NOMEM, "archive '%s': out of memory", name);
}

size_t ia_archive_count(const struct ia_archive *a)
{
        return a->count;
}

const struct ia_archive_member *ia_archive_member(const struct ia_archive *a, size_t i)
{
        return i < a->count ? &a->members[i] : NULL;
}

const struct ia_archive_member *ia_archive_find(const struct ia_archive *a, const char *name)
{
        char *norm;
        size_t slot;

        if (!a->index_cap)
                return NULL;
        norm = ia_name_normalise(name, false);
        if (!norm)
                return NULL;
        slot = index_slot(a, norm);
        free(norm);
        return a->index[slot] ? &a->members[a->index[slot] - 1] : NULL;
}

size_t ia_archive_ovf_count(const struct ia_archive *a)
{
        return a->ovf_count;
}

const struct ia_ovf_disk *ia_archive_ovf_disk(const struct ia_archive *a, size_t i)
{
        return i < a->ovf_count ? &a->ovf[i] : NULL;
}

const struct ia_error *ia_archive_error(const struct ia_archive *a)
{
        return a->error.cat == IA_ERR_NONE ? NULL : &a->error;
}

void ia_archive_free(struct ia_archive *a)
{
        if (!a)
                return;
        for (size_t i = 0; i < a->count; i++) {
                free(a->members[i].name);
                free(a->members[i].link_target);
                ia_source_unref(a->members[i].src);
                free(a->norms[i]);
        }
        for (size_t i = 0; i < a->ovf_count; i++) {
                free(a->ovf[i].href);
                free(a->ovf[i].disk_id);
                free(a->ovf[i].format);
                free(a->ovf[i].file_id);
        }
        free(a->ovf);
        free(a->members);
        free(a->norms);
        free(a->index);
        ia_source_unref(a->src);
        free(a->name);
        free(a);
}
