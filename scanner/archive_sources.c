/*
 * The byte sources archive members get, besides windows and spools: every
 * member source carries its nesting depth (so that opening an archive inside
 * it can refuse one nested too deep), and a GNU sparse member of an
 * uncompressed tar maps its sparse map onto the archive file.
 */
#define _GNU_SOURCE
#include "archive_int.h"

#include <errno.h>
#include <pthread.h>
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

/* ---- deferred members: the head kept, the rest spooled by a second pass if ever read ---- */

struct arc_refetch {
        pthread_mutex_t lock;
        unsigned refs;
        struct ia_source *src; /* the archive */
        char *name;
        char *tmpdir;
        struct ia_archive_limits lim; /* resolved; no wanted callback */
        uint64_t used;                /* spool bytes of the first walk and of every fetch */
};

struct deferred_source {
        struct ia_source base;
        struct arc_refetch *rf;
        size_t ordinal; /* in the walk */
        char *member;
        uint8_t *head;
        size_t head_len;
        bool armed; /* the walk is over: a read past the head fetches */
        bool failed;
        struct ia_source *full; /* once fetched */
        struct ia_error err;    /* why the fetch failed */
};

struct arc_refetch *arc_refetch_new(struct ia_source *src, const char *name,
                                    const struct ia_archive_limits *lim)
{
        struct arc_refetch *rf = calloc(1, sizeof(*rf));

        if (!rf)
                return NULL;
        rf->name = strdup(name);
        rf->tmpdir = lim->tmpdir ? strdup(lim->tmpdir) : NULL;
        if (!rf->name || (lim->tmpdir && !rf->tmpdir) || pthread_mutex_init(&rf->lock, NULL)) {
                free(rf->name);
                free(rf->tmpdir);
                free(rf);
                return NULL;
        }
        rf->refs = 1;
        rf->src = ia_source_ref(src);
        rf->lim = *lim;
        rf->lim.tmpdir = rf->tmpdir;
        rf->lim.wanted = NULL;
        rf->lim.wanted_opaque = NULL;
        return rf;
}

static struct arc_refetch *refetch_ref(struct arc_refetch *rf)
{
        pthread_mutex_lock(&rf->lock);
        rf->refs++;
        pthread_mutex_unlock(&rf->lock);
        return rf;
}

void arc_refetch_unref(struct arc_refetch *rf)
{
        unsigned left;

        if (!rf)
                return;
        pthread_mutex_lock(&rf->lock);
        left = --rf->refs;
        pthread_mutex_unlock(&rf->lock);
        if (left)
                return;
        pthread_mutex_destroy(&rf->lock);
        ia_source_unref(rf->src);
        free(rf->name);
        free(rf->tmpdir);
        free(rf);
}

void arc_refetch_set_used(struct arc_refetch *rf, uint64_t used)
{
        pthread_mutex_lock(&rf->lock);
        rf->used = used;
        pthread_mutex_unlock(&rf->lock);
}

/*
 * The second pass for one member: a walk that skips to it and spools it, in
 * what is left of the spool budget.  Called with rf->lock held.
 */
static struct ia_source *fetch(struct deferred_source *d, struct ia_error *err)
{
        struct arc_refetch *rf = d->rf;
        struct ia_archive_limits lim = rf->lim;
        uint64_t size = d->base.size;
        struct ia_source *s;

        if (rf->used > lim.spool_budget || size > lim.spool_budget - rf->used) {
                ia_error_set(err, IA_ERR_LIMIT,
                             "member '%s': %llu bytes would exceed the spool budget of %llu "
                             "bytes (%llu already in use)",
                             d->member, (unsigned long long)size,
                             (unsigned long long)lim.spool_budget, (unsigned long long)rf->used);
                return NULL;
        }
        lim.spool_budget -= rf->used;
        s = arc_fetch_member(rf->src, rf->name, &lim, d->ordinal, d->member, size, err);
        if (s)
                rf->used += size;
        return s;
}

/* The whole member, fetched on the first call; NULL with *err once it could not be. */
static struct ia_source *deferred_full(struct deferred_source *d, struct ia_error *err)
{
        struct ia_source *s;

        if (!d->armed) {
                ia_error_set(err, IA_ERR_INTERNAL,
                             "member '%s': only its first %zu bytes are read while the archive "
                             "is walked",
                             d->member, d->head_len);
                return NULL;
        }
        pthread_mutex_lock(&d->rf->lock);
        if (!d->full && !d->failed) {
                ia_error_clear(&d->err);
                d->full = fetch(d, &d->err);
                d->failed = !d->full;
        }
        s = d->full;
        if (!s && err)
                *err = d->err;
        pthread_mutex_unlock(&d->rf->lock);
        return s;
}

static int64_t deferred_pread(struct ia_source *src, void *buf, size_t len, uint64_t off,
                              struct ia_error *err)
{
        struct deferred_source *d = (struct deferred_source *)src;
        struct ia_source *full;

        if (off >= src->size)
                return 0;
        if (len > src->size - off)
                len = (size_t)(src->size - off);
        if (off < d->head_len && len <= d->head_len - off) {
                memcpy(buf, d->head + off, len);
                return (int64_t)len;
        }
        full = deferred_full(d, err);
        if (!full)
                return -1;
        return full->ops->pread(full, buf, len, off, err);
}

static int deferred_seek(struct ia_source *src, uint64_t off, enum ia_seek what, uint64_t *res,
                         int *errnum)
{
        struct ia_source *full = deferred_full((struct deferred_source *)src, NULL);

        if (!full) {
                *errnum = EIO;
                return -1;
        }
        return ia_source_seek(full, off, what, res, errnum);
}

static void deferred_destroy(struct ia_source *src)
{
        struct deferred_source *d = (struct deferred_source *)src;

        ia_source_unref(d->full);
        arc_refetch_unref(d->rf);
        if (d->armed)
                free(d->head);
        free(d->member);
        free(d);
}

static const struct ia_source_ops deferred_ops = {
    .pread = deferred_pread,
    .seek = deferred_seek,
    .destroy = deferred_destroy,
};

struct ia_source *arc_deferred_new(struct arc_refetch *rf, size_t ordinal, const char *member,
                                   uint64_t size, const uint8_t *head, size_t head_len)
{
        struct deferred_source *d = calloc(1, sizeof(*d));

        if (!d)
                return NULL;
        d->member = strdup(member);
        if (!d->member) {
                free(d);
                return NULL;
        }
        ia_source_init(&d->base, &deferred_ops, size);
        d->rf = refetch_ref(rf);
        d->ordinal = ordinal;
        d->head = (uint8_t *)head; /* borrowed until arc_deferred_keep() */
        d->head_len = head_len;
        return &d->base;
}

int arc_deferred_keep(struct ia_source *src)
{
        struct deferred_source *d = (struct deferred_source *)src;
        size_t n = d->head_len < IA_ARCHIVE_KEPT ? d->head_len : IA_ARCHIVE_KEPT;
        uint8_t *h = malloc(n ? n : 1);

        if (!h)
                return -1;
        memcpy(h, d->head, n);
        d->head = h;
        d->head_len = n;
        d->armed = true;
        return 0;
}
