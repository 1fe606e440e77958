/*
 * The member walk: one header after another, each member recorded, each
 * regular member given a byte source (a window over the archive file, a
 * sparse map onto it, or a spool), or an error.
 *
 * Where a member's bytes are: libarchive does not say.  For a stream with no
 * compression filter, the tar and zip readers consume a member's data lazily,
 * so right after the first archive_read_data_block() the bytes the format has
 * consumed (archive_filter_bytes(a, 0)) are the file offset of the block just
 * returned.  That offset is only a candidate: the block is compared with the
 * archive's bytes at that offset, and a member whose bytes differ is spooled.
 * Zip members are windows only when stored (libarchive names the format
 * "(uncompressed)") and not encrypted.
 */
#define _GNU_SOURCE
#include "archive_int.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "banned.h"

void arc_walk_fail(struct walk *w, const struct ia_error *e)
{
        if (w->a->error.cat == IA_ERR_NONE)
                w->a->error = *e;
}

/* A data read failed: record it on the member and the archive; the walk stops. */
static int data_failed(struct walk *w, struct ia_archive_member *m)
{
        struct ia_error e;

        ia_error_set(&e, arc_la_cat(w), "member '%s': %s", m->name, arc_la_msg(w));
        if (e.cat == IA_ERR_IO && w->io_failed)
                ia_error_set(&e, IA_ERR_IO, "member '%s': %s", m->name, ia_error_msg(&w->io_err));
        if (e.cat == IA_ERR_TRUNCATED)
                m->flags |= IA_MEMBER_TRUNCATED;
        if (m->error.cat == IA_ERR_NONE)
                m->error = e;
        ia_source_unref(m->src);
        m->src = NULL;
        arc_walk_fail(w, &e);
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
                if (arc_la_failed(archive_read_data_skip(w->ar)))
                        return data_failed(w, m);
                return 0;
        }
        while ((r = archive_read_data_block(w->ar, &buf, &len, &off)) != ARCHIVE_EOF) {
                struct ia_error e;

                if (arc_la_failed(r))
                        return data_failed(w, m);
                w->produced += len;
                if (arc_check_bomb(w, m, &e) < 0) {
                        if (m->error.cat == IA_ERR_NONE)
                                m->error = e;
                        arc_walk_fail(w, &e);
                        return -1;
                }
        }
        return 0;
}

/* The next data block of m, the caps checked: 1 a block, 0 the end, -1 the walk stops. */
static int next_block(struct walk *w, struct ia_archive_member *m, const void **buf, size_t *len,
                      la_int64_t *off)
{
        struct ia_error e;
        int r = archive_read_data_block(w->ar, buf, len, off);

        if (r == ARCHIVE_EOF)
                return 0;
        if (arc_la_failed(r))
                return data_failed(w, m);
        w->produced += *len;
        if (arc_check_bomb(w, m, &e) < 0) {
                m->error = e;
                arc_walk_fail(w, &e);
                return -1;
        }
        return 1;
}

/* Does block [off, +len) lie inside the member?  If not, m->error says so. */
static bool block_inside(struct ia_archive_member *m, bool sized, size_t len, la_int64_t off)
{
        if (off >= 0 && (!sized || ia_range_in((uint64_t)off, len, m->size)))
                return true;
        ia_error_set(&m->error, IA_ERR_CORRUPT,
                     "member '%s': data at offset %lld lies beyond its size of %llu bytes", m->name,
                     (long long)off, (unsigned long long)m->size);
        return false;
}

/*
 * A member's first data blocks, read before it is spooled so that the caller
 * can say whether it may be an image (limits.wanted): a copy of each block as
 * read (replayed into the spool when it is wanted) and its first
 * IA_ARCHIVE_HEAD bytes with holes as zeros (what the probes see).
 */
struct head {
        uint8_t *bytes;
        uint8_t *data;
        size_t data_len, data_cap;
        struct head_block {
                uint64_t off;
                size_t len;
        } * blk;
        size_t nblk, blk_cap;
        uint64_t covered; /* where the last block ends */
        bool whole;       /* the member's data ended inside the head */
};

static void head_release(struct head *hd)
{
        free(hd->bytes);
        free(hd->data);
        free(hd->blk);
}

static int head_add(struct head *hd, const void *buf, size_t len, uint64_t off)
{
        if (hd->nblk == hd->blk_cap) {
                size_t cap = hd->blk_cap ? hd->blk_cap * 2 : 8;
                struct head_block *b = realloc(hd->blk, cap * sizeof(*b));

                if (!b)
                        return -1;
                hd->blk = b;
                hd->blk_cap = cap;
        }
        if (len > hd->data_cap - hd->data_len) {
                size_t cap =
                    hd->data_cap * 2 > hd->data_len + len ? hd->data_cap * 2 : hd->data_len + len;
                uint8_t *d = realloc(hd->data, cap ? cap : 1);

                if (!d)
                        return -1;
                hd->data = d;
                hd->data_cap = cap;
        }
        memcpy(hd->data + hd->data_len, buf, len);
        hd->data_len += len;
        hd->blk[hd->nblk].off = off;
        hd->blk[hd->nblk++].len = len;
        if (off < IA_ARCHIVE_HEAD)
                memcpy(hd->bytes + off, buf, (size_t)ia_min_u64(len, IA_ARCHIVE_HEAD - off));
        hd->covered = off + len;
        return 0;
}

/*
 * Read blocks (starting with one already read, buf may be NULL) until the
 * head is covered or the member ends.  0: done; 1: a problem recorded on m
 * (skip the rest); -1: the walk stops.
 */
static int read_head(struct walk *w, struct ia_archive_member *m, struct head *hd, const void *buf,
                     size_t len, la_int64_t off)
{
        for (;;) {
                int r;

                if (buf) {
                        if (!block_inside(m, true, len, off))
                                return 1;
                        if (head_add(hd, buf, len, (uint64_t)off) < 0) {
                                ia_error_set(&m->error, IA_ERR_NOMEM, "member '%s': out of memory",
                                             m->name);
                                return 1;
                        }
                        if (hd->covered >= IA_ARCHIVE_HEAD)
                                return 0;
                }
                r = next_block(w, m, &buf, &len, &off);
                if (r < 0)
                        return -1;
                if (r == 0) {
                        hd->whole = true;
                        return 0;
                }
        }
}

/*
 * Must the member be spooled whole (1), or can it be left with its head
 * only (0: m->src is a deferred source, the rest of its data is skipped)?
 * The OVF descriptor and what it names are always spooled; anything that
 * fails here is spooled too, as without a wanted callback.
 */
static int defer_member(struct walk *w, struct ia_archive_member *m, const struct head *hd)
{
        struct ia_source *d;

        if (arc_ends_with_ovf(m->name) || arc_ovf_names_member(w))
                return 1;
        if (!w->rf && !(w->rf = arc_refetch_new(w->a->src, w->a->name, &w->lim)))
                return 1;
        d = arc_deferred_new(w->rf, (size_t)(m - w->a->members), m->name, m->size, hd->bytes,
                             IA_ARCHIVE_HEAD);
        if (!d)
                return 1;
        if (w->lim.wanted(w->lim.wanted_opaque, m->name, d) || arc_deferred_keep(d) < 0) {
                ia_source_unref(d);
                return 1;
        }
        w->kept += IA_ARCHIVE_KEPT;
        m->src = arc_member_new(d, w->a->depth + 1, &m->error);
        if (m->src)
                m->flags |= IA_MEMBER_DEFERRED;
        return 0;
}

/* Into the spool: the blocks of hd, then the rest of the member from [buf, +len) at off. */
static int spool_blocks(struct walk *w, struct ia_archive_member *m, bool sized,
                        const struct head *hd, const void *buf, size_t len, la_int64_t off)
{
        struct ia_source *s;
        uint64_t end = 0;
        size_t at = 0;
        int r;

        if (ia_spool_begin(w->spool, m->name, &m->error) < 0)
                return skip_data(w, m);
        for (size_t i = 0; i < hd->nblk; i++) {
                if (ia_spool_write(w->spool, hd->blk[i].off, hd->data + at, hd->blk[i].len,
                                   &m->error) < 0) {
                        ia_spool_abort(w->spool);
                        return skip_data(w, m);
                }
                at += hd->blk[i].len;
                end = hd->blk[i].off + hd->blk[i].len;
        }
        while (!hd->whole) {
                if (buf) {
                        if (!block_inside(m, sized, len, off) ||
                            ia_spool_write(w->spool, (uint64_t)off, buf, len, &m->error) < 0) {
                                ia_spool_abort(w->spool);
                                return skip_data(w, m);
                        }
                        end = (uint64_t)off + len;
                }
                r = next_block(w, m, &buf, &len, &off);
                if (r < 0) {
                        ia_spool_abort(w->spool);
                        return -1;
                }
                if (r == 0)
                        break;
        }
        if (!sized)
                m->size = end;
        s = ia_spool_end(w->spool, m->size, &m->error);
        if (!s)
                return 0;
        m->src = arc_member_new(s, w->a->depth + 1, &m->error);
        if (m->src)
                m->flags |= IA_MEMBER_SPOOLED;
        return 0;
}

/*
 * Spool the member's data, starting with a block already read (buf may be
 * NULL).  With a wanted callback, a member longer than its head is probed
 * first, and spooled only if it may be an image (or the kept heads are over
 * their allowance, spool_memory).
 */
static int spool_member(struct walk *w, struct ia_archive_member *m, bool sized, const void *buf,
                        size_t len, la_int64_t off)
{
        struct head hd;
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
        memset(&hd, 0, sizeof(hd));
        if (sized && w->lim.wanted && m->size > IA_ARCHIVE_HEAD && w->kept < w->lim.spool_memory &&
            (hd.bytes = calloc(1, IA_ARCHIVE_HEAD))) {
                r = read_head(w, m, &hd, buf, len, off);
                if (r == 0 && !hd.whole && defer_member(w, m, &hd) == 0)
                        r = 1;
                if (r != 0) {
                        head_release(&hd);
                        return r < 0 ? -1 : skip_data(w, m);
                }
                buf = NULL; /* the blocks read are in hd */
        }
        r = spool_blocks(w, m, sized, &hd, buf, len, off);
        head_release(&hd);
        return r;
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
                arc_walk_fail(w, &m->error);
                return 0;
        } else if (!verify_block(w, start, buf, len)) {
                goto spool;
        }
        if (sparse) {
                for (size_t i = 0; i < n; i++)
                        ext[i].phys += start;
                under = arc_sparse_new(w->a->src, ext, n, m->size, stored);
                if (!under)
                        goto nomem;
        } else {
                under = ia_source_window(w->a->src, got ? start : 0, m->size, &m->error);
                if (!under)
                        return 0;
        }
        m->src = arc_member_new(under, w->a->depth + 1, &m->error);
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
                if (r != ARCHIVE_EOF && arc_la_failed(r))
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
        if ((a->count + 1) * 2 > a->index_cap && arc_index_grow(a) < 0)
                goto nomem;
        m = &a->members[a->count];
        memset(m, 0, sizeof(*m));
        m->name = strdup(arc_entry_name(entry));
        norm = m->name ? ia_name_normalise(m->name, false) : NULL;
        if (!norm) {
                free(m->name);
                goto nomem;
        }
        a->norms[a->count] = norm;
        m->flags = arc_name_flags(m->name);
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
        slot = arc_index_slot(a, norm);
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

void arc_walk_members(struct walk *w)
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
                    arc_header_over_cap(w))
                        r = ARCHIVE_FATAL;
                w->in_header = false;

                if (r == ARCHIVE_EOF) {
                        if (w->check_member) /* the end-of-archive blocks follow it */
                                check_member_end(w);
                        return;
                }
                if (r == ARCHIVE_RETRY) {
                        ia_error_set(&e, IA_ERR_CORRUPT, "archive '%s': after %zu members: %s",
                                     a->name, a->count, arc_la_msg(w));
                        arc_walk_fail(w, &e);
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
                                ia_error_set(&e, arc_la_cat(w),
                                             "archive '%s': after %zu members: %s", a->name,
                                             a->count, arc_la_msg(w));
                        arc_walk_fail(w, &e);
                        return;
                }
                if (w->check_member)
                        check_member_end(w);
                if (a->count >= w->lim.max_members) {
                        ia_error_set(&e, IA_ERR_LIMIT,
                                     "archive '%s': more than %llu members (the cap)", a->name,
                                     (unsigned long long)w->lim.max_members);
                        arc_walk_fail(w, &e);
                        return;
                }
                if (arc_check_names(w, entry) < 0)
                        return;
                if (add_member(w, entry, &m) < 0)
                        return;
                if (w->target && a->count != w->target) {
                        /* a second pass, for another member: only skipped */
                        if (skip_data(w, m) < 0)
                                return;
                        continue;
                }
                if (r == ARCHIVE_FAILED) {
                        ia_error_set(&m->error, IA_ERR_CORRUPT, "member '%s': %s", m->name,
                                     arc_la_msg(w));
                        if (skip_data(w, m) < 0)
                                return;
                } else if (m->type == IA_MEMBER_FILE) {
                        if (read_regular(w, m, entry) < 0)
                                return;
                } else if (skip_data(w, m) < 0) {
                        return;
                }
                if (w->target)
                        return; /* the member the second pass is for */
        }
}
