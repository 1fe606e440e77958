/*
 * The byte sources archive members get, besides windows and spools: every
 * member source carries its nesting depth (so that opening an archive inside
 * it can refuse one nested too deep), and a GNU sparse member of an
 * uncompressed tar maps its sparse map onto the archive file.
 */
#define _GNU_SOURCE
#include "archive_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "banned.h"

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

struct ia_source *arc_member_new(struct ia_source *under, unsigned depth, struct ia_error *err)
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

unsigned arc_source_depth(const struct ia_source *src)
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

struct ia_source *arc_sparse_new(struct ia_source *under, struct ia_extent *ext, size_t n,
                                 uint64_t size, uint64_t stored)
{
        struct sparse_source *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL; /* ext stays the caller's */
        ia_source_init(&s->base, &sparse_ops, size);
        s->base.allocated = stored;
        s->under = ia_source_ref(under);
        s->ext = ext;
        s->n = n;
        return &s->base;
}
